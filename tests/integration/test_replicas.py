"""seg-client over several real tritonservers: requests spread by load, a replica killed or hung
mid-run loses no image and answers none twice, a replica that comes up later joins."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import BIN, MODEL, run_cli

pytestmark = pytest.mark.integration
IMAGES = 48


@pytest.fixture(scope="module")
def many_images(tmp_path_factory) -> Path:
    import cv2

    from tests.fixtures.synthetic import make_scene

    folder = tmp_path_factory.mktemp("replica_images")
    rng = np.random.default_rng(11)
    for i in range(IMAGES):
        cv2.imwrite(str(folder / f"s{i:03d}.jpg"), make_scene(240 + 8 * (i % 5), 320, rng)[0])
    return folder


def _server(built_repository, tmp_path, ports=None):
    from serving.tritonserver import Ports, TritonServer

    return TritonServer(
        built_repository, ports=ports or Ports.free(), log_path=tmp_path / f"triton-{time.monotonic_ns()}.log"
    )


@pytest.fixture
def second_triton(built_repository, tmp_path):
    server = _server(built_repository, tmp_path)
    server.start(timeout_s=180)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reference(triton, many_images, tmp_path_factory) -> dict[str, dict]:
    """Every image's record from one server."""
    out = tmp_path_factory.mktemp("reference")
    run_cli("seg-client", "infer", "--source", str(many_images), "--model", MODEL, "--url", triton.grpc_url,
            "--out", str(out))  # fmt: skip
    return _records(out)


def _records(out: Path) -> dict[str, dict]:
    return {
        p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.name != "failures.json"
    }


def _same(records: dict[str, dict], reference: dict[str, dict]) -> None:
    assert sorted(records) == sorted(reference)
    for name, record in records.items():
        want = reference[name]
        assert [d["class_id"] for d in record["detections"]] == [d["class_id"] for d in want["detections"]]
        assert [d["segmentation"] for d in record["detections"]] == [
            d["segmentation"] for d in want["detections"]
        ]
        np.testing.assert_allclose(
            [d["bbox"] + [d["score"]] for d in record["detections"]],
            [d["bbox"] + [d["score"]] for d in want["detections"]],
            atol=1e-3,
        )


def _answers(output: str) -> dict[str, int]:
    line = next(x for x in output.splitlines() if x.startswith("answers per replica: "))
    found = re.findall(r"(127\.0\.0\.1:\d+) (\d+)", line.split(";")[0])
    return {url: int(n) for url, n in found}


def _infer_while(urls: list[str], source: Path, out: Path, when_done: int, action, *extra: str) -> str:
    """Run seg-client infer over ``urls``; once ``when_done`` records exist, call ``action``."""
    process = subprocess.Popen(
        [str(BIN / "seg-client"), "infer", "--source", str(source), "--model", MODEL, "--out", str(out),
         "--url", ",".join(urls), "-j", "4", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ},
    )  # fmt: skip
    acted = False
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if not acted and len(list(out.glob("*.json"))) >= when_done:
            action()
            acted = True
        time.sleep(0.05)
    output, _ = process.communicate(timeout=60)
    assert acted, f"the run ended before {when_done} records were written:\n{output}"
    assert process.returncode == 0, output
    return output


def test_killed_replica_loses_nothing_and_answers_nothing_twice(
    triton, second_triton, many_images, reference, tmp_path
):
    out = tmp_path / "out"
    pid = second_triton.process.pid
    output = _infer_while(
        [triton.grpc_url, second_triton.grpc_url],
        many_images,
        out,
        IMAGES // 4,
        lambda: os.killpg(pid, signal.SIGKILL),
    )
    answers = _answers(output)
    assert sum(answers.values()) == IMAGES, output  # each image answered once, by one replica
    assert answers[second_triton.grpc_url] > 0 and answers[triton.grpc_url] > answers[second_triton.grpc_url]
    assert f"replica {second_triton.grpc_url}" in output and "taken out" in output
    assert f"{IMAGES} written, 0 skipped (done before), 0 failed" in output
    _same(_records(out), reference)


