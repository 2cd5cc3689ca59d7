"""``seg-client segments ...`` and ``seg-client masks``: the segment store from the command line
(the successors of segment_builder.py, push_badlist.py and mask_bulder.py)."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
from tqdm import tqdm

from clients.failure_log import FailureLog
from clients.options import (
    CONCURRENCY_OPTION,
    DATA_ROOT_OPTION,
    DB_OPTION,
    GROUP_OPTION,
    LEASE_OPTION,
    TIMEOUT_OPTION,
    URL_OPTION,
    threshold_options,
)
from clients.triton.client import ClientError
from clients.triton.image_sources import (
    ImageItem,
    all_badlisted_error,
    empty_group_error,
    images_in_folder,
    images_in_group,
    no_images_error,
    output_names,
)
from clients.triton.replicas import connect
from segcontract.files import write_atomic
from store.errors import StoreError
from store.layout import DataLayout, database_url
from store.records import Status, StoredImage, StoredSegment

if TYPE_CHECKING:
    from store.segment_store import SegmentStore

NOT_REJECTED = (Status.UNCHECKED.value, Status.APPROVED.value)
STATUS_OPTION = click.option(
    "--status",
    "statuses",
    type=click.Choice([s.value for s in Status]),
    multiple=True,
    default=NOT_REJECTED,
    help="Which segments to include (repeat the option for several).",
)
STORE_GROUP_OPTION = click.option(
    "--group",
    default=None,
    help="Only the images of this group, as `segments build` recorded it (default: every stored image).",
)
MODEL_FILTER_OPTION = click.option(
    "--model", default=None, help="Only this model's segments (needed when the store holds several)."
)


def _shown(text: str) -> str:
    """``text`` for a terminal: control characters and other unprintable ones escaped as Python
    writes them (``\\x1b``, ``\\n``, ``\\u200b``). Class, model and group names come from model
    configs and the store, which anyone may have written: raw, an escape sequence would recolour
    or rewrite the terminal, a newline would forge a line of the report."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"seg-client: error: {message}", err=True)
    sys.exit(code)


@contextmanager
def _store(
    db: str | None, layout: DataLayout, create: bool = False, connections: int = 4
) -> Iterator[SegmentStore]:
    """The store the command works on; only ``segments build`` creates one (``create``)."""
    from store.segment_store import SegmentStore  # SQLAlchemy only for the commands that use it

    with SegmentStore.open(database_url(db, layout), create=create, connections=connections) as store:
        yield store


