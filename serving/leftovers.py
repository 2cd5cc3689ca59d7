"""What a dead tritonserver leaves behind: Python-backend stubs and their ``/dev/shm`` regions.

Triton's Python backend runs each model instance in a ``triton_python_backend_stub`` process that
shares a ``/dev/shm`` region with the server. The stub ignores SIGTERM and only notices that its
server is gone once the server's PID stops existing (a zombie server still counts as alive), so a
killed server can leave 190 MB processes and shared memory behind.

Every server :class:`serving.tritonserver.TritonServer` starts gets its own region prefix naming
the process that launched it (``segstack_<launcher pid>_<token>_``). That makes cleanup precise:

* on stop, the stubs and regions carrying the server's own prefix are removed;
* on the next start, a stub whose server is no longer running, and a region whose launcher is
  dead and which no process maps, are removed. A live server's stubs and regions are never
  touched, whoever started it.

A stub's command line is ``stub model.py <region> <size> <growth> <server pid> ...``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import psutil

SHM_DIR = Path("/dev/shm")
PREFIX_ROOT = "segstack_"
STUB_NAME = "triton_python_backend_stub"


def new_prefix() -> str:
    """A region prefix unique to one server, naming this (the launching) process."""
    return f"{PREFIX_ROOT}{os.getpid()}_{secrets.token_hex(4)}_"


def launcher_pid(region: str) -> int | None:
    """The launcher PID a region name of ours carries; None for any other name."""
    if not region.startswith(PREFIX_ROOT):
        return None
    pid = region[len(PREFIX_ROOT) :].split("_", 1)[0]
    return int(pid) if pid.isdigit() else None


@dataclass(frozen=True)
class Stub:
    process: psutil.Process
    region: str
    server_pid: int

    def server_running(self) -> bool:
        """True while the server that spawned this stub is running (not a zombie) and still its
        ancestor; a stub that was reparented has lost its server for good."""
        try:
            server = psutil.Process(self.server_pid)
            if server.status() == psutil.STATUS_ZOMBIE:
                return False
            return any(p.pid == self.server_pid for p in self.process.parents())
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True  # not ours to judge


def stubs() -> list[Stub]:
    """The Python-backend stubs of this user that can be read."""
    found = []
    uid = os.getuid()
    for proc in psutil.process_iter(["cmdline", "uids"]):
        cmdline, uids = proc.info["cmdline"] or [], proc.info["uids"]
        if uids is None or (uid != 0 and uids.real != uid):
            continue
        if len(cmdline) < 6 or Path(cmdline[0]).name != STUB_NAME or not cmdline[5].isdigit():
            continue
        found.append(Stub(proc, cmdline[2], int(cmdline[5])))
    return found


def kill(processes: list[psutil.Process], timeout_s: float = 5.0) -> None:
    """SIGKILL (stubs ignore SIGTERM) and wait until they are gone."""
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()
    psutil.wait_procs(processes, timeout=timeout_s)


def mapped_regions() -> set[str]:
    """Names of the ``/dev/shm`` files some readable process maps."""
    names: set[str] = set()
    marker = f" {SHM_DIR}/"
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            at = line.find(marker)
            if at >= 0:
                names.add(line[at + len(marker) :].split(" ", 1)[0])
    return names


def remove_regions(names: set[str]) -> list[str]:
    """Unlink these ``/dev/shm`` files; return those removed (another user's cannot be)."""
    removed = []
    for name in sorted(names):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            (SHM_DIR / name).unlink()
            removed.append(name)
    return removed


def clean_server(prefix: str) -> None:
    """After the server with this prefix has exited: kill its stubs, remove its regions."""
    kill([s.process for s in stubs() if s.region.startswith(prefix)])
    if SHM_DIR.is_dir():
        remove_regions({p.name for p in SHM_DIR.glob(f"{prefix}*")})


@dataclass(frozen=True)
class Cleaned:
    stub_pids: list[int]
    regions: list[str]

    def __bool__(self) -> bool:
        return bool(self.stub_pids or self.regions)

    def __str__(self) -> str:
        parts = []
        if self.stub_pids:
            pids = ", ".join(map(str, self.stub_pids))
            parts.append(f"{len(self.stub_pids)} Python-backend stub(s) (pid {pids})")
        if self.regions:
            parts.append(f"{len(self.regions)} region(s) in {SHM_DIR} ({', '.join(self.regions)})")
        return " and ".join(parts)


def clean_stale() -> Cleaned:
    """Remove what servers that are provably dead left behind."""
    orphans = [s for s in stubs() if not s.server_running()]
    kill([s.process for s in orphans])
    candidates = {s.region for s in orphans}
    if SHM_DIR.is_dir():
        for path in SHM_DIR.glob(f"{PREFIX_ROOT}*"):
            pid = launcher_pid(path.name)
            if pid is not None and not psutil.pid_exists(pid):
                candidates.add(path.name)
    removed = remove_regions(candidates - mapped_regions()) if candidates else []
    return Cleaned([s.process.pid for s in orphans], removed)
