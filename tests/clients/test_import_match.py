"""Annotators' work read back and classified: our own exports round-trip unchanged, and every edit an
annotator makes in CVAT (moved, deleted, relabelled, drawn) comes back as one outcome."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from cvat_sdk.masks import encode_mask

from annotations.coco import mask_rle, uncompressed_rle
from annotations.errors import AnnotationFormatError
from annotations.polygons import polygons_mask
from clients.segments import import_shapes
from clients.segments.exports import coco_instances, cvat_images_xml
from clients.segments.import_match import classify_image, summary_counts
from clients.segments.import_shapes import ImportedFile, ImportedImage, read_annotator_file
from store.records import ImportOutcome, ShapeDecision, Status, StoredImage, StoredSegment

CLASSES = ["circle", "rectangle", "triangle"]
CLASS_IDS = {name: i for i, name in enumerate(CLASSES)}
W, H = 200, 150
IMAGE = StoredImage(10, "a/street.jpg", W, H, "0" * 64, 1000, False)

U, E, R, X, A, S = (
    ImportOutcome(v) for v in ("unchanged", "edited", "relabelled", "rejected", "added", "skipped")
)


def _blank() -> np.ndarray:
    return np.zeros((H, W), np.uint8)


def _circle(center, radius, hole=0) -> np.ndarray:
    mask = _blank()
    cv2.circle(mask, center, radius, 1, -1)
    if hole:
        cv2.circle(mask, center, hole, 0, -1)
    return mask


def _rect(x1, y1, x2, y2) -> np.ndarray:
    """Pixels x1 .. x2 - 1 × y1 .. y2 - 1."""
    mask = _blank()
    mask[y1:y2, x1:x2] = 1
    return mask


def _stored(seg_id, mask, class_id, score=0.5, status=Status.UNCHECKED, replaces=None, revision=1):
    return StoredSegment(
        id=seg_id,
        image_id=IMAGE.id,
        image=IMAGE.path,
        width=W,
        height=H,
        model="yolo",
        model_version="3",
        class_id=class_id,
        class_name=CLASSES[class_id],
        score=score,
        bbox=(0.0, 0.0, 1.0, 1.0),
        rle=mask_rle(mask),
        status=status,
        replaces=replaces,
        revision=revision,
    )


def _masks() -> dict[int, tuple[np.ndarray, int]]:
    speckled = _rect(60, 10, 96, 41)
    speckled[145, 195] = 1  # a one-pixel speck: the polygon export drops it
    triangle = _blank()
    cv2.fillPoly(triangle, [np.array([(80, 110), (100, 60), (120, 110)], np.int32)], 1)
    return {
        100: (_circle((30, 30), 14), 0),
        101: (speckled, 1),
        102: (_circle((130, 35), 16, hole=6), 0),  # polygons fill the hole
        103: (_rect(10, 70, 31, 101) | _rect(45, 80, 61, 111), 1),  # two outlines: grouped polygons
        104: (triangle, 2),
    }


@pytest.fixture
def stored() -> list[StoredSegment]:
    return [_stored(i, mask, c, score=1 - i / 1000, revision=i - 98) for i, (mask, c) in _masks().items()]


def _read(tmp_path: Path, content: bytes | dict, name: str = "export") -> ImportedFile:
    if isinstance(content, dict):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(content))
    else:
        path = tmp_path / f"{name}.xml"
        path.write_bytes(content)
    return read_annotator_file(path)


def _classify(imported: ImportedFile, stored) -> list[ShapeDecision]:
    (image,) = imported.images
    assert image.name == IMAGE.path and (image.width, image.height) == (W, H)
    return classify_image(image, stored, CLASS_IDS)


def _outcomes(decisions) -> list[tuple[ImportOutcome, int | None]]:
    return [(d.outcome, d.segment_id) for d in decisions]


def _assert_new(decision: ShapeDecision, mask: np.ndarray, label: str) -> None:
    """The segment as the annotator left it: exactly the drawn raster, in the store's form."""
    new = decision.new
    assert new is not None
    assert (new.class_id, new.class_name, new.score) == (CLASS_IDS[label], label, 1.0)
    assert new.rle_counts == mask_rle(mask)["counts"]
    ys, xs = np.nonzero(mask)
    assert new.bbox == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


