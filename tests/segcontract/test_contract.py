"""The contract itself: task specs, the model record's round trips and schema, the schema files,
and that segcontract needs nothing beyond the standard library."""

import dataclasses
import json
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator, ValidationError

from segcontract import schemas, tasks
from segcontract.engines import EngineRecord, GpuInfo
from segcontract.model_metadata import (
    METADATA_KEY,
    SCHEMA_VERSION,
    InputSpec,
    MetadataError,
    ModelMetadata,
    Thresholds,
)
from segcontract.tasks import Task
from tests.schema_check import validate

INSTANCE = ModelMetadata(
    family="yolov8-seg",
    task=Task.INSTANCE,
    class_names=["circle", "rectangle", "triangle"],
    input=InputSpec(320, 320, "letterbox"),
    thresholds=Thresholds(0.25, 0.7, 300),
    versions={"segstack": "0.1.0", "ultralytics": "8.3.40"},
    checksums={"weights_sha256": "ab" * 32},
    source_weights="best.pt",
    extra={"stride": 32},
)
SEMANTIC = ModelMetadata(
    family="smp",
    task=Task.SEMANTIC,
    class_names=["background", "road"],
    input=InputSpec(96, 128, "stretch", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "HWC"),
    colors=[[0, 0, 0], [128, 64, 128]],
    extra={"arch": "Unet", "encoder": "resnet18"},
)

RECT = dataclasses.replace(INSTANCE, input=InputSpec(320, 320, "letterbox", stride=32))


def test_a_stride_goes_with_letterbox_and_divides_the_size():
    assert RECT.input.to_dict()["stride"] == 32 and "stride" not in INSTANCE.input.to_dict()
    with pytest.raises(ValueError, match="goes with resize letterbox"):
        InputSpec(320, 320, "stretch", stride=32)
    with pytest.raises(ValueError, match="not a multiple of stride 32"):
        InputSpec(320, 300, "letterbox", stride=32)


def test_task_values_and_str_behaviour():
    assert [t.value for t in Task] == ["instance_segmentation", "semantic_segmentation", "classification"]
    assert Task.INSTANCE == "instance_segmentation" and {"semantic_segmentation": 1}[Task.SEMANTIC] == 1
    assert str(Task.SEMANTIC) == f"{Task.SEMANTIC}" == "semantic_segmentation"
    assert json.dumps(Task.INSTANCE) == '"instance_segmentation"'


def test_each_tasks_ensemble_tensors():
    assert tasks.ensemble_inputs(Task.INSTANCE) == (tasks.IMAGE,)
    assert (tasks.IMAGE.name, tasks.IMAGE.triton_type, tasks.IMAGE.dims) == ("IMAGE", "TYPE_STRING", (1,))
    assert tasks.output_names(Task.INSTANCE) == (
        "boxes",
        "scores",
        "classes",
        "masks",
        "num_detections",
        "image_size",
    )
    assert tasks.output_names(Task.SEMANTIC) == ("mask", "image_size")
    (mask,) = tasks.postprocess_outputs(Task.SEMANTIC, 300)
    assert (mask.dtype, mask.dims) == ("uint16", (-1, -1))
    assert tasks.postprocess_outputs("semantic_segmentation", 4)[0].dtype == "uint8"
    (probabilities,) = tasks.postprocess_outputs(Task.CLASSIFICATION, 5)
    assert (probabilities.name, probabilities.dtype, probabilities.dims) == ("probabilities", "float32", (5,))
    assert tasks.ensemble_outputs(Task.CLASSIFICATION, 5)[-1] == tasks.IMAGE_SIZE
    with pytest.raises(ValueError):
        tasks.ensemble_inputs("detection")


@pytest.mark.parametrize("record", [INSTANCE, RECT, SEMANTIC], ids=["instance", "rect", "semantic"])
def test_metadata_round_trips_and_follows_its_schema(record):
    assert ModelMetadata.from_json(record.to_json()) == record
    assert "\n" not in record.to_json()  # one config.pbtxt string
    validate(json.loads(record.to_json()), "model_metadata")
    params = record.to_parameters()
    assert ModelMetadata.from_parameters(params) == record
    assert InputSpec.from_parameters(params) == record.input
    assert params["task"] == record.task.value and json.loads(params["class_names"]) == record.class_names


