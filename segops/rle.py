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


def run_lengths(counts: bytes | str) -> np.ndarray:
    """The run lengths (zeros first, down the columns) of COCO compressed RLE ``counts``, read as
    pycocotools' rleFrString reads them (5 bits a character, a sign bit ending a number, and from
    the fourth run on each number the difference to the run two before), all at once with numpy.
    pycocotools has no public call for it. ValueError ("not COCO compressed RLE counts ...") for
    what is not such a string."""
    if isinstance(counts, str):
        counts = counts.encode("ascii", "replace")
    chars = np.frombuffer(counts, np.uint8).astype(np.int64) - 48
    if chars.size == 0:
        return np.zeros(0, np.int64)
    if ((chars < 0) | (chars > 63)).any():  # each character carries 6 bits from "0"
        raise ValueError("not COCO compressed RLE counts")
    if chars[-1] & 0x20:
        raise ValueError("not COCO compressed RLE counts (truncated)")
    last = np.flatnonzero((chars & 0x20) == 0)  # the last character of each number
    first = np.concatenate(([0], last[:-1] + 1))
    length = last - first + 1
    shift = 5 * (np.arange(chars.size) - np.repeat(first, length))
    values = np.add.reduceat((chars & 0x1F) << shift, first)
    negative = (chars[last] & 0x10) != 0
    values[negative] |= np.left_shift(np.int64(-1), 5 * length[negative])
    values[1::2] = np.cumsum(values[1::2])
    values[2::2] = np.cumsum(values[2::2])
    if (values < 0).any():
        raise ValueError("not COCO compressed RLE counts")
    return values


def decode_window(counts: bytes | str, height: int, window: tuple[int, int, int, int]) -> np.ndarray:
    """``mask[y0:y1, x0:x1]`` of the mask ``counts`` encode (``height`` rows; ``window`` is x0, y0,
    x1, y1), from the runs of those columns only: decoding the whole mask of a 12-megapixel picture
    (12 MB, ~10 ms) to look at one object of it is most of what a crop or an outline costs."""
    x0, y0, x1, y1 = window
    lengths = run_lengths(counts)
    ends = np.cumsum(lengths)
    low, high = x0 * height, x1 * height
    clipped = np.clip(ends, low, high) - np.clip(ends - lengths, low, high)
    flat = np.repeat((np.arange(lengths.size) & 1).astype(np.uint8), clipped)
    return flat.reshape(x1 - x0, height).T[y0:y1]


def covered_pixels(counts: bytes) -> int:
    """How many pixels COCO compressed RLE ``counts`` cover: the sum of their runs. pycocotools
    decodes counts of another size into any mask without complaint, so a size check needs it.
    ValueError ("not COCO compressed RLE counts ...") for what is not such a string."""
    return int(run_lengths(counts).sum())