# ---------------------------------------------------------------------------------------------
# our exports come back unchanged


@pytest.mark.parametrize("shape", ["polygon", "mask"])
def test_a_cvat_export_reads_back_unchanged(tmp_path, stored, shape):
    imported = _read(tmp_path, cvat_images_xml([IMAGE], stored, CLASSES, shape=shape))
    assert imported.fmt == "cvat" and (imported.task_id, imported.job_id) == (None, None)
    decisions = _classify(imported, stored)
    assert _outcomes(decisions) == [(U, i) for i in range(100, 105)]
    assert [d.revision for d in decisions] == [2, 3, 4, 5, 6]
    assert all(d.new is None and d.note == "" for d in decisions)
    assert summary_counts(decisions) == {
        "unchanged": 5,
        "edited": 0,
        "relabelled": 0,
        "rejected": 0,
        "added": 0,
        "skipped": 0,
    }


def test_a_multi_outline_segment_comes_back_as_one_object(tmp_path, stored):
    segment = stored[3]  # 103: two outlines
    root = ET.fromstring(cvat_images_xml([IMAGE], [segment], CLASSES))
    two = _image_element(root).findall("polygon")
    assert len(two) == 2 and two[0].get("group_id") == two[1].get("group_id") is not None
    (image,) = _read(tmp_path, ET.tostring(root)).images
    assert [(s.segment_id, s.group) for s in image.shapes] == [(103, int(two[0].get("group_id")))] * 2
    assert _outcomes(classify_image(image, [segment], CLASS_IDS)) == [(U, 103)]
    for polygon in two:  # without the ids, the group still holds the outlines together
        polygon.remove(polygon.find("attribute[@name='segment_id']"))
    decisions = _classify(_read(tmp_path, ET.tostring(root), name="no-ids"), [segment])
    assert _outcomes(decisions) == [(U, 103)] and decisions[0].note.endswith("IoU 1.00")


def test_a_coco_export_reads_back_unchanged(tmp_path, stored):
    imported = _read(tmp_path, coco_instances([IMAGE], stored, CLASSES))
    assert imported.fmt == "coco"
    assert [s.kind for s in imported.images[0].shapes] == ["mask"] * 5
    assert _outcomes(_classify(imported, stored)) == [(U, i) for i in range(100, 105)]


# ---------------------------------------------------------------------------------------------
# what annotators do


def _image_element(root: ET.Element) -> ET.Element:
    (image,) = root.findall("image")
    return image


def _shapes_of(image: ET.Element, segment_id: int) -> list[ET.Element]:
    return [e for e in image if e.findtext("attribute[@name='segment_id']") == str(segment_id)]


def _add(image: ET.Element, tag: str, label: str, segment_id: str | None = "", **geometry: str) -> ET.Element:
    """A shape as CVAT writes one the annotator drew: the text attribute at its empty default."""
    element = ET.SubElement(image, tag, {"label": label, "source": "manual", "occluded": "0", **geometry})
    element.set("z_order", "0")
    if segment_id is not None:
        ET.SubElement(element, "attribute", {"name": "segment_id"}).text = segment_id
    return element


def _points(element: ET.Element) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in element.get("points").split(";")])


def _write_points(element: ET.Element, xy: np.ndarray) -> None:
    element.set("points", ";".join(f"{x:.2f},{y:.2f}" for x, y in xy))


def _cvat_sdk_mask(bitmap: np.ndarray) -> dict[str, str]:
    """cvat-sdk's own encoding, as CVAT for images writes it: ``[runs..., left, top, right, bottom]``
    (inclusive) → ``rle left top width height``."""
    *runs, left, top, right, bottom = encode_mask(bitmap.astype(bool))
    return {
        "rle": ", ".join(str(int(r)) for r in runs),
        "left": str(left),
        "top": str(top),
        "width": str(right - left + 1),
        "height": str(bottom - top + 1),
    }


