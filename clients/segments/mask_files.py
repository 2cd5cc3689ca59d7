"""The instance-mask files annotators get from the segment store (MARKUP/masks).

The files are ``annotations.mask_png``'s instance mask files (``<stem>.png``, on request
``<stem>_color.png``, then ``<stem>.json``); what this module decides is what goes in them:

- value ``k`` (1, 2, ...) is the k-th segment of the image ordered by score, highest first, ties by
  the smaller segment id. Where segments overlap, the pixel belongs to the higher-scored one, so a
  segment hidden entirely by better ones keeps its value in the JSON but has no pixel in the PNG.
  The PNG is 8-bit when the image has at most 255 segments and 16-bit when it has more.
- ``<stem>.json`` is ``{"image": <path relative to DATA/pictures>, "width": W, "height": H,
  "segments": [...]}``, where ``segments`` lists, in value order, one ``{"value", "segment_id",
  "class_id", "class_name", "score", "status", "model"}`` per segment; ``status`` is
  ``unchecked``, ``approved`` or ``rejected``.
- ``<stem>_color.png`` (``seg-client masks --color``) has the name the semantic family's colour
  masks have (``seg-client infer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from annotations.mask_png import color_name, instance_index, write_instance_files
from segops.rle import decode
from store.records import StoredImage, StoredSegment

__all__ = [
    "check_mask_size",
    "color_name",
    "instance_mask",
    "score_order",
    "segment_mask",
    "write_mask_files",
]


def segment_mask(segment: StoredSegment) -> np.ndarray:
    """The segment's binary uint8 mask (height × width) decoded from its stored COCO RLE."""
    height, width = segment.rle["size"]
    return decode(segment.rle["counts"], height, width)


def score_order(segments: Sequence[StoredSegment]) -> list[StoredSegment]:
    """Highest score first; equal scores by segment id, so the order never depends on the caller's."""
    return sorted(segments, key=lambda s: (-s.score, s.id))


def check_mask_size(image: StoredImage, segment: StoredSegment) -> None:
    """A mask of another size than its image's would land on the wrong pixels: refuse it."""
    if list(segment.rle["size"]) != [image.height, image.width]:
        raise ValueError(
            f"segment {segment.id} of {image.path}: mask size {segment.rle['size']} is not the "
            f"image's {[image.height, image.width]} (height, width)"
        )


def _segment_entry(value: int, segment: StoredSegment) -> dict:
    return {
        "value": value,
        "segment_id": segment.id,
        "class_id": segment.class_id,
        "class_name": segment.class_name,
        "score": segment.score,
        "status": segment.status.value,
        "model": segment.model,
    }


def instance_mask(image: StoredImage, segments: Sequence[StoredSegment]) -> tuple[np.ndarray, dict]:
    """The instance PNG's array and the JSON record of ``image`` (see the module docstring).

    Segments of other images are ignored; a badlisted image is refused (the caller filters them)."""
    if image.badlisted:
        raise ValueError(f"{image.path} is badlisted: it gets no mask files")
    ordered = score_order([s for s in segments if s.image_id == image.id])
    for segment in ordered:
        check_mask_size(image, segment)
    masks = (segment_mask(s) for s in ordered)  # decoded one at a time: an image may hold hundreds
    labels = instance_index(masks, image.height, image.width, count=len(ordered))
    entries = [_segment_entry(value, s) for value, s in enumerate(ordered, start=1)]
    record = {"image": image.path, "width": image.width, "height": image.height, "segments": entries}
    return labels, record


def write_mask_files(
    folder: Path, stem: str, image: StoredImage, segments: Sequence[StoredSegment], color: bool = False
) -> None:
    """Write ``<folder>/<stem>.png``, with ``color`` ``<folder>/<stem>_color.png``, then
    ``<folder>/<stem>.json``, each atomically."""
    labels, record = instance_mask(image, segments)
    write_instance_files(folder, stem, labels, record, color)
