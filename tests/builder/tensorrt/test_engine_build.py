"""Real engine builds: run where TensorRT imports and a GPU is visible (the build image in docker/),
skipped with the reason everywhere else. Never replaced by a stand-in: an engine result is either
built by TensorRT or not claimed."""

import json
import shutil
from pathlib import Path

import pytest

from segcontract.engines import RECORD_FILE, local_gpus
from tests.conftest import MODEL, run_cli
from tests.schema_check import validate

tensorrt = pytest.importorskip(
    "tensorrt",
    reason="TensorRT does not import here (PyPI has no installable TensorRT for this machine); "
    "these tests run in the build image: docker compose run --rm -w /opt/segstack --entrypoint pytest build "
    "tests/builder/tensorrt",
)
pytestmark = pytest.mark.skipif(not local_gpus(), reason="no NVIDIA GPU visible (nvidia-smi)")


def _build(tmp_path: Path, *args: str) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    proc = run_cli(
        "build-repo",
        *args,
        "--runtime",
        "tensorrt",
        "-o",
        str(repo),
        "--timing-cache",
        str(tmp_path / "timing.cache"),
        "--name",
        "seg",
        timeout=1800,
    )
    return repo, proc.stderr


def _check_model_folder(repo: Path, precision: str, max_batch: int) -> dict:
    from builder.triton_config import parse

    folder = repo / "seg_model"
    assert (folder / "1" / "model.plan").stat().st_size > 0
    record = json.loads((folder / RECORD_FILE).read_text())
    validate(record, "engine_record")
    assert record["tensorrt_version"] == tensorrt.__version__
    assert record["gpu"]["name"] == local_gpus()[0].name
    assert (record["precision"], record["max_batch"]) == (precision, max_batch)
    config = parse((folder / "config.pbtxt").read_text())
    assert config.platform == "tensorrt_plan" and config.max_batch_size == max_batch
    assert config.parameters["tensorrt_version"].string_value == tensorrt.__version__
    return record


def test_fp16_engine_passes_the_comparator(tmp_path, yolo_checkpoint):
    repo, log = _build(
        tmp_path, "--model", MODEL, "--weights", str(yolo_checkpoint), "--fp16", "--max-batch", "4"
    )
    _check_model_folder(repo, "fp16", 4)
    assert "engine matches onnxruntime" in log
    assert (tmp_path / "timing.cache").stat().st_size > 0  # written for the next build
    proc = run_cli("build-repo", "doctor", str(repo))
    assert "seg_model" in proc.stdout and ": OK" in proc.stdout


def test_int8_calibrates_on_images_and_keeps_the_cache(tmp_path, yolo_checkpoint, sample_images):
    repo, _ = _build(
        tmp_path,
        "--model",
        MODEL,
        "--weights",
        str(yolo_checkpoint),
        "--int8",
        "--images",
        str(sample_images),
        "--max-batch",
        "2",
    )
    _check_model_folder(repo, "int8", 2)
    assert (repo / "seg_model" / "calibration.cache").stat().st_size > 0


def test_smp_nhwc_engine(tmp_path):
    from tests.fixtures.random_checkpoints import make_random_smp

    weights = make_random_smp(tmp_path / "smp.pth")
    repo, _ = _build(tmp_path, "--model", "smp", "--weights", str(weights), "--nhwc", "--fp16")
    _check_model_folder(repo, "fp16", 8)


@pytest.mark.skipif(
    not (shutil.which("tritonserver") and Path("/opt/tritonserver/backends/tensorrt").is_dir()),
    reason="no tritonserver with a TensorRT backend here (the NGC serving image has one)",
)
def test_tritonserver_serves_the_engine(tmp_path, yolo_checkpoint, sample_images):
    from serving.tritonserver import TritonServer

    repo, _ = _build(tmp_path, "--model", MODEL, "--weights", str(yolo_checkpoint), "--fp16")
    with TritonServer(repo, log_path=tmp_path / "server.log") as server:
        run_cli(
            "seg-client",
            "infer",
            "--url",
            server.grpc_url,
            "--model",
            "seg",
            "--source",
            str(sample_images),
            "--out",
            str(tmp_path / "out"),
        )
    assert len(list((tmp_path / "out").glob("*.json"))) >= 8
