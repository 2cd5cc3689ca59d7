"""What annotators get from the segment store: COCO instances JSON and CVAT for images 1.1 XML.

Pure functions over the store's records (no database, no server). The caller passes the images
and segments of a group; badlisted images, segments of images not passed, and segments whose
mask is empty are left out (there is nothing to annotate on them). Every class of
``class_names`` becomes a category (COCO) or label (CVAT), plus any class a segment names beyond
that list; a segment whose ``class_name`` contradicts ``class_names[class_id]`` is an error,
since writing it under either name would mislabel it.

CVAT notes (from cvat-ai/cvat ``cvat/apps/dataset_manager/formats/cvat.py``, its dumper and
``load_anno``, and ``cvat-sdk/cvat_sdk/masks.py``):

- ``<image id>`` is the frame number, CVAT's index of the image in the task; images are
  therefore numbered in path order, the order CVAT's default (lexicographical) sorting gives a
  task made of the same files. CVAT matches an imported image by its name first.
- CVAT's shapes have no score: the XML neither writes nor reads one, and import keeps only the
  attributes the task's label declares. The score travels as a ``score`` attribute, declared in
  ``<meta>`` as a number from 0 to 1 in steps of 0.01; the CVAT task's labels need that
  attribute for it to survive the import (CVAT builds labels from the task, not the file).
- ``<mask rle left top width height>``: ``rle`` is the run lengths, separated by ``", "``, of
  the mask's bounding-box crop read row by row, starting with a run of 0s (which may be empty);
  ``width``/``height`` are the crop's size (CVAT stores right = left + width - 1).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from clients.segments.mask_files import check_mask_size, score_order, segment_mask
from store.records import StoredImage, StoredSegment

# CVAT's canvas slows down past about a thousand points per shape
MAX_POLYGON_POINTS = 1000
# contours enclosing less than this (pixels²) are specks, not objects
MIN_POLYGON_AREA = 4.0
# approxPolyDP tolerance (pixels): the first one tried, doubled until the points fit
_FIRST_EPSILON = 0.5
_LAST_EPSILON = 32.0
# the declared range of the score attribute; scores are written with two decimals to match
_SCORE_VALUES = ("0", "1", "0.01")


# ---------------------------------------------------------------------------------------------
# what both formats share


def _kept_images(images: Sequence[StoredImage]) -> list[StoredImage]:
    return [image for image in images if not image.badlisted]


def _counts(segment: StoredSegment) -> bytes:
    counts = segment.rle["counts"]
    return counts.encode() if isinstance(counts, str) else counts


def _coco_rle(segment: StoredSegment) -> dict:
    """The RLE as pycocotools' C functions take it (counts as bytes)."""
    return {"size": list(segment.rle["size"]), "counts": _counts(segment)}


def _segments_by_image(
    images: Sequence[StoredImage], segments: Sequence[StoredSegment]
) -> dict[int, list[StoredSegment]]:
    """Segments grouped by image id, for the given images only, without empty masks."""
    by_id = {image.id: image for image in images}
    grouped: dict[int, list[StoredSegment]] = {image.id: [] for image in images}
    for segment in segments:
        image = by_id.get(segment.image_id)
        if image is None:
            continue
        check_mask_size(image, segment)
        if mask_utils.area(_coco_rle(segment)) > 0:
            grouped[image.id].append(segment)
    return grouped


def class_table(class_names: Sequence[str], segments: Sequence[StoredSegment]) -> dict[int, str]:
    """class_id → name: every class of ``class_names``, plus the classes segments name beyond it."""
    table = dict(enumerate(class_names))
    for segment in segments:
        if segment.class_id < 0:
            raise ValueError(f"segment {segment.id}: negative class id {segment.class_id}")
        known = table.setdefault(segment.class_id, segment.class_name)
        if known != segment.class_name:
            raise ValueError(
                f"segment {segment.id} is class {segment.class_id} {segment.class_name!r}, "
                f"but that class is {known!r} here"
            )
    return dict(sorted(table.items()))


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


# ---------------------------------------------------------------------------------------------
# COCO


