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
