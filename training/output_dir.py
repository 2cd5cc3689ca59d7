"""The output folder of a converter: built aside, swapped in whole, and never a folder the
command did not write.

A command writes a marker file into its output naming itself and the top-level entries it wrote.
Re-running onto that folder replaces it (the command is re-runnable); anything else is refused
before any work, and again just before the swap, with one line saying what to do:

* an existing, non-empty folder without this command's marker (a user's folder, another command's),
* a previous output holding a top-level entry the command did not write (a user's notes),
* a destination equal to, inside, or containing the source, or containing the current folder
  (replacing it would leave the shell in a deleted folder).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from segcontract.errors import SegstackError

MARKER = ".seg-train-output.json"


class OutputFolderError(SegstackError):
    """The destination cannot be (re)placed: one line naming the folder and the fix."""


def user_mode(mode: int = 0o777) -> int:
    """``mode`` filtered by the process umask, as ``mkdir`` would create it."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _written_by(folder: Path, command: str) -> list[str] | None:
    """The top-level entries a previous run of ``command`` wrote there, or None if it did not."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("command") != command:
        return None
    entries = marker.get("entries")
    return [str(e) for e in entries] if isinstance(entries, list) else None


def check_destination(src: Path, dst: Path, command: str) -> Path:
    """Refuse a destination the command may not replace; return it resolved."""
    src_r, dst_r, cwd = Path(src).resolve(), Path(dst).resolve(), Path.cwd().resolve()
    fix = "give a new or empty --dst-dir"
    if dst_r == src_r:
        raise OutputFolderError(f"--dst-dir {dst} is the --src-dir; {fix} outside it")
    if dst_r.is_relative_to(src_r):
        raise OutputFolderError(f"--dst-dir {dst} is inside --src-dir {src}; {fix} outside it")
    if src_r.is_relative_to(dst_r):
        raise OutputFolderError(f"--dst-dir {dst} contains --src-dir {src}; {fix} that does not hold it")
    if cwd.is_relative_to(dst_r):
        raise OutputFolderError(
            f"--dst-dir {dst} is or contains the current folder, and the output folder is replaced "
            "whole; give a new sub-folder, e.g. --dst-dir dataset"
        )
    if not dst_r.exists():
        return dst_r
    if not dst_r.is_dir():
        raise OutputFolderError(f"{dst}: exists and is not a folder; {fix}")
    present = sorted(p.name for p in dst_r.iterdir())
    if not present:
        return dst_r
    written = _written_by(dst_r, command)
    if written is None:
        raise OutputFolderError(
            f"{dst}: not empty and not written by seg-train {command}; nothing was changed: {fix}"
        )
    foreign = [name for name in present if name not in {*written, MARKER}]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise OutputFolderError(
            f"{dst}: holds {foreign[0]}{more}, which seg-train {command} did not write; move it out "
            "of the folder (a re-run replaces the folder whole), or " + fix
        )
    return dst_r


@contextmanager
def staged_output(src: Path, dst: Path, command: str) -> Iterator[Path]:
    """A staging folder beside ``dst``; when the block ends without an error, it is marked and
    swapped into place. A failed run leaves ``dst`` as it was."""
    dst = check_destination(src, dst, command)
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.{command}-", dir=dst.parent))
    try:
        yield staging
        entries = sorted(p.name for p in staging.iterdir())
        (staging / MARKER).write_text(json.dumps({"command": command, "entries": entries}) + "\n")
        staging.chmod(user_mode())  # mkdtemp makes it 0700
        check_destination(src, dst, command)  # the run may have taken minutes
        _swap_into_place(staging, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_into_place(staging: Path, dst: Path) -> None:
    retired = None
    if dst.exists():
        retired = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        dst.rename(retired)
    staging.rename(dst)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