def _coco_annotation(segment: StoredSegment) -> dict:
    """One COCO annotation. ``area`` and ``bbox`` come from the mask (pycocotools' area and
    toBbox), not from ``StoredSegment.bbox``: the model's box is not the tight box of its mask
    (YOLO zeroes the mask outside a box it predicts separately), and COCO's bbox is the
    segmentation's extent in pixel edges, which COCOeval's bbox mode and other tools expect."""
    rle = _coco_rle(segment)
    counts = segment.rle["counts"]
    return {
        "id": segment.id,
        "image_id": segment.image_id,
        "category_id": segment.class_id + 1,
        "segmentation": {
            "size": list(segment.rle["size"]),
            "counts": counts if isinstance(counts, str) else counts.decode(),
        },
        "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": 0,
        "score": segment.score,
        "status": segment.status.value,
        "model": segment.model,
        "model_version": segment.model_version,
        "segment_id": segment.id,
    }


def coco_instances(
    images: Sequence[StoredImage], segments: Sequence[StoredSegment], class_names: Sequence[str]
) -> dict:
    """A COCO instances dict (``pycocotools.coco.COCO`` loads it; its annotations also serve as
    detections for COCOeval). Image ids are the store's, category ids ``class_id + 1``,
    annotation ids the segment ids; every image passed is listed, with segments or not."""
    kept = sorted(_kept_images(images), key=lambda image: image.id)
    grouped = _segments_by_image(kept, segments)
    annotations = [
        _coco_annotation(s) for image in kept for s in sorted(grouped[image.id], key=lambda s: s.id)
    ]
    table = class_table(class_names, [s for group in grouped.values() for s in group])
    created = _now()
    return {
        "info": {
            "description": "segstack segment store export",
            "contributor": "segstack",
            "version": "1.0",
            "year": created.year,
            "date_created": created.isoformat(),
        },
        "licenses": [],
        "images": [
            {"id": image.id, "file_name": image.path, "width": image.width, "height": image.height}
            for image in kept
        ],
        "categories": [{"id": class_id + 1, "name": name} for class_id, name in table.items()],
        "annotations": annotations,
    }


# ---------------------------------------------------------------------------------------------
# masks → CVAT polygons and CVAT mask RLE


def _external_contours(mask: np.ndarray, min_area: float) -> list[np.ndarray]:
    """Outer contours without specks, the largest first."""
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    kept = [c for c in contours if cv2.contourArea(c) >= min_area]
    return sorted(kept, key=cv2.contourArea, reverse=True)


def _simplified(contours: list[np.ndarray], epsilon: float) -> list[np.ndarray]:
    polygons = [cv2.approxPolyDP(c, epsilon, True).reshape(-1, 2) for c in contours]
    return [p for p in polygons if len(p) >= 3]


def _within_budget(polygons: list[np.ndarray], max_points: int) -> list[np.ndarray]:
    """Largest first, the polygons that fit in ``max_points`` (what is left out are the smallest
    pieces of masks made of hundreds of blobs)."""
    kept, used = [], 0
    for polygon in polygons:
        if used + len(polygon) <= max_points:
            kept.append(polygon)
            used += len(polygon)
    return kept


def mask_polygons(
    mask: np.ndarray, max_points: int = MAX_POLYGON_POINTS, min_area: float = MIN_POLYGON_AREA
) -> list[np.ndarray]:
    """The polygons (each (k, 2) x, y pixel coordinates, k >= 3) of a binary mask's outer
    contours, largest first, specks dropped, simplified with a tolerance doubled from half a
    pixel until all of them together have at most ``max_points`` points. Holes are not kept."""
    contours = _external_contours(mask, min_area)
    epsilon = _FIRST_EPSILON
    polygons = _simplified(contours, epsilon)
    while sum(map(len, polygons)) > max_points:
        largest = max(map(len, polygons))
        if epsilon >= _LAST_EPSILON and largest <= max_points:
            break  # coarser would spoil the shapes: leave out the smallest blobs instead
        epsilon *= 2
        polygons = _simplified(contours, epsilon)
    return _within_budget(polygons, max_points)


@dataclass(frozen=True)
class CvatMask:
    """A mask as CVAT's ``<mask>`` holds it: run lengths of the crop, row by row, 0s first."""

    rle: list[int]
    left: int
    top: int
    width: int
    height: int


