"""What the store's operations write differently on SQLite and PostgreSQL: the INSERT that knows
ON CONFLICT, the time a row records, and IN lists short enough for SQLite's bound parameters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def dialect_insert(session: Session, table: Any) -> Any:
    """An INSERT of the session's dialect, which has ``on_conflict_do_nothing`` and
    ``on_conflict_do_update``."""
    return (postgresql.insert if is_postgresql(session) else sqlite.insert)(table)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def row_time(session: Session) -> Any:
    """The time a segmentation row records: PostgreSQL's own clock, which every worker's ``since``
    is read from (``SegmentStore.clock``); this machine's UTC time on SQLite."""
    return func.now() if is_postgresql(session) else utc_now()


def in_chunks(items: Sequence, size: int = 500) -> Iterator[Sequence]:
    """``items`` a few hundred at a time: one IN (...) each, well within SQLite's bound parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
