"""Annotators' work imported back: the ledger of imported files, and one image's decisions applied
in one transaction (``store.records.ShapeDecision``). Corrections and additions are new segments
(``origin`` import, with the file, its sha256 and the CVAT task and job); a corrected segment stays,
rejected, and its correction names it in ``replaces_id``. Every status written goes through
``store.review.record_decision``, so each has its audit row.

The image's row is locked first, as ``store.segment_writes`` does, so an import and a ``segments
build`` on the same image (PostgreSQL, several processes) take turns; a decision about a segment
changed since it was read (another revision, or gone) refuses the whole image with StaleSegments.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.dialect import dialect_insert, utc_now
from store.errors import StaleSegments
from store.records import (
    ImportLedger,
    ImportOutcome,
    ImportSource,
    NewSegment,
    Origin,
    ShapeDecision,
    Status,
)
from store.review import record_birth, record_decision
from store.schema import AnnotationImport, Image, ImportedImage, Segment
from store.segment_writes import segment_row


def _ledger(session: Session, row: AnnotationImport) -> ImportLedger:
    done = frozenset(session.scalars(select(ImportedImage.image_id).where(ImportedImage.import_id == row.id)))
    return ImportLedger(
        id=row.id,
        file_name=row.file_name,
        started_at=row.started_at,
        finished_at=row.finished_at,
        done_images=done,
        summary=json.loads(row.summary) if row.summary else {},
    )


def begin_import(session: Session, source: ImportSource) -> ImportLedger:
    """The ledger of ``source`` (known by its sha256): a new one, or the one an earlier run of the
    same file left (finished, or killed part way)."""
    session.execute(
        dialect_insert(session, AnnotationImport)
        .values(
            sha256=source.sha256,
            file_name=source.file_name,
            format=source.fmt,
            reviewer=source.reviewer,
            cvat_task=source.cvat_task,
            cvat_job=source.cvat_job,
            started_at=utc_now(),
        )
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    row = session.scalars(select(AnnotationImport).where(AnnotationImport.sha256 == source.sha256)).one()
    return _ledger(session, row)


def finish_import(session: Session, import_id: int, skipped_images: dict[str, int]) -> dict[str, int]:
    """Mark the import done; its summary adds up every image applied, by this run or a killed one
    before it, and ``skipped_images`` (the shapes of images this run skipped whole). Returns it."""
    row = session.get(AnnotationImport, import_id)
    total = Counter(skipped_images)
    for summary in session.scalars(select(ImportedImage.summary).where(ImportedImage.import_id == import_id)):
        total.update(json.loads(summary or "{}"))
    counts = {o.value: total.get(o.value, 0) for o in ImportOutcome}
    if row is not None and row.finished_at is None:
        row.finished_at = utc_now()
        row.summary = json.dumps(counts, sort_keys=True)
    return counts


def _new_segment_row(
    image: Image,
    like: Segment | None,
    model: str,
    new: NewSegment,
    source: ImportSource,
    replaces: int | None,
) -> dict:
    """The annotator's segment: approved, in the segment set of the one it replaces (``like``)."""
    model, version = (like.model, like.model_version) if like is not None else (model, "")
    return {
        **segment_row(image.id, image, model, version, new, Status.APPROVED, utc_now()),
        "reviewer": source.reviewer,
        "origin": Origin.IMPORT.value,
        "author": source.reviewer,
        "source_file": source.file_name,
        "source_sha256": source.sha256,
        "cvat_task": source.cvat_task,
        "cvat_job": source.cvat_job,
        "replaces_id": replaces,
    }


