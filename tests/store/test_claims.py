"""Claims on a real PostgreSQL: workers claiming at once get disjoint images, a dead worker's
images return after its lease and not before, a live one's heartbeat keeps them, and SQLite says
it cannot share. Also: the 0003 migration keeps an 0002 store's rows."""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from store import claims as claims_module
from store import database
from store.claims import WorkClaims, claimed, default_worker, job_key
from store.database import head_revision, open_database
from store.errors import StoreError
from store.segment_store import SegmentStore

ITEMS = [f"img{i:03d}.jpg" for i in range(300)]


@pytest.fixture
def engine(postgres_server):
    engine = open_database(postgres_server.create_database())
    yield engine
    engine.dispose()


def rows(engine, job: str) -> dict[str, tuple]:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT item, worker, attempts FROM work_claims WHERE job = :job"), {"job": job}
        )
        return {item: (worker, attempts) for item, worker, attempts in found}


def test_three_workers_claiming_at_once_get_every_image_exactly_once(engine):
    job = job_key("test", "three workers", *ITEMS)
    got: list[list[str]] = [[], [], []]
    failed: list[BaseException] = []
    start = threading.Barrier(3)

    def work(n: int) -> None:
        try:
            claims = WorkClaims(engine, job, worker=f"w{n}", lease_s=30)
            start.wait()
            claims.offer(random.Random(n).sample(ITEMS, len(ITEMS)))  # each in its own order
            for item in claimed(claims, 7, wait_cap_s=0.1):
                got[n].append(item)
                claims.finish([item])
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failed, failed
    every = [item for items in got for item in items]
    assert sorted(every) == ITEMS  # each once: none twice, none lost
    assert all(got), [len(g) for g in got]
    assert WorkClaims(engine, job).remaining() == (0, None)


def test_a_dead_workers_claims_return_after_the_lease_and_not_before(engine):
    job = job_key("test", "lease")
    dead = WorkClaims(engine, job, worker="dead", lease_s=1.0)
    alive = WorkClaims(engine, job, worker="alive", lease_s=30)
    dead.offer(ITEMS[:10])
    held = dead.claim(4)
    assert held == ITEMS[:4]
    assert alive.claim(10) == ITEMS[4:10]  # the others, at once
    alive.finish(ITEMS[4:10])
    left, wait_s = alive.remaining()
    assert left == 4 and 0 < wait_s <= 1.0
    assert alive.claim(10) == []  # still the dead one's
    time.sleep(wait_s + 0.2)
    assert alive.remaining() == (4, 0.0)  # run out, by the database's clock
    assert alive.claim(10) == held
    assert rows(engine, job) == {item: ("alive", 2) for item in held}
    dead.finish(held)  # too late: no longer the dead one's
    assert len(rows(engine, job)) == 4
    alive.finish(held)
    assert alive.remaining() == (0, None)


def test_renew_and_the_heartbeat_keep_a_live_workers_claims(engine):
    job = job_key("test", "heartbeat")
    worker = WorkClaims(engine, job, worker="beating", lease_s=0.6)
    other = WorkClaims(engine, job, worker="other", lease_s=30)
    worker.offer(ITEMS[:3])
    assert worker.claim(2) == ITEMS[:2]
    time.sleep(0.4)
    assert worker.renew() == 2  # by hand
    time.sleep(0.4)  # past the first lease, within the renewed one
    assert other.claim(3) == ITEMS[2:3]
    with worker.heartbeat():
        time.sleep(1.5)  # two and a half leases
        assert other.claim(3) == []
        assert other.remaining()[1] <= 0.6
    assert worker.error is None
    assert worker.renew() == 2


def test_renew_skips_a_row_being_finished_instead_of_waiting(engine, postgres_server):
    """A renewal and this worker's own finish lock rows in different orders: renewing skips a
    row another transaction holds, so the two never deadlock."""
    job = job_key("test", "no deadlock")
    worker = WorkClaims(engine, job, worker="w", lease_s=30)
    worker.offer(ITEMS[:3])
    worker.claim(3)
    with Session(engine) as session, session.begin():
        session.execute(
            text("SELECT 1 FROM work_claims WHERE job = :job AND item = :item FOR UPDATE"),
            {"job": job, "item": ITEMS[1]},
        )
        began = time.monotonic()
        assert worker.renew() == 2
        assert time.monotonic() - began < 5  # not the 60 s lock timeout
    assert worker.renew() == 3


