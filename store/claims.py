"""Claims on a job's images, so that several workers sharing a PostgreSQL store never do one
image at once.

A job (``job_key``: the command, model, settings and image list) has one row per image not yet
finished. A worker claims a batch with ``SELECT … FOR UPDATE SKIP LOCKED`` (workers claiming at
the same moment skip each other's rows instead of waiting) among the rows nobody holds or whose
lease has run out, and holds them for ``lease_s``, renewed by a heartbeat while it runs. Finishing
an image deletes its row. A worker that dies stops renewing: its rows are claimable again once
their lease has passed. Leases are measured by the database's clock, which workers on several
machines share. Whether an image is *done* is the command's own business (a file, a stored
segmentation), checked again after each claim; claims only keep workers apart.

Locks are taken in one order (by item) or skipped, never waited on in another order: two
workers offering the same images, or one worker's heartbeat renewing while it finishes, cannot
deadlock.

SQLite has no SKIP LOCKED and serves one writer at a time: there, claims are not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from store.database import _reason, deadline, shown
from store.errors import StoreError
from store.schema import WorkClaim

__all__ = ["WorkClaims", "claimed", "default_worker", "job_key"]

CHUNK = 1000  # rows per INSERT when offering, items per IN list elsewhere
KIND_CHARS = 60  # the readable head of a job key (work_claims.job holds 128)


def job_key(kind: str, *parts: str) -> str:
    """A stable key for the job ``kind`` and ``parts`` describe: ``"<kind>:<32 hex digits>"``,
    the digits the start of the sha256 of ``[kind, *parts]`` as JSON. Workers given the same
    command, settings and images get the same key, any difference another; pass what defines
    the job (the command, model, its version, settings) and the sorted image names, each part a
    string (or JSON-able: dict keys are sorted)."""
    canonical = json.dumps([kind, *parts], ensure_ascii=False, sort_keys=True)
    # a file name that is not UTF-8 (a lone surrogate from os.listdir) still has a key
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{kind[:KIND_CHARS]}:{digest[:32]}"


def default_worker() -> str:
    """``host:pid:random``: who holds a claim, unique per process run."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(3)}"


def _chunks(items: Iterable[str]) -> Iterator[list[str]]:
    """The distinct items, sorted (every statement locks rows in this one order), in chunks."""
    ordered = sorted(set(items))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


