"""Letterbox resize and its inverse, matching ultralytics 8.4 (``LetterBox`` and ``scale_boxes``).

With a ``stride``, an image is padded only up to a multiple of it (ultralytics' ``auto=True``, what
``predict`` on a .pt does: its ``rect`` input), so a 1280×720 image becomes 640×384, not 640×640;
the one Python model serves that, and ``predict()`` is its like-for-like reference. Without one,
it is padded to the full ``size`` (``auto=False``), the one shape a batched ensemble's tensors
can have; ``predict(rect=False)`` is then the reference.

The inverse (boxes and masks back to the original image) is worked out from the input's shape
alone, as ``scale_boxes`` and ``scale_masks`` do, whichever padding made it.
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

    @property
    def input_hw(self) -> tuple[int, int]:
        """The padded image's (height, width): the network input's."""
        return self.new_h + self.top + self.bottom, self.new_w + self.left + self.right


def letterbox_params(
    orig_hw: tuple[int, int], size: tuple[int, int], stride: int | None = None
) -> LetterboxParams:
    """Resize keeping the aspect ratio to fit ``size`` (h, w; each side ≥ 1 px), centre, pad to
    ``size``, or with ``stride`` only to the next multiple of it on each side."""
    h, w = int(orig_hw[0]), int(orig_hw[1])
    r = min(size[0] / h, size[1] / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = size[1] - new_w, size[0] - new_h
    if stride:
        dw, dh = dw % stride, dh % stride
    top, bottom = round(dh / 2 - 0.1), round(dh / 2 + 0.1)
    left, right = round(dw / 2 - 0.1), round(dw / 2 + 0.1)
    return LetterboxParams(h, w, new_h, new_w, top, bottom, left, right)


def letterbox(
    image: np.ndarray, size: tuple[int, int], stride: int | None = None
) -> tuple[np.ndarray, LetterboxParams]:
    """HxWx3 uint8 → size[0]×size[1]×3 uint8 (with ``stride``: padded only to a multiple of it),
    resized with INTER_LINEAR and padded with 114."""
    p = letterbox_params(image.shape[:2], size, stride)
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
