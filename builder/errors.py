"""Errors a user can fix: the CLI prints them as one line, without a traceback."""

from segcontract.errors import SegstackError


class BuildError(SegstackError):
    """A build step failed for a reason the message explains (bad input, tolerance exceeded...)."""
