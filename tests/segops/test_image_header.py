"""Image sizes from headers alone, and the pixel limit decode_image enforces with them."""

import struct
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from segcontract.limits import DEFAULT_MAX_PIXELS
from segops.decode import ImageDecodeError, ImageTooLargeError, decode_image
from segops.image_header import image_dimensions
from tests.conftest import REPO_ROOT
from tests.helpers import constant_png


def _encode(image, ext, params=()):
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


RNG = np.random.default_rng(0)
SCENE = RNG.integers(0, 255, (37, 53, 3), dtype=np.uint8)
ALPHA = np.dstack([SCENE, RNG.integers(0, 255, (37, 53), dtype=np.uint8)])


@pytest.mark.parametrize(
    ("image", "ext", "params"),
    [
        (SCENE, ".png", ()),
        (SCENE[:, :, 0], ".png", ()),
        (SCENE, ".jpg", ()),
        (SCENE, ".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
        (SCENE, ".bmp", ()),
        (SCENE, ".webp", (cv2.IMWRITE_WEBP_QUALITY, 50)),  # lossy: VP8
        (SCENE, ".webp", (cv2.IMWRITE_WEBP_QUALITY, 101)),  # lossless: VP8L
        (SCENE, ".tiff", ()),
    ],
)
def test_header_size_is_the_decoded_size(image, ext, params):
    data = _encode(image, ext, params)
    assert image_dimensions(data) == (53, 37)
    assert decode_image(data, max_pixels=53 * 37).shape == (37, 53, 3)  # exactly at the limit: decoded


def test_jpeg_size_is_found_past_large_metadata_segments():
    data = _encode(SCENE, ".jpg")
    app = b"\xff\xe1" + struct.pack(">H", 65535) + b"E" * 65533  # a full-size APP1 (EXIF) segment
    assert image_dimensions(data[:2] + app + app + data[2:]) == (53, 37)


def test_extended_webp_and_big_endian_tiff_headers():
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x10\x00\x00\x00" + (19999).to_bytes(3, "little")
    assert image_dimensions(vp8x + (29999).to_bytes(3, "little")) == (20000, 30000)
    entries = struct.pack(">HHIHH", 256, 3, 1, 640, 0) + struct.pack(">HHII", 257, 4, 1, 70000)
    assert image_dimensions(b"MM\x00*" + struct.pack(">IH", 8, 2) + entries) == (640, 70000)


@pytest.mark.parametrize(
    "data", [b"", b"\x89PNG\r\n\x1a\n\x00\x00", b"\xff\xd8\xff\xe0\x00\x10", b"P6\n7 5\n255\n", b"hello"]
)
def test_unknown_or_truncated_headers_give_no_size(data):
    assert image_dimensions(data) is None


def test_an_image_over_the_limit_is_refused_naming_its_size_and_the_limit():
    bomb = constant_png(20000, 20000)
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageTooLargeError) as caught:
        decode_image(bomb, max_pixels=DEFAULT_MAX_PIXELS)
    message = str(caught.value)
    assert "20000x20000 (400.0 megapixels)" in message
    assert "limit of 64.0 megapixels" in message and "--max-pixels" in message
    assert isinstance(caught.value, ImageDecodeError)  # the server answers INVALID_ARGUMENT


def test_opencv_refuses_formats_without_a_parsed_header_when_limited_before_loading():
    """Radiance HDR is sized by no parser here: OpenCV's own limit, set before cv2 loads, stops it."""
    script = textwrap.dedent(
        """
        from segops.image_header import limit_opencv_pixels
        limit_opencv_pixels(1000)
        import cv2, numpy as np
        from segops.decode import ImageTooLargeError, decode_image
        ok, hdr = cv2.imencode(".hdr", np.ones((40, 40, 3), np.float32))
        try:
            decode_image(hdr.tobytes(), max_pixels=1000)
        except ImageTooLargeError as exc:
            print("refused:", exc)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("refused: image header claims more than this server's limit of 1000 pixels")
