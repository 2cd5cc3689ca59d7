"""The segment store's tables (SQLAlchemy 2 declarative models).

Changing a table means a new Alembic revision in ``store/migrations/versions`` that keeps every
row (add columns with defaults, copy before dropping): stores are upgraded when opened.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from store.records import Origin, Status

STATUSES = tuple(s.value for s in Status)
ORIGINS = tuple(o.value for o in Origin)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


image_groups = Table(
    "image_groups",
    Base.metadata,
    Column("image_id", ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class Group(Base):
    """A named group of images (``DATA/datasets/<name>``), as segments build met it."""

    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Image(Base):
    """One picture, named by its path relative to DATA/pictures (absolute for files elsewhere)."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    badlisted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    groups: Mapped[list[Group]] = relationship(secondary=image_groups, lazy="selectin")


class BadlistEntry(Base):
    """A name pushed by ``segments badlist push``: kept, so that an image added later under that
    name is badlisted too."""

    __tablename__ = "badlist"
    name: Mapped[str] = mapped_column(String(1024), primary_key=True)
    source: Mapped[str] = mapped_column(String(1024), default="")
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Segmentation(Base):
    """That ``model`` has segmented ``image`` (also when it found nothing): what a re-run skips, as
    long as the picture is still the one it segmented."""

    __tablename__ = "segmentations"
    __table_args__ = (UniqueConstraint("image_id", "model", name="uq_segmentation_image_model"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(256))
    model_version: Mapped[str] = mapped_column(String(64))
    image_sha256: Mapped[str] = mapped_column(String(64))  # the picture it segmented
    segments: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Segment(Base):
    """One instance, found by a model or drawn by a person. ``fingerprint`` (class and mask) is
    unique per image and model, so the same answer stored twice, by a re-run or a second worker, is
    one row. ``model`` names the segment set it belongs to: for a correction or an annotator's
    addition, the set of the model whose segments were exported (``origin`` says who drew it)."""

    __tablename__ = "segments"
    __table_args__ = (
        UniqueConstraint("image_id", "model", "fingerprint", name="uq_segment_fingerprint"),
        CheckConstraint(f"status IN {STATUSES!r}", name="ck_segment_status"),
        CheckConstraint(f"origin IN {ORIGINS!r}", name="ck_segment_origin"),
        Index("ix_segments_image_model", "image_id", "model"),
        Index("ix_segments_status", "status"),
        Index("ix_segments_replaces", "replaces_id"),
        {"sqlite_autoincrement": True},  # ids never reused: an old export's ids name no newer segment
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(256))
    model_version: Mapped[str] = mapped_column(String(64))
    class_id: Mapped[int] = mapped_column(Integer)
    class_name: Mapped[str] = mapped_column(String(256))
    score: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    rle_counts: Mapped[str] = mapped_column(Text)  # COCO compressed RLE at mask_height x mask_width
    mask_height: Mapped[int] = mapped_column(Integer)
    mask_width: Mapped[int] = mapped_column(Integer)
    # the picture it was found in: a segment of an image's earlier content is kept (reviews are
    # never lost) but no longer read as the image's
    image_sha256: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default=Status.UNCHECKED.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # provenance: who drew it, and for an import the file (and CVAT task and job) it came from
    origin: Mapped[str] = mapped_column(String(16), default=Origin.MODEL.value, server_default="model")
    author: Mapped[str | None] = mapped_column(String(256), nullable=True)
    source_file: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    source_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cvat_task: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cvat_job: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # a correction: the segment it replaces (which stays, rejected)
    replaces_id: Mapped[int | None] = mapped_column(
        ForeignKey("segments.id", ondelete="SET NULL", name="fk_segments_replaces"), nullable=True
    )
    # the last decision on it (every one is in segment_decisions)
    reviewer: Mapped[str | None] = mapped_column(String(256), nullable=True)
    review_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class SegmentDecision(Base):
    """The audit trail: every status a segment was given, by whom, when, from what, and how (the
    command, the import or the page that recorded it). Rows are only ever added."""

    __tablename__ = "segment_decisions"
    __table_args__ = (Index("ix_segment_decisions_segment", "segment_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reviewer: Mapped[str] = mapped_column(String(256))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)  # None: a new segment
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    via: Mapped[str] = mapped_column(String(256))
    import_id: Mapped[int | None] = mapped_column(
        ForeignKey("imports.id", ondelete="SET NULL"), nullable=True
    )


class AnnotationImport(Base):
    """A file of annotators' work imported (``segments import``), known by its content: the same
    file imported again changes nothing. ``finished_at`` is unset while it runs (or was killed)."""

    __tablename__ = "imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    file_name: Mapped[str] = mapped_column(String(1024))
    format: Mapped[str] = mapped_column(String(16))
    reviewer: Mapped[str] = mapped_column(String(256))
    cvat_task: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cvat_job: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON outcome counts


class ImportedImage(Base):
    """An image whose shapes an import has applied (in the same transaction): what a re-run skips."""

    __tablename__ = "imported_images"
    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: the image's outcome counts


class WorkClaim(Base):
    """An image of a job that several workers share, not yet finished (``store.claims``): who
    holds it and until when. Finishing deletes the row."""

    __tablename__ = "work_claims"
    __table_args__ = (Index("ix_work_claims_job_lease", "job", "lease_until"),)
    job: Mapped[str] = mapped_column(String(128), primary_key=True)
    item: Mapped[str] = mapped_column(String(1024), primary_key=True)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # claims so far
    # the database's clock, as for the leases: workers on several machines share it
    offered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReviewLease(Base):
    """A segment the review page showed to ``reviewer``: nobody else is shown it until
    ``lease_until`` (``store.review_leases``). A decision does not end it; it simply runs out."""

    __tablename__ = "review_leases"
    __table_args__ = (Index("ix_review_leases_reviewer", "reviewer"),)
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE", name="fk_review_leases_segment"), primary_key=True
    )
    reviewer: Mapped[str] = mapped_column(String(256))
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
