"""seg-client against a server that hangs (SIGSTOP) or goes away mid-run, and Ctrl-C mid-request.

Each test starts its own tritonserver: a stopped or dying server must not be the session's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.tritonserver import TritonServer
from tests.conftest import BIN, MODEL, run_cli

TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def many_images(sample_images, tmp_path_factory) -> Path:
    """Enough images that a run is still going when the test interferes."""
    folder = tmp_path_factory.mktemp("many")
    scene = sample_images / "scene4.jpg"
    for i in range(300):
        shutil.copy(scene, folder / f"img{i:03d}.jpg")
    return folder


def _server(repository: Path, log: Path) -> TritonServer:
    return TritonServer(repository, log_path=log).start(timeout_s=180)


@pytest.fixture(scope="module")
def own_server(built_repository, tmp_path_factory) -> Iterator[TritonServer]:
    server = _server(built_repository, tmp_path_factory.mktemp("logs") / "tritonserver.log")
    yield server
    os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


def _start_client(images: Path, out: Path, url: str, *extra: str) -> subprocess.Popen:
    cmd = [str(BIN / "seg-client"), "infer", "--source", str(images), "--model", MODEL, "--url", url]
    return subprocess.Popen(
        [*cmd, "--out", str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_results(out: Path, count: int, client: subprocess.Popen, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while len(list(out.glob("*.json"))) < count:
        assert client.poll() is None, client.communicate()
        assert time.monotonic() < deadline, "seg-client wrote no results"
        time.sleep(0.05)


def _finish(client: subprocess.Popen, within_s: float) -> tuple[float, str, str]:
    """(seconds until it exited, stdout, stderr); a client still running is killed by PID."""
    start = time.monotonic()
    try:
        stdout, stderr = client.communicate(timeout=within_s)
    except subprocess.TimeoutExpired:
        client.kill()
        stdout, stderr = client.communicate()
        pytest.fail(f"seg-client still running {within_s} s later:\n{stderr[-2000:]}")
    return time.monotonic() - start, stdout, stderr


def _results(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in out.glob("*.json") if p.name != "failures.json"}


def test_a_hung_server_ends_the_run_within_two_timeouts_and_a_rerun_resumes(
    own_server, many_images, tmp_path
):
    client = _start_client(many_images, tmp_path, own_server.grpc_url, "--timeout", str(TIMEOUT_S), "-j", "4")
    try:
        _wait_for_results(tmp_path, 3, client)
        os.kill(own_server.process.pid, signal.SIGSTOP)
        elapsed, _, stderr = _finish(client, within_s=4 * TIMEOUT_S + 10)
    finally:
        os.kill(own_server.process.pid, signal.SIGCONT)
    assert elapsed <= 2 * TIMEOUT_S + 2, f"{elapsed:.1f} s to notice a hung server"
    assert client.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith(f"seg-client: error: Triton at {own_server.grpc_url} stopped answering")
    assert "a re-run resumes" in lines[-1]
    assert "failed:" not in stderr and "Traceback" not in stderr
    assert not (tmp_path / "failures.json").exists()  # the images were not at fault
    done = _results(tmp_path)  # what finished stays, each file whole
    assert 3 <= len(done) < 300 and all(r["detections"] is not None for r in done.values())

    args = ["--source", str(many_images), "--model", MODEL, "--url", own_server.grpc_url]
    rerun = run_cli("seg-client", "infer", *args, "--out", str(tmp_path))
    assert f"{300 - len(done)} written, {len(done)} skipped" in rerun.stdout
    assert not list(tmp_path.glob(".*"))


def test_ctrl_c_ends_the_run_within_two_seconds_with_requests_in_flight(own_server, many_images, tmp_path):
    client = _start_client(many_images, tmp_path, own_server.grpc_url, "-j", "4")  # default --timeout
    try:
        _wait_for_results(tmp_path, 3, client)
        os.kill(own_server.process.pid, signal.SIGSTOP)
        time.sleep(1)  # the requests sent since are stuck in the stopped server
        client.send_signal(signal.SIGINT)
        elapsed, _, stderr = _finish(client, within_s=10)
    finally:
        os.kill(own_server.process.pid, signal.SIGCONT)
    assert elapsed <= 2, f"{elapsed:.1f} s from Ctrl-C to exit"
    assert client.returncode == 130
    assert stderr.strip().splitlines()[-1] == (
        "seg-client: interrupted; finished images are saved, a re-run resumes"
    )
    assert "Traceback" not in stderr
    assert len(_results(tmp_path)) >= 3


def test_a_server_going_away_is_one_line_not_one_per_image(built_repository, many_images, tmp_path):
    server = _server(built_repository, tmp_path / "tritonserver.log")
    out = tmp_path / "out"
    try:
        client = _start_client(many_images, out, server.grpc_url, "-j", "4")  # default --timeout
        _wait_for_results(out, 3, client)
        server.process.send_signal(signal.SIGTERM)
        elapsed, _, stderr = _finish(client, within_s=4 * TIMEOUT_S + 10)
    finally:
        server.stop()
    assert client.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith(f"seg-client: error: Triton at {server.grpc_url} ")
    assert "a re-run resumes" in lines[-1]
    assert stderr.count("failed:") == 0, stderr
    assert elapsed <= 2 * TIMEOUT_S + 2


def test_bench_against_a_hung_server_ends_within_two_timeouts(own_server, sample_images, tmp_path):
    cmd = [str(BIN / "seg-client"), "bench", "--model", MODEL, "--url", own_server.grpc_url]
    bench = subprocess.Popen(
        [*cmd, "--images", str(sample_images), "--timeout", str(TIMEOUT_S), "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)  # perf_analyzer is measuring
        assert bench.poll() is None, bench.communicate()
        os.kill(own_server.process.pid, signal.SIGSTOP)
        elapsed, _, stderr = _finish(bench, within_s=4 * TIMEOUT_S + 10)
    finally:
        os.kill(own_server.process.pid, signal.SIGCONT)
    assert elapsed <= 2 * TIMEOUT_S + 2
    assert bench.returncode == 2, stderr
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith(f"seg-client: error: Triton at {own_server.grpc_url} stopped answering")
    )
