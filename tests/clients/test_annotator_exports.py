"""COCO instances and CVAT for images 1.1 XML built from store records."""

from __future__ import annotations

import contextlib
import io
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annotations.cvat_xml import cvat_polygons
from clients.segments.exports import coco_instances, cvat_images_xml
from store.records import Status, StoredImage, StoredSegment

CLASSES = ["circle", "rectangle"]


def _image(image_id: int, path: str, width: int = 96, height: int = 80, badlisted: bool = False):
    return StoredImage(image_id, path, width, height, "0" * 64, 1000, badlisted)


def _segment(seg_id, image, mask, score, class_id=0, class_name=None, status=Status.UNCHECKED):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return StoredSegment(
        id=seg_id,
        image_id=image.id,
        image=image.path,
        width=image.width,
        height=image.height,
        model="yolo",
        model_version="3",
        class_id=class_id,
        class_name=class_name or CLASSES[class_id],
        score=score,
        bbox=(0.0, 0.0, 5.0, 5.0),  # deliberately not the mask's box
        rle={"size": rle["size"], "counts": rle["counts"].decode()},
        status=status,
    )


def _blank(image: StoredImage) -> np.ndarray:
    return np.zeros((image.height, image.width), np.uint8)


def _circle(image, center, radius):
    mask = _blank(image)
    cv2.circle(mask, center, radius, 1, thickness=-1)
    return mask


def _rect(image, p0, p1):
    mask = _blank(image)
    cv2.rectangle(mask, p0, p1, 1, thickness=-1)
    return mask


def _triangle(image, points):
    mask = _blank(image)
    cv2.fillPoly(mask, [np.array(points, np.int32)], 1)
    return mask


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture
def scene():
    """Two images with segments (one of a class beyond CLASSES), one without, one badlisted."""
    a = _image(10, "b/street.jpg")
    b = _image(11, "a/yard.jpg", width=120, height=90)
    empty = _image(12, "c/empty.jpg")
    banned = _image(13, "d/banned.jpg", badlisted=True)
    segments = [
        _segment(100, a, _circle(a, (30, 30), 15), 0.9),
        _segment(101, a, _rect(a, (50, 40), (90, 75)), 0.8, class_id=1, status=Status.APPROVED),
        _segment(102, b, _triangle(b, [(10, 80), (60, 10), (110, 85)]), 0.7, 2, "triangle"),
        _segment(103, b, _circle(b, (90, 30), 20), 0.6),
        _segment(104, banned, _circle(banned, (30, 30), 15), 0.9),
    ]
    return [a, b, empty, banned], segments


def _load(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


# ---------------------------------------------------------------------------------------------
# COCO


def test_coco_loads_and_carries_the_store_fields(scene):
    images, segments = scene
    coco = _load(coco_instances(images, segments, CLASSES))

    assert sorted(coco.getImgIds()) == [10, 11, 12]  # the image without segments too, not the banned
    assert coco.imgs[12] == {"id": 12, "file_name": "c/empty.jpg", "width": 96, "height": 80}
    assert coco.getAnnIds(imgIds=[12]) == []
    assert {c["id"]: c["name"] for c in coco.dataset["categories"]} == {
        1: "circle",
        2: "rectangle",
        3: "triangle",
    }
    assert sorted(coco.getAnnIds()) == [100, 101, 102, 103]
    ann = coco.anns[101]
    assert ann["image_id"] == 10 and ann["category_id"] == 2 and ann["iscrowd"] == 0
    assert isinstance(ann["segmentation"]["counts"], str)
    assert ann["bbox"] == [50.0, 40.0, 41.0, 36.0]  # the mask's box, not StoredSegment.bbox
    assert ann["area"] == 41 * 36
    assert (ann["score"], ann["status"], ann["model"], ann["model_version"], ann["segment_id"]) == (
        0.8,
        "approved",
        "yolo",
        "3",
        101,
    )
    assert np.array_equal(coco.annToMask(ann), _rect(images[0], (50, 40), (90, 75)))
    assert {"description", "date_created", "version"} <= set(coco.dataset["info"])


def test_coco_eval_of_identical_detections_is_perfect(scene):
    images, segments = scene
    dataset = coco_instances(images, segments, CLASSES)
    gt = _load(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(a) for a in dataset["annotations"]])
        for iou_type in ("segm", "bbox"):
            evaluation = COCOeval(gt, dt, iou_type)
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            assert evaluation.stats[0] == pytest.approx(1.0)


