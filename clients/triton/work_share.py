"""Several workers on one group, coordinated by the PostgreSQL store they already share.

Each worker offers the images it would do under one job key (what the command, model, settings
and image list are), then claims them in batches (``store.claims``: ``FOR UPDATE SKIP LOCKED``
with a lease that a heartbeat renews). A claimed image is checked again — another worker may
have done it since this one looked (``recheck``) — and a done one is let go without asking the
server. Finishing an image deletes its claim; a worker that dies holds its claims only until
their lease runs out, then the others take them. When nothing is left to claim, a worker waits
for the images others still hold, so that when its run ends the whole job is done.

No coordinator of our own: two workers never hold one image at once, and each image's result is
written or stored once (a killed worker's last answers, if it wrote them, are found by the
recheck).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from clients.triton.client import DEADLINE_EXCEEDED, INVALID_ARGUMENT, ClientError
from clients.triton.image_sources import ImageItem
from clients.triton.request_loop import RequestError
from store.errors import StoreError

DEFAULT_LEASE_S = 60.0
WAIT_CAP_S = 2.0  # the longest a worker sleeps before asking again for work others hold

Job = Callable[[], int]


@dataclass
class SharedWork:
    """One worker's share of a job. ``batch``: images claimed at a time."""

    claims: object  # store.claims.WorkClaims
    batch: int
    done_elsewhere: int = 0  # claimed, but found done by another worker
    held: set[str] = field(default_factory=set)

    def jobs(
        self,
        todo: Sequence[tuple[str, ImageItem, Job]],
        recheck: Callable[[list[ImageItem], datetime], set[ImageItem]],
    ) -> Iterator[tuple[ImageItem, Job]]:
        """The (item, job) pairs of ``todo`` (each named by its name in the job) that this worker
        claims and ``recheck`` says are still to do, given when the shared run began (the
        database's clock: a command that redoes finished work redoes nothing done since). Ends
        when no image of the job is left."""
        by_name = {name: (item, job) for name, item, job in todo}
        self.claims.offer(by_name)
        began = self.claims.started()
        while True:
            names = self.claims.claim(self.batch)
            if not names:
                left, wait_s = self.claims.remaining()
                if left == 0:
                    return
                time.sleep(min(wait_s if wait_s is not None else WAIT_CAP_S, WAIT_CAP_S) + 0.05)
                continue
            self.held.update(names)
            strangers = [n for n in names if n not in by_name]
            if strangers:  # the job key covers the image list: only a bug of ours gets here
                self.release(strangers)
            claimed = [by_name[n] for n in names if n in by_name]
            still = recheck([item for item, _ in claimed], began)
            for name in [n for n in names if n in by_name]:
                item, job = by_name[name]
                if item in still:
                    yield item, self._finishing(name, job)
                else:
                    self.done_elsewhere += 1
                    self.finish(name)

    def _finishing(self, name: str, job: Job) -> Job:
        """``job``, whose image's claim ends with it: when it succeeds, and when the image itself
        failed (refused, or no answer within --timeout from a server that stays ready: reported;
        no other worker should fail it again, a re-run retries it). A server that went away, Ctrl-C
        or a crash leave the claim, given back when the run ends. A claim kept after a failure
        the run outlives would keep this worker waiting for it forever."""

        def run() -> int:
            try:
                found = job()
            except RequestError as exc:
                if exc.status in (INVALID_ARGUMENT, DEADLINE_EXCEEDED):
                    self.finish(name)
                raise
            except ValueError:
                self.finish(name)
                raise
            self.finish(name)
            return found

        return run

    def finish(self, name: str) -> None:
        self.claims.finish([name])
        self.held.discard(name)

    def release(self, names: Sequence[str]) -> None:
        self.claims.release(names)
        self.held.difference_update(names)


@contextmanager
def shared_work(
    db_url: str | None,
    job: Sequence[str],
    lease_s: float,
    batch: int,
    required: bool = False,
) -> Iterator[SharedWork | None]:
    """The worker's share of ``job`` (the parts of its key) where ``db_url`` is a PostgreSQL
    store; None elsewhere (SQLite has no SKIP LOCKED: one worker at a time, as before), or a
    ClientError when ``required`` (the command was given the store for nothing else)."""
    if db_url is None:
        yield None
        return
    from store.claims import WorkClaims, job_key
    from store.database import open_database

    engine = open_database(db_url)
    try:
        if not WorkClaims.supported(engine):
            if required:
                raise ClientError(
                    f"--db {engine.url.render_as_string(hide_password=True)}: workers share a run "
                    "through a PostgreSQL store; SQLite serves one worker (leave --db out)"
                )
            yield None
            return
        claims = WorkClaims(engine, job_key(*job), lease_s=lease_s)
        share = SharedWork(claims, batch)
        with claims.heartbeat():
            try:
                yield share
            finally:
                if share.held:  # stopped early: the others may take these at once
                    with contextlib.suppress(StoreError):  # else their lease runs out
                        share.release(sorted(share.held))
    finally:
        engine.dispose()
