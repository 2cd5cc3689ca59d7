"""The calibration images, decoded and prepared as the server prepares them, split into those NNCF
calibrates on and those held out to measure the INT8 network against FP32."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from builder.errors import BuildError
from builder.quantization.options import HELD_OUT_EVERY, MAX_CALIBRATION_IMAGES
from segcontract.image_files import IMAGE_SUFFIXES, image_paths
from segops.decode import ImageDecodeError, decode_image
from segops.resize import InputSpec, prepare

log = logging.getLogger("build-repo")
MIN_IMAGES = 5


@dataclass
class CalibrationSet:
    calibrate: list[np.ndarray]  # prepared inputs, each with a batch of one
    held_out: list[np.ndarray]
    skipped: list[tuple[Path, str]]


def calibration_set(folder: Path, spec: InputSpec) -> CalibrationSet:
    """Every ``HELD_OUT_EVERY``-th decodable image of ``folder`` held out, the others (at most
    ``MAX_CALIBRATION_IMAGES``) to calibrate on. Each is padded to the full square even where the
    server pads only to the stride: one shape for NNCF's statistics, and the same work on both
    sides of the comparison. Undecodable files are skipped and named."""
    files = image_paths(folder)
    if not files:
        raise BuildError(
            f"--calibration-images {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) "
            "in it or below it"
        )
    square = dataclasses.replace(spec, stride=None)
    calibrate: list[np.ndarray] = []
    held_out: list[np.ndarray] = []
    skipped: list[tuple[Path, str]] = []
    limit = MAX_CALIBRATION_IMAGES + MAX_CALIBRATION_IMAGES // (HELD_OUT_EVERY - 1)
    decoded = 0
    for path in files:
        if decoded == limit:
            break
        try:
            image = decode_image(path.read_bytes())
        except (ImageDecodeError, OSError) as exc:
            skipped.append((path, str(exc)))
            log.warning("skipping %s: %s", path, exc)
            continue
        decoded += 1
        x = prepare(image, square)[None]
        (held_out if decoded % HELD_OUT_EVERY == 0 else calibrate).append(x)
    if decoded < MIN_IMAGES:
        raise BuildError(
            f"--calibration-images {folder}: {decoded} decodable images; give at least {MIN_IMAGES} "
            "(a few hundred like those the model will serve is better)"
        )
    return CalibrationSet(calibrate, held_out, skipped)
