"""``seg-client segments badlist push|list|remove``: the names of images to leave out of every
export, mask build and dataset (the successor of push_badlist.py)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from clients.options import DATA_ROOT_OPTION, DB_OPTION
from clients.segments.store_cli import interrupted_in_one_line, name_lines, open_store, report_unknown, shown
from store.layout import DataLayout
from store.records import BadlistRecord


@click.group()
def badlist() -> None:
    """Images to leave out of every export, mask build and dataset.

    The badlist is a list of names (a path relative to DATA/pictures, a trailing part of it, or a
    file stem), each kept with the file it was pushed from and when: `push` adds names, `list`
    shows them with the stored images each matches, `remove` takes names off again.
    """


@badlist.command(short_help="Badlist the images named in FILE.")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--badlist-path",
    "--badlist_path",
    "badlist_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The same as FILE.",
)
@DB_OPTION
@DATA_ROOT_OPTION
@interrupted_in_one_line
def push(file: Path | None, badlist_path: Path | None, db: str | None, data_root: Path) -> None:
    """Badlist the images named in FILE (one per line: a path, a trailing part of it, or a stem).
    Names not in the store yet are kept and apply to the images when they are added.

    Each name is stored with FILE's path and the time (a name pushed again keeps its first);
    `segments badlist list` shows them, `segments badlist remove` undoes a push.
    """
    path = file or badlist_path
    if path is None:
        raise click.UsageError("give the badlist FILE")
    names = name_lines(path)
    with open_store(db, DataLayout(data_root)) as store:
        matched, unknown = store.push_badlist(names, source=str(path))
    report_unknown(unknown, " yet (kept for when they are added)")
    click.echo(f"{len(names)} names from {path}: {matched} stored images badlisted")


@badlist.command("list")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='A JSON list instead, for scripts: [{"name", "source", "added_at" (ISO 8601, UTC), "images"}].',
)
@DB_OPTION
@DATA_ROOT_OPTION
@interrupted_in_one_line
def list_entries(as_json: bool, db: str | None, data_root: Path) -> None:
    """Show the badlist's names, where and when each came from.

    One line per name, sorted by name: the file it was pushed from, when (UTC), and how many
    stored images it matches (0: none yet; it applies to images added later). The last line
    counts the names and the stored images they badlist.
    """
    with open_store(db, DataLayout(data_root)) as store:
        entries = store.badlist_entries()
        url = store.url
    if as_json:
        click.echo(json.dumps([_as_json(e) for e in entries], indent=2))
        return
    lines = [("name", "source", "added", "images")]
    lines += [(shown(e.name), shown(e.source) or "-", _when(e.added_at), str(e.images)) for e in entries]
    if entries:
        widths = [max(len(line[i]) for line in lines) for i in range(3)]
        for name, source, added, images in lines:
            click.echo(f"{name:<{widths[0]}}  {source:<{widths[1]}}  {added:<{widths[2]}}  {images:>6}")
    badlisted = len({path for e in entries for path in e.matches})
    hint = "" if entries else "; `seg-client segments badlist push FILE` adds names"
    click.echo(f"{len(entries)} names on the badlist ({url}), matching {badlisted} stored images{hint}")


@badlist.command("remove")
@click.argument("names", nargs=-1)
@click.option(
    "--file",
    "--from-file",
    "from_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Also the names in this file, one per line (the file a push read: undoes that push).",
)
@DB_OPTION
@DATA_ROOT_OPTION
@interrupted_in_one_line
def remove_entries(names: tuple[str, ...], from_file: Path | None, db: str | None, data_root: Path) -> None:
    """Take names off the badlist; the images they badlisted come back.

    NAMES are the names as `segments badlist list` shows them (as pushed), not the images they
    match. Images that no remaining name matches are badlisted no more, so exports, mask builds
    and datasets include them again.

    Each removed name is printed with the file it was pushed from and when: the store keeps no
    record of a removal, so keep the output if one is needed. A name not on the badlist is
    reported; the exit status is 1 when none of the names was on it.
    """
    given = list(names) + (name_lines(from_file) if from_file is not None else [])
    if not any(n.strip() for n in given):
        raise click.UsageError("name at least one badlist entry to remove (or --file FILE, one per line)")
    with open_store(db, DataLayout(data_root)) as store:
        outcome = store.remove_badlist(given)
        url = store.url
    for entry in outcome.removed:
        source = f"pushed from {shown(entry.source)}" if entry.source else "pushed"
        click.echo(
            f"removed {shown(entry.name)} ({source} at {_when(entry.added_at)}; "
            f"matched {entry.images} stored images)"
        )
    hinted = dict(list(outcome.badlisted_by.items())[:5])  # a line each; any others in the count below
    for name, others in hinted.items():
        _report_badlisted_by(name, others)
    _report_not_listed([n for n in outcome.unknown if n not in hinted])
    still = f"; {outcome.still_badlisted} stay badlisted by other names" if outcome.still_badlisted else ""
    click.echo(
        f"{len(outcome.removed)} names removed from the badlist ({url}): "
        f"{outcome.unbadlisted} stored images no longer badlisted{still}"
    )
    if outcome.unknown and not outcome.removed:
        sys.exit(1)


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at is not None else "unknown"


def _as_json(entry: BadlistRecord) -> dict:
    added_at = entry.added_at.isoformat(timespec="seconds") if entry.added_at else None
    return {"name": entry.name, "source": entry.source, "added_at": added_at, "images": entry.images}


def _report_badlisted_by(name: str, others: list[str]) -> None:
    """``name`` is not on the badlist, but the stored images it names are, by ``others``."""
    more = f" and {len(others) - 5} more" if len(others) > 5 else ""
    listed = ", ".join(map(shown, others[:5])) + more
    that = "that name" if len(others) == 1 else "those names"
    click.echo(
        f"seg-client: {shown(name)} is not on the badlist; stored images it names are badlisted "
        f"by {listed} (remove {that} to include them again)",
        err=True,
    )


def _report_not_listed(unknown: list[str]) -> None:
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        listed = ", ".join(map(shown, unknown[:5])) + more
        click.echo(
            f"seg-client: {len(unknown)} names are not on the badlist "
            f"(`seg-client segments badlist list` shows it): {listed}",
            err=True,
        )
