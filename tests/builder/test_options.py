"""build-repo's option groups: each check raises its one-line error; each default comes from one place;
`build-repo doctor` is a subcommand of the same command; families, runtimes and writers share a registry."""

import subprocess
import sys
from pathlib import Path

import pytest

from builder.errors import BuildError
from builder.families import FAMILIES, BuildSettings, LoadRequest, resolve
from builder.options import (
    BatchingOptions,
    BuildOptions,
    ModelOptions,
    RuntimeOptions,
    make_runtime,
)
from builder.runtimes import RUNTIMES, OnnxRuntime, PythonOnnxRuntime, TensorRTRuntime
from builder.tensorrt.options import BatchProfile, EngineOptions, engine_tolerance
from segcontract.limits import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_MAX_PIXELS, MAX_DET_CEILING
from segcontract.registry import Registry
from tests.conftest import MODEL, run_cli


def _model(**kwargs) -> ModelOptions:
    return ModelOptions(LoadRequest(MODEL), **kwargs)


def test_preferred_batch_sizes_beyond_the_max_batch():
    with pytest.raises(BuildError) as info:
        BatchingOptions(max_batch_size=4, preferred_batch_sizes=(2, 8, 16))
    assert str(info.value) == "--preferred-batch-sizes [8, 16] exceed --max-batch-size 4"
    assert BatchingOptions(4, (2, 4)).dynamic_batching().preferred_batch_sizes == (2, 4)


def test_unknown_runtime():
    with pytest.raises(BuildError) as info:
        RuntimeOptions("tflite")
    assert str(info.value) == (
        "unknown runtime 'tflite'; choose one of python-onnx, python-openvino, openvino, onnx, tensorrt"
    )


def test_onnx_tensorrt_only_with_the_onnx_runtime():
    with pytest.raises(BuildError) as info:
        RuntimeOptions("tensorrt", onnx_tensorrt=True)
    assert str(info.value) == "--onnx-tensorrt is an option of --runtime onnx, not tensorrt"


@pytest.mark.parametrize(
    ("runtime", "builds_engine"),
    [
        (RuntimeOptions(), False),
        (RuntimeOptions("onnx"), False),
        (RuntimeOptions("tensorrt"), True),
        (RuntimeOptions("onnx", onnx_tensorrt=True), True),
    ],
)
def test_which_runtimes_build_an_engine(runtime, builds_engine):
    assert runtime.builds_engine is builds_engine


def test_engine_options_refused_by_a_runtime_without_an_engine():
    with pytest.raises(BuildError) as info:
        RuntimeOptions().refuse_engine_options(["--fp16", "--workspace"])
    assert str(info.value) == (
        "--fp16, --workspace: TensorRT options; use them with --runtime tensorrt "
        "(or --runtime onnx --onnx-tensorrt)"
    )
    with pytest.raises(BuildError, match="engine options apply to --runtime tensorrt"):
        RuntimeOptions("onnx").check_engine(EngineOptions("fp16"))
    RuntimeOptions("tensorrt").refuse_engine_options(["--fp16"])  # an engine runtime takes them


def test_onnx_tensorrt_has_no_int8():
    with pytest.raises(BuildError) as info:
        RuntimeOptions("onnx", onnx_tensorrt=True).check_precision("int8")
    assert str(info.value) == (
        "--onnx-tensorrt runs fp32 or --fp16; for int8 build a plan with --runtime tensorrt"
    )
    RuntimeOptions("tensorrt").check_precision("int8")


def test_runtimes_are_made_from_the_registry():
    assert isinstance(RuntimeOptions().make(), PythonOnnxRuntime)
    assert isinstance(make_runtime("tensorrt"), TensorRTRuntime)
    assert make_runtime("tensorrt").options == EngineOptions()
    onnx = RuntimeOptions("onnx", onnx_tensorrt=True).make()
    assert isinstance(onnx, OnnxRuntime) and onnx.accelerator == EngineOptions()


def test_an_engine_runtime_gets_a_profile_up_to_the_max_batch():
    options = BuildOptions(_model(), batching=BatchingOptions(4), runtime=RuntimeOptions("tensorrt"))
    assert options.engine.profile == BatchProfile(1, 4, 4)
    assert BuildOptions(_model()).engine is None


def test_the_engine_profile_must_end_at_the_max_batch():
    with pytest.raises(BuildError) as info:
        BuildOptions(
            _model(),
            batching=BatchingOptions(4),
            runtime=RuntimeOptions("tensorrt"),
            engine=EngineOptions(profile=BatchProfile(1, 8, 8)),
        )
    assert str(info.value) == "the engine's max batch 8 must be --max-batch-size 4"


