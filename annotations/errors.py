"""The error of an annotation file that is not what its format says."""

from __future__ import annotations

from segcontract.errors import SegstackError


class AnnotationFormatError(SegstackError, ValueError):
    """A file or value that breaks its annotation format; the message says where and how.

    A ``ValueError`` too, so callers that skip a bad item on ``ValueError`` keep doing so."""
