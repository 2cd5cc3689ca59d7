"""Helpers shared by several test modules. A helper two test modules need lives here, never in one of
them for the other to import."""

from __future__ import annotations

import numpy as np


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (anything non-zero is inside); two empty masks are the
    same mask, so 1.0."""
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    union = int(np.logical_or(a, b).sum())
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
