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

SQLite has no SKIP LOCKED and serves one writer at a time: there, claims are not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from store.database import _reason, deadline, shown
from store.errors import StoreError
from store.schema import WorkClaim

CHUNK = 1000  # rows per INSERT when offering


def job_key(kind: str, *parts: str) -> str:
    """A stable key for the job ``parts`` describe: workers given the same command, settings and
    images get the same one, any difference another."""
    digest = hashlib.sha256(json.dumps([kind, *parts], ensure_ascii=False).encode()).hexdigest()
    return f"{kind[:60]}:{digest[:32]}"


def default_worker() -> str:
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(3)}"


class WorkClaims:
    """One worker's claims on ``job`` in the store at ``engine`` (PostgreSQL only)."""

    def __init__(self, engine: Engine, job: str, worker: str | None = None, lease_s: float = 60.0):
        if not self.supported(engine):
            raise StoreError(
                f"segment store {shown(engine.url)}: several workers share a run through PostgreSQL; "
                "SQLite serves one at a time"
            )
        self.engine = engine
        self.job = job
        self.worker = worker or default_worker()
        self.lease_s = float(lease_s)
        self.error: StoreError | None = None  # what stopped the heartbeat, raised by the next call

    @staticmethod
    def supported(engine: Engine) -> bool:
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
        """Add the images not yet in the job (a finished one, whose row is gone, comes back:
        the command's own check says it is done). Returns how many rows were new."""
        wanted = list(dict.fromkeys(items))
        added = 0
        for start in range(0, len(wanted), CHUNK):
            rows = [
                {"job": self.job, "item": item, "offered_at": func.now()}
                for item in wanted[start : start + CHUNK]
            ]
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
        """Up to ``n`` images nobody holds (or whose holder's lease has passed), now held by this
        worker for the lease."""
        with self._transaction("claim images") as session:
            free = (
                select(WorkClaim.job, WorkClaim.item)
                .where(
                    WorkClaim.job == self.job,
                    (WorkClaim.lease_until.is_(None)) | (WorkClaim.lease_until < func.now()),
                )
                .order_by(WorkClaim.item)
                .limit(n)
                .with_for_update(skip_locked=True)
            )
            items = [item for _, item in session.execute(free)]
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
        """Extend the lease of every image this worker holds; returns how many."""
        with self._transaction("renew this worker's claims") as session:
            return session.execute(
                update(WorkClaim)
                .where(WorkClaim.job == self.job, WorkClaim.worker == self.worker)
                .values(lease_until=self._lease_end())
            ).rowcount

    def finish(self, items: Sequence[str]) -> None:
        """These images are done (or failed for good): their rows go."""
        if not items:
            return
        with self._transaction("record finished images") as session:
            session.execute(
                delete(WorkClaim).where(
                    WorkClaim.job == self.job,
                    WorkClaim.item.in_(list(items)),
                    (WorkClaim.worker == self.worker) | WorkClaim.worker.is_(None),
                )
            )

    def release(self, items: Sequence[str]) -> None:
        """Give back images this worker holds without finishing them: claimable at once."""
        if not items:
            return
        with self._transaction("give back claimed images") as session:
            session.execute(
                update(WorkClaim)
                .where(
                    WorkClaim.job == self.job,
                    WorkClaim.item.in_(list(items)),
                    WorkClaim.worker == self.worker,
                )
                .values(worker=None, lease_until=None)
            )

    def remaining(self) -> tuple[int, float | None]:
        """(images left in the job, seconds until the soonest lease another worker holds runs
        out, by the database's clock; None when none is held by another)."""
        with self._transaction("count the images left") as session:
            left = session.scalar(select(func.count()).where(WorkClaim.job == self.job))
            soonest = session.scalar(
                select(func.extract("epoch", func.min(WorkClaim.lease_until) - func.now())).where(
                    WorkClaim.job == self.job,
                    WorkClaim.lease_until.is_not(None),
                    WorkClaim.worker != self.worker,
                )
            )
        return int(left or 0), (max(0.0, float(soonest)) if soonest is not None else None)

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Renew this worker's leases every third of a lease while the block runs. A renewal
        that fails is kept in ``error`` and raised by the next call."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.lease_s / 3):
                try:
                    self.renew()
                except StoreError as exc:
                    self.error = exc
                    return

        thread = threading.Thread(target=beat, name="claims heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
