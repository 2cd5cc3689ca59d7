"""The instance-mask files annotators get from the segment store (MARKUP/masks).

Per image, two files side by side:

``<stem>.png``
    One channel at the image's size (height × width). 0 is background; value ``k`` (1, 2, ...)
    is the k-th segment of the image ordered by score, highest first, ties by the smaller
    segment id. Where segments overlap, the pixel belongs to the higher-scored one, so a segment
    hidden entirely by better ones keeps its value in the JSON but has no pixel in the PNG.
    The PNG is 8-bit when the image has at most 255 segments and 16-bit when it has more
    (read it with ``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` to keep the 16 bits).

``<stem>.json``
    ``{"image": <path relative to DATA/pictures>, "width": W, "height": H, "segments": [...]}``,
    where ``segments`` lists, in value order, one ``{"value", "segment_id", "class_id",
    "class_name", "score", "status", "model"}`` per segment; ``value`` is the pixel value in the
    PNG and ``status`` is ``unchecked``, ``approved`` or ``rejected``.

``<stem>_color.png`` (on request, ``seg-client masks --color``)
    The same mask for people to look at: 3 channels (8-bit BGR on disk, as any viewer shows it),
    background black and value ``k`` in the k-th colour of the PASCAL VOC palette (128,0,0),
    (0,128,0), (128,128,0), ... in RGB, as LabelMe's instance masks colour them. The name is the
    one the semantic family's colour masks have (``seg-client infer``).

The PNGs are written before the JSON, each atomically, so a JSON on disk means its PNGs are complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segcontract.files import write_json_atomic
from segops.colors import colorize, voc_palette
from segops.image_write import write_image_atomic
from segops.rle import decode
from store.records import StoredImage, StoredSegment

_MAX_VALUE = {np.uint8: 255, np.uint16: 65535}
COLOR_SUFFIX = "_color.png"  # as the semantic family's colour masks (clients.inference.run)


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


def _dtype_for(count: int) -> type[np.unsignedinteger]:
    for dtype, top in _MAX_VALUE.items():
        if count <= top:
            return dtype
    raise ValueError(f"{count} segments on one image: a 16-bit PNG holds at most 65535")


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
    labels = np.zeros((image.height, image.width), _dtype_for(len(ordered)))
    entries = []
    for value, segment in enumerate(ordered, start=1):
        check_mask_size(image, segment)
        # best first, each taking only the pixels no better segment holds
        labels[(segment_mask(segment) > 0) & (labels == 0)] = value
        entries.append(_segment_entry(value, segment))
    record = {"image": image.path, "width": image.width, "height": image.height, "segments": entries}
    return labels, record


def color_name(stem: str) -> str:
    """The colour PNG's file name beside ``<stem>.png`` (the semantic family's ``_color.png``)."""
    return stem + COLOR_SUFFIX


def instance_palette(count: int) -> list[list[int]]:
    """RGB colours of the values 0 (background, black) to ``count``: the PASCAL VOC palette, whose
    first 2**24 colours all differ, so every value of a 16-bit mask has its own."""
    return [list(c) for c in voc_palette(count + 1)]


def color_mask(labels: np.ndarray) -> np.ndarray:
    """The instance mask in colour (BGR, for OpenCV to write): see ``<stem>_color.png`` above."""
    return colorize(labels, instance_palette(int(labels.max(initial=0))))


def write_mask_files(
    folder: Path, stem: str, image: StoredImage, segments: Sequence[StoredSegment], color: bool = False
) -> None:
    """Write ``<folder>/<stem>.png``, with ``color`` ``<folder>/<stem>_color.png``, then
    ``<folder>/<stem>.json``, each atomically."""
    labels, record = instance_mask(image, segments)
    folder = Path(folder)
    write_image_atomic(folder / f"{stem}.png", labels)
    if color:
        write_image_atomic(folder / color_name(stem), color_mask(labels))
    write_json_atomic(folder / f"{stem}.json", record)
