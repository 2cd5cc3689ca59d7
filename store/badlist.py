"""The badlist as every command that reads a group applies it: read from the segment store at
the moment the command runs, whatever the group's CSV (written by an earlier ``groups pull``)
still lists. ``segments badlist push`` takes effect at once, without another pull."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from store.layout import DB_ENV, DataLayout, database_url
from store.names import name_keys

__all__ = ["Badlist", "picture_name", "read_badlist"]


@dataclass(frozen=True)
class Badlist:
    names: frozenset[str]  # as pushed: paths, trailing parts, stems

    def holds(self, picture: str) -> bool:
        """Whether ``picture`` (a store name: relative to DATA/pictures, else absolute) is on it."""
        return bool(name_keys(picture) & self.names)


def read_badlist(db: str | None, layout: DataLayout, create: bool = False) -> Badlist | None:
    """The store's badlist; None when it is empty or there is no store to ask (no ``db``, no
    $SEGSTACK_DB and no DATA/segments.db: reading a group creates no database). A store named
    but missing or unreachable is a StoreError, unless ``create`` (``groups pull --db``, the
    first command of a team's store, makes it)."""
    if db is None and not os.environ.get(DB_ENV) and not layout.database.exists():
        return None
    from store.segment_store import SegmentStore  # SQLAlchemy only once a store is asked

    with SegmentStore.open(database_url(db, layout), create=create) as store:
        names = store.badlist_names()
    return Badlist(frozenset(names)) if names else None


def picture_name(path: Path, pictures: Path) -> str:
    """``path``'s name in the store: relative to ``pictures`` (DATA/pictures, POSIX) when it is
    below it, as a group's pictures are, else absolute."""
    path, pictures = path.absolute(), pictures.absolute()
    if path.is_relative_to(pictures):
        return path.relative_to(pictures).as_posix()
    return path.as_posix()