def test_every_edit_an_annotator_makes_is_one_outcome(tmp_path, stored):
    root = ET.fromstring(cvat_images_xml([IMAGE], stored, CLASSES))
    image = _image_element(root)
    (moved,) = _shapes_of(image, 100)
    moved_xy = _points(moved) + np.array([3, 0])  # 3 px to the right
    _write_points(moved, moved_xy)
    for shape in _shapes_of(image, 104):  # deleted
        image.remove(shape)
    (relabelled,) = _shapes_of(image, 101)
    relabelled.set("label", "circle")
    drawn_xy = np.array([[140.0, 60.0], [190.0, 60.0], [165.0, 95.0]])
    _write_points(_add(image, "polygon", "triangle", points=""), drawn_xy)
    bitmap = _blank()
    cv2.circle(bitmap, (177, 122), 14, 1, -1)
    cv2.circle(bitmap, (177, 122), 5, 0, -1)  # a mask keeps its hole
    _add(image, "mask", "rectangle", segment_id=None, **_cvat_sdk_mask(bitmap))

    decisions = _classify(_read(tmp_path, ET.tostring(root)), stored)

    assert _outcomes(decisions) == [(E, 100), (R, 101), (U, 102), (U, 103), (X, 104), (A, None), (A, None)]
    assert [d.revision for d in decisions[:5]] == [2, 3, 4, 5, 6]
    edited, relabel, _, _, rejected, drawn, masked = decisions
    _assert_new(edited, polygons_mask([moved_xy], H, W), "circle")
    assert np.array_equal(polygons_mask([moved_xy], H, W)[:, 3:], _circle((30, 30), 14)[:, :-3])  # moved
    # the polygon export dropped the speck; relabelling keeps what the annotator saw
    speckless = _masks()[101][0].copy()
    speckless[145, 195] = 0
    _assert_new(relabel, speckless, "circle")
    assert rejected.new is None
    _assert_new(drawn, polygons_mask([drawn_xy], H, W), "triangle")
    _assert_new(masked, bitmap, "rectangle")
    assert all(d.note == "" for d in decisions)  # all matched by id (or added)
    assert summary_counts(decisions) == {
        "unchanged": 2,
        "edited": 1,
        "relabelled": 1,
        "rejected": 1,
        "added": 2,
        "skipped": 0,
    }


def test_what_cannot_be_applied_is_skipped_and_said(tmp_path, stored):
    root = ET.fromstring(cvat_images_xml([IMAGE], stored, CLASSES))
    image = _image_element(root)
    (relabelled,) = _shapes_of(image, 101)
    relabelled.set("label", "dog")  # no such class: 101 is left alone, not rejected
    (unknown_id,) = _shapes_of(image, 100)
    unknown_id.find("attribute[@name='segment_id']").text = "999"  # names no segment here: by IoU
    (not_a_number,) = _shapes_of(image, 102)
    not_a_number.find("attribute[@name='segment_id']").text = "abc"
    _add(image, "polygon", "triangle", points="150,100;210,100;180,140")  # past the right edge
    _add(image, "polygon", "triangle", points="150.00,100.00;160.00,100.00;155.00,100.00")  # no area
    _add(image, "mask", "circle", rle="0, 4", left="198", top="0", width="4", height="1")  # box outside
    _add(image, "polyline", "circle", points="0,0;5,5")

    decisions = _classify(_read(tmp_path, ET.tostring(root)), stored)

    assert _outcomes(decisions) == [(U, 100), (U, 102), (U, 103), (U, 104)] + [(S, None)] * 5
    by_iou, bad_id = decisions[0], decisions[1]
    assert by_iou.note == (
        "image 'a/street.jpg', polygon 1: segment_id 999 names no stored segment of this image; "
        "matched by class and IoU 1.00"
    )
    assert bad_id.note == (
        "image 'a/street.jpg', polygon 3: segment_id 'abc' is not a whole number: read as none; "
        "matched by class and IoU 0.86"  # the ring's hole, which the polygon filled: still unchanged
    )
    assert [d.note for d in decisions[4:]] == [
        "image 'a/street.jpg', polygon 2: label 'dog' is not a class of the store",
        "image 'a/street.jpg', polygon 7: outside the 200×150 image",
        "image 'a/street.jpg', polygon 8: has no pixels",
        "image 'a/street.jpg', mask 1: outside the 200×150 image",
        "image 'a/street.jpg', polyline 1: not read (polygons, boxes and masks are)",
    ]


