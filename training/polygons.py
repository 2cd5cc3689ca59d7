"""Binary masks → COCO polygons."""

from __future__ import annotations

import cv2
import numpy as np


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a binary mask as flat COCO polygons ``[x1, y1, x2, y2, ...]``.

    COCO coordinates are pixel corners (pixel i spans [i, i+1]); OpenCV contours run through
    boundary-pixel centres. Tracing on a 2× nearest-upsampled mask and mapping back with
    ``(c + 0.5) / 2`` puts the polygon a quarter pixel inside the mask's outer edge, so
    pycocotools' ``annToMask`` reproduces the mask, boundary pixels included."""
    up = cv2.resize(
        mask.astype(np.uint8), (mask.shape[1] * 2, mask.shape[0] * 2), interpolation=cv2.INTER_NEAREST
    )
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [((c.reshape(-1, 2) + 0.5) / 2).flatten().tolist() for c in contours if len(c) >= 3]
