"""Review leases on SQLite and on a real PostgreSQL: a segment leased to one reviewer is not leased
to another until its lease runs out or is released; a reviewer's own leases are renewed; only
segments of the wanted statuses are leased, in the order asked."""

from __future__ import annotations

import threading
import time

import pytest

from store.records import SegmentSelection, Status
from store.segment_store import SegmentStore
from tests.store.test_segment_store import MODEL, facts, seg


@pytest.fixture
def store(database_url):
    with SegmentStore.open(database_url) as opened:
        opened.save_segmentation(
            facts("a/1.jpg"), MODEL, "v1", [seg(i, score=i / 10) for i in range(1, 7)], ["g"]
        )
        yield opened


def _ids(store) -> list[int]:
    return [s.id for s in sorted(store.segments(), key=lambda s: s.id)]


def test_two_reviewers_never_lease_the_same_segment(store):
    ids = _ids(store)
    alice = store.lease_segments(ids, "alice", 4, lease_s=60)
    bob = store.lease_segments(ids, "bob", 4, lease_s=60)
    assert alice == ids[:4] and bob == ids[4:]
    assert store.lease_segments(ids, "carol", 4, lease_s=60) == []
    assert store.lease_segments(ids, "alice", 4, lease_s=60) == ids[:4]  # hers: renewed
    assert store.lease_holders(ids) == {**dict.fromkeys(ids[:4], "alice"), **dict.fromkeys(ids[4:], "bob")}


def test_released_and_expired_leases_go_to_others(store):
    ids = _ids(store)
    store.lease_segments(ids, "alice", 3, lease_s=60)
    assert store.release_leases([ids[0]], "bob") == 0  # not bob's to give back
    assert store.release_leases([ids[0]], "alice") == 1
    assert store.lease_segments(ids, "bob", 2, lease_s=0.2) == [ids[0], ids[3]]
    time.sleep(0.4)
    assert store.lease_segments(ids, "carol", 2, lease_s=60) == [ids[0], ids[3]]


def test_only_segments_of_the_wanted_statuses_are_leased_in_the_order_asked(store):
    ids = _ids(store)
    store.review_segments(SegmentSelection(ids=(ids[-1],)), Status.APPROVED, "dan", "test")
    order = list(reversed(ids))
    assert store.lease_segments(order, "alice", 2, lease_s=60) == order[1:3]
    assert store.lease_segments(order, "bob", 5, lease_s=60, statuses=[Status.APPROVED]) == [ids[-1]]


def test_reviewers_leasing_at_once_share_out_the_segments(store):
    ids = _ids(store)
    won: dict[str, list[int]] = {}

    def lease(name: str) -> None:
        won[name] = store.lease_segments(ids, name, 3, lease_s=60)

    threads = [threading.Thread(target=lease, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everyone = [i for got in won.values() for i in got]
    assert sorted(everyone) == sorted(set(everyone)) and len(everyone) == len(ids)


def test_a_reviewer_whose_picks_another_transaction_took_gets_the_next_free_ones(store):
    """Bob asks while Alice's lease is not yet committed: on PostgreSQL his INSERT waits for hers,
    finds the rows taken, and he is given the next free segments rather than none."""
    from sqlalchemy.orm import Session

    from store.review_leases import lease_segments

    ids = _ids(store)
    won: dict[str, list[int]] = {}
    alice_in = threading.Event()

    def alice() -> None:
        with Session(store.engine) as session, session.begin():
            won["alice"] = lease_segments(session, ids, "alice", 3, 60)
            alice_in.set()
            time.sleep(0.5)  # still open when Bob asks

    def bob() -> None:
        alice_in.wait()
        won["bob"] = store.lease_segments(ids, "bob", 3, lease_s=60)

    threads = [threading.Thread(target=alice), threading.Thread(target=bob)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert won["alice"] == ids[:3] and won["bob"] == ids[3:]
