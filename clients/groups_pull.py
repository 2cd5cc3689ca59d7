"""``groups pull``: bring the images of a manifest into DATA/ and list them as a group.

For each manifest row it writes ``DATA/pictures/<id><ext>`` and ``DATA/meta/<id>.json`` (the
row's fields plus what was checked: sha256, size, width, height), then ``DATA/datasets/<group>.csv``
(``image,label``, one row per image present, in manifest order) and, when some failed,
``DATA/meta/groups/<group>.failures.json``. Every file is written atomically, the picture before
its meta: a meta file means its picture is complete.

Resumable: a picture is kept, without a request, when its meta exists and its bytes have the
manifest's sha256 (or, when the manifest gives none, the sha256 its meta recorded, for the same
URL). A failed fetch leaves what was there before untouched.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients.group_download import Cancelled, Fetcher, FetchError, check_picture
from clients.manifest import Manifest, ManifestRow
from segcontract.files import remove_leftover_temps, write_atomic, write_json_atomic
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


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _meta_record(row: ManifestRow, picture: str, sha256: str, size: int, width: int, height: int) -> dict:
    return {
        **row.fields,
        "id": row.id,
        "sha256": sha256,
        "size": size,
        "width": width,
        "height": height,
        "url": row.resolved_url,
        "picture": picture,
    }


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


def _keep_present(row: ManifestRow, layout: DataLayout) -> str | None:
    """The picture's name if what is on disk is what the manifest asks for; None to fetch it."""
    meta_path = layout.meta / f"{row.id}.json"
    meta = _read_meta(meta_path)
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
        if _sha256_of(layout.pictures / name) != expected:
            return None
    except OSError:
        return None
    record = _meta_record(row, name, expected, meta["size"], meta["width"], meta["height"])
    if record != meta:  # the manifest's fields changed (a label...): the meta follows them
        write_json_atomic(meta_path, record)
    return name


def _pull_one(row: ManifestRow, layout: DataLayout, fetcher: Fetcher) -> tuple[str, str]:
    """(DOWNLOADED or PRESENT, picture name). Raises FetchError, Cancelled, or OSError (writing)."""
    kept = _keep_present(row, layout)
    if kept is not None:
        return PRESENT, kept
    fetched = fetcher.fetch(row.location, row.is_http)
    picture = check_picture(fetched.data, row.sha256, row.url_suffix, fetched.content_type)
    if fetcher.cancelled:
        raise Cancelled()
    name = f"{row.id}{picture.suffix}"
    meta_path = layout.meta / f"{row.id}.json"
    old = _read_meta(meta_path)
    old_name = _recorded_picture(row, old) if old is not None else None
    write_atomic(layout.pictures / name, picture.data)
    record = _meta_record(row, name, picture.sha256, len(picture.data), picture.width, picture.height)
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
    exclude: Callable[[str], bool] | None = None,
    on_progress: Callable[[int], None] = lambda n: None,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
) -> PullSummary:
    """Fetch what is missing or changed, with ``concurrency`` threads, and write the group's CSV.

    ``exclude(picture)`` (the picture's path relative to DATA/pictures) True leaves an image out
    of the CSV: it is still fetched. Per-image failures go to ``on_failure(id, reason)`` and the
    rest go on. Ctrl-C (KeyboardInterrupt) cancels the queued and running work and is re-raised;
    the CSV is written only by a run that went through the whole manifest.
    """
    summary = PullSummary(dataset_path(layout, group))
    for folder in (layout.pictures, layout.meta):
        remove_leftover_temps(folder)
    pictures: dict[int, str] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="groups-pull")
    try:
        futures = {pool.submit(_pull_one, row, layout, fetcher): i for i, row in enumerate(manifest.rows)}
        for future in as_completed(futures):
            row = manifest.rows[futures[future]]
            try:
                outcome, pictures[futures[future]] = future.result()
            except FetchError as exc:
                summary.failed[row.id] = str(exc)
                on_failure(row.id, f"{exc} ({row.url})")
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
        row.id: {"url": row.url, "reason": summary.failed[row.id]}
        for row in manifest.rows  # in manifest order, not in the order they failed
        if row.id in summary.failed
    }
    write_json_atomic(path, {"group": group, "manifest": manifest.name, "failed": failed})
    summary.failures_file = path
