"""What the annotators did to one image: every shape of an imported file (``import_shapes``) and
every stored segment of the image classified as unchanged, edited, relabelled, rejected, added or
skipped (``store.records.ImportOutcome``). Pure: the store applies the decisions.

The rules, in order:

1. Skipped, with a line naming the image and the shape: a label the store has no class of, a shape
   outside the image, one without pixels, a shape of a kind not read. A stored segment that a
   skipped shape names by ``segment_id`` is left alone (no decision: the annotator did not delete
   it, and what they meant is unknown), and the other shapes naming it are skipped too (applying
   part of a segment would cut it).
2. Objects: the shapes of one ``segment_id`` and label are one object (our CVAT export writes a
   segment of several outlines as polygons sharing the id and a ``group_id``); shapes without an
   id are one object per ``group`` and label, joined to the object of the id that the group's other
   shapes of that label carry, if one (a part the annotator added to a segment and grouped with
   it). An object's mask is the union of its shapes'.
3. By id: an object whose ``segment_id`` names a stored segment of the image (of any status) is
   that segment: relabelled when its label's class is another, unchanged when its mask is, pixel
   for pixel, the stored mask or what our polygon export wrote of it
   (``polygons_mask(cvat_polygons(mask))``: holes filled, specks dropped), else edited. When
   several objects (of several labels) name one segment, the one of its class (else the first)
   takes it; the others, and an id naming no stored segment of the image, go to 4 with a note.
4. By class and IoU: the other objects are matched to the stored segments "in play" (not
   rejected, not replaced by a stored correction) no object took, greedily, highest IoU first, at
   IoU ``MATCH_IOU`` or more: first within the class, then across classes (relabelled). Rejected
   and replaced segments are matched by id only: a file without ids was exported without them.
   Objects matching nothing are added.
5. Stored segments in play that no object took are rejected (deleted in CVAT); rejected or
   replaced ones are left alone.

Decisions come in a stable order: those on stored segments by segment id, then the added by their
first shape's position in the file, then the skipped in file order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils

from annotations.coco import mask_rle
from annotations.cvat_xml import cvat_polygons
from annotations.polygons import polygons_mask
from clients.segments.import_shapes import ImportedImage, ImportedShape
from clients.segments.mask_files import segment_mask
from store.records import ImportOutcome, NewSegment, ShapeDecision, StoredSegment, segments_in_play

MATCH_IOU = 0.5

# ---------------------------------------------------------------------------------------------
# RLE arithmetic (pycocotools' C functions: no full-size arrays but where a mask is written)


def _area(rle: dict) -> int:
    return int(mask_utils.area(rle))


def _same_pixels(a: dict, b: dict) -> bool:
    both = mask_utils.merge([a, b], intersect=True)
    return _area(a) == _area(b) == _area(both)


def _stored_rle(segment: StoredSegment) -> dict:
    counts = segment.rle["counts"]
    return {
        "size": list(segment.rle["size"]),
        "counts": counts.encode() if isinstance(counts, str) else counts,
    }


def _exported_polygons_rle(segment: StoredSegment) -> dict:
    """The raster of what our CVAT polygon export wrote for the segment."""
    height, width = segment.rle["size"]
    mask = polygons_mask(cvat_polygons(segment_mask(segment)), height, width)
    return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))


def _unchanged(rle: dict, segment: StoredSegment) -> bool:
    return _same_pixels(rle, _stored_rle(segment)) or _same_pixels(rle, _exported_polygons_rle(segment))


def _new_segment(rle: dict, label: str, class_id: int) -> NewSegment:
    """The object as a store segment: score 1.0, the tight box in xyxy pixels, canonical counts."""
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    counts = mask_rle(mask_utils.decode(rle))["counts"]
    return NewSegment(class_id, label, 1.0, (x, y, x + w, y + h), counts)


# ---------------------------------------------------------------------------------------------
# objects


@dataclass(eq=False)
class _Object:
    label: str
    segment_id: int | None
    shapes: list[tuple[int, ImportedShape]] = field(default_factory=list)  # (position, shape)
    note: str = ""  # why the object is not matched by id, when it had one

    @property
    def position(self) -> int:
        return self.shapes[0][0]

    @property
    def where(self) -> str:
        return self.shapes[0][1].where

    @property
    def rle(self) -> dict:
        return mask_utils.merge([shape.rle for _, shape in self.shapes])


def _objects(kept: Sequence[tuple[int, ImportedShape]]) -> list[_Object]:
    """The shapes grouped into objects (rule 2), in the order of their first shape."""
    ids_of_group: dict[tuple[int, str], set[int]] = {}
    for _, shape in kept:
        if shape.segment_id is not None and shape.group is not None:
            ids_of_group.setdefault((shape.group, shape.label), set()).add(shape.segment_id)
    objects: dict[tuple, _Object] = {}
    for position, shape in kept:
        segment_id = shape.segment_id
        if segment_id is None and shape.group is not None:
            ids = ids_of_group.get((shape.group, shape.label), set())
            segment_id = next(iter(ids)) if len(ids) == 1 else None
        if segment_id is not None:
            key: tuple = ("id", segment_id, shape.label)
        elif shape.group is not None:
            key = ("group", shape.group, shape.label)
        else:
            key = ("one", position)
        found = objects.setdefault(key, _Object(shape.label, segment_id))
        found.shapes.append((position, shape))
        if shape.note and not found.note:
            found.note = shape.note
    return list(objects.values())


# ---------------------------------------------------------------------------------------------
# skipping


def _skip_reason(shape: ImportedShape, imported: ImportedImage, classes: Mapping[str, int]) -> str:
    if shape.label not in classes:
        return f"label {shape.label!r} is not a class of the store"
    if shape.outside:
        return f"outside the {imported.width}×{imported.height} image"
    if shape.area == 0:
        return "has no pixels"
    return ""


def _skipped(note: str) -> ShapeDecision:
    return ShapeDecision(ImportOutcome.SKIPPED, note=note)


def _sorted_out(
    imported: ImportedImage, by_id: Mapping[int, StoredSegment], classes: Mapping[str, int]
) -> tuple[list[tuple[int, ImportedShape]], list[tuple[int, ShapeDecision]], set[int]]:
    """Rule 1: the shapes kept, the skipped (by position in the file), and the stored segments a
    skipped shape names (held: left alone)."""
    kept: list[tuple[int, ImportedShape]] = []
    skipped: list[tuple[int, ShapeDecision]] = []
    held: set[int] = set()
    for position, shape in enumerate(imported.shapes):
        reason = _skip_reason(shape, imported, classes)
        if not reason:
            kept.append((position, shape))
            continue
        skipped.append((position, _skipped(f"{shape.where}: {reason}")))
        # a shape without pixels adds nothing to its segment: the others still say what it is
        if shape.segment_id is not None and shape.segment_id in by_id and shape.area > 0:
            held.add(shape.segment_id)
    for k, where in enumerate(imported.unsupported, start=len(imported.shapes)):
        skipped.append((k, _skipped(f"{where}: not read (polygons, boxes and masks are)")))
    for position, shape in kept:
        if shape.segment_id in held:
            note = f"{shape.where}: not applied, as another shape of segment {shape.segment_id} was skipped"
            skipped.append((position, _skipped(note)))
    return [(p, s) for p, s in kept if s.segment_id not in held], skipped, held


def _size_mismatch(imported: ImportedImage, stored: Sequence[StoredSegment]) -> str:
    for segment in stored:
        if list(segment.rle["size"]) != [imported.height, imported.width]:
            height, width = segment.rle["size"]
            return (
                f"image {imported.name!r} is {imported.width}×{imported.height} in the file, but its "
                f"stored segment {segment.id} is {width}×{height}: not applied"
            )
    return ""


# ---------------------------------------------------------------------------------------------
# matching


@dataclass
class _Match:
    segment: StoredSegment
    note: str = ""  # empty when matched by id


def _by_id(
    objects: list[_Object], by_id: Mapping[int, StoredSegment], classes: Mapping[str, int]
) -> tuple[dict[int, tuple[_Object, _Match]], list[_Object]]:
    """Rule 3: the objects that take a stored segment by id, and the others."""
    claims: dict[int, list[_Object]] = {}
    rest: list[_Object] = []
    for obj in objects:
        if obj.segment_id is None:
            rest.append(obj)
        elif obj.segment_id not in by_id:
            obj.note = f"segment_id {obj.segment_id} names no stored segment of this image"
            rest.append(obj)
        else:
            claims.setdefault(obj.segment_id, []).append(obj)
    taken: dict[int, tuple[_Object, _Match]] = {}
    for segment_id, claimants in claims.items():
        segment = by_id[segment_id]
        winner = next((o for o in claimants if classes[o.label] == segment.class_id), claimants[0])
        taken[segment_id] = (winner, _Match(segment))
        for other in claimants:
            if other is not winner:
                other.note = f"segment_id {segment_id} is also on a {winner.label!r} shape, which takes it"
                rest.append(other)
    rest.sort(key=lambda o: o.position)
    return taken, rest


def _by_iou(
    objects: list[_Object], candidates: list[StoredSegment], classes: Mapping[str, int]
) -> dict[int, tuple[_Object, _Match]]:
    """Rule 4: greedy, highest IoU first; within the class, then across classes."""
    if not objects or not candidates:
        return {}
    masks = [o.rle for o in objects]
    ious = np.asarray(mask_utils.iou(masks, [_stored_rle(s) for s in candidates], [0] * len(candidates)))
    ious = ious.reshape(len(objects), len(candidates))
    taken: dict[int, tuple[_Object, _Match]] = {}
    used: set[int] = set()
    for same_class in (True, False):
        pairs = [
            (float(ious[i, j]), i, j)
            for i, obj in enumerate(objects)
            for j, segment in enumerate(candidates)
            if ious[i, j] >= MATCH_IOU and (classes[obj.label] == segment.class_id) == same_class
        ]
        for iou, i, j in sorted(pairs, key=lambda p: (-p[0], candidates[p[2]].id, objects[p[1]].position)):
            segment = candidates[j]
            if i in used or segment.id in taken:
                continue
            how = "class and IoU" if same_class else f"IoU (across classes, from {segment.class_name!r})"
            obj = objects[i]
            note = "; ".join(filter(None, (obj.note, f"matched by {how} {iou:.2f}")))
            taken[segment.id] = (obj, _Match(segment, f"{obj.where}: {note}"))
            used.add(i)
    return taken


def _decision(obj: _Object, match: _Match, classes: Mapping[str, int]) -> ShapeDecision:
    segment, rle = match.segment, obj.rle
    class_id = classes[obj.label]
    common = {"segment_id": segment.id, "revision": segment.revision, "note": match.note}
    if class_id != segment.class_id:
        return ShapeDecision(ImportOutcome.RELABELLED, new=_new_segment(rle, obj.label, class_id), **common)
    if _unchanged(rle, segment):
        return ShapeDecision(ImportOutcome.UNCHANGED, **common)
    return ShapeDecision(ImportOutcome.EDITED, new=_new_segment(rle, obj.label, class_id), **common)


# ---------------------------------------------------------------------------------------------


def _to_corrections(objects: Sequence[_Object], stored: Sequence[StoredSegment]) -> None:
    """An object naming a segment an earlier import corrected (the same task exported from CVAT
    again still carries the original's id) is about the newest correction in its chain."""
    replaced_by = {s.replaces: s.id for s in stored if s.replaces is not None}
    for obj in objects:
        seen: set[int] = set()
        while obj.segment_id in replaced_by and obj.segment_id not in seen:
            seen.add(obj.segment_id)
            obj.segment_id = replaced_by[obj.segment_id]


def classify_image(
    imported: ImportedImage, stored: Sequence[StoredSegment], classes: Mapping[str, int]
) -> list[ShapeDecision]:
    """The decisions on one image (module docstring). ``stored``: the store's segments of the image
    for the models the file was exported from, of every status; ``classes``: label → class id.

    A stored mask of another size than the file's image would compare the wrong pixels: then every
    shape is skipped, saying so, and no stored segment gets a decision."""
    mismatch = _size_mismatch(imported, stored)
    if mismatch:
        return [_skipped(f"{mismatch} ({where})") for where in _wheres(imported)] or [_skipped(mismatch)]
    by_id = {segment.id: segment for segment in stored}
    kept, skipped, held = _sorted_out(imported, by_id, classes)
    objects = _objects(kept)
    _to_corrections(objects, stored)
    taken, rest = _by_id(objects, by_id, classes)
    live = {s.id for s in segments_in_play(stored)}
    candidates = [s for s in stored if s.id not in taken and s.id not in held and s.id in live]
    taken.update(_by_iou(rest, candidates, classes))

    decisions = []
    for segment in sorted(stored, key=lambda s: s.id):
        if segment.id in taken:
            decisions.append(_decision(*taken[segment.id], classes))
        elif segment.id not in held and segment.id in live:
            decisions.append(ShapeDecision(ImportOutcome.REJECTED, segment.id, segment.revision))
    matched = {id(obj) for obj, _ in taken.values()}
    for obj in sorted((o for o in objects if id(o) not in matched), key=lambda o: o.position):
        new = _new_segment(obj.rle, obj.label, classes[obj.label])
        note = f"{obj.where}: {obj.note}" if obj.note else ""
        decisions.append(ShapeDecision(ImportOutcome.ADDED, new=new, note=note))
    decisions += [decision for _, decision in sorted(skipped, key=lambda item: item[0])]
    return decisions


def _wheres(imported: ImportedImage) -> Iterable[str]:
    yield from (shape.where for shape in imported.shapes)
    yield from imported.unsupported


def summary_counts(decisions: Iterable[ShapeDecision]) -> dict[str, int]:
    """How many decisions of each outcome: every key (unchanged ... skipped) present."""
    counts = {outcome.value: 0 for outcome in ImportOutcome}
    for decision in decisions:
        counts[decision.outcome.value] += 1
    return counts
