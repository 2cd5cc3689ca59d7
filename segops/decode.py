"""Decode an encoded image file the way ultralytics reads one from disk, within a pixel budget."""

from __future__ import annotations

import cv2
import numpy as np

from segcontract.errors import SegstackError
from segcontract.image_files import format_names

from .image_header import image_dimensions


class ImageDecodeError(SegstackError, ValueError):
    """The bytes are not an image OpenCV can decode."""


class ImageTooLargeError(ImageDecodeError):
    """The header claims more pixels than the server accepts: refused before anything is decoded."""


IMAGE_FORMATS = format_names()  # "JPEG, PNG, BMP, WebP or TIFF"
GIF_REFUSED = (
    f"a GIF, which segstack does not read (the server's OpenCV has no GIF decoder; {IMAGE_FORMATS} "
    "are read): convert it, e.g. ffmpeg -i in.gif -frames:v 1 out.png"
)

_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)
# what is often saved, or served by a URL, in an image's place
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
)


def _pixels(count: int) -> str:
    return f"{count / 1e6:.1f} megapixels" if count >= 100_000 else f"{count} pixels"


def _image_format(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((name for signature, name in _IMAGE_SIGNATURES if head.startswith(signature)), None)


def content_kind(head: bytes) -> str:
    """What a file starting with ``head`` seems to be, for one that does not decode as an image
    ("a PDF", "an HTML page", "text", "binary data"), in words that repeat nothing of it."""
    head = head[:512]
    kind = next((kind for signature, kind in _OTHER_SIGNATURES if head.startswith(signature)), None)
    if kind is not None:
        return kind
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not a multi-byte character cut at the end of ``head``
            return "binary data"
        text = head[: exc.start].decode("utf-8")
    start = text.lstrip("\ufeff \t\r\n").lower()
    if start.startswith(("<!doctype html", "<html")):
        return "an HTML page"
    if start.startswith(("<?xml", "<svg")):
        return "XML or SVG"
    return "text" if all(c.isprintable() or c in "\t\r\n" for c in text) else "binary data"


def unread_format(head: bytes) -> str | None:
    """Why a file starting with ``head`` is refused although it is an image (a GIF), else None:
    the one reason ``groups pull``, ``infer``, ``segments build`` and the server give."""
    return GIF_REFUSED if head[:6] in (b"GIF87a", b"GIF89a") else None


def not_an_image(size: int, head: bytes) -> str:
    """The one message for a file of ``size`` bytes, starting with ``head``, that no image decoder
    reads: its size and its kind, never its first bytes (they may be a secret: a token file saved
    as .jpg, a login page served in an image's place)."""
    image_format = _image_format(head)
    if image_format is not None:
        return f"not a decodable image ({size} bytes, a cut-short or corrupt {image_format})"
    return f"not a decodable image ({size} bytes, {content_kind(head)}; {IMAGE_FORMATS} expected)"


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
    if (reason := unread_format(buf[:6].tobytes())) is not None:
        raise ImageDecodeError(reason)
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
    if image is None:  # its size and kind only: the first bytes of a non-image may be a secret
        raise ImageDecodeError(not_an_image(buf.size, bytes(buf[:512])))
    return image
