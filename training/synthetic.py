"""Synthetic scenes: coloured shapes on textured backgrounds, with their instance masks.

Used by the demo and the tests, where no dataset can be downloaded."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHAPES = ("circle", "rectangle", "triangle")


@dataclass
class Instance:
    shape: str
    mask: np.ndarray  # HxW uint8 {0, 1}


def make_scene(
    height: int, width: int, rng: np.random.Generator, max_objects: int = 4
) -> tuple[np.ndarray, list[Instance]]:
    """A BGR uint8 image and the instances drawn on it (later shapes occlude earlier ones)."""
    base = rng.integers(40, 215, 3)
    noise = rng.normal(0, 12, (height, width, 1))
    image = np.clip(base[None, None, :] + noise, 0, 255).astype(np.uint8)
    instances: list[Instance] = []
    scale = min(height, width)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        size = int(rng.integers(max(scale // 10, 2), max(scale // 3, 3)))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        mask = np.zeros((height, width), np.uint8)
        if shape == "circle":
            cv2.circle(mask, (cx, cy), size, 1, -1)
        elif shape == "rectangle":
            cv2.rectangle(mask, (cx - size, cy - size // 2), (cx + size, cy + size // 2), 1, -1)
        else:
            pts = np.array([[cx, cy - size], [cx - size, cy + size], [cx + size, cy + size]], np.int32)
            cv2.fillPoly(mask, [pts], 1)
        if not mask.any():
            continue
        colour = rng.integers(0, 255, 3)
        image[mask.astype(bool)] = colour
        for other in instances:
            other.mask[mask.astype(bool)] = 0
        instances.append(Instance(shape, mask))
    return image, [i for i in instances if i.mask.any()]
