"""Saving what one model found in one image, in one transaction that locks the image's row first:
two processes segmenting the same group never store a segment twice, since the second sees the
first's segmentation and keeps it (or, replacing, finds the same fingerprints already there)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from store.badlist_entries import is_badlisted, take_badlist_lock
from store.dialect import dialect_insert, row_time, utc_now
from store.image_groups import add_image_to_groups
from store.records import ImageFacts, NewSegment, SaveOutcome, Status
from store.review import record_birth
from store.schema import Image, Segment, Segmentation, SegmentDecision


def write_segmentation(
    session: Session,
    image: ImageFacts,
    model: str,
    model_version: str,
    segments: Sequence[NewSegment],
    groups: Sequence[str] = (),
    status: Status = Status.UNCHECKED,
    replace: bool = False,
    reviewer: str = "",
) -> SaveOutcome:
    """Store what ``model`` found in ``image``. Without ``replace``, an image that model already
    segmented is left as it is; with it, its unchecked segments are replaced and reviewed ones
    kept (a new segment identical to a kept one is not added again)."""
    row = _locked_image(session, image)
    add_image_to_groups(session, row.id, groups)
    done = session.scalar(
        select(Segmentation).where(
            Segmentation.image_id == row.id,
            Segmentation.model == model,
            Segmentation.image_sha256 == image.sha256,
        )
    )
    if done is not None and not replace:
        return SaveOutcome(0, 0, 0, already_done=True)
    removed = 0
    if done is not None:
        removed = session.execute(
            delete(Segment).where(
                Segment.image_id == row.id,
                Segment.model == model,
                _undecided(),
            )
        ).rowcount
    added = _add_segments(session, row.id, image, model, model_version, segments, status, reviewer)
    _record_segmentation(session, row.id, image.sha256, model, model_version, len(segments))
    return SaveOutcome(added, len(segments) - added, removed, already_done=False)


def _locked_image(session: Session, facts: ImageFacts) -> Image:
    """The image's row, created if new, locked until the transaction ends (PostgreSQL: FOR
    UPDATE; SQLite: the transaction already holds the database's write lock)."""
    take_badlist_lock(session, exclusive=False)
    values = {
        "path": facts.path,
        "sha256": facts.sha256,
        "size": facts.size,
        "width": facts.width,
        "height": facts.height,
        "badlisted": is_badlisted(session, facts.path),
    }
    session.execute(
        dialect_insert(session, Image).values(**values).on_conflict_do_nothing(index_elements=["path"])
    )
    row = session.scalars(select(Image).where(Image.path == facts.path).with_for_update()).one()
    if row.sha256 != facts.sha256:  # the picture was replaced: what was found in the old one is stale
        _forget_old_picture(session, row.id, facts.sha256)
    if (row.sha256, row.size, row.width, row.height) != (
        facts.sha256,
        facts.size,
        facts.width,
        facts.height,
    ):
        row.sha256, row.size, row.width, row.height = facts.sha256, facts.size, facts.width, facts.height
    return row


def _forget_old_picture(session: Session, image_id: int, new_sha256: str) -> None:
    """Every model's record of having segmented the old picture goes, and so do its unchecked
    segments; reviewed ones stay (a review is never lost) with the old picture's sha256, so they
    are not read as the new picture's."""
    session.execute(delete(Segmentation).where(Segmentation.image_id == image_id))
    session.execute(
        delete(Segment).where(
            Segment.image_id == image_id,
            Segment.image_sha256 != new_sha256,
            _undecided(),
        )
    )


def _undecided():
    """Segments nobody decided anything of: unchecked, and never reviewed (one set back to
    unchecked keeps its history, so it is kept too)."""
    decided = exists().where(SegmentDecision.segment_id == Segment.id)
    return (Segment.status == Status.UNCHECKED.value) & ~decided


def _add_segments(
    session: Session,
    image_id: int,
    image: ImageFacts,
    model: str,
    model_version: str,
    segments: Sequence[NewSegment],
    status: Status,
    reviewer: str,
) -> int:
    """Insert the segments not already stored (by fingerprint); returns how many were new. Segments
    stored decided (``--mark-approved``) get their reviewer and audit row."""
    if not segments:
        return 0
    reviewed_at = utc_now() if status != Status.UNCHECKED else None
    rows = [segment_row(image_id, image, model, model_version, s, status, reviewed_at) for s in segments]
    if status != Status.UNCHECKED:
        rows = [{**r, "reviewer": reviewer or None} for r in rows]
    statement = (
        dialect_insert(session, Segment)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["image_id", "model", "fingerprint"])
        .returning(Segment.id)
    )
    ids = session.scalars(statement).all()
    if status != Status.UNCHECKED:
        for segment_id in ids:
            record_birth(session, segment_id, status, reviewer, f"segments build ({status.value})")
    return len(ids)


def segment_row(
    image_id: int,
    image: ImageFacts | Image,
    model: str,
    model_version: str,
    segment: NewSegment,
    status: Status,
    reviewed_at: datetime | None,
) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "model": model,
        "model_version": model_version,
        "class_id": segment.class_id,
        "class_name": segment.class_name,
        "score": float(segment.score),
        "x1": float(segment.bbox[0]),
        "y1": float(segment.bbox[1]),
        "x2": float(segment.bbox[2]),
        "y2": float(segment.bbox[3]),
        "rle_counts": segment.rle_counts,
        "mask_height": image.height,
        "mask_width": image.width,
        "image_sha256": image.sha256,
        "fingerprint": segment.fingerprint,
        "status": status.value,
        "reviewed_at": reviewed_at,
    }


def _record_segmentation(
    session: Session, image_id: int, sha256: str, model: str, model_version: str, found: int
) -> None:
    """That ``model`` segmented this picture, and when: what ``store.reads.read_done_paths`` reads."""
    now = row_time(session)
    statement = dialect_insert(session, Segmentation).values(
        image_id=image_id,
        model=model,
        model_version=model_version,
        image_sha256=sha256,
        segments=found,
        updated_at=now,
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["image_id", "model"],
            set_={
                "model_version": model_version,
                "image_sha256": sha256,
                "segments": found,
                "updated_at": now,
            },
        )
    )
