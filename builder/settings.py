"""What a build asks of a family and a runtime: plain values, importable without torch, so that
``build-repo --help``, ``doctor`` and option errors answer before any slow import."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuildError
from builder.tensorrt.options import DEFAULT_MAX_BATCH
from segcontract.limits import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_MAX_PIXELS

DEFAULT_ONNX_TOLERANCE = 1e-3  # the ONNX vs PyTorch check, absolute and relative

MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class LoadRequest:
    """What the user asked for; each family uses the parts that apply to it."""

    model: str
    weights: Path | None = None
    imgsz: int | None = None  # square input size
    size: tuple[int, int] | None = None  # (width, height) input size
    nhwc: bool = False  # NHWC input named input_1, as the seeds' TensorRT commands expect
    arch: str | None = None  # overrides of what a checkpoint records
    encoder: str | None = None
    trust_checkpoint: bool = False  # load with the full unpickler (runs code the file holds)
    rect: bool = False  # export a network of any height and width, fed images padded to its stride


@dataclass
class BuildSettings:
    """The options of a build that families and runtimes need."""

    name: str
    max_batch_size: int = DEFAULT_MAX_BATCH
    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    max_det: int = DEFAULT_MAX_DET  # the default and the ceiling of a request's max_det
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused before decoding
    instances: int = 1
    max_queue_delay_us: int = 0

    def __post_init__(self) -> None:
        if not MODEL_NAME.match(self.name):
            raise BuildError(
                f"--name {self.name!r}: use letters, digits, '_', '-' and '.' (it is a folder name)"
            )
        if self.max_pixels < 1:
            raise BuildError(f"--max-pixels {self.max_pixels}: must be at least 1")
