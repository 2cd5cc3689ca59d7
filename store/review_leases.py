"""Leases of the review page: a segment shown to one reviewer is theirs for ``lease_s`` seconds, so
that several reviewers at once are never shown the same segment.

Leasing is race-free on both databases without holding locks across requests: each lease is one
``INSERT … ON CONFLICT DO UPDATE … WHERE`` that takes a row only when nobody holds it, its lease
has run out, or the reviewer already holds it; what the reviewer won is then read back. Two
reviewers asking at the same moment each get the segments their own statement took. Times are the
database's clock on PostgreSQL (reviewers on several machines share it), UTC here on SQLite.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from store.dialect import dialect_insert, in_chunks, is_postgresql, utc_now
from store.records import Status
from store.schema import ReviewLease, Segment


def _now(session: Session) -> datetime:
    return session.scalar(select(func.now())) if is_postgresql(session) else utc_now()


def lease_segments(
    session: Session,
    candidates: Sequence[int],
    reviewer: str,
    count: int,
    lease_s: float,
    statuses: Collection[Status] = (Status.UNCHECKED,),
) -> list[int]:
    """Lease to ``reviewer`` the first ``count`` of ``candidates`` (segment ids, in the order they
    should be shown) that still have one of ``statuses`` and that no other reviewer holds; those
    ``reviewer`` held already are renewed. Returns the ids leased, in ``candidates``' order."""
    now = _now(session)
    until = now + timedelta(seconds=lease_s)
    wanted = [Status(s).value for s in statuses]
    won: list[int] = []
    table = ReviewLease.__table__
    for chunk in in_chunks(list(dict.fromkeys(candidates))):
        if len(won) >= count:
            break
        free = set(
            session.scalars(
                select(Segment.id)
                .outerjoin(ReviewLease, ReviewLease.segment_id == Segment.id)
                .where(
                    Segment.id.in_(chunk),
                    Segment.status.in_(wanted),
                    ReviewLease.segment_id.is_(None)
                    | (ReviewLease.lease_until < now)
                    | (ReviewLease.reviewer == reviewer),
                )
            )
        )
        open_ids = [i for i in chunk if i in free]
        # another reviewer's transaction may take some of them first: then try the next free ones
        while open_ids and len(won) < count:
            picked, open_ids = open_ids[: count - len(won)], open_ids[count - len(won) :]
            insert = dialect_insert(session, ReviewLease).values(
                # in id order, as every lease statement locks rows: two of them never deadlock
                [{"segment_id": i, "reviewer": reviewer, "lease_until": until} for i in sorted(picked)]
            )
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=[table.c.segment_id],
                    set_={"reviewer": insert.excluded.reviewer, "lease_until": insert.excluded.lease_until},
                    where=(table.c.lease_until < now) | (table.c.reviewer == reviewer),
                )
            )
            mine = set(
                session.scalars(
                    select(ReviewLease.segment_id).where(
                        ReviewLease.segment_id.in_(picked),
                        ReviewLease.reviewer == reviewer,
                        ReviewLease.lease_until == until,
                    )
                )
            )
            won += [i for i in picked if i in mine]
    session.flush()
    return won


def release_leases(session: Session, segment_ids: Sequence[int], reviewer: str) -> int:
    """End ``reviewer``'s leases on these segments (a skipped segment goes back to the others)."""
    released = 0
    for chunk in in_chunks(sorted(set(segment_ids))):
        result = session.execute(
            delete(ReviewLease).where(ReviewLease.segment_id.in_(chunk), ReviewLease.reviewer == reviewer)
        )
        released += result.rowcount or 0
    return released


def lease_holders(session: Session, segment_ids: Sequence[int]) -> dict[int, str]:
    """segment id → the reviewer whose lease on it has not run out, for the leased ones among these."""
    now = _now(session)
    held: dict[int, str] = {}
    for chunk in in_chunks(sorted(set(segment_ids))):
        rows = session.execute(
            select(ReviewLease.segment_id, ReviewLease.reviewer).where(
                ReviewLease.segment_id.in_(chunk), ReviewLease.lease_until >= now
            )
        )
        held.update((segment_id, reviewer) for segment_id, reviewer in rows)
    return held
