"""Masks ↔ polygons, in the pixel convention of the package docstring: the only place of both.

A polygon is a (k, 2) float64 array of x, y vertices, k >= 3, or the flat list
``[x1, y1, x2, y2, ...]`` COCO and CVAT files hold (:func:`flat` and :func:`points` convert).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from annotations.outlines import pixel_outlines

Polygon = np.ndarray | Sequence[float]

# the simplification tolerance (pixels): the first one tried, doubled until the points fit
_FIRST_EPSILON = 0.5
_LAST_EPSILON = 32.0


def _simplified(outlines: list[np.ndarray], epsilon: float) -> list[np.ndarray]:
    polygons = [cv2.approxPolyDP(o.astype(np.int32).reshape(-1, 1, 2), epsilon, True) for o in outlines]
    return [p.reshape(-1, 2) for p in polygons if len(p) >= 3]


def _within_budget(polygons: list[np.ndarray], max_points: int) -> list[np.ndarray]:
    """Largest first, the polygons that fit in ``max_points`` (what is left out are the smallest
    pieces of masks made of hundreds of blobs)."""
    kept, used = [], 0
    for polygon in polygons:
        if used + len(polygon) <= max_points:
            kept.append(polygon)
            used += len(polygon)
    return kept


def _fitted(outlines: list[np.ndarray], max_points: int) -> list[np.ndarray]:
    """The outlines simplified with a tolerance doubled from half a pixel until they fit in
    ``max_points`` points together; past 32 pixels, coarser would spoil the shapes, so the smallest
    pieces are left out instead (unless the largest alone still does not fit)."""
    epsilon = _FIRST_EPSILON
    polygons = _simplified(outlines, epsilon)
    while sum(map(len, polygons)) > max_points:
        if epsilon >= _LAST_EPSILON and max(map(len, polygons)) <= max_points:
            break
        epsilon *= 2
        polygons = _simplified(outlines, epsilon)
    return _within_budget(polygons, max_points)


def mask_polygons(mask: np.ndarray, max_points: int | None = None, min_area: float = 0.0) -> list[np.ndarray]:
    """The outer outlines of a mask (anything non-zero is inside) as polygons, largest first.

    Exact: the vertices are the pixel corners where the outline turns, so :func:`polygons_mask`
    gives the mask back with its holes filled. Outlines enclosing less than ``min_area`` pixels
    are left out. Only when all of them together have more than ``max_points`` points are they
    simplified (see :func:`_fitted`); the vertices stay pixel corners."""
    if max_points is not None and max_points < 3:
        raise ValueError(f"a polygon has 3 points at least: a budget of {max_points} holds none")
    # every outline has at least 4 points, simplified at least 3: no more than this many can fit
    # (and when the exact outlines fit, there were fewer than this many)
    limit = None if max_points is None else max_points // 3
    outlines = pixel_outlines(mask, min_area, limit)
    if max_points is not None and sum(map(len, outlines)) > max_points:
        outlines = _fitted(outlines, max_points)
    return [o.astype(np.float64) for o in outlines]


def flat(polygon: Polygon) -> list[float]:
    """``[x1, y1, x2, y2, ...]``, as COCO's ``segmentation`` lists a polygon."""
    return [float(v) for v in np.asarray(polygon, dtype=np.float64).reshape(-1)]


def points(polygon: Polygon) -> np.ndarray:
    """The (k, 2) vertices of a flat or (k, 2) polygon; ValueError for an odd count of numbers."""
    values = np.asarray(polygon, dtype=np.float64).reshape(-1)
    if values.size % 2:
        raise ValueError(f"a polygon has an x and a y per point, not {values.size} numbers")
    return values.reshape(-1, 2)


def polygon_area(polygon: Polygon) -> float:
    """The area the polygon encloses (shoelace; a self-crossing polygon's parts may cancel)."""
    xy = points(polygon)
    x, y = xy[:, 0], xy[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2)


def has_area(polygon: Polygon) -> bool:
    """At least 3 points and a non-zero area: a polygon a rasteriser can fill."""
    try:
        xy = points(polygon)
    except ValueError:
        return False
    return len(xy) >= 3 and polygon_area(xy) > 0


def polygons_mask(polygons: Sequence[Polygon], height: int, width: int) -> np.ndarray:
    """The uint8 mask (height × width) of the union of ``polygons``, rasterised as pycocotools
    rasterises COCO polygons (a pixel is inside when its centre is, up to the fifth of a pixel
    pycocotools samples edges at); polygons without area add nothing."""
    kept = [flat(p) for p in polygons if has_area(p)]
    if not kept:
        return np.zeros((height, width), np.uint8)
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(kept, height, width)))
