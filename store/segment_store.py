"""The segment store: what models found in which images, and what annotators said of it.

Every write is one transaction. Saving one image's segments locks that image's row first, so that
two processes segmenting the same group never store a segment twice: the second sees the first's
segmentation and keeps it (or, replacing, finds the same fingerprints already there).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from store.database import _reason, deadline, open_database, shown
from store.errors import StoreError
from store.records import Status, StoredImage, StoredSegment
from store.schema import BadlistEntry, Group, Image, Segment, Segmentation, image_groups


@dataclass(frozen=True)
class ImageFacts:
    """A picture as the client read it: ``path`` is its store name (see ``store.schema.Image``)."""

    path: str
    sha256: str
    size: int
    width: int
    height: int


@dataclass(frozen=True)
class NewSegment:
    class_id: int
    class_name: str
    score: float
    bbox: tuple[float, float, float, float]
    rle_counts: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha1(f"{self.class_id}|{self.rle_counts}".encode()).hexdigest()


@dataclass(frozen=True)
class SaveOutcome:
    added: int  # new rows
    kept: int  # reviewed segments a replacement left in place (or identical ones already stored)
    removed: int  # unchecked rows replaced
    already_done: bool  # another run had stored this image for this model: nothing changed


@dataclass
class StatusReport:
    images: int = 0
    badlisted: int = 0
    segmented: dict[str, int] = field(default_factory=dict)  # model → images it segmented
    counts: list[tuple[str, str, str, int]] = field(default_factory=list)  # model, class, status, n


@dataclass(frozen=True)
class BadlistRecord:
    """One badlist entry: the name pushed, the file it came from (``""`` when none was given),
    when it was first pushed (UTC; pushing it again keeps the first), and the stored images it
    matches now."""

    name: str
    source: str
    added_at: datetime | None
    matches: tuple[str, ...]  # the stored images' paths, sorted

    @property
    def images(self) -> int:
        return len(self.matches)


@dataclass(frozen=True)
class BadlistRemoval:
    removed: list[BadlistRecord]  # the entries as they were, sorted by name
    unknown: list[str]  # names given that are not on the badlist
    unbadlisted: int  # stored images no remaining entry matches: no longer badlisted
    still_badlisted: int  # images a removed name matched that another entry still badlists
    # an unknown name that names stored images which other entries badlist: those entries
    badlisted_by: dict[str, list[str]] = field(default_factory=dict)


def name_keys(path: str) -> set[str]:
    """The names under which a badlist or a review may refer to ``path``: the path, every
    trailing part of it (``b/c.jpg``, ``c.jpg``) and the file's stem."""
    pure = PurePosixPath(path)
    parts = pure.parts
    keys = {str(PurePosixPath(*parts[i:])) for i in range(len(parts))}  # "/a/b.jpg", not "//a/b.jpg"
    keys.add(pure.stem)
    keys.add(str(pure.with_suffix("")))
    return keys


def normalise_name(name: str) -> str:
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _insert(session: Session, table):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


# PostgreSQL advisory lock between the badlist and new image rows: a save takes it shared (saves run
# side by side), a badlist push exclusively. Without it, a save that read the badlist before a
# push committed, and inserted its image after the push looked for matching images, would store
# a badlisted picture as clean (each transaction saw the other's rows only once it committed).
# SQLite needs none: every transaction holds the database's write lock (BEGIN IMMEDIATE).
_BADLIST_LOCK = 0x5E6B


def _badlist_lock(session: Session, exclusive: bool) -> None:
    if session.get_bind().dialect.name == "postgresql":
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        session.execute(text(f"SELECT {function}(:key)"), {"key": _BADLIST_LOCK})


