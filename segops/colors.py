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


def voc_palette(n: int) -> list[tuple[int, int, int]]:
    """The first ``n`` colours (RGB) of the PASCAL VOC palette (what LabelMe's labelme2voc uses):
    0 is black, 1 (128,0,0), 2 (0,128,0)...; its first 2**24 colours all differ."""
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= (c & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors.append((r, g, b))
    return colors
