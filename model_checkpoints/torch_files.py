"""The one guarded ``torch.load`` our own checkpoint formats (seg-train semantic, seg-train classify)
are read with: ``weights_only=True``, so nothing in the file runs, and every failure a
:class:`~segcontract.checkpoint_formats.CheckpointError` of one line that names the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from model_checkpoints import ultralytics as ultralytics_checkpoint
from segcontract.checkpoint_formats import CheckpointError


def first_line(exc: BaseException) -> str:
    """The exception's first line, or its type's name when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_weights_only(path: Path, kind: str) -> Any:
    """What torch saved at ``path``, unpickled with ``weights_only=True`` on the CPU.

    ``kind`` names the checkpoints the caller reads (``seg-train semantic``...): a YOLO checkpoint
    given instead is told apart from an unreadable file and answered with the ``--model`` to use.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        if ultralytics_checkpoint.is_ultralytics(path):
            name = ultralytics_checkpoint.model_name_of(path) or "yolov8n-seg"
            raise CheckpointError(
                f"{path}: an ultralytics YOLO checkpoint, not a {kind} one; use --model {name}"
            ) from None
        raise CheckpointError(f"{path}: not a loadable checkpoint ({first_line(exc)[:200]})") from None
