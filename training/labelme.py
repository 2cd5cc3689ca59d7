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
cover earlier ones, each rasterised as LabelMe draws it (``annotations.labelme``: points on pixel
centres, boundary pixels included). Polygons, rectangles and circles have area; lines and points are
skipped with a reason. A file that cannot be read is reported and the others go on. The output is
built aside and swapped in whole; only a previous output of labelme is ever replaced (see
``training.output_dir``).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from annotations.errors import AnnotationFormatError
from annotations.labelme import labelme_image, read_labelme, shape_mask
from annotations.mask_png import class_color, write_png
from segcontract.errors import SegstackError
from segcontract.files import link_or_copy
from segcontract.masks import IGNORE_INDEX, index_dtype
from training.colors import ColorTableError, read_colors_csv, voc_palette
from training.output_dir import check_destination, staged_output

BACKGROUND = "_background_"
IGNORE = "__ignore__"


class LabelMeError(SegstackError):
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


@dataclass(frozen=True)
class ClassTable:
    """The classes of a conversion: names in index order (``__ignore__`` is a label, never a
    class) and their colours."""

    names: list[str]
    colors: list[tuple[int, int, int]]

    @property
    def value_of(self) -> dict[str, int]:
        """label → the index it paints."""
        return {n: i for i, n in enumerate(self.names)} | {IGNORE: IGNORE_INDEX}

    @property
    def dtype(self) -> str:
        return index_dtype(max(len(self.names) - 1, IGNORE_INDEX))

    def name_of(self, value: int) -> str:
        return IGNORE if value == IGNORE_INDEX and len(self.names) <= IGNORE_INDEX else self.names[value]


def _read_documents(files: list[Path], report: LabelMeReport) -> dict[Path, dict]:
    """The LabelMe files that read; the others are failures in the report."""
    documents: dict[Path, dict] = {}
    for f in files:
        try:
            documents[f] = read_labelme(f)
        except AnnotationFormatError as exc:
            report.failed[str(f)] = str(exc)
    return documents


def _refuse_shared_stems(documents: dict[Path, dict]) -> None:
    stems: dict[str, Path] = {}
    for f in documents:
        if f.stem in stems:
            raise LabelMeError(
                f"{stems[f.stem]} and {f} share the name {f.stem!r}; outputs are named by it: rename one"
            )
        stems[f.stem] = f


def _class_table(
    classes_file: Path | None, colors_file: Path | None, documents: dict[Path, dict]
) -> ClassTable:
    """``--classes``, else the names of ``--colors``, else background and the labels found, sorted."""
    if classes_file:
        names = read_class_names(classes_file)
    elif colors_file and _named_classes(colors_file):
        names = _named_classes(colors_file)
    else:
        labels = {str(s.get("label")) for d in documents.values() for s in d["shapes"]}
        names = [BACKGROUND, *sorted(labels - {BACKGROUND, IGNORE})]
    class_names = [n for n in names if n != IGNORE]
    colors = _colors_for(colors_file, class_names) if colors_file else voc_palette(len(class_names))
    return ClassTable(class_names, colors)


def _index_mask(
    f: Path, data: dict, height: int, width: int, table: ClassTable, report: LabelMeReport
) -> np.ndarray:
    """The class index of every pixel: the shapes painted in file order; a shape that cannot be
    painted is skipped with its reason."""
    index = np.zeros((height, width), table.dtype)
    value_of = table.value_of
    for shape in data["shapes"]:
        label = str(shape.get("label"))
        if label not in value_of:
            report.skipped_shapes.append((str(f), label, "label not in --classes"))
            continue
        try:
            index[shape_mask(shape, height, width)] = value_of[label]
        except AnnotationFormatError as exc:
            report.skipped_shapes.append((str(f), label, str(exc)))
    return index


def _convert_file(
    f: Path, data: dict, out: Path, table: ClassTable, copy: bool, report: LabelMeReport
) -> None:
    """The image, its index mask and its colour mask into ``out``; the pixels counted."""
    image = labelme_image(f, data)
    if image is None:
        raise ValueError(f"image {data.get('imagePath')!r} not found next to it and no imageData")
    height, width = image.pixels.shape[:2]
    index = _index_mask(f, data, height, width, table, report)
    if image.path is not None:
        link_or_copy(image.path, out / "images" / f"{f.stem}{image.path.suffix}", copy)
    else:
        (out / "images" / f"{f.stem}.png").write_bytes(image.embedded or b"")
    write_png(out / "indexes" / f"{f.stem}.png", index)
    write_png(out / "indexes" / f"{f.stem}_color_mask.png", class_color(index, table.colors))
    for value, count in zip(*np.unique(index, return_counts=True)):
        report.pixels[table.name_of(int(value))] += int(count)


def _write_class_files(out: Path, table: ClassTable) -> None:
    (out / "classes.txt").write_text("\n".join(table.names) + "\n")
    with open(out / "colors.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "r", "g", "b"])
        writer.writerows([n, *c] for n, c in zip(table.names, table.colors))


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
    report = LabelMeReport()
    documents = _read_documents(files, report)
    _refuse_shared_stems(documents)
    table = _class_table(classes_file, colors_file, documents)
    with staged_output(src, dst, "labelme") as out:
        (out / "images").mkdir()
        (out / "indexes").mkdir()
        for f in progress(list(documents)):
            try:
                _convert_file(f, documents[f], out, table, copy, report)
                report.converted += 1
            except (OSError, ValueError, cv2.error) as exc:
                report.failed[str(f)] = str(exc)
        _write_class_files(out, table)
    return report, table.names
