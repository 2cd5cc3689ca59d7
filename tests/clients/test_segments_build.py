"""The pure parts of segments build: class selection, store names, the recorded model version."""

from pathlib import Path

import pytest

from clients.segments.build import class_ids, model_version, store_name
from clients.triton.client import ClientError, ModelInfo
from clients.triton.image_sources import ImageItem
from segcontract.model_metadata import InputSpec, ModelMetadata, Thresholds
from segcontract.tasks import Task
from store.layout import DataLayout


def _model(checksums: dict | None = None) -> ModelInfo:
    metadata = ModelMetadata(
        "yolov8-seg",
        Task.INSTANCE,
        ["person", "car", "dog"],
        InputSpec(32, 32),
        thresholds=Thresholds(),
        versions={"segstack": "0.1.0"},
        checksums=checksums or {},
    )
    return ModelInfo("m", metadata, metadata.to_parameters())


def test_classes_by_name_or_id_and_unknown_ones_named():
    model = _model()
    assert class_ids(model, None) is None
    assert class_ids(model, "person, 2") == {0, 2}
    with pytest.raises(ClientError, match=r"no class 'cat'; its classes: person, car, dog"):
        class_ids(model, "person,cat")


def test_the_version_is_the_weights_checksum_when_recorded():
    assert model_version(_model({"weights_sha256": "ab" * 32})) == "sha256:" + "ab" * 8
    assert model_version(_model()) == "0.1.0"


def test_store_names_are_relative_to_pictures_else_absolute(tmp_path):
    layout = DataLayout(tmp_path)
    inside = layout.pictures / "sub" / "a.jpg"
    assert store_name(ImageItem(inside, Path("sub/a.jpg")), layout) == "sub/a.jpg"
    outside = tmp_path / "elsewhere" / "b.jpg"
    assert store_name(ImageItem(outside, Path("b.jpg")), layout) == outside.as_posix()
