"""build-repo --runtime openvino and python-openvino, FP32 and --int8, through the real CLI: its
refusals (one line, before any slow work), what each runtime writes, the IR checked against
PyTorch, and an INT8 build with its accuracy guard's record. No tritonserver."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from builder import triton_config
from builder.quantization.guard import RECORD_FILE, GuardResult
from builder.runtimes import OpenVinoRuntime, PythonOpenVinoRuntime
from segcontract.errors import DEBUG_ENV
from segcontract.model_metadata import ModelMetadata
from segops.cpu_cores import threads_per_instance
from tests.conftest import MODEL, run_cli

IR_MATCHES = "OpenVINO IR matches PyTorch"
CLASSIFIER_IMGSZ = 64


@pytest.fixture(autouse=True)
def _no_debug_setting(monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def _params(config) -> dict[str, str]:
    return {k: v.string_value for k, v in config.parameters.items()}


def _config(repo: Path, name: str):
    return triton_config.parse((repo / name / "config.pbtxt").read_text())


def _record(repo: Path, name: str) -> ModelMetadata:
    return ModelMetadata.from_parameters(_params(_config(repo, name)))


def _build(repo: Path, model: str, weights: Path, *options: str, check: bool = True):
    return run_cli(
        "build-repo",
        "--model",
        model,
        "--weights",
        str(weights),
        "--output",
        str(repo),
        *options,
        check=check,
    )


def _one_line_error(proc, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("build-repo: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def calibration_images(tmp_path_factory) -> Path:
    """Ten small synthetic scenes: eight to calibrate on, two held out."""
    from tests.fixtures.synthetic import make_scene

    folder = tmp_path_factory.mktemp("calibration")
    rng = np.random.default_rng(3)
    for i in range(10):
        cv2.imwrite(str(folder / f"scene{i}.jpg"), make_scene(96, 128, rng)[0])
    return folder


@pytest.fixture(scope="module")
def classifier_checkpoint(tmp_path_factory) -> Path:
    from tests.fixtures.random_checkpoints import make_random_classifier

    return make_random_classifier(tmp_path_factory.mktemp("cls") / "cls.ckpt", imgsz=CLASSIFIER_IMGSZ)


# --- refusals, before anything is loaded ----------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["--runtime", "python-openvino", "--int8"],
            ["--int8 on --runtime python-openvino", "--calibration-images"],
        ),
        (["--runtime", "openvino", "--int8"], ["--int8 on --runtime openvino", "--calibration-images"]),
        (["--calibration-images", "{cal}"], ["--calibration-images", "options of --int8"]),
        (
            ["--runtime", "openvino", "--calibration-images", "{cal}"],
            ["--calibration-images", "options of --int8"],
        ),
        (["--runtime", "python-openvino", "--max-drop", "2"], ["--max-drop", "options of --int8"]),
        (["--runtime", "openvino", "--accept-drop"], ["--accept-drop", "options of --int8"]),
        (
            ["--runtime", "tensorrt", "--int8", "--images", "{cal}", "--calibration-images", "{cal}"],
            ["--calibration-images", "--runtime python-openvino, --runtime openvino"],
        ),
        (["--runtime", "python-onnx", "--int8", "--calibration-images", "{cal}"], ["--int8"]),
        (["--runtime", "python-openvino", "--fp16"], ["--fp16", "TensorRT options"]),
        (["--runtime", "openvino", "--fp16"], ["--fp16", "TensorRT options"]),
        (
            ["--runtime", "python-openvino", "--int8", "--calibration-images", "{missing}"],
            ["--calibration-images", "no such folder"],
        ),
    ],
)
def test_refused_before_any_work(tmp_path, yolo_checkpoint, calibration_images, args, fragments):
    given = [a.format(cal=calibration_images, missing=tmp_path / "missing") for a in args]
    proc = _build(tmp_path / "repo", MODEL, yolo_checkpoint, *given, check=False)
    line = _one_line_error(proc, *fragments)
    assert "loading" not in line
    assert not (tmp_path / "repo").exists()


def test_a_negative_max_drop_is_a_usage_error(tmp_path, yolo_checkpoint, calibration_images):
    proc = _build(
        tmp_path / "repo", MODEL, yolo_checkpoint, "--runtime", "openvino", "--int8",
        "--calibration-images", str(calibration_images), "--max-drop", "-1", check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--max-drop" in proc.stderr
    assert not (tmp_path / "repo").exists()


# --- the OpenVINO backend's threads -----------------------------------------------------------------
def test_openvino_thread_parameters():
    runtime = OpenVinoRuntime()
    # the backend fixes the batch at max_batch_size: without padding, smaller batches are refused
    fixed = {"NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY", "ENABLE_BATCH_PADDING": "YES"}
    assert runtime.thread_parameters(3, 2) == {**fixed, "INFERENCE_NUM_THREADS": 3}
    assert runtime.thread_parameters(None, 2) == {**fixed, "INFERENCE_NUM_THREADS": threads_per_instance(2)}
    assert runtime.thread_parameters(0, 2) == fixed  # 0: the backend's default
    python = PythonOpenVinoRuntime()
    assert python.thread_parameters(None, 2) == {}  # openvino_model.py shares out the cores
    assert python.thread_parameters(2, 2) == {"intra_op_threads": 2}
    assert OpenVinoRuntime.quantizes and PythonOpenVinoRuntime.quantizes


# --- --runtime openvino -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def openvino_build(tmp_path_factory, yolo_checkpoint):
    repo = tmp_path_factory.mktemp("openvino") / "repo"
    proc = _build(repo, MODEL, yolo_checkpoint, "--runtime", "openvino", "--threads", "3")
    return repo, proc


def test_openvino_writes_the_backends_model(openvino_build):
    repo, _ = openvino_build
    name = f"{MODEL}_model"
    config = _config(repo, name)
    assert config.backend == "openvino" and config.platform == ""
    assert config.default_model_filename == "model.xml"
    assert _params(config) == {
        "NUM_STREAMS": "1",
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_BATCH_PADDING": "YES",
        "INFERENCE_NUM_THREADS": "3",
    }
    assert all(group.kind == group.KIND_CPU for group in config.instance_group)
    files = sorted(p.relative_to(repo / name).as_posix() for p in (repo / name).rglob("*") if p.is_file())
    assert [f for f in files if not f.startswith(".")] == ["1/model.bin", "1/model.xml", "config.pbtxt"]
    assert not (repo / name / RECORD_FILE).exists()  # FP32


def test_the_openvino_ir_has_the_configs_tensors(openvino_build):
    import openvino as ov

    repo, _ = openvino_build
    config = _config(repo, f"{MODEL}_model")
    model = ov.Core().read_model(str(repo / f"{MODEL}_model" / "1" / "model.xml"))
    assert [p.get_any_name() for p in model.inputs] == [t.name for t in config.input]
    assert [p.get_any_name() for p in model.outputs] == [t.name for t in config.output]
    assert 'type="FakeQuantize"' not in (repo / f"{MODEL}_model" / "1" / "model.xml").read_text()


def test_openvino_keeps_the_ensemble(openvino_build):
    repo, _ = openvino_build
    assert sorted(p.name for p in repo.iterdir() if p.is_dir()) == sorted(
        [MODEL, f"{MODEL}_preprocess", f"{MODEL}_model", f"{MODEL}_postprocess"]
    )
    ensemble = _config(repo, MODEL)
    assert ensemble.platform == "ensemble"
    steps = [step.model_name for step in ensemble.ensemble_scheduling.step]
    assert f"{MODEL}_model" in steps
    record = _record(repo, MODEL)
    assert record.extra["network_runtime"] == "openvino"
    assert record.extra["precision"] == "fp32"
    assert not any(key.startswith("int8_") for key in record.extra)


def test_openvino_ir_is_checked_against_pytorch(openvino_build):
    _, proc = openvino_build
    output = proc.stdout + proc.stderr
    assert "ONNX matches PyTorch" in output
    assert IR_MATCHES in output
    assert output.index("converting to OpenVINO IR") < output.index(IR_MATCHES)


# --- --runtime python-openvino ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def python_openvino_build(tmp_path_factory, yolo_checkpoint):
    repo = tmp_path_factory.mktemp("python-openvino") / "repo"
    proc = _build(repo, MODEL, yolo_checkpoint, "--runtime", "python-openvino")
    return repo, proc


def test_python_openvino_folds_yolo_into_one_model(python_openvino_build):
    repo, proc = python_openvino_build
    assert [p.name for p in repo.iterdir() if p.is_dir()] == [MODEL]
    config = _config(repo, MODEL)
    assert config.backend == "python"
    params = _params(config)
    assert params["network_module"] == "openvino_model"
    assert "intra_op_threads" not in params  # no --threads: openvino_model.py shares out the cores
    version = repo / MODEL / "1"
    for name in ("model.py", "network_step.py", "openvino_model.py", "model.xml", "model.bin"):
        assert (version / name).is_file(), name
    assert not (version / "model.onnx").exists()
    assert not (repo / MODEL / RECORD_FILE).exists()
    assert IR_MATCHES in proc.stdout + proc.stderr


def test_python_openvino_records_fp32(python_openvino_build):
    repo, _ = python_openvino_build
    record = _record(repo, MODEL)
    assert record.extra["network_runtime"] == "python-openvino"
    assert record.extra["precision"] == "fp32"
    assert not any(key.startswith("int8_") for key in record.extra)


# --- --int8 ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def int8_build(tmp_path_factory, classifier_checkpoint, calibration_images):
    repo = tmp_path_factory.mktemp("int8") / "repo"
    proc = _build(
        repo, "classifier", classifier_checkpoint, "--name", "cls", "--runtime", "openvino",
        "--int8", "--calibration-images", str(calibration_images),
    )  # fmt: skip
    return repo, proc


def test_int8_writes_the_guards_record(int8_build):
    repo, proc = int8_build
    result = GuardResult.from_json((repo / "cls_model" / RECORD_FILE).read_text())
    assert json.loads((repo / "cls_model" / RECORD_FILE).read_text())["precision"] == "int8"
    assert (result.held_out_images, result.calibration_images) == (2, 8)
    assert result.metric.startswith("top-1 agreement")
    assert result.drop <= result.max_drop == 1.0 and not result.accepted_drop
    assert result.drop == pytest.approx(100.0 - result.score)
    output = proc.stdout + proc.stderr
    assert IR_MATCHES in output and "INT8: top-1 agreement" in output


def test_int8_quantizes_the_ir(int8_build):
    repo, _ = int8_build
    xml = repo / "cls_model" / "1" / "model.xml"
    assert 'type="FakeQuantize"' in xml.read_text()
    assert (repo / "cls_model" / "1" / "model.bin").is_file()
    assert _config(repo, "cls_model").backend == "openvino"


def test_int8_is_in_the_models_record(int8_build):
    repo, _ = int8_build
    result = GuardResult.from_json((repo / "cls_model" / RECORD_FILE).read_text())
    for served in ("cls", "cls_segment"):
        extra = _record(repo, served).extra
        assert extra["network_runtime"] == "openvino"
        assert {
            k: v for k, v in extra.items() if k == "precision" or k.startswith("int8_")
        } == result.record()


def test_doctor_shows_the_int8_drop(int8_build):
    repo, _ = int8_build
    proc = run_cli("build-repo", "doctor", str(repo))
    lines = proc.stdout.splitlines()
    result = GuardResult.from_json((repo / "cls_model" / RECORD_FILE).read_text())
    assert lines[0] == f"cls_model: INT8 by {result.method}: {result.describe()}"
    assert "no TensorRT engines" in lines[-1]


def test_int8_beyond_the_limit_is_refused_and_writes_nothing(tmp_path, calibration_images):
    """A random-weight smp network's class maps move well beyond 1 point of mIoU under INT8."""
    from tests.fixtures.random_checkpoints import make_random_smp

    weights = make_random_smp(tmp_path / "sem.pth", size=(64, 64))
    proc = _build(
        tmp_path / "repo", "smp", weights, "--runtime", "python-openvino", "--int8",
        "--calibration-images", str(calibration_images), "--quiet", check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("build-repo: error: --int8 refused: class-map mIoU against FP32")
    assert "beyond the limit 1" in last and "--accept-drop" in last
    assert not (tmp_path / "repo").exists()
    assert IR_MATCHES not in proc.stdout + proc.stderr  # --quiet: errors and the final line only
