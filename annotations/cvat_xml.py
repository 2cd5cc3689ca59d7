"""CVAT for images 1.1 XML: what CVAT's "CVAT for images 1.1" export writes and its import reads.

::

    <annotations>
      <version>1.1</version>
      <meta><task> name, size, mode, ..., <labels><label> name, type, attributes </label></labels>
            </task><dumped/></meta>
      <image id="<frame>" name="<file>" width="W" height="H">
        <polygon label="car" source="auto" occluded="0" points="x1,y1;x2,y2;..." z_order="0"
                 group_id="1"><attribute name="score">0.90</attribute></polygon>
        <box label="car" source="auto" occluded="0" xtl="1.00" ytl="2.00" xbr="3.00" ybr="4.00"
             z_order="0"/>
        <mask label="car" source="auto" occluded="0" rle="0, 5, 3" left="1" top="2" width="4"
              height="2" z_order="0"/>
      </image>
    </annotations>

Polygon points and box corners are in the package's pixel convention (the package docstring),
written with two decimals as CVAT writes them; a ``<mask>`` is ``annotations.cvat_rle``'s encoding.
``<image id>`` is the frame number, CVAT's index of the image in its task. CVAT keeps only the
shape attributes the task's labels declare, and builds labels from the task, not from the file.
Reading keeps polygons, boxes and masks; any other shape (polyline, points, ellipse, skeleton,
tag...) is listed by its tag in ``CvatImage.unsupported``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from annotations.cvat_rle import CvatMask, decode_cvat_mask
from annotations.errors import AnnotationFormatError
from annotations.polygons import flat, has_area, mask_polygons, polygons_mask

VERSION = "1.1"
# CVAT's editor slows down past about a thousand points per shape
MAX_POLYGON_POINTS = 1000
# outlines enclosing fewer pixels than this are specks, not objects
MIN_POLYGON_AREA = 4.0


@dataclass(frozen=True)
class LabelAttribute:
    """An attribute a label declares in ``<meta>`` (``input_type``: number, text, checkbox, radio,
    select; a number's ``values`` are its minimum, maximum and step)."""

    name: str
    input_type: str
    values: tuple[str, ...] = ()
    default_value: str = ""
    mutable: bool = False


@dataclass(frozen=True)
class Label:
    name: str
    attributes: tuple[LabelAttribute, ...] = ()
    type: str = "any"


@dataclass(kw_only=True)
class Shape:
    """What every shape element carries."""

    label: str
    z_order: int = 0
    group_id: int | None = None
    source: str = "manual"
    occluded: bool = False
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True)
class PolygonShape(Shape):
    points: np.ndarray  # (k, 2) x, y

    def mask(self, height: int, width: int) -> np.ndarray:
        return polygons_mask([self.points], height, width)


@dataclass(kw_only=True)
class BoxShape(Shape):
    xtl: float
    ytl: float
    xbr: float
    ybr: float

    def mask(self, height: int, width: int) -> np.ndarray:
        corners = [self.xtl, self.ytl, self.xbr, self.ytl, self.xbr, self.ybr, self.xtl, self.ybr]
        return polygons_mask([corners], height, width)


@dataclass(kw_only=True)
class MaskShape(Shape):
    encoded: CvatMask

    def mask(self, height: int, width: int) -> np.ndarray:
        return decode_cvat_mask(self.encoded, height, width).astype(np.uint8)


@dataclass
class CvatImage:
    frame: int
    name: str
    width: int
    height: int
    shapes: list[Shape] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # tags of the shapes not read


@dataclass
class CvatTask:
    """A task's (or job's, or project's) annotations. ``task_id`` and ``job_id`` are CVAT's, when
    the file says (``read_cvat_xml``); writing leaves them out (our exports come from no task)."""

    name: str
    labels: list[Label]
    images: list[CvatImage]
    task_id: int | None = None
    job_id: int | None = None


def cvat_polygons(
    mask: np.ndarray, max_points: int = MAX_POLYGON_POINTS, min_area: float = MIN_POLYGON_AREA
) -> list[np.ndarray]:
    """The polygons a mask becomes in CVAT: its outer outlines along pixel edges, largest first,
    specks dropped, simplified only when they have more than ``max_points`` points together
    (``annotations.polygons.mask_polygons``). Holes are lost: use a ``<mask>`` to keep them. A
    polygon simplification left without a pixel (a sliver), or whose signed parts cancel out, is
    dropped: CVAT would draw nothing, and ``polygons_mask`` fills nothing."""
    height, width = mask.shape[:2]
    polygons = [p for p in mask_polygons(mask, max_points, min_area) if has_area(p)]
    if not polygons:
        return polygons
    areas = mask_utils.area(mask_utils.frPyObjects([flat(p) for p in polygons], height, width))
    return [p for p, area in zip(polygons, areas, strict=True) if area > 0]


