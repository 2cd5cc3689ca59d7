"""Test images made without the code under test."""

import struct
import zlib


def constant_png(width: int, height: int) -> bytes:
    """A gray PNG of any size, written row by row: 20000×20000 is about 390 KB, made in a second."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    deflate = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte 0, then gray 0
    data = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
