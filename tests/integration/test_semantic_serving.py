"""build-repo --model smp: what the build writes and refuses. The served parity with the PyTorch
model is tests/families/test_smp.py."""

import pytest

from builder import triton_config
from tests.conftest import run_cli
from tests.fixtures.random_checkpoints import make_random_smp


@pytest.fixture(scope="module")
def semantic_checkpoint(tmp_path_factory):
    return make_random_smp(tmp_path_factory.mktemp("smp") / "shapes.pth")


def test_nhwc_input_named_input_1_for_the_seeds_trtexec_commands(semantic_checkpoint, tmp_path):
    run_cli(
        "build-repo",
        "--model",
        "smp",
        "--weights",
        str(semantic_checkpoint),
        "--output",
        str(tmp_path),
        "--nhwc",
        "--runtime",
        "onnx",
        "--quiet",
    )
    config = triton_config.parse((tmp_path / "smp_model" / "config.pbtxt").read_text())
    assert config.input[0].name == "input_1" and list(config.input[0].dims) == [96, 128, 3]
    assert list(config.output[0].dims) == [4, 96, 128]
    pre = triton_config.parse((tmp_path / "smp_preprocess" / "config.pbtxt").read_text())
    assert (
        pre.parameters["layout"].string_value == "HWC"
        and pre.parameters["output_name"].string_value == "input_1"
    )


def test_more_than_256_classes_give_a_uint16_mask(tmp_path):
    ckpt = make_random_smp(tmp_path / "many.pth", num_classes=300, size=(64, 64))
    run_cli(
        "build-repo", "--model", "smp", "--weights", str(ckpt), "--output", str(tmp_path / "r"), "--quiet"
    )
    config = triton_config.parse((tmp_path / "r" / "smp" / "config.pbtxt").read_text())
    mask = next(o for o in config.output if o.name == "mask")
    assert triton_config.mc.DataType.Name(mask.data_type) == "TYPE_UINT16"


@pytest.mark.parametrize(
    ("size", "hint"), [(["1280", "650"], "--size 1280 640"), (["100", "96"], "--size 96 96")]
)
def test_size_not_divisible_by_the_encoder_stride_is_refused(semantic_checkpoint, tmp_path, size, hint):
    proc = run_cli(
        "build-repo",
        "--model",
        "smp",
        "--weights",
        str(semantic_checkpoint),
        "--output",
        str(tmp_path),
        "--size",
        *size,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "not divisible by 32" in last and hint in last
    assert not any(tmp_path.iterdir())


def test_smp_without_weights_or_with_a_yolo_checkpoint(yolo_checkpoint, tmp_path):
    proc = run_cli("build-repo", "--model", "smp", "--output", str(tmp_path), check=False)
    assert proc.returncode == 2 and "--model smp needs --weights" in proc.stderr
    proc = run_cli(
        "build-repo",
        "--model",
        "smp",
        "--weights",
        str(yolo_checkpoint),
        "--output",
        str(tmp_path),
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "not a" in proc.stderr.strip().splitlines()[-1]
