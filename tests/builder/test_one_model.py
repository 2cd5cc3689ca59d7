"""builder.one_model without a checkpoint: what a fold takes from each model, and what it refuses.
(The fold of a real build, and its answers, are tests/builder/test_triton_config.py's and
tests/integration/test_one_model.py's.)"""

from pathlib import Path

import pytest

from builder import triton_config
from builder.model_folder import ModelFolder, python_backend_folder
from builder.one_model import fold_ensemble
from segcontract.tensors import TensorSpec

IMAGE = TensorSpec("IMAGE", "bytes", (1,))
X = TensorSpec("x", "float32", (3,))
Y = TensorSpec("y", "float32", (2,))
OUT = TensorSpec("out", "float32", (2,))


def _python(name, inputs, outputs, source, parameters, instances=2):
    settings = triton_config.ModelSettings(
        name, inputs, outputs, 4, parameters, triton_config.DynamicBatching(0, (2,)), instances
    )
    return python_backend_folder(triton_config.python_model_config(settings), source)


def _folders(network: ModelFolder | None = None, post_parameters=None):
    pre = _python("m_preprocess", [IMAGE], [X], "image_preprocess", {"max_pixels": 10, "record": "r"})
    network = network or _python("m_model", [X], [Y], "onnx_model", {}, instances=3)
    network.files["1/model.onnx"] = Path("/nowhere/model.onnx")
    post = _python("m_postprocess", [Y], [OUT], "yolo_seg_postprocess", post_parameters or {"record": "r"})
    steps = [
        triton_config.EnsembleStep("m_preprocess", {"IMAGE": "IMAGE"}, {"x": "x"}),
        triton_config.EnsembleStep("m_model", {"x": "x"}, {"y": "y"}),
        triton_config.EnsembleStep("m_postprocess", {"y": "y"}, {"out": "out"}),
    ]
    ensemble = triton_config.ensemble_config("m", [IMAGE], [OUT], steps, 4, {"record": "r", "task": "t"})
    return [network, pre, post, ModelFolder("m", ensemble)]


def test_the_fold_takes_the_ensembles_io_and_the_networks_instances():
    folder = fold_ensemble(_folders(), "m", "yolo_seg_pipeline")
    config = folder.config
    assert (config.name, config.backend, config.max_batch_size) == ("m", "python", 4)
    assert [t.name for t in config.input] == ["IMAGE"] and [t.name for t in config.output] == ["out"]
    assert config.instance_group[0].count == 3
    assert list(config.dynamic_batching.preferred_batch_size) == [2]
    assert {k: v.string_value for k, v in config.parameters.items()} == {
        "record": "r",
        "task": "t",
        "max_pixels": "10",
    }
    assert sorted(folder.files) == [
        "1/image_preprocess.py",
        "1/model.onnx",
        "1/model.py",
        "1/onnx_model.py",
        "1/yolo_seg_postprocess.py",
    ]
    assert folder.files["1/model.py"].name == "yolo_seg_pipeline.py"
    assert set(folder.dirs) == {"1/segops", "1/segcontract"}


def test_one_key_with_two_values_is_refused():
    with pytest.raises(ValueError, match="parameter 'record' differs"):
        fold_ensemble(_folders(post_parameters={"record": "other"}), "m", "yolo_seg_pipeline")


def test_a_network_outside_the_python_backend_does_not_fold():
    settings = triton_config.ModelSettings("m_model", [X], [Y], 4)
    network = ModelFolder("m_model", triton_config.onnxruntime_model_config(settings))
    with pytest.raises(ValueError, match="m_model: not a Python-backend model"):
        fold_ensemble(_folders(network), "m", "yolo_seg_pipeline")
