"""What annotators get from the segment store: COCO instances JSON and CVAT for images 1.1 XML.

Pure functions over the store's records (no database, no server); the file formats themselves are
``annotations.coco`` and ``annotations.cvat_xml``'s. The caller passes the images and segments of
a group; badlisted images, segments of images not passed, and segments whose mask is empty are
left out (there is nothing to annotate on them). Every class of ``class_names`` becomes a category
(COCO) or label (CVAT), plus any class a segment names beyond that list; a segment whose
``class_name`` contradicts ``class_names[class_id]`` is an error, since writing it under either
name would mislabel it.

- COCO: the segmentation is the stored RLE itself, so the export is exact (holes included).
- CVAT: ``<image id>`` is the frame number, CVAT's index of the image in the task; images are
  therefore numbered in path order, the order CVAT's default (lexicographical) sorting gives a
  task made of the same files. CVAT matches an imported image by its name first.
- CVAT's shapes have no score: the score travels as a ``score`` attribute, declared in ``<meta>``
  as a number from 0 to 1 in steps of 0.01, and the store's segment id as a ``segment_id`` text
  attribute (what an import of the annotators' work matches shapes by); the CVAT task's labels
  need both attributes for them to survive the import (CVAT builds labels from the task, not the
  file). COCO annotations carry ``segment_id`` as a field.
- A segment becomes its polygons (``annotations.cvat_xml.cvat_polygons``: outer outlines along
  pixel edges, specks dropped, simplified only past CVAT's point budget; holes are lost), grouped
  by ``group_id`` when several, or one exact ``<mask>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Literal

from annotations.coco import instances_document, mask_annotation, rle_area
from annotations.cvat_rle import encode_cvat_mask
from annotations.cvat_xml import (
    CvatImage,
    CvatTask,
    Label,
    LabelAttribute,
    MaskShape,
    PolygonShape,
    Shape,
    cvat_polygons,
    write_cvat_xml,
)
from clients.segments.mask_files import check_mask_size, score_order, segment_mask
from store.records import StoredImage, StoredSegment

# the declared range of the score attribute; scores are written with two decimals to match
_SCORE = LabelAttribute("score", "number", values=("0", "1", "0.01"), default_value="0")
# the store's id of the segment a shape was made from: what an import matches shapes by. Text, so a
# shape the annotator draws gets the empty default (no id); a multi-outline segment's polygons share it
_SEGMENT_ID = LabelAttribute("segment_id", "text")
_SOURCE = "auto"

# ---------------------------------------------------------------------------------------------
# what both formats share


def _kept_images(images: Sequence[StoredImage]) -> list[StoredImage]:
    return [image for image in images if not image.badlisted]


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
        if rle_area(segment.rle) > 0:
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
    """One COCO annotation: ``area`` and ``bbox`` come from the mask, not from
    ``StoredSegment.bbox`` (the model's box is not the tight box of its mask: YOLO zeroes the mask
    outside a box it predicts separately), plus the store's fields."""
    annotation = mask_annotation(segment.id, segment.image_id, segment.class_id + 1, segment.rle)
    return {
        **annotation,
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
    info = {
        "description": "segstack segment store export",
        "contributor": "segstack",
        "version": "1.0",
        "year": created.year,
        "date_created": created.isoformat(),
    }
    return instances_document(
        [
            {"id": image.id, "file_name": image.path, "width": image.width, "height": image.height}
            for image in kept
        ],
        [{"id": class_id + 1, "name": name} for class_id, name in table.items()],
        annotations,
        info,
    )


# ---------------------------------------------------------------------------------------------
# CVAT for images 1.1


class _Groups:
    """CVAT's ``group_id``: the polygons of one segment share one, so they stay one object."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


def _shape_attributes(segment: StoredSegment) -> dict[str, str]:
    return {"score": f"{segment.score:.2f}", "segment_id": str(segment.id)}


def _polygon_shapes(segment: StoredSegment, label: str, z_order: int, groups: _Groups) -> list[Shape]:
    polygons = cvat_polygons(segment_mask(segment))
    group = groups.next() if len(polygons) > 1 else None
    return [
        PolygonShape(
            label=label,
            points=p,
            z_order=z_order,
            group_id=group,
            source=_SOURCE,
            attributes=_shape_attributes(segment),
        )
        for p in polygons
    ]


def _mask_shapes(segment: StoredSegment, label: str, z_order: int) -> list[Shape]:
    encoded = encode_cvat_mask(segment_mask(segment))
    if encoded is None:
        return []
    attributes = _shape_attributes(segment)
    return [MaskShape(label=label, encoded=encoded, z_order=z_order, source=_SOURCE, attributes=attributes)]


def cvat_images_xml(
    images: Sequence[StoredImage],
    segments: Sequence[StoredSegment],
    class_names: Sequence[str],
    shape: Literal["polygon", "mask"] = "polygon",
    task_name: str = "segstack",
) -> bytes:
    """CVAT for images 1.1 XML for importing the segments as pre-annotations (UTF-8 bytes).

    Each segment becomes its polygons (one per outer outline, grouped by ``group_id`` when
    several) or one ``<mask>``; ``z_order`` puts the higher score on top, as in the mask files."""
    if shape not in ("polygon", "mask"):
        raise ValueError(f"shape must be 'polygon' or 'mask', not {shape!r}")
    kept = sorted(_kept_images(images), key=lambda image: image.path)
    grouped = _segments_by_image(kept, segments)
    table = class_table(class_names, [s for group in grouped.values() for s in group])
    labels = [Label(name, (_SCORE, _SEGMENT_ID)) for name in dict.fromkeys(table.values())]
    groups = _Groups()
    frames = []
    for frame, image in enumerate(kept):
        element = CvatImage(frame, image.path, image.width, image.height)
        ordered = score_order(grouped[image.id])
        for rank, segment in enumerate(ordered):
            z_order, label = len(ordered) - 1 - rank, table[segment.class_id]
            if shape == "polygon":
                element.shapes += _polygon_shapes(segment, label, z_order, groups)
            else:
                element.shapes += _mask_shapes(segment, label, z_order)
        frames.append(element)
    return write_cvat_xml(CvatTask(task_name, labels, frames), _now())
