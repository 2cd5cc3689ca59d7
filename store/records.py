"""What the store hands out: plain frozen records, free of SQLAlchemy sessions, so that exports
and mask builders work on them without a database at hand."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(str, Enum):
    """A segment's review state: every segment a model produces starts ``unchecked`` (or
    ``approved`` with ``--mark-approved``) until an annotator approves or rejects it."""

    UNCHECKED = "unchecked"
    APPROVED = "approved"
    REJECTED = "rejected"


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
