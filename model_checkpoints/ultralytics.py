"""Load ultralytics ``.pt`` checkpoints without running code from them.

An ultralytics checkpoint pickles the model object itself, so ultralytics loads it with the full
unpickler (``weights_only=False``): a file that names ``os.system`` or ``builtins.open`` in its
pickle runs it on load. Here the globals a file names are listed first, without unpickling
(``torch.serialization.get_unsafe_globals_in_checkpoint``); only the classes a genuine checkpoint
holds (torch and ultralytics ``nn.Module`` classes, ultralytics' argument namespaces, numpy
scalars) are allowed, and the file is then loaded with ``torch.load(weights_only=True)`` under
exactly that allowlist. Anything else is refused unless the caller trusts the file explicitly.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import torch

from segcontract.checkpoint_formats import TRUST_OPTION
from segcontract.checkpoint_formats import ULTRALYTICS_MODULE_PREFIXES as _MODULE_PREFIXES
from segcontract.checkpoint_formats import ULTRALYTICS_VALUE_TYPES as _VALUE_TYPES

log = logging.getLogger(__name__)


class UnsafeCheckpoint(Exception):
    """The checkpoint names globals outside the allowlist; the message names the file and the fix."""


class UnreadableCheckpoint(Exception):
    """Not a checkpoint torch can read (empty, truncated, not a zip/pickle)."""


def _resolve(name: str) -> object | None:
    """The object a pickle global names, when it is allowed; None otherwise. Nothing outside the
    allowed prefixes is imported (importing a module can itself run code)."""
    allowed_value = name in _VALUE_TYPES or name.startswith("numpy.dtypes.")
    if not (allowed_value or name.startswith(_MODULE_PREFIXES)):
        return None
    module_name, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None
    if allowed_value:
        return obj
    return obj if isinstance(obj, type) and issubclass(obj, torch.nn.Module) else None


def checkpoint_globals(path: Path) -> list[str]:
    """The globals the checkpoint's pickle names that torch does not allow by default (read only)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception as exc:  # a damaged archive surfaces as several exception types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableCheckpoint(f"{path}: not a loadable PyTorch checkpoint ({reason[:200]})") from None


def is_ultralytics(path: Path) -> bool:
    """Whether the file names ultralytics classes (a YOLO checkpoint), judged without loading it."""
    try:
        return any(name.startswith("ultralytics.") for name in checkpoint_globals(path))
    except UnreadableCheckpoint:
        return False


def check_safe(path: Path) -> list[object]:
    """The allowed objects the checkpoint needs; :class:`UnsafeCheckpoint` if it names anything else."""
    names = checkpoint_globals(path)
    resolved = {name: _resolve(name) for name in names}
    refused = sorted(name for name, obj in resolved.items() if obj is None)
    if refused:
        shown = ", ".join(refused[:3]) + (f" and {len(refused) - 3} more" if len(refused) > 3 else "")
        raise UnsafeCheckpoint(
            f"{path}: refused, its pickle names {shown}, which no genuine checkpoint holds and which would "
            f"run when loaded; pass {TRUST_OPTION} only if you trust where the file comes from"
        )
    return [obj for obj in resolved.values() if obj is not None]


def load(path: Path, trust: bool = False) -> dict[str, Any]:
    """The checkpoint's contents, loaded with ``weights_only=True`` and the allowlist; with
    ``trust``, with the full unpickler (after a warning)."""
    path = Path(path)
    if trust:
        log.warning("%s: loading with the full unpickler (%s): code in the file runs", path, TRUST_OPTION)
        return torch.load(path, map_location="cpu", weights_only=False)
    allowed = check_safe(path)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the allowlisted load still refuses what it cannot rebuild
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableCheckpoint(f"{path}: not a loadable checkpoint ({reason[:200]})") from None


def model_of(ckpt: object) -> torch.nn.Module | None:
    """The model an ultralytics checkpoint holds (its EMA weights when saved), else None."""
    if not isinstance(ckpt, dict):
        return None
    candidate = ckpt.get("ema") or ckpt.get("model")
    return candidate if isinstance(candidate, torch.nn.Module) else None


def model_name_of(path: Path) -> str | None:
    """``yolov8n-seg`` and the like, from the architecture file the checkpoint records (safe load)."""
    try:
        net = model_of(load(path))
    except (UnsafeCheckpoint, UnreadableCheckpoint):
        return None
    yaml = getattr(net, "yaml", None) or {}
    stem = Path(str(yaml.get("yaml_file", ""))).stem
    scale = yaml.get("scale")
    if stem and scale and stem.startswith(("yolov8-", "yolo11-")):
        head, _, tail = stem.partition("-")
        return f"{head}{scale}-{tail}"
    return stem or None