def test_hung_replica_times_out_and_its_requests_go_elsewhere(
    triton, second_triton, many_images, reference, tmp_path
):
    """SIGSTOP: the replica holds its connections open and answers nothing, health checks included."""
    out = tmp_path / "out"
    pid = second_triton.process.pid
    try:
        output = _infer_while(
            [triton.grpc_url, second_triton.grpc_url], many_images, out, IMAGES // 4,
            lambda: os.killpg(pid, signal.SIGSTOP), "--timeout", "3",
        )  # fmt: skip
    finally:
        os.killpg(pid, signal.SIGCONT)
    answers = _answers(output)
    assert sum(answers.values()) == IMAGES, output
    assert "sent again to another replica" in output and "taken out" in output, output
    _same(_records(out), reference)


def test_a_replica_that_starts_later_joins_and_one_restarted_is_readmitted(
    triton, built_repository, many_images, tmp_path
):
    from clients.triton.replicas import ReplicaSet
    from serving.tritonserver import Ports

    ports = Ports.free()
    late = _server(built_repository, tmp_path, ports)
    events: list[str] = []
    replicas = ReplicaSet(
        [triton.grpc_url, late.grpc_url], timeout_s=30, check_every_s=0.5, on_event=events.append
    )
    data = (many_images / "s000.jpg").read_bytes()
    stop = threading.Event()
    failures: list[Exception] = []

    def keep_asking():
        while not stop.is_set():
            try:
                replicas.infer_instances(MODEL, data)
            except Exception as exc:  # what the caller would see: none, the first replica serves all
                failures.append(exc)
                return

    askers = [threading.Thread(target=keep_asking) for _ in range(3)]
    try:
        assert any(f"replica {late.grpc_url}" in e and "joins when it is ready" in e for e in events), events
        replicas.model_info(MODEL)
        for asker in askers:
            asker.start()
        answered = replicas.requests_per_replica
        late.start(timeout_s=180)  # comes up after the run started
        _wait(lambda: answered()[late.grpc_url] > 0, 60, events)
        assert sum("re-admitted" in e for e in events) == 1, events
        os.killpg(late.process.pid, signal.SIGKILL)
        late.stop()
        _wait(lambda: any("taken out" in e for e in events), 30, events)
        before = answered()[late.grpc_url]
        restarted = _server(built_repository, tmp_path, ports)  # the same address, a new process
        restarted.start(timeout_s=180)
        _wait(lambda: answered()[late.grpc_url] > before, 60, events)
        assert sum("re-admitted" in e for e in events) == 2, events
        restarted.stop()  # a graceful stop: it unloads the model (NOT_FOUND) before it goes
        _wait(lambda: sum("taken out" in e for e in events) >= 2, 30, events)
        settled = sum(answered().values())
        _wait(lambda: bool(failures) or sum(answered().values()) > settled + 5, 60, events)
        assert not failures, [str(e) for e in failures]
    finally:
        stop.set()
        for asker in askers:
            if asker.is_alive():
                asker.join(timeout=60)
        replicas.close()
        late.stop()


def test_a_model_no_replica_serves_is_the_callers_error_not_an_outage(triton, second_triton, many_images):
    """NOT_FOUND sends a request elsewhere only for a model the replicas were found serving."""
    from tritonclient.utils import InferenceServerException

    from clients.triton.replicas import ReplicaSet

    events: list[str] = []
    replicas = ReplicaSet([triton.grpc_url, second_triton.grpc_url], timeout_s=30, on_event=events.append)
    data = (many_images / "s000.jpg").read_bytes()
    try:
        replicas.model_info(MODEL)
        with pytest.raises(InferenceServerException) as caught:
            replicas.infer_instances("no-such-model", data)
        assert caught.value.status() == "StatusCode.NOT_FOUND"
        for _ in range(4):
            replicas.infer_instances(MODEL, data)
        assert not any("taken out" in e for e in events), events
        assert all(n > 0 for n in replicas.requests_per_replica().values())  # both still in
    finally:
        replicas.close()