def test_engine_options_with_python_onnx_are_refused():
    with pytest.raises(BuildError, match="apply to --runtime tensorrt"):
        BuildOptions(_model(), engine=EngineOptions("fp16"))


def test_the_served_name_is_checked_by_the_settings():
    assert BuildOptions(_model()).settings().name == MODEL
    assert BuildOptions(_model(name="roads")).settings().name == "roads"
    with pytest.raises(BuildError) as info:
        BuildOptions(_model(name="a/b")).settings()
    assert str(info.value) == "--name 'a/b': use letters, digits, '_', '-' and '.' (it is a folder name)"


def test_engine_tolerance_overrides_the_precisions_default():
    assert engine_tolerance("fp16", None, None) is None
    tolerance = engine_tolerance("fp16", 0.5, None)
    assert (tolerance.atol, tolerance.rtol, tolerance.stat) == (0.5, 2e-2, "mean")


def test_each_default_comes_from_the_limits():
    from builder.cli import main

    defaults = {p.name: p.default for p in main.params}
    assert (defaults["conf"], defaults["iou"], defaults["max_det"], defaults["max_pixels"]) == (
        DEFAULT_CONF,
        DEFAULT_IOU,
        DEFAULT_MAX_DET,
        DEFAULT_MAX_PIXELS,
    )
    assert next(p for p in main.params if p.name == "max_det").type.max == MAX_DET_CEILING
    settings, model = BuildSettings(name="x"), _model()
    for group in (settings, model):
        assert (group.conf, group.iou, group.max_det, group.max_pixels) == (
            DEFAULT_CONF,
            DEFAULT_IOU,
            DEFAULT_MAX_DET,
            DEFAULT_MAX_PIXELS,
        )
    assert settings.max_batch_size == BatchingOptions().max_batch_size == defaults["max_batch_size"]


def test_registry_lookup_order_and_duplicates():
    class Entry:
        def __init__(self, name):
            self.name = name

    registry: Registry[Entry] = Registry("thing", error=BuildError)
    first, second = registry.register(Entry("b")), registry.register(Entry("a"))
    assert list(registry) == ["b", "a"] and registry.lookup("a") is second and registry["b"] is first
    with pytest.raises(BuildError, match=r"^unknown thing 'c'; choose one of b, a$"):
        registry.lookup("c")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Entry("a"))


def test_families_runtimes_and_writers_share_the_registry():
    from clients.inference.writers import WRITERS, ClassificationWriter, InstanceWriter, SemanticWriter

    assert all(isinstance(r, Registry) for r in (FAMILIES, RUNTIMES, WRITERS))
    assert list(RUNTIMES) == ["python-onnx", "python-openvino", "openvino", "onnx", "tensorrt"]
    assert dict(WRITERS) == {
        "instance_segmentation": InstanceWriter,
        "semantic_segmentation": SemanticWriter,
        "classification": ClassificationWriter,
    }
    assert resolve(MODEL) is FAMILIES["yolov8-seg"] and resolve("smp") is FAMILIES["smp"]
    with pytest.raises(BuildError, match="matches no model family"):
        resolve("resnet50")


def test_help_explains_the_build_and_lists_doctor():
    out = run_cli("build-repo", "--help").stdout
    assert "--model" in out and "--max-batch-size" in out and "--fp16" in out
    assert "Commands:" in out and "doctor" in out
    doctor_help = run_cli("build-repo", "doctor", "--help").stdout
    assert doctor_help.startswith("Usage: build-repo doctor [OPTIONS] [REPOSITORY]")
    assert "--tensorrt-version" in doctor_help


def test_doctor_is_a_subcommand(tmp_path: Path):
    proc = run_cli("build-repo", "doctor", str(tmp_path))
    assert proc.stdout.strip() == f"{tmp_path}: no TensorRT engines (tensorrt_plan models); nothing to check"
    missing = run_cli("build-repo", "doctor", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_build_options_do_not_go_with_doctor(tmp_path: Path):
    proc = run_cli("build-repo", "--fp16", "--max-batch", "4", "doctor", str(tmp_path), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--max-batch-size, --fp16: build options" in proc.stderr


def test_a_build_still_needs_model():
    proc = run_cli("build-repo", check=False)
    assert proc.returncode == 2 and "Missing option '--model'" in proc.stderr


def test_the_command_line_loads_without_torch():
    """--help, doctor and option errors answer before any slow import (torch, onnxruntime)."""
    code = (
        "import sys, builder.cli, builder.options\n"
        "slow = sorted({'torch', 'onnxruntime', 'ultralytics'} & set(sys.modules))\n"
        "assert not slow, slow\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
