"""Writing and reading the checkpoint `seg-train semantic` writes and `build-repo --model smp` reads
(its contents: :mod:`segcontract.checkpoint_formats`), and building its network."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from model_checkpoints import ultralytics as ultralytics_checkpoint
from segcontract.checkpoint_formats import SMP_FORMAT as FORMAT
from segcontract.checkpoint_formats import CheckpointError, SemanticModelInfo
from segcontract.files import write_atomic


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
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomic(path, buffer.getvalue())
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
