"""Class-index masks in colour, for people to look at."""

from __future__ import annotations

import cv2
import numpy as np


def colorize(index: np.ndarray, colors_rgb: list[list[int]]) -> np.ndarray:
    """Class-index mask → BGR colour image (indices without a colour are black)."""
    lut = np.zeros((max(int(index.max(initial=0)) + 1, len(colors_rgb)), 3), np.uint8)
    lut[: len(colors_rgb)] = np.array(colors_rgb, np.uint8).reshape(-1, 3)[:, ::-1]
    return lut[index]


def blend(image_bgr: np.ndarray, color_bgr: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    return cv2.addWeighted(image_bgr, 1 - alpha, color_bgr, alpha, 0)
