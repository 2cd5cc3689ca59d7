"""Image dimensions read from the file header alone, before anything is decoded.

OpenCV has no header-only API, and the serving environment has no Pillow, so the common formats are
parsed here: PNG (IHDR), JPEG (the first SOF segment), BMP, WebP (VP8, VP8L, VP8X), GIF (logical
screen) and TIFF (first IFD). Other formats return None; OpenCV's own limit
(:func:`limit_opencv_pixels`) still stops them before their pixels are allocated.

No OpenCV import here: the limit must be set before OpenCV is loaded.
"""

from __future__ import annotations

import os
import struct

_PNG = b"\x89PNG\r\n\x1a\n"
# SOF0-3, 5-7, 9-11, 13-15: the frame header with the image size (C4 DHT, C8 JPG, CC DAC are not)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, 0xD8, *range(0xD0, 0xD8)}  # TEM, SOI, RST0-7


def limit_opencv_pixels(max_pixels: int) -> None:
    """Make OpenCV refuse, after reading the header, any image over ``max_pixels``. OpenCV reads
    ``OPENCV_IO_MAX_IMAGE_PIXELS`` once, when its library loads: call this before importing cv2."""
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(max_pixels)


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) claimed by the header, or None for an unknown format or a truncated header."""
    try:
        for prefix, parse in _PARSERS:
            if data.startswith(prefix):
                return parse(data)
    except (struct.error, IndexError):
        return None
    return None


def _png(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _gif(data: bytes) -> tuple[int, int]:
    return struct.unpack("<HH", data[6:10])


def _bmp(data: bytes) -> tuple[int, int]:
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height means top-down rows


def _webp(data: bytes) -> tuple[int, int] | None:
    if data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: a key frame's start code, then 14-bit sizes
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature 0x2f, then 14-bit width-1 and height-1
        if data[20] != 0x2F:
            return None
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return (width, height) if height else None  # height 0: given later (DNL), unknown here
        i += 2 + length
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    sizes = {}
    for k in range(count):
        entry = data[offset + 2 + 12 * k : offset + 14 + 12 * k]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            fmt, value = ("H", entry[8:10]) if kind == 3 else ("I", entry[8:12])
            (sizes[tag],) = struct.unpack(order + fmt, value)
    if 256 not in sizes or 257 not in sizes:
        return None
    return sizes[256], sizes[257]


_PARSERS = (
    (_PNG, _png),
    (b"\xff\xd8", _jpeg),
    (b"BM", _bmp),
    (b"RIFF", _webp),
    (b"GIF87a", _gif),
    (b"GIF89a", _gif),
    (b"II*\x00", _tiff),
    (b"MM\x00*", _tiff),
)
