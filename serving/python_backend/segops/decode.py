"""Decode an encoded image file the way ultralytics reads one from disk."""

from __future__ import annotations

import cv2
import numpy as np


class ImageDecodeError(ValueError):
    """The bytes are not an image OpenCV can decode."""


def decode_image(data: bytes | np.ndarray) -> np.ndarray:
    """Encoded JPEG/PNG/BMP/WebP/TIFF bytes → HxWx3 uint8 BGR.

    ``cv2.IMREAD_COLOR`` is what ultralytics' ``imread`` uses: gray becomes BGR, BGRA drops alpha,
    16-bit is scaled to 8-bit, and the EXIF orientation is applied as OpenCV does.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
    if buf.size == 0:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a header claiming more pixels than CV_IO_MAX_IMAGE_PIXELS
        reason = str(exc).strip().splitlines()[-1][:200]
        raise ImageDecodeError(f"not a decodable image ({buf.size} bytes): {reason}") from None
    if image is None:
        head = bytes(buf[:8])
        raise ImageDecodeError(f"not a decodable image ({buf.size} bytes, starts with {head!r})")
    return image