def test_a_heartbeat_survives_one_failed_renewal_and_stops_after_two(engine, monkeypatch):
    job = job_key("test", "flaky")
    worker = WorkClaims(engine, job, worker="w", lease_s=0.9)
    other = WorkClaims(engine, job, worker="other", lease_s=30)
    worker.offer(ITEMS[:2])
    worker.claim(2)
    renew = worker.renew
    failures = iter([True])  # the first renewal fails, the others succeed

    def flaky() -> int:
        if next(failures, False):
            raise StoreError("segment store x: cannot renew this worker's claims: blip")
        return renew()

    monkeypatch.setattr(worker, "renew", flaky)
    with worker.heartbeat():
        time.sleep(1.5)
        assert worker.error is None
        assert other.claim(2) == []

    def down() -> int:
        raise StoreError("segment store x: cannot renew this worker's claims: gone")

    monkeypatch.setattr(worker, "renew", down)
    with worker.heartbeat():
        deadline = time.monotonic() + 5
        while worker.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert worker.error is not None and "gone" in str(worker.error)
    with pytest.raises(StoreError, match="gone"):
        worker.claim(1)
    with pytest.raises(StoreError, match="gone"):
        worker.finish(ITEMS[:2])


def test_finish_release_and_offer(engine, monkeypatch):
    monkeypatch.setattr(claims_module, "CHUNK", 3)  # several statements for a few images
    job = job_key("test", "release")
    a = WorkClaims(engine, job, worker="a", lease_s=60)
    b = WorkClaims(engine, job, worker="b", lease_s=60)
    assert a.offer(ITEMS[:8]) == 8
    assert b.offer(ITEMS[:10] + ITEMS[:2]) == 2  # only the new ones; duplicates once
    assert a.remaining() == (10, None)
    assert a.claim(5) == ITEMS[:5]
    assert b.remaining() == (10, pytest.approx(60, abs=2))
    a.release(ITEMS[:2])
    b.release(ITEMS[2:4])  # not b's: stays a's
    assert b.claim(5) == [*ITEMS[:2], *ITEMS[5:8]]  # the given-back ones at once
    b.finish(ITEMS[3:5])  # a's: stay
    b.finish([ITEMS[9]])  # nobody's: goes
    a.finish(ITEMS[2:5])
    assert sorted(rows(engine, job)) == [*ITEMS[:2], *ITEMS[5:9]]
    assert a.claim(5) == [ITEMS[8]]
    a.finish([])
    a.release([])


def test_finish_in_the_callers_transaction(engine):
    job = job_key("test", "finish in")
    claims = WorkClaims(engine, job, lease_s=60)
    claims.offer(ITEMS[:2])
    claims.claim(2)
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        claims.finish_in(session, ITEMS[:1])
        raise RuntimeError("the segments could not be stored")
    assert sorted(rows(engine, job)) == ITEMS[:2]  # rolled back with it
    with Session(engine) as session, session.begin():
        claims.finish_in(session, ITEMS[:1])
    assert sorted(rows(engine, job)) == ITEMS[1:2]


def test_claimed_waits_for_others_and_ends_when_stopped_or_closed(engine):
    job = job_key("test", "claimed")
    a = WorkClaims(engine, job, worker="a", lease_s=60)
    b = WorkClaims(engine, job, worker="b", lease_s=60)
    a.offer(ITEMS[:6])
    batch = claimed(a, 5)
    first = next(batch)
    batch.close()  # the four claimed and not yielded go back
    assert first == ITEMS[0]
    assert b.claim(10) == ITEMS[1:6]

    stop = threading.Event()
    out: list[str] = []
    waiting = threading.Thread(target=lambda: out.extend(claimed(a, 5, wait_cap_s=30, stop=stop)))
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive() and out == []  # all held by b (and a's first)
    began = time.monotonic()
    stop.set()
    waiting.join(timeout=5)
    assert not waiting.is_alive() and time.monotonic() - began < 2
    b.release(ITEMS[1:6])
    got = []
    for item in claimed(a, 2):
        got.append(item)
        if item != ITEMS[5]:
            a.finish([item])
    assert got == ITEMS[1:6]  # ends when none is left but the one a still holds (in flight)
    assert a.remaining() == (2, None) and a.remaining(include_mine=False) == (0, None)
    assert b.remaining(include_mine=False) == (2, pytest.approx(60, abs=2))
    a.finish([first, ITEMS[5]])
    assert list(claimed(a, 2)) == []


def test_jobs_do_not_see_each_others_images(engine):
    one = WorkClaims(engine, job_key("test", "one"), lease_s=60)
    two = WorkClaims(engine, job_key("test", "two"), lease_s=60)
    assert one.offer(["a.jpg", "b.jpg"]) == 2
    assert two.offer(["b.jpg"]) == 1
    assert one.claim(5) == ["a.jpg", "b.jpg"] and two.claim(5) == ["b.jpg"]
    one.finish(["b.jpg"])
    assert one.remaining() == (1, None) and two.remaining() == (1, None)
    assert two.renew() == 1


