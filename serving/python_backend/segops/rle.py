"""COCO compressed RLE, via pycocotools."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def encode(mask: np.ndarray) -> bytes:
    """Binary HxW mask → the compressed RLE ``counts`` (size is the image's)."""
    return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))["counts"]


def decode(counts: bytes | str, height: int, width: int) -> np.ndarray:
    if isinstance(counts, str):
        counts = counts.encode()
    return mask_utils.decode({"size": [height, width], "counts": counts})
