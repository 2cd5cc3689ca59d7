"""The outlines of a mask's pixels: closed polygons along pixel edges, with integer corner vertices.

A component is a set of 8-connected pixels; its outline is the boundary of the union of its pixel
squares, so the vertices are pixel corners (integers, in the convention of ``annotations.pixels``)
and every edge is horizontal or vertical. Pixels that touch only at a corner belong to one
component, whose outline touches itself at that corner. Holes (background that is not 4-connected
to the outside of the image) are inside an outline: an outline is an outer boundary only.

How: OpenCV traces contours through the centres of boundary pixels. Tracing instead a grid of
twice the resolution plus one, where every pixel is drawn with its four edges and corners (cell
``(2y + 1, 2x + 1)`` is the pixel's inside, even rows and columns its edges and corners), puts the
traced cells on the pixel edges: halving their coordinates gives the outline. The tracer cuts
concave corners diagonally; the corner it cut is put back, so every vertex is a pixel corner.
"""

from __future__ import annotations

import cv2
import numpy as np


def _edge_grid(inside: np.ndarray) -> np.ndarray:
    height, width = inside.shape
    grid = np.zeros((2 * height + 1, 2 * width + 1), np.uint8)
    grid[1::2, 1::2] = inside
    return cv2.dilate(grid, np.ones((3, 3), np.uint8))


def _following(lengths: np.ndarray) -> np.ndarray:
    """For points of several closed chains laid end to end: the index of each point's successor."""
    ends = np.cumsum(lengths)
    following = np.arange(int(ends[-1])) + 1
    following[ends - 1] = ends - lengths
    return following


def _preceding(lengths: np.ndarray) -> np.ndarray:
    ends = np.cumsum(lengths)
    preceding = np.arange(int(ends[-1])) - 1
    preceding[ends - lengths] = ends - 1
    return preceding


def _corners(cells: np.ndarray, owner: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid cells of the traced chains → their pixel corners, with the cut concave corners put back."""
    x, y = cells[:, 0], cells[:, 1]
    following = cells[_following(lengths)]
    next_x, next_y = following[:, 0], following[:, 1]
    diagonal = (next_x != x) & (next_y != y)
    # a diagonal step cuts the corner (x, next_y) or (next_x, y): the one on even rows and columns
    first = ((x | next_y) & 1) == 0
    seq_x = np.stack([x, np.where(first, x, next_x)], axis=1).reshape(-1)
    seq_y = np.stack([y, np.where(first, next_y, y)], axis=1).reshape(-1)
    present = np.stack([np.ones_like(diagonal), diagonal], axis=1).reshape(-1)
    keep = present & (((seq_x | seq_y) & 1) == 0)
    corners = np.stack([seq_x[keep], seq_y[keep]], axis=1) // 2
    return corners, np.repeat(owner, 2)[keep]


def _turns(points: np.ndarray, owner: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Only the points where a chain changes direction (repeated and straight-through points go)."""
    lengths = np.bincount(owner, minlength=count)
    before = points - points[_preceding(lengths)]
    after = points[_following(lengths)] - points
    turn = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0] != 0
    return points[turn], owner[turn]


def _areas(points: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """The area each chain encloses (shoelace)."""
    following = points[_following(np.bincount(owner, minlength=count))]
    twice = points[:, 0] * following[:, 1] - following[:, 0] * points[:, 1]
    return np.abs(np.bincount(owner, weights=twice, minlength=count)) / 2


def pixel_outlines(mask: np.ndarray, min_area: float = 0.0, limit: int | None = None) -> list[np.ndarray]:
    """The outlines of ``mask`` (anything non-zero is inside), largest area first, as (k, 2) int64
    arrays of x, y corners; those enclosing less than ``min_area`` pixels are left out, and only the
    ``limit`` largest are returned when it is given (the rest are not even split out)."""
    inside = np.asarray(mask) > 0
    if inside.ndim != 2:
        raise ValueError(f"a mask has 2 dimensions, not {inside.ndim}")
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        return []
    # the grid is 4 times the mask: trace the mask's bounding box only, then move the outlines back
    top, left = int(rows[0]), int(cols[0])
    crop = inside[top : int(rows[-1]) + 1, left : int(cols[-1]) + 1]
    contours, _ = cv2.findContours(_edge_grid(crop), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    count = len(contours)
    lengths = np.fromiter((len(c) for c in contours), np.int64, count)
    cells = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    points, owner = _corners(cells, np.repeat(np.arange(count), lengths), lengths)
    points, owner = _turns(points, owner, count)
    points += (left, top)
    areas = _areas(points, owner, count)
    kept = np.flatnonzero((areas >= min_area) & (areas > 0))
    order = kept[np.argsort(-areas[kept], kind="stable")][:limit]
    starts = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=count))))
    return [points[starts[i] : starts[i + 1]] for i in order]
