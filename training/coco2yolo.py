"""COCO (CVAT "COCO 1.0" exports) → one YOLO-seg dataset, several exports merged (reading the
exports: ``training.coco_sources``).

Every sub-folder of the source holding ``images/`` and ``annotations/*.json`` is a dataset (the
source itself may be one). Categories are unified by name; ``classes`` fixes their order, else the
order of first appearance (datasets by folder name, categories by id). Polygons, several polygons
per instance (joined as ultralytics' own converter joins them), and RLE, uncompressed or compressed
(crowd regions included), all become one polygon per instance: an RLE's outlines are traced along
pixel edges (``annotations.polygons``), exact but for holes, which a YOLO polygon cannot hold.

YOLO label coordinates are the COCO ones (the pixel convention of the ``annotations`` package)
divided by the image's width and height, unshifted: ultralytics scales them to its training image
and fills them there with ``cv2.fillPoly``, which suits continuous coordinates at every scale (see
the package docstring for why not pixel centres).

The split is a deterministic partition of images (``val_fraction``, ``seed``). The output is built
in a staging folder and swapped into place, so a failed run leaves the previous dataset intact; only
a previous output of coco2yolo is ever replaced (see ``training.output_dir``). An image entry or
category that cannot be used is a skip reason in the report, never an error::

    dst/images/{train,val}/<dataset>/<file_name>     hard links (or copies) of the source images
    dst/labels/{train,val}/<dataset>/<stem>.txt      "class x1 y1 x2 y2 ..." normalised; empty = background
    dst/annotations/{train,val}.json                 the converted labels in COCO form (for COCOeval)
    dst/data.yaml                                    path, train, val, names
    dst/conversion_report.json                       counts and every skipped annotation with its reason
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from annotations.coco import instances_document, polygon_annotation, segmentation_polygons
from annotations.errors import AnnotationFormatError
from annotations.yolo import yolo_line
from segcontract.files import link_or_copy
from training.coco_sources import (
    DatasetError,
    Skipped,
    SourceImage,
    collect,
    find_datasets,
    read_classes_file,
)
from training.output_dir import check_destination, staged_output
from training.splits import val_indices

SPLITS = ("train", "val")


@dataclass
class ConversionReport:
    names: list[str]
    images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    background: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    instances: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in SPLITS})
    images_with: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in SPLITS})
    skipped: list[Skipped] = field(default_factory=list)
    skipped_images: list[tuple[str, str, str]] = field(default_factory=list)  # dataset, image, reason

    def to_json(self) -> dict:
        return {
            "names": self.names,
            "images": self.images,
            "background_images": self.background,
            "instances": {
                s: {self.names[c]: n for c, n in sorted(self.instances[s].items())} for s in SPLITS
            },
            "images_per_class": {
                s: {self.names[c]: n for c, n in sorted(self.images_with[s].items())} for s in SPLITS
            },
            "skipped_annotations": [vars(s) for s in self.skipped],
            "skipped_images": [{"dataset": d, "image": i, "reason": r} for d, i, r in self.skipped_images],
        }

    def format(self) -> str:
        width = max([len(n) for n in self.names] + [5])
        lines = [f"{'class':<{width}}  {'train img':>9} {'train inst':>10}  {'val img':>7} {'val inst':>8}"]
        for c, name in enumerate(self.names):
            tr, va = self.images_with["train"][c], self.images_with["val"][c]
            ti, vi = self.instances["train"][c], self.instances["val"][c]
            lines.append(f"{name:<{width}}  {tr:>9} {ti:>10}  {va:>7} {vi:>8}")
        lines.append(
            f"{'images':<{width}}  {self.images['train']:>9} {sum(self.instances['train'].values()):>10}  "
            f"{self.images['val']:>7} {sum(self.instances['val'].values()):>8}"
        )
        lines.append(
            f"background images (empty label files): train {self.background['train']}, "
            f"val {self.background['val']}"
        )
        if self.skipped_images:
            lines.append(f"skipped images: {len(self.skipped_images)}")
            lines += [f"  {d}/{i}: {r}" for d, i, r in self.skipped_images]
        if self.skipped:
            by_reason = Counter(s.reason.split(":")[0] for s in self.skipped)
            lines.append(
                f"skipped annotations: {len(self.skipped)} ("
                + ", ".join(f"{r}: {n}" for r, n in by_reason.most_common())
                + ")"
            )
            lines += [
                f"  {s.dataset}/{s.image} annotation {s.annotation_id}: {s.reason}" for s in self.skipped
            ]
        else:
            lines.append("skipped annotations: none")
        return "\n".join(lines)


def instance_polygon(segmentation, height: int, width: int) -> tuple[np.ndarray | None, str | None]:
    """One polygon (N×2, pixels) for a COCO segmentation, or (None, reason): its polygons, or its
    RLE's outlines, joined into one as ultralytics joins the parts of an instance."""
    from ultralytics.data.converter import merge_multi_segment

    try:
        parts = segmentation_polygons(segmentation, height, width)
    except AnnotationFormatError as exc:
        return None, str(exc)
    if len(parts) == 1:
        return parts[0], None
    return np.concatenate(merge_multi_segment(parts), axis=0), None


