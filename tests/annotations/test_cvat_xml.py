"""CVAT for images 1.1 XML: written then parsed back, and a file as CVAT writes it read."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import cv2
import numpy as np
import pytest

from annotations.cvat_rle import encode_cvat_mask
from annotations.cvat_xml import (
    BoxShape,
    CvatImage,
    CvatTask,
    Label,
    LabelAttribute,
    MaskShape,
    PolygonShape,
    cvat_polygons,
    read_cvat_xml,
    write_cvat_xml,
)
from annotations.errors import AnnotationFormatError

H, W = 30, 40
SCORE = LabelAttribute("score", "number", ("0", "1", "0.01"), "0")


def _ring() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    cv2.circle(mask, (20, 15), 10, 1, -1)
    cv2.circle(mask, (20, 15), 4, 0, -1)
    return mask


def _task() -> CvatTask:
    blob = np.zeros((H, W), np.uint8)
    blob[2:9, 3:12] = 1
    blob[20:25, 30:38] = 1
    polygons = [
        PolygonShape(
            label="car", points=p, z_order=1, group_id=1, source="auto", attributes={"score": "0.90"}
        )
        for p in cvat_polygons(blob)
    ]
    box = BoxShape(label="sign", xtl=1.0, ytl=2.0, xbr=5.5, ybr=4.0, occluded=True)
    mask = MaskShape(label="car", encoded=encode_cvat_mask(_ring()), attributes={"score": "0.42"})
    images = [
        CvatImage(0, "a/first.jpg", W, H, [*polygons, box, mask]),
        CvatImage(1, "b/empty.jpg", W, H),
    ]
    return CvatTask("task-3", [Label("car", (SCORE,)), Label("sign")], images)


def test_written_then_read_back_is_the_same_task():
    task = _task()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    xml = write_cvat_xml(task, when)
    assert xml.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    back = read_cvat_xml(xml)
    assert (back.name, back.labels) == (task.name, task.labels)
    assert [(i.frame, i.name, i.width, i.height, i.unsupported) for i in back.images] == [
        (0, "a/first.jpg", W, H, []),
        (1, "b/empty.jpg", W, H, []),
    ]
    for ours, theirs in zip(task.images[0].shapes, back.images[0].shapes):
        assert type(ours) is type(theirs)
        for name in ("label", "z_order", "group_id", "source", "occluded", "attributes"):
            assert getattr(ours, name) == getattr(theirs, name), name
        assert np.array_equal(ours.mask(H, W), theirs.mask(H, W))
    assert back.images[0].shapes[-1].encoded == task.images[0].shapes[-1].encoded
    assert ET.fromstring(xml).findtext("meta/dumped") == when.isoformat()


def test_the_xml_is_written_as_cvat_writes_it():
    root = ET.fromstring(write_cvat_xml(_task()))
    assert root.findtext("version") == "1.1" and root.findtext("meta/task/size") == "2"
    (score,) = root.findall("meta/task/labels/label/attributes/attribute")
    assert [score.findtext(k) for k in ("name", "mutable", "input_type", "default_value", "values")] == [
        "score",
        "False",
        "number",
        "0",
        "0\n1\n0.01",
    ]
    image = root.find("image")
    assert image.attrib == {"id": "0", "name": "a/first.jpg", "width": "40", "height": "30"}
    polygon = image.find("polygon")
    assert list(polygon.attrib) == ["label", "source", "occluded", "points", "z_order", "group_id"]
    assert polygon.get("points").split(";")[0].count(".") == 2 and polygon.findtext("attribute") == "0.90"
    box = image.find("box")
    assert (box.get("xtl"), box.get("ytl"), box.get("xbr"), box.get("ybr"), box.get("occluded")) == (
        "1.00",
        "2.00",
        "5.50",
        "4.00",
        "1",
    )
    mask = image.find("mask")
    ys, xs = np.nonzero(_ring())
    assert (mask.get("left"), mask.get("top")) == (str(xs.min()), str(ys.min()))
    assert (mask.get("width"), mask.get("height")) == (
        str(xs.max() - xs.min() + 1),
        str(ys.max() - ys.min() + 1),
    )
    runs = [int(v) for v in mask.get("rle").split(", ")]
    assert mask.get("rle") == ", ".join(map(str, runs)) and sum(runs) == int(mask.get("width")) * int(
        mask.get("height")
    )
    assert runs[0] > 0  # the crop of a disc starts outside it: a run of 0s first


def test_shapes_rasterise_in_the_pixel_convention():
    box = BoxShape(label="b", xtl=1.0, ytl=2.0, xbr=4.0, ybr=3.0)  # pixels x 1..3, y 2
    expected = np.zeros((H, W), np.uint8)
    expected[2, 1:4] = 1
    assert np.array_equal(box.mask(H, W), expected)
    ring = _ring()
    assert np.array_equal(MaskShape(label="m", encoded=encode_cvat_mask(ring)).mask(H, W), ring)  # hole kept


CVAT_EXPORT = b"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <job><id>5</id></job>
    <project><name>proj</name><labels><label><name>cat</name><type>mask</type><attributes/></label>
    </labels></project>
  </meta>
  <image id="3" name="x.png" width="6" height="4">
    <mask label="cat" source="manual" occluded="0" rle="1, 2, 3, 2" left="1" top="1" width="4" height="2"
          z_order="0"></mask>
    <polygon label="cat" source="manual" occluded="0" points="0.00,0.00;2.00,0.00;2.00,2.00" z_order="1">
    </polygon>
    <polyline label="cat" source="manual" occluded="0" points="0,0;1,1" z_order="0"></polyline>
    <tag label="cat" source="manual"></tag>
  </image>
</annotations>
"""


