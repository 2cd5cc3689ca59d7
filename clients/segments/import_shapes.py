"""Annotators' work read back: a CVAT for images 1.1 XML or a COCO 1.0 instances JSON, as one form.

Every shape becomes an ``ImportedShape``: its label, its kind (polygon, box or mask), its pixels on
the full image, and the store's ``segment_id`` where the file carries it (a CVAT shape's
``segment_id`` attribute, which our exports write; a COCO annotation's ``segment_id`` field, ours,
or its ``attributes.segment_id``, CVAT's COCO export). Shapes are rasterised in the package's pixel
convention (``annotations``): polygons and boxes as pycocotools fills them, masks pixel for pixel.

The pixels are kept as COCO compressed RLE (``ImportedShape.rle``; ``mask`` decodes them), since a
file may hold thousands of shapes on large images. Reading is bounded: an image over
``MAX_PIXELS`` or a file over ``MAX_SHAPES`` shapes is refused, as is anything that breaks its
format (``AnnotationFormatError``, one line naming the file). What is no error but cannot be
applied (a shape outside the image, one of a kind not read) is kept for the report:
``ImportedShape.outside``, ``ImportedImage.unsupported``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pycocotools import mask as mask_utils

from annotations.coco import read_coco
from annotations.cvat_rle import CvatMask
from annotations.cvat_xml import BoxShape, CvatImage, MaskShape, PolygonShape, Shape, read_cvat_xml
from annotations.errors import AnnotationFormatError
from annotations.polygons import flat, has_area, points
from segops.rle import covered_pixels, encode_window

MAX_PIXELS = 100_000_000  # an image (or a CVAT mask's box) larger than 100 megapixels is refused
MAX_SHAPES = 200_000  # per file
_MEGA = f"the {MAX_PIXELS // 1_000_000} megapixels an import reads"

ShapeKind = Literal["polygon", "box", "mask"]


@dataclass(frozen=True, eq=False)
class ImportedShape:
    """One shape of the file. ``group`` ties shapes together: CVAT's ``group_id``; for COCO, the
    annotation's position in the file (from 1), shared by its polygons. ``where`` names the shape
    for messages (``image 'a.jpg', polygon 3``: the third polygon of that image). ``outside``: a
    point, or the mask's box, lies outside the image ``[0, W] × [0, H]`` (the pixels are then
    those inside). ``note`` says why a ``segment_id`` the file holds was not read as one."""

    label: str
    kind: ShapeKind
    rle: dict  # COCO compressed RLE of the full image: {"size": [h, w], "counts": bytes}
    segment_id: int | None
    group: int | None
    where: str
    outside: bool = False
    points: np.ndarray | None = None  # a polygon's (k, 2) points, a box's 4 corners, as read
    note: str = ""

    @property
    def mask(self) -> np.ndarray:
        """The shape's pixels: a boolean array of the image's size."""
        return mask_utils.decode(self.rle).astype(bool)

    @property
    def area(self) -> int:
        return int(mask_utils.area(self.rle))


@dataclass(eq=False)
class ImportedImage:
    name: str  # as the file names it (CVAT's image name, COCO's file_name)
    width: int
    height: int
    shapes: list[ImportedShape] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # the shapes not read, named as ``where``


@dataclass(eq=False)
class ImportedFile:
    fmt: Literal["cvat", "coco"]
    images: list[ImportedImage]
    task_id: int | None = None  # CVAT's, when the file says (CVAT XML only)
    job_id: int | None = None


# ---------------------------------------------------------------------------------------------
# pixels


def _empty_rle(height: int, width: int) -> dict:
    return mask_utils.frPyObjects({"size": [height, width], "counts": [height * width]}, height, width)


def _polygons_rle(polygons: Sequence[np.ndarray], height: int, width: int) -> dict:
    """As ``annotations.polygons.polygons_mask`` rasterises, without the full-size array."""
    kept = [flat(p) for p in polygons if has_area(p)]
    if not kept:
        return _empty_rle(height, width)
    return mask_utils.merge(mask_utils.frPyObjects(kept, height, width))


def _outside(xy: np.ndarray, height: int, width: int) -> bool:
    x, y = xy[:, 0], xy[:, 1]
    return bool((x < 0).any() or (x > width).any() or (y < 0).any() or (y > height).any())


def _drawn(kind: ShapeKind, xy: np.ndarray, height: int, width: int, **common: Any) -> ImportedShape:
    """A polygon or box shape: its points rasterised, and whether one leaves the image."""
    rle = _polygons_rle([xy], height, width)
    return ImportedShape(kind=kind, rle=rle, outside=_outside(xy, height, width), points=xy, **common)


def _box_corners(x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)


def _cvat_mask_rle(encoded: CvatMask, height: int, width: int, where: str) -> tuple[dict, bool]:
    """A ``<mask>``'s pixels on the image (those inside it) and whether its box leaves the image."""
    if encoded.width <= 0 or encoded.height <= 0:
        raise AnnotationFormatError(f"{where}: a mask {encoded.width}×{encoded.height} has no pixels")
    if encoded.width * encoded.height > MAX_PIXELS:
        raise AnnotationFormatError(f"{where}: a {encoded.width}×{encoded.height} mask is over {_MEGA}")
    runs = np.asarray(encoded.runs, dtype=np.int64)
    if (runs < 0).any() or int(runs.sum()) != encoded.width * encoded.height:
        raise AnnotationFormatError(
            f"{where}: the mask's runs cover {int(runs.sum())} pixels, its "
            f"{encoded.width}×{encoded.height} box {encoded.width * encoded.height}"
        )
    left, top = encoded.left, encoded.top
    outside = left < 0 or top < 0 or encoded.right >= width or encoded.bottom >= height
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(encoded.right + 1, width), min(encoded.bottom + 1, height)
    if x0 >= x1 or y0 >= y1:
        return _empty_rle(height, width), outside
    crop = np.repeat(np.arange(runs.size) % 2 == 1, runs).reshape(encoded.height, encoded.width)
    patch = crop[y0 - top : y1 - top, x0 - left : x1 - left].astype(np.uint8)
    counts = encode_window(patch, (x0, y0, x1, y1), (height, width))
    return {"size": [height, width], "counts": counts}, outside


