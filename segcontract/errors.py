"""The one root of the errors a user can fix, and how a command line reports them.

An error that a user's mistake or a peer's failure causes (a file that is wrong, a server that
does not answer, an option that does not fit) derives from :class:`SegstackError`, directly or
through its package's own error class. Each console script catches the root in one place
(:func:`reported`): one line on stderr, ``<command>: error: <message>``, and exit code
:data:`EXIT_CODE`. Any other exception is a bug and keeps its traceback; ``--debug`` (or
``SEGSTACK_DEBUG=1``) keeps it for a user error too.

Standard library only, as the rest of the package: it is copied into every Python-backend model of
a built repository, and imported by console scripts before click is.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping

EXIT_CODE = 2  # as click's own usage errors
DEBUG_ENV = "SEGSTACK_DEBUG"
DEBUG_HELP = f"On an error, show its traceback instead of its one line (also: {DEBUG_ENV}=1)."


class SegstackError(Exception):
    """A user's mistake or a peer's failure the user can fix: one line, exit code 2.

    The message says what is wrong and names what to change (the file, the option, the server);
    it is printed without the traceback, so it must be whole on its own.
    """


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line: each run of whitespace, newlines included, one space."""
    return " ".join(str(exc).split()) or type(exc).__name__


def error_line(command: str, exc: BaseException) -> str:
    """``<command>: error: <message>``, as every console script prints a user error."""
    return f"{command}: error: {one_line(exc)}"


def debug_requested(flag: bool = False) -> bool:
    """Whether a user error should show its traceback: ``--debug`` given, or ``$SEGSTACK_DEBUG``
    set to anything but empty or 0."""
    return flag or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


@contextlib.contextmanager
def reported(
    command: str, debug: bool = False, exit_codes: Mapping[type[SegstackError], int] | None = None
) -> Iterator[None]:
    """Run the block; a :class:`SegstackError` out of it becomes its one line on stderr and
    ``SystemExit`` with :data:`EXIT_CODE`, or re-raised as it is when :func:`debug_requested`.

    ``exit_codes`` gives the classes whose command has always ended with another code (the first
    that matches); anything that is not a SegstackError passes through untouched.
    """
    try:
        yield
    except SegstackError as exc:
        if debug_requested(debug):
            raise
        code = next((c for cls, c in (exit_codes or {}).items() if isinstance(exc, cls)), EXIT_CODE)
        print(error_line(command, exc), file=sys.stderr, flush=True)
        raise SystemExit(code) from None
