"""Decode an encoded image file the way ultralytics reads one from disk, within a pixel budget."""

from __future__ import annotations

import cv2
import numpy as np

from .image_header import image_dimensions


class ImageDecodeError(ValueError):
    """The bytes are not an image OpenCV can decode."""


class ImageTooLargeError(ImageDecodeError):
    """The header claims more pixels than the server accepts: refused before anything is decoded."""


def _pixels(count: int) -> str:
    return f"{count / 1e6:.1f} megapixels" if count >= 100_000 else f"{count} pixels"


def decode_image(data: bytes | np.ndarray, max_pixels: int | None = None) -> np.ndarray:
    """Encoded JPEG/PNG/BMP/WebP/TIFF bytes → HxWx3 uint8 BGR.

    ``cv2.IMREAD_COLOR`` is what ultralytics' ``imread`` uses: gray becomes BGR, BGRA drops alpha,
    16-bit is scaled to 8-bit, and the EXIF orientation is applied as OpenCV does. An image whose
    header claims more than ``max_pixels`` raises :class:`ImageTooLargeError` undecoded: a
    few-hundred-KB PNG can expand to gigabytes.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
    if buf.size == 0:
        raise ImageDecodeError("empty file (0 bytes)")
    if max_pixels is not None:
        size = image_dimensions(data if isinstance(data, bytes) else buf.tobytes())
        if size is not None and size[0] * size[1] > max_pixels:
            raise ImageTooLargeError(
                f"image is {size[0]}x{size[1]} ({_pixels(size[0] * size[1])}), over this server's "
                f"limit of {_pixels(max_pixels)}: resize it, or rebuild the repository with a larger "
                "build-repo --max-pixels"
            )
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a header claiming more pixels than OPENCV_IO_MAX_IMAGE_PIXELS
        reason = str(exc).strip().splitlines()[-1][:200]
        if max_pixels is not None and "CV_IO_MAX_IMAGE_PIXELS" in reason:
            raise ImageTooLargeError(
                f"image header claims more than this server's limit of {_pixels(max_pixels)} "
                f"({buf.size} bytes): resize it, or rebuild the repository with a larger "
                "build-repo --max-pixels"
            ) from None
        raise ImageDecodeError(f"not a decodable image ({buf.size} bytes): {reason}") from None
    if image is None:
        head = bytes(buf[:8])
        raise ImageDecodeError(f"not a decodable image ({buf.size} bytes, starts with {head!r})")
    return image
