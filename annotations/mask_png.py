"""Mask PNGs: index masks (a class or an instance per pixel), their colour PNGs, and the instance
mask files annotators get (``seg-client masks``).

Index PNG
    One channel at the image's size (height × width): a class index, or 0 for background and ``k``
    for the k-th instance. 8-bit while the values fit, 16-bit past 255 (read it with
    ``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` to keep the 16 bits).

Colour PNG
    The same mask for people to look at: 3 channels, 8-bit BGR on disk (as any viewer shows it).
    Value ``k`` has the k-th colour of a palette: for instances the PASCAL VOC palette, background
    black, then (128,0,0), (0,128,0), (128,128,0), ... in RGB, as LabelMe colours its instance
    masks; for classes the class colours.

Instance mask files, per image, side by side
    ``<stem>.png`` (the instance index PNG), on request ``<stem>_color.png`` (its colours), then
    ``<stem>.json``: ``{"image": ..., "width": W, "height": H, "segments": [{"value": k, ...}, ...]}``,
    one entry per value in value order (the producer adds its own fields to each). The PNGs are
    written before the JSON, each atomically, so a JSON on disk means its PNGs are complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from annotations.errors import AnnotationFormatError
from segcontract.files import write_json_atomic
from segops.colors import colorize, voc_palette
from segops.image_write import write_image_atomic

_MAX_VALUE = {np.uint8: 255, np.uint16: 65535}
COLOR_SUFFIX = "_color.png"  # as the semantic family's colour masks


def index_dtype_for(count: int) -> type[np.unsignedinteger]:
    """uint8 for values up to 255, uint16 up to 65535."""
    for dtype, top in _MAX_VALUE.items():
        if count <= top:
            return dtype
    raise ValueError(f"{count} segments on one image: a 16-bit PNG holds at most 65535")


def instance_index(
    masks: Iterable[np.ndarray], height: int, width: int, count: int | None = None
) -> np.ndarray:
    """The instance index mask of ``masks`` (anything non-zero is inside): value ``k`` for the k-th
    (1, 2, ...), each taking only the pixels no earlier mask holds, so put the best first.

    ``masks`` may be a generator (with ``count``, how many it yields, for the PNG's bit depth), so
    that only one full-size mask is held at a time."""
    labels = np.zeros((height, width), index_dtype_for(len(masks) if count is None else count))
    for value, mask in enumerate(masks, start=1):
        if mask.shape != (height, width):
            raise ValueError(f"mask {value} is {mask.shape[1]}×{mask.shape[0]}, not {width}×{height}")
        labels[(mask > 0) & (labels == 0)] = value
    return labels


def instance_palette(count: int) -> list[list[int]]:
    """RGB colours of the values 0 (background, black) to ``count``: the PASCAL VOC palette, whose
    first 2**24 colours all differ, so every value of a 16-bit mask has its own."""
    return [list(c) for c in voc_palette(count + 1)]


def instance_color(labels: np.ndarray) -> np.ndarray:
    """The instance index mask in colour (BGR, for OpenCV to write)."""
    return colorize(labels, instance_palette(int(labels.max(initial=0))))


def class_color(index: np.ndarray, colors_rgb: Sequence[Sequence[int]]) -> np.ndarray:
    """A class index mask in colour (BGR): index ``i`` in ``colors_rgb[i]``, others black."""
    return colorize(index, [list(c) for c in colors_rgb])


def color_name(stem: str) -> str:
    """The colour PNG's file name beside ``<stem>.png``."""
    return stem + COLOR_SUFFIX


def write_png(path: Path, image: np.ndarray) -> None:
    """An index mask (8 or 16 bits) or a BGR image as a PNG, atomically."""
    write_image_atomic(Path(path), image)


def read_index_png(path: Path) -> np.ndarray:
    """An index PNG as it is on disk (8 or 16 bits); AnnotationFormatError when it is not one."""
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise AnnotationFormatError(f"{path}: not a PNG OpenCV reads")
    if labels.ndim != 2 or labels.dtype not in (np.uint8, np.uint16):
        raise AnnotationFormatError(f"{path}: not a one-channel 8- or 16-bit index mask")
    return labels


def write_instance_files(
    folder: Path, stem: str, labels: np.ndarray, record: dict, color: bool = False
) -> None:
    """Write ``<folder>/<stem>.png``, with ``color`` ``<stem>_color.png``, then ``<stem>.json``."""
    folder = Path(folder)
    write_png(folder / f"{stem}.png", labels)
    if color:
        write_png(folder / color_name(stem), instance_color(labels))
    write_json_atomic(folder / f"{stem}.json", record)


def read_instance_files(folder: Path, stem: str) -> tuple[np.ndarray, dict]:
    """The instance index mask and the record of ``<folder>/<stem>.json``; AnnotationFormatError
    when the PNG holds a value the record does not list or the sizes differ."""
    folder = Path(folder)
    try:
        record = json.loads((folder / f"{stem}.json").read_text())
        values = {int(entry["value"]) for entry in record["segments"]}
        size = (int(record["height"]), int(record["width"]))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise AnnotationFormatError(f"{folder / stem}.json: not an instance mask record ({exc})") from None
    labels = read_index_png(folder / f"{stem}.png")
    if labels.shape != size:
        raise AnnotationFormatError(f"{folder / stem}.png is {labels.shape}, its record says {size}")
    unlisted = sorted(set(np.unique(labels).tolist()) - values - {0})
    if unlisted:
        raise AnnotationFormatError(
            f"{folder / stem}.png has values its record does not list: {unlisted[:5]}"
        )
    return labels, record
