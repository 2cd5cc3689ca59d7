"""What ``--int8`` on a CPU runtime is asked for: the calibration images and the accuracy limit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuildError

DEFAULT_MAX_DROP = 1.0  # points of the family's measure (mask mAP50, top-1 %, mIoU) against FP32
HELD_OUT_EVERY = 5  # every fifth calibration image is held out to measure the drop
MAX_CALIBRATION_IMAGES = 300  # NNCF's default subset size: more costs build time, not accuracy


@dataclass(frozen=True)
class Int8Options:
    calibration_images: Path
    max_drop: float = DEFAULT_MAX_DROP
    accept_drop: bool = False  # build even where the drop is beyond max_drop (recorded as accepted)

    def __post_init__(self) -> None:
        if not Path(self.calibration_images).is_dir():
            raise BuildError(
                f"--calibration-images {self.calibration_images}: no such folder; give a folder of "
                "images like those the model will serve (a few hundred; at least 5)"
            )
        if self.max_drop < 0:
            raise BuildError(f"--max-drop {self.max_drop}: give the points the answers may move, e.g. 1")
