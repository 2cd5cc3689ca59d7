"""What the store takes and hands out: plain records, free of SQLAlchemy sessions, so that
commands, exports and mask builders work on them without a database at hand."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class Status(str, Enum):
    """A segment's review state: every segment a model produces starts ``unchecked`` (or
    ``approved`` with ``--mark-approved``) until an annotator approves or rejects it."""

    UNCHECKED = "unchecked"
    APPROVED = "approved"
    REJECTED = "rejected"


class Origin(str, Enum):
    """Where a segment came from: a served model (``model``, ``model_version``), a person (through
    the review page), or an import of annotators' work (``source_file``, its sha256, and the CVAT
    task and job when the file says)."""

    MODEL = "model"
    PERSON = "person"
    IMPORT = "import"


class ImportOutcome(str, Enum):
    """What an import found a shape (or a stored segment) to be; the summary counts these."""

    UNCHANGED = "unchanged"  # exactly what the export wrote: the segment is approved
    EDITED = "edited"  # another outline: an approved correction replaces the segment
    RELABELLED = "relabelled"  # another class: an approved correction replaces the segment
    REJECTED = "rejected"  # deleted in CVAT: the segment is rejected
    ADDED = "added"  # drawn by the annotator: a new approved segment
    SKIPPED = "skipped"  # not applied (unknown image or label, outside the image...): reported


# --- what a save is given ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    """A picture as the client read it: ``path`` is its store name (see ``store.schema.Image``)."""

    path: str
    sha256: str
    size: int
    width: int
    height: int


@dataclass(frozen=True)
class NewSegment:
    class_id: int
    class_name: str
    score: float
    bbox: tuple[float, float, float, float]
    rle_counts: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha1(f"{self.class_id}|{self.rle_counts}".encode()).hexdigest()


# --- what the store hands out --------------------------------------------------------------------


@dataclass(frozen=True)
class SaveOutcome:
    added: int  # new rows
    kept: int  # reviewed segments a replacement left in place (or identical ones already stored)
    removed: int  # unchecked rows replaced
    already_done: bool  # another run had stored this image for this model: nothing changed


@dataclass(frozen=True)
class StoredImage:
    id: int
    path: str  # relative to DATA/pictures, POSIX separators
    width: int
    height: int
    sha256: str
    size: int  # bytes
    badlisted: bool
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredSegment:
    id: int
    image_id: int
    image: str  # the image's path, relative to DATA/pictures
    width: int  # the image's size, as the mask's
    height: int
    model: str
    model_version: str
    class_id: int
    class_name: str
    score: float
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    rle: dict  # COCO compressed RLE: {"size": [height, width], "counts": str}
    status: Status
    origin: Origin = Origin.MODEL
    replaces: int | None = None  # a correction: the id of the segment it replaces
    revision: int = 1  # bumped by every decision: a decision on a later revision is refused
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    reason: str | None = None  # the reviewer's, or the import's (``deleted in CVAT (file)``)
    author: str | None = None  # who drew it (person and import segments)
    source_file: str | None = None  # import segments: the file's name


def segments_in_play(segments: Iterable[StoredSegment]) -> list[StoredSegment]:
    """The segments among ``segments`` still saying what is in their image: neither rejected nor
    replaced by a correction among them."""
    segments = list(segments)
    replaced = {s.replaces for s in segments if s.replaces is not None}
    return [s for s in segments if s.status != Status.REJECTED and s.id not in replaced]


@dataclass
class StatusReport:
    images: int = 0
    badlisted: int = 0
    segmented: dict[str, int] = field(default_factory=dict)  # model → images it segmented
    counts: list[tuple[str, str, str, int]] = field(default_factory=list)  # model, class, status, n


@dataclass(frozen=True)
class BadlistRecord:
    """One badlist entry: the name pushed, the file it came from (``""`` when none was given),
    when it was first pushed (UTC; pushing it again keeps the first), and the stored images it
    matches now."""

    name: str
    source: str
    added_at: datetime | None
    matches: tuple[str, ...]  # the stored images' paths, sorted

    @property
    def images(self) -> int:
        return len(self.matches)


@dataclass(frozen=True)
class BadlistRemoval:
    removed: list[BadlistRecord]  # the entries as they were, sorted by name
    unknown: list[str]  # names given that are not on the badlist
    unbadlisted: int  # stored images no remaining entry matches: no longer badlisted
    still_badlisted: int  # images a removed name matched that another entry still badlists
    # an unknown name that names stored images which other entries badlist: those entries
    badlisted_by: dict[str, list[str]] = field(default_factory=dict)


# --- review and import ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewOutcome:
    changed: int  # segments whose status changed (each with an audit row)
    unchanged: int  # selected segments that already had that status
    unknown_names: list[str] = field(default_factory=list)  # image names matching no stored image
    unknown_ids: list[int] = field(default_factory=list)  # segment ids not in the store
    stale_ids: list[int] = field(default_factory=list)  # changed since they were read: refused


@dataclass(frozen=True)
class SegmentSelection:
    """Which segments a review decides: those named by id, plus every segment of the named images'
    current pictures; the filters narrow that (with neither ids nor images, they select on their
    own). ``classes`` are names or ids; the score range is inclusive."""

    ids: tuple[int, ...] = ()
    images: tuple[str, ...] = ()
    group: str | None = None
    model: str | None = None
    classes: tuple[str, ...] = ()
    min_score: float | None = None
    max_score: float | None = None
    statuses: tuple[Status, ...] = ()

    def is_empty(self) -> bool:
        return self == SegmentSelection()


@dataclass(frozen=True)
class ShapeDecision:
    """One line of an import's verdict on an image: what to do with a stored segment, or a new one."""

    outcome: ImportOutcome
    segment_id: int | None = None  # unchanged, edited, relabelled, rejected: the stored segment
    revision: int | None = None  # that segment's revision when it was read
    new: NewSegment | None = None  # edited, relabelled, added: the segment as the annotator left it
    note: str = ""  # skipped: why (a line for the user); otherwise how it was matched, if not by id


@dataclass(frozen=True)
class ImportSource:
    """The file an import reads: what every segment and decision it writes records."""

    file_name: str
    sha256: str
    fmt: str  # "cvat" or "coco"
    reviewer: str
    cvat_task: int | None = None
    cvat_job: int | None = None


@dataclass(frozen=True)
class ImportLedger:
    """An import as the store records it: a re-run of an unfinished one skips ``done_images``; a
    finished one (``finished_at``) is not applied again."""

    id: int
    file_name: str
    started_at: datetime
    finished_at: datetime | None
    done_images: frozenset[int]  # image ids applied
    summary: dict[str, int]  # the outcome counts, when finished


@dataclass(frozen=True)
class DecisionRecord:
    """One row of the audit table: ``from_status`` is None for a segment that was born decided
    (an annotator's correction or addition)."""

    segment_id: int
    decided_at: datetime
    reviewer: str
    from_status: str | None
    to_status: str
    reason: str | None
    via: str
    import_id: int | None