def _now() -> datetime:
    return datetime.now(timezone.utc)


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

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A session whose every statement and commit must finish within the store's deadline
        (``store.database.deadline``): a database that stops answering mid-run ends the run."""
        with deadline(self.engine), Session(self.engine, expire_on_commit=False) as session:
            yield session

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
        query = (
            select(Image.path, Segmentation.image_sha256)
            .join(Segmentation, Segmentation.image_id == Image.id)
            .where(Segmentation.model == model, Segmentation.image_sha256 == Image.sha256)
        )
        if among is not None:
            query = query.where(Image.path.in_(list(among)))
        if since is not None:
            query = query.where(Segmentation.updated_at >= since)
        try:
            with self._session() as session:
                return {path: sha for path, sha in session.execute(query)}
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "read which images are done") from None

    def clock(self) -> datetime:
        """The database's time now: what several workers on several machines agree on."""
        try:
            if self.engine.dialect.name != "postgresql":
                return _now()
            with self._session() as session:
                return session.scalar(select(func.now()))
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "read the time") from None

    def badlist_names(self) -> set[str]:
        try:
            with self._session() as session:
                return set(session.scalars(select(BadlistEntry.name)))
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "read the badlist") from None

    # --- writing segments ------------------------------------------------------------------------

    def save_segmentation(
        self,
        image: ImageFacts,
        model: str,
        model_version: str,
        segments: Sequence[NewSegment],
        groups: Sequence[str] = (),
        status: Status = Status.UNCHECKED,
        replace: bool = False,
    ) -> SaveOutcome:
        """Store what ``model`` found in ``image``. Without ``replace``, an image that model already
        segmented is left as it is; with it, its unchecked segments are replaced and reviewed
        ones kept (a new segment identical to a kept one is not added again)."""
        try:
            with self._session() as session, session.begin():
                row = self._locked_image(session, image)
                self._join_groups(session, row.id, groups)
                done = session.scalar(
                    select(Segmentation).where(
                        Segmentation.image_id == row.id,
                        Segmentation.model == model,
                        Segmentation.image_sha256 == image.sha256,
                    )
                )
                if done is not None and not replace:
                    return SaveOutcome(0, 0, 0, already_done=True)
                removed = 0
                if done is not None:
                    removed = session.execute(
                        delete(Segment).where(
                            Segment.image_id == row.id,
                            Segment.model == model,
                            Segment.status == Status.UNCHECKED.value,
                        )
                    ).rowcount
                added = self._add_segments(session, row.id, image, model, model_version, segments, status)
                self._record_segmentation(session, row.id, image.sha256, model, model_version, len(segments))
                return SaveOutcome(added, len(segments) - added, removed, already_done=False)
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, f"store the segments of {image.path}") from None

    def _locked_image(self, session: Session, facts: ImageFacts) -> Image:
        """The image's row, created if new, locked until the transaction ends (PostgreSQL: FOR
        UPDATE; SQLite: the transaction already holds the database's write lock)."""
        _badlist_lock(session, exclusive=False)
        badlisted = bool(name_keys(facts.path) & set(session.scalars(select(BadlistEntry.name))))
        values = {
            "path": facts.path,
            "sha256": facts.sha256,
            "size": facts.size,
            "width": facts.width,
            "height": facts.height,
            "badlisted": badlisted,
        }
        session.execute(
            _insert(session, Image).values(**values).on_conflict_do_nothing(index_elements=["path"])
        )
        row = session.scalars(select(Image).where(Image.path == facts.path).with_for_update()).one()
        if row.sha256 != facts.sha256:  # the picture was replaced: what was found in the old one is stale
            self._forget_old_picture(session, row.id, facts.sha256)
        if (row.sha256, row.size, row.width, row.height) != (
            facts.sha256,
            facts.size,
            facts.width,
            facts.height,
        ):
            row.sha256, row.size, row.width, row.height = facts.sha256, facts.size, facts.width, facts.height
        return row

    @staticmethod
    def _forget_old_picture(session: Session, image_id: int, new_sha256: str) -> None:
        """Every model's record of having segmented the old picture goes, and so do its unchecked
        segments; reviewed ones stay (a review is never lost) with the old picture's sha256, so
        they are not read as the new picture's."""
        session.execute(delete(Segmentation).where(Segmentation.image_id == image_id))
        session.execute(
            delete(Segment).where(
                Segment.image_id == image_id,
                Segment.image_sha256 != new_sha256,
                Segment.status == Status.UNCHECKED.value,
            )
        )

    def join_groups(self, paths: Iterable[str], groups: Sequence[str]) -> int:
        """Add the stored images named ``paths`` to ``groups`` (images a build skipped still belong
        to the group it ran on). Returns how many images were found."""
        wanted = set(paths)
        if not wanted or not groups:
            return 0
        try:
            with self._session() as session, session.begin():
                ids = [i for i, p in session.execute(select(Image.id, Image.path)) if p in wanted]
                for image_id in ids:
                    self._join_groups(session, image_id, groups)
                return len(ids)
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "record the group's images") from None

    def _join_groups(self, session: Session, image_id: int, groups: Sequence[str]) -> None:
        for name in sorted(set(groups)):  # one order for every writer: new groups cannot deadlock
            session.execute(
                _insert(session, Group).values(name=name).on_conflict_do_nothing(index_elements=["name"])
            )
            group_id = session.scalar(select(Group.id).where(Group.name == name))
            session.execute(
                _insert(session, image_groups)
                .values(image_id=image_id, group_id=group_id)
                .on_conflict_do_nothing()
            )

    def _add_segments(
        self,
        session: Session,
        image_id: int,
        image: ImageFacts,
        model: str,
        model_version: str,
        segments: Sequence[NewSegment],
        status: Status,
    ) -> int:
        if not segments:
            return 0
        now = _now()
        rows = [
            {
                "image_id": image_id,
                "model": model,
                "model_version": model_version,
                "class_id": s.class_id,
                "class_name": s.class_name,
                "score": float(s.score),
                "x1": float(s.bbox[0]),
                "y1": float(s.bbox[1]),
                "x2": float(s.bbox[2]),
                "y2": float(s.bbox[3]),
                "rle_counts": s.rle_counts,
                "mask_height": image.height,
                "mask_width": image.width,
                "image_sha256": image.sha256,
                "fingerprint": s.fingerprint,
                "status": status.value,
                "reviewed_at": now if status != Status.UNCHECKED else None,
            }
            for s in segments
        ]
        statement = (
            _insert(session, Segment)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["image_id", "model", "fingerprint"])
            .returning(Segment.id)
        )
        return len(session.scalars(statement).all())

    def _record_segmentation(
        self, session: Session, image_id: int, sha256: str, model: str, model_version: str, found: int
    ) -> None:
        # PostgreSQL's own clock, which every worker's `since` is read from (clock())
        now = func.now() if session.get_bind().dialect.name == "postgresql" else _now()
        statement = _insert(session, Segmentation).values(
            image_id=image_id,
            model=model,
            model_version=model_version,
            image_sha256=sha256,
            segments=found,
            updated_at=now,
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["image_id", "model"],
                set_={
                    "model_version": model_version,
                    "image_sha256": sha256,
                    "segments": found,
                    "updated_at": now,
                },
            )
        )

    # --- badlist and review ---------------------------------------------------------------------

    def push_badlist(self, names: Iterable[str], source: str = "") -> tuple[int, list[str]]:
        """Badlist images by name (a path, a trailing part of it, or a stem). The names are kept,
        so images added later under them are badlisted too. Returns (images badlisted now, names
        that match no stored image yet)."""
        wanted = {n for n in (normalise_name(n) for n in names) if n}
        try:
            with self._session() as session, session.begin():
                _badlist_lock(session, exclusive=True)  # saves in flight finish first
                for name in sorted(wanted):
                    session.execute(
                        _insert(session, BadlistEntry)
                        .values(name=name, source=source)
                        .on_conflict_do_nothing(index_elements=["name"])
                    )
                matched, hit = self._match(session, wanted)
                if matched:
                    session.execute(update(Image).where(Image.id.in_(matched)).values(badlisted=True))
                return len(matched), sorted(wanted - hit)
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "push the badlist") from None

    @staticmethod
    def _match(session: Session, names: set[str]) -> tuple[list[int], set[str]]:
        """Image ids whose name keys meet ``names``, and which names met one."""
        found = SegmentStore._matches(session, names)
        return sorted({image_id for images in found.values() for image_id, _ in images}), set(found)

    def badlist_entries(self) -> list[BadlistRecord]:
        """Every badlist entry, sorted by name (the same order on SQLite and PostgreSQL), with the
        stored images it matches."""
        try:
            with self._session() as session:
                rows = session.execute(
                    select(BadlistEntry.name, BadlistEntry.source, BadlistEntry.added_at)
                ).all()
                matches = self._matches(session, {name for name, _, _ in rows})
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "read the badlist") from None
        return sorted(
            (
                _badlist_record(name, source, added_at, [path for _, path in matches.get(name, ())])
                for name, source, added_at in rows
            ),
            key=lambda record: record.name,
        )

    def remove_badlist(self, names: Iterable[str]) -> BadlistRemoval:
        """Take names off the badlist (the reverse of :meth:`push_badlist`): the images they matched
        that no remaining entry matches are badlisted no more. Names are the entries as pushed (a
        path, a trailing part of it, or a stem), not the images they match."""
        wanted = {n for n in (normalise_name(n) for n in names) if n}
        try:
            with self._session() as session, session.begin():
                # exclusive, as for a push: a save that read the badlist before this commits, and
                # inserted its image after, would store the picture badlisted by a removed name
                _badlist_lock(session, exclusive=True)
                present = {
                    name: (source, added_at)
                    for name, source, added_at in session.execute(
                        select(BadlistEntry.name, BadlistEntry.source, BadlistEntry.added_at)
                    )
                }
                gone = wanted & present.keys()
                unknown = wanted - gone
                remaining = present.keys() - gone
                matches: dict[str, list[str]] = {}
                badlisted_by: dict[str, set[str]] = {}
                freed, still = [], 0
                for image_id, path in session.execute(select(Image.id, Image.path).order_by(Image.path)):
                    keys = name_keys(path)
                    for name in keys & unknown:
                        badlisted_by.setdefault(name, set()).update(keys & remaining)
                    if not keys & gone:
                        continue
                    for name in keys & gone:
                        matches.setdefault(name, []).append(path)
                    if keys & remaining:
                        still += 1
                    else:
                        freed.append(image_id)
                for chunk in _chunks(sorted(gone)):
                    session.execute(delete(BadlistEntry).where(BadlistEntry.name.in_(chunk)))
                unbadlisted = 0
                for chunk in _chunks(freed):
                    unbadlisted += session.execute(
                        update(Image)
                        .where(Image.id.in_(chunk), Image.badlisted.is_(True))
                        .values(badlisted=False)
                    ).rowcount
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "remove names from the badlist") from None
        return BadlistRemoval(
            removed=[_badlist_record(n, *present[n], matches.get(n, ())) for n in sorted(gone)],
            unknown=sorted(unknown),
            unbadlisted=unbadlisted,
            still_badlisted=still,
            badlisted_by={n: sorted(by) for n, by in sorted(badlisted_by.items()) if by},
        )

    @staticmethod
    def _matches(session: Session, names: set[str]) -> dict[str, list[tuple[int, str]]]:
        """The stored images (id, path) each of ``names`` matches, by path (names matching none
        left out)."""
        found: dict[str, list[tuple[int, str]]] = {}
        if names:
            for image_id, path in session.execute(select(Image.id, Image.path).order_by(Image.path)):
                for name in name_keys(path) & names:
                    found.setdefault(name, []).append((image_id, path))
        return found

    def review(self, names: Iterable[str], status: Status, model: str | None = None) -> tuple[int, list[str]]:
        """Set the status of every segment of the named images (of ``model`` only, if given).
        Returns (segments changed, names that match no stored image)."""
        wanted = {n for n in (normalise_name(n) for n in names) if n}
        try:
            with self._session() as session, session.begin():
                matched, hit = self._match(session, wanted)
                statement = update(Segment).where(Segment.image_id.in_(matched))
                if model is not None:
                    statement = statement.where(Segment.model == model)
                changed = session.execute(
                    statement.values(status=status.value, reviewed_at=_now(), updated_at=_now())
                ).rowcount
                return changed, sorted(wanted - hit)
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "record the review") from None

    def ambiguous_names(self, names: Iterable[str]) -> dict[str, list[str]]:
        """The names among ``names`` that match more than one stored image, with those images."""
        wanted = {n for n in (normalise_name(n) for n in names) if n}
        found: dict[str, list[str]] = {}
        try:
            with self._session() as session:
                for (path,) in session.execute(select(Image.path)):
                    for name in name_keys(path) & wanted:
                        found.setdefault(name, []).append(path)
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "read the images") from None
        return {name: sorted(paths) for name, paths in found.items() if len(paths) > 1}

    # --- reading --------------------------------------------------------------------------------

    def _image_query(self, group: str | None, include_badlisted: bool):
        query = select(Image).order_by(Image.path)
        if group is not None:
            query = (
                query.join(image_groups, image_groups.c.image_id == Image.id)
                .join(Group, Group.id == image_groups.c.group_id)
                .where(Group.name == group)
            )
        if not include_badlisted:
            query = query.where(Image.badlisted.is_(False))
        return query

    def group_names(self) -> list[str]:
        try:
            with self._session() as session:
                return list(session.scalars(select(Group.name).order_by(Group.name)))
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "read the groups") from None

    def images(self, group: str | None = None, include_badlisted: bool = False) -> list[StoredImage]:
        try:
            with self._session() as session:
                rows = session.scalars(self._image_query(group, include_badlisted)).all()
                return [_stored_image(r) for r in rows]
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "read the images") from None

    def segments(
        self,
        group: str | None = None,
        model: str | None = None,
        statuses: Iterable[Status] | None = None,
        include_badlisted: bool = False,
    ) -> list[StoredSegment]:
        images = self._image_query(group, include_badlisted).subquery()
        query = (
            select(Segment, images.c.path)
            .join(images, (images.c.id == Segment.image_id) & (images.c.sha256 == Segment.image_sha256))
            .order_by(images.c.path, Segment.score.desc(), Segment.id)
        )
        if model is not None:
            query = query.where(Segment.model == model)
        if statuses is not None:
            query = query.where(Segment.status.in_([Status(s).value for s in statuses]))
        try:
            with self._session() as session:
                return [_stored_segment(s, p) for s, p in session.execute(query)]
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "read the segments") from None

    def segment_model(self, wanted: str | None = None) -> str:
        """The model whose segments a command uses: ``wanted``, checked against the models the store
        holds segments of, or the store's only model (several: the user must choose)."""
        report = self.status()
        models = sorted(set(report.segmented) | {m for m, _, _, _ in report.counts})
        if wanted is not None:
            if wanted not in models:
                known = ", ".join(models) or "none"
                raise StoreError(
                    f"segment store {self.url}: no segments of model {wanted!r} (models: {known})"
                )
            return wanted
        if not models and report.images and report.badlisted == report.images:
            raise StoreError(
                f"segment store {self.url}: all {report.images} stored images are badlisted "
                "(seg-client segments badlist push put them there); no segments are left to use"
            )
        if not models:
            raise StoreError(
                f"segment store {self.url}: holds no segments; run seg-client segments build first"
            )
        if len(models) > 1:
            raise StoreError(
                f"segment store {self.url} holds segments of several models ({', '.join(models)}): "
                "choose one with --segment-model"
            )
        return models[0]

    def status(self, group: str | None = None) -> StatusReport:
        report = StatusReport()
        every = self._image_query(group, include_badlisted=True).subquery()
        kept = self._image_query(group, include_badlisted=False).subquery()
        try:
            with self._session() as session:
                report.images = session.scalar(select(func.count()).select_from(every)) or 0
                report.badlisted = report.images - (
                    session.scalar(select(func.count()).select_from(kept)) or 0
                )
                for model, n in session.execute(
                    select(Segmentation.model, func.count())
                    .join(kept, kept.c.id == Segmentation.image_id)
                    .group_by(Segmentation.model)
                    .order_by(Segmentation.model)
                ):
                    report.segmented[model] = n
                report.counts = [
                    (m, c, s, n)
                    for m, c, s, n in session.execute(
                        select(Segment.model, Segment.class_name, Segment.status, func.count())
                        .join(kept, (kept.c.id == Segment.image_id) & (kept.c.sha256 == Segment.image_sha256))
                        .group_by(Segment.model, Segment.class_name, Segment.status)
                        .order_by(Segment.model, Segment.class_name, Segment.status)
                    )
                ]
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._failed(exc, "count the segments") from None
        return report


