"""The classification records seg-client writes follow image_record.schema.json, and Triton's
classification strings are read as Triton writes them (a label with colons, no label at all)."""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest

from clients.inference.writers import top_k
from clients.triton.client import ClassificationResult, ModelInfo, parse_classification
from clients.triton.records import classification_record, segments_record
from segcontract.model_metadata import InputSpec, ModelMetadata
from segcontract.tasks import Task
from tests.schema_check import validate


def _model(classes=("cat", "dog", "a:b")) -> ModelInfo:
    metadata = ModelMetadata("classifier", Task.CLASSIFICATION, list(classes), InputSpec(64, 64))
    return ModelInfo("pets", metadata, metadata.to_parameters())


def test_triton_strings_with_colons_in_labels_and_without_labels():
    entries = np.array([b"0.700000:2:a:b", b"0.200000:0:cat", b"0.100000:1"], dtype=object)
    assert parse_classification(entries) == [(0.7, 2, "a:b"), (0.2, 0, "cat"), (0.1, 1, "")]


def test_records_follow_the_schema_and_name_a_class_triton_left_unlabelled():
    model = _model()
    result = ClassificationResult(48, 64, [(0.7, 2, "a:b"), (0.3, 1, "")])
    record = classification_record("sub/x.png", model, result)
    validate(record, "image_record")
    assert record["classes"] == [
        {"class_id": 2, "class_name": "a:b", "score": 0.7},
        {"class_id": 1, "class_name": "dog", "score": 0.3},  # from the model's class names
    ]
    segments = [{"segment_id": 4, "bbox": [1.0, 2.0, 30.5, 40.0], "classes": record["classes"]}]
    validate(segments_record("sub/x.png", 64, 48, model, "yolo", segments), "image_record")
    validate(segments_record("sub/x.png", 64, 48, model, "yolo", []), "image_record")
    for broken in (
        {**record, "classes": []},
        {**record, "classes": [{"class_id": 0, "class_name": "cat", "score": 1.5}]},
        {
            k: v
            for k, v in segments_record("x", 1, 1, model, "yolo", segments).items()
            if k != "segment_model"
        },
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken, "image_record")


@pytest.mark.parametrize(("wanted", "expected"), [(None, 3), (1, 1), (2, 2), (100, 3)])
def test_top_k_defaults_to_five_and_is_capped_at_the_class_count(wanted, expected):
    assert top_k(_model(), {"top_k": wanted}) == expected
    many = _model(tuple(f"c{i}" for i in range(9)))
    assert top_k(many, {}) == 5


@pytest.mark.parametrize(
    ("task", "given", "wrong"),
    [
        (Task.INSTANCE, {"conf": 0.5, "iou": None, "top_k": 3}, ["top_k"]),
        (Task.SEMANTIC, {"conf": 0.5, "overlay": True}, ["conf"]),  # a semantic model has no thresholds
        (Task.CLASSIFICATION, {"top_k": 2, "segments": True, "overlay": False}, []),
        (Task.CLASSIFICATION, {"max_det": 3, "overlay": True}, ["max_det", "overlay"]),
    ],
)
def test_the_settings_a_task_takes_are_one_table_for_infer_and_meta(task, given, wrong):
    from clients.inference.writers import settings_not_taken

    assert settings_not_taken(task, given)[0] == wrong
