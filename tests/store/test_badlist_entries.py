"""The badlist's entries read back and taken off again, on SQLite and on a real PostgreSQL; and a
removal waits, as a push does, for the saves in flight."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, text

from store.badlist_entries import BADLIST_LOCK_KEY as _BADLIST_LOCK
from store.segment_store import ImageFacts, NewSegment, SegmentStore

MODEL = "yolo"
PATHS = ["a/b/one.jpg", "a/b/two.jpg", "c/three.png", "x/one.png", "keep/five.jpg"]


def facts(path: str) -> ImageFacts:
    return ImageFacts(path=path, sha256="a" * 64, size=1000, width=64, height=48)


def save(store: SegmentStore, *paths: str) -> None:
    for path in paths:
        store.save_segmentation(facts(path), MODEL, "v1", [NewSegment(0, "cat", 0.9, (1, 2, 3, 4), "c")])


def badlisted(store: SegmentStore) -> set[str]:
    return {i.path for i in store.images(include_badlisted=True) if i.badlisted}


@pytest.fixture
def store(database_url):
    with SegmentStore.open(database_url) as opened:
        yield opened


def test_entries_are_sorted_with_their_source_time_and_images(store):
    save(store, *PATHS)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    store.push_badlist(["one", "three", "later.jpg"], source="lists/bad.txt")
    store.push_badlist(["a/b/two.jpg", "one"], source="more.txt")  # "one" keeps its first source
    after = datetime.now(timezone.utc)
    entries = store.badlist_entries()
    assert [(e.name, e.source, e.matches, e.images) for e in entries] == [
        ("a/b/two.jpg", "more.txt", ("a/b/two.jpg",), 1),
        ("later.jpg", "lists/bad.txt", (), 0),
        ("one", "lists/bad.txt", ("a/b/one.jpg", "x/one.png"), 2),
        ("three", "lists/bad.txt", ("c/three.png",), 1),
    ]
    for entry in entries:
        assert entry.added_at.utcoffset().total_seconds() == 0
        assert before <= entry.added_at <= after
    assert store.badlist_names() == {e.name for e in entries}


def test_an_empty_badlist_has_no_entries(store):
    save(store, "a.jpg")
    assert store.badlist_entries() == []


def test_removing_names_unbadlists_the_images_no_other_name_matches(store):
    save(store, *PATHS)
    store.push_badlist(["one", "a/b/one.jpg", "two", "three"], source="bad.txt")
    assert badlisted(store) == {"a/b/one.jpg", "x/one.png", "a/b/two.jpg", "c/three.png"}

    outcome = store.remove_badlist(["one", "./three", "  "])
    assert [(e.name, e.source, e.matches) for e in outcome.removed] == [
        ("one", "bad.txt", ("a/b/one.jpg", "x/one.png")),
        ("three", "bad.txt", ("c/three.png",)),
    ]
    assert all(e.added_at is not None for e in outcome.removed)
    # x/one.png and c/three.png are free; a/b/one.jpg is still badlisted by its full path
    assert (outcome.unbadlisted, outcome.still_badlisted, outcome.unknown) == (2, 1, [])
    assert badlisted(store) == {"a/b/one.jpg", "a/b/two.jpg"}
    assert [i.path for i in store.images()] == ["c/three.png", "keep/five.jpg", "x/one.png"]
    assert store.badlist_names() == {"a/b/one.jpg", "two"}
    assert store.status().badlisted == 2

    # a picture added later under a removed name is not badlisted
    save(store, "new/three.jpg")
    assert "new/three.jpg" not in badlisted(store)


def test_names_not_on_the_badlist_are_reported_and_change_nothing(store):
    save(store, *PATHS)
    store.push_badlist(["one"], source="bad.txt")
    outcome = store.remove_badlist(["ghost", "a/b/one.jpg", "x/one"])
    assert (outcome.removed, outcome.unbadlisted, outcome.still_badlisted) == ([], 0, 0)
    assert outcome.unknown == ["a/b/one.jpg", "ghost", "x/one"]
    # the names that name badlisted images say which entries badlist them
    assert outcome.badlisted_by == {"a/b/one.jpg": ["one"], "x/one": ["one"]}
    assert badlisted(store) == {"a/b/one.jpg", "x/one.png"}
    assert store.badlist_names() == {"one"}


def test_remove_then_push_again(store):
    save(store, *PATHS)
    store.push_badlist(["five"], source="first.txt")
    assert store.remove_badlist(["five"]).unbadlisted == 1
    assert store.badlist_entries() == []
    store.push_badlist(["five"], source="second.txt")
    [entry] = store.badlist_entries()
    assert (entry.source, entry.matches) == ("second.txt", ("keep/five.jpg",))
    assert badlisted(store) == {"keep/five.jpg"}


def test_a_removal_waits_for_the_saves_in_flight(postgres_server):
    """As a push: a save holds the badlist lock shared from its badlist read to its commit, and a
    removal takes it exclusively, so the save's image cannot be stored badlisted by a name the
    removal took off after the save read it."""
    url = postgres_server.create_database()
    with SegmentStore.open(url) as store:
        save(store, "a/one.jpg")
        store.push_badlist(["one"], source="bad.txt")
        holder = create_engine(url)
        watcher = create_engine(url, isolation_level="AUTOCOMMIT")  # a fresh pg_stat_activity each time
        outcome = []
        try:
            with holder.connect() as conn, watcher.connect() as watch:
                transaction = conn.begin()  # a save between its badlist read and its commit
                conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": _BADLIST_LOCK})
                remover = threading.Thread(target=lambda: outcome.append(store.remove_badlist(["one"])))
                remover.start()
                deadline = time.monotonic() + 60
                while not _waiting_for_advisory(watch):
                    assert time.monotonic() < deadline, "the removal never waited for the lock"
                    time.sleep(0.05)
                assert remover.is_alive() and store.badlist_names() == {"one"}
                transaction.rollback()
            remover.join(timeout=60)
        finally:
            holder.dispose()
            watcher.dispose()
        assert not remover.is_alive()
        [done] = outcome
        assert ([e.name for e in done.removed], done.unbadlisted) == (["one"], 1)
        assert store.badlist_names() == set() and [i.path for i in store.images()] == ["a/one.jpg"]


def _waiting_for_advisory(conn) -> bool:
    rows = conn.execute(
        text(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        )
    ).all()
    return any("pg_advisory_xact_lock" in row[0] for row in rows)