def test_job_keys():
    key = job_key("segments build", "m", "v1", "a.jpg", "b.jpg")
    assert key == job_key("segments build", "m", "v1", "a.jpg", "b.jpg")  # stable
    assert key.startswith("segments build:") and len(key.split(":")[1]) == 32
    assert key != job_key("segments build", "m", "v2", "a.jpg", "b.jpg")
    assert job_key("x", "ab", "c") != job_key("x", "a", "bc")
    assert len(job_key("k" * 500, "p")) <= 128
    assert job_key("x", "caf\udce9.jpg") != job_key("x", "cafe.jpg")  # a name that is not UTF-8
    assert default_worker() != default_worker()


def test_errors_are_one_line_and_name_the_store(engine):
    claims = WorkClaims(engine, job_key("test", "errors"), lease_s=60)
    with pytest.raises(StoreError) as caught:
        claims.offer(["x" * 2000])  # longer than work_claims.item holds
    message = str(caught.value)
    assert message.startswith(f"segment store {database.shown(engine.url)}: cannot offer")
    assert "\n" not in message
    with pytest.raises(ValueError):
        claims.claim(0)


def test_sqlite_cannot_share(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert not WorkClaims.supported(engine)
        with pytest.raises(StoreError, match="through PostgreSQL") as caught:
            WorkClaims(engine, job_key("test", "x"))
        assert str(tmp_path / "s.db") in str(caught.value) and "\n" not in str(caught.value)
    finally:
        engine.dispose()


def test_a_lost_database_stops_the_heartbeat_and_the_next_call_says_so(postgres_server):
    url = postgres_server.create_database()
    engine = open_database(url)
    claims = WorkClaims(engine, job_key("test", "lost"), lease_s=0.6)
    claims.offer(["a.jpg"])
    claims.claim(1)
    try:
        with claims.heartbeat():
            admin = create_engine(postgres_server.url("postgres"), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:  # the database goes away under the worker
                conn.exec_driver_sql(f'ALTER DATABASE "{engine.url.database}" ALLOW_CONNECTIONS false')
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{engine.url.database}'"
                )
            admin.dispose()
            engine.dispose()
            deadline = time.monotonic() + 10
            while claims.error is None and time.monotonic() < deadline:
                time.sleep(0.05)
        with pytest.raises(StoreError, match="cannot renew") as caught:
            claims.claim(1)
        assert "\n" not in str(caught.value)
    finally:
        engine.dispose()


def test_upgrading_an_0002_store_adds_the_claims_and_keeps_every_row(database_url):
    from alembic import command

    from tests.store.old_rows import write_0002_rows

    engine = database.create_store_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(database._alembic_config(connection), "0002")
        write_0002_rows(connection)  # as that version wrote them: its tables, not today's
    engine.dispose()
    with SegmentStore.open(database_url) as store:
        with store.engine.connect() as conn:
            assert (
                conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
            )
            assert conn.execute(text("SELECT count(*) FROM work_claims")).scalar_one() == 0
        assert [s.rle["counts"] for s in store.segments()] == ["abc"]
        assert store.done_paths("m") == {"1.jpg": "a" * 64} and store.group_names() == ["g"]


def test_a_worker_whose_image_timed_out_does_not_wait_for_its_own_claim(engine):
    """An image that got no answer within --timeout (the server stays ready, the run goes on) is
    a reported failure: its claim ends, so the worker's loop ends instead of waiting on itself."""
    from clients.triton.client import DEADLINE_EXCEEDED
    from clients.triton.request_loop import RequestError
    from clients.triton.work_share import SharedWork

    items = ["a.jpg", "b.jpg", "c.jpg"]
    share = SharedWork(WorkClaims(engine, job_key("test", "timeout"), worker="w", lease_s=30), batch=2)

    def answer(name: str):
        def job() -> int:
            if name == "b.jpg":
                raise RequestError("no reply within 2 s (--timeout)", DEADLINE_EXCEEDED)
            return 1

        return job

    done, failed = [], []
    ended = threading.Event()

    def run() -> None:
        for item, job in share.jobs([(n, n, answer(n)) for n in items], lambda todo, began: set(todo)):
            try:
                done.append((item, job()))
            except RequestError:
                failed.append(item)
        ended.set()

    threading.Thread(target=run, daemon=True).start()
    assert ended.wait(20), "the worker waits on the claim of its own failed image"
    assert sorted(done) == [("a.jpg", 1), ("c.jpg", 1)] and failed == ["b.jpg"]
    assert share.held == set() and rows(engine, job_key("test", "timeout")) == {}
