"""A model stuck on a healthy server: its execute() never returns, the server answers its health
checks (ready). seg-client infer's --timeout bounds each request, and the run ends.

The served models are tiny Python-backend models written here, with the record build-repo writes
(so seg-client takes them for an instance model and a classifier), on a real tritonserver on free
loopback ports. The stuck classifier also serves a run that must end before asking it
(infer --segments of badlisted images).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from builder import triton_config
from clients.triton.client import SegmentationClient
from segcontract import tasks
from segcontract.model_metadata import InputSpec, ModelMetadata, Thresholds
from segcontract.tasks import Task
from serving.tritonserver import TritonServer
from store.records import Status
from store.segment_store import ImageFacts, NewSegment, SegmentStore
from tests.conftest import BIN

MODEL = "stuck"
CLASSIFIER = "stuck-classifier"
TIMEOUT_S = 2
STUCK_MODEL_PY = '''"""Never answers: execute() sleeps far longer than any client waits."""
import time


class TritonPythonModel:
    def execute(self, requests):
        time.sleep(3600)
        return [None for _ in requests]
'''


def write_stuck_model(repository: Path, name: str, task: Task) -> None:
    """A Python-backend model of ``task`` that never answers, with build-repo's model record."""
    metadata = ModelMetadata(
        family="yolov8-seg" if task is Task.INSTANCE else "classifier",
        task=task,
        class_names=["thing"],
        input=InputSpec(64, 64),
        thresholds=Thresholds(0.25, 0.45, 10) if task is Task.INSTANCE else None,
    )
    settings = triton_config.ModelSettings(
        name,
        tasks.ensemble_inputs(task),
        tasks.ensemble_outputs(task, 1),
        max_batch_size=4,
        parameters=metadata.to_parameters(),
    )
    folder = repository / name
    (folder / "1").mkdir(parents=True)
    triton_config.write(triton_config.python_model_config(settings), folder)
    (folder / "1" / "model.py").write_text(STUCK_MODEL_PY)


@pytest.fixture(scope="module")
def stuck_server(tmp_path_factory) -> Iterator[TritonServer]:
    """MODEL (instance segmentation) and CLASSIFIER, both stuck, on a server that is ready."""
    repository = tmp_path_factory.mktemp("stuck-repository")
    write_stuck_model(repository, MODEL, Task.INSTANCE)
    write_stuck_model(repository, CLASSIFIER, Task.CLASSIFICATION)
    log = tmp_path_factory.mktemp("stuck-logs") / "tritonserver.log"
    server = TritonServer(repository, log_path=log).start(timeout_s=180)
    yield server
    server.stop(timeout_s=5)  # its stubs are asleep in execute(): not worth waiting for


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stuck-images")
    rng = np.random.default_rng(0)
    for i in range(12):
        cv2.imwrite(str(folder / f"img{i:02d}.png"), rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    return folder


def _infer(
    server: TritonServer, source: Path, out: Path, *extra: str
) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [
        str(BIN / "seg-client"), "infer", "--source", str(source), "--model", MODEL,
        "--url", server.grpc_url, "--out", str(out), "--timeout", str(TIMEOUT_S), *extra,
    ]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return time.monotonic() - start, proc


def _timeout_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("seg-client: failed: ")]


def test_a_stuck_model_ends_the_run_within_about_two_timeouts(stuck_server, images, tmp_path):
    elapsed, proc = _infer(stuck_server, images, tmp_path, "-j", "4")
    assert SegmentationClient(stuck_server.grpc_url).health_problem() is None  # ready all along
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed <= 2 * TIMEOUT_S + 8, f"{elapsed:.1f} s to give up on a stuck model"
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(
        f"seg-client: error: Triton at {stuck_server.grpc_url} answers health checks, but "
    ), proc.stderr
    assert f"got no reply within {TIMEOUT_S} s: its model seems stuck" in lines[-1]
    assert "a re-run resumes" in lines[-1]
    failed = _timeout_lines(proc.stderr)
    assert failed and all(line.endswith(f": no reply within {TIMEOUT_S} s (--timeout)") for line in failed)
    assert not list(tmp_path.glob("img*.json"))  # nothing answered, nothing written


def test_one_image_on_a_stuck_model_fails_alone_with_one_timeout_line(stuck_server, images, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    (one / "img.png").write_bytes((images / "img00.png").read_bytes())
    elapsed, proc = _infer(stuck_server, one, tmp_path / "out")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed <= TIMEOUT_S + 8, f"{elapsed:.1f} s for one request of --timeout {TIMEOUT_S}"
    assert _timeout_lines(proc.stderr) == [
        f"seg-client: failed: {one / 'img.png'}: no reply within {TIMEOUT_S} s (--timeout)"
    ]
    assert "0 written, 0 skipped (done before), 1 failed" in proc.stdout


def test_infer_segments_of_images_all_badlisted_says_so_before_asking_the_model(
    stuck_server, images, tmp_path
):
    """infer --segments sends only the stored segments of images not badlisted: none left is an
    error naming the badlist, not "0 written" (the stuck classifier is never asked). The store
    also holds an image of another folder, not badlisted."""
    source = tmp_path / "two"
    source.mkdir()
    for name in ("img00.png", "img01.png"):
        (source / name).write_bytes((images / name).read_bytes())
    db = f"sqlite:///{tmp_path / 'segments.db'}"
    with SegmentStore.open(db) as store:
        for i, path in enumerate([source / "img00.png", source / "img01.png", images / "img02.png"]):
            facts = ImageFacts(path.as_posix(), f"{i}" * 64, 10, 56, 40)
            segment = NewSegment(0, "thing", 0.9, (0, 0, 8, 8), "abc")
            store.save_segmentation(facts, MODEL, "v1", [segment], status=Status.APPROVED)
        store.push_badlist(["img00", "img01"])
    cmd = [
        str(BIN / "seg-client"), "infer", "--segments", "--source", str(source), "--model", CLASSIFIER,
        "--url", stuck_server.grpc_url, "--db", db, "--out", str(tmp_path / "out"), "--timeout", "2",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        f"seg-client: error: {source}: all 2 images are badlisted (`seg-client segments badlist push` "
        "put them on the segment store's badlist); no segments to classify"
    )
