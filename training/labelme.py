"""LabelMe JSON + images → class-index masks (and colour masks) for semantic segmentation.

Output, the layout semantic training reads (seed 001)::

    dst/images/<stem>.<ext>              the image (hard link or copy; written from imageData if embedded)
    dst/indexes/<stem>.png               class index per pixel (uint8; uint16 beyond 255 classes)
    dst/indexes/<stem>_color_mask.png    the same in colours
    dst/classes.txt, dst/colors.csv      the class order and colours used

Classes: ``--classes`` (one per line; the first is the background, index 0; a first line
``__ignore__`` as in LabelMe's own labels.txt maps that label to 255 and starts the count after it),
else the names of ``--colors`` (seed 001's colors.csv), else background plus the labels found, sorted.
Labels outside the class list are skipped with a reason. Shapes are painted in file order, so later shapes
cover earlier ones. Polygons, rectangles and circles have area; lines and points are skipped with a
reason. A file that cannot be read is reported and the others go on. The output is built aside and
swapped in whole; only a previous output of labelme is ever replaced (see ``training.output_dir``).
"""

from __future__ import annotations

import base64
import csv
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from segcontract.masks import IGNORE_INDEX, index_dtype
from segops.colors import colorize
from segops.image_write import write_image_atomic
from training.colors import ColorTableError, read_colors_csv, voc_palette
from training.files import link_or_copy
from training.output_dir import check_destination, staged_output

BACKGROUND = "_background_"
IGNORE = "__ignore__"


class LabelMeError(Exception):
    """A problem with the whole input (not one file): one line naming the file."""


@dataclass
class LabelMeReport:
    converted: int = 0
    pixels: Counter = field(default_factory=Counter)  # class name → pixels
    failed: dict[str, str] = field(default_factory=dict)  # json file → reason
    skipped_shapes: list[tuple[str, str, str]] = field(default_factory=list)  # file, label, reason

    def format(self, names: list[str]) -> str:
        total = sum(self.pixels.values()) or 1
        lines = [f"{self.converted} images converted, {len(self.failed)} failed"]
        lines += [f"  {n:<20} {self.pixels[n] / total:7.2%} of pixels" for n in names if n != IGNORE]
        lines += [f"skipped shape in {f}: {label!r}: {why}" for f, label, why in self.skipped_shapes]
        lines += [f"failed: {f}: {why}" for f, why in self.failed.items()]
        return "\n".join(lines)


def read_class_names(path: Path) -> list[str]:
    names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not names:
        raise LabelMeError(f"{path}: no class names in it (one per line, background first)")
    return names


def _colors_for(path: Path, names: list[str]) -> list[tuple[int, int, int]]:
    """Colours of ``names`` from a colors.csv: by name where rows are named, else by row order."""
    try:
        table = read_colors_csv(path)
    except ColorTableError as exc:
        raise LabelMeError(str(exc)) from None
    by_name = {name: rgb for name, rgb in table if name is not None}
    ordered = [rgb for _, rgb in table]
    colors = [
        by_name.get(n) or (ordered[i] if i < len(ordered) and not by_name else None)
        for i, n in enumerate(names)
    ]
    missing = [n for n, c in zip(names, colors) if c is None]
    if missing:
        raise LabelMeError(f"{path}: no colour for {', '.join(missing)}")
    return colors


def _named_classes(path: Path) -> list[str] | None:
    """The class names a colors.csv lists, if every row is named."""
    try:
        table = read_colors_csv(path)
    except ColorTableError as exc:
        raise LabelMeError(str(exc)) from None
    names = [name for name, _ in table]
    return names if names and None not in names else None


def _shape_mask(shape: dict, height: int, width: int) -> tuple[np.ndarray | None, str | None]:
    kind = shape.get("shape_type") or "polygon"
    points = np.asarray(shape.get("points") or [], dtype=np.float64)
    mask = np.zeros((height, width), np.uint8)
    if kind == "polygon":
        if len(points) < 3:
            return None, "polygon with fewer than 3 points"
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    elif kind == "rectangle":
        if len(points) != 2:
            return None, "rectangle without 2 points"
        (x1, y1), (x2, y2) = np.round(points).astype(int)
        cv2.rectangle(mask, (min(x1, x2), min(y1, y2)), (max(x1, x2), max(y1, y2)), 1, -1)
    elif kind == "circle":
        if len(points) != 2:
            return None, "circle without centre and rim point"
        centre, rim = points
        cv2.circle(
            mask, tuple(np.round(centre).astype(int)), round(float(np.linalg.norm(rim - centre))), 1, -1
        )
    else:
        return None, f"shape_type {kind!r} has no area"
    return mask.astype(bool), None


