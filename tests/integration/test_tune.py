"""build-repo tune against real servers: it measures settings with seg-serve and perf_analyzer,
writes the winner into the configs, and the tuned repository serves the same answers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from builder.tune_settings import ServedModel, Setting
from tests.conftest import MODEL, run_cli

pytestmark = pytest.mark.integration


def test_tune_measures_writes_the_winner_and_the_answers_stay_the_same(built_repository, triton, tmp_path):
    import cv2

    from tests.fixtures.synthetic import make_scene

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(5)
    for i in range(6):
        cv2.imwrite(str(images / f"t{i}.jpg"), make_scene(240, 320, rng)[0])
    repo = tmp_path / "repo"
    shutil.copytree(built_repository, repo)
    result = run_cli("build-repo", "tune", str(repo), "--name", MODEL, "--images", str(images),
                     "--concurrency", "2", "--budget", "45")  # fmt: skip
    record = json.loads((repo / MODEL / "tune.json").read_text())
    measured = [t for t in record["trials"] if t["error"] is None]
    assert len(measured) >= 2 and all(t["throughput"] > 0 and t["p95_ms"] > 0 for t in measured)
    assert "(the repository's own)" in result.stdout or "**(chosen)**" in result.stdout
    assert (repo / MODEL / "tune.md").read_text() in result.stdout
    assert ServedModel.read(repo, MODEL).current() == Setting(**record["chosen"])
    assert record["applied"] and "restart the server" in result.stdout

    from serving.tritonserver import TritonServer

    out_tuned, out_reference = tmp_path / "tuned", tmp_path / "reference"
    with TritonServer(repo, log_path=tmp_path / "tuned.log") as tuned:
        run_cli("seg-client", "infer", "--source", str(images), "--model", MODEL, "--url", tuned.grpc_url,
                "--out", str(out_tuned))  # fmt: skip
    run_cli("seg-client", "infer", "--source", str(images), "--model", MODEL, "--url", triton.grpc_url,
            "--out", str(out_reference))  # fmt: skip
    for path in sorted(out_reference.glob("t*.json")):
        ours, theirs = (json.loads(p.read_text())["detections"] for p in (out_tuned / path.name, path))
        assert [d["segmentation"] for d in ours] == [d["segmentation"] for d in theirs]


def test_a_repository_tune_cannot_change_is_one_line(tmp_path):
    result = run_cli("build-repo", "tune", str(tmp_path), "--name", "nope", "--images", str(tmp_path),
                     check=False)  # fmt: skip
    assert result.returncode == 2 and "not a model build-repo wrote" in result.stderr
    assert "Traceback" not in result.stderr


def _scenes(folder, count, seed):
    import cv2

    from tests.fixtures.synthetic import make_scene

    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        cv2.imwrite(str(folder / f"t{i}.jpg"), make_scene(240, 320, rng)[0])
    return folder


def test_tune_tries_openvino_fp32_and_int8_and_reports_the_guards_refusal(built_repository, tmp_path):
    images, calibration = _scenes(tmp_path / "images", 4, 5), _scenes(tmp_path / "calibration", 10, 6)
    repo = tmp_path / "repo"
    shutil.copytree(built_repository, repo)
    result = run_cli("build-repo", "tune", str(repo), "--name", MODEL, "--images", str(images),
                     "--concurrency", "2", "--budget", "90", "--calibration-images", str(calibration),
                     "--dry-run")  # fmt: skip
    trials = {
        (t["runtime"], t["precision"]): t
        for t in json.loads((repo / MODEL / "tune.json").read_text())["trials"]
    }
    assert trials[("python-openvino", "fp32")]["error"] is None
    assert trials[("python-openvino", "fp32")]["throughput"] > 0
    # a random YOLO's INT8 moves its detections far: the guard refuses it, a failed trial
    refused = trials[("python-openvino", "int8")]["error"]
    assert refused.startswith("--int8") and "held-out" in refused
    assert "python-openvino INT8, instances 2" in result.stdout and f"failed: {refused}" in result.stdout
    assert ServedModel.read(repo, MODEL).current().runtime == "python-onnx"  # --dry-run


def test_an_int8_winner_is_installed_and_serves_the_same_top_1(tmp_path):
    """The files and configs tune writes for OpenVINO INT8, served by a real server (the search's
    choice is the machine's; here the result is set so that INT8 wins)."""
    from builder.quantization.options import Int8Options
    from builder.tune import Trial, TuneResult, save
    from builder.tune_runtimes import Networks
    from python_backend_models import model_source
    from serving.tritonserver import TritonServer
    from tests.helpers import (
        CLASSIFIER_NAME,
        build_classifier_repository,
        make_classifier_checkpoint,
        write_classifier_images,
    )

    repo = build_classifier_repository(make_classifier_checkpoint(tmp_path), tmp_path / "repo")
    (tmp_path / "images").mkdir()
    images = write_classifier_images(tmp_path / "images")
    calibration = _scenes(tmp_path / "calibration", 10, 6)
    served = ServedModel.read(repo, CLASSIFIER_NAME)
    reference = tmp_path / "reference"
    with TritonServer(repo, log_path=tmp_path / "reference.log") as server:
        run_cli("seg-client", "infer", "--source", str(images), "--model", CLASSIFIER_NAME, "--url",
                server.grpc_url, "--out", str(reference))  # fmt: skip
    start = served.current()
    int8 = start.but(runtime="python-openvino", precision="int8")
    networks = Networks(repo, served, images, tmp_path / "work", Int8Options(calibration))
    networks.files(int8.network)  # converted, checked, quantized and guarded: a random classifier passes
    result = TuneResult(Trial(start, 1.0), Trial(int8, 2.0), [], 2, False)
    save(repo, served, result, apply=True, networks=networks)
    assert ServedModel.read(repo, CLASSIFIER_NAME).current() == int8
    assert (repo / f"{CLASSIFIER_NAME}_model" / "quantization.json").is_file()
    network = repo / f"{CLASSIFIER_NAME}_model" / "1"
    assert (network / "model.py").read_text() == model_source("openvino_model").read_text()
    assert (network / "model.xml").is_file() and (network / "model.onnx").is_file()
    tuned = tmp_path / "tuned"
    with TritonServer(repo, log_path=tmp_path / "tuned.log") as server:
        run_cli("seg-client", "infer", "--source", str(images), "--model", CLASSIFIER_NAME, "--url",
                server.grpc_url, "--out", str(tuned))  # fmt: skip
    answers = sorted(reference.glob("*.json"))
    assert answers
    for path in answers:
        ours, theirs = (json.loads(p.read_text()) for p in (tuned / path.name, path))
        assert ours["classes"][0]["class_id"] == theirs["classes"][0]["class_id"], path.name