def _split_of(images: list[SourceImage], val_fraction: float, seed: int) -> dict[int, str]:
    val = val_indices([f"{im.dataset}/{im.file_name}" for im in images], val_fraction, seed)
    return {i: "val" if i in val else "train" for i in range(len(images))}


def _present(images: list[SourceImage], report: ConversionReport) -> list[SourceImage]:
    """The images whose files exist; the others, and their annotations, become skip reasons."""
    present = []
    for image in images:
        if image.path.is_file():
            present.append(image)
            continue
        report.skipped_images.append((image.dataset, image.file_name, "missing image file"))
        report.skipped.extend(
            Skipped(image.dataset, a.get("id"), image.file_name, "missing image file")
            for a in image.annotations
        )
    return present


def _refuse_duplicates(images: list[SourceImage]) -> None:
    """One file listed twice would be converted twice, with one of its annotation sets."""
    seen: dict[tuple[str, str], SourceImage] = {}
    for image in images:
        key = (image.dataset, image.file_name)
        if key in seen:
            first = seen[key].source
            if first == image.source:
                raise DatasetError(
                    f"{image.source}: {image.file_name} has two image entries in this file; keep one"
                )
            raise DatasetError(
                f"{image.dataset}: {image.file_name} is listed in {first} and {image.source}; merge them"
            )
        seen[key] = image


def _convert_image(
    image: SourceImage, part: str, staging: Path, copy: bool, gt: dict, report: ConversionReport
) -> None:
    """Link the image, write its label file, add it to ``gt[part]`` and count it in the report."""
    rel = _output_path(image)
    link_or_copy(image.path, staging / "images" / part / rel, copy)
    truth = gt[part]
    image_id = len(truth["images"]) + 1
    truth["images"].append(
        {"id": image_id, "file_name": rel.as_posix(), "width": image.width, "height": image.height}
    )
    lines = []
    for ann in image.annotations:
        polygon, reason = instance_polygon(ann.get("segmentation"), image.height, image.width)
        if polygon is None:
            report.skipped.append(Skipped(image.dataset, ann.get("id"), image.file_name, reason))
            continue
        lines.append(yolo_line(ann["_class"], polygon, image.width, image.height))
        report.instances[part][ann["_class"]] += 1
        # The ground truth of the converted dataset: the polygon the label holds, as an
        # instance (crowd regions became instances too; COCOeval would otherwise ignore them).
        ann_id = len(truth["annotations"]) + 1
        truth["annotations"].append(polygon_annotation(ann_id, image_id, ann["_class"] + 1, [polygon]))
    label = (staging / "labels" / part / rel).with_suffix(".txt")
    label.parent.mkdir(parents=True, exist_ok=True)
    label.write_text("\n".join(lines) + ("\n" if lines else ""))
    report.images[part] += 1
    report.background[part] += not lines
    for c in {int(line.split(" ", 1)[0]) for line in lines}:
        report.images_with[part][c] += 1


def _write_dataset_files(
    staging: Path, dst: Path, names: list[str], gt: dict, report: ConversionReport
) -> None:
    """The folders of both splits (even empty), the COCO ground truth, data.yaml and the report."""
    for part in SPLITS:
        (staging / "images" / part).mkdir(parents=True, exist_ok=True)
        (staging / "labels" / part).mkdir(parents=True, exist_ok=True)
    (staging / "annotations").mkdir()
    for part in SPLITS:
        (staging / "annotations" / f"{part}.json").write_text(json.dumps(gt[part]))
    data = {
        "path": str(dst.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(names)),
    }
    (staging / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    (staging / "conversion_report.json").write_text(json.dumps(report.to_json(), indent=1))


def convert(
    src: Path,
    dst: Path,
    classes_file: Path | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    copy: bool = False,
    progress: Callable[[Iterable], Iterable] = lambda x: x,
) -> ConversionReport:
    if not 0 <= val_fraction < 1:
        raise DatasetError(f"--val-fraction {val_fraction} must be in [0, 1)")
    classes = read_classes_file(classes_file) if classes_file else None
    datasets = find_datasets(src)
    dst = check_destination(src, dst, "coco2yolo")  # before the work, not only before the swap
    report = ConversionReport(names=[])
    report.names, images = collect(
        datasets, classes, report.skipped.append, lambda *entry: report.skipped_images.append(entry)
    )
    present = _present(images, report)
    _refuse_duplicates(present)
    split = _split_of(present, val_fraction, seed)
    categories = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(report.names)]
    gt = {part: instances_document([], categories, []) for part in SPLITS}
    with staged_output(src, dst, "coco2yolo") as staging:
        for index, image in enumerate(progress(present)):
            _convert_image(image, split[index], staging, copy, gt, report)
        _write_dataset_files(staging, dst, report.names, gt, report)
    return report


def _output_path(image: SourceImage) -> Path:
    """<dataset>/<file_name>, with folders named 'images' renamed: ultralytics finds a label by
    replacing the last /images/ of the image path with /labels/."""
    parts = [image.dataset, *Path(image.file_name).parts]
    return Path(*[f"{p}_" if p == "images" and i < len(parts) - 1 else p for i, p in enumerate(parts)])