# ---------------------------------------------------------------------------------------------
# writing


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def _label_element(parent: ET.Element, label: Label) -> None:
    element = ET.SubElement(parent, "label")
    _text(element, "name", label.name)
    _text(element, "type", label.type)
    attributes = ET.SubElement(element, "attributes")
    for spec in label.attributes:
        attribute = ET.SubElement(attributes, "attribute")
        _text(attribute, "name", spec.name)
        _text(attribute, "mutable", str(spec.mutable))
        _text(attribute, "input_type", spec.input_type)
        _text(attribute, "default_value", spec.default_value)
        _text(attribute, "values", "\n".join(spec.values))


def _meta(task: CvatTask, stamp: str) -> ET.Element:
    meta = ET.Element("meta")
    element = ET.SubElement(meta, "task")
    for tag, text in (
        ("name", task.name),
        ("size", str(len(task.images))),
        ("mode", "annotation"),
        ("overlap", "0"),
        ("bugtracker", ""),
        ("flipped", "False"),
        ("created", stamp),
        ("updated", stamp),
    ):
        _text(element, tag, text)
    labels = ET.SubElement(element, "labels")
    for label in task.labels:
        _label_element(labels, label)
    _text(meta, "dumped", stamp)
    return meta


def _number(value: float) -> str:
    return f"{float(value):.2f}"


def _geometry(shape: Shape) -> tuple[str, dict[str, str]]:
    if isinstance(shape, PolygonShape):
        points = ";".join(f"{_number(x)},{_number(y)}" for x, y in np.asarray(shape.points, float))
        return "polygon", {"points": points}
    if isinstance(shape, BoxShape):
        return "box", {k: _number(getattr(shape, k)) for k in ("xtl", "ytl", "xbr", "ybr")}
    if isinstance(shape, MaskShape):
        m = shape.encoded
        return "mask", {
            "rle": m.rle_text(),
            **{k: str(getattr(m, k)) for k in ("left", "top", "width", "height")},
        }
    raise TypeError(f"not a CVAT shape: {type(shape).__name__}")


def _shape_element(parent: ET.Element, shape: Shape) -> None:
    tag, geometry = _geometry(shape)
    element = ET.SubElement(parent, tag)
    element.attrib.update(
        {"label": shape.label, "source": shape.source, "occluded": str(int(shape.occluded))}
    )
    element.attrib.update(geometry)
    element.set("z_order", str(shape.z_order))
    if shape.group_id is not None:
        element.set("group_id", str(shape.group_id))
    for name, value in shape.attributes.items():
        _text(element, "attribute", value).set("name", name)


def write_cvat_xml(task: CvatTask, created: datetime | None = None) -> bytes:
    """The task as CVAT for images 1.1 XML (UTF-8 bytes with the XML declaration); ``created``
    (default now) stamps ``<meta>``."""
    stamp = (created or datetime.now(timezone.utc).replace(microsecond=0)).isoformat()
    root = ET.Element("annotations")
    _text(root, "version", VERSION)
    root.append(_meta(task, stamp))
    for image in task.images:
        element = ET.SubElement(root, "image")
        element.attrib.update(
            {
                "id": str(image.frame),
                "name": image.name,
                "width": str(image.width),
                "height": str(image.height),
            }
        )
        for shape in image.shapes:
            _shape_element(element, shape)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# ---------------------------------------------------------------------------------------------
# reading


def _required(element: ET.Element, name: str, where: str) -> str:
    value = element.get(name)
    if value is None:
        raise AnnotationFormatError(f"{where}: <{element.tag}> without {name}")
    return value


def _float(element: ET.Element, name: str, where: str) -> float:
    text = _required(element, name, where)
    try:
        return float(text)
    except ValueError:
        raise AnnotationFormatError(f"{where}: <{element.tag}> {name}={text!r} is not a number") from None


def _int(text: str | None, what: str, where: str) -> int:
    try:
        return int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AnnotationFormatError(f"{where}: {what} {text!r} is not a whole number") from None


def _polygon_points(text: str, where: str) -> np.ndarray:
    try:
        pairs = [[float(v) for v in pair.split(",")] for pair in text.split(";") if pair.strip()]
        xy = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    except ValueError:
        raise AnnotationFormatError(f"{where}: polygon points {text[:40]!r} are not x,y;x,y;...") from None
    if len(xy) != len(pairs):
        raise AnnotationFormatError(f"{where}: polygon points {text[:40]!r} are not x,y;x,y;...")
    return xy


