"""LabelMe JSON: one image's shapes, and the image it names or embeds.

::

    {"version": "5.4.1", "flags": {}, "imagePath": "road.jpg", "imageData": null | "<base64>",
     "imageHeight": 60, "imageWidth": 80,
     "shapes": [{"label": "car", "shape_type": "polygon", "points": [[x, y], ...],
                 "group_id": null, "flags": {}}, ...]}

Points are pixel centres, as LabelMe draws them (the exception the package docstring describes):
a shape covers its boundary pixels. A polygon (3 points or more), a rectangle (two opposite
corners) and a circle (its centre and a point on its rim) have an area; a line, a line strip and a
point have none. A shape without ``shape_type`` is a polygon, as LabelMe reads it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from annotations.errors import AnnotationFormatError


@dataclass(frozen=True)
class LabelMeImage:
    """The image of a LabelMe file: its pixels (BGR), and its file or the bytes embedded."""

    pixels: np.ndarray
    path: Path | None
    embedded: bytes | None


def read_labelme(path: Path) -> dict:
    """A LabelMe file as a dict, its ``shapes`` a list of objects; AnnotationFormatError
    ("invalid LabelMe JSON (...)") when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or "shapes" not in data:
            raise ValueError("no 'shapes': not a LabelMe file")
        if not isinstance(data["shapes"], list) or not all(isinstance(s, dict) for s in data["shapes"]):
            raise ValueError("'shapes' is not a list of objects")
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise AnnotationFormatError(f"invalid LabelMe JSON ({exc})") from None
    return data


def labelme_image(json_path: Path, document: dict) -> LabelMeImage | None:
    """The image ``imagePath`` names (relative to the JSON file), else the one ``imageData``
    embeds; None when there is neither, AnnotationFormatError when it does not decode."""
    image_path = Path(json_path).parent / str(document.get("imagePath") or "")
    if document.get("imagePath") and image_path.is_file():
        pixels = cv2.imdecode(np.fromfile(image_path, np.uint8), cv2.IMREAD_COLOR)
        source, embedded = image_path, None
    elif document.get("imageData"):
        try:
            embedded = base64.b64decode(document["imageData"])
        except (binascii.Error, TypeError, ValueError):
            raise AnnotationFormatError("imageData is not base64") from None
        pixels = cv2.imdecode(np.frombuffer(embedded, np.uint8), cv2.IMREAD_COLOR)
        source = None
    else:
        return None
    if pixels is None:
        raise AnnotationFormatError(f"{source or 'imageData'}: not an image OpenCV decodes")
    return LabelMeImage(pixels, source, embedded)


def _points(shape: dict) -> np.ndarray:
    try:
        points = np.asarray(shape.get("points") or [], dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationFormatError("points are not [[x, y], ...]") from None
    if points.size and (points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all()):
        raise AnnotationFormatError("points are not [[x, y], ...]")
    return points.reshape(-1, 2)


def shape_mask(shape: dict, height: int, width: int) -> np.ndarray:
    """The boolean mask (height × width) of a LabelMe shape; AnnotationFormatError with the reason
    when the shape has no area (a line, a point, too few points)."""
    kind = shape.get("shape_type") or "polygon"
    points = _points(shape)
    mask = np.zeros((height, width), np.uint8)
    if kind == "polygon":
        if len(points) < 3:
            raise AnnotationFormatError("polygon with fewer than 3 points")
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    elif kind == "rectangle":
        if len(points) != 2:
            raise AnnotationFormatError("rectangle without 2 points")
        (x1, y1), (x2, y2) = np.round(points).astype(int)
        cv2.rectangle(mask, (min(x1, x2), min(y1, y2)), (max(x1, x2), max(y1, y2)), 1, -1)
    elif kind == "circle":
        if len(points) != 2:
            raise AnnotationFormatError("circle without centre and rim point")
        centre, rim = points
        radius = round(float(np.linalg.norm(rim - centre)))
        cv2.circle(mask, tuple(int(v) for v in np.round(centre)), radius, 1, -1)
    else:
        raise AnnotationFormatError(f"shape_type {kind!r} has no area")
    return mask.astype(bool)