def _wait(condition, seconds: float, events: list[str]) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, events
        time.sleep(0.1)


def test_replicas_serving_different_builds_are_refused(triton, tmp_path, many_images):
    """A rollout half done: the same model name, other weights."""
    from tests.fixtures.random_checkpoints import make_random_yolo_seg

    other = make_random_yolo_seg(tmp_path / "other.pt", seed=1)
    repo = tmp_path / "repo"
    run_cli("build-repo", "--model", MODEL, "--weights", str(other), "--output", str(repo),
            "--runtime", "python-onnx", "--quiet")  # fmt: skip
    server = _server(repo, tmp_path)
    server.start(timeout_s=180)
    try:
        result = run_cli("seg-client", "infer", "--source", str(many_images), "--model", MODEL,
                         "--url", f"{triton.grpc_url},{server.grpc_url}", check=False)  # fmt: skip
    finally:
        server.stop()
    assert result.returncode == 2
    assert "replicas serve different builds of 'yolov8n-seg'" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_replica_ready_is_one_line():
    from tests.conftest import free_port_url

    result = run_cli("seg-client", "infer", "--source", ".", "--model", MODEL,
                     "--url", free_port_url(), "--url", free_port_url(), check=False)  # fmt: skip
    assert result.returncode == 2
    assert "no Triton replica is ready" in result.stderr and "Traceback" not in result.stderr


def test_a_dns_name_spreads_over_what_it_resolves_to(triton, many_images, reference, tmp_path):
    """``--url dns:///localhost:PORT`` as a headless Service's name would be given, resolved for real."""
    port = triton.grpc_url.rpartition(":")[2]
    out = tmp_path / "out"
    result = run_cli("seg-client", "infer", "--source", str(many_images), "--model", MODEL,
                     "--url", f"dns:///localhost:{port}", "--out", str(out))  # fmt: skip
    assert _answers(result.stdout + result.stderr) == {triton.grpc_url: IMAGES}
    _same(_records(out), reference)


def test_pods_that_dns_adds_join_and_pods_it_drops_are_taken_out(triton, second_triton, many_images):
    """A headless Service scaled up, then down: what its name resolves to changes under a run."""
    from clients.triton.replicas import ReplicaSet

    listed = [triton.grpc_url]
    events: list[str] = []
    replicas = ReplicaSet(["dns:///triton.test:8001"], timeout_s=30, check_every_s=0.3,
                          on_event=events.append, resolver=lambda name: list(listed),
                          resolve_every_s=0.3)  # fmt: skip
    data = (many_images / "s000.jpg").read_bytes()
    stop = threading.Event()
    answers: list[int] = []

    def keep_asking():
        while not stop.is_set():
            answers.append(len(replicas.infer_instances(MODEL, data).boxes))

    askers = [threading.Thread(target=keep_asking) for _ in range(3)]
    try:
        replicas.model_info(MODEL)
        for asker in askers:
            asker.start()
        answered = replicas.requests_per_replica
        _wait(lambda: answered()[triton.grpc_url] > 5, 60, events)
        listed.append(second_triton.grpc_url)  # scaled up
        _wait(lambda: answered().get(second_triton.grpc_url, 0) > 5, 60, events)
        assert any(f"replica {second_triton.grpc_url} found by DNS" in e for e in events), events
        listed.remove(triton.grpc_url)  # scaled down
        _wait(lambda: any("is no longer listed by DNS" in e for e in events), 30, events)
        first = answered()[triton.grpc_url]
        _wait(lambda: answered()[second_triton.grpc_url] > first + 10, 60, events)
        assert answered()[triton.grpc_url] <= first + 3  # at most what was in flight when it went
    finally:
        stop.set()
        for asker in askers:
            asker.join(timeout=60)
        replicas.close()
    assert len(set(answers)) == 1 and len(answers) == sum(answered().values())
    assert "answers per replica" in replicas.summary()
