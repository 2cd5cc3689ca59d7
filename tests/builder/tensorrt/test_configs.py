"""config.pbtxt of a TensorRT plan and of onnxruntime's TensorRT accelerator, from the protobuf."""

from builder import triton_config
from builder.runtimes import ort_tensorrt_parameters
from builder.tensorrt.options import BatchProfile, EngineOptions
from segcontract.engines import EngineRecord, GpuInfo
from segcontract.tensors import TensorSpec

SETTINGS = dict(
    name="seg_model",
    inputs=[TensorSpec("images", "float32", (3, 640, 640))],
    outputs=[TensorSpec("output0", "float32", (116, 8400)), TensorSpec("output1", "float32", (32, 160, 160))],
    max_batch_size=16,
)
RECORD = EngineRecord("10.5.0.18", GpuInfo("NVIDIA L4", "8.9"), "fp16", 1, 8, 16, "0.53.6")


def test_tensorrt_plan_config():
    settings = triton_config.ModelSettings(**SETTINGS, parameters=RECORD.to_parameters())
    config = triton_config.parse(triton_config.to_text(triton_config.tensorrt_model_config(settings)))
    assert config.platform == "tensorrt_plan"
    assert config.default_model_filename == "model.plan"
    assert config.max_batch_size == 16 == RECORD.max_batch
    assert config.instance_group[0].kind == config.instance_group[0].KIND_GPU
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params == {
        "tensorrt_version": "10.5.0.18",
        "gpu_name": "NVIDIA L4",
        "gpu_compute_capability": "8.9",
        "precision": "fp16",
    }
    assert [i.name for i in config.input] == ["images"] and list(config.input[0].dims) == [3, 640, 640]


def test_onnxruntime_tensorrt_accelerator():
    options = EngineOptions("fp16", BatchProfile(1, 4, 16), workspace_gib=2)
    accelerator = ort_tensorrt_parameters("seg_model", {"images": (3, 640, 640)}, options)
    settings = triton_config.ModelSettings(**SETTINGS)
    config = triton_config.parse(
        triton_config.to_text(
            triton_config.onnxruntime_model_config(settings, tensorrt_accelerator=accelerator)
        )
    )
    assert config.platform == "onnxruntime_onnx"
    assert config.instance_group[0].kind == config.instance_group[0].KIND_GPU
    (acc,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert acc.name == "tensorrt"
    assert acc.parameters["precision_mode"] == "FP16"
    assert acc.parameters["max_workspace_size_bytes"] == str(2 * 2**30)
    assert acc.parameters["trt_profile_min_shapes"] == "images:1x3x640x640"
    assert acc.parameters["trt_profile_opt_shapes"] == "images:4x3x640x640"
    assert acc.parameters["trt_profile_max_shapes"] == "images:16x3x640x640"
    assert acc.parameters["trt_engine_cache_enable"] == "1"


def test_plain_onnxruntime_config_has_no_accelerator():
    config = triton_config.onnxruntime_model_config(triton_config.ModelSettings(**SETTINGS))
    assert not config.HasField("optimization")
    assert config.instance_group[0].kind == config.instance_group[0].KIND_CPU


def test_record_round_trips_through_json():
    assert EngineRecord.from_json(RECORD.to_json()) == RECORD


def test_engine_options_belong_to_runtimes_that_build_engines():
    import pytest

    from builder.errors import BuildError
    from builder.options import make_runtime
    from builder.runtimes import OnnxRuntime, TensorRTRuntime

    with pytest.raises(BuildError, match="apply to --runtime tensorrt"):
        make_runtime("python-onnx", EngineOptions("fp16"))
    with pytest.raises(BuildError, match="option of --runtime onnx"):
        make_runtime("tensorrt", EngineOptions(), onnx_tensorrt=True)
    assert isinstance(make_runtime("tensorrt"), TensorRTRuntime)
    assert make_runtime("onnx").accelerator is None
    onnx_trt = make_runtime("onnx", EngineOptions("fp16"), onnx_tensorrt=True)
    assert isinstance(onnx_trt, OnnxRuntime) and onnx_trt.accelerator.precision == "fp16"
