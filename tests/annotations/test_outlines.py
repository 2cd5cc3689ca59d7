"""Pixel-edge outlines: corners, diagonal touches, holes, order and limits."""

from __future__ import annotations

import numpy as np
import pytest

from annotations.outlines import pixel_outlines
from annotations.polygons import polygon_area


def _corners(outline: np.ndarray) -> set[tuple[int, int]]:
    return {(int(x), int(y)) for x, y in outline}


def test_one_pixel_is_its_four_corners():
    mask = np.zeros((5, 6), np.uint8)
    mask[3, 4] = 1  # row 3, column 4: the square [4, 5) × [3, 4)
    (outline,) = pixel_outlines(mask)
    assert outline.dtype == np.int64 and outline.shape == (4, 2)
    assert _corners(outline) == {(4, 3), (5, 3), (5, 4), (4, 4)}


def test_straight_runs_keep_only_their_ends_and_the_frame_is_the_image():
    (outline,) = pixel_outlines(np.ones((3, 7), np.uint8))
    assert _corners(outline) == {(0, 0), (7, 0), (7, 3), (0, 3)} and len(outline) == 4


def test_an_l_shape_keeps_its_concave_corner():
    mask = np.array([[1, 0], [1, 1]], np.uint8)
    (outline,) = pixel_outlines(mask)
    assert _corners(outline) == {(0, 0), (1, 0), (1, 1), (2, 1), (2, 2), (0, 2)} and len(outline) == 6


def test_pixels_touching_at_a_corner_share_one_outline_through_it():
    mask = np.array([[1, 0], [0, 1]], np.uint8)
    (outline,) = pixel_outlines(mask)
    assert len(outline) == 8 and sum(1 for x, y in outline if (x, y) == (1, 1)) == 2


def test_a_hole_is_inside_the_outline():
    ring = np.ones((5, 5), np.uint8)
    ring[2, 2] = 0
    (outline,) = pixel_outlines(ring)
    assert _corners(outline) == {(0, 0), (5, 0), (5, 5), (0, 5)}


def test_largest_first_small_ones_left_out_and_limited():
    mask = np.zeros((10, 20), np.uint8)
    mask[0:2, 0:2] = 1  # area 4
    mask[5:9, 5:10] = 1  # area 20
    mask[0, 15] = 1  # area 1
    assert [polygon_area(o) for o in pixel_outlines(mask)] == [20, 4, 1]
    assert [len(o) for o in pixel_outlines(mask, min_area=2)] == [4, 4]
    (largest,) = pixel_outlines(mask, limit=1)
    assert _corners(largest) == {(5, 5), (10, 5), (10, 9), (5, 9)}


def test_empty_and_wrong_dimensions():
    assert pixel_outlines(np.zeros((3, 4), bool)) == []
    with pytest.raises(ValueError, match="2 dimensions"):
        pixel_outlines(np.zeros((2, 3, 3), np.uint8))
