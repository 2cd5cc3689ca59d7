"""Which images to run on: a folder (``--source``) or a named group over the DATA layout
(``store.layout``: images under ``DATA/pictures``, groups under ``DATA/datasets``, inference
outputs under ``TEST/inference``; ``--data-root`` moves it)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from clients.triton.client import ClientError
from segcontract.image_files import IMAGE_SUFFIXES, image_paths
from store.badlist import picture_name, read_badlist
from store.errors import StoreError
from store.layout import DB_ENV, DataLayout, database_url, group_images

__all__ = [
    "DataLayout",
    "ImageItem",
    "all_badlisted_error",
    "empty_group_error",
    "images_in_folder",
    "images_in_group",
    "no_images_error",
    "output_names",
    "unbadlisted",
]


@dataclass(frozen=True)
class ImageItem:
    path: Path
    relative: Path  # how it is named in outputs


def images_in_folder(folder: Path, exclude: Path | None = None) -> list[ImageItem]:
    """Images below ``folder``, except those below ``exclude`` (see :func:`image_paths`)."""
    if not folder.is_dir():
        raise ClientError(f"{folder}: no such folder; --source takes a folder of images")
    return [ImageItem(p, p.relative_to(folder)) for p in image_paths(folder, exclude)]


def no_images_error(folder: Path) -> ClientError:
    """What to say when ``folder`` holds nothing seg-client reads (rather than "0 written")."""
    others = sum(1 for p in folder.rglob("*") if p.is_file())
    held = f"it holds {others} other files" if others else "it is empty"
    return ClientError(
        f"{folder}: no images in it or below it ({held}); seg-client reads "
        f"{', '.join(sorted(IMAGE_SUFFIXES))}"
    )


def all_badlisted_error(where: str, count: int, doing: str = "nothing to run on") -> ClientError:
    """``where`` (a group, a folder) holds images, but every one of them is on the badlist."""
    which = f"all {count} images are" if count > 1 else "its one image is"
    return ClientError(
        f"{where}: {which} badlisted (`seg-client segments badlist push` put them on the segment "
        f"store's badlist); {doing}"
    )


def empty_group_error(group: str, layout: DataLayout, db: str | None = None) -> ClientError:
    """What to say when ``group`` lists no images (rather than "0 written"). ``groups pull`` leaves
    badlisted pictures out of a group's CSV, so a group whose images are all badlisted lists none:
    then it says so, counting the pictures whose meta (DATA/meta) or store record names the group.
    The segment store (``db``, else $SEGSTACK_DB, else DATA/segments.db if it exists) is only read."""
    plain = ClientError(f"group {group!r} lists no images")
    if db is None and not os.environ.get(DB_ENV) and not layout.database.exists():
        return plain
    from store.segment_store import SegmentStore, name_keys

    try:
        with SegmentStore.open(database_url(db, layout), create=False) as store:
            badlist = store.badlist_names()
            stored = {i.path: i.badlisted for i in store.images(group=group, include_badlisted=True)}
    except StoreError:  # the store cannot tell: the group's own problem is still the one to report
        return plain
    members = {**{picture: False for picture in _pulled_pictures(group, layout)}, **stored}
    badlisted = sum(1 for name, flagged in members.items() if flagged or name_keys(name) & badlist)
    if badlisted and badlisted == len(members):
        return all_badlisted_error(f"group {group!r}", badlisted)
    if badlisted:
        return ClientError(
            f"group {group!r} lists no images ({badlisted} of its {len(members)} are badlisted)"
        )
    return plain


def _pulled_pictures(group: str, layout: DataLayout) -> list[str]:
    """The pictures (relative to DATA/pictures) whose ``groups pull`` meta names ``group``."""
    pictures = []
    for path in layout.meta.glob("*.json") if layout.meta.is_dir() else ():
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        groups = meta.get("groups") if isinstance(meta, dict) else None
        if isinstance(groups, list) and group in groups and isinstance(meta.get("picture"), str):
            pictures.append(meta["picture"])
    return pictures


def images_in_group(group: str, layout: DataLayout) -> list[ImageItem]:
    try:
        return [ImageItem(i.path, i.name) for i in group_images(group, layout)]
    except StoreError as exc:
        raise ClientError(str(exc)) from None


def unbadlisted(items: list[ImageItem], layout: DataLayout, db: str | None) -> tuple[list[ImageItem], int]:
    """``items`` without the pictures on the store's badlist now (``store.badlist``), and how many
    were left out. A store that cannot be read is a StoreError."""
    badlist = read_badlist(db, layout)
    if badlist is None:
        return items, 0
    kept = [item for item in items if not badlist.holds(picture_name(item.path, layout.pictures))]
    return kept, len(items) - len(kept)


def _safe(relative: Path) -> Path:
    """Keep the output inside --out: drop '..', roots and drive parts."""
    parts = [p for p in relative.parts if p not in ("..", ".", "/", "\\") and not p.endswith(":")]
    return Path(*parts) if parts else Path("image")


def output_names(items: list[ImageItem]) -> dict[ImageItem, Path]:
    """``<stem>`` per image (relative folders kept), ``<name>`` where two files share a stem, and a
    short hash of the full path where even that is not unique (e.g. absolute paths in a group)."""
    safe = {item: _safe(item.relative) for item in items}
    stems: dict[Path, int] = {}
    for rel in safe.values():
        stems[rel.with_suffix("")] = stems.get(rel.with_suffix(""), 0) + 1
    names = {
        item: rel.with_suffix("") if stems[rel.with_suffix("")] == 1 else rel for item, rel in safe.items()
    }
    counts: dict[Path, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    for item, name in names.items():
        if counts[name] > 1:
            digest = hashlib.sha1(str(item.path.resolve()).encode()).hexdigest()[:8]
            names[item] = name.with_name(f"{name.name}-{digest}")
    return names
