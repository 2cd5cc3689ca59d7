"""``seg-client segments export``: a group's stored segments in one file for annotators (COCO,
CVAT), or a training set of its reviewed segments in a folder (YOLO-seg, semantic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from clients.options import DATA_ROOT_OPTION, DB_OPTION
from clients.segments.store_cli import (
    MODEL_FILTER_OPTION,
    STATUS_OPTION,
    STORE_GROUP_OPTION,
    interrupted_in_one_line,
)
from clients.triton.client import ClientError

FILE_FORMATS = ("coco", "cvat")
DATASET_FORMATS = ("yolo", "semantic")


@click.command()
@STORE_GROUP_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*FILE_FORMATS, *DATASET_FORMATS]),
    required=True,
    help="For annotators: COCO instances JSON, or CVAT for images 1.1 XML. For training: an "
    "ultralytics YOLO-seg dataset (seg-train yolo --data DIR/data.yaml), or the semantic family's "
    "images/ + indexes/ (seg-train semantic --data-root DIR).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="coco, cvat: the file to write. yolo, semantic: the dataset's folder, new or empty (it is "
    "built beside it and renamed into place).",
)
@click.option(
    "--cvat-shape",
    type=click.Choice(["polygon", "mask"]),
    default="polygon",
    help="CVAT: polygons traced from the masks (simplified), or CVAT's own mask RLE (exact).",
)
@STATUS_OPTION
@click.option(
    "--include-unchecked",
    is_flag=True,
    help="yolo, semantic: also the unchecked segments, and every image with a stored segment (by "
    "default only fully reviewed images go in, with their approved segments).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="yolo: the share of images in val, chosen by a hash of each image's path [0.2]. "
    "(seg-train semantic splits a semantic set itself: give it its own --val-fraction.)",
)
@MODEL_FILTER_OPTION
@DB_OPTION
@DATA_ROOT_OPTION
@interrupted_in_one_line
def export(**given: Any) -> None:
    """Export a group's segments for annotators, or as a training set (badlisted images left out).

    COCO: instances JSON with RLE masks that pycocotools loads, each annotation also carrying the
    model's score and the review status. CVAT: "CVAT for images 1.1" XML to import as
    pre-annotations (the score is a `score` attribute, which the CVAT task's label must declare
    to keep it).

    yolo, semantic: the reviewed segments as a training set. A correction takes the place of the
    segment it replaces; rejected segments never go in. An image goes in once it is fully reviewed
    (none of its segments still in play is unchecked); one whose every segment was rejected goes
    in as a background image. The pictures are hard links of DATA/pictures files (copies across
    file systems), named by their path with "/" turned into "__". YOLO labels trace the masks'
    pixel edges; semantic index masks hold class id + 1 (0: background) with colors.csv beside
    them. manifest.json records the store, the images (sha256, split) and every segment written
    with its review (status, reviewer, time, revision, origin), so a model can be traced back to
    the reviews behind it.
    """
    _refuse_options_of_other_formats(given)
    if given["fmt"] in DATASET_FORMATS:
        from clients.segments.dataset_file import DatasetOptions, export_dataset

        given.pop("cvat_shape")
        given.pop("statuses")
        report = export_dataset(DatasetOptions(**given))
        click.echo(report.line())
        click.echo(report.next_step())
        return
    from clients.segments.export_file import ExportOptions, export_segments

    given.pop("include_unchecked")
    given.pop("val_fraction")
    if given["out"].is_dir():
        raise ClientError(f"--out {given['out']} is a folder; --format {given['fmt']} writes a file")
    click.echo(export_segments(ExportOptions(**given)).line())


def _refuse_options_of_other_formats(given: dict[str, Any]) -> None:
    """An option given that the format does not use is a mistake to say, not to ignore."""
    source = click.get_current_context().get_parameter_source
    fmt = given["fmt"]
    if fmt in DATASET_FORMATS:
        for name, option in (("statuses", "--status"), ("cvat_shape", "--cvat-shape")):
            if source(name) not in (ParameterSource.DEFAULT, None):
                raise ClientError(
                    f"{option} is not for --format {fmt}: a training set takes the approved segments "
                    "(and the unchecked ones with --include-unchecked)"
                )
        if fmt == "semantic" and given["val_fraction"] is not None:
            raise ClientError(
                "--val-fraction is for --format yolo: seg-train semantic splits the images itself "
                "(give it --val-fraction)"
            )
        return
    if given["include_unchecked"] or given["val_fraction"] is not None:
        option = "--include-unchecked" if given["include_unchecked"] else "--val-fraction"
        raise ClientError(f"{option} is for --format yolo or semantic, not {fmt} (use --status)")
