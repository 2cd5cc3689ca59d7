"""Model-input preparation shared by every family: how the image is resized, normalised and laid out.

- ``letterbox``: keep the aspect ratio, pad to the square (YOLO; see letterbox.py);
- ``stretch``: resize straight to the input size with INTER_LINEAR (segmentation-models-pytorch, as
  the seed's training and albumentations' ``Resize`` do).
Then RGB, /255, ``(x - mean) / std`` per channel, and CHW (or HWC for NHWC models).

:class:`InputSpec` (what to do) is part of the contract, :mod:`segcontract.model_metadata`: the
builder records it, the preprocess model reads it back; this module does it.
"""

from __future__ import annotations

import cv2
import numpy as np

from segcontract.model_metadata import RESIZE_MODES, InputSpec

from .letterbox import letterbox

__all__ = ["RESIZE_MODES", "InputSpec", "prepare"]


def prepare(image_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """HxWx3 uint8 BGR → the model's float32 input for one image (``spec.shape``, or with a
    ``spec.stride`` a shape no larger)."""
    size = (spec.height, spec.width)
    if spec.resize == "letterbox":
        resized, _ = letterbox(image_bgr, size, spec.stride)
    elif image_bgr.shape[:2] != size:
        resized = cv2.resize(image_bgr, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
    else:
        resized = image_bgr
    if spec.layout == "CHW":
        # one optimised pass: BGR→RGB, HWC→CHW, (x - mean) / 255; bit-identical to the numpy path
        mean = tuple(255.0 * m for m in spec.mean)  # RGB order, as swapRB expects
        x = cv2.dnn.blobFromImage(resized, 1 / 255, mean=mean, swapRB=True)[0]
        if spec.std != (1.0, 1.0, 1.0):
            x /= np.asarray(spec.std, np.float32)[:, None, None]
        return x
    x = resized[:, :, ::-1].astype(np.float32) * np.float32(1 / 255)
    if spec.mean != (0.0, 0.0, 0.0) or spec.std != (1.0, 1.0, 1.0):
        x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x)
