"""COCO instances files: reading them, their segmentations (polygons, RLE compressed or not, crowd
regions), and writing annotations and files.

A ``segmentation`` is one of

- polygons: ``[[x1, y1, x2, y2, ...], ...]`` (or one flat list), in the package's pixel convention;
  pycocotools takes their union, so they cannot hold a hole;
- compressed RLE: ``{"size": [h, w], "counts": "<string>"}``, pycocotools' encoding;
- uncompressed RLE: ``{"size": [h, w], "counts": [n0, n1, ...]}``, run lengths down the columns
  (column-major), 0s first; CVAT writes crowd regions (``iscrowd: 1``) so.

RLE is exact, pixel for pixel, holes included: the store's export writes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from annotations.errors import AnnotationFormatError
from annotations.polygons import Polygon, flat, has_area, mask_polygons, points, polygon_area, polygons_mask
from segcontract.files import write_json_atomic
from segops.rle import covered_pixels

EMPTY = "empty segmentation"
DEGENERATE = "degenerate polygon (fewer than 3 points or no area)"


# ---------------------------------------------------------------------------------------------
# files


def read_coco(path: Path) -> dict:
    """A COCO instances file as a dict; AnnotationFormatError naming the file when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise AnnotationFormatError(
            f"{path}: invalid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except UnicodeDecodeError:
        raise AnnotationFormatError(f"{path}: not a text file") from None
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
        raise AnnotationFormatError(f"{path}: not a COCO file (needs images, annotations and categories)")
    return data


def instances_document(
    images: Sequence[dict], categories: Sequence[dict], annotations: Sequence[dict], info: dict | None = None
) -> dict:
    """A COCO instances dict (``pycocotools.coco.COCO`` loads it)."""
    return {
        "info": dict(info or {}),
        "licenses": [],
        "images": list(images),
        "categories": list(categories),
        "annotations": list(annotations),
    }


def write_coco(path: Path, document: dict) -> None:
    """Write a COCO dict as JSON, atomically."""
    write_json_atomic(Path(path), document)


# ---------------------------------------------------------------------------------------------
# RLE


def _c_rle(rle: dict) -> dict:
    """A compressed RLE as pycocotools' C functions take it (counts as bytes)."""
    counts = rle["counts"]
    return {
        "size": [int(v) for v in rle["size"]],
        "counts": counts.encode() if isinstance(counts, str) else counts,
    }


def mask_rle(mask: np.ndarray) -> dict:
    """The compressed RLE of a mask (anything non-zero is inside), JSON-ready: counts a string."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask) > 0, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """The uncompressed RLE of a mask: run lengths down the columns, 0s first (as CVAT writes crowds)."""
    flat = (np.asarray(mask) > 0).ravel(order="F")
    if flat.size == 0:
        return {"size": list(np.shape(mask)), "counts": []}
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    return {"size": [int(v) for v in np.shape(mask)], "counts": [0, *counts] if flat[0] else counts}


def rle_mask(rle: dict) -> np.ndarray:
    """The uint8 mask of a compressed RLE (counts a string or bytes)."""
    return mask_utils.decode(_c_rle(rle))


def rle_area(rle: dict) -> float:
    return float(mask_utils.area(_c_rle(rle)))


def rle_bbox(rle: dict) -> list[float]:
    """``[x, y, w, h]``: the extent of the mask's pixels, in pixel edges."""
    return [float(v) for v in mask_utils.toBbox(_c_rle(rle))]


def _checked_rle(segmentation: dict, height: int, width: int) -> dict:
    """A segmentation's RLE, compressed, of the image's size; AnnotationFormatError otherwise."""
    try:
        size = [int(v) for v in segmentation.get("size", [height, width])]
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if any(int(n) < 0 for n in counts):
                raise ValueError("a run length is negative")
            covered = sum(int(n) for n in counts)
            rle = mask_utils.frPyObjects({"size": size, "counts": counts}, *size)
        else:
            rle = _c_rle({"size": size, "counts": counts})
            covered = covered_pixels(rle["counts"])
        if covered != size[0] * size[1]:
            raise ValueError(f"the runs cover {covered} pixels, the size {size} {size[0] * size[1]}")
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise AnnotationFormatError(f"invalid RLE: {exc}") from None
    if size != [height, width]:
        raise AnnotationFormatError(f"RLE size {size} differs from the image's {[height, width]}")
    return rle


# ---------------------------------------------------------------------------------------------
# segmentations


def _polygon_list(segmentation: list) -> list:
    return segmentation if isinstance(segmentation[0], list) else [segmentation]


def _usable(polygon: object) -> bool:
    try:
        return has_area(polygon)  # type: ignore[arg-type]
    except TypeError:
        return False


def segmentation_polygons(segmentation: object, height: int, width: int) -> list[np.ndarray]:
    """The polygons of a COCO segmentation: a polygon segmentation's own (those with an area), an
    RLE's outlines traced along pixel edges (exact, holes filled). AnnotationFormatError with the
    reason (``EMPTY``, ``DEGENERATE``, an invalid RLE) when there is none."""
    if isinstance(segmentation, dict):
        if "counts" not in segmentation:
            raise AnnotationFormatError(EMPTY)
        polygons = mask_polygons(mask_utils.decode(_checked_rle(segmentation, height, width)))
        if not polygons:
            raise AnnotationFormatError(EMPTY)
        return polygons
    if not isinstance(segmentation, list) or not segmentation:
        raise AnnotationFormatError(EMPTY)
    polygons = [points(p) for p in _polygon_list(segmentation) if _usable(p)]
    if not polygons:
        raise AnnotationFormatError(DEGENERATE)
    return polygons


def polygon_segmentation(mask: np.ndarray) -> list[list[float]]:
    """A mask as a COCO polygon segmentation: its outlines along pixel edges, as flat lists
    (exact but for holes, which come back filled)."""
    return [flat(p) for p in mask_polygons(mask)]


def segmentation_mask(segmentation: object, height: int, width: int) -> np.ndarray:
    """The uint8 mask (height × width) of a COCO segmentation of any kind."""
    if isinstance(segmentation, dict):
        if "counts" not in segmentation:
            raise AnnotationFormatError(EMPTY)
        return mask_utils.decode(_checked_rle(segmentation, height, width))
    return polygons_mask(segmentation_polygons(segmentation, height, width), height, width)


# ---------------------------------------------------------------------------------------------
# annotations


def mask_annotation(ann_id: object, image_id: object, category_id: int, rle: dict, iscrowd: int = 0) -> dict:
    """A COCO annotation of a compressed RLE. ``area`` and ``bbox`` come from the mask (pycocotools'
    area and toBbox: the extent of its pixels in pixel edges, as COCOeval's bbox mode expects)."""
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": {"size": list(rle["size"]), "counts": _c_rle(rle)["counts"].decode()},
        "area": rle_area(rle),
        "bbox": rle_bbox(rle),
        "iscrowd": iscrowd,
    }


def polygon_bbox(polygons: Sequence[Polygon]) -> list[float]:
    """``[x, y, w, h]``: the extent of the polygons' vertices."""
    xy = np.concatenate([points(p) for p in polygons])
    (x1, y1), (x2, y2) = xy.min(axis=0), xy.max(axis=0)
    return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]


def polygon_annotation(
    ann_id: object, image_id: object, category_id: int, polygons: Sequence[Polygon]
) -> dict:
    """A COCO annotation of polygons; ``area`` is the polygons' (summed), ``bbox`` their extent."""
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": [flat(p) for p in polygons],
        "bbox": polygon_bbox(polygons),
        "area": float(sum(polygon_area(p) for p in polygons)),
        "iscrowd": 0,
    }
