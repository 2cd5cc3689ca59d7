"""Ultralytics YOLO-seg label lines: ``class x1 y1 x2 y2 ...``, each polygon's coordinates divided
by the image's width and height (clipped to [0, 1], six decimals), one instance per line.

The polygons are in the package's pixel convention (continuous coordinates, pixel edges), written
unshifted: ultralytics fills a label's polygon at its training mask size, where the pixel-edge
outline gives the mask back."""

from __future__ import annotations

import numpy as np


def yolo_line(class_id: int, polygon: np.ndarray, width: int, height: int) -> str:
    """One label line for ``polygon`` ((k, 2) x, y in pixels) on a ``width`` x ``height`` image."""
    norm = (np.asarray(polygon, np.float64).reshape(-1, 2) / np.array([width, height], np.float64)).clip(0, 1)
    return f"{class_id} " + " ".join(f"{v:.6f}" for v in norm.reshape(-1))
