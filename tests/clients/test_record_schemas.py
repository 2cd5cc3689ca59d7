"""The per-image records both writers of seg-client infer write follow
segcontract/schemas/image_record.schema.json (against a stand-in client; the served runs validate
theirs in tests/integration)."""

from pathlib import Path

import cv2
import numpy as np

from clients.inference.writers import WRITERS
from clients.triton.client import InstanceResult, ModelInfo, SemanticResult
from clients.triton.image_sources import ImageItem
from segcontract.model_metadata import InputSpec, ModelMetadata, Thresholds
from segcontract.tasks import Task
from segops import rle
from tests.schema_check import validate_image_records


class _Client:
    def infer_instances(self, model, data, overrides=None):
        mask = np.zeros((30, 40), np.uint8)
        mask[5:20, 10:30] = 1
        counts = rle.encode_window(mask[5:20, 10:30], (10, 5, 30, 20), (30, 40))
        return InstanceResult(
            30,
            40,
            np.array([[10, 5, 30, 20]], np.float32),
            np.array([0.9], np.float32),
            np.array([1], np.int32),
            [counts],
        )

    def infer_semantic(self, model, data):
        mask = np.zeros((30, 40), np.uint8)
        mask[:, 20:] = 1
        return SemanticResult(30, 40, mask)


def _info(task: Task) -> ModelInfo:
    metadata = ModelMetadata(
        "test",
        task,
        ["a", "b"],
        InputSpec(32, 32),
        colors=[[0, 0, 0], [255, 0, 0]],
        thresholds=Thresholds() if task is Task.INSTANCE else None,
    )
    return ModelInfo("m", metadata, metadata.to_parameters())


def _image(tmp_path: Path) -> tuple[ImageItem, bytes]:
    path = tmp_path / "in" / "x.png"
    path.parent.mkdir()
    cv2.imwrite(str(path), np.zeros((30, 40, 3), np.uint8))
    return ImageItem(path, Path("x.png")), path.read_bytes()


def test_both_writers_records_follow_the_schema(tmp_path):
    item, data = _image(tmp_path)
    for task in (Task.INSTANCE, Task.SEMANTIC):
        out = tmp_path / task.value
        out.mkdir()
        writer = WRITERS[task]()
        assert writer(_Client(), _info(task), item, data, out / "x", out / "overlay.jpg") >= 1
        assert validate_image_records(out) == 1
