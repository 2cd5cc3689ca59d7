"""build-repo's TensorRT paths as a user meets them: no TensorRT here, the docker run line,
options that belong to another runtime, build-repo doctor, seg-serve's warning."""

import shlex

import pytest

from builder.tensorrt.docker_hint import docker_run_line
from builder.tensorrt.ngc import BUILD_IMAGE
from segcontract.engines import EngineRecord, GpuInfo
from tests.conftest import MODEL, run_cli
from tests.helpers import write_engine_model

try:
    import tensorrt  # noqa: F401

    HAVE_TENSORRT = True
except ImportError:
    HAVE_TENSORRT = False


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT imports here: the build runs instead of refusing")
def test_without_tensorrt_one_line_and_the_docker_run_line(tmp_path, yolo_checkpoint):
    out = tmp_path / "repo"
    args = [
        "--model",
        MODEL,
        "--weights",
        str(yolo_checkpoint),
        "--runtime",
        "tensorrt",
        "--fp16",
        "-o",
        str(out),
    ]
    proc = run_cli("build-repo", *args, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (error,) = proc.stderr.strip().splitlines()
    assert error.startswith("build-repo: error: --runtime tensorrt needs TensorRT")
    (line,) = proc.stdout.strip().splitlines()
    words = shlex.split(line)
    assert words[:3] == ["docker", "run", "--rm"] and "--gpus" in words
    assert words[words.index(BUILD_IMAGE) + 1 :] == args  # the user's own arguments, unchanged
    assert f"{yolo_checkpoint.parent}:{yolo_checkpoint.parent}" in words  # the weights are mounted
    assert not out.exists()


def test_docker_run_line_mounts_what_the_command_reads_and_writes(tmp_path):
    work, data, weights = tmp_path / "work", tmp_path / "data", tmp_path / "w" / "best.pt"
    for folder in (work, data, weights.parent):
        folder.mkdir()
    argv = ["--model", "yolov8x-seg", f"--weights={weights}", "--images", str(data), "-o", "repo", "--int8"]
    words = shlex.split(docker_run_line(argv, cwd=work, user="1000:1000"))
    mounts = [words[i + 1] for i, w in enumerate(words) if w == "-v"]
    assert mounts == [
        "segstack-trt-cache:/cache",
        f"{work}:{work}",
        f"{weights.parent}:{weights.parent}",
        f"{data}:{data}",
    ]  # "repo" is below the working directory: no mount of its own
    assert words[words.index("-w") + 1] == str(work)
    assert words[words.index("--user") + 1] == "1000:1000"


def test_engine_options_need_a_tensorrt_runtime():
    proc = run_cli("build-repo", "--model", MODEL, "--int8", "--min-batch", "2", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "build-repo: error: --int8, --min-batch: TensorRT options; use them with --runtime tensorrt "
        "(or --runtime onnx --onnx-tensorrt)"
    )


def test_onnx_tensorrt_is_an_option_of_the_onnx_runtime(tmp_path, yolo_checkpoint):
    proc = run_cli(
        "build-repo",
        "--model",
        MODEL,
        "--weights",
        str(yolo_checkpoint),
        "--onnx-tensorrt",
        "-o",
        str(tmp_path),
        check=False,
    )
    assert proc.returncode == 2 and "--onnx-tensorrt is an option of --runtime onnx" in proc.stderr


def test_onnx_tensorrt_has_no_int8(tmp_path):
    proc = run_cli(
        "build-repo", "--model", MODEL, "--runtime", "onnx", "--onnx-tensorrt", "--int8", check=False
    )
    assert proc.returncode == 2 and "--onnx-tensorrt runs fp32 or --fp16" in proc.stderr


def test_onnx_runtime_with_the_tensorrt_accelerator(tmp_path, yolo_checkpoint):
    from builder.triton_config import parse

    run_cli(
        "build-repo",
        "--model",
        MODEL,
        "--weights",
        str(yolo_checkpoint),
        "--runtime",
        "onnx",
        "--onnx-tensorrt",
        "--fp16",
        "--max-batch",
        "4",
        "-o",
        str(tmp_path),
        "--name",
        "seg",
        "-q",
    )
    config = parse((tmp_path / "seg_model" / "config.pbtxt").read_text())
    (acc,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert (acc.name, acc.parameters["precision_mode"]) == ("tensorrt", "FP16")
    assert acc.parameters["trt_profile_max_shapes"] == "images:4x3x320x320"
    assert config.max_batch_size == 4 and (tmp_path / "seg_model" / "1" / "model.onnx").is_file()


def test_doctor_reports_a_mismatch_and_exits_1(tmp_path):
    record = EngineRecord("10.5.0.18", GpuInfo("NVIDIA H100 80GB HBM3", "9.0"), "fp16", 1, 8, 8)
    write_engine_model(tmp_path, "seg_model", record)
    proc = run_cli("build-repo", "doctor", str(tmp_path), "--tensorrt-version", "10.6.0", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "seg_model: fp16 engine, TensorRT 10.5.0.18, NVIDIA H100 80GB HBM3 (9.0)" in proc.stdout
    assert "will not load here" in proc.stdout
    assert "this server has 10.6.0" in proc.stdout


def test_doctor_on_a_repository_without_engines(built_repository):
    proc = run_cli("build-repo", "doctor", str(built_repository))
    assert "no TensorRT engines" in proc.stdout


@pytest.mark.integration
def test_seg_serve_warns_before_tritonserver_fails_on_a_plan(tmp_path):
    write_engine_model(tmp_path)
    proc = run_cli(
        "seg-serve",
        "--model-repository",
        str(tmp_path),
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--metrics-port",
        "0",
        "--startup-timeout",
        "60",
        "--log-file",
        str(tmp_path / "log"),
        check=False,
        timeout=120,
    )
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("seg-serve: warning:")]
    assert any("no TensorRT backend" in w for w in warnings), proc.stderr
    assert proc.returncode == 1  # the pytriton tritonserver cannot load the plan: it stops, seg-serve says so
