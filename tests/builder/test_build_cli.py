"""build-repo's user errors: one line, exit code 2, no traceback."""

import pytest
import torch

from builder.errors import BuildError
from builder.verify import Tolerance, check_onnx_against_torch
from tests.conftest import MODEL, run_cli


def _one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("build-repo: error: ")
    for fragment in fragments:
        assert fragment in lines[-1]


def test_missing_weights_file(tmp_path):
    proc = run_cli(
        "build-repo",
        "--model",
        MODEL,
        "--weights",
        str(tmp_path / "nope.pt"),
        "-o",
        str(tmp_path),
        check=False,
    )
    _one_line_error(proc, "nope.pt", "no such file")


def test_offline_without_weights_names_the_weights_option(tmp_path):
    proc = run_cli("build-repo", "--model", "yolov8x-seg", "-o", str(tmp_path / "r"), check=False)
    _one_line_error(proc, "yolov8x-seg.pt", "--weights")


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    proc = run_cli(
        "build-repo", "--model", MODEL, "--weights", str(bad), "-o", str(tmp_path / "r"), check=False
    )
    _one_line_error(proc, "bad.pt", "not a loadable")


def test_unknown_model_name(tmp_path):
    proc = run_cli("build-repo", "--model", "resnet50", "-o", str(tmp_path), check=False)
    _one_line_error(proc, "resnet50", "yolov8")


def test_imgsz_must_be_a_stride_multiple(tmp_path, yolo_checkpoint):
    proc = run_cli(
        "build-repo",
        "--model",
        MODEL,
        "--weights",
        str(yolo_checkpoint),
        "--imgsz",
        "300",
        "-o",
        str(tmp_path),
        check=False,
    )
    _one_line_error(proc, "--imgsz 300", "32")


def test_onnx_that_differs_from_pytorch_fails_with_the_max_abs_diff(tmp_path):
    torch.manual_seed(0)
    exported, other = torch.nn.Conv2d(3, 4, 3).eval(), torch.nn.Conv2d(3, 4, 3).eval()
    x = torch.rand(1, 3, 8, 8)
    path = tmp_path / "m.onnx"
    torch.onnx.export(exported, x, str(path), input_names=["images"], output_names=["out"], dynamo=False)
    check_onnx_against_torch(path, exported, [x.numpy()], ["out"])  # passes on its own model
    with pytest.raises(BuildError, match=r"out max abs diff \d"):
        check_onnx_against_torch(path, other, [x.numpy()], ["out"], Tolerance(1e-4, 1e-4))


@pytest.mark.parametrize(
    ("args", "fragments"), [(["--imgsz", "-64"], ["--imgsz"]), (["--name", "a/b"], ["--name"])]
)
def test_bad_option_values(tmp_path, yolo_checkpoint, args, fragments):
    proc = run_cli(
        "build-repo",
        "--model",
        MODEL,
        "--weights",
        str(yolo_checkpoint),
        "-o",
        str(tmp_path / "r"),
        *args,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert all(f in proc.stderr for f in fragments)


def test_output_that_is_a_file(tmp_path, yolo_checkpoint):
    (tmp_path / "taken").write_text("")
    proc = run_cli(
        "build-repo",
        "--model",
        MODEL,
        "--weights",
        str(yolo_checkpoint),
        "-o",
        str(tmp_path / "taken"),
        check=False,
    )
    _one_line_error(proc, "cannot write", "--output")
