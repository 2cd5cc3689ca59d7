"""Masks ↔ polygons: the pixel convention, the point budget, and what has an area."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from annotations.cvat_xml import cvat_polygons
from annotations.polygons import flat, has_area, mask_polygons, points, polygon_area, polygons_mask
from tests.helpers import mask_iou


def test_a_polygon_on_pixel_edges_covers_exactly_those_pixels():
    # the square [1, 4) × [2, 3): pixels (1..3, 2) in the package's convention
    mask = polygons_mask([[1, 2, 4, 2, 4, 3, 1, 3]], 5, 6)
    expected = np.zeros((5, 6), np.uint8)
    expected[2, 1:4] = 1
    assert np.array_equal(mask, expected)
    # a pixel's centre inside the polygon is what counts: half a pixel in, half a pixel out
    assert np.array_equal(
        polygons_mask([[0.5, 1.5, 4.5, 1.5, 4.5, 3.5, 0.5, 3.5]], 5, 6)[2], [0, 1, 1, 1, 1, 0]
    )


def test_one_row_and_one_column_masks():
    row = np.array([[1, 1, 0, 1, 0, 0, 1]], np.uint8)
    polygons = mask_polygons(row)
    corners = [frozenset((int(x), int(y)) for x, y in p) for p in polygons]
    assert corners[0] == {(0, 0), (2, 0), (2, 1), (0, 1)}  # the largest first
    assert set(corners[1:]) == {
        frozenset({(3, 0), (4, 0), (4, 1), (3, 1)}),
        frozenset({(6, 0), (7, 0), (7, 1), (6, 1)}),
    }
    assert np.array_equal(polygons_mask(polygons, 1, 7), row)
    assert np.array_equal(polygons_mask(mask_polygons(row.T), 7, 1), row.T)


def test_the_budget_simplifies_only_past_it_and_keeps_pixel_corners():
    mask = np.zeros((640, 640), np.uint8)
    cv2.circle(mask, (320, 320), 300, 1, -1)  # an outline of about 1,400 corners
    exact = mask_polygons(mask)
    assert sum(map(len, exact)) > 1000
    assert mask_polygons(mask, max_points=10_000)[0].tolist() == exact[0].tolist()
    (budgeted,) = mask_polygons(mask, max_points=1000)
    assert 3 <= len(budgeted) <= 1000 and (budgeted == np.round(budgeted)).all()
    assert mask_iou(polygons_mask([budgeted], 640, 640), mask) >= 0.99


def test_past_the_budget_the_smallest_pieces_go_first():
    mask = np.zeros((60, 400), np.uint8)
    cv2.circle(mask, (30, 30), 25, 1, -1)
    mask[5:7, 100:400:4] = 1  # 75 specks, 1 pixel wide and 2 high
    polygons = mask_polygons(mask, max_points=40)
    assert sum(map(len, polygons)) <= 40
    assert polygon_area(polygons[0]) == max(polygon_area(p) for p in polygons) > 1500


def test_cvat_polygons_drop_specks():
    mask = np.zeros((20, 20), np.uint8)
    mask[2:8, 2:8] = 1
    mask[15, 15] = 1
    mask[17:19, 10:12] = 1  # 4 pixels: kept
    polygons = cvat_polygons(mask)
    assert sorted(polygon_area(p) for p in polygons) == [4, 36]


def test_flat_points_area_and_has_area():
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)
    assert flat(square) == [0, 0, 2, 0, 2, 2, 0, 2]
    assert points(flat(square)).tolist() == square.tolist()
    assert polygon_area(square) == polygon_area(square[::-1]) == 4
    assert has_area(square) and not has_area([10, 10, 20, 20]) and not has_area([0, 0, 1, 1, 2, 2])
    assert not has_area([0, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="an x and a y"):
        points([1, 2, 3])


def test_polygons_without_area_add_nothing():
    assert not polygons_mask([[0, 0, 3, 3]], 4, 4).any()
    assert not polygons_mask([], 4, 4).any() and polygons_mask([], 4, 4).shape == (4, 4)


def test_a_budget_must_hold_a_polygon():
    with pytest.raises(ValueError, match="a budget of 2 holds none"):
        mask_polygons(np.ones((3, 3)), max_points=2)
    assert [p.tolist() for p in mask_polygons(np.ones((3, 3)), max_points=4)] == [
        p.tolist() for p in mask_polygons(np.ones((3, 3)))
    ]
