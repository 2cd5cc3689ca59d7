"""One manifest row of ``groups pull``, decided and written under its id's lock: kept when what
is on disk is what the row asks for, else fetched, checked and written (the picture before its
meta), joining or refusing other groups' picture under the same id as ``clients.groups.pull``
describes."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.groups.download import Cancelled, Fetcher, FetchError, check_picture
from clients.groups.manifest import ManifestRow, redact_url
from segcontract.files import LOCK_POLL_S, file_sha256, locked, write_atomic, write_json_atomic
from segcontract.image_files import IMAGE_SUFFIXES
from store.layout import DataLayout

DOWNLOADED = "downloaded"
PRESENT = "present"


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


LOCK_STRIPES = 256  # ids share this many lock files: a bounded folder, never cleaned up under a waiter


def lock_path(layout: DataLayout, image_id: str) -> Path:
    stripe = int(hashlib.sha256(image_id.encode()).hexdigest(), 16) % LOCK_STRIPES
    return layout.meta / ".locks" / f"pull-{stripe:02x}.lock"


def pull_one(
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
