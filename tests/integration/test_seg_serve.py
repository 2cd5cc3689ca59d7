"""seg-serve prints its endpoints once ready and stops the server on SIGTERM."""

import re
import signal
import subprocess
import time

import psutil

from clients.triton import SegmentationClient
from tests.conftest import BIN, MODEL


def test_seg_serve_starts_announces_and_stops_cleanly(built_repository):
    proc = subprocess.Popen(
        [
            str(BIN / "seg-serve"),
            "--model-repository",
            str(built_repository),
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--metrics-port",
            "0",
            "--log-file",
            str(built_repository.parent / "serve.log"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        line = ""
        while time.monotonic() < deadline and "ready" not in line:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "seg-serve exited before it was ready"
        grpc_url = re.search(r"gRPC (\S+)", line).group(1)
        assert MODEL in SegmentationClient(grpc_url).served_models()
        servers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "tritonserver" in c.name()]
        assert len(servers) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "stopped" in proc.stderr.read()
        assert not psutil.pid_exists(servers[0].pid) or servers[0].status() == psutil.STATUS_ZOMBIE
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