def test_a_part_grouped_with_a_segment_joins_it(tmp_path, stored):
    """An outline the annotator drew and grouped with a segment's (CVAT's group_id) is part of it."""
    root = ET.fromstring(cvat_images_xml([IMAGE], stored[:1], CLASSES))
    image = _image_element(root)
    (circle,) = _shapes_of(image, 100)
    circle.set("group_id", "7")
    part = _add(image, "polygon", "circle", points="60,60;80,60;80,80;60,80")
    part.set("group_id", "7")
    decisions = _classify(_read(tmp_path, ET.tostring(root)), stored[:1])
    assert _outcomes(decisions) == [(E, 100)]
    _assert_new(decisions[0], _masks()[100][0] | _rect(60, 60, 80, 80), "circle")


def test_one_id_on_shapes_of_two_labels_goes_to_the_one_of_its_class(tmp_path, stored):
    root = ET.fromstring(cvat_images_xml([IMAGE], stored[:1], CLASSES))
    image = _image_element(root)
    copy = _add(image, "polygon", "rectangle", segment_id="100", points="60,60;80,60;80,80;60,80")
    decisions = _classify(_read(tmp_path, ET.tostring(root)), stored[:1])
    assert _outcomes(decisions) == [(U, 100), (A, None)]
    assert decisions[1].note == (
        "image 'a/street.jpg', polygon 2: segment_id 100 is also on a 'circle' shape, which takes it"
    )
    _assert_new(decisions[1], polygons_mask([_points(copy)], H, W), "rectangle")


def test_without_ids_shapes_are_matched_by_class_and_iou(tmp_path, stored):
    root = ET.fromstring(cvat_images_xml([IMAGE], stored, CLASSES))
    image = _image_element(root)
    (moved,) = _shapes_of(image, 100)
    moved_xy = _points(moved) + np.array([2, 1])
    _write_points(moved, moved_xy)
    (relabelled,) = _shapes_of(image, 104)
    relabelled.set("label", "circle")
    (deleted,) = _shapes_of(image, 102)
    image.remove(deleted)
    for shape in image:  # a CVAT task whose labels do not declare segment_id drops it
        for attribute in shape.findall("attribute[@name='segment_id']"):
            shape.remove(attribute)

    decisions = _classify(_read(tmp_path, ET.tostring(root)), stored)

    assert _outcomes(decisions) == [(E, 100), (U, 101), (X, 102), (U, 103), (R, 104)]
    edited, kept, _, grouped, relabel = decisions
    assert edited.note.startswith("image 'a/street.jpg', polygon 1: matched by class and IoU 0.")
    _assert_new(edited, polygons_mask([moved_xy], H, W), "circle")
    assert kept.note == "image 'a/street.jpg', polygon 2: matched by class and IoU 1.00"
    assert grouped.note.endswith("matched by class and IoU 1.00")  # its two polygons kept together
    assert relabel.note.endswith("matched by IoU (across classes, from 'triangle') 1.00")
    _assert_new(relabel, _masks()[104][0], "circle")


