"""What the segment-store commands share: their options, the store they open, one-line errors,
and names from the store shown safely on a terminal."""

from __future__ import annotations

import functools
import getpass
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from clients.triton.client import ClientError
from store.layout import DataLayout, database_url
from store.records import Status

if TYPE_CHECKING:
    from store.segment_store import SegmentStore

F = TypeVar("F", bound=Callable)

NOT_REJECTED = (Status.UNCHECKED.value, Status.APPROVED.value)
STATUS_OPTION = click.option(
    "--status",
    "statuses",
    type=click.Choice([s.value for s in Status]),
    multiple=True,
    default=NOT_REJECTED,
    help="Which segments to include (repeat the option for several).",
)
STORE_GROUP_OPTION = click.option(
    "--group",
    default=None,
    help="Only the images of this group, as `segments build` recorded it (default: every stored image).",
)
# not a served model (clients.options.MODEL_OPTION): the model whose stored segments are read
MODEL_FILTER_OPTION = click.option(
    "--model",
    default=None,
    metavar="NAME",
    help="Only the segments this model stored (its served name in `segments build --model`; needed "
    "when the store holds several models' segments).",
)


def shown(text: str) -> str:
    """``text`` for a terminal: control characters and other unprintable ones escaped as Python
    writes them (``\\x1b``, ``\\n``, ``\\u200b``). Class, model and group names come from model
    configs and the store, which anyone may have written: raw, an escape sequence would recolour
    or rewrite the terminal, a newline would forge a line of the report."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def login_name() -> str:
    """Who is reviewing when --reviewer is not given: the login name (``$USER`` and the like)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no such user in the password database (containers)
        return os.environ.get("USER") or "unknown"


def fail(message: str, code: int = 2) -> None:
    click.echo(f"seg-client: error: {message}", err=True)
    sys.exit(code)


@contextmanager
def open_store(
    db: str | None, layout: DataLayout, create: bool = False, connections: int = 4
) -> Iterator[SegmentStore]:
    """The store the command works on; only ``segments build`` creates one (``create``)."""
    from store.segment_store import SegmentStore  # SQLAlchemy only for the commands that use it

    with SegmentStore.open(database_url(db, layout), create=create, connections=connections) as store:
        yield store


def interrupted_in_one_line(command: F) -> F:
    """Every store command: Ctrl-C is one line saying what is kept, exit 130 (a user's mistake or an
    unusable store is seg-client's one line, exit 2)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            fail("interrupted; every image stored so far is kept, a re-run resumes", code=130)

    return wrapper  # type: ignore[return-value]


def name_lines(path: Path) -> list[str]:
    """The names in a file, one per line (blank lines and ``#`` comments left out)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(
            f"{path}: cannot read it as text ({exc}); give a file with one image name per line"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def report_unknown(unknown: list[str], what: str) -> None:
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        listed = ", ".join(map(shown, unknown[:5])) + more
        click.echo(f"seg-client: {len(unknown)} names match no stored image{what}: {listed}", err=True)
