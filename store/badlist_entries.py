"""The badlist's entries in the database: pushed, listed and removed by name, and the lock that
orders those changes against the saves that read them.

PostgreSQL advisory lock between the badlist and new image rows: a save takes it shared (saves run
side by side), a push or a removal exclusively. Without it, a save that read the badlist before a
push committed, and inserted its image after the push looked for matching images, would store a
badlisted picture as clean (each transaction saw the other's rows only once it committed). SQLite
needs none: every transaction holds the database's write lock (BEGIN IMMEDIATE).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from store.dialect import dialect_insert, in_chunks, is_postgresql
from store.name_matching import image_ids_matching, images_matching
from store.names import name_keys, wanted_names
from store.records import BadlistRecord, BadlistRemoval
from store.schema import BadlistEntry, Image

BADLIST_LOCK_KEY = 0x5E6B


def take_badlist_lock(session: Session, exclusive: bool) -> None:
    """Hold the badlist lock until the transaction ends: shared for a save, exclusive for a change."""
    if is_postgresql(session):
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        session.execute(text(f"SELECT {function}(:key)"), {"key": BADLIST_LOCK_KEY})


def entry_names(session: Session) -> set[str]:
    return set(session.scalars(select(BadlistEntry.name)))


def is_badlisted(session: Session, path: str) -> bool:
    """Whether an entry names the image stored as ``path`` (under any of its name keys)."""
    return bool(name_keys(path) & entry_names(session))


def add_entries(session: Session, names: Iterable[str], source: str = "") -> tuple[int, list[str]]:
    """Badlist images by name; returns (images badlisted now, names that match no stored image yet)."""
    wanted = wanted_names(names)
    take_badlist_lock(session, exclusive=True)  # saves in flight finish first
    for name in sorted(wanted):
        session.execute(
            dialect_insert(session, BadlistEntry)
            .values(name=name, source=source)
            .on_conflict_do_nothing(index_elements=["name"])
        )
    matched, hit = image_ids_matching(session, wanted)
    if matched:
        session.execute(update(Image).where(Image.id.in_(matched)).values(badlisted=True))
    return len(matched), sorted(wanted - hit)


def read_entries(session: Session) -> list[BadlistRecord]:
    """Every entry, sorted by name (the same order on SQLite and PostgreSQL), with the stored
    images it matches."""
    rows = session.execute(select(BadlistEntry.name, BadlistEntry.source, BadlistEntry.added_at)).all()
    matches = images_matching(session, {name for name, _, _ in rows})
    return sorted(
        (
            _badlist_record(name, source, added_at, [path for _, path in matches.get(name, ())])
            for name, source, added_at in rows
        ),
        key=lambda record: record.name,
    )


@dataclass
class _RemovalTally:
    """What removing some entries does to the stored images, counted before anything is deleted."""

    matches: dict[str, list[str]] = field(default_factory=dict)  # removed name → the paths it matched
    badlisted_by: dict[str, set[str]] = field(default_factory=dict)  # unknown name → remaining entries
    freed: list[int] = field(default_factory=list)  # ids of images no remaining entry matches
    still: int = 0  # images a removed name matched that a remaining entry still matches


def remove_entries(session: Session, names: Iterable[str]) -> BadlistRemoval:
    """Take names off the badlist: the images they matched that no remaining entry matches are
    badlisted no more. Names are the entries as pushed, not the images they match."""
    wanted = wanted_names(names)
    # exclusive, as for a push: a save that read the badlist before this commits, and inserted its
    # image after, would store the picture badlisted by a removed name
    take_badlist_lock(session, exclusive=True)
    present = {
        name: (source, added_at)
        for name, source, added_at in session.execute(
            select(BadlistEntry.name, BadlistEntry.source, BadlistEntry.added_at)
        )
    }
    gone = wanted & present.keys()
    unknown = wanted - gone
    tally = _tally_removal(session, gone, unknown, remaining=present.keys() - gone)
    for chunk in in_chunks(sorted(gone)):
        session.execute(delete(BadlistEntry).where(BadlistEntry.name.in_(chunk)))
    unbadlisted = 0
    for chunk in in_chunks(tally.freed):
        unbadlisted += session.execute(
            update(Image).where(Image.id.in_(chunk), Image.badlisted.is_(True)).values(badlisted=False)
        ).rowcount
    return BadlistRemoval(
        removed=[_badlist_record(n, *present[n], tally.matches.get(n, ())) for n in sorted(gone)],
        unknown=sorted(unknown),
        unbadlisted=unbadlisted,
        still_badlisted=tally.still,
        badlisted_by={n: sorted(by) for n, by in sorted(tally.badlisted_by.items()) if by},
    )


def _tally_removal(session: Session, gone: set[str], unknown: set[str], remaining: set[str]) -> _RemovalTally:
    tally = _RemovalTally()
    for image_id, path in session.execute(select(Image.id, Image.path).order_by(Image.path)):
        keys = name_keys(path)
        for name in keys & unknown:
            tally.badlisted_by.setdefault(name, set()).update(keys & remaining)
        if not keys & gone:
            continue
        for name in keys & gone:
            tally.matches.setdefault(name, []).append(path)
        if keys & remaining:
            tally.still += 1
        else:
            tally.freed.append(image_id)
    return tally


def _badlist_record(name: str, source: str | None, added_at: datetime | None, matches) -> BadlistRecord:
    if added_at is not None:  # SQLite gives back the UTC time it was given, without its zone
        added_at = added_at.replace(tzinfo=timezone.utc) if added_at.tzinfo is None else added_at
        added_at = added_at.astimezone(timezone.utc)
    return BadlistRecord(name=name, source=source or "", added_at=added_at, matches=tuple(sorted(matches)))