def test_contradicting_class_name_is_refused(scene):
    images, segments = scene
    a = images[0]
    wrong = _segment(200, a, _circle(a, (10, 10), 5), 0.5, class_id=0, class_name="rectangle")
    with pytest.raises(ValueError, match="class 0"):
        coco_instances(images, [*segments, wrong], CLASSES)


# ---------------------------------------------------------------------------------------------
# CVAT


def _parse(xml: bytes) -> ET.Element:
    assert xml.startswith(b"<?xml")
    return ET.fromstring(xml)


def _polygon_mask(shapes: list[ET.Element], height: int, width: int) -> np.ndarray:
    """CVAT polygons rasterised as COCO polygons are (pycocotools: the same pixel convention)."""
    polygons = [[float(v) for v in s.get("points").replace(";", ",").split(",")] for s in shapes]
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width)))


def _cvat_rle_decode(shape: ET.Element, height: int, width: int) -> np.ndarray:
    """CVAT's convention, decoded independently: runs over the crop row by row, 0s first."""
    left, top = int(shape.get("left")), int(shape.get("top"))
    crop_w, crop_h = int(shape.get("width")), int(shape.get("height"))
    runs = [int(v) for v in shape.get("rle").split(",")]
    flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
    assert flat.size == crop_w * crop_h
    mask = np.zeros((height, width), np.uint8)
    mask[top : top + crop_h, left : left + crop_w] = flat.reshape(crop_h, crop_w)
    return mask


def test_cvat_polygons_structure_and_shapes(scene):
    images, segments = scene
    root = _parse(cvat_images_xml(images, segments, CLASSES, task_name="group-7"))

    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    task = root.find("meta/task")
    assert task.findtext("name") == "group-7" and task.findtext("size") == "3"
    assert task.findtext("mode") == "annotation"
    labels = task.findall("labels/label")
    assert [label.findtext("name") for label in labels] == ["circle", "rectangle", "triangle"]
    for label in labels:
        score, segment_id = label.findall("attributes/attribute")
        assert score.findtext("name") == "score" and score.findtext("input_type") == "number"
        # the store's segment id: what an import of the annotators' work matches shapes by
        assert [segment_id.findtext(k) for k in ("name", "mutable", "input_type", "default_value")] == [
            "segment_id",
            "False",
            "text",
            "",
        ]

    frames = root.findall("image")
    # frame ids follow the path order, as CVAT numbers a task's images
    assert [(f.get("id"), f.get("name")) for f in frames] == [
        ("0", "a/yard.jpg"),
        ("1", "b/street.jpg"),
        ("2", "c/empty.jpg"),
    ]
    assert (frames[0].get("width"), frames[0].get("height")) == ("120", "90")
    assert list(frames[2]) == []

    by_id = {s.id: s for s in segments}
    names = {label.findtext("name") for label in labels}
    # yard: 102 (0.7) over 103 (0.6); street: 100 (0.9) over 101 (0.8)
    for frame, expected in ((frames[0], [102, 103]), (frames[1], [100, 101])):
        polygons = frame.findall("polygon")
        assert len(polygons) == 2 and list(frame) == polygons
        for polygon in polygons:
            assert polygon.get("label") in names
            assert (polygon.get("source"), polygon.get("occluded")) == ("auto", "0")
            assert polygon.get("group_id") is None
        z = {p.findtext("attribute[@name='score']"): int(p.get("z_order")) for p in polygons}
        best, other = (by_id[i] for i in expected)
        assert z[f"{best.score:.2f}"] > z[f"{other.score:.2f}"]
        for polygon in polygons:
            segment = next(s for s in (best, other) if f"{s.score:.2f}" == polygon.findtext("attribute"))
            assert polygon.get("label") == segment.class_name
            assert polygon.findtext("attribute[@name='segment_id']") == str(segment.id)
            original = mask_utils.decode(
                {"size": segment.rle["size"], "counts": segment.rle["counts"].encode()}
            )
            decoded = _polygon_mask([polygon], segment.height, segment.width)
            assert np.array_equal(decoded, original)  # no hole, under the point budget: exact
            assert all(len(v.split(".")[1]) == 2 for v in polygon.get("points").replace(";", ",").split(","))


