"""seg-serve prints its endpoints once its own server is ready, and leaves nothing behind however
it, or its tritonserver, ends."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from clients.triton.client import SegmentationClient
from tests.conftest import BIN, MODEL
from tests.helpers import (
    PYTHON_BACKEND_STUB,
    SEG_SERVE_READY,
    SHM,
    seg_serve_cleanup,
    wait_seg_serve_ready,
)


def _serve(repository: Path, http: int = 0, grpc: int = 0, metrics: int = 0) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(BIN / "seg-serve"),
            "--model-repository",
            str(repository),
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
            "--log-file",
            str(repository.parent / "serve.log"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )


def _tree(proc: subprocess.Popen) -> tuple[psutil.Process, list[psutil.Process]]:
    """seg-serve's tritonserver and that server's Python-backend stubs."""
    (server,) = [c for c in psutil.Process(proc.pid).children() if c.name() == "tritonserver"]
    stubs = [c for c in server.children() if Path(c.cmdline()[0]).name == PYTHON_BACKEND_STUB]
    assert stubs, "the built repository runs Python-backend models"
    return server, stubs


def _regions(stubs: list[psutil.Process]) -> list[Path]:
    """The /dev/shm regions these stubs share with their server (third word of their command)."""
    regions = [SHM / stub.cmdline()[2] for stub in stubs]
    assert all(r.exists() for r in regions)
    return regions


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_running(p) for p in processes):
        time.sleep(0.1)
    return [p for p in processes if _running(p)]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_seg_serve_starts_announces_and_stops_cleanly(built_repository):
    proc = _serve(built_repository)
    with seg_serve_cleanup(proc):
        line = wait_seg_serve_ready(proc)[-1]
        grpc_url = re.search(r"gRPC (\S+)", line).group(1)
        assert MODEL in SegmentationClient(grpc_url).served_models()
        server, stubs = _tree(proc)
        regions = _regions(stubs)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "stopped" in proc.stderr.read()
        assert not _wait_gone([server, *stubs], 5)
        assert not [r for r in regions if r.exists()]


def test_kill_9_of_seg_serve_takes_its_server_stubs_and_shared_memory(built_repository):
    proc = _serve(built_repository)
    with seg_serve_cleanup(proc) as remember:
        http = int(re.search(r"HTTP http://[\d.]+:(\d+)", wait_seg_serve_ready(proc)[-1]).group(1))
        remember()
        server, stubs = _tree(proc)
        regions = _regions(stubs)
        proc.kill()
        proc.wait()
        assert not _wait_gone([server], 5), "tritonserver outlived seg-serve"
        assert not _wait_gone(stubs, 5), "Python-backend stubs outlived their server"
        assert not [r for r in regions if r.exists()]
        assert _port_free(http)


def test_kill_9_of_tritonserver_with_a_stuck_stub_is_cleaned_on_stop(built_repository):
    """A stub that is busy (here: stopped) when its server dies does not notice: seg-serve kills it."""
    proc = _serve(built_repository)
    with seg_serve_cleanup(proc) as remember:
        wait_seg_serve_ready(proc)
        remember()
        server, stubs = _tree(proc)
        regions = _regions(stubs)
        stubs[0].suspend()
        server.kill()
        assert proc.wait(30) == 1
        assert "tritonserver exited unexpectedly" in proc.stderr.read()
        assert not _wait_gone(stubs, 5), "a stub of the dead server is still running"
        assert not [r for r in regions if r.exists()]


def test_next_start_removes_what_a_dead_server_left_and_spares_a_live_one(built_repository, triton):
    """Stubs stuck when their server died (seg-serve and tritonserver killed -9) and their regions
    are removed by the next seg-serve; the stubs and regions of a live server are not touched."""
    live_stubs = [
        c
        for c in psutil.Process(triton.process.pid).children()
        if c.cmdline()[0].endswith(PYTHON_BACKEND_STUB)
    ]
    live_regions = _regions(live_stubs)
    first = _serve(built_repository)
    with seg_serve_cleanup(first) as remember:
        ready = wait_seg_serve_ready(first)[-1]
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", ready)]
        remember()
        server, stubs = _tree(first)
        regions = _regions(stubs)
        for stub in stubs:
            stub.suspend()
        first.kill()
        first.wait()
        with contextlib.suppress(psutil.NoSuchProcess):
            server.kill()
        assert not _wait_gone([server], 10)
        assert all(_running(s) for s in stubs) and all(r.exists() for r in regions)

        grpc, http, metrics = ports
        second = _serve(built_repository, http=http, grpc=grpc, metrics=metrics)
        with seg_serve_cleanup(second):
            lines = wait_seg_serve_ready(second)
            assert not _wait_gone(stubs, 5), "stubs of the dead server are still running"
            assert not [r for r in regions if r.exists()]
            assert any("removed what dead servers left" in line for line in lines), lines
            assert all(_running(s) for s in live_stubs) and all(r.exists() for r in live_regions)
            assert triton.is_ready()
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_a_port_in_use_is_one_line_before_starting(built_repository, triton, kind):
    """The issue's orphan case: another live tritonserver on the port. seg-serve must not report
    that server's "ready" as its own."""
    port = getattr(triton.ports, kind)
    proc = _serve(built_repository, **{kind: port})
    with seg_serve_cleanup(proc) as remember:
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            remember()
            pytest.fail("seg-serve did not refuse the port")
        errors = [line for line in stderr.splitlines() if "removed what dead servers left" not in line]
        assert proc.returncode == 1
        assert len(errors) == 1, stderr
        assert f"port {port}" in errors[0] and f"--{kind}-port" in errors[0], errors[0]
        assert SEG_SERVE_READY not in stderr
        assert triton.is_ready()
