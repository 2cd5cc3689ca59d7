"""YOLOv8-seg: build-repo → tritonserver → seg-client infer gives what ultralytics' predict gives.

build-repo's default one model pads each image only to a multiple of the stride, as ``predict``
does on a .pt, so the like-for-like reference is ``predict`` with its defaults (``rect``); masks are
compared at the original resolution (``retina_masks=True``). The served checks reuse the session's
repository and server. (The one model fed the full square is checked against the ensemble in
tests/integration/test_one_model.py.)"""

import json

import numpy as np
import pytest

from builder.families.yolo_seg import YoloSegFamily
from clients.inference.parity import Dets, Parity, compare
from tests.conftest import IMGSZ, MODEL
from tests.families.base import FamilyTestBase

THRESHOLD = 0.5


class TestYoloSeg(FamilyTestBase):
    family = YoloSegFamily()
    model_name = served_name = MODEL
    class_names = ("circle", "rectangle", "triangle")
    input_size = (IMGSZ, IMGSZ)
    input_names = ("images",)
    output_names = ("output0", "output1")
    client_args = ("--conf", str(THRESHOLD), "--concurrency", "4")

    @pytest.fixture(scope="class")
    @classmethod
    def checkpoint(cls, yolo_checkpoint):
        return yolo_checkpoint

    @pytest.fixture(scope="class")
    @classmethod
    def images(cls, sample_images):
        return sample_images

    @pytest.fixture(scope="class")
    @classmethod
    def repository(cls, built_repository):
        return built_repository

    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, triton):
        return triton

    @classmethod
    def make_reference(cls, checkpoint):
        from ultralytics import YOLO

        return YOLO(str(checkpoint))

    def check_parity(self, served, images, reference):
        total = Parity()
        for image in images:
            record = json.loads((served / f"{image.stem}.json").read_text())
            ref = reference.predict(
                str(image), imgsz=IMGSZ, conf=THRESHOLD, retina_masks=True, verbose=False
            )[0]
            assert (record["height"], record["width"]) == tuple(ref.orig_shape)
            result = compare(Dets.from_ultralytics(ref), Dets.from_record(record), THRESHOLD)
            assert not result.missing and not result.extra, f"{image.name}: {result.summary()}"
            total.merge(result)
        print(f"parity over {len(images)} images: {total.summary()}")
        assert total.matched >= 50, "the test checkpoint should give detections to compare"
        assert min(total.box_ious) >= 0.99
        assert np.mean(total.mask_ious) >= 0.95
        assert max(total.score_diffs) <= 0.02

    @pytest.mark.integration
    def test_records_follow_the_documented_schema(self, served):
        record = json.loads((served / "scene1.json").read_text())
        assert set(record) == {"image", "width", "height", "model", "detections"}
        assert record["image"] == "scene1.png" and record["model"] == MODEL
        for det in record["detections"]:
            assert set(det) == {"class_id", "class_name", "score", "bbox", "segmentation"}
            assert det["class_name"] in {"circle", "rectangle", "triangle"}
            assert det["segmentation"]["size"] == [record["height"], record["width"]]
            assert det["score"] >= THRESHOLD
