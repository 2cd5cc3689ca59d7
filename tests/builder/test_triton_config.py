"""Every config.pbtxt build-repo writes parses as a ModelConfig, the ensemble is wired right, and
the one Python model of a default python-onnx build is the ensemble folded (builder.one_model)."""

import json
from pathlib import Path

import onnx
import pytest
from tritonclient.grpc import model_config_pb2 as mc

from builder import triton_config
from segcontract.tensors import TensorSpec
from tests.conftest import IMGSZ, MODEL, SQUARE_MODEL, run_cli


def _configs(repo: Path) -> dict[str, mc.ModelConfig]:
    return {p.parent.name: triton_config.parse(p.read_text()) for p in sorted(repo.glob("*/config.pbtxt"))}


def test_every_written_config_parses_and_names_its_folder(built_repository, ensemble_repository):
    assert set(_configs(built_repository)) == {MODEL}
    configs = _configs(ensemble_repository)
    assert set(configs) == {
        MODEL,
        f"{MODEL}_preprocess",
        f"{MODEL}_model",
        f"{MODEL}_postprocess",
        SQUARE_MODEL,
    }
    for repo in (built_repository, ensemble_repository):
        for folder, config in _configs(repo).items():
            assert config.name == folder
            assert (repo / folder / "1").is_dir()


def test_one_model_is_the_ensemble_folded(ensemble_repository):
    """The ensemble's inputs, outputs and largest batch; the network's instances and batcher; every
    step's parameters; the steps' modules and the network's file beside its model.py."""
    parts = _configs(ensemble_repository)
    one = parts.pop(SQUARE_MODEL)
    ensemble, network = parts[MODEL], parts[f"{MODEL}_model"]
    assert one.backend == "python" and not one.platform and not one.HasField("ensemble_scheduling")
    assert list(one.input) == list(ensemble.input) and list(one.output) == list(ensemble.output)
    assert one.max_batch_size == ensemble.max_batch_size == 8
    assert list(one.instance_group) == list(network.instance_group)
    assert one.dynamic_batching == network.dynamic_batching
    for part in parts.values():
        for key, value in part.parameters.items():
            assert one.parameters[key] == value, key
    version = ensemble_repository / SQUARE_MODEL / "1"
    assert sorted(p.name for p in version.iterdir() if p.is_file()) == [
        "image_preprocess.py",
        "model.onnx",
        "model.py",
        "network_step.py",
        "onnx_model.py",
        "yolo_seg_postprocess.py",
    ]
    assert (version / "model.onnx").read_bytes() == (
        ensemble_repository / f"{MODEL}_model" / "1" / "model.onnx"
    ).read_bytes()
    assert (version / "segops").is_dir() and (version / "segcontract").is_dir()


def test_the_default_one_model_pads_to_the_stride_with_a_network_of_any_size(
    built_repository, ensemble_repository
):
    """What sets the default build apart from --square: its record's stride, and a network whose
    height and width (and so anchors and prototype size) are dynamic; all else is the same."""
    default, square = _configs(built_repository)[MODEL], _configs(ensemble_repository)[SQUARE_MODEL]
    assert list(default.input) == list(square.input) and list(default.output) == list(square.output)
    records = [json.loads(c.parameters["segstack_metadata"].string_value) for c in (default, square)]
    assert records[0]["input"].pop("stride") == 32 and "stride" not in records[1]["input"]
    assert records[0] == records[1]

    def dims(repo, name):
        graph = onnx.load(str(repo / name / "1" / "model.onnx")).graph
        return {
            t.name: [d.dim_param or d.dim_value for d in t.type.tensor_type.shape.dim]
            for t in (*graph.input, *graph.output)
        }

    assert dims(built_repository, MODEL) == {
        "images": ["batch", 3, "height", "width"],
        "output0": ["batch", 39, "anchors"],
        "output1": ["batch", 32, "mask_height", "mask_width"],
    }
    assert dims(ensemble_repository, SQUARE_MODEL)["images"] == ["batch", 3, IMGSZ, IMGSZ]


def test_square_is_refused_where_the_ensemble_is_served(tmp_path, yolo_checkpoint):
    build = ("build-repo", "--model", MODEL, "--weights", str(yolo_checkpoint), "--output", str(tmp_path))
    proc = run_cli(*build, "--ensemble", "--square", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "--square is an option of the one Python model" in proc.stderr
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())


def test_an_ensemble_rebuilt_as_one_model_takes_its_steps_with_it(tmp_path, yolo_checkpoint):
    """Its composing models (build-repo wrote them, for it alone) go; other models stay."""
    build = ("build-repo", "--model", MODEL, "--weights", str(yolo_checkpoint), "--output", str(tmp_path))
    run_cli(*build, "--ensemble", "--quiet")
    run_cli(*build, "--name", "other", "--ensemble", "--quiet")
    (tmp_path / "mine").mkdir()
    run_cli(*build, "--quiet")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [MODEL, "mine", "other", "other_model", "other_postprocess", "other_preprocess"]
    )
    run_cli(*build, "--ensemble", "--quiet")
    assert f"{MODEL}_model" in {p.name for p in tmp_path.iterdir()}


