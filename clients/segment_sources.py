"""``infer --segments``: which stored segments a classifier is asked about, per image.

The approved segments of one instance model (``--segment-model``, or the store's only one), of
the images the run covers, looked up by the name the store knows each image by (as
``segments build`` stored it). Badlisted images are left out, as ``segments build`` leaves them.
The store is only read: a missing SQLite file is an error, not a new store.
"""

from __future__ import annotations

from collections import defaultdict

from clients.image_sources import ImageItem
from clients.infer_run import ImageSegments, SegmentClassificationWriter
from clients.segments_build import store_name
from store.layout import DataLayout, database_url
from store.records import Status
from store.segment_store import SegmentStore, name_keys


def stored_segments(
    items: list[ImageItem], layout: DataLayout, db: str | None, segment_model: str | None, overrides: dict
) -> tuple[list[ImageItem], SegmentClassificationWriter, int]:
    """(the items to send, the writer that classifies their segments, how many were badlisted)."""
    with SegmentStore.open(database_url(db, layout), create=False) as store:
        model = store.segment_model(segment_model)
        badlist = store.badlist_names()
        pictures = {image.path: image.sha256 for image in store.images()}
        by_image = defaultdict(list)
        for segment in store.segments(model=model, statuses=[Status.APPROVED]):
            by_image[segment.image].append(segment)
    kept, segments = [], {}
    for item in items:
        name = store_name(item, layout)
        if name_keys(name) & badlist:
            continue
        kept.append(item)
        if name in pictures:
            segments[item.path] = ImageSegments(pictures[name], tuple(by_image.get(name, ())))
    return kept, SegmentClassificationWriter(overrides, segments, model), len(items) - len(kept)