def _image_for(json_path: Path, data: dict) -> tuple[np.ndarray | None, Path | None, bytes | None]:
    """The image (decoded), its file if there is one, and embedded bytes if it came from imageData."""
    image_path = json_path.parent / str(data.get("imagePath") or "")
    if data.get("imagePath") and image_path.is_file():
        return cv2.imdecode(np.fromfile(image_path, np.uint8), cv2.IMREAD_COLOR), image_path, None
    if data.get("imageData"):
        raw = base64.b64decode(data["imageData"])
        return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR), None, raw
    return None, None, None


def convert_labelme(
    src: Path,
    dst: Path,
    classes_file: Path | None = None,
    colors_file: Path | None = None,
    copy: bool = False,
    progress: Callable[[Iterable], Iterable] = lambda x: x,
) -> tuple[LabelMeReport, list[str]]:
    src, dst = Path(src), Path(dst)
    files = sorted(src.rglob("*.json")) if src.is_dir() else []
    if not files:
        raise LabelMeError(f"{src}: no LabelMe .json files found")
    dst = check_destination(src, dst, "labelme")  # before the work, not only before the swap
    documents: dict[Path, dict] = {}
    report = LabelMeReport()
    for f in files:
        try:
            data = json.loads(f.read_text())
            if not isinstance(data, dict) or "shapes" not in data:
                raise ValueError("no 'shapes': not a LabelMe file")
            documents[f] = data
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            report.failed[str(f)] = f"invalid LabelMe JSON ({exc})"
    stems: dict[str, Path] = {}
    for f in documents:
        if f.stem in stems:
            raise LabelMeError(
                f"{stems[f.stem]} and {f} share the name {f.stem!r}; outputs are named by it: rename one"
            )
        stems[f.stem] = f
    if classes_file:
        names = read_class_names(classes_file)
    elif colors_file and _named_classes(colors_file):
        names = _named_classes(colors_file)
    else:
        labels = sorted(
            {str(s.get("label")) for d in documents.values() for s in d["shapes"]} - {BACKGROUND, IGNORE}
        )
        names = [BACKGROUND, *labels]
    class_names = [n for n in names if n != IGNORE]  # __ignore__ is a label, never a class
    index_of = {n: i for i, n in enumerate(class_names)} | {IGNORE: IGNORE_INDEX}
    num_classes = len(class_names)
    dtype = index_dtype(max(num_classes - 1, IGNORE_INDEX))
    colors = _colors_for(colors_file, class_names) if colors_file else voc_palette(num_classes)
    with staged_output(src, dst, "labelme") as out:
        (out / "images").mkdir()
        (out / "indexes").mkdir()
        for f in progress(list(documents)):
            data = documents[f]
            try:
                image, image_path, embedded = _image_for(f, data)
                if image is None:
                    raise ValueError(f"image {data.get('imagePath')!r} not found next to it and no imageData")
                h, w = image.shape[:2]
                index = np.zeros((h, w), dtype)
                for shape in data["shapes"]:
                    label = str(shape.get("label"))
                    if label not in index_of:
                        report.skipped_shapes.append((str(f), label, "label not in --classes"))
                        continue
                    region, why = _shape_mask(shape, h, w)
                    if region is None:
                        report.skipped_shapes.append((str(f), label, why))
                        continue
                    index[region] = index_of[label]
                stem = f.stem
                suffix = image_path.suffix if image_path else ".png"
                target = out / "images" / f"{stem}{suffix}"
                if image_path is not None:
                    link_or_copy(image_path, target, copy)
                else:
                    cv2.imwrite(str(target), image) if embedded is None else target.write_bytes(embedded)
                write_image_atomic(out / "indexes" / f"{stem}.png", index)
                write_image_atomic(out / "indexes" / f"{stem}_color_mask.png", colorize(index, colors))
                for value, count in zip(*np.unique(index, return_counts=True)):
                    name = (
                        IGNORE
                        if value == IGNORE_INDEX and num_classes <= IGNORE_INDEX
                        else class_names[int(value)]
                    )
                    report.pixels[name] += int(count)
                report.converted += 1
            except (OSError, ValueError, cv2.error) as exc:
                report.failed[str(f)] = str(exc)
        (out / "classes.txt").write_text("\n".join(class_names) + "\n")
        with open(out / "colors.csv", "w", newline="") as table:
            writer = csv.writer(table)
            writer.writerow(["name", "r", "g", "b"])
            writer.writerows([n, *c] for n, c in zip(class_names, colors))
    return report, class_names