def test_model_step_batches_dynamically_and_ensemble_carries_metadata(ensemble_repository):
    configs = _configs(ensemble_repository)
    model = configs[f"{MODEL}_model"]
    assert model.HasField("dynamic_batching") and model.max_batch_size == 8
    assert model.backend == "python"
    params = {k: v.string_value for k, v in configs[MODEL].parameters.items()}
    assert params["task"] == "instance_segmentation"
    assert params["class_names"] == '["circle", "rectangle", "triangle"]'
    assert (params["input_height"], params["input_width"]) == ("320", "320")
    assert (params["conf"], params["iou"], params["max_det"]) == ("0.25", "0.7", "300")


def test_ensemble_steps_consume_only_tensors_that_exist(ensemble_repository):
    configs = _configs(ensemble_repository)
    ensemble = configs[MODEL]
    available = {t.name for t in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        step_model = configs[step.model_name]
        assert set(step.input_map) == {t.name for t in step_model.input}
        assert set(step.input_map.values()) <= available, step.model_name
        assert set(step.output_map) <= {t.name for t in step_model.output}
        available |= set(step.output_map.values())
    assert {t.name for t in ensemble.output} <= available
    image = ensemble.input[0]
    assert image.name == "IMAGE" and image.data_type == mc.TYPE_STRING


def test_onnx_runtime_repository_is_what_ngc_tritonserver_expects(tmp_path, yolo_checkpoint):
    run_cli(
        "build-repo",
        "--model",
        MODEL,
        "--weights",
        str(yolo_checkpoint),
        "--output",
        str(tmp_path),
        "--runtime",
        "onnx",
        "--name",
        "shapes",
        "--max-batch-size",
        "4",
        "--instances",
        "2",
        "--threads",
        "1",
        "--preferred-batch-sizes",
        "2,4",
        "--quiet",
    )
    config = triton_config.parse((tmp_path / "shapes_model" / "config.pbtxt").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "shapes",
        "shapes_model",
        "shapes_postprocess",
        "shapes_preprocess",
    ]
    steps = triton_config.parse((tmp_path / "shapes" / "config.pbtxt").read_text()).ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["shapes_preprocess", "shapes_model", "shapes_postprocess"]
    assert config.platform == "onnxruntime_onnx" and not config.backend
    assert config.parameters["intra_op_thread_count"].string_value == "1"  # the onnxruntime backend's key
    assert config.instance_group[0].count == 2
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]
    assert config.max_batch_size == 4
    assert sorted(p.name for p in (tmp_path / "shapes_model" / "1").iterdir()) == ["model.onnx"]
    graph = onnx.load(str(tmp_path / "shapes_model" / "1" / "model.onnx")).graph

    def dims(value_info):
        return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]

    for declared, actual in zip([*config.input, *config.output], [*graph.input, *graph.output]):
        assert declared.name == actual.name
        assert dims(actual)[0] == "batch"  # dynamic batch axis, omitted from config dims
        assert list(declared.dims) == dims(actual)[1:]


def test_tensor_spec_rejects_bad_dims_and_types():
    with pytest.raises(ValueError, match="dims"):
        TensorSpec("x", "float32", (0, 3))
    with pytest.raises(ValueError, match="dtype"):
        TensorSpec("x", "complex64", (3,))


def test_python_onnx_threads_and_batch_size_checks(tmp_path, yolo_checkpoint):
    run_cli(
        "build-repo",
        "--model",
        MODEL,
        "--weights",
        str(yolo_checkpoint),
        "--output",
        str(tmp_path / "r"),
        "--threads",
        "1",
        "--quiet",
    )
    config = triton_config.parse((tmp_path / "r" / MODEL / "config.pbtxt").read_text())
    assert config.parameters["intra_op_threads"].string_value == "1"  # read by onnx_model.py
    proc = run_cli(
        "build-repo",
        "--model",
        MODEL,
        "--weights",
        str(yolo_checkpoint),
        "--output",
        str(tmp_path / "x"),
        "--preferred-batch-sizes",
        "16",
        check=False,
    )
    assert proc.returncode == 2 and "exceed --max-batch-size 8" in proc.stderr


def test_preprocess_carries_the_pixel_limit_and_postprocess_the_max_det_ceiling(
    built_repository, ensemble_repository
):
    configs = _configs(ensemble_repository)
    pre = {k: v.string_value for k, v in configs[f"{MODEL}_preprocess"].parameters.items()}
    post = {k: v.string_value for k, v in configs[f"{MODEL}_postprocess"].parameters.items()}
    assert pre["max_pixels"] == "64000000"  # build-repo --max-pixels default
    assert post["max_det"] == "300"
    one = {k: v.string_value for k, v in _configs(built_repository)[MODEL].parameters.items()}
    assert (one["max_pixels"], one["max_det"]) == ("64000000", "300")


def test_by_default_two_instances_share_the_cores_the_server_sees(
    built_repository, tmp_path, yolo_checkpoint
):
    """No thread count in a python-onnx config by default: onnx_model.py divides the server's cores
    among the instances when it loads; --threads 0 lets each session take every core."""
    configs = _configs(built_repository)
    assert configs[MODEL].instance_group[0].count == 2
    assert "intra_op_threads" not in configs[MODEL].parameters
    run_cli("build-repo", "--model", MODEL, "--weights", str(yolo_checkpoint), "--output", str(tmp_path),
            "--threads", "0", "--instances", "1", "--quiet")  # fmt: skip
    config = triton_config.parse((tmp_path / MODEL / "config.pbtxt").read_text())
    assert config.parameters["intra_op_threads"].string_value == "0"
    assert config.instance_group[0].count == 1
