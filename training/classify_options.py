"""What one `seg-train classify` run is asked to do, and what its checkpoint records of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_ARCH = "resnet18"


@dataclass
class ClassifyOptions:
    cat: str | None = None
    data: Path | None = None
    data_root: Path = Path(".")
    arch: str = DEFAULT_ARCH
    imgsz: int = 224
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    val_fraction: float = 0.2
    seed: int = 0
    resume: Path | None = None
    trust_checkpoint: bool = False  # load --resume with the full unpickler
    name: str | None = None
    experiment: str | None = None
    pretrained: bool = True
    workers: int = 2
    use_segments: bool = False
    segment_model: str | None = None
    db: str | None = None
    accelerator: str = "auto"
    tensorboard: bool = True  # event files in <run>/tensorboard


def run_name(opts: ClassifyOptions) -> str:
    """The model's folder under DATA/models: --name, else the group, else the class folders' name."""
    if opts.name:
        return opts.name
    if opts.cat:
        return opts.cat
    return Path(opts.data).resolve().name


def checkpoint_arguments(
    opts: ClassifyOptions, name: str, experiment: str, segment_model: str | None
) -> dict[str, Any]:
    """The plain (str, int, float, bool, None) training arguments the checkpoint records."""
    return {
        "name": name,
        "experiment": experiment,
        "cat": opts.cat,
        "data": str(opts.data) if opts.data is not None else None,
        "arch": opts.arch,
        "imgsz": int(opts.imgsz),
        "epochs": int(opts.epochs),
        "batch_size": int(opts.batch_size),
        "val_fraction": float(opts.val_fraction),
        "seed": int(opts.seed),
        "pretrained": bool(opts.pretrained),
        "use_segments": bool(opts.use_segments),
        "segment_model": segment_model,
    }
