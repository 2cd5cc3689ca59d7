"""Semantic post-processing: per-pixel argmax, back to the original size with nearest neighbour."""

from __future__ import annotations

import cv2
import numpy as np

from segcontract.masks import index_dtype


def class_index_mask(logits: np.ndarray, orig_hw: tuple[int, int], layout: str = "CHW") -> np.ndarray:
    """(C, h, w) logits (or (h, w, C) for HWC) → (H, W) class indices at the original size."""
    axis = 0 if layout == "CHW" else -1
    num_classes = logits.shape[axis]
    index = logits.argmax(axis=axis).astype(index_dtype(num_classes - 1))
    h, w = orig_hw
    if index.shape != (h, w):
        index = cv2.resize(index, (w, h), interpolation=cv2.INTER_NEAREST)
    return index
