"""Load ultralytics ``.pt`` checkpoints without running code from them.

An ultralytics checkpoint pickles the model object itself, so ultralytics loads it with the full
unpickler (``weights_only=False``): a file that names ``os.system`` or ``builtins.open`` in its
pickle runs it on load. Here the globals a file names are listed first, without unpickling
(:func:`model_checkpoints.torch_files.unsafe_globals`); only the classes a genuine checkpoint
holds (torch and ultralytics ``nn.Module`` classes, ultralytics' argument namespaces, numpy
scalars) are allowed, and the file is then loaded with ``torch.load(weights_only=True)`` under
exactly that allowlist. Anything else is refused (:func:`model_checkpoints.torch_files.refusal`)
unless the caller trusts the file explicitly.

ultralytics itself reads the path it is given again later, with its full unpickler: what it gets is
therefore a :func:`private_copy` of the checked bytes, never the user's path, which could be
replaced between the check and that read.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from model_checkpoints.torch_files import load_failure, load_trusted, refusal, unsafe_globals
from segcontract.checkpoint_formats import ULTRALYTICS_MODULE_PREFIXES as _MODULE_PREFIXES
from segcontract.checkpoint_formats import ULTRALYTICS_VALUE_TYPES as _VALUE_TYPES
from segcontract.errors import SegstackError

if TYPE_CHECKING:
    from ultralytics import YOLO


class UnsafeCheckpoint(SegstackError):
    """The checkpoint names globals outside the allowlist; the message names the file and the fix."""


class UnreadableCheckpoint(SegstackError):
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


def checkpoint_globals(path: Path, name: object = None) -> list[str]:
    """The globals the checkpoint's pickle names that torch does not allow by default (read only).
    ``name``: what messages call the file (the user's path when ``path`` is a private copy)."""
    try:
        return unsafe_globals(path)
    except Exception as exc:  # a damaged archive surfaces as several exception types
        raise UnreadableCheckpoint(
            f"{name or path}: not a loadable PyTorch checkpoint ({load_failure(exc)})"
        ) from None


def is_ultralytics(path: Path) -> bool:
    """Whether the file names ultralytics classes (a YOLO checkpoint), judged without loading it."""
    try:
        return any(name.startswith("ultralytics.") for name in checkpoint_globals(path))
    except UnreadableCheckpoint:
        return False


def check_safe(path: Path, name: object = None) -> list[object]:
    """The allowed objects the checkpoint needs; :class:`UnsafeCheckpoint` if it names anything else."""
    names = checkpoint_globals(path, name)
    resolved = {global_name: _resolve(global_name) for global_name in names}
    refused = [global_name for global_name, obj in resolved.items() if obj is None]
    if refused:
        raise UnsafeCheckpoint(refusal(name or path, refused))
    return [obj for obj in resolved.values() if obj is not None]


def load(path: Path, trust: bool = False, name: object = None) -> dict[str, Any]:
    """The checkpoint's contents, loaded with ``weights_only=True`` and the allowlist; with
    ``trust``, with the full unpickler (after a warning). ``name`` as for :func:`checkpoint_globals`."""
    path = Path(path)
    if trust:
        return load_trusted(path)
    allowed = check_safe(path, name)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the allowlisted load still refuses what it cannot rebuild
        reason = load_failure(exc)
        raise UnreadableCheckpoint(f"{name or path}: not a loadable checkpoint ({reason})") from None


def private_copy(path: Path, folder: Path, trust: bool = False) -> Path:
    """A copy of ``path`` in ``folder``, checked there as :func:`load` checks (unless ``trust``):
    the file to hand to ultralytics, which reads what it is given again with its full unpickler.

    The user's file is read once, by the copy; the check and every later read see the copy, so
    replacing the user's file after the check changes nothing. ``folder`` must be one only this
    process writes (a ``tempfile.TemporaryDirectory``), which the caller removes when ultralytics
    is done. The copy keeps the file's name (ultralytics records it); messages name ``path``.
    """
    path = Path(path)
    folder = Path(tempfile.mkdtemp(dir=folder))  # one per copy: two checkpoints may share a name
    copy = folder / path.name
    try:
        shutil.copyfile(path, copy)
    except OSError as exc:
        raise UnreadableCheckpoint(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not trust:
        load(copy, name=path)
    return copy


def load_yolo(path: Path, trust: bool = False) -> YOLO:
    """An ultralytics ``YOLO`` of the checkpoint at ``path``, built from a checked
    :func:`private_copy` (removed once loaded: predict and val use the model in memory).
    Raises :class:`UnsafeCheckpoint` or :class:`UnreadableCheckpoint` before ultralytics reads it."""
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory(prefix="checked-checkpoint-") as folder:
        return YOLO(str(private_copy(Path(path), Path(folder), trust)))


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
