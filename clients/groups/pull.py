"""``groups pull``: bring the images of a manifest into DATA/ and list them as a group.

For each manifest row it writes ``DATA/pictures/<id><ext>`` and ``DATA/meta/<id>.json`` (the
row's fields plus what was checked: sha256, size, width, height; the url, without user name and
password; and ``groups``, the groups that list the picture), then ``DATA/datasets/<group>.csv``
(``image,label``, one row per image present, in manifest order) and, when some failed,
``DATA/meta/groups/<group>.failures.json``. Every file is written atomically, the picture before
its meta: a meta file means its picture is complete.

Resumable: a picture is kept, without a request, when its meta exists and its bytes have the
manifest's sha256 (or, when the manifest gives none, the sha256 its meta recorded, for the same
URL). A failed fetch leaves what was there before untouched.

Several pulls may run at once on one data root (other groups, or the same one): each id's meta is
read, decided on and written under a lock of that id (one of 256 files ``DATA/meta/.locks/pull-*.lock``
that the ids share; flock: the kernel drops it when its holder dies), so a picture keeps every group
that lists it.

Rows of a manifest fetched over http(s) that name a local file fail (one line each, in the
failures list) unless ``allow_local_files``: see :mod:`clients.groups.manifest`.

Ids are one namespace across groups (DATA/pictures and DATA/meta are flat). A picture whose meta
names other groups is theirs too: a row with the same id and the same content (the manifest's
sha256 equals the recorded one or, without one, the URL is the same) only adds this group to the
meta, whose other fields stay those of the group that brought it; a row with other content fails,
naming the groups, unless ``replace`` (--replace), which fetches it over theirs and leaves the
picture to this group alone (their CSVs keep naming the file until they are pulled again). A row
whose sha256 is not the recorded one is fetched before it fails: when its bytes are the picture
after all, it fails saying the manifest's sha256 is wrong (with the file's), not that the picture
differs. A meta written before groups were recorded names none: it is this group's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from clients.groups.download import Fetcher, FetchError
from clients.groups.manifest import Manifest, ManifestRow
from clients.groups.pull_row import DOWNLOADED, pull_one
from segcontract.errors import SegstackError
from segcontract.files import remove_leftover_temps, write_atomic, write_json_atomic
from store.layout import DataLayout


class PullError(SegstackError):
    """The run cannot go on (e.g. DATA/ cannot be written); the message says what."""


@dataclass
class PullSummary:
    dataset: Path  # the group's CSV
    downloaded: int = 0
    present: int = 0  # already there and intact: no request made
    listed: int = 0  # rows in the CSV
    excluded: int = 0  # present, but left out of the CSV by ``exclude``
    failed: dict[str, str] = field(default_factory=dict)  # id → reason
    failures_file: Path | None = None


def dataset_path(layout: DataLayout, group: str) -> Path:
    return layout.datasets / f"{group}.csv"


def failures_path(layout: DataLayout, group: str) -> Path:
    # in a folder of its own: a file DATA/meta/<group>.failures.json could be an image's meta
    return layout.meta / "groups" / f"{group}.failures.json"


LOCAL_REFUSED = (
    "a local file named by a manifest fetched over HTTP is not read "
    "(pass --allow-local-files if you trust the manifest, or serve the image over HTTP)"
)


def _write_dataset(path: Path, rows: list[tuple[str, str | None]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "label"])
    writer.writerows((image, label or "") for image, label in rows)
    write_atomic(path, buffer.getvalue().encode())


def pull_group(
    group: str,
    manifest: Manifest,
    layout: DataLayout,
    fetcher: Fetcher,
    *,
    concurrency: int = 8,
    replace: bool = False,
    allow_local_files: bool = False,
    exclude: Callable[[str], bool] | None = None,
    on_progress: Callable[[int], None] = lambda n: None,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
) -> PullSummary:
    """Fetch what is missing or changed, with ``concurrency`` threads, and write the group's CSV.

    ``exclude(picture)`` (the picture's path relative to DATA/pictures) True leaves an image out
    of the CSV: it is still fetched. Per-image failures go to ``on_failure(id, reason)`` and the
    rest go on. Ctrl-C (KeyboardInterrupt) cancels the queued and running work and is re-raised;
    the CSV is written only by a run that went through the whole manifest. ``replace`` takes over
    the pictures of other groups that have the same id and other content (else those rows fail).
    A remote manifest's rows naming local files fail unless ``allow_local_files``.
    """
    summary = PullSummary(dataset_path(layout, group))
    for folder in (layout.pictures, layout.meta):
        remove_leftover_temps(folder)
    refused = set()
    if manifest.remote and not allow_local_files:
        refused = {row.id for row in manifest.local_rows()}
    for row in manifest.rows:  # before any request: the report names them first, in manifest order
        if row.id in refused:
            summary.failed[row.id] = LOCAL_REFUSED
            on_failure(row.id, f"{LOCAL_REFUSED} ({row.shown_url})")
            on_progress(1)
    rows = [(i, row) for i, row in enumerate(manifest.rows) if row.id not in refused]
    pull = partial(pull_one, layout=layout, fetcher=fetcher, group=group, replace=replace)
    try:
        pictures = _pull_rows(
            rows,
            pull,
            fetcher=fetcher,
            summary=summary,
            concurrency=concurrency,
            on_progress=on_progress,
            on_failure=on_failure,
        )
    except OSError as exc:  # writing: every image would fail the same way
        raise _unwritable(layout, exc) from None
    listed = []
    for i, row in enumerate(manifest.rows):
        if i not in pictures:
            continue
        if exclude is not None and exclude(pictures[i]):
            summary.excluded += 1
            continue
        listed.append((pictures[i], row.label))
    try:
        _write_dataset(summary.dataset, listed)
        summary.listed = len(listed)
        _write_failures(layout, group, manifest, summary)
    except OSError as exc:
        raise _unwritable(layout, exc) from None
    return summary


def _pull_rows(
    rows: list[tuple[int, ManifestRow]],
    pull: Callable[[ManifestRow], tuple[str, str]],
    *,
    fetcher: Fetcher,
    summary: PullSummary,
    concurrency: int,
    on_progress: Callable[[int], None],
    on_failure: Callable[[str, str], None],
) -> dict[int, str]:
    """Pull each row on ``concurrency`` threads, counting each outcome in ``summary``: the
    picture's name per row index (of the rows pulled). Ctrl-C, or an OSError (DATA/ cannot be
    written), cancels the rest and is raised."""
    pictures: dict[int, str] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="groups-pull")
    try:
        futures = {pool.submit(pull, row): (i, row) for i, row in rows}
        for future in as_completed(futures):
            i, row = futures[future]
            try:
                outcome, pictures[i] = future.result()
            except FetchError as exc:
                summary.failed[row.id] = str(exc)
                on_failure(row.id, f"{exc} ({row.shown_url})")
            else:
                if outcome == DOWNLOADED:
                    summary.downloaded += 1
                else:
                    summary.present += 1
            on_progress(1)
    except BaseException:
        fetcher.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return pictures


def _unwritable(layout: DataLayout, exc: OSError) -> PullError:
    return PullError(f"cannot write under {layout.root / 'DATA'}: {exc.strerror or exc}")


def _write_failures(layout: DataLayout, group: str, manifest: Manifest, summary: PullSummary) -> None:
    """A run's failures replace the previous run's list; a run without failures removes it."""
    path = failures_path(layout, group)
    if not summary.failed:
        path.unlink(missing_ok=True)
        return
    failed = {
        row.id: {"url": row.shown_url, "reason": summary.failed[row.id]}
        for row in manifest.rows  # in manifest order, not in the order they failed
        if row.id in summary.failed
    }
    write_json_atomic(path, {"group": group, "manifest": manifest.name, "failed": failed})
    summary.failures_file = path
