"""Model-input preparation shared by every family: how the image is resized, normalised and laid out.

- ``letterbox``: keep the aspect ratio, pad to the square (YOLO; see letterbox.py);
- ``stretch``: resize straight to the input size with INTER_LINEAR (segmentation-models-pytorch, as
  the seed's training and albumentations' ``Resize`` do).
Then RGB, /255, ``(x - mean) / std`` per channel, and CHW (or HWC for NHWC models).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .letterbox import letterbox

RESIZE_MODES = ("letterbox", "stretch")


@dataclass(frozen=True)
class InputSpec:
    height: int
    width: int
    resize: str = "letterbox"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "CHW"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, not {self.resize!r}")
        if self.layout not in ("CHW", "HWC"):
            raise ValueError(f"layout must be CHW or HWC, not {self.layout!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (3, self.height, self.width) if self.layout == "CHW" else (self.height, self.width, 3)

    def to_parameters(self) -> dict[str, str]:
        return {
            "input_height": str(self.height),
            "input_width": str(self.width),
            "resize": self.resize,
            "mean": ",".join(map(str, self.mean)),
            "std": ",".join(map(str, self.std)),
            "layout": self.layout,
        }

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> InputSpec:
        def triple(key: str, default: Sequence[float]) -> tuple[float, float, float]:
            values = [float(v) for v in params[key].split(",")] if key in params else list(default)
            return (values[0], values[1], values[2])

        return cls(
            int(params["input_height"]),
            int(params["input_width"]),
            params.get("resize", "letterbox"),
            triple("mean", cls.mean),
            triple("std", cls.std),
            params.get("layout", "CHW"),
        )


def prepare(image_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """HxWx3 uint8 BGR → the model's float32 input for one image."""
    size = (spec.height, spec.width)
    if spec.resize == "letterbox":
        resized, _ = letterbox(image_bgr, size)
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