def test_a_file_as_cvat_writes_it_reads(tmp_path):
    path = tmp_path / "annotations.xml"
    path.write_bytes(CVAT_EXPORT)
    task = read_cvat_xml(path)
    assert task.name == "proj" and [label.name for label in task.labels] == ["cat"]
    assert (task.task_id, task.job_id) == (None, 5)  # a job's export
    (image,) = task.images
    assert (image.frame, image.name, image.unsupported) == (3, "x.png", ["polyline", "tag"])
    mask, polygon = image.shapes
    assert mask.mask(4, 6).tolist() == [[0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0] * 6]
    assert polygon.z_order == 1 and polygon.points.tolist() == [[0, 0], [2, 0], [2, 2]]


def _one_image(shapes: str, width: str = "2") -> bytes:
    image = f'<image id="0" name="a" width="{width}" height="1">{shapes}</image>'
    return f"<annotations>{image}</annotations>".encode()


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (b"<annotations", "not XML"),
        (b"<dataset/>", "<dataset> is not CVAT's <annotations>"),
        (_one_image("", width="w"), "width 'w' is not a whole"),
        (_one_image('<polygon points="1,2;3,4;5,6"/>'), "<polygon> without label"),
        (_one_image('<polygon label="c" points="1,2;3"/>'), "polygon points '1,2;3' are not x,y;x,y"),
        (_one_image('<polygon label="c" points="1,2;x,3"/>'), "polygon points '1,2;x,3' are not x,y;x,y"),
        (_one_image('<box label="c" xtl="1" ytl="1" xbr="2"/>'), "<box> without ybr"),
        (_one_image('<mask label="c" rle="1, x" left="0" top="0" width="1" height="1"/>'), "not ' x'"),
    ],
)
def test_what_is_not_cvat_xml_says_where(xml, message):
    with pytest.raises(AnnotationFormatError, match=r"^CVAT XML: ") as caught:
        read_cvat_xml(xml)
    assert message in str(caught.value)


def test_a_mask_whose_runs_do_not_fill_its_box_is_refused_when_drawn():
    xml = (
        b'<annotations><image id="0" name="a" width="4" height="4"><mask label="c" rle="1, 2" left="0" '
        b'top="0" width="2" height="2"/></image></annotations>'
    )
    (shape,) = read_cvat_xml(xml).images[0].shapes
    with pytest.raises(AnnotationFormatError, match="runs cover 3 pixels, its 2×2 box 4"):
        shape.mask(4, 4)
    outside = MaskShape(label="c", encoded=encode_cvat_mask(np.ones((2, 2))))
    with pytest.raises(AnnotationFormatError, match="not inside the 1×1 image"):
        outside.mask(1, 1)


def _meta_export(meta: str) -> bytes:
    return (
        f"<annotations><version>1.1</version><meta>{meta}<dumped>now</dumped></meta></annotations>".encode()
    )


def _segments(*jobs: tuple[int, str]) -> str:
    """CVAT's <segments>: per job, its segment's id and the job's url."""
    listed = "".join(
        f"<segment><id>{i}</id><start>0</start><stop>9</stop><url>{u}</url></segment>" for i, u in jobs
    )
    return f"<segments>{listed}</segments>"


@pytest.mark.parametrize(
    ("meta", "task_id", "job_id"),
    [
        # a job's export: <meta><job><id> is the job's id (CVAT writes no task id there)
        (f"<job><id>31</id>{_segments((7, 'http://cvat/api/jobs/31'))}</job>", None, 31),
        # a task of one job: the segment's url names the job; its <id> is the segment's, not the job's
        (f"<task><id>12</id><name>t</name>{_segments((7, 'http://cvat/api/jobs/31'))}</task>", 12, 31),
        (f"<task><id>12</id>{_segments((7, 'http://cvat:8080/?id=30'))}</task>", 12, 30),  # CVAT 1
        # several jobs: which one the file came from is not said
        (f"<task><id>12</id>{_segments((7, '/api/jobs/31'), (8, '/api/jobs/32'))}</task>", 12, None),
        (f"<task><id>12</id>{_segments((7, ''))}</task>", 12, None),
        ("<task><name>ours</name></task>", None, None),  # our own export
        ("<project><id>4</id><name>p</name></project>", None, None),  # a project's id is neither
    ],
)
def test_task_and_job_ids_are_read_from_the_meta(meta, task_id, job_id):
    task = read_cvat_xml(_meta_export(meta))
    assert (task.task_id, task.job_id) == (task_id, job_id)


def test_a_job_export_gives_its_labels():
    task = read_cvat_xml(
        _meta_export("<job><id>31</id><labels><label><name>cat</name></label></labels></job>")
    )
    assert [label.name for label in task.labels] == ["cat"]
