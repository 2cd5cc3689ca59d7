"""``infer --segments``: which stored segments a classifier is asked about, per image.

The approved segments of one instance model (``--segment-model``, or the store's only one), of
the images the run covers, looked up by the name the store knows each image by (as ``segments
build`` stored it), else by the picture's content (its sha256). Badlisted images are left out,
as ``segments build`` leaves them. The store is only read: a missing SQLite file is an error,
not a new store.
"""

from __future__ import annotations

from collections import defaultdict

from clients.inference.writers import ImageSegments, SegmentClassificationWriter
from clients.segments.build import store_name
from clients.triton.image_sources import ImageItem
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
        images = store.images()
        by_image = defaultdict(list)
        for segment in store.segments(model=model, statuses=[Status.APPROVED]):
            by_image[segment.image].append(segment)
    pictures = {
        image.path: ImageSegments(
            image.sha256, image.width, image.height, tuple(by_image.get(image.path, ()))
        )
        for image in images
    }
    by_sha256 = {}
    for image in images:  # a picture the store knows under another name (a copy, another root)
        by_sha256.setdefault(image.sha256, []).append(pictures[image.path])
    unique = {sha: found[0] for sha, found in by_sha256.items() if len(found) == 1}
    kept, by_path = [], {}
    for item in items:
        name = store_name(item, layout)
        if name_keys(name) & badlist:
            continue
        kept.append(item)
        if name in pictures:
            by_path[item.path] = pictures[name]
    writer = SegmentClassificationWriter(overrides, by_path, unique, model)
    return kept, writer, len(items) - len(kept)
