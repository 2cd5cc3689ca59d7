"""COCO compressed RLE, via pycocotools."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def encode(mask: np.ndarray) -> bytes:
    """Binary HxW mask → the compressed RLE ``counts`` (size is the image's)."""
    return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))["counts"]


def decode(counts: bytes | str, height: int, width: int) -> np.ndarray:
    if isinstance(counts, str):
        counts = counts.encode()
    return mask_utils.decode({"size": [height, width], "counts": counts})


def encode_window(patch: np.ndarray, window: tuple[int, int, int, int], orig_hw: tuple[int, int]) -> bytes:
    """The compressed RLE of a full-size mask that is zero outside ``window`` (x0, y0, x1, y1) and
    ``patch`` inside, without building the full-size mask: COCO RLE runs down columns, so only the
    window's columns are scanned, and the empty columns left and right become two long zero runs."""
    h, w = orig_hw
    x0, y0, x1, y1 = window
    strip = np.zeros((h, x1 - x0), np.uint8, order="F")
    strip[y0:y1, :] = patch
    flat = strip.ravel(order="F")
    if flat.size == 0:
        counts = [h * w]
    else:
        changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
        if flat[0]:
            counts.insert(0, 0)  # runs start with zeros
        counts[0] += x0 * h
        if len(counts) % 2:  # ends with a zero run
            counts[-1] += (w - x1) * h
        elif w - x1:
            counts.append((w - x1) * h)
    return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)["counts"]


def covered_pixels(counts: bytes) -> int:
    """How many pixels COCO compressed RLE ``counts`` cover: the sum of their runs, read as
    pycocotools' rleFrString reads them. pycocotools has no public call for it, and decodes counts
    of another size into any mask without complaint, so a size check needs it. ValueError ("not
    COCO compressed RLE counts ...") for what is not such a string."""
    if any(c < 48 or c > 111 for c in counts):  # each character carries 6 bits from "0"
        raise ValueError("not COCO compressed RLE counts")
    runs, p = [], 0
    try:
        while p < len(counts):
            x, k, more = 0, 0, True
            while more:
                c = counts[p] - 48
                x |= (c & 0x1F) << (5 * k)
                more = bool(c & 0x20)
                p, k = p + 1, k + 1
                if not more and c & 0x10:
                    x |= -1 << (5 * k)
            if len(runs) > 2:
                x += runs[-2]
            runs.append(x)
    except IndexError:
        raise ValueError("not COCO compressed RLE counts (truncated)") from None
    if any(r < 0 for r in runs):
        raise ValueError("not COCO compressed RLE counts")
    return sum(runs)