def test_cvat_two_blobs_give_two_grouped_polygons_and_specks_go():
    image = _image(1, "x.jpg", width=100, height=60)
    mask = _rect(image, (5, 5), (30, 30)) | _circle(image, (70, 30), 15)
    mask[55, 95] = 1  # a one-pixel speck
    segment = _segment(1, image, mask, 0.5)
    root = _parse(cvat_images_xml([image], [segment], CLASSES))
    polygons = root.findall("image/polygon")
    assert len(polygons) == 2
    assert polygons[0].get("group_id") == polygons[1].get("group_id") == "1"
    assert [p.findtext("attribute[@name='segment_id']") for p in polygons] == ["1", "1"]  # one segment
    without_speck = mask.copy()
    without_speck[55, 95] = 0
    assert np.array_equal(_polygon_mask(polygons, 60, 100), without_speck)


def test_cvat_huge_noisy_mask_stays_under_the_point_budget():
    rng = np.random.default_rng(0)
    image = _image(1, "noisy.jpg", width=1600, height=1200)
    mask = _circle(image, (800, 600), 500)
    ring = (_circle(image, (800, 600), 520) - _circle(image, (800, 600), 480)).astype(bool)
    mask[ring] = rng.random(int(ring.sum())) < 0.5  # a ragged edge
    mask[rng.random(mask.shape) < 0.2] = 1  # and specks and hundreds of small blobs
    segment = _segment(1, image, mask, 0.5)

    polygons = cvat_polygons(mask)
    assert 3 <= sum(len(p) for p in polygons) <= 1000
    root = _parse(cvat_images_xml([image], [segment], CLASSES))
    shapes = root.findall("image/polygon")
    points = sum(len(s.get("points").split(";")) for s in shapes)
    assert points <= 1000
    assert _iou(_polygon_mask(shapes[:1], 1200, 1600), _circle(image, (800, 600), 500)) >= 0.9


def test_cvat_masks_decode_back_exactly(scene):
    images, segments = scene
    root = _parse(cvat_images_xml(images, segments, CLASSES, shape="mask"))
    assert root.findall("image/polygon") == []
    masks = root.findall("image/mask")
    assert len(masks) == 4
    by_id = {str(s.id): s for s in segments}
    assert sorted(int(m.findtext("attribute[@name='segment_id']")) for m in masks) == [100, 101, 102, 103]
    for shape in masks:
        segment = by_id[shape.findtext("attribute[@name='segment_id']")]
        assert shape.findtext("attribute[@name='score']") == f"{segment.score:.2f}"
        assert (shape.get("label"), shape.get("source"), shape.get("occluded")) == (
            segment.class_name,
            "auto",
            "0",
        )
        assert shape.get("z_order") is not None and ", " in shape.get("rle")
        original = mask_utils.decode({"size": segment.rle["size"], "counts": segment.rle["counts"].encode()})
        assert np.array_equal(_cvat_rle_decode(shape, segment.height, segment.width), original)
    rectangle = next(m for m in masks if m.get("label") == "rectangle")
    # a filled box: the crop starts with a 1, so the first run (of 0s) is empty
    assert rectangle.get("rle") == f"0, {41 * 36}"
    assert (rectangle.get("left"), rectangle.get("top"), rectangle.get("width"), rectangle.get("height")) == (
        "50",
        "40",
        "41",
        "36",
    )


def test_cvat_refuses_unknown_shape(scene):
    images, segments = scene
    with pytest.raises(ValueError, match="shape"):
        cvat_images_xml(images, segments, CLASSES, shape="box")
