"""build-repo → tritonserver → seg-client infer gives what ultralytics' predict gives.

The server pads every image to the full square (a batched model has one input shape), so the
like-for-like reference is ``predict(rect=False)``; masks are compared at the original resolution
(``retina_masks=True``)."""

import json

import numpy as np
import pytest
from ultralytics import YOLO

from clients.parity import Dets, Parity, compare
from tests.conftest import IMGSZ, MODEL, run_cli

THRESHOLD = 0.5


@pytest.fixture(scope="module")
def served_outputs(triton, sample_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("served")
    proc = run_cli(
        "seg-client",
        "infer",
        "--source",
        str(sample_images),
        "--model",
        MODEL,
        "--url",
        triton.grpc_url,
        "--out",
        str(out),
        "--conf",
        str(THRESHOLD),
        "--concurrency",
        "4",
    )
    assert "0 failed" in proc.stdout
    return out


def test_served_detections_match_ultralytics_predict(served_outputs, sample_images, yolo_checkpoint):
    reference_model = YOLO(str(yolo_checkpoint))
    total = Parity()
    images = sorted(sample_images.iterdir())
    for image in images:
        record = json.loads((served_outputs / f"{image.stem}.json").read_text())
        ref = reference_model.predict(
            str(image), imgsz=IMGSZ, conf=THRESHOLD, rect=False, retina_masks=True, verbose=False
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


def test_records_follow_the_documented_schema(served_outputs, sample_images):
    record = json.loads((served_outputs / "scene1.json").read_text())
    assert set(record) == {"image", "width", "height", "model", "detections"}
    assert record["image"] == "scene1.png" and record["model"] == MODEL
    for det in record["detections"]:
        assert set(det) == {"class_id", "class_name", "score", "bbox", "segmentation"}
        assert det["class_name"] in {"circle", "rectangle", "triangle"}
        assert det["segmentation"]["size"] == [record["height"], record["width"]]
        assert det["score"] >= THRESHOLD
