"""What the store takes and hands out: plain records, free of SQLAlchemy sessions, so that
commands, exports and mask builders work on them without a database at hand."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class Status(str, Enum):
    """A segment's review state: every segment a model produces starts ``unchecked`` (or
    ``approved`` with ``--mark-approved``) until an annotator approves or rejects it."""

    UNCHECKED = "unchecked"
    APPROVED = "approved"
    REJECTED = "rejected"


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