def _one_line_errors(command: Callable) -> Callable:
    """Every store command: a user's mistake or an unusable store is one line, exit 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ClientError, StoreError) as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted; every image stored so far is kept, a re-run resumes", code=130)

    return wrapper


@click.group()
def segments() -> None:
    """The segment store: what models found, reviewed by annotators (SQLite or PostgreSQL)."""


@segments.command()
@GROUP_OPTION
@click.option("--source", type=click.Path(path_type=Path), default=None, help="A folder of images instead.")
@click.option("--model", "--model_name", "model", required=True, help="The served instance ensemble's name.")
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
@_one_line_errors
def build(
    group,
    source,
    model,
    url,
    db,
    data_root,
    classes,
    process_all,
    mark_approved,
    conf,
    iou,
    max_det,
    concurrency,
    timeout_s,
    lease_s,
) -> None:
    """Segment a group (or a folder) with a served model and store the segments.

    Images the model has already segmented are skipped, and so are badlisted ones; segments are
    stored `unchecked` until reviewed (`segments review`). Each image is stored as soon as its
    answer is in: a killed run keeps what it finished and a re-run does the rest; two runs at once
    on the same store never store a segment twice. With a PostgreSQL store, runs of the same
    command on several machines share the images: each claims a batch at a time (see --lease), so
    every image is segmented by one of them. A --source folder's images join the group --group
    names, else the group named after the folder.
    """
    from clients.segments.build import build_segments, class_ids, model_version, source_group, store_name
    from clients.triton.work_share import shared_work

    if source is None and group is None:
        raise click.UsageError("give --group NAME (a group under DATA/datasets) or --source DIR")
    layout = DataLayout(data_root)
    items = images_in_folder(source) if source is not None else images_in_group(group, layout)
    if not items:
        raise no_images_error(source) if source is not None else empty_group_error(group, layout, db)
    client = connect(url, timeout_s, on_event=lambda line: tqdm.write(line, file=sys.stderr))
    info = client.model_info(model)
    chosen = class_ids(info, classes)
    failures = FailureLog(lambda line: tqdm.write(line, file=sys.stderr))
    overrides = {"conf": conf, "iou": iou, "max_det": max_det}
    job = (
        "segments build", model, model_version(info), str(process_all), str(sorted(chosen or [])),
        str(sorted(overrides.items())), str(mark_approved), *sorted(store_name(i, layout) for i in items),
    )  # fmt: skip
    url = database_url(db, layout)
    with (
        _store(db, layout, create=True, connections=concurrency) as store,
        shared_work(url, job, lease_s, batch=2 * concurrency) as share,
    ):
        started = time.perf_counter()
        with tqdm(total=len(items), desc=f"{model} → store", unit="img", file=sys.stderr) as bar:
            summary = build_segments(
                client,
                info,
                items,
                layout,
                store,
                groups=[group or source_group(source)],
                classes=chosen,
                process_all=process_all,
                status=Status.APPROVED if mark_approved else Status.UNCHECKED,
                concurrency=concurrency,
                overrides=overrides,
                on_progress=bar.update,
                on_failure=failures,
                share=share,
            )
            if share is not None:  # the job is done: the rest was done by the other workers
                bar.update(bar.total - bar.n)
        for line in [*failures.summary(), *filter(None, [client.summary()])]:
            click.echo(line, err=True)
        elapsed = time.perf_counter() - started
        rate = f", {summary.written / elapsed:.1f} images/s" if summary.written and elapsed > 0 else ""
        replaced = f", {summary.removed} unchecked replaced" if summary.removed else ""
        if share is not None:
            replaced += f", {summary.done_elsewhere} done by other workers"
        click.echo(
            f"{summary.written} segmented, {summary.skipped} skipped (done before), "
            f"{summary.badlisted} badlisted, {len(summary.failed)} failed; {summary.added} segments stored, "
            f"{summary.kept} kept{replaced} → {store.url} (in {elapsed:.1f} s{rate})"
        )
    if summary.failed:
        sys.exit(1)


@segments.command()
@STORE_GROUP_OPTION
@DB_OPTION
@DATA_ROOT_OPTION
@_one_line_errors
def status(group, db, data_root) -> None:
    """Counts of images, and of segments per model, class and status."""
    with _store(db, DataLayout(data_root)) as store:
        report = store.status(group)
        if group is not None and report.images == 0:
            known = ", ".join(map(_shown, store.group_names())) or "none"
            click.echo(
                f"seg-client: group {group!r} has no images in the store (groups there: {known})", err=True
            )
        where = f"group {group!r}" if group else "the store"
        click.echo(f"{where} ({store.url}): {report.images} images, {report.badlisted} badlisted")
        for model, n in report.segmented.items():
            click.echo(f"  {_shown(model)}: {n} images segmented")
        if report.counts:
            click.echo(f"  {'model':<24} {'class':<20} {'status':<10} {'segments':>8}")
        for model, class_name, state, n in report.counts:
            click.echo(f"  {_shown(model):<24} {_shown(class_name):<20} {_shown(state):<10} {n:>8}")


def _names(images: tuple[str, ...], from_file: Path | None) -> list[str]:
    names = list(images)
    if from_file is not None:
        names += _lines(from_file)
    if not names:
        raise click.UsageError("name at least one image (or --from-file FILE)")
    return names


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(
            f"{path}: cannot read it as text ({exc}); give a file with one image name per line"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _report_unknown(unknown: list[str], what: str) -> None:
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        shown = ", ".join(map(_shown, unknown[:5])) + more
        click.echo(f"seg-client: {len(unknown)} names match no stored image{what}: {shown}", err=True)


@segments.command()
@click.argument("images", nargs=-1)
@click.option("--approve", is_flag=True, help="Mark their segments approved.")
@click.option("--reject", is_flag=True, help="Mark their segments rejected.")
@click.option("--unchecked", is_flag=True, help="Undo a review.")
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Also the images named in this file, one per line.",
)
@MODEL_FILTER_OPTION
@DB_OPTION
@DATA_ROOT_OPTION
@_one_line_errors
def review(images, approve, reject, unchecked, from_file, model, db, data_root) -> None:
    """Record annotators' verdict on every segment of the named images.

    IMAGES are paths relative to DATA/pictures, trailing parts of them, or file stem.
    """
    chosen = [
        s
        for s, on in ((Status.APPROVED, approve), (Status.REJECTED, reject), (Status.UNCHECKED, unchecked))
        if on
    ]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --approve, --reject or --unchecked")
    from store.segment_store import normalise_name

    verdict = chosen[0].value
    names = _names(images, from_file)
    with _store(db, DataLayout(data_root)) as store:
        ambiguous = store.ambiguous_names(names)
        for name, paths in sorted(ambiguous.items()):
            more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
            listed = ", ".join(map(_shown, paths[:3])) + more
            click.echo(
                f"seg-client: {name!r} names {len(paths)} images ({listed}): "
                "not reviewed; give the path relative to DATA/pictures",
                err=True,
            )
        names = [n for n in names if normalise_name(n) not in ambiguous]
        changed, unknown = store.review(names, Status(verdict), model=model) if names else (0, [])
    _report_unknown(unknown, "")
    click.echo(f"{changed} segments marked {verdict}")
    if (unknown or ambiguous) and not changed:
        sys.exit(1)


@segments.group()
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
@_one_line_errors
def push(file, badlist_path, db, data_root) -> None:
    """Badlist the images named in FILE (one per line: a path, a trailing part of it, or a stem).
    Names not in the store yet are kept and apply to the images when they are added.

    Each name is stored with FILE's path and the time (a name pushed again keeps its first);
    `segments badlist list` shows them, `segments badlist remove` undoes a push.
    """
    path = file or badlist_path
    if path is None:
        raise click.UsageError("give the badlist FILE")
    names = _lines(path)
    with _store(db, DataLayout(data_root)) as store:
        matched, unknown = store.push_badlist(names, source=str(path))
    _report_unknown(unknown, " yet (kept for when they are added)")
    click.echo(f"{len(names)} names from {path}: {matched} stored images badlisted")


def _when(at) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at is not None else "unknown"


@badlist.command("list")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='A JSON list instead, for scripts: [{"name", "source", "added_at" (ISO 8601, UTC), "images"}].',
)
@DB_OPTION
@DATA_ROOT_OPTION
@_one_line_errors
def list_entries(as_json, db, data_root) -> None:
    """Show the badlist's names, where and when each came from.

    One line per name, sorted by name: the file it was pushed from, when (UTC), and how many
    stored images it matches (0: none yet; it applies to images added later). The last line
    counts the names and the stored images they badlist.
    """
    with _store(db, DataLayout(data_root)) as store:
        entries = store.badlist_entries()
        url = store.url
    if as_json:
        import json

        rows = [
            {
                "name": e.name,
                "source": e.source,
                "added_at": e.added_at.isoformat(timespec="seconds") if e.added_at else None,
                "images": e.images,
            }
            for e in entries
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    lines = [("name", "source", "added", "images")]
    lines += [(_shown(e.name), _shown(e.source) or "-", _when(e.added_at), str(e.images)) for e in entries]
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
@_one_line_errors
def remove_entries(names, from_file, db, data_root) -> None:
    """Take names off the badlist; the images they badlisted come back.

    NAMES are the names as `segments badlist list` shows them (as pushed), not the images they
    match. Images that no remaining name matches are badlisted no more, so exports, mask builds
    and datasets include them again.

    Each removed name is printed with the file it was pushed from and when: the store keeps no
    record of a removal, so keep the output if one is needed. A name not on the badlist is
    reported; the exit status is 1 when none of the names was on it.
    """
    given = list(names) + (_lines(from_file) if from_file is not None else [])
    if not any(n.strip() for n in given):
        raise click.UsageError("name at least one badlist entry to remove (or --file FILE, one per line)")
    with _store(db, DataLayout(data_root)) as store:
        outcome = store.remove_badlist(given)
        url = store.url
    for entry in outcome.removed:
        source = f"pushed from {_shown(entry.source)}" if entry.source else "pushed"
        click.echo(
            f"removed {_shown(entry.name)} ({source} at {_when(entry.added_at)}; "
            f"matched {entry.images} stored images)"
        )
    hinted = dict(list(outcome.badlisted_by.items())[:5])  # a line each; any others in the count below
    for name, others in hinted.items():
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        listed = ", ".join(map(_shown, others[:5])) + more
        that = "that name" if len(others) == 1 else "those names"
        click.echo(
            f"seg-client: {_shown(name)} is not on the badlist; stored images it names are badlisted "
            f"by {listed} (remove {that} to include them again)",
            err=True,
        )
    _report_not_listed([n for n in outcome.unknown if n not in hinted])
    still = f"; {outcome.still_badlisted} stay badlisted by other names" if outcome.still_badlisted else ""
    click.echo(
        f"{len(outcome.removed)} names removed from the badlist ({url}): "
        f"{outcome.unbadlisted} stored images no longer badlisted{still}"
    )
    if outcome.unknown and not outcome.removed:
        sys.exit(1)


def _report_not_listed(unknown: list[str]) -> None:
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        shown = ", ".join(map(_shown, unknown[:5])) + more
        click.echo(
            f"seg-client: {len(unknown)} names are not on the badlist "
            f"(`seg-client segments badlist list` shows it): {shown}",
            err=True,
        )


def _segments_of(store: SegmentStore, group: str | None, model: str | None, statuses) -> list[StoredSegment]:
    found = store.segments(group=group, model=model, statuses=[Status(s) for s in statuses])
    models = sorted({s.model for s in found})
    if model is None and len(models) > 1:
        raise ClientError(
            f"the segments come from {len(models)} models ({', '.join(map(_shown, models))}): "
            "pick one with --model"
        )
    return found


def _images_of(store: SegmentStore, group: str | None) -> list[StoredImage]:
    images = store.images(group=group)
    if not images:
        where = f"group {group!r}" if group else "the store"
        if every := store.images(group=group, include_badlisted=True):
            raise all_badlisted_error(where, len(every), "nothing to export")
        known = ", ".join(map(_shown, store.group_names())) or "none"
        raise ClientError(
            f"{where} has no images in {store.url} (groups there: {known}); run `segments build` first"
        )
    return images


@segments.command()
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
@_one_line_errors
def export(group, fmt, out, cvat_shape, statuses, model, db, data_root) -> None:
    """Export a group's segments for annotators (badlisted images left out).

    COCO: instances JSON with RLE masks that pycocotools loads, each annotation also carrying the
    model's score and the review status. CVAT: "CVAT for images 1.1" XML to import as
    pre-annotations (the score is a `score` attribute, which the CVAT task's label must declare
    to keep it).
    """
    from clients.segments.exports import coco_instances, cvat_images_xml

    with _store(db, DataLayout(data_root)) as store:
        images = _images_of(store, group)
        badlisted = len(store.images(group=group, include_badlisted=True)) - len(images)
        found = _segments_of(store, group, model, statuses)
    try:
        if fmt == "coco":
            import json

            data = json.dumps(coco_instances(images, found, class_names=[])).encode()
        else:
            data = cvat_images_xml(
                images, found, class_names=[], shape=cvat_shape, task_name=group or "segstack"
            )
    except ValueError as exc:
        raise ClientError(f"cannot export: {exc}") from None
    try:
        write_atomic(out, data)
    except OSError as exc:
        raise ClientError(f"cannot write {out}: {exc.strerror or exc}") from None
    left = f" ({badlisted} badlisted left out)" if badlisted else ""
    click.echo(f"{len(images)} images{left}, {len(found)} segments → {out}")


@click.command()
@STORE_GROUP_OPTION
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: MARKUP/masks under --data-root).",
)
@click.option(
    "--color",
    is_flag=True,
    help="Also write <stem>_color.png beside each mask, for people to look at: background black, "
    "each segment value in its own colour (the PASCAL VOC palette: 1 red (128,0,0), 2 green "
    "(0,128,0), 3 olive (128,128,0), ...). A run without --color leaves earlier ones as they are "
    "(not updated), except a badlisted image's, removed with its mask.",
)
@STATUS_OPTION
@MODEL_FILTER_OPTION
@DB_OPTION
@DATA_ROOT_OPTION
@_one_line_errors
def masks(group, out, color, statuses, model, db, data_root) -> None:
    """Masks for annotators from the stored segments: <stem>.png and <stem>.json per image.

    The PNG has one channel at the image's size: 0 is background, k the k-th segment by score
    (highest first; where segments overlap the higher score wins); 16-bit when an image has more
    than 255 segments. The JSON beside it lists each value's segment id, class, score, status
    and model. With --color, <stem>_color.png shows the same mask in colour. Badlisted images are
    left out, and the mask files an earlier run wrote for them are removed.
    """
    from clients.segments.mask_files import write_mask_files

    layout = DataLayout(data_root)
    out = out or layout.masks
    with _store(db, layout) as store:
        images = _images_of(store, group)
        found = _segments_of(store, group, model, statuses)
        every = store.images(group=group, include_badlisted=True)
    by_image: dict[int, list[StoredSegment]] = {}
    for segment in found:
        by_image.setdefault(segment.image_id, []).append(segment)
    # stems from every image, badlisted ones too, so that an image's files keep their names
    stems = dict(
        zip(
            (i.id for i in every),
            output_names([ImageItem(Path(i.path), Path(i.path)) for i in every]).values(),
        )
    )
    if color:
        _refuse_color_name_clashes(images, every, stems)
    written = 0
    for image in tqdm(images, desc="masks", unit="img", file=sys.stderr):
        stem = stems[image.id]
        try:
            write_mask_files(out / stem.parent, stem.name, image, by_image.get(image.id, []), color)
        except OSError as exc:
            raise ClientError(f"cannot write masks under {out}: {exc.strerror or exc}") from None
        except ValueError as exc:  # a stored segment that does not fit its image
            raise ClientError(f"cannot build the masks of {image.path}: {exc}") from None
        written += 1
    removed = _remove_badlisted_masks(out, [stems[i.id] for i in every if i.badlisted], set(stems.values()))
    gone = f"; {removed} badlisted images' mask files removed" if removed else ""
    left = f" ({len(every) - len(images)} badlisted left out)" if len(every) > len(images) else ""
    click.echo(f"{written} images{left}, {len(found)} segments → {out}{gone}")


def _refuse_color_name_clashes(
    images: list[StoredImage], every: list[StoredImage], stems: dict[int, Path]
) -> None:
    """``<stem>_color.png`` must not be the mask of another image (``x.jpg`` beside ``x_color.jpg``):
    refused before anything is written, rather than one file overwriting the other."""
    from clients.segments.mask_files import color_name

    owner = {stems[i.id]: i for i in every}
    for image in images:
        stem = stems[image.id]
        other = owner.get(stem.with_name(Path(color_name(stem.name)).stem))
        if other is not None:
            raise ClientError(
                f"--color: the colour mask of {_shown(image.path)} would be "
                f"{_shown(stem.with_name(color_name(stem.name)).as_posix())}, the mask of "
                f"{_shown(other.path)}; run without --color"
            )


def _remove_badlisted_masks(out: Path, stems: list[Path], every_stem: set[Path]) -> int:
    """Mask files that an earlier run wrote for images badlisted since (only ``<stem>.png`` with
    its ``<stem>.json`` beside it: files this command writes as a pair), and with them
    ``<stem>_color.png`` (``--color``) unless that is itself an image's mask (a ``.json`` beside it,
    or a stem of the images here)."""
    from clients.segments.mask_files import color_name

    removed = 0
    for stem in stems:
        png, sidecar = out / stem.with_name(stem.name + ".png"), out / stem.with_name(stem.name + ".json")
        if png.is_file() and sidecar.is_file():
            colored = out / stem.with_name(color_name(stem.name))
            png.unlink()
            sidecar.unlink()
            removed += 1
            theirs = colored.with_suffix(".json").exists() or stem.with_name(colored.stem) in every_stem
            if colored.is_file() and not theirs:
                colored.unlink()
    return removed
