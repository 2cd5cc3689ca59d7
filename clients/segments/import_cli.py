"""``seg-client segments import``: annotators' work from CVAT (or a COCO file) back into the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from clients.options import DATA_ROOT_OPTION, DB_OPTION
from clients.segments.review_cli import REVIEWER_OPTION
from clients.segments.store_cli import interrupted_in_one_line, login_name
from clients.triton.progress import above_bars, progress_bar


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cvat", "coco"]),
    required=True,
    help='What FILE is: CVAT\'s "CVAT for images 1.1" export, or its (or our) COCO 1.0 instances JSON.',
)
@click.option("--group", default=None, help="Only the file's images that belong to this group.")
@click.option(
    "--model",
    default=None,
    metavar="NAME",
    help="The model whose segments the file was exported from (found from the file's segment ids "
    "when it has them, else the store's only model).",
)
@REVIEWER_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@DB_OPTION
@DATA_ROOT_OPTION
@interrupted_in_one_line
def import_(file: Path, fmt: str, as_json: bool, **given: Any) -> None:
    """Import what annotators did to a task pre-annotated from `segments export`.

    Every shape of every image in FILE is compared with the stored segments: by the segment_id
    attribute the export wrote, else by class and IoU. Unchanged shapes approve their segment;
    edited and relabelled ones become approved corrections (the model's segment stays, rejected,
    and the correction names it); segments deleted in CVAT are rejected; shapes the annotator
    drew are new approved segments. Images the store does not know, unknown labels and shapes
    outside the image are reported and skipped. Every decision records the reviewer, the file
    and its sha256 (and the CVAT task and job when the file says). Importing the same file again
    changes nothing; a killed import resumes where it stopped.
    """
    from clients.segments.import_run import ImportOptions, import_annotations

    options = ImportOptions(file=file, fmt=fmt, reviewer=given.pop("reviewer") or login_name(), **given)
    report = import_annotations(options, progress=progress_bar, on_note=None if as_json else above_bars)
    if as_json:
        click.echo(json.dumps(report.as_json(), sort_keys=True))
    else:
        click.echo(report.line())
    if report.already_imported is None and report.images == 0 and report.resumed == 0:
        sys.exit(1)
