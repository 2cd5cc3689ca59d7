"""The review queue: which segments a reviewer is shown next, the most doubtful first.

The queue ranks a snapshot of the group's segments (``review.doubt``), refreshed every few seconds,
and asks the store to lease the first free ones to the reviewer (``SegmentStore.lease_segments``):
the store, not the snapshot, decides which are still undecided and whose they are, so several
reviewers (and several processes) share one queue without ever being shown the same segment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from review.doubt import Doubt, Order, rank
from store.records import Status, StoredSegment
from store.segment_store import SegmentStore

MAX_PAGE = 200  # segments one request may lease
MAX_HELD = 1000  # segments one request may renew


@dataclass(frozen=True)
class QueueFilter:
    """What the reviewer chose to review: the model, one class, the statuses and a score range."""

    model: str | None = None
    class_name: str | None = None
    statuses: tuple[Status, ...] = (Status.UNCHECKED,)
    min_score: float | None = None
    max_score: float | None = None

    def admits(self, segment: StoredSegment) -> bool:
        return (
            (self.model is None or segment.model == self.model)
            and (self.class_name is None or segment.class_name == self.class_name)
            and (self.min_score is None or segment.score >= self.min_score)
            and (self.max_score is None or segment.score <= self.max_score)
        )


@dataclass(frozen=True)
class _Snapshot:
    """The group's segments at one moment, ranked, with what the page looks up in them."""

    segments: dict[int, StoredSegment]
    ranked: list[Doubt]
    doubts: dict[int, Doubt]
    by_image: dict[int, tuple[int, ...]]
    models: list[str]
    classes: list[str]

    @classmethod
    def of(cls, segments: Sequence[StoredSegment], ranked: list[Doubt]) -> _Snapshot:
        by_image: dict[int, list[int]] = {}
        for s in segments:
            by_image.setdefault(s.image_id, []).append(s.id)
        return cls(
            {s.id: s for s in segments},
            ranked,
            {d.segment_id: d for d in ranked},
            {i: tuple(sorted(ids)) for i, ids in by_image.items()},
            sorted({s.model for s in segments}),
            sorted({s.class_name for s in segments}),
        )


@dataclass(frozen=True)
class QueueItem:
    segment: StoredSegment
    doubt: Doubt


class ReviewQueue:
    """The group's segments in review order, for every reviewer of one page server."""

    def __init__(
        self,
        store: SegmentStore,
        group: str,
        order: Order = Order.UNCERTAINTY,
        threshold: float = 0.5,
        margins: Mapping[int, tuple[float, float, str]] | None = None,
        lease_s: float = 300.0,
        refresh_s: float = 15.0,
    ):
        self.store = store
        self.group = group
        self.order = order
        self.threshold = threshold
        self.margins = dict(margins or {})
        self.lease_s = lease_s
        self.refresh_s = refresh_s
        self._lock = threading.Lock()  # guards the snapshot's fields
        self._building = threading.Lock()  # one rebuild at a time
        self._taken_at = 0.0
        self._build_s = 0.0
        self._snap: _Snapshot | None = None

    # --- the snapshot ---------------------------------------------------------------------------

    def _snapshot(self) -> _Snapshot:
        """The ranked snapshot. An old one is rebuilt by one request while the others keep using
        it; it is rebuilt every ``refresh_s`` seconds, or five times as long as a rebuild takes
        (a large group is not read again and again)."""
        with self._lock:
            snap, age = self._snap, time.monotonic() - self._taken_at
        if snap is not None and age < max(self.refresh_s, 5 * self._build_s):
            return snap
        if snap is not None and not self._building.acquire(blocking=False):
            return snap  # another request is rebuilding it
        if snap is None:
            self._building.acquire()
        try:
            with self._lock:
                if self._snap is not None and self._snap is not snap:
                    return self._snap  # built while this request waited
            started = time.monotonic()
            segments = self.store.segments(group=self.group)
            ranked = rank(segments, self.order, self.threshold, self.margins)
            fresh = _Snapshot.of(segments, ranked)
            with self._lock:
                self._snap, self._taken_at = fresh, time.monotonic()
                self._build_s = self._taken_at - started
            return fresh
        finally:
            self._building.release()

    def refresh(self) -> None:
        """Take a new snapshot at the next request (after segments were added or changed)."""
        with self._lock:
            self._taken_at = float("-inf")

    def facets(self) -> dict[str, list[str]]:
        """The models and classes the group's segments have (what the filters offer)."""
        snap = self._snapshot()
        return {"models": snap.models, "classes": snap.classes}

    def doubt(self, segment_id: int) -> Doubt | None:
        return self._snapshot().doubts.get(segment_id)

    def image_segment_ids(self, image_id: int) -> list[int]:
        return list(self._snapshot().by_image.get(image_id, ()))

    # --- leasing --------------------------------------------------------------------------------

    def next_items(
        self, reviewer: str, wanted: QueueFilter, count: int, exclude: Collection[int] = ()
    ) -> list[QueueItem]:
        """Lease to ``reviewer`` the next ``count`` segments ``wanted`` admits, in queue order,
        leaving out ``exclude`` (the ones the reviewer's page holds already, and those skipped)."""
        snap = self._snapshot()
        skip = set(exclude)
        # statuses are the store's, read as it leases: the snapshot's may be older than a decision
        candidates = [
            d.segment_id
            for d in snap.ranked
            if d.segment_id not in skip and wanted.admits(snap.segments[d.segment_id])
        ]
        count = max(0, min(count, MAX_PAGE))
        leased = self.store.lease_segments(candidates, reviewer, count, self.lease_s, wanted.statuses)
        current = {s.id: s for s in self.store.segments_by_id(leased)}
        return [QueueItem(current[i], snap.doubts[i]) for i in leased if i in current]

    def current(self, ids: Sequence[int]) -> list[QueueItem]:
        """The segments ``ids`` as the store holds them now (badlisted images' left out)."""
        doubts = self._snapshot().doubts
        return [QueueItem(s, doubts[s.id]) for s in self.store.segments_by_id(ids) if s.id in doubts]

    def renew(self, reviewer: str, ids: Sequence[int]) -> list[int]:
        """Renew ``reviewer``'s leases on the segments their page holds (whatever their status)."""
        ids = list(ids)[:MAX_HELD]
        return self.store.lease_segments(ids, reviewer, len(ids), self.lease_s, tuple(Status))