class WorkClaims:
    """One worker's claims on ``job`` in the store at ``engine`` (PostgreSQL only: StoreError
    elsewhere; ask :meth:`supported` first). ``worker`` names this worker in the rows it holds
    (default: :func:`default_worker`); ``lease_s``: how long a claim lasts unless renewed."""

    def __init__(self, engine: Engine, job: str, worker: str | None = None, lease_s: float = 60.0):
        if not self.supported(engine):
            raise StoreError(
                f"segment store {shown(engine.url)}: several workers share a run through PostgreSQL; "
                "SQLite serves one at a time"
            )
        if lease_s <= 0:
            raise ValueError(f"lease_s must be positive, not {lease_s}")
        self.engine = engine
        self.job = job
        self.worker = worker or default_worker()
        self.lease_s = float(lease_s)
        self.error: StoreError | None = None  # what stopped the heartbeat, raised by the next call

    @staticmethod
    def supported(engine: Engine) -> bool:
        """Whether claims work on this store: PostgreSQL (SKIP LOCKED), not SQLite."""
        return engine.dialect.name == "postgresql"

    def _lease_end(self):
        return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, self.lease_s)

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Session]:
        if self.error is not None:
            raise self.error
        try:
            with deadline(self.engine), Session(self.engine) as session, session.begin():
                yield session
        except (DBAPIError, SQLAlchemyError) as exc:
            raise StoreError(
                f"segment store {shown(self.engine.url)}: cannot {doing}: {_reason(exc)}"
            ) from None

    def offer(self, items: Iterable[str]) -> int:
        """Add the images not yet in the job, ``CHUNK`` to a statement (a finished one, whose row
        is gone, comes back: the command's own check says it is done). Returns how many rows
        were new."""
        added = 0
        for chunk in _chunks(items):
            rows = [{"job": self.job, "item": item, "offered_at": func.now()} for item in chunk]
            with self._transaction("offer the images to the other workers") as session:
                result = session.execute(
                    insert(WorkClaim).values(rows).on_conflict_do_nothing().returning(WorkClaim.item)
                )
                added += len(result.all())
        return added

    def started(self) -> datetime:
        """When the job began, by the database's clock: the first offer of the images it still
        has. A worker that joins late redoes nothing finished since then (with --overwrite, say)."""
        with self._transaction("read when the run began") as session:
            first = session.scalar(select(func.min(WorkClaim.offered_at)).where(WorkClaim.job == self.job))
            return first if first is not None else session.scalar(select(func.now()))

    def claim(self, n: int) -> list[str]:
        """Up to ``n`` images (in name order) nobody holds or whose holder's lease has passed, now
        held by this worker for the lease. [] when none is free now (see :meth:`remaining`)."""
        if n < 1:
            raise ValueError(f"claim at least one image, not {n}")
        with self._transaction("claim images") as session:
            free = (
                select(WorkClaim.item)
                .where(
                    WorkClaim.job == self.job,
                    WorkClaim.lease_until.is_(None) | (WorkClaim.lease_until < func.now()),
                )
                .order_by(WorkClaim.item)
                .limit(n)
                .with_for_update(skip_locked=True)
            )
            items = list(session.scalars(free))
            if items:
                session.execute(
                    update(WorkClaim)
                    .where(WorkClaim.job == self.job, WorkClaim.item.in_(items))
                    .values(
                        worker=self.worker, lease_until=self._lease_end(), attempts=WorkClaim.attempts + 1
                    )
                )
            return items

    def renew(self) -> int:
        """Extend the lease of every image this worker holds; returns how many. A row another
        transaction has locked (this worker finishing or giving it back) is skipped, not waited
        for: renewing never deadlocks with them."""
        with self._transaction("renew this worker's claims") as session:
            mine = (
                select(WorkClaim.item)
                .where(WorkClaim.job == self.job, WorkClaim.worker == self.worker)
                .order_by(WorkClaim.item)
                .with_for_update(skip_locked=True)
            )
            return session.execute(
                update(WorkClaim)
                .where(WorkClaim.job == self.job, WorkClaim.worker == self.worker, WorkClaim.item.in_(mine))
                .values(lease_until=self._lease_end())
            ).rowcount

    def _finished(self, items: list[str]):
        """The rows of ``items`` this worker holds or nobody does, locked in name order."""
        return delete(WorkClaim).where(
            WorkClaim.job == self.job,
            WorkClaim.item.in_(
                select(WorkClaim.item)
                .where(
                    WorkClaim.job == self.job,
                    WorkClaim.item.in_(items),
                    (WorkClaim.worker == self.worker) | WorkClaim.worker.is_(None),
                )
                .order_by(WorkClaim.item)
                .with_for_update()
            ),
        )

    def finish(self, items: Iterable[str]) -> None:
        """These images are done (or failed for good): their rows go. A row another worker holds
        now (this one's lease ran out and it was taken) stays."""
        for chunk in _chunks(items):
            with self._transaction("record finished images") as session:
                session.execute(self._finished(chunk))

    def finish_in(self, session: Session, items: Iterable[str]) -> None:
        """:meth:`finish` inside the caller's transaction on the same database (any engine):
        the rows go when it commits, and stay if it rolls back. Database errors are the
        caller's to turn into a StoreError, as for the rest of its transaction."""
        for chunk in _chunks(items):
            session.execute(self._finished(chunk))

    def release(self, items: Iterable[str]) -> None:
        """Give back images this worker holds without finishing them: claimable at once."""
        for chunk in _chunks(items):
            with self._transaction("give back claimed images") as session:
                mine = (
                    select(WorkClaim.item)
                    .where(
                        WorkClaim.job == self.job,
                        WorkClaim.item.in_(chunk),
                        WorkClaim.worker == self.worker,
                    )
                    .order_by(WorkClaim.item)
                    .with_for_update()
                )
                session.execute(
                    update(WorkClaim)
                    .where(WorkClaim.job == self.job, WorkClaim.item.in_(mine))
                    .values(worker=None, lease_until=None)
                )

    def remaining(self, include_mine: bool = True) -> tuple[int, float | None]:
        """(images left in the job; seconds until the soonest lease another worker holds runs
        out, by the database's clock, 0 when one has already; None when no other worker holds
        one). ``include_mine=False`` leaves out the images this worker holds (in flight)."""
        left = select(func.count()).where(WorkClaim.job == self.job)
        if not include_mine:
            left = left.where(
                WorkClaim.worker.is_(None)
                | (WorkClaim.worker != self.worker)
                | (WorkClaim.lease_until < func.now())
            )
        soonest = select(func.extract("epoch", func.min(WorkClaim.lease_until) - func.now())).where(
            WorkClaim.job == self.job,
            WorkClaim.lease_until.is_not(None),
            WorkClaim.worker != self.worker,
        )
        with self._transaction("count the images left") as session:
            count, wait_s = session.scalar(left), session.scalar(soonest)
        return int(count or 0), (max(0.0, float(wait_s)) if wait_s is not None else None)

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Renew this worker's leases every third of a lease while the block runs. A renewal that
        fails is tried again at the next beat; once no renewal has succeeded for two thirds of a
        lease (the next would come too late: others may take the images), the heartbeat stops and
        keeps the error in ``error``, raised by every later call (claim, finish...)."""
        stop = threading.Event()
        interval = self.lease_s / 3

        def beat() -> None:
            renewed = time.monotonic()
            while not stop.wait(interval):
                try:
                    self.renew()
                    renewed = time.monotonic()
                except StoreError as exc:
                    if time.monotonic() - renewed + interval >= self.lease_s * 0.99:
                        self.error = exc
                        return

        thread = threading.Thread(target=beat, name="claims heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


def claimed(
    claims: WorkClaims, batch: int, wait_cap_s: float = 2.0, stop: threading.Event | None = None
) -> Iterator[str]:
    """The job's images as this worker claims them, ``batch`` at a time; each yielded one is held
    by it until the caller finishes or releases it. When none is free while other workers hold
    some, waits until the soonest of their leases runs out (at most ``wait_cap_s``) and asks
    again: a worker that dies leaves nothing undone. Ends when no image is left but those this
    worker holds (the caller's, in flight), or soon after ``stop`` is set; claimed images not
    yet yielded when it ends (stop, Ctrl-C, ``close()``) are given back."""
    stop = stop or threading.Event()
    pending: list[str] = []
    try:
        while not stop.is_set():
            pending = claims.claim(batch)
            if not pending:
                left, wait_s = claims.remaining(include_mine=False)
                if left == 0:
                    return
                stop.wait(wait_cap_s if wait_s is None else min(wait_s + 0.05, wait_cap_s))
                continue
            while pending and not stop.is_set():
                yield pending.pop(0)  # the caller's from here on
    finally:
        if pending:
            with suppress(StoreError):  # else their lease runs out
                claims.release(pending)