class _Applier:
    """One image's decisions, applied in the caller's transaction."""

    def __init__(self, session: Session, image: Image, model: str, source: ImportSource, import_id: int):
        self.session, self.image, self.model, self.source, self.import_id = (
            session,
            image,
            model,
            source,
            import_id,
        )
        self.via = f"import {source.fmt} {source.file_name}"

    def decide(self, segment: Segment, status: Status, reason: str) -> None:
        if segment.status != status.value:
            record_decision(
                self.session, segment, status, self.source.reviewer, self.via, reason, self.import_id
            )

    def add(self, new: NewSegment, like: Segment | None, reason: str) -> tuple[Segment, bool]:
        """The annotator's segment, approved, and whether it is new: one identical to a stored one
        (same model, class and mask) is that one, approved."""
        row = _new_segment_row(self.image, like, self.model, new, self.source, like.id if like else None)
        inserted = self.session.execute(
            dialect_insert(self.session, Segment)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["image_id", "model", "fingerprint"])
            .returning(Segment.id)
        ).scalar_one_or_none()
        segment = self.session.scalars(
            select(Segment)
            .where(
                Segment.image_id == self.image.id,
                Segment.model == row["model"],
                Segment.fingerprint == row["fingerprint"],
            )
            .with_for_update()
        ).one()
        if inserted is not None:
            record_birth(
                self.session,
                segment.id,
                Status.APPROVED,
                self.source.reviewer,
                self.via,
                reason,
                self.import_id,
            )
        else:
            self.decide(segment, Status.APPROVED, reason)
        return segment, inserted is not None

    def apply(self, decision: ShapeDecision, segment: Segment | None) -> ImportOutcome:
        """Carry ``decision`` out; returns what it turned out to be (an addition identical to a
        stored segment is that segment, unchanged)."""
        name = self.source.file_name
        outcome = decision.outcome
        if outcome is ImportOutcome.UNCHANGED and segment is not None:
            self.decide(segment, Status.APPROVED, f"unchanged in {name}")
        elif outcome is ImportOutcome.REJECTED and segment is not None:
            self.decide(segment, Status.REJECTED, f"deleted by the annotator ({name})")
        elif outcome in (ImportOutcome.EDITED, ImportOutcome.RELABELLED) and decision.new is not None:
            correction, _ = self.add(decision.new, segment, f"{outcome.value} in {name}")
            if segment is not None and correction.id != segment.id:
                self.decide(
                    segment, Status.REJECTED, f"{outcome.value} in {name}: replaced by #{correction.id}"
                )
        elif outcome is ImportOutcome.ADDED and decision.new is not None:
            _, new = self.add(decision.new, None, f"added in {name}")
            return outcome if new else ImportOutcome.UNCHANGED
        return outcome


def apply_image_decisions(
    session: Session,
    import_id: int,
    source: ImportSource,
    image_id: int,
    image_sha256: str,
    model: str,
    decisions: Sequence[ShapeDecision],
) -> dict[str, int]:
    """Apply one image's decisions (read at the picture ``image_sha256``) and record the image as
    done for this import. Returns the outcome counts applied, every outcome named (empty when a
    run before had done it). StaleSegments when the picture or a decided segment changed since
    they were read."""
    image = session.scalars(select(Image).where(Image.id == image_id).with_for_update()).one_or_none()
    if image is None or image.sha256 != image_sha256:
        raise StaleSegments(f"image {image_id} changed since it was read")
    done = session.get(ImportedImage, (import_id, image_id))
    if done is not None:
        return {}
    ids = sorted({d.segment_id for d in decisions if d.segment_id is not None})
    locked = select(Segment).where(Segment.id.in_(ids)).order_by(Segment.id).with_for_update()
    rows = {s.id: s for s in session.scalars(locked)} if ids else {}
    for decision in decisions:
        if decision.segment_id is None:
            continue
        row = rows.get(decision.segment_id)
        if row is None or row.image_id != image_id or row.revision != decision.revision:
            raise StaleSegments(f"segment {decision.segment_id} changed since it was read")
    applier = _Applier(session, image, model, source, import_id)
    counts = dict.fromkeys((o.value for o in ImportOutcome), 0)
    for decision in decisions:
        if decision.outcome is ImportOutcome.SKIPPED:
            counts[ImportOutcome.SKIPPED.value] += 1
        else:
            segment = rows.get(decision.segment_id) if decision.segment_id else None
            counts[applier.apply(decision, segment).value] += 1
    session.add(ImportedImage(import_id=import_id, image_id=image_id, summary=json.dumps(counts)))
    session.flush()
    return counts
