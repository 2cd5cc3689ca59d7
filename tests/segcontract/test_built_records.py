"""What build-repo writes follows the contract: the model record in the ensemble and in both
Python-backend steps validates against its schema and agrees with the individual parameters."""

import json

import pytest

from builder import triton_config
from builder.families import BuildSettings, LoadRequest
from builder.families.smp_semantic import SmpSemanticFamily
from builder.families.yolo_seg import YoloSegFamily
from segcontract import tasks
from segcontract.model_metadata import METADATA_KEY, ModelMetadata
from segcontract.tasks import Task
from segcontract.tensors import TensorSpec
from tests.conftest import IMGSZ, MODEL, SQUARE_MODEL
from tests.schema_check import validate


def _params(config) -> dict[str, str]:
    return {k: v.string_value for k, v in config.parameters.items()}


def test_the_built_repositorys_record_validates_and_agrees(built_repository, ensemble_repository):
    configs = {
        name: triton_config.parse((ensemble_repository / name / "config.pbtxt").read_text())
        for name in (MODEL, f"{MODEL}_preprocess", f"{MODEL}_postprocess")
    }
    square = triton_config.parse((ensemble_repository / SQUARE_MODEL / "config.pbtxt").read_text())
    records = {name: _params(c)[METADATA_KEY] for name, c in configs.items()}
    records["one model"] = _params(square)[METADATA_KEY]
    assert len(set(records.values())) == 1  # one record, carried by each
    one = triton_config.parse((built_repository / MODEL / "config.pbtxt").read_text())
    validate(json.loads(_params(one)[METADATA_KEY]), "model_metadata")  # with its stride
    data = json.loads(records[MODEL])
    validate(data, "model_metadata")
    record = ModelMetadata.from_dict(data)
    ensemble = _params(configs[MODEL])
    assert record.task is Task.INSTANCE and record.family == "yolov8-seg"
    assert record.class_names == json.loads(ensemble["class_names"])
    assert (record.input.height, record.input.width, record.input.resize) == (IMGSZ, IMGSZ, "letterbox")
    assert record.thresholds.to_dict() == {"conf": 0.25, "iou": 0.7, "max_det": 300}
    assert record.max_pixels == int(_params(configs[f"{MODEL}_preprocess"])["max_pixels"])
    assert set(record.versions) == {"segstack", "ultralytics"}
    assert record.versions["ultralytics"] == ensemble["ultralytics_version"]
    assert len(record.checksums["weights_sha256"]) == 64 and record.extra == {"stride": 32}
    assert [t.name for t in configs[MODEL].output] == list(tasks.output_names(Task.INSTANCE))


def test_the_record_of_the_weights_file(built_repository, yolo_checkpoint):
    import hashlib

    params = _params(triton_config.parse((built_repository / MODEL / "config.pbtxt").read_text()))
    record = ModelMetadata.from_json(params[METADATA_KEY])
    assert record.checksums["weights_sha256"] == hashlib.sha256(yolo_checkpoint.read_bytes()).hexdigest()
    assert record.source_weights == yolo_checkpoint.name
    assert YoloSegFamily.task is Task.INSTANCE


@pytest.fixture(scope="module")
def smp_checkpoint(tmp_path_factory):
    from tests.fixtures.random_checkpoints import make_random_smp

    return make_random_smp(tmp_path_factory.mktemp("smp") / "shapes.pth")


@pytest.mark.parametrize("nhwc", [False, True])
def test_smp_carries_mean_and_std_as_numbers(smp_checkpoint, nhwc):
    family = SmpSemanticFamily()
    loaded = family.load(LoadRequest("smp", smp_checkpoint, nhwc=nhwc))
    net_in = TensorSpec(loaded.input_names[0], "float32", family.input_spec(loaded).shape)
    net_out = TensorSpec("logits", "float32", (4, 96, 128))
    folders = family.server_models(loaded, ([net_in], [net_out]), BuildSettings(name="shapes"))
    by_name = {f.name: _params(f.config) for f in folders}
    data = json.loads(by_name["shapes"][METADATA_KEY])
    validate(data, "model_metadata")
    assert data["input"]["mean"] == [0.485, 0.456, 0.406] and data["input"]["std"] == [0.229, 0.224, 0.225]
    assert data["input"]["layout"] == ("HWC" if nhwc else "CHW") and data["thresholds"] is None
    assert data["colors"][1] == [230, 25, 75] and data["extra"] == {
        "arch": "Unet",
        "encoder": "efficientnet-b0",
    }
    assert by_name["shapes"]["mean_rgb"] == "0.485,0.456,0.406"  # the individual parameters stay
    assert by_name["shapes_preprocess"]["output_name"] == loaded.input_names[0]
    assert by_name["shapes_postprocess"][METADATA_KEY] == by_name["shapes"][METADATA_KEY]
    ensemble = next(f.config for f in folders if f.name == "shapes")
    assert [t.name for t in ensemble.output] == ["mask", "image_size"]
