"""The guarded ``torch.load`` of the checkpoints segstack reads, and the one way every family
refuses a file whose pickle would run code when loaded.

Our own formats (seg-train semantic, seg-train classify) load with ``weights_only=True``, so
nothing in the file runs; ultralytics ``.pt`` files add an allowlist on top
(:mod:`model_checkpoints.ultralytics`). Every failure is a
:class:`~segcontract.checkpoint_formats.CheckpointError` of one line that names the file; a file
torch's weights-only unpickler refuses is answered with :func:`refusal`, whichever family reads it,
and never with torch's own advice (``weights_only=False``), since the opt-in here is
``--trust-checkpoint``."""

from __future__ import annotations

import collections
import io
import logging
import pickletools
import re
import warnings
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from segcontract.checkpoint_formats import TRUST_OPTION, CheckpointError

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STRING_OPS = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
)


def first_line(exc: BaseException) -> str:
    """The exception's first line, or its type's name when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def refusal(path: object, names: Iterable[str]) -> str:
    """The one-line refusal of a checkpoint whose pickle names globals no genuine checkpoint holds
    (``os.system``, ``io.open``...): the same words for every family, naming the file, what it
    names, and the opt-in."""
    names = sorted(names)
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (
        f"{path}: refused, its pickle names {shown}, which no genuine checkpoint holds and which would "
        f"run when loaded; pass {TRUST_OPTION} only if you trust where the file comes from"
    )


def load_failure(exc: BaseException) -> str:
    """Why torch could not load a file, in one line, without torch's advice on ``weights_only``."""
    text = _ANSI.sub("", str(exc))
    _, found, rest = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if found else text).splitlines() if line.strip()]
    reason = lines[0].split(" Please use ")[0] if lines else type(exc).__name__
    if "weights_only" in reason or "Weights only" in reason:
        reason = "torch's weights-only unpickler cannot read it"
    elif isinstance(exc, KeyError):  # the unpickler met a byte that is no pickle opcode
        reason = "neither a torch.save file nor a pickle"
    return reason[:200]


def _pickle_globals(data: bytes) -> set[str]:
    """The globals the pickles in ``data`` name, read op by op with pickletools (nothing is imported
    or run): ``GLOBAL`` and ``INST`` carry the name, ``STACK_GLOBAL`` takes the two strings pushed
    just before it (memoised ones too). An older torch.save file is several pickles and then raw
    storage bytes: reading stops at the first thing that is not a pickle."""
    names: set[str] = set()
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        pushed: collections.deque[object] = collections.deque([None, None], maxlen=2)
        memo: dict[object, object] = {}
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name in {"GLOBAL", "INST"}:
                    names.add(_python3_name(*str(arg).split(" ", 1)))
                elif op.name == "STACK_GLOBAL" and all(isinstance(s, str) for s in pushed):
                    names.add(f"{pushed[0]}.{pushed[1]}")
                if op.name in _STRING_OPS:
                    pushed.append(arg if isinstance(arg, str) else None)
                elif op.name == "MEMOIZE":
                    memo[len(memo)] = pushed[-1]
                elif op.name in {"PUT", "BINPUT", "LONG_BINPUT"}:
                    memo[arg] = pushed[-1]
                elif op.name in {"GET", "BINGET", "LONG_BINGET"}:
                    pushed.append(memo.get(arg))
                elif op.name not in {"FRAME", "PROTO"}:
                    pushed.append(None)
        except Exception:  # not (or no longer) a pickle: storage bytes, a truncated or foreign file
            break
    return names


def _python3_name(module: str, name: str = "") -> str:
    """``module.name`` as Python 3 spells it (protocol 2 pickles say ``__builtin__.set``), the names
    torch's allowlist uses."""
    module, name = NAME_MAPPING.get((module, name), (IMPORT_MAPPING.get(module, module), name))
    return f"{module}.{name}"


def unsafe_globals(path: Path) -> list[str]:
    """The globals the checkpoint's pickles name that torch's weights-only unpickler does not allow
    by default, sorted, read without unpickling anything: a torch.save archive by torch itself,
    an older torch.save file or a bare pickle by :func:`_pickle_globals`. Raises what reading
    raises (OSError, RuntimeError...) for a damaged archive."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    # what get_unsafe_globals_in_checkpoint subtracts for an archive; without them (a later torch
    # may rename these) every name is listed, which refuses more, never less
    from torch import _weights_only_unpickler as unpickler

    allowed = set(getattr(unpickler, "_get_allowed_globals", dict)())
    allowed |= set(getattr(unpickler, "_get_user_allowed_globals", dict)())
    return sorted(_pickle_globals(path.read_bytes()) - allowed)


def load_trusted(path: Path) -> Any:
    """The file unpickled in full (``--trust-checkpoint``), after a warning: code in it runs."""
    log.warning("%s: loading with the full unpickler (%s): code in the file runs", path, TRUST_OPTION)
    return torch.load(path, map_location="cpu", weights_only=False)


def load_weights_only(path: Path, kind: str, trust: bool = False) -> Any:
    """What torch saved at ``path``, unpickled with ``weights_only=True`` on the CPU (with
    ``trust``, by :func:`load_trusted`).

    ``kind`` names the checkpoints the caller reads (``seg-train semantic``...): a YOLO checkpoint
    given instead is told apart from an unreadable file and answered with the ``--model`` to use;
    a file that names anything else torch does not allow is answered with :func:`refusal`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        if trust:
            return load_trusted(path)
        with warnings.catch_warnings():  # torch's notes on pickle protocols: the refusal says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        failure = exc
    try:
        names = [] if trust else unsafe_globals(path)
    except Exception:  # a damaged archive: the load's own reason says more
        names = []
    if any(name.startswith("ultralytics.") for name in names):
        # imported here: that module reads files with this one's helpers
        from model_checkpoints import ultralytics as ultralytics_checkpoint

        model = ultralytics_checkpoint.model_name_of(path) or "yolov8n-seg"
        raise CheckpointError(
            f"{path}: an ultralytics YOLO checkpoint, not a {kind} one; use --model {model}"
        )
    if names:
        raise CheckpointError(refusal(path, names))
    raise CheckpointError(f"{path}: not a loadable checkpoint ({load_failure(failure)})")