# ---------------------------------------------------------------------------------------------
# bounds and ids


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_size(name: str, width: object, height: object) -> tuple[int, int]:
    if not (_whole(width) and _whole(height)):
        raise AnnotationFormatError(f"image {name!r} has no whole-number width and height")
    if width <= 0 or height <= 0:  # type: ignore[operator]
        raise AnnotationFormatError(f"image {name!r} is {width}×{height} pixels")
    if width * height > MAX_PIXELS:  # type: ignore[operator]
        raise AnnotationFormatError(f"image {name!r} is {width}×{height} pixels, over {_MEGA}")
    return width, height  # type: ignore[return-value]


def _check_count(count: int) -> None:
    if count > MAX_SHAPES:
        raise AnnotationFormatError(f"more than {MAX_SHAPES} shapes, more than an import reads")


def _in_file(path: Path, exc: AnnotationFormatError) -> AnnotationFormatError:
    """The error with the file's name in front (once)."""
    message, where = str(exc), str(path)
    return AnnotationFormatError(message if message.startswith(f"{where}: ") else f"{where}: {message}")


def _segment_id(value: object) -> tuple[int | None, str]:
    """A ``segment_id`` as the file holds it (a whole number, or its text; empty is none), and a
    note when there is one that is not a whole number."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, ""
    if _whole(value):
        return value, ""  # type: ignore[return-value]
    if isinstance(value, str):
        try:
            return int(value.strip()), ""
        except ValueError:
            pass
    return None, f"segment_id {value!r} is not a whole number: read as none"


def _unique_names(images: Sequence[ImportedImage]) -> None:
    seen: set[str] = set()
    for image in images:
        if image.name in seen:
            raise AnnotationFormatError(f"image {image.name!r} is listed twice")
        seen.add(image.name)


# ---------------------------------------------------------------------------------------------
# CVAT for images 1.1


def _cvat_shape(shape: Shape, image: CvatImage, where: str) -> ImportedShape:
    height, width = image.height, image.width
    segment_id, note = _segment_id(shape.attributes.get("segment_id"))
    common = {
        "label": shape.label,
        "segment_id": segment_id,
        "group": shape.group_id or None,  # CVAT's 0 is no group
        "where": where,
        "note": note,
    }
    if isinstance(shape, PolygonShape):
        xy = np.asarray(shape.points, dtype=np.float64).reshape(-1, 2)
        rle = _polygons_rle([xy], height, width)
        return ImportedShape(
            kind="polygon", rle=rle, outside=_outside(xy, height, width), points=xy, **common
        )
    if isinstance(shape, BoxShape):
        xy = _box_corners(shape.xtl, shape.ytl, shape.xbr, shape.ybr)
        rle = _polygons_rle([xy], height, width)
        return ImportedShape(kind="box", rle=rle, outside=_outside(xy, height, width), points=xy, **common)
    if isinstance(shape, MaskShape):
        rle, outside = _cvat_mask_rle(shape.encoded, height, width, where)
        return ImportedShape(kind="mask", rle=rle, outside=outside, **common)
    raise TypeError(f"not a CVAT shape: {type(shape).__name__}")


class _Numbering:
    """``polygon 3``: the third polygon of the image (counted per kind, from 1)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def name(self, kind: str) -> str:
        self.seen[kind] = self.seen.get(kind, 0) + 1
        return f"{kind} {self.seen[kind]}"