def cvat_mask(mask: np.ndarray) -> CvatMask | None:
    """CVAT's RLE of the mask's bounding-box crop; None for an empty mask."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    top, left = int(rows.min()), int(cols.min())
    bottom, right = int(rows.max()), int(cols.max())
    flat = (mask[top : bottom + 1, left : right + 1] > 0).ravel()
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    if flat[0]:
        runs.insert(0, 0)  # the first run counts 0s
    return CvatMask(runs, left, top, right - left + 1, bottom - top + 1)


# ---------------------------------------------------------------------------------------------
# CVAT for images 1.1


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def _label_element(parent: ET.Element, name: str) -> None:
    label = ET.SubElement(parent, "label")
    _text(label, "name", name)
    _text(label, "type", "any")
    attribute = ET.SubElement(ET.SubElement(label, "attributes"), "attribute")
    _text(attribute, "name", "score")
    _text(attribute, "mutable", "False")
    _text(attribute, "input_type", "number")
    _text(attribute, "default_value", _SCORE_VALUES[0])
    _text(attribute, "values", "\n".join(_SCORE_VALUES))


def _meta(task_name: str, size: int, labels: Sequence[str]) -> ET.Element:
    stamp = _now().isoformat()
    meta = ET.Element("meta")
    task = ET.SubElement(meta, "task")
    for tag, text in (
        ("name", task_name),
        ("size", str(size)),
        ("mode", "annotation"),
        ("overlap", "0"),
        ("bugtracker", ""),
        ("flipped", "False"),
        ("created", stamp),
        ("updated", stamp),
    ):
        _text(task, tag, text)
    label_list = ET.SubElement(task, "labels")
    for name in labels:
        _label_element(label_list, name)
    _text(meta, "dumped", stamp)
    return meta


def _points(polygon: np.ndarray) -> str:
    return ";".join(f"{x:.2f},{y:.2f}" for x, y in polygon.astype(float))


def _add_score(shape: ET.Element, segment: StoredSegment) -> None:
    attribute = ET.SubElement(shape, "attribute", name="score")
    attribute.text = f"{segment.score:.2f}"


class _Groups:
    """CVAT's ``group_id``: the polygons of one segment share one, so they stay one object."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> str:
        self.last += 1
        return str(self.last)


def _polygon_shapes(
    image: ET.Element, segment: StoredSegment, label: str, z_order: int, groups: _Groups
) -> None:
    polygons = mask_polygons(segment_mask(segment))
    group = groups.next() if len(polygons) > 1 else None
    for polygon in polygons:
        shape = ET.SubElement(image, "polygon")
        shape.attrib.update({"label": label, "source": "auto", "occluded": "0", "points": _points(polygon)})
        shape.set("z_order", str(z_order))
        if group:
            shape.set("group_id", group)
        _add_score(shape, segment)


def _mask_shape(image: ET.Element, segment: StoredSegment, label: str, z_order: int) -> None:
    encoded = cvat_mask(segment_mask(segment))
    if encoded is None:
        return
    shape = ET.SubElement(image, "mask")
    shape.attrib.update(
        {
            "label": label,
            "source": "auto",
            "occluded": "0",
            "rle": ", ".join(map(str, encoded.rle)),
            "left": str(encoded.left),
            "top": str(encoded.top),
            "width": str(encoded.width),
            "height": str(encoded.height),
            "z_order": str(z_order),
        }
    )
    _add_score(shape, segment)


def cvat_images_xml(
    images: Sequence[StoredImage],
    segments: Sequence[StoredSegment],
    class_names: Sequence[str],
    shape: Literal["polygon", "mask"] = "polygon",
    task_name: str = "segstack",
) -> bytes:
    """CVAT for images 1.1 XML for importing the segments as pre-annotations (UTF-8 bytes).

    Each segment becomes its polygons (one per outer contour, grouped by ``group_id`` when
    several) or one ``<mask>``; ``z_order`` puts the higher score on top, as in the mask files."""
    if shape not in ("polygon", "mask"):
        raise ValueError(f"shape must be 'polygon' or 'mask', not {shape!r}")
    kept = sorted(_kept_images(images), key=lambda image: image.path)
    grouped = _segments_by_image(kept, segments)
    table = class_table(class_names, [s for group in grouped.values() for s in group])
    labels = list(dict.fromkeys(table.values()))

    root = ET.Element("annotations")
    _text(root, "version", "1.1")
    root.append(_meta(task_name, len(kept), labels))
    groups = _Groups()
    for frame, image in enumerate(kept):
        element = ET.SubElement(root, "image")
        element.attrib.update(
            {"id": str(frame), "name": image.path, "width": str(image.width), "height": str(image.height)}
        )
        ordered = score_order(grouped[image.id])
        for rank, segment in enumerate(ordered):
            z_order = len(ordered) - 1 - rank
            if shape == "polygon":
                _polygon_shapes(element, segment, table[segment.class_id], z_order, groups)
            else:
                _mask_shape(element, segment, table[segment.class_id], z_order)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
