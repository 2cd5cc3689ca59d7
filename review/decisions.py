"""A reviewer's decisions from the page, recorded through the store's review API.

A decision names the revision of the segment the reviewer saw: one changed since (by another
reviewer, an import, a command) is refused with what it is now, never applied blindly; so is one
leased to another reviewer (a lease that ran out and was taken by someone else)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from store.records import SegmentSelection, Status, StoredSegment
from store.segment_store import SegmentStore

VIA = "seg-review"


@dataclass(frozen=True)
class Decision:
    segment_id: int
    revision: int  # the revision the reviewer saw
    status: Status


def _now_is(segment: StoredSegment) -> str:
    who = f" by {segment.reviewer}" if segment.reviewer else ""
    return f"it is {segment.status.value}{who} now"


def apply_decisions(
    store: SegmentStore,
    decisions: Sequence[Decision],
    reviewer: str,
    reason: str | None = None,
    group: str | None = None,
) -> list[dict[str, Any]]:
    """Record ``decisions`` as ``reviewer``'s; one result per decision: ``ok``, the segment's
    status and revision now, what it ``was`` (when applied), and the message when it was refused.
    Segments of badlisted images, and (with ``group``) of images outside that group, are refused
    before anything is written."""
    ids = [d.segment_id for d in decisions]
    shown = {s.id: s for s in store.segments_by_id(ids)}  # badlisted images' left out
    if group is not None:
        images = {s.image_id for s in shown.values()}
        outside = {i for i in images if (image := store.image(i)) is None or group not in image.groups}
        shown = {i: s for i, s in shown.items() if s.image_id not in outside}
    held = {i: who for i, who in store.lease_holders(ids).items() if who != reviewer}
    refused: dict[int, str] = {
        i: f"segment {i} is being reviewed by {who}: left to them" for i, who in held.items()
    }
    by_status: dict[Status, dict[int, int]] = defaultdict(dict)
    for d in decisions:
        if d.segment_id not in refused and d.segment_id in shown:
            by_status[d.status][d.segment_id] = d.revision
    stale: set[int] = set()
    for status, expected in by_status.items():
        outcome = store.review_segments(
            SegmentSelection(ids=tuple(expected)), status, reviewer, VIA, reason, expected=expected
        )
        stale.update(outcome.stale_ids)
    now = {s.id: s for s in store.segments_by_id(ids)}
    results = []
    for d in decisions:
        segment = now.get(d.segment_id)
        if segment is not None and d.segment_id not in shown:
            where = f"not in group {group}" if group is not None else "of a badlisted image"
            message = f"segment {d.segment_id} is {where}: not applied"
            results.append({"id": d.segment_id, "ok": False, "message": message})
            continue
        if segment is None:
            message = f"segment {d.segment_id} is no longer in the store (or its image was badlisted)"
            results.append({"id": d.segment_id, "ok": False, "message": message})
            continue
        result = {"id": segment.id, "status": segment.status.value, "revision": segment.revision}
        if d.segment_id in refused:
            results.append({**result, "ok": False, "message": refused[d.segment_id]})
        elif d.segment_id in stale:
            message = f"segment {segment.id} changed since you saw it ({_now_is(segment)}): not applied"
            results.append({**result, "ok": False, "message": message})
        else:
            results.append({**result, "ok": True, "was": shown[d.segment_id].status.value})
    return results


def counted(counts: dict[str, int], results: Sequence[dict[str, Any]]) -> dict[str, int]:
    """``counts`` after the applied ``results`` moved their segments from one status to another."""
    counts = dict(counts)
    for result in results:
        if result["ok"] and result["was"] != result["status"]:
            counts[result["was"]] -= 1
            counts[result["status"]] += 1
    counts["reviewed"] = counts["total"] - counts[Status.UNCHECKED.value]
    return counts


def group_counts(store: SegmentStore, group: str) -> dict[str, int]:
    """The group's segments by status, and how many are reviewed."""
    totals = dict.fromkeys((s.value for s in Status), 0)
    for _model, _class, status, n in store.status(group).counts:
        totals[status] = totals.get(status, 0) + n
    total = sum(totals.values())
    return {**totals, "total": total, "reviewed": total - totals[Status.UNCHECKED.value]}
