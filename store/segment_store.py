"""The segment store: what models found in which images, and what annotators said of it.

:class:`SegmentStore` is the one entry point commands use. Each of its methods is one session
(a write: one transaction) around one operation of a module that does one job:

- ``store.segment_writes``: saving one image's segmentation under a row lock
- ``store.image_groups``: which named groups the images belong to
- ``store.badlist_entries``: the badlist (push, list, remove) under its advisory lock
- ``store.review``: the annotators' decisions, each with its audit row
- ``store.review_leases``: which reviewer of the review page is shown which segment
- ``store.corrections``: annotators' work imported back (the ledger, one image's decisions)
- ``store.name_matching``: stored images by the names users give
- ``store.reads``: done images, images, segments, status, which model's segments to use

The records it takes and returns are in ``store.records``; they are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from store.badlist_entries import add_entries, entry_names, read_entries, remove_entries
from store.corrections import apply_image_decisions, begin_import, finish_import
from store.database import _reason, deadline, open_database, shown
from store.dialect import utc_now
from store.errors import StoreError
from store.image_groups import add_images_to_groups, read_group_names
from store.name_matching import find_ambiguous_names, images_matching
from store.names import name_keys, normalise_name
from store.reads import (
    choose_segment_model,
    count_status,
    database_time,
    read_class_table,
    read_done_paths,
    read_image,
    read_image_segments,
    read_images,
    read_segment_models,
    read_segments,
    read_segments_by_id,
)
from store.records import (
    BadlistRecord,
    BadlistRemoval,
    DecisionRecord,
    ImageFacts,
    ImportLedger,
    ImportSource,
    NewSegment,
    ReviewOutcome,
    SaveOutcome,
    SegmentSelection,
    ShapeDecision,
    Status,
    StatusReport,
    StoredImage,
    StoredSegment,
)
from store.review import decide, decision_history
from store.review_leases import lease_holders, lease_segments, release_leases
from store.segment_writes import write_segmentation

__all__ = [
    "BadlistRecord",
    "BadlistRemoval",
    "ImageFacts",
    "NewSegment",
    "SaveOutcome",
    "SegmentStore",
    "StatusReport",
    "name_keys",
    "normalise_name",
]

P = ParamSpec("P")
T = TypeVar("T")


class SegmentStore:
    """A store opened on ``url`` (migrated on open). Use as a context manager, or ``close()``."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.url = shown(engine.url)

    @classmethod
    def open(cls, url: str, create: bool = True, connections: int = 4) -> SegmentStore:
        """``create=False``: an SQLite file that does not exist is an error rather than a new store
        (commands that only read or annotate must not create one under a mistyped data root).
        ``connections``: how many threads use it at once."""
        return cls(open_database(url, create=create, connections=connections))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> SegmentStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- sessions: the only place that opens one -----------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A session whose every statement and commit must finish within the store's deadline
        (``store.database.deadline``): a database that stops answering mid-run ends the run."""
        with deadline(self.engine), Session(self.engine, expire_on_commit=False) as session:
            yield session

    def _read(
        self, doing: str, operation: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``operation(session, ...)`` in a session of its own; a database error becomes a
        StoreError saying what could not be done."""
        try:
            with self._session() as session:
                return operation(session, *args, **kwargs)
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, doing) from None

    def _write(
        self, doing: str, operation: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """As :meth:`_read`, in one transaction: committed when ``operation`` returns, rolled back
        when it raises."""
        try:
            with self._session() as session, session.begin():
                return operation(session, *args, **kwargs)
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, doing) from None

    def _failed(self, exc: BaseException, doing: str) -> StoreError:
        return StoreError(f"segment store {self.url}: cannot {doing}: {_reason(exc)}")

    # --- what is done ---------------------------------------------------------------------------

    def done_paths(
        self, model: str, among: Collection[str] | None = None, since: datetime | None = None
    ) -> dict[str, str]:
        """Store names of the images ``model`` has segmented (whatever it found), with the sha256 of
        the picture it segmented: a file whose content differs now is not done. ``among``: only
        these names; ``since``: only those stored at or after that time (the database's clock,
        :meth:`clock`)."""
        return self._read("read which images are done", read_done_paths, model, among, since)

    def clock(self) -> datetime:
        """The database's time now: what several workers on several machines agree on."""
        if self.engine.dialect.name != "postgresql":
            return utc_now()
        return self._read("read the time", database_time)

    # --- writing segments and groups ------------------------------------------------------------

    def save_segmentation(
        self,
        image: ImageFacts,
        model: str,
        model_version: str,
        segments: Sequence[NewSegment],
        groups: Sequence[str] = (),
        status: Status = Status.UNCHECKED,
        replace: bool = False,
        reviewer: str = "",
    ) -> SaveOutcome:
        """Store what ``model`` found in ``image``. Without ``replace``, an image that model already
        segmented is left as it is; with it, its unchecked segments are replaced and reviewed
        ones kept (a new segment identical to a kept one is not added again). New segments of
        another status than unchecked are ``reviewer``'s decision (an audit row each)."""
        return self._write(
            f"store the segments of {image.path}",
            write_segmentation,
            image,
            model,
            model_version,
            segments,
            groups=groups,
            status=status,
            replace=replace,
            reviewer=reviewer,
        )

    def join_groups(self, paths: Iterable[str], groups: Sequence[str]) -> int:
        """Add the stored images named ``paths`` to ``groups`` (images a build skipped still belong
        to the group it ran on). Returns how many images were found."""
        wanted = set(paths)
        if not wanted or not groups:
            return 0
        return self._write("record the group's images", add_images_to_groups, wanted, groups)

    # --- badlist and review ---------------------------------------------------------------------

    def badlist_names(self) -> set[str]:
        return self._read("read the badlist", entry_names)

    def push_badlist(self, names: Iterable[str], source: str = "") -> tuple[int, list[str]]:
        """Badlist images by name (a path, a trailing part of it, or a stem). The names are kept,
        so images added later under them are badlisted too. Returns (images badlisted now, names
        that match no stored image yet)."""
        return self._write("push the badlist", add_entries, names, source)

    def badlist_entries(self) -> list[BadlistRecord]:
        """Every badlist entry, sorted by name (the same order on SQLite and PostgreSQL), with the
        stored images it matches."""
        return self._read("read the badlist", read_entries)

    def remove_badlist(self, names: Iterable[str]) -> BadlistRemoval:
        """Take names off the badlist (the reverse of :meth:`push_badlist`): the images they matched
        that no remaining entry matches are badlisted no more. Names are the entries as pushed (a
        path, a trailing part of it, or a stem), not the images they match."""
        return self._write("remove names from the badlist", remove_entries, names)

    def review_segments(
        self,
        selection: SegmentSelection,
        status: Status,
        reviewer: str,
        via: str,
        reason: str | None = None,
        expected: Mapping[int, int] | None = None,
    ) -> ReviewOutcome:
        """Give the selected segments ``status`` as ``reviewer`` decided (``via``: the command or
        page recording it), each change with its audit row. ``expected`` (segment id → revision
        seen): segments changed since are refused, not decided."""
        return self._write("record the review", decide, selection, status, reviewer, via, reason, expected)

    def decisions(self, segment_ids: Sequence[int]) -> list[DecisionRecord]:
        """The audit trail of these segments, oldest first."""
        return self._read("read the decisions", decision_history, segment_ids)

    def lease_segments(
        self,
        candidates: Sequence[int],
        reviewer: str,
        count: int,
        lease_s: float,
        statuses: Collection[Status] = (Status.UNCHECKED,),
    ) -> list[int]:
        """Lease to ``reviewer`` the first ``count`` of ``candidates`` (in the order given) that have
        one of ``statuses`` and that no other reviewer holds (theirs already: renewed)."""
        return self._write(
            "lease segments for review", lease_segments, candidates, reviewer, count, lease_s, statuses
        )

    def release_leases(self, segment_ids: Sequence[int], reviewer: str) -> int:
        """``reviewer`` gives these segments back to the other reviewers."""
        return self._write("release review leases", release_leases, segment_ids, reviewer)

    def lease_holders(self, segment_ids: Sequence[int]) -> dict[int, str]:
        """segment id → who holds a lease on it that has not run out."""
        return self._read("read the review leases", lease_holders, segment_ids)

    def ambiguous_names(self, names: Iterable[str]) -> dict[str, list[str]]:
        """The names among ``names`` that match more than one stored image, with those images."""
        return self._read("read the images", find_ambiguous_names, names)

    # --- imports of annotators' work ------------------------------------------------------------

    def begin_import(self, source: ImportSource) -> ImportLedger:
        """The ledger of the file (by its sha256): new, or what an earlier run of it did."""
        return self._write(f"record the import of {source.file_name}", begin_import, source)

    def apply_import(
        self,
        ledger: ImportLedger,
        source: ImportSource,
        image: StoredImage,
        model: str,
        decisions: Sequence[ShapeDecision],
    ) -> dict[str, int]:
        """One image's decisions, in one transaction; StaleSegments when what they were made on
        changed since it was read (read again and decide again)."""
        return self._write(
            f"import the shapes of {image.path}",
            apply_image_decisions,
            ledger.id,
            source,
            image.id,
            image.sha256,
            model,
            decisions,
        )

    def finish_import(self, ledger: ImportLedger, skipped_images: dict[str, int]) -> dict[str, int]:
        """Mark the import done; returns its summary: every image applied (by this run or a killed
        one before it), plus ``skipped_images``, the shapes of the images this run skipped whole."""
        return self._write("record the import", finish_import, ledger.id, skipped_images)

    def image_segments(self, path: str, model: str) -> tuple[StoredImage | None, list[StoredSegment]]:
        """The image stored as ``path`` and ``model``'s segments of its current picture (any status)."""
        return self._read("read the image's segments", read_image_segments, path, model)

    def images_named(self, names: Iterable[str]) -> dict[str, list[str]]:
        """name → the paths of the stored images it names (a path, a trailing part of it, a stem),
        for every name given (normalised; one pass over the images for all of them)."""
        wanted = {normalise_name(name) for name in names}
        found = self._read("read the images", images_matching, wanted)
        return {name: sorted({path for _, path in found.get(name, [])}) for name in wanted}

    def segment_models(self, ids: Iterable[int]) -> dict[int, str]:
        """segment id → its model set, for the ids stored."""
        return self._read("read the segments", read_segment_models, list(ids))

    def class_table(self, model: str) -> dict[str, int]:
        """class name → id, as ``model``'s stored segments name them."""
        return self._read("read the classes", read_class_table, model)

    # --- reading --------------------------------------------------------------------------------

    def group_names(self) -> list[str]:
        return self._read("read the groups", read_group_names)

    def images(self, group: str | None = None, include_badlisted: bool = False) -> list[StoredImage]:
        return self._read("read the images", read_images, group, include_badlisted)

    def segments(
        self,
        group: str | None = None,
        model: str | None = None,
        statuses: Iterable[Status] | None = None,
        include_badlisted: bool = False,
    ) -> list[StoredSegment]:
        return self._read("read the segments", read_segments, group, model, statuses, include_badlisted)

    def segments_by_id(self, ids: Iterable[int], include_badlisted: bool = False) -> list[StoredSegment]:
        """The segments among ``ids`` of their image's current picture (badlisted images' left out
        unless ``include_badlisted``), by id."""
        return self._read("read the segments", read_segments_by_id, list(ids), include_badlisted)

    def image(self, image_id: int) -> StoredImage | None:
        return self._read("read the image", read_image, image_id)

    def segment_model(self, wanted: str | None = None) -> str:
        """The model whose segments a command uses: ``wanted``, checked against the models the store
        holds segments of, or the store's only model (several: the user must choose)."""
        return choose_segment_model(self.status(), wanted, self.url)

    def status(self, group: str | None = None) -> StatusReport:
        return self._read("count the segments", count_status, group)
