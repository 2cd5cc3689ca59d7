"""The store's one error: a problem the user can fix, printed as one line by every command."""

from segcontract.errors import SegstackError


class StoreError(SegstackError):
    """The database or the DATA/ layout cannot be used as asked (unreachable, newer schema, a
    group that does not exist...); the message names what and how to fix it."""