def test_cvat_coco_export_with_uncompressed_rle_reads(tmp_path, stored):
    """CVAT's COCO 1.0 export: masks as uncompressed RLE with iscrowd 1, the segment id among the
    annotation's attributes (as text), a box as a bbox without segmentation."""
    circle, rectangle = _masks()[100][0], _masks()[101][0]
    document = {
        "licenses": [],
        "info": {},
        "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(CLASSES)],
        "images": [{"id": 1, "file_name": IMAGE.path, "width": W, "height": H}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "segmentation": uncompressed_rle(circle),
                "area": float(circle.sum()),
                "bbox": [16.0, 16.0, 29.0, 29.0],
                "iscrowd": 1,
                "attributes": {"occluded": False, "segment_id": "100"},
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 2,
                "segmentation": uncompressed_rle(rectangle),
                "area": float(rectangle.sum()),
                "bbox": [60.0, 10.0, 36.0, 31.0],
                "iscrowd": 1,
                "attributes": {"occluded": False, "segment_id": "101"},
            },
            {
                "id": 3,
                "image_id": 1,
                "category_id": 3,
                "segmentation": [],
                "area": 400.0,
                "bbox": [150.0, 100.0, 20.0, 20.0],
                "iscrowd": 0,
                "attributes": {"occluded": False, "segment_id": ""},
            },
        ],
    }
    imported = _read(tmp_path, document)
    assert [(s.kind, s.segment_id) for s in imported.images[0].shapes] == [
        ("mask", 100),
        ("mask", 101),
        ("box", None),
    ]
    decisions = _classify(imported, stored[:2])
    assert _outcomes(decisions) == [(U, 100), (U, 101), (A, None)]
    _assert_new(decisions[2], _rect(150, 100, 170, 120), "triangle")


def test_coco_polygons_of_one_annotation_are_one_object(tmp_path, stored):
    segment = stored[3]  # 103: two outlines
    document = coco_instances([IMAGE], [segment], CLASSES)
    (annotation,) = document["annotations"]
    annotation["segmentation"] = [
        [10, 70, 31, 70, 31, 101, 10, 101],
        [45, 80, 61, 80, 61, 111, 45, 111],
    ]
    del annotation["segment_id"]
    (image,) = _read(tmp_path, document).images
    assert [s.where for s in image.shapes] == [
        "image 'a/street.jpg', annotation 103 polygon 1",
        "image 'a/street.jpg', annotation 103 polygon 2",
    ]
    decisions = classify_image(image, [segment], CLASS_IDS)
    assert _outcomes(decisions) == [(U, 103)] and "IoU 1.00" in decisions[0].note


# ---------------------------------------------------------------------------------------------
# the store's side: statuses, corrections, sizes


def test_rejected_and_replaced_segments_are_matched_by_id_only(tmp_path):
    circle, moved = _circle((30, 30), 14), _circle((32, 30), 14)
    original = _stored(1, circle, 0, status=Status.APPROVED)  # replaced by its correction, 2
    correction = _stored(2, moved, 0, status=Status.APPROVED, replaces=1)
    rejected = _stored(3, _rect(100, 100, 130, 130), 1, status=Status.REJECTED)
    also_rejected = _stored(4, _rect(150, 20, 180, 50), 1, status=Status.REJECTED)
    exported = [correction, rejected]  # what an export with the rejected ones wrote
    root = ET.fromstring(cvat_images_xml([IMAGE], exported, CLASSES))
    _add(_image_element(root), "polygon", "rectangle", points="150,20;180,20;180,50;150,50")
    stored = [original, correction, rejected, also_rejected]

    decisions = _classify(_read(tmp_path, ET.tostring(root)), stored)

    # 1 and 4: no decision (replaced, rejected, nothing names them); 3 is kept: approved again;
    # the shape drawn where 4 was rejected is a new segment, not 4 taken back
    assert _outcomes(decisions) == [(U, 2), (U, 3), (A, None)]


def test_a_deleted_correction_is_rejected_not_its_original(tmp_path):
    original = _stored(1, _circle((30, 30), 14), 0)
    correction = _stored(2, _circle((32, 30), 14), 0, replaces=1)
    root = ET.fromstring(cvat_images_xml([IMAGE], [correction], CLASSES))
    for shape in _shapes_of(_image_element(root), 2):
        _image_element(root).remove(shape)
    assert _outcomes(_classify(_read(tmp_path, ET.tostring(root)), [original, correction])) == [(X, 2)]


def test_an_image_of_another_size_than_stored_is_not_applied(stored):
    shape_image = ImportedImage(IMAGE.path, W + 1, H)
    assert classify_image(shape_image, stored, CLASS_IDS) == [
        ShapeDecision(
            S,
            note="image 'a/street.jpg' is 201×150 in the file, but its stored segment 100 is 200×150: "
            "not applied",
        )
    ]


