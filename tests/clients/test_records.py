import os
import signal
import stat
import subprocess
import sys

from segcontract.files import remove_leftover_temps, write_atomic


def test_results_get_the_users_umask(tmp_path):
    previous = os.umask(0o002)
    try:
        write_atomic(tmp_path / "a.json", b"{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o664


def test_a_dead_writers_temp_file_is_removed_and_a_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / f".a.json.{dead.pid}.0123abcd.tmp").write_bytes(b"{")
        (tmp_path / f".b.png.{live.pid}.0123abcd.tmp").write_bytes(b"x")
        (tmp_path / ".hidden").write_bytes(b"the user's")
        assert remove_leftover_temps(tmp_path) == 1
        assert sorted(p.name for p in tmp_path.rglob(".*")) == [f".b.png.{live.pid}.0123abcd.tmp", ".hidden"]
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
