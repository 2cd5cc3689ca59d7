"""The one way every command writes a file: a temporary file beside the target, then a rename,
so that a reader (or a re-run deciding what is done) never sees half a file."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# ``.<name>.<pid>.<random>.tmp``: the pid tells a dead writer's leftover from a live one's
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
# what versions that used tempfile.mkstemp left: ``.<name>.<8 random characters>``
_OLD_TEMP_NAME = re.compile(r"^\..+\.(json|png|jpg)\.[a-z0-9_]{8}$")
_OLD_TEMP_AGE_S = 600


def _open_temp(path: Path) -> tuple[int, Path]:
    """A new file next to ``path``, created with mode 0666 so that the user's umask applies
    (``tempfile.mkstemp`` would make every result 0600)."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # a power cut must not leave an empty file that counts as done
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_leftover_temps(folder: Path) -> int:
    """Remove the temporary files that killed writers left below ``folder`` (a SIGKILL skips the
    cleanup in write_atomic); those of writers still running are kept. Returns how many."""
    removed = 0
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.rglob(".*"):
        match = _TEMP_NAME.match(path.name)
        try:
            if match:
                stale = int(match["pid"]) != os.getpid() and not _alive(int(match["pid"]))
            else:
                stale = bool(_OLD_TEMP_NAME.match(path.name)) and now - path.stat().st_mtime > _OLD_TEMP_AGE_S
            if stale and path.is_file():
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


LOCK_POLL_S = 0.05


def _pause() -> None:
    time.sleep(LOCK_POLL_S)


@contextlib.contextmanager
def locked(path: Path, waiting: Callable[[], None] = _pause) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing, never removed: another process may
    be waiting on it) until the block ends. An flock: the kernel releases it when the holder dies,
    so a killed process leaves no lock behind. While another holds it, ``waiting()`` is called
    between tries (it sleeps a little; one that raises, e.g. on Ctrl-C, gives up the wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waiting()
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def write_json_atomic(path: Path, record: dict) -> None:
    write_atomic(path, json.dumps(record, indent=1).encode())


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def link_or_copy(src: Path, dst: Path, copy: bool = False) -> bool:
    """Hard-link ``src`` to ``dst`` (no extra disk; a file already at ``dst`` is replaced), falling
    back to a copy across file systems (or always, with ``copy``). Returns whether it linked."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    if not copy:
        try:
            os.link(src, dst)
            return True
        except OSError:
            pass  # another file system, or links not allowed
    shutil.copy2(src, dst)
    return False
