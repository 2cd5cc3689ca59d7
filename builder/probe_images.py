"""Images that build-repo feeds to PyTorch and to the exported model to compare them.

Uniform noise is a poor probe: it drives the box regression of an untrained network far outside
its range and magnifies float-order differences that real images never show. These look more like
photos where it matters: flat regions, sharp edges and a textured background."""

from __future__ import annotations

import cv2
import numpy as np


def probe_images(sizes: list[tuple[int, int]], seed: int = 0) -> list[np.ndarray]:
    """One BGR uint8 image per (height, width), the same for the same seed."""
    rng = np.random.default_rng(seed)
    return [_probe(height, width, rng) for height, width in sizes]


def _probe(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    background = rng.integers(40, 215, 3)
    image = np.clip(background + rng.normal(0, 12, (height, width, 1)), 0, 255).astype(np.uint8)
    side = min(height, width)
    for _ in range(int(rng.integers(1, 5))):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        radius = int(rng.integers(max(side // 10, 2), max(side // 3, 3)))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            cv2.circle(image, centre, radius, colour, -1)
        else:
            corner = (centre[0] + radius, centre[1] + radius // 2)
            cv2.rectangle(image, (centre[0] - radius, centre[1] - radius // 2), corner, colour, -1)
    return image
