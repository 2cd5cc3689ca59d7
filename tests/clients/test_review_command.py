"""seg-client segments review by segment ids and by filters, with the reviewer and reason
recorded in the store's audit trail."""

from __future__ import annotations

import getpass

import pytest

from store.records import ImageFacts, NewSegment, Status
from store.segment_store import SegmentStore
from tests.conftest import run_cli


@pytest.fixture
def db(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'DATA' / 'segments.db'}"
    with SegmentStore.open(url) as store:
        found = [
            NewSegment(0, "cat", 0.2, (0, 0, 1, 1), "a"),
            NewSegment(1, "dog", 0.6, (0, 0, 1, 1), "b"),
            NewSegment(0, "cat", 0.9, (0, 0, 1, 1), "c"),
        ]
        store.save_segmentation(ImageFacts("x/1.jpg", "1" * 64, 10, 4, 3), "yolo", "v1", found, ["g"])
        store.save_segmentation(ImageFacts("x/2.jpg", "2" * 64, 10, 4, 3), "yolo", "v1", found[:1], ["h"])
    return url


def _review(db: str, *args: str, check: bool = True):
    return run_cli("seg-client", "segments", "review", *args, "--db", db, check=check)


def _states(db: str) -> dict[tuple[str, str, float], tuple[str, str | None, str | None]]:
    with SegmentStore.open(db) as store:
        return {
            (s.image, s.class_name, s.score): (s.status.value, s.reviewer, s.reason) for s in store.segments()
        }


def test_filters_select_on_their_own_and_record_who_and_why(db):
    proc = _review(db, "--reject", "--class", "cat", "--max-score", "0.5", "--reason", "too unsure")
    assert f"2 segments marked rejected by {getpass.getuser()}" in proc.stdout
    states = _states(db)
    assert states[("x/1.jpg", "cat", 0.2)] == ("rejected", getpass.getuser(), "too unsure")
    assert states[("x/2.jpg", "cat", 0.2)][0] == "rejected"
    assert states[("x/1.jpg", "cat", 0.9)][0] == "unchecked"
    group = _review(db, "--approve", "--group", "g", "--status", "unchecked", "--reviewer", "alice")
    assert "2 segments marked approved by alice" in group.stdout
    assert _states(db)[("x/2.jpg", "cat", 0.2)][0] == "rejected"  # not in group g


def test_ids_and_the_audit_trail(db):
    with SegmentStore.open(db) as store:
        ids = [s.id for s in store.segments() if s.image == "x/1.jpg"]
    _review(db, "--approve", "--id", f"{ids[0]},{ids[1]}", "--reviewer", "alice")
    again = _review(db, "--reject", "--id", str(ids[0]), "--id", "999", "--reviewer", "bob")
    assert "1 segments marked rejected by bob" in again.stdout
    assert "1 segment ids are not in the store: 999" in again.stderr
    with SegmentStore.open(db) as store:
        trail = [(d.reviewer, d.from_status, d.to_status) for d in store.decisions([ids[0]])]
    assert trail == [("alice", "unchecked", "approved"), ("bob", "approved", "rejected")]


def test_nothing_chosen_or_a_bad_id_is_a_usage_error(db):
    nothing = _review(db, "--approve", check=False)
    assert nothing.returncode == 2 and "choose segments" in nothing.stderr
    bad = _review(db, "--approve", "--id", "seven", check=False)
    assert bad.returncode == 2 and "'seven' is not a segment id" in bad.stderr
    unknown = _review(db, "--approve", "--id", "999", check=False)
    assert unknown.returncode == 1 and "0 segments marked approved" in unknown.stdout
    assert Status.UNCHECKED.value in {state for state, _, _ in _states(db).values()}
