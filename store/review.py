"""The review: what annotators decided of stored segments. Every decision is written here,
whichever command, import or page records it: the segment's status, reviewer, time and reason,
a bumped revision, and a row in the audit table (``segment_decisions``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from store.dialect import in_chunks, utc_now
from store.name_matching import image_ids_matching
from store.names import wanted_names
from store.records import DecisionRecord, ReviewOutcome, SegmentSelection, Status
from store.schema import Group, Image, Segment, SegmentDecision, image_groups


def selection_query(selection: SegmentSelection) -> Select:
    """The filters of ``selection`` (model, group, classes, score range, statuses) on segments."""
    query = select(Segment)
    if selection.model is not None:
        query = query.where(Segment.model == selection.model)
    if selection.group is not None:
        in_group = (
            select(image_groups.c.image_id)
            .join(Group, Group.id == image_groups.c.group_id)
            .where(Group.name == selection.group)
        )
        query = query.where(Segment.image_id.in_(in_group))
    if selection.classes:
        ids = [int(c) for c in selection.classes if c.strip().isdigit()]
        names = [c for c in selection.classes if not c.strip().isdigit()]
        query = query.where(Segment.class_id.in_(ids) | Segment.class_name.in_(names))
    if selection.min_score is not None:
        query = query.where(Segment.score >= selection.min_score)
    if selection.max_score is not None:
        query = query.where(Segment.score <= selection.max_score)
    if selection.statuses:
        query = query.where(Segment.status.in_([Status(s).value for s in selection.statuses]))
    return query


def _selected(session: Session, selection: SegmentSelection) -> tuple[list[Segment], list[str], list[int]]:
    """The segments ``selection`` names, locked for the decision; and the image names and ids
    that name nothing stored."""
    base = selection_query(selection).order_by(Segment.id).with_for_update(of=Segment)
    found: dict[int, Segment] = {}
    unknown_names: list[str] = []
    unknown_ids: list[int] = []
    if selection.ids:
        ids = sorted(set(selection.ids))
        for chunk in in_chunks(ids):
            found.update((s.id, s) for s in session.scalars(base.where(Segment.id.in_(chunk))))
        existing = set()
        for chunk in in_chunks(ids):
            existing.update(session.scalars(select(Segment.id).where(Segment.id.in_(chunk))))
        unknown_ids = [i for i in ids if i not in existing]
    if selection.images:
        wanted = wanted_names(selection.images)
        image_ids, hit = image_ids_matching(session, wanted)
        unknown_names = sorted(wanted - hit)
        current = base.join(Image, (Image.id == Segment.image_id) & (Image.sha256 == Segment.image_sha256))
        for chunk in in_chunks(image_ids):
            found.update((s.id, s) for s in session.scalars(current.where(Segment.image_id.in_(chunk))))
    if not selection.ids and not selection.images:
        current = base.join(Image, (Image.id == Segment.image_id) & (Image.sha256 == Segment.image_sha256))
        found.update((s.id, s) for s in session.scalars(current))
    return [found[i] for i in sorted(found)], unknown_names, unknown_ids


def record_decision(
    session: Session,
    segment: Segment,
    status: Status,
    reviewer: str,
    via: str,
    reason: str | None = None,
    import_id: int | None = None,
) -> None:
    """Give ``segment`` (a loaded, locked row) ``status``, and write the audit row."""
    now = utc_now()
    _audit(session, segment.id, segment.status, status, reviewer, via, reason, import_id, now)
    segment.status = status.value
    segment.reviewer = reviewer
    segment.review_reason = reason
    segment.reviewed_at = now
    segment.updated_at = now
    segment.revision = (segment.revision or 1) + 1


def record_birth(
    session: Session,
    segment_id: int,
    status: Status,
    reviewer: str,
    via: str,
    reason: str | None = None,
    import_id: int | None = None,
) -> None:
    """The audit row of a segment stored already decided (an annotator's correction or addition, a
    build's ``--mark-approved``): from no status to ``status``."""
    _audit(session, segment_id, None, status, reviewer, via, reason, import_id, utc_now())


def _audit(
    session: Session,
    segment_id: int,
    before: str | None,
    after: Status,
    reviewer: str,
    via: str,
    reason: str | None,
    import_id: int | None,
    when: datetime,
) -> None:
    session.add(
        SegmentDecision(
            segment_id=segment_id,
            decided_at=when,
            reviewer=reviewer,
            from_status=before,
            to_status=after.value,
            reason=reason,
            via=via,
            import_id=import_id,
        )
    )


def decide(
    session: Session,
    selection: SegmentSelection,
    status: Status,
    reviewer: str,
    via: str,
    reason: str | None = None,
    expected: Mapping[int, int] | None = None,
) -> ReviewOutcome:
    """Give every selected segment ``status``. Segments that already have it are left as they are
    (no audit row); with ``expected`` (segment id → the revision the reviewer saw), a segment
    changed since, or one the reviewer did not see, is refused and listed in ``stale_ids``."""
    segments, unknown_names, unknown_ids = _selected(session, selection)
    changed = unchanged = 0
    stale: list[int] = sorted(set(expected) - {s.id for s in segments}) if expected is not None else []
    for segment in segments:
        if expected is not None and expected.get(segment.id) != segment.revision:
            stale.append(segment.id)
        elif segment.status == status.value:
            unchanged += 1
        else:
            record_decision(session, segment, status, reviewer, via, reason)
            changed += 1
    session.flush()
    return ReviewOutcome(changed, unchanged, unknown_names, unknown_ids, sorted(stale))


def decision_history(session: Session, segment_ids: Sequence[int]) -> list[DecisionRecord]:
    """The audit rows of these segments, oldest first."""
    rows: list[SegmentDecision] = []
    for chunk in in_chunks(sorted(set(segment_ids))):
        rows += session.scalars(select(SegmentDecision).where(SegmentDecision.segment_id.in_(chunk)))
    return [
        DecisionRecord(
            r.segment_id, r.decided_at, r.reviewer, r.from_status, r.to_status, r.reason, r.via, r.import_id
        )
        for r in sorted(rows, key=lambda r: (r.decided_at, r.id))
    ]
