"""Which stored images and segments an export or a mask build covers: a group's (or the whole
store's), badlisted images left out, of one model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from clients.segments.store_cli import shown
from clients.triton.client import ClientError
from clients.triton.image_sources import all_badlisted_error
from store.records import Status, StoredImage, StoredSegment

if TYPE_CHECKING:
    from store.segment_store import SegmentStore


def chosen_segments(
    store: SegmentStore, group: str | None, model: str | None, statuses: Iterable[str]
) -> list[StoredSegment]:
    """The segments of ``statuses``; refused where they come from several models and none is named."""
    found = store.segments(group=group, model=model, statuses=[Status(s) for s in statuses])
    models = sorted({s.model for s in found})
    if model is None and len(models) > 1:
        raise ClientError(
            f"the segments come from {len(models)} models ({', '.join(map(shown, models))}): "
            "pick one with --model"
        )
    return found


def chosen_images(store: SegmentStore, group: str | None) -> list[StoredImage]:
    """The images not badlisted; refused where there are none (saying why)."""
    images = store.images(group=group)
    if not images:
        where = f"group {group!r}" if group else "the store"
        if every := store.images(group=group, include_badlisted=True):
            raise all_badlisted_error(where, len(every), "nothing to export")
        known = ", ".join(map(shown, store.group_names())) or "none"
        raise ClientError(
            f"{where} has no images in {store.url} (groups there: {known}); run `segments build` first"
        )
    return images
