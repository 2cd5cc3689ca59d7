"""The crop a classifier sees of one stored segment, the same in training and on the server.

The segment's box (xyxy, original pixels) grows by ``margin`` of its width and height on each side,
is clipped to the image and rounded outwards to whole pixels; pixels of the crop outside the
segment's mask are filled with the normalisation mean (in BGR, 0-255), so after normalisation they
are zero and carry no signal. The crop is then prepared like a whole image (segops.resize.prepare).
"""

from __future__ import annotations

import math

import numpy as np

from segcontract.checkpoint_formats import IMAGENET_MEAN, SEGMENT_MARGIN

from .rle import decode


def crop_window(
    bbox: tuple[float, float, float, float], height: int, width: int, margin: float = SEGMENT_MARGIN
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), integer, inside the image and at least one pixel wide and high."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    dx, dy = margin * max(x2 - x1, 0.0), margin * max(y2 - y1, 0.0)
    left = min(max(math.floor(x1 - dx), 0), width - 1)
    top = min(max(math.floor(y1 - dy), 0), height - 1)
    right = max(min(math.ceil(x2 + dx), width), left + 1)
    bottom = max(min(math.ceil(y2 + dy), height), top + 1)
    return left, top, right, bottom


def fill_color(mean_rgb: tuple[float, float, float] = IMAGENET_MEAN) -> tuple[int, int, int]:
    """The BGR 0-255 colour that normalises to (about) zero."""
    return tuple(round(255 * m) for m in reversed(mean_rgb))


def crop_segment(
    image_bgr: np.ndarray,
    bbox: tuple[float, float, float, float],
    mask: np.ndarray | bytes | str | None,
    margin: float = SEGMENT_MARGIN,
    mean_rgb: tuple[float, float, float] = IMAGENET_MEAN,
) -> np.ndarray:
    """HxWx3 uint8 BGR image → the segment's crop (uint8 BGR). ``mask`` is the segment's full-size
    binary mask, or its COCO RLE counts at the image's size; None keeps every pixel of the box."""
    height, width = image_bgr.shape[:2]
    left, top, right, bottom = crop_window(bbox, height, width, margin)
    crop = image_bgr[top:bottom, left:right].copy()
    if mask is not None:
        if isinstance(mask, (bytes, str)):
            mask = decode(mask, height, width)
        inside = np.asarray(mask)[top:bottom, left:right].astype(bool)
        crop[~inside] = fill_color(mean_rgb)
    return crop
