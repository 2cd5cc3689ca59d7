"""Writing an image file atomically (result masks, colour masks, overlays, converted datasets)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from segcontract.files import write_atomic


def write_image_atomic(path: Path, image: np.ndarray) -> None:
    """Encode by the file's suffix (PNG keeps uint16) and write atomically."""
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OSError(f"cannot encode {path.name}")
    write_atomic(path, encoded.tobytes())
