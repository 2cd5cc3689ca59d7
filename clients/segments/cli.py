"""``seg-client segments ...`` and ``seg-client masks``: the segment store from the command line
(the successors of segment_builder.py, push_badlist.py and mask_bulder.py). The ``segments``
group with ``build``, ``status`` and ``review`` is here; ``badlist`` (``badlist_cli``),
``export`` (``export_cli``) and ``masks`` (``masks_cli``) live beside it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from clients.failure_log import FailureLog
from clients.options import (
    CONCURRENCY_OPTION,
    DATA_ROOT_OPTION,
    DB_OPTION,
    GROUP_OPTION,
    LEASE_OPTION,
    MODEL_OPTION,
    TIMEOUT_OPTION,
    URL_OPTION,
    threshold_options,
)
from clients.segments.badlist_cli import badlist
from clients.segments.export_cli import export
from clients.segments.import_cli import import_
from clients.segments.masks_cli import masks
from clients.segments.review_cli import review
from clients.segments.store_cli import (
    STORE_GROUP_OPTION,
    interrupted_in_one_line,
    open_store,
    shown,
)
from clients.triton.progress import above_bars, progress_bar
from store.layout import DataLayout

__all__ = ["masks", "segments"]


@click.group()
def segments() -> None:
    """The segment store: what models found, reviewed by annotators (SQLite or PostgreSQL)."""


segments.add_command(badlist)
segments.add_command(export)
segments.add_command(review)
segments.add_command(import_)


@segments.command()
@GROUP_OPTION
@click.option("--source", type=click.Path(path_type=Path), default=None, help="A folder of images instead.")
@MODEL_OPTION
@URL_OPTION
@DB_OPTION
@DATA_ROOT_OPTION
@click.option("--classes", default=None, help="Keep only these classes (names or ids, comma-separated).")
@click.option(
    "--process-all",
    "--process_all",
    "process_all",
    is_flag=True,
    help="Redo images this model has segmented: their unchecked segments are replaced, reviewed ones kept.",
)
@click.option(
    "--mark-approved",
    "--mark_approved",
    "mark_approved",
    is_flag=True,
    help="Store the new segments as approved instead of unchecked.",
)
@threshold_options
@CONCURRENCY_OPTION
@TIMEOUT_OPTION
@LEASE_OPTION
@interrupted_in_one_line
def build(**given: Any) -> None:
    """Segment a group (or a folder) with a served instance model and store the segments.

    Images the model has already segmented are skipped, and so are badlisted ones; segments are
    stored `unchecked` until reviewed (`segments review`). Each image is stored as soon as its
    answer is in: a killed run keeps what it finished and a re-run does the rest; two runs at once
    on the same store never store a segment twice. With a PostgreSQL store, runs of the same
    command on several machines share the images: each claims a batch at a time (see --lease), so
    every image is segmented by one of them. A --source folder's images join the group --group
    names, else the group named after the folder.
    """
    from clients.segments.build_run import SegmentsBuildOptions, run_build

    options = SegmentsBuildOptions(**given)
    if problem := options.usage_problem():
        raise click.UsageError(problem)
    failures = FailureLog(above_bars)
    report = run_build(options, progress=progress_bar, on_note=above_bars, on_failure=failures)
    for line in [*failures.summary(), *filter(None, [report.servers])]:
        click.echo(line, err=True)
    click.echo(report.line())
    if report.summary.failed:
        sys.exit(1)


@segments.command()
@STORE_GROUP_OPTION
@DB_OPTION
@DATA_ROOT_OPTION
@interrupted_in_one_line
def status(group: str | None, db: str | None, data_root: Path) -> None:
    """Counts of images, and of segments per model, class and status."""
    with open_store(db, DataLayout(data_root)) as store:
        report = store.status(group)
        if group is not None and report.images == 0:
            known = ", ".join(map(shown, store.group_names())) or "none"
            click.echo(
                f"seg-client: group {group!r} has no images in the store (groups there: {known})", err=True
            )
        where = f"group {group!r}" if group else "the store"
        click.echo(f"{where} ({store.url}): {report.images} images, {report.badlisted} badlisted")
        for model, n in report.segmented.items():
            click.echo(f"  {shown(model)}: {n} images segmented")
        if report.counts:
            click.echo(f"  {'model':<24} {'class':<20} {'status':<10} {'segments':>8}")
        for model, class_name, state, n in report.counts:
            click.echo(f"  {shown(model):<24} {shown(class_name):<20} {shown(state):<10} {n:>8}")
