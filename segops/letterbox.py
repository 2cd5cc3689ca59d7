"""Letterbox resize and its inverse, matching ultralytics 8.4 (``LetterBox`` and ``scale_boxes``).

The server pads every image to the full ``size``×``size`` square (ultralytics' ``auto=False``),
because a batched model has one fixed input shape. Ultralytics' ``predict`` on a .pt pads only to
a multiple of the stride (``rect``); ``predict(rect=False)`` is the like-for-like reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxParams:
    """How an original image maps into the model input: per-axis gain, then top/left padding."""

    orig_h: int
    orig_w: int
    new_h: int
    new_w: int
    top: int
    bottom: int
    left: int
    right: int

    @property
    def gain_x(self) -> float:
        return self.new_w / self.orig_w

    @property
    def gain_y(self) -> float:
        return self.new_h / self.orig_h


def letterbox_params(orig_hw: tuple[int, int], size: tuple[int, int]) -> LetterboxParams:
    """Resize keeping the aspect ratio (each side ≥ 1 px), centre, pad to ``size`` (h, w)."""
    h, w = int(orig_hw[0]), int(orig_hw[1])
    r = min(size[0] / h, size[1] / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = (size[1] - new_w) / 2, (size[0] - new_h) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return LetterboxParams(h, w, new_h, new_w, top, bottom, left, right)


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, LetterboxParams]:
    """HxWx3 uint8 → size[0]×size[1]×3 uint8, resized with INTER_LINEAR and padded with 114."""
    p = letterbox_params(image.shape[:2], size)
    if (p.new_w, p.new_h) != (p.orig_w, p.orig_h):
        image = cv2.resize(image, (p.new_w, p.new_h), interpolation=cv2.INTER_LINEAR)
    padded = cv2.copyMakeBorder(
        image, p.top, p.bottom, p.left, p.right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
    )
    return padded, p


def to_model_input(letterboxed_bgr: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 BGR → 3xHxW float32 RGB in [0, 1], as ultralytics' predictor feeds the model."""
    chw_rgb = letterboxed_bgr[:, :, ::-1].transpose(2, 0, 1)
    return np.ascontiguousarray(chw_rgb, dtype=np.float32) * np.float32(1 / 255)


def scale_boxes_to_original(boxes: np.ndarray, p: LetterboxParams) -> np.ndarray:
    """xyxy boxes in model-input pixels → original-image pixels, per axis, clipped to the image."""
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - p.left) / p.gain_x
    out[:, [1, 3]] = (out[:, [1, 3]] - p.top) / p.gain_y
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, p.orig_w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, p.orig_h)
    return out
