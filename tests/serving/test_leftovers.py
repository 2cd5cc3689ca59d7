"""Only the /dev/shm regions of provably dead servers are removed: real files, real processes."""

from __future__ import annotations

import mmap
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from serving import leftovers

pytestmark = pytest.mark.skipif(not leftovers.SHM_DIR.is_dir(), reason="needs /dev/shm")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def region():
    """Makes a region named as one a server launched by ``pid`` would have; removed afterwards."""
    made: list[Path] = []

    def make(pid: int) -> Path:
        path = leftovers.SHM_DIR / f"{leftovers.PREFIX_ROOT}{pid}_{secrets.token_hex(4)}_test"
        path.write_bytes(b"\0" * mmap.PAGESIZE)
        made.append(path)
        return path

    yield make
    for path in made:
        path.unlink(missing_ok=True)


def test_a_region_whose_launcher_is_dead_is_removed(region):
    stale = region(_dead_pid())
    assert stale.name in leftovers.clean_stale().regions
    assert not stale.exists()


def test_a_region_of_a_live_launcher_is_kept(region):
    live = region(os.getpid())
    assert live.name not in leftovers.clean_stale().regions
    assert live.exists()


def test_a_region_some_process_still_maps_is_kept(region):
    mapped = region(_dead_pid())
    with open(mapped, "r+b") as f, mmap.mmap(f.fileno(), mmap.PAGESIZE):
        assert mapped.name not in leftovers.clean_stale().regions
        assert mapped.exists()
    assert mapped.name in leftovers.clean_stale().regions


def test_only_names_of_ours_carry_a_launcher():
    assert leftovers.launcher_pid(leftovers.new_prefix() + "uuid") == os.getpid()
    assert leftovers.launcher_pid("triton_python_backend_shm_region_1234") is None