def _common(element: ET.Element, where: str) -> dict:
    group = element.get("group_id")
    return {
        "label": _required(element, "label", where),
        "z_order": _int(element.get("z_order", "0"), "z_order", where),
        "group_id": None if group is None else _int(group, "group_id", where),
        "source": element.get("source", "manual"),
        "occluded": element.get("occluded", "0") == "1",
        "attributes": {a.get("name", ""): a.text or "" for a in element.findall("attribute")},
    }


def _shape(element: ET.Element, where: str) -> Shape | None:
    if element.tag == "polygon":
        return PolygonShape(
            points=_polygon_points(_required(element, "points", where), where), **_common(element, where)
        )
    if element.tag == "box":
        corners = {k: _float(element, k, where) for k in ("xtl", "ytl", "xbr", "ybr")}
        return BoxShape(**corners, **_common(element, where))
    if element.tag == "mask":
        fields = [_required(element, k, where) for k in ("rle", "left", "top", "width", "height")]
        return MaskShape(encoded=CvatMask.from_xml(*fields), **_common(element, where))
    return None


def _image(element: ET.Element) -> CvatImage:
    name = element.get("name", "")
    where = f"image {element.get('id')} {name!r}"
    image = CvatImage(
        _int(element.get("id"), "id", where),
        name,
        _int(element.get("width"), "width", where),
        _int(element.get("height"), "height", where),
    )
    for child in element:
        shape = _shape(child, where)
        if shape is None:
            image.unsupported.append(child.tag)
        else:
            image.shapes.append(shape)
    return image


def _label(element: ET.Element) -> Label:
    attributes = tuple(
        LabelAttribute(
            name=a.findtext("name", ""),
            input_type=a.findtext("input_type", ""),
            values=tuple((a.findtext("values") or "").splitlines()),
            default_value=a.findtext("default_value", ""),
            mutable=a.findtext("mutable", "False") == "True",
        )
        for a in element.findall("attributes/attribute")
    )
    return Label(element.findtext("name", ""), attributes, element.findtext("type", "any"))


# a job's address in <segments><segment><url>: "<host>/api/jobs/<id>" (CVAT 2), "<host>/?id=<id>" (1)
_JOB_URL = re.compile(r"(?:/jobs/|[?&]id=)(\d+)/?$")


def _whole_or_none(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def _cvat_ids(meta: ET.Element | None) -> tuple[int | None, int | None]:
    """The task and job ids of CVAT's ``<meta>``, where it says them.

    A job export has ``<meta><job><id>`` (no task id). A task export has ``<meta><task><id>`` and
    one ``<segments><segment>`` per annotation job; a segment's ``<id>`` is the segment's, not the
    job's (CVAT numbers them apart), so the job id is read from the segment's ``<url>``, and only
    when there is exactly one segment (a task of one job)."""
    if meta is None:
        return None, None
    job = meta.find("job")
    if job is not None:
        return None, _whole_or_none(job.findtext("id"))
    task = meta.find("task")
    if task is None:
        return None, None
    segments = task.findall("segments/segment")
    url = (segments[0].findtext("url") or "").strip() if len(segments) == 1 else ""
    found = _JOB_URL.search(url)
    return _whole_or_none(task.findtext("id")), int(found.group(1)) if found else None


def read_cvat_xml(source: bytes | Path) -> CvatTask:
    """A CVAT for images 1.1 file (its path, or its bytes) as a task; AnnotationFormatError when it
    is not one. Labels are those of ``<meta><task>`` (or of ``<meta><project>``, for a project
    export, or ``<meta><job>``, for a job export); the ids are ``_cvat_ids``'."""
    where = str(source) if isinstance(source, Path) else "CVAT XML"
    try:
        root = ET.parse(source).getroot() if isinstance(source, Path) else ET.fromstring(source)
    except ET.ParseError as exc:
        raise AnnotationFormatError(f"{where}: not XML ({exc})") from None
    if root.tag != "annotations":
        raise AnnotationFormatError(f"{where}: <{root.tag}> is not CVAT's <annotations>")
    meta = root.find("meta/task")
    for other in ("meta/project", "meta/job"):
        if meta is None:
            meta = root.find(other)
    labels = [] if meta is None else [_label(e) for e in meta.findall("labels/label")]
    name = "" if meta is None else meta.findtext("name", "")
    try:
        images = [_image(e) for e in root.findall("image")]
    except AnnotationFormatError as exc:
        raise AnnotationFormatError(f"{where}: {exc}") from None
    task_id, job_id = _cvat_ids(root.find("meta"))
    return CvatTask(name, labels, images, task_id, job_id)
