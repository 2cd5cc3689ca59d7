"""The store's one error: a problem the user can fix, printed as one line by every command."""

from segcontract.errors import SegstackError


class StoreError(SegstackError):
    """The database or the DATA/ layout cannot be used as asked (unreachable, newer schema, a
    group that does not exist...); the message names what and how to fix it."""


class StaleSegments(StoreError):
    """A decision was made on what a reader saw, and the segments (or the picture) changed since:
    nothing was written; read again and decide again."""