def test_mean_and_std_stay_numbers():
    data = json.loads(SEMANTIC.to_json())
    assert data["input"]["mean"] == [0.485, 0.456, 0.406] and data["input"]["layout"] == "HWC"


def test_individual_parameters_of_older_repositories_still_read():
    params = {k: v for k, v in INSTANCE.to_parameters().items() if k != METADATA_KEY}
    old = ModelMetadata.from_parameters(params)
    assert (old.task, old.class_names, old.input, old.thresholds) == (
        INSTANCE.task,
        INSTANCE.class_names,
        INSTANCE.input,
        INSTANCE.thresholds,
    )
    assert old.versions == INSTANCE.versions
    with pytest.raises(MetadataError, match="no 'segstack_metadata' or 'task'"):
        ModelMetadata.from_parameters({"conf": "0.25"})


def test_a_newer_record_is_refused_and_unknown_fields_ignored():
    data = json.loads(INSTANCE.to_json())
    assert ModelMetadata.from_dict({**data, "added_later": 1}) == INSTANCE
    with pytest.raises(MetadataError, match="newer"):
        ModelMetadata.from_dict({**data, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(MetadataError, match="unreadable"):
        ModelMetadata.from_dict({**data, "task": "detection"})
    with pytest.raises(MetadataError, match="not JSON"):
        ModelMetadata.from_json("{")
    with pytest.raises(MetadataError, match="colours"):
        ModelMetadata("smp", Task.SEMANTIC, ["a", "b"], InputSpec(8, 8), colors=[[0, 0, 0]])


def test_the_schema_catches_a_wrong_record():
    data = json.loads(SEMANTIC.to_json())
    with pytest.raises(ValidationError):
        validate({**data, "input": {**data["input"], "layout": "NCHW"}}, "model_metadata")
    with pytest.raises(ValidationError):
        validate({**data, "checksums": {"weights_sha256": "not hex"}}, "model_metadata")


def test_every_schema_file_is_a_valid_schema():
    assert schemas.names() == [
        "engine_record",
        "image_record",
        "model_metadata",
        "ret_meta",
        "ret_meta_ack",
        "run_record",
        "segstack_config",
    ]
    for name in schemas.names():
        Draft202012Validator.check_schema(schemas.load(name))
        assert schemas.path(name).parent == schemas.SCHEMA_DIR
    with pytest.raises(KeyError, match="choose one of"):
        schemas.path("nonexistent_record")


def test_the_engine_record_follows_its_schema():
    record = EngineRecord("10.5.0.18", GpuInfo("NVIDIA H100", "9.0"), "fp16", 1, 4, 8, "0.49.0")
    validate(json.loads(record.to_json()), "engine_record")


def test_the_image_record_schema_takes_both_kinds_and_nothing_else():
    instance = {"image": "a.jpg", "width": 4, "height": 3, "model": "m", "detections": []}
    semantic = {**{k: instance[k] for k in ("image", "width", "height", "model")}}
    semantic.update({"mask": "a.png", "color_mask": "a_color.png", "classes": []})
    validate(instance, "image_record")
    validate(semantic, "image_record")
    with pytest.raises(ValidationError):
        validate({**instance, "extra": 1}, "image_record")
    with pytest.raises(ValidationError):
        validate({**instance, "detections": [{"class_id": 0}]}, "image_record")


def test_segcontract_needs_only_the_standard_library():
    """The contract ships into every Python-backend model: importing any of it may pull no numpy,
    torch, OpenCV or tritonclient (engines imports tritonclient only when it reads a config)."""
    code = (
        "import pkgutil, importlib, sys, segcontract\n"
        "for m in pkgutil.iter_modules(segcontract.__path__):\n"
        "    importlib.import_module('segcontract.' + m.name)\n"
        "heavy = sorted({'numpy', 'torch', 'cv2', 'tritonclient', 'google'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
