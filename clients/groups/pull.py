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
import hashlib
import io
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients.groups.download import Cancelled, Fetcher, FetchError, check_picture
from clients.groups.manifest import Manifest, ManifestRow, redact_url
from segcontract.files import (
    LOCK_POLL_S,
    file_sha256,
    locked,
    remove_leftover_temps,
    write_atomic,
    write_json_atomic,
)
from segcontract.image_files import IMAGE_SUFFIXES
from store.layout import DataLayout

DOWNLOADED = "downloaded"
PRESENT = "present"


class PullError(Exception):
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


def _meta_record(
    row: ManifestRow, picture: str, sha256: str, size: int, width: int, height: int, groups: list[str]
) -> dict:
    return {
        **row.fields,
        "id": row.id,
        "sha256": sha256,
        "size": size,
        "width": width,
        "height": height,
        "url": row.resolved_url,
        "picture": picture,
        "groups": groups,
    }


def _groups_of(meta: dict[str, Any] | None) -> list[str]:
    """The groups a meta says list its picture (none for one written before they were recorded)."""
    groups = meta.get("groups") if meta is not None else None
    return [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []


def _same_content(row: ManifestRow, meta: dict[str, Any]) -> bool:
    """Whether ``row`` asks for the picture ``meta`` records: the same sha256, or (the manifest
    giving none) the same URL."""
    if row.sha256 is not None:
        return meta.get("sha256") == row.sha256
    return meta.get("url") == row.resolved_url


@dataclass(frozen=True)
class _Claim:
    """What this group's row does with the id's meta."""

    groups: list[str]  # the meta's groups once the row is pulled
    shared: bool  # other groups list the same picture: keep their meta, add this group
    # another group's picture and the manifest's sha256 is not the one it records: the row's bytes
    # tell other content (the id is taken) from the same picture under a wrong checksum
    unsure: bool = False


def _claim(row: ManifestRow, meta: dict[str, Any] | None, group: str, replace: bool) -> _Claim:
    """Raises FetchError when the id is another group's picture with other content (and not
    ``replace``)."""
    groups = _groups_of(meta)
    others = [g for g in groups if g != group]
    if not others:
        return _Claim([group], shared=False)
    assert meta is not None
    if _same_content(row, meta):
        return _Claim(groups if group in groups else [*groups, group], shared=True)
    if replace:
        return _Claim([group], shared=False)
    if row.sha256 is not None and isinstance(meta.get("sha256"), str):
        return _Claim(groups, shared=False, unsure=True)  # decided once the bytes are in hand
    raise FetchError(_taken(row, meta, others))


def _not_taken_over(row: ManifestRow, meta: dict[str, Any], others: list[str], fetcher: Fetcher) -> None:
    """Always raises FetchError, for a row of an ``unsure`` claim: when the row's bytes are those of
    the other groups' picture, the manifest's sha256 is wrong (and --replace would not help);
    else the id is taken, as :func:`_taken` says (also when the bytes cannot be had)."""
    try:
        data = fetcher.fetch(row.location, row.is_http).data
    except FetchError:
        raise FetchError(_taken(row, meta, others)) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta["sha256"]:
        raise FetchError(_taken(row, meta, others))
    raise FetchError(
        f"{_held(row, meta, others)}, and this row's file is that picture byte for byte: the "
        f"manifest's sha256 is wrong (it gives {row.sha256}; the file's sha256 is {digest}); "
        "correct the row's sha256, or leave it out, and pull again"
    )


def _held(row: ManifestRow, meta: dict[str, Any], others: list[str]) -> str:
    """``id 'x' is already x.png of group g``: whose picture the row's id names."""
    name = meta.get("picture") if isinstance(meta.get("picture"), str) else f"{row.id}.*"
    whose = f"group {others[0]}" if len(others) == 1 else f"groups {', '.join(others)}"
    return f"id {row.id!r} is already {name} of {whose}"


def _taken(row: ManifestRow, meta: dict[str, Any], others: list[str], now: str = "") -> str:
    recorded = meta.get("url")
    source = f"from {redact_url(recorded)}" if isinstance(recorded, str) else "recorded"
    sha = meta.get("sha256")
    source += f", sha256 {sha[:16]}…" if isinstance(sha, str) else ""
    return (
        f"{_held(row, meta, others)} ({source}), and this row's picture{now} differs; "
        "give this row another id, or pass --replace to take the picture over"
    )


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _recorded_picture(row: ManifestRow, meta: dict[str, Any]) -> str | None:
    """The picture file the meta names, if it is one this row may own (``<id><image suffix>``)."""
    name = meta.get("picture")
    if not isinstance(name, str) or not name.startswith(row.id):
        return None
    return name if name[len(row.id) :].lower() in IMAGE_SUFFIXES else None


def _keep_present(
    row: ManifestRow, layout: DataLayout, meta: dict[str, Any] | None, claim: _Claim
) -> str | None:
    """The picture's name if what is on disk is what the manifest asks for; None to fetch it."""
    meta_path = layout.meta / f"{row.id}.json"
    if meta is None:
        return None
    name = _recorded_picture(row, meta)
    if name is None or not all(isinstance(meta.get(k), int) for k in ("size", "width", "height")):
        return None
    expected = row.sha256
    if expected is None:  # no checksum in the manifest: trust the recorded one for the same URL
        if meta.get("url") != row.resolved_url or not isinstance(meta.get("sha256"), str):
            return None
        expected = meta["sha256"]
    try:
        if file_sha256(layout.pictures / name) != expected:
            return None
    except OSError:
        return None
    if claim.shared:  # the other groups' meta stays; this group joins them
        record = {**meta, "groups": claim.groups}
    else:  # the manifest's fields changed (a label...): the meta follows them
        record = _meta_record(row, name, expected, meta["size"], meta["width"], meta["height"], claim.groups)
    if record != meta:
        write_json_atomic(meta_path, record)
    return name


LOCAL_REFUSED = (
    "a local file named by a manifest fetched over HTTP is not read "
    "(pass --allow-local-files if you trust the manifest, or serve the image over HTTP)"
)


LOCK_STRIPES = 256  # ids share this many lock files: a bounded folder, never cleaned up under a waiter


def lock_path(layout: DataLayout, image_id: str) -> Path:
    stripe = int(hashlib.sha256(image_id.encode()).hexdigest(), 16) % LOCK_STRIPES
    return layout.meta / ".locks" / f"pull-{stripe:02x}.lock"


def _pull_one(
    row: ManifestRow, layout: DataLayout, fetcher: Fetcher, group: str, replace: bool
) -> tuple[str, str]:
    """(DOWNLOADED or PRESENT, picture name), decided and written under the id's lock: another
    pull of the same id (another process, another group) waits for it. Raises FetchError,
    Cancelled, or OSError (writing)."""

    def waiting() -> None:
        if fetcher.cancelled:
            raise Cancelled()
        time.sleep(LOCK_POLL_S)

    with locked(lock_path(layout, row.id), waiting):
        return _pull_locked(row, layout, fetcher, group, replace)


def _pull_locked(
    row: ManifestRow, layout: DataLayout, fetcher: Fetcher, group: str, replace: bool
) -> tuple[str, str]:
    meta_path = layout.meta / f"{row.id}.json"
    old = _read_meta(meta_path)
    claim = _claim(row, old, group, replace)
    if claim.unsure:
        assert old is not None
        _not_taken_over(row, old, [g for g in claim.groups if g != group], fetcher)
    kept = _keep_present(row, layout, old, claim)
    if kept is not None:
        return PRESENT, kept
    fetched = fetcher.fetch(row.location, row.is_http)
    max_pixels = fetcher.settings.max_pixels
    picture = check_picture(fetched.data, row.sha256, row.url_suffix, fetched.content_type, max_pixels)
    if fetcher.cancelled:
        raise Cancelled()
    old_name = _recorded_picture(row, old) if old is not None else None
    if claim.shared and old is not None and picture.sha256 != old.get("sha256"):
        # the same URL now serves other bytes than the other groups have
        if not replace:
            others = [g for g in claim.groups if g != group]
            raise FetchError(_taken(row, old, others, now=" (as fetched now)"))
        claim = _Claim([group], shared=False)
    if claim.shared and old is not None:
        name = old_name or f"{row.id}{picture.suffix}"  # the name their CSVs list
        facts = {"sha256": picture.sha256, "size": len(picture.data), "width": picture.width}
        record = {**old, **facts, "height": picture.height, "picture": name, "groups": claim.groups}
    else:
        name = f"{row.id}{picture.suffix}"
        size = len(picture.data)
        record = _meta_record(row, name, picture.sha256, size, picture.width, picture.height, claim.groups)
    write_atomic(layout.pictures / name, picture.data)
    write_json_atomic(meta_path, record)
    if old_name is not None and old_name != name:  # e.g. the format changed: drop the old file
        (layout.pictures / old_name).unlink(missing_ok=True)
    return DOWNLOADED, name


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
    pictures: dict[int, str] = {}
    refused = set()
    if manifest.remote and not allow_local_files:
        refused = {row.id for row in manifest.local_rows()}
    for row in manifest.rows:  # before any request: the report names them first, in manifest order
        if row.id in refused:
            summary.failed[row.id] = LOCAL_REFUSED
            on_failure(row.id, f"{LOCAL_REFUSED} ({row.shown_url})")
            on_progress(1)
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="groups-pull")
    try:
        futures = {
            pool.submit(_pull_one, row, layout, fetcher, group, replace): i
            for i, row in enumerate(manifest.rows)
            if row.id not in refused
        }
        for future in as_completed(futures):
            row = manifest.rows[futures[future]]
            try:
                outcome, pictures[futures[future]] = future.result()
            except FetchError as exc:
                summary.failed[row.id] = str(exc)
                on_failure(row.id, f"{exc} ({row.shown_url})")
            except OSError as exc:  # every image would fail the same way
                raise PullError(f"cannot write under {layout.root / 'DATA'}: {exc.strerror or exc}") from None
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
        raise PullError(f"cannot write under {layout.root / 'DATA'}: {exc.strerror or exc}") from None
    return summary


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