def _cvat_image(image: CvatImage) -> ImportedImage:
    width, height = _checked_size(image.name, image.width, image.height)
    imported = ImportedImage(image.name, width, height)
    numbering = _Numbering()
    for shape in image.shapes:
        kind = type(shape).__name__.removesuffix("Shape").lower()
        imported.shapes.append(_cvat_shape(shape, image, f"image {image.name!r}, {numbering.name(kind)}"))
    imported.unsupported = [f"image {image.name!r}, {numbering.name(tag)}" for tag in image.unsupported]
    return imported


def read_cvat_file(path: Path) -> ImportedFile:
    """A CVAT for images 1.1 XML file (a task's, a job's or a project's export)."""
    task = read_cvat_xml(Path(path))
    try:
        _check_count(sum(len(i.shapes) + len(i.unsupported) for i in task.images))
        images = [_cvat_image(image) for image in task.images]
        _unique_names(images)
    except AnnotationFormatError as exc:
        raise _in_file(path, exc) from None
    return ImportedFile("cvat", images, task.task_id, task.job_id)


# ---------------------------------------------------------------------------------------------
# COCO 1.0 instances


def _coco_rle(segmentation: dict, height: int, width: int, where: str) -> dict:
    """A segmentation's RLE (compressed, or uncompressed as CVAT writes masks), checked."""
    counts, size = segmentation.get("counts"), segmentation.get("size")
    if size != [height, width]:
        raise AnnotationFormatError(f"{where}: RLE size {size} is not the image's {[height, width]}")
    if isinstance(counts, list):
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
            raise AnnotationFormatError(f"{where}: RLE counts are not whole numbers of 0 or more")
        if sum(counts) != height * width:
            raise AnnotationFormatError(
                f"{where}: RLE runs cover {sum(counts)} pixels, the image {height * width}"
            )
        return mask_utils.frPyObjects({"size": size, "counts": counts}, height, width)
    if not isinstance(counts, str):
        raise AnnotationFormatError(f"{where}: RLE counts are neither a list nor a string")
    encoded = counts.encode()
    try:
        covered = covered_pixels(encoded)
    except ValueError as exc:
        raise AnnotationFormatError(f"{where}: {exc}") from None
    if covered != height * width:
        raise AnnotationFormatError(f"{where}: RLE runs cover {covered} pixels, the image {height * width}")
    return {"size": [height, width], "counts": encoded}


def _coco_polygons(segmentation: list, where: str) -> list[np.ndarray]:
    polygons = segmentation if segmentation and isinstance(segmentation[0], list) else [segmentation]
    try:
        return [points(p) for p in polygons]
    except (TypeError, ValueError):
        raise AnnotationFormatError(f"{where}: a polygon is not [x1, y1, x2, y2, ...]") from None


def _coco_bbox(annotation: dict, where: str) -> np.ndarray:
    bbox = annotation.get("bbox")
    try:
        x, y, w, h = (float(v) for v in bbox)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise AnnotationFormatError(f"{where}: no segmentation, and no bbox [x, y, w, h] either") from None
    return _box_corners(x, y, x + w, y + h)