# ---------------------------------------------------------------------------------------------
# reading: ids, bounds, errors


def test_the_cvat_task_and_job_reach_the_imported_file(tmp_path, stored):
    root = ET.fromstring(cvat_images_xml([IMAGE], stored, CLASSES))
    task = root.find("meta/task")
    ET.SubElement(task, "id").text = "12"
    segment = ET.SubElement(ET.SubElement(task, "segments"), "segment")
    ET.SubElement(segment, "id").text = "40"
    ET.SubElement(segment, "url").text = "http://localhost:8080/api/jobs/41"
    imported = _read(tmp_path, ET.tostring(root))
    assert (imported.task_id, imported.job_id) == (12, 41)


def _one_image_xml(width: int, height: int, shapes: str = "") -> bytes:
    return (
        f'<annotations><version>1.1</version><image id="0" name="big.jpg" width="{width}" '
        f'height="{height}">{shapes}</image></annotations>'
    ).encode()


def test_an_image_over_100_megapixels_is_refused(tmp_path):
    path = tmp_path / "big.xml"
    path.write_bytes(_one_image_xml(20_000, 5_001))
    with pytest.raises(AnnotationFormatError) as caught:
        read_annotator_file(path)
    assert str(caught.value) == (
        f"{path}: image 'big.jpg' is 20000×5001 pixels, over the 100 megapixels an import reads"
    )
    path.write_bytes(_one_image_xml(20_000, 5_000))
    assert read_annotator_file(path).images[0].width == 20_000


def test_a_file_of_too_many_shapes_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(import_shapes, "MAX_SHAPES", 2)
    polygon = '<polygon label="c" points="0,0;4,0;4,4"/>'
    path = tmp_path / "many.xml"
    path.write_bytes(_one_image_xml(10, 10, polygon * 3))
    with pytest.raises(AnnotationFormatError, match=r"many\.xml: more than 2 shapes"):
        read_annotator_file(path)
    document = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "c"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4]] * 3}],
    }
    with pytest.raises(AnnotationFormatError, match=r"many\.json: more than 2 shapes"):
        _read(tmp_path, document, name="many")


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (
            {"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1]},
            "annotation 1 names image 7, not in images",
        ),
        (
            {"image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1]},
            "annotation 1 has category 9, not in categories",
        ),
        ({"image_id": 1, "category_id": 1}, "no segmentation, and no bbox"),
        (
            {"image_id": 1, "category_id": 1, "segmentation": {"size": [4, 4], "counts": [16]}},
            "RLE size [4, 4]",
        ),
        (
            {"image_id": 1, "category_id": 1, "segmentation": {"size": [10, 10], "counts": [5, 5]}},
            "cover 10 pixels",
        ),
        ({"image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4]]}, "not [x1, y1, x2, y2, ...]"),
    ],
)
def test_what_breaks_coco_says_where(tmp_path, annotation, message):
    document = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "c"}],
        "annotations": [annotation],
    }
    with pytest.raises(AnnotationFormatError) as caught:
        _read(tmp_path, document, name="bad")
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / 'bad.json'}: ") and message in text and "\n" not in text


def test_a_cvat_mask_whose_runs_do_not_fill_its_box_is_refused(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_bytes(
        _one_image_xml(4, 4, '<mask label="c" rle="1, 2" left="0" top="0" width="2" height="2"/>')
    )
    with pytest.raises(
        AnnotationFormatError, match=r"bad\.xml: image 'big.jpg', mask 1: the mask's runs cover 3"
    ):
        read_annotator_file(path)


def test_neither_format_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(AnnotationFormatError, match="neither CVAT for images XML nor COCO JSON"):
        read_annotator_file(path)


def test_summary_counts_has_every_outcome():
    assert summary_counts([]) == dict.fromkeys(
        ["unchanged", "edited", "relabelled", "rejected", "added", "skipped"], 0
    )
    assert summary_counts([ShapeDecision(A), ShapeDecision(A), ShapeDecision(S)])["added"] == 2
