import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segops import rle
from segops.decode import ImageDecodeError, decode_image


def _encode(image, ext):
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(
    ("image", "ext"),
    [
        (np.full((5, 7, 3), 100, np.uint8), ".png"),
        (np.full((5, 7), 100, np.uint8), ".png"),  # gray
        (np.full((5, 7, 4), 100, np.uint8), ".png"),  # BGRA
        (np.full((5, 7, 3), 100 * 257, np.uint16), ".png"),  # 16-bit
        (np.full((5, 7, 3), 100, np.uint8), ".bmp"),
        (np.full((5, 7, 3), 100, np.uint8), ".webp"),
        (np.full((1, 1, 3), 100, np.uint8), ".jpg"),
    ],
)
def test_every_layout_decodes_to_bgr_uint8(image, ext):
    decoded = decode_image(_encode(image, ext))
    assert decoded.dtype == np.uint8 and decoded.shape == (*image.shape[:2], 3)
    assert abs(int(decoded.mean()) - 100) <= 2


@pytest.mark.parametrize("data", [b"", b"hello world\n", b"\xff\xd8\xff\xe0" + b"\x00" * 40])
def test_undecodable_bytes_raise_a_readable_error(data):
    with pytest.raises(ImageDecodeError, match=r"empty file|not a decodable image"):
        decode_image(data)


def test_rle_round_trip_and_pycocotools_compatibility():
    mask = np.zeros((37, 53), np.uint8)
    mask[5:20, 10:40] = 1
    counts = rle.encode(mask)
    assert isinstance(counts, bytes)
    np.testing.assert_array_equal(rle.decode(counts, 37, 53), mask)
    assert mask_utils.area({"size": [37, 53], "counts": counts}) == mask.sum()


@pytest.mark.parametrize(
    "window",
    [(0, 0, 7, 5), (3, 2, 9, 30), (0, 0, 53, 37), (52, 36, 53, 37), (10, 10, 10, 20), (40, 0, 53, 37)],
)
def test_window_rle_equals_rle_of_the_pasted_mask(window):
    from segops.masks import paste

    rng = np.random.default_rng(sum(window))
    x0, y0, x1, y1 = window
    patch = (rng.random((y1 - y0, x1 - x0)) > 0.5).astype(np.uint8)
    expected = rle.encode(paste(window, patch, (37, 53)))
    assert rle.encode_window(patch, window, (37, 53)) == expected


def test_run_lengths_and_windows_read_compressed_rle_as_pycocotools_writes_it():
    """Run lengths of pycocotools' own strings (empty, full, sparse and dense masks, of every small
    size), and windows of the mask decoded from their columns only, pixel for pixel."""
    from segops.rle import decode_window, encode, run_lengths

    rng = np.random.default_rng(5)
    for n in range(300):
        height, width = int(rng.integers(1, 90)), int(rng.integers(1, 90))
        mask = (rng.random((height, width)) < [0.0, 1.0, 0.5, 0.02, 0.98][n % 5]).astype(np.uint8)
        counts = encode(mask)
        flat = mask.ravel(order="F")
        changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        runs = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
        expected = [0, *runs] if flat[0] else runs
        assert run_lengths(counts).tolist() == expected
        x0, x1 = sorted(rng.integers(0, width + 1, 2).tolist())
        y0, y1 = sorted(rng.integers(0, height + 1, 2).tolist())
        window = decode_window(counts.decode(), height, (x0, y0, x1, y1))
        assert np.array_equal(window, mask[y0:y1, x0:x1]), (n, height, width, (x0, y0, x1, y1))
