"""Instance masks at the original image resolution from YOLOv8 prototypes, as ultralytics'
``process_mask_native`` computes them (``retina_masks=True``), one box window at a time.

Ultralytics upsamples the prototype-resolution logits to the input size (×1, 2 or 4 so the
letterbox padding falls on whole pixels), crops the padding, resizes bilinearly to the original
size, thresholds at 0 and zeroes pixels outside the box. Here the last resize is evaluated only
inside each box (an affine warp equal to ``cv2.resize`` restricted to that window), so a 6000×4000
image costs what its boxes cover, not N full-size float masks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
import numpy as np

from .letterbox import LetterboxParams


def _content_logits(logits: np.ndarray, p: LetterboxParams, input_hw: tuple[int, int]) -> np.ndarray:
    """Prototype-resolution logits (mh, mw) → the non-padded content region, upsampled as needed."""
    mh, mw = logits.shape
    stride = input_hw[0] // mh
    h, w = p.orig_h, p.orig_w
    gain = min(stride * mh / h, stride * mw / w)
    pad = (stride * mh - max(round(h * gain), 1)) | (stride * mw - max(round(w * gain), 1))
    f = stride // math.gcd(stride, pad | pad // 2)  # smallest upsample putting the padding on whole pixels
    if f > 1:
        logits = cv2.resize(logits, (mw * f, mh * f), interpolation=cv2.INTER_LINEAR)
    lh, lw = logits.shape
    gain = min(lh / h, lw / w)
    nh, nw = max(round(h * gain), 1), max(round(w * gain), 1)
    top, left = round((lh - nh) / 2 - 0.1), round((lw - nw) / 2 - 0.1)
    return logits[top : top + nh, left : left + nw]


def box_window(box: np.ndarray, orig_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixel columns/rows kept by ultralytics' ``crop_mask``: x1 <= col < x2, y1 <= row < y2."""
    h, w = orig_hw
    x0, y0 = max(math.ceil(box[0]), 0), max(math.ceil(box[1]), 0)
    x1, y1 = min(math.ceil(box[2]), w), min(math.ceil(box[3]), h)
    return x0, y0, max(x1, x0), max(y1, y0)


def masks_in_boxes(
    protos: np.ndarray,
    coefficients: np.ndarray,
    boxes: np.ndarray,
    p: LetterboxParams,
    input_hw: tuple[int, int],
) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Yield, per detection, its box window (x0, y0, x1, y1) in original pixels and the binary
    uint8 mask inside it. ``protos``: (M, mh, mw); ``boxes``: xyxy in original pixels."""
    m, mh, mw = protos.shape
    logits_all = (coefficients @ protos.reshape(m, -1)).reshape(-1, mh, mw)
    orig_hw = (p.orig_h, p.orig_w)
    for logits, box in zip(logits_all, boxes):
        window = box_window(box, orig_hw)
        x0, y0, x1, y1 = window
        if x1 <= x0 or y1 <= y0:
            yield window, np.zeros((y1 - y0, x1 - x0), np.uint8)
            continue
        content = _content_logits(logits, p, input_hw)
        sx, sy = content.shape[1] / p.orig_w, content.shape[0] / p.orig_h
        # dst (x, y) in the window samples src ((x + x0 + 0.5) * sx - 0.5, ...): cv2.resize's mapping
        affine = np.array([[sx, 0, (x0 + 0.5) * sx - 0.5], [0, sy, (y0 + 0.5) * sy - 0.5]])
        patch = cv2.warpAffine(
            content,
            affine,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        yield window, (patch > 0).astype(np.uint8)


def paste(window: tuple[int, int, int, int], patch: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
    """A full-size Fortran-ordered uint8 mask (what pycocotools encodes) with ``patch`` in place."""
    full = np.zeros(orig_hw, dtype=np.uint8, order="F")
    x0, y0, x1, y1 = window
    full[y0:y1, x0:x1] = patch
    return full
