"""``seg-client segments review``: record annotators' verdict on stored segments, chosen by id, by
image, or by filters (model, group, class, score range, status). Each change is written with the
reviewer, the time and the reason, and goes into the store's audit table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from clients.options import DATA_ROOT_OPTION, DB_OPTION
from clients.segments.store_cli import (
    MODEL_FILTER_OPTION,
    interrupted_in_one_line,
    login_name,
    name_lines,
    open_store,
    report_unknown,
    shown,
)
from store.layout import DataLayout
from store.records import SegmentSelection, Status

VIA = "seg-client segments review"


REVIEWER_OPTION = click.option(
    "--reviewer",
    default=None,
    metavar="NAME",
    help="Who decided (recorded with every change) [default: your login name].",
)


def _ids(values: tuple[str, ...]) -> tuple[int, ...]:
    ids: list[int] = []
    for value in values:
        for part in filter(None, (p.strip() for p in value.split(","))):
            if not part.isdigit():
                raise click.BadParameter(f"{part!r} is not a segment id (a whole number)", param_hint="--id")
            ids.append(int(part))
    return tuple(ids)


def _verdict(approve: bool, reject: bool, unchecked: bool) -> Status:
    chosen = [
        s
        for s, on in ((Status.APPROVED, approve), (Status.REJECTED, reject), (Status.UNCHECKED, unchecked))
        if on
    ]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --approve, --reject or --unchecked")
    return chosen[0]


@click.command()
@click.argument("images", nargs=-1)
@click.option("--approve", is_flag=True, help="Mark the segments approved.")
@click.option("--reject", is_flag=True, help="Mark the segments rejected.")
@click.option("--unchecked", is_flag=True, help="Undo a review (the history keeps it).")
@click.option(
    "--id",
    "ids",
    multiple=True,
    metavar="ID[,ID...]",
    help="Segment ids (as exports and `segments status` show them); repeat or comma-separate.",
)
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Also the images named in this file, one per line.",
)
@click.option("--group", default=None, help="Only segments of this group's images.")
@MODEL_FILTER_OPTION
@click.option(
    "--class", "classes", multiple=True, metavar="NAME|ID", help="Only segments of this class (repeatable)."
)
@click.option("--min-score", type=float, default=None, help="Only segments scored at least this.")
@click.option("--max-score", type=float, default=None, help="Only segments scored at most this.")
@click.option(
    "--status",
    "statuses",
    type=click.Choice([s.value for s in Status]),
    multiple=True,
    help="Only segments in this status now (repeatable).",
)
@REVIEWER_OPTION
@click.option("--reason", default=None, help="Why (recorded with every change).")
@DB_OPTION
@DATA_ROOT_OPTION
@interrupted_in_one_line
def review(images: tuple[str, ...], **given: Any) -> None:
    """Record annotators' verdict on stored segments.

    Choose them by IMAGES (paths relative to DATA/pictures, trailing parts of them, or file stems:
    every segment of those pictures), by --id, or by filters alone (--group, --model, --class,
    --min-score, --max-score, --status); filters also narrow the images and ids given. Examples:

      seg-client segments review --reject --class person --max-score 0.3 --reason "too unsure"

      seg-client segments review --approve --id 12,15 --reviewer alice
    """
    verdict = _verdict(given["approve"], given["reject"], given["unchecked"])
    from store.segment_store import normalise_name

    names = list(images) + (name_lines(given["from_file"]) if given["from_file"] is not None else [])
    selection = SegmentSelection(
        ids=_ids(given["ids"]),
        images=tuple(names),
        group=given["group"],
        model=given["model"],
        classes=tuple(given["classes"]),
        min_score=given["min_score"],
        max_score=given["max_score"],
        statuses=tuple(Status(s) for s in given["statuses"]),
    )
    if selection.is_empty():
        raise click.UsageError(
            "choose segments: name images, give --id, or filter (--group, --model, --class, "
            "--min-score, --max-score, --status)"
        )
    reviewer = given["reviewer"] or login_name()
    with open_store(given["db"], DataLayout(given["data_root"])) as store:
        ambiguous = store.ambiguous_names(names) if names else {}
        for name, paths in sorted(ambiguous.items()):
            more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
            listed = ", ".join(map(shown, paths[:3])) + more
            click.echo(
                f"seg-client: {name!r} names {len(paths)} images ({listed}): "
                "not reviewed; give the path relative to DATA/pictures",
                err=True,
            )
        kept = tuple(n for n in names if normalise_name(n) not in ambiguous)
        if names and not kept and not selection.ids:
            outcome = None
        else:
            selection = SegmentSelection(**{**selection.__dict__, "images": kept})
            outcome = store.review_segments(selection, verdict, reviewer, VIA, reason=given["reason"])
    unknown_names = outcome.unknown_names if outcome else []
    report_unknown(unknown_names, "")
    if outcome and outcome.unknown_ids:
        listed = ", ".join(map(str, outcome.unknown_ids[:10]))
        click.echo(
            f"seg-client: {len(outcome.unknown_ids)} segment ids are not in the store: {listed}", err=True
        )
    selected = outcome.changed + outcome.unchanged if outcome else 0
    already = (
        f"; {outcome.unchanged} already were" if outcome and outcome.unchanged and outcome.changed else ""
    )
    click.echo(f"{selected} segments marked {verdict.value} by {shown(reviewer)}{already}")
    if not selected and (unknown_names or ambiguous or (outcome and outcome.unknown_ids)):
        sys.exit(1)
