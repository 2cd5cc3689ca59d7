"""The checkpoint `seg-train semantic` writes and `build-repo --model smp` reads.

A plain dict of tensors, numbers and strings, so it loads with ``torch.load(weights_only=True)``:
it records everything the builder and the server need (architecture, encoder, classes, colours,
input size, normalisation) beside the weights, plus the optimizer state for resuming.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from training import ultralytics_checkpoint

FORMAT = "segstack.smp/1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class CheckpointError(Exception):
    """The file is not a checkpoint of this format: one line naming it."""


@dataclass
class SemanticModelInfo:
    arch: str
    encoder: str
    num_classes: int
    class_names: list[str]
    colors: list[list[int]]  # RGB per class
    input_size: tuple[int, int]  # (width, height)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        if len(self.class_names) != self.num_classes or len(self.colors) != self.num_classes:
            raise CheckpointError(
                f"{self.num_classes} classes but {len(self.class_names)} names and {len(self.colors)} colours"
            )


@dataclass
class TrainingState:
    epoch: int = 0
    best_miou: float = 0.0
    optimizer: dict[str, Any] = field(default_factory=dict)


def build_model(info: SemanticModelInfo, encoder_weights: str | None = None) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    try:
        return smp.create_model(
            info.arch, encoder_name=info.encoder, encoder_weights=encoder_weights, classes=info.num_classes
        )
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot build {info.arch} with encoder {info.encoder}: {exc}") from None


def save_checkpoint(
    path: Path, info: SemanticModelInfo, model: torch.nn.Module, state: TrainingState
) -> Path:
    """Atomic: written beside the target, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "info": {
            **asdict(info),
            "input_size": list(info.input_size),
            "mean": list(info.mean),
            "std": list(info.std),
        },
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": state.epoch,
        "best_miou": state.best_miou,
        "optimizer": state.optimizer,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> tuple[SemanticModelInfo, dict[str, Any]]:
    """(model info, payload with state_dict / epoch / best_miou / optimizer). weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        if ultralytics_checkpoint.is_ultralytics(path):
            name = ultralytics_checkpoint.model_name_of(path) or "yolov8n-seg"
            raise CheckpointError(
                f"{path}: an ultralytics YOLO checkpoint, not a seg-train semantic one; use --model {name}"
            ) from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a loadable checkpoint ({reason[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seg-train semantic checkpoint (format {FORMAT!r} expected)")
    return SemanticModelInfo(**payload["info"]), payload
