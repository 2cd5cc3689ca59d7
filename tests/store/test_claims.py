"""Claims on a real PostgreSQL: workers claiming at once get disjoint images, a dead worker's
images return after its lease and not before, and SQLite says it cannot share."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine

from store.claims import WorkClaims, job_key
from store.database import open_database
from store.errors import StoreError

ITEMS = [f"img{i:03d}.jpg" for i in range(300)]


@pytest.fixture
def engine(postgres_server):
    engine = open_database(postgres_server.create_database())
    yield engine
    engine.dispose()


def test_three_workers_claiming_at_once_get_every_image_exactly_once(engine):
    job = job_key("test", "three workers")
    got: list[list[str]] = [[], [], []]

    def work(n: int) -> None:
        claims = WorkClaims(engine, job, worker=f"w{n}", lease_s=30)
        claims.offer(ITEMS)
        while items := claims.claim(7):
            got[n].extend(items)
            claims.finish(items)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [item for items in got for item in items]
    assert sorted(every) == ITEMS  # each once: none twice, none lost
    assert all(got), [len(g) for g in got]
    assert WorkClaims(engine, job).remaining() == (0, None)


def test_a_dead_workers_claims_return_after_the_lease_and_not_before(engine):
    job = job_key("test", "lease")
    dead = WorkClaims(engine, job, worker="dead", lease_s=1.5)
    alive = WorkClaims(engine, job, worker="alive", lease_s=30)
    dead.offer(ITEMS[:10])
    held = dead.claim(4)
    assert held == ITEMS[:4]
    assert alive.claim(10) == ITEMS[4:10]  # the others, at once
    alive.finish(ITEMS[4:10])
    left, wait_s = alive.remaining()
    assert left == 4 and 0 < wait_s <= 1.5
    assert alive.claim(10) == []  # still the dead one's
    time.sleep(wait_s + 0.2)
    assert alive.claim(10) == held
    alive.finish(held)
    assert alive.remaining() == (0, None)


def test_the_heartbeat_keeps_a_live_workers_claims(engine):
    job = job_key("test", "heartbeat")
    worker = WorkClaims(engine, job, worker="beating", lease_s=1.0)
    other = WorkClaims(engine, job, worker="other", lease_s=30)
    worker.offer(ITEMS[:3])
    with worker.heartbeat():
        assert worker.claim(3) == ITEMS[:3]
        time.sleep(2.0)  # two leases long
        assert other.claim(3) == []
    assert worker.renew() == 3


def test_release_gives_images_back_at_once_and_offer_does_not_duplicate(engine):
    job = job_key("test", "release")
    a = WorkClaims(engine, job, worker="a", lease_s=60)
    b = WorkClaims(engine, job, worker="b", lease_s=60)
    assert a.offer(ITEMS[:5]) == 5
    assert b.offer(ITEMS[:5]) == 0
    assert a.claim(5) == ITEMS[:5]
    a.release(ITEMS[:2])
    assert b.claim(5) == ITEMS[:2]
    b.finish(ITEMS[3:4])  # not b's: stays
    assert a.remaining()[0] == 5


def test_jobs_do_not_see_each_others_images(engine):
    one = WorkClaims(engine, job_key("test", "one"), lease_s=60)
    two = WorkClaims(engine, job_key("test", "two"), lease_s=60)
    one.offer(["a.jpg"])
    two.offer(["b.jpg"])
    assert one.claim(5) == ["a.jpg"] and two.claim(5) == ["b.jpg"]
    assert job_key("test", "one") != job_key("test", "two") == job_key("test", "two")


def test_sqlite_cannot_share(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert not WorkClaims.supported(engine)
        with pytest.raises(StoreError, match="through PostgreSQL"):
            WorkClaims(engine, job_key("test", "x"))
    finally:
        engine.dispose()


def test_a_lost_database_stops_the_heartbeat_and_the_next_call_says_so(postgres_server):
    url = postgres_server.create_database()
    engine = open_database(url)
    claims = WorkClaims(engine, job_key("test", "lost"), lease_s=1.0)
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
            time.sleep(1.2)
        with pytest.raises(StoreError, match="cannot"):
            claims.claim(1)
    finally:
        engine.dispose()
