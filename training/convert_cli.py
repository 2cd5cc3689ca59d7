"""``seg-train coco2yolo`` and ``seg-train labelme``: annotations in, a training set out."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import click
from tqdm import tqdm

T = TypeVar("T")


def _bar(desc: str) -> Callable[[Iterable[T]], Iterable[T]]:
    """A progress bar over the images on stderr, as the converters take it."""
    return lambda xs: tqdm(xs, desc=desc, unit="img", file=sys.stderr)


@click.command()
@click.option(
    "--src-dir",
    "--src_dir",
    "src_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of COCO exports: each sub-folder with images/ and annotations/*.json is a dataset.",
)
@click.option(
    "--dst-dir",
    "--dst_dir",
    "dst_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the YOLO-seg dataset: a new or empty folder, or a previous output of "
    "coco2yolo (replaced whole). Any other folder is refused, never deleted.",
)
@click.option(
    "--classes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Text file, one class name per line: fixes the class order (others are skipped).",
)
@click.option("--val-fraction", "--val_fraction", type=float, default=0.2, help="Share of images in val.")
@click.option("--seed", type=int, default=0, help="Seed of the deterministic train/val split.")
@click.option("--copy", is_flag=True, help="Copy images instead of hard-linking them.")
def coco2yolo(src_dir, dst_dir, classes, val_fraction, seed, copy) -> None:
    """Convert and merge COCO datasets (CVAT "COCO 1.0" exports) into one YOLO-seg dataset.

    Categories are unified by name across datasets. Polygons, multi-polygon instances and RLE
    (compressed or not, crowd regions too) all convert. Prints images and instances per class and
    split, and every skipped annotation with its reason; writes dst/data.yaml for training.
    """
    from training.coco2yolo import convert

    report = convert(src_dir, dst_dir, classes, val_fraction, seed, copy, progress=_bar("coco2yolo"))
    click.echo(report.format())
    click.echo(
        f"\nWrote {dst_dir / 'data.yaml'}. Train: seg-train yolo --data {dst_dir / 'data.yaml'} "
        "--model yolov8n-seg.pt"
    )


@click.command()
@click.option(
    "--src-dir",
    "--src_dir",
    "src_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder with LabelMe .json files (searched recursively) and their images.",
)
@click.option(
    "--dst-dir",
    "--dst_dir",
    "dst_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Output: images/, indexes/<stem>.png, indexes/<stem>_color_mask.png, classes.txt, colors.csv. "
    "A new or empty folder, or a previous output of labelme (replaced whole); any other is refused.",
)
@click.option(
    "--classes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="One class per line, background first (LabelMe's labels.txt works). Default: labels found.",
)
@click.option(
    "--colors",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="colors.csv (name,r,g,b per class). Default: the PASCAL VOC palette.",
)
@click.option("--copy", is_flag=True, help="Copy images instead of hard-linking them.")
def labelme(src_dir, dst_dir, classes, colors, copy) -> None:
    """Convert LabelMe annotations into class-index masks (and colour masks) for semantic training."""
    from training.labelme import convert_labelme

    report, names = convert_labelme(src_dir, dst_dir, classes, colors, copy, progress=_bar("labelme"))
    click.echo(report.format(names))
    click.echo(f"classes: {', '.join(names)} → {dst_dir}")
    if report.failed:  # the others were converted: the work partly failed (1), not the user (2)
        raise SystemExit(1)
