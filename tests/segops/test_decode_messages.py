"""A file that does not decode is described by its size and kind, never by its bytes."""

from __future__ import annotations

import pytest

from segops.decode import ImageDecodeError, decode_image

SECRET = b"ghp_0123456789abcdef"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (SECRET + b"\n", "text; JPEG, PNG, BMP, WebP or TIFF expected"),
        (b"<!DOCTYPE html><html><body>" + SECRET + b"</body></html>", "an HTML page;"),
        (b"%PDF-1.7\n" + SECRET, "a PDF;"),
        (b"\x00\x01\x02\x03" + SECRET, "binary data;"),
        (b"\x89PNG\r\n\x1a\n" + SECRET, "a cut-short or corrupt PNG)"),
        (b"\xff\xd8\xff\xe0" + SECRET + bytes(64), "a cut-short or corrupt JPEG)"),
    ],
)
def test_a_non_image_is_named_by_size_and_kind(data, kind):
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data)
    message = str(info.value)
    assert message.startswith(f"not a decodable image ({len(data)} bytes, ") and kind in message, message
    assert SECRET[:4].decode() not in message
