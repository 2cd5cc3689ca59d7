"""Writing and reading the checkpoint `seg-train semantic` writes and `build-repo --model smp` reads
(its contents: :mod:`segcontract.checkpoint_formats`), and building its network."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from model_checkpoints.torch_files import load_weights_only
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


def load_checkpoint(path: Path, trust: bool = False) -> tuple[SemanticModelInfo, dict[str, Any]]:
    """(model info, payload with state_dict / epoch / best_miou / optimizer). weights_only=True;
    ``trust`` (--trust-checkpoint): the full unpickler."""
    path = Path(path)
    payload = load_weights_only(path, "seg-train semantic", trust)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seg-train semantic checkpoint (format {FORMAT!r} expected)")
    try:
        info = SemanticModelInfo(**payload["info"])
    except (TypeError, KeyError) as exc:
        raise CheckpointError(f"{path}: its semantic model record is incomplete ({exc})") from None
    return info, payload
