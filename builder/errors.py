"""Errors a user can fix: the CLI prints them as one line, without a traceback."""


class BuildError(Exception):
    """A build step failed for a reason the message explains (bad input, tolerance exceeded...)."""
