"""``seg-client segments export``: a group's stored segments in one file for annotators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from clients.options import DATA_ROOT_OPTION, DB_OPTION
from clients.segments.store_cli import (
    MODEL_FILTER_OPTION,
    STATUS_OPTION,
    STORE_GROUP_OPTION,
    interrupted_in_one_line,
)


@click.command()
@STORE_GROUP_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["coco", "cvat"]),
    required=True,
    help="COCO instances JSON, or CVAT for images 1.1 XML.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The file to write."
)
@click.option(
    "--cvat-shape",
    type=click.Choice(["polygon", "mask"]),
    default="polygon",
    help="CVAT: polygons traced from the masks (simplified), or CVAT's own mask RLE (exact).",
)
@STATUS_OPTION
@MODEL_FILTER_OPTION
@DB_OPTION
@DATA_ROOT_OPTION
@interrupted_in_one_line
def export(**given: Any) -> None:
    """Export a group's segments for annotators (badlisted images left out).

    COCO: instances JSON with RLE masks that pycocotools loads, each annotation also carrying the
    model's score and the review status. CVAT: "CVAT for images 1.1" XML to import as
    pre-annotations (the score is a `score` attribute, which the CVAT task's label must declare
    to keep it).
    """
    from clients.segments.export_file import ExportOptions, export_segments

    click.echo(export_segments(ExportOptions(**given)).line())