def _coco_shapes(
    annotation: dict, image: ImportedImage, label: str, group: int, where: str
) -> list[ImportedShape]:
    """An annotation's shapes: one per polygon (sharing ``group``), or its RLE, or its bbox."""
    height, width = image.height, image.width
    attributes = annotation.get("attributes")
    value = annotation.get("segment_id")
    if value is None and isinstance(attributes, dict):
        value = attributes.get("segment_id")
    segment_id, note = _segment_id(value)
    common = {"label": label, "segment_id": segment_id, "group": group, "note": note}
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):
        rle = _coco_rle(segmentation, height, width, where)
        return [ImportedShape(kind="mask", rle=rle, where=where, **common)]
    if isinstance(segmentation, list) and segmentation:
        polygons = _coco_polygons(segmentation, where)
        return [
            _drawn(
                "polygon",
                xy,
                height,
                width,
                where=where if len(polygons) == 1 else f"{where} polygon {k}",
                **common,
            )
            for k, xy in enumerate(polygons, start=1)
        ]
    if segmentation not in (None, []):
        raise AnnotationFormatError(f"{where}: segmentation is neither polygons nor RLE")
    xy = _coco_bbox(annotation, where)
    rle = _polygons_rle([xy], height, width)
    return [
        ImportedShape(
            kind="box", rle=rle, where=where, outside=_outside(xy, height, width), points=xy, **common
        )
    ]


def _coco_images(data: dict) -> dict[object, ImportedImage]:
    images: dict[object, ImportedImage] = {}
    for entry in data["images"]:
        if (
            not isinstance(entry, dict)
            or not _whole(entry.get("id"))
            or not isinstance(entry.get("file_name"), str)
        ):
            raise AnnotationFormatError("an image without a whole-number id or a file_name")
        if entry["id"] in images:
            raise AnnotationFormatError(f"image id {entry['id']} is listed twice")
        name = entry["file_name"]
        width, height = _checked_size(name, entry.get("width"), entry.get("height"))
        images[entry["id"]] = ImportedImage(name, width, height)
    return images


def _coco_categories(data: dict) -> dict[object, str]:
    categories = {}
    for entry in data["categories"]:
        if not (isinstance(entry, dict) and _whole(entry.get("id")) and isinstance(entry.get("name"), str)):
            raise AnnotationFormatError("a category without a whole-number id or a name")
        categories[entry["id"]] = entry["name"]
    return categories


def _found(table: dict, key: object) -> object:
    return table.get(key) if _whole(key) else None


def _coco_annotations(data: dict, images: dict[object, ImportedImage], categories: dict[object, str]) -> None:
    _check_count(len(data["annotations"]))
    count = 0
    for position, annotation in enumerate(data["annotations"], start=1):
        if not isinstance(annotation, dict):
            raise AnnotationFormatError(f"annotation {position} is not an object")
        image = _found(images, annotation.get("image_id"))
        if not isinstance(image, ImportedImage):
            raise AnnotationFormatError(
                f"annotation {position} names image {annotation.get('image_id')!r}, not in images"
            )
        label = _found(categories, annotation.get("category_id"))
        if not isinstance(label, str):
            raise AnnotationFormatError(
                f"annotation {position} has category {annotation.get('category_id')!r}, not in categories"
            )
        where = f"image {image.name!r}, annotation {annotation.get('id', position)}"
        shapes = _coco_shapes(annotation, image, label, position, where)
        count += len(shapes)
        _check_count(count)
        image.shapes.extend(shapes)


def read_coco_file(path: Path) -> ImportedFile:
    """A COCO 1.0 instances JSON file (ours, or CVAT's COCO 1.0 export); images in file order."""
    data = read_coco(Path(path))
    try:
        if not all(isinstance(data[k], list) for k in ("images", "annotations", "categories")):
            raise AnnotationFormatError("images, annotations and categories are not lists")
        images = _coco_images(data)
        _coco_annotations(data, images, _coco_categories(data))
        listed = list(images.values())
        _unique_names(listed)
    except AnnotationFormatError as exc:
        raise _in_file(path, exc) from None
    return ImportedFile("coco", listed)


# ---------------------------------------------------------------------------------------------


def read_annotator_file(path: Path) -> ImportedFile:
    """A CVAT XML or COCO JSON file, told apart by its first character (``<`` or ``{``)."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            head = stream.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    except OSError as exc:
        raise AnnotationFormatError(f"{path}: cannot be read ({exc.strerror})") from None
    if head == b"<":
        return read_cvat_file(path)
    if head == b"{":
        return read_coco_file(path)
    raise AnnotationFormatError(f"{path}: neither CVAT for images XML nor COCO JSON")