def _chunks(items: Sequence, size: int = 500) -> Iterator[Sequence]:
    """``items`` a few hundred at a time: one IN (...) each, well within SQLite's bound parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _badlist_record(name: str, source: str | None, added_at: datetime | None, matches) -> BadlistRecord:
    if added_at is not None:  # SQLite gives back the UTC time it was given, without its zone
        added_at = added_at.replace(tzinfo=timezone.utc) if added_at.tzinfo is None else added_at
        added_at = added_at.astimezone(timezone.utc)
    return BadlistRecord(name=name, source=source or "", added_at=added_at, matches=tuple(sorted(matches)))


def _stored_image(row: Image) -> StoredImage:
    return StoredImage(
        id=row.id,
        path=row.path,
        width=row.width,
        height=row.height,
        sha256=row.sha256,
        size=row.size,
        badlisted=row.badlisted,
        groups=tuple(sorted(g.name for g in row.groups)),
    )


def _stored_segment(row: Segment, path: str) -> StoredSegment:
    width, height = row.mask_width, row.mask_height
    return StoredSegment(
        id=row.id,
        image_id=row.image_id,
        image=path,
        width=width,
        height=height,
        model=row.model,
        model_version=row.model_version,
        class_id=row.class_id,
        class_name=row.class_name,
        score=row.score,
        bbox=(row.x1, row.y1, row.x2, row.y2),
        rle={"size": [height, width], "counts": row.rle_counts},
        status=Status(row.status),
    )
