"""The segment store on SQLite and on a real PostgreSQL: saving, replacing, badlisting, reviewing,
counting, and two processes saving the same images at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from store.records import Status
from store.segment_store import ImageFacts, NewSegment, SegmentStore, name_keys
from tests.helpers import review_images

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "yolo"


def facts(path: str, sha: str = "a", size: int = 1000, width: int = 64, height: int = 48) -> ImageFacts:
    return ImageFacts(
        path=path, sha256=sha * 64 if len(sha) == 1 else sha, size=size, width=width, height=height
    )


def seg(n: int, class_id: int = 0, class_name: str = "cat", score: float = 0.9) -> NewSegment:
    return NewSegment(class_id, class_name, score, (1.0, 2.0, 10.0 + n, 20.0), f"counts{n}")


def count(store: SegmentStore, sql: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


@pytest.fixture
def store(database_url):
    with SegmentStore.open(database_url) as opened:
        yield opened


# --- save_segmentation --------------------------------------------------------------------------


def test_first_save_adds_rows(store):
    outcome = store.save_segmentation(facts("a/1.jpg"), MODEL, "v1", [seg(1), seg(2, 1, "dog")], ["g"])
    assert (outcome.added, outcome.kept, outcome.removed, outcome.already_done) == (2, 0, 0, False)
    [image] = store.images()
    assert (image.path, image.width, image.height, image.size, image.groups) == (
        "a/1.jpg",
        64,
        48,
        1000,
        ("g",),
    )
    segments = store.segments()
    assert [(s.class_name, s.status, s.image, s.model_version) for s in segments] == [
        ("cat", Status.UNCHECKED, "a/1.jpg", "v1"),
        ("dog", Status.UNCHECKED, "a/1.jpg", "v1"),
    ]
    assert segments[0].rle == {"size": [48, 64], "counts": "counts1"}
    assert segments[0].bbox == (1.0, 2.0, 11.0, 20.0)
    assert set(store.done_paths(MODEL)) == {"a/1.jpg"}
    assert set(store.done_paths("other")) == set()
    assert count(store, "SELECT segments FROM segmentations") == 2


def test_second_save_without_replace_changes_nothing(store):
    store.save_segmentation(facts("1.jpg"), MODEL, "v1", [seg(1)])
    before = [(s.id, s.score, s.model_version) for s in store.segments()]
    outcome = store.save_segmentation(facts("1.jpg"), MODEL, "v2", [seg(7), seg(8)])
    assert outcome.already_done and (outcome.added, outcome.kept, outcome.removed) == (0, 0, 0)
    assert [(s.id, s.score, s.model_version) for s in store.segments()] == before
    assert count(store, "SELECT model_version FROM segmentations") == "v1"
    # another model is not done yet
    assert not store.save_segmentation(facts("1.jpg"), "other", "v1", [seg(1)]).already_done
    assert count(store, "SELECT count(*) FROM segments") == 2


def test_replace_removes_unchecked_and_keeps_reviewed(store):
    store.save_segmentation(facts("1.jpg"), MODEL, "v1", [seg(1), seg(2), seg(3)])
    store.save_segmentation(facts("1.jpg"), "other", "v1", [seg(1)])
    by_counts = {s.rle["counts"]: s for s in store.segments(model=MODEL)}
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE segments SET status='approved' WHERE id=:i"), {"i": by_counts["counts1"].id}
        )
        conn.execute(
            text("UPDATE segments SET status='rejected' WHERE id=:i"), {"i": by_counts["counts2"].id}
        )
    outcome = store.save_segmentation(facts("1.jpg"), MODEL, "v2", [seg(4), seg(5)], replace=True)
    assert (outcome.added, outcome.removed, outcome.already_done) == (2, 1, False)
    kept = {s.rle["counts"]: (s.status, s.model_version) for s in store.segments(model=MODEL)}
    assert kept == {
        "counts1": (Status.APPROVED, "v1"),
        "counts2": (Status.REJECTED, "v1"),
        "counts4": (Status.UNCHECKED, "v2"),
        "counts5": (Status.UNCHECKED, "v2"),
    }
    assert len(store.segments(model="other")) == 1  # another model's segments are untouched
    assert count(store, f"SELECT model_version FROM segmentations WHERE model='{MODEL}'") == "v2"
    assert count(store, f"SELECT segments FROM segmentations WHERE model='{MODEL}'") == 2


def test_replace_does_not_add_a_segment_identical_to_a_kept_one(store):
    store.save_segmentation(facts("1.jpg"), MODEL, "v1", [seg(1), seg(2), seg(3)])
    ids = {s.rle["counts"]: s.id for s in store.segments()}
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE segments SET status='approved' WHERE id=:i"), {"i": ids["counts1"]})
        conn.execute(text("UPDATE segments SET status='rejected' WHERE id=:i"), {"i": ids["counts2"]})
    # the same class and mask again (other score and box), and one new segment
    again = [seg(1, score=0.2), seg(2, score=0.3), seg(9)]
    outcome = store.save_segmentation(facts("1.jpg"), MODEL, "v2", again, replace=True)
    assert (outcome.added, outcome.kept, outcome.removed) == (1, 2, 1)
    rows = {s.rle["counts"]: (s.id, s.status, s.score, s.model_version) for s in store.segments()}
    assert rows == {
        "counts1": (ids["counts1"], Status.APPROVED, 0.9, "v1"),
        "counts2": (ids["counts2"], Status.REJECTED, 0.9, "v1"),
        "counts9": (rows["counts9"][0], Status.UNCHECKED, 0.9, "v2"),
    }


def test_same_answer_twice_in_one_save_is_one_row(store):
    outcome = store.save_segmentation(facts("1.jpg"), MODEL, "v1", [seg(1), seg(1, score=0.1)])
    assert (outcome.added, outcome.kept) == (1, 1)
    assert count(store, "SELECT count(*) FROM segments") == 1


def test_image_with_no_segments_counts_as_done(store):
    outcome = store.save_segmentation(facts("empty.jpg"), MODEL, "v1", [], ["g"])
    assert (outcome.added, outcome.already_done) == (0, False)
    assert set(store.done_paths(MODEL)) == {"empty.jpg"}
    assert store.save_segmentation(facts("empty.jpg"), MODEL, "v1", [seg(1)]).already_done
    assert store.segments() == []
    report = store.status()
    assert (report.images, report.segmented, report.counts) == (1, {MODEL: 1}, [])


def test_groups_accumulate(store):
    store.save_segmentation(facts("1.jpg"), MODEL, "v1", [seg(1)], ["b", "a"])
    store.save_segmentation(facts("1.jpg"), "other", "v1", [], ["c", "a"])
    store.save_segmentation(facts("1.jpg"), MODEL, "v1", [], ["d"])  # already done: groups still join
    store.save_segmentation(facts("2.jpg"), MODEL, "v1", [seg(1)], ["a"])
    assert [i.groups for i in store.images()] == [("a", "b", "c", "d"), ("a",)]
    assert store.group_names() == ["a", "b", "c", "d"]
    assert [i.path for i in store.images(group="a")] == ["1.jpg", "2.jpg"]
    assert [i.path for i in store.images(group="c")] == ["1.jpg"]
    assert store.images(group="nope") == []
    assert [s.image for s in store.segments(group="b")] == ["1.jpg"]
    assert count(store, "SELECT count(*) FROM image_groups") == 5


def test_a_replaced_picture_is_segmented_again_and_its_reviews_kept_aside(store):
    store.save_segmentation(facts("1.jpg", sha="a"), MODEL, "v1", [seg(1), seg(2)])
    store.save_segmentation(facts("1.jpg", sha="a"), "other", "v1", [seg(3)])
    review_images(store, ["1.jpg"], Status.APPROVED, model="other")
    [before] = store.images()
    assert set(store.done_paths(MODEL)) == {"1.jpg"}

    # the same name, another picture (re-pulled): not done for any model any more
    new = facts("1.jpg", sha="b", size=5, width=640, height=480)
    assert store.done_paths(MODEL) == {"1.jpg": "a" * 64}  # what the client compares with the file
    outcome = store.save_segmentation(new, MODEL, "v2", [seg(7)])
    assert not outcome.already_done and outcome.added == 1
    [after] = store.images()
    assert after.id == before.id
    assert (after.sha256, after.size, after.width, after.height) == ("b" * 64, 5, 640, 480)
    assert set(store.done_paths(MODEL)) == {"1.jpg"} and store.done_paths("other") == {}
    # only the new picture's segments are read, at its size; the old approved one is kept aside
    assert [(s.model, s.rle["size"]) for s in store.segments()] == [(MODEL, [480, 640])]
    assert count(store, "SELECT count(*) FROM segments") == 2
    assert count(store, "SELECT count(*) FROM segments WHERE status = 'approved' AND mask_width = 64") == 1
    assert count(store, "SELECT count(*) FROM images") == 1


def test_saved_as_approved(store):
    store.save_segmentation(facts("1.jpg"), MODEL, "v1", [seg(1)], status=Status.APPROVED)
    assert [s.status for s in store.segments()] == [Status.APPROVED]
    assert count(store, "SELECT count(*) FROM segments WHERE reviewed_at IS NOT NULL") == 1


# --- two processes at once ----------------------------------------------------------------------

WORKER = """
import json, sys, time
from pathlib import Path
from store.segment_store import ImageFacts, NewSegment, SegmentStore
url, replace, first, groups, ready, go, open_first = sys.argv[1:8]
store = SegmentStore.open(url) if open_first == "1" else None
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.002)
outcomes = []
with store or SegmentStore.open(url) as store:  # opened after go: both migrate a fresh store at once
    for i in range(int(first), int(first) + 30):
        image = ImageFacts(f"pics/{i:03d}.jpg", "f" * 64, 100 + i, 64, 48)
        segments = [NewSegment(c % 2, f"c{c % 2}", 0.5, (0, 0, 5, 5), f"rle{i}-{c}") for c in range(i % 4)]
        o = store.save_segmentation(image, "yolo", "v1", segments, groups.split(","), replace=replace == "1")
        outcomes.append([o.added, o.kept, o.removed, o.already_done])
print(json.dumps(outcomes))
"""


def run_workers(tmp_path: Path, url: str, *workers: tuple[bool, int, str], open_first=False) -> list[list]:
    """Start one process per (replace, first image, groups), let them go at once (opening the store
    before or after), and return what each save_segmentation answered."""
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    started = []
    for n, (replace, first, groups) in enumerate(workers):
        ready = tmp_path / f"ready{n}"
        args = [sys.executable, "-c", WORKER, url, str(int(replace)), str(first), groups, str(ready), str(go)]
        args.append(str(int(open_first)))
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        started.append((ready, proc))
    deadline = time.monotonic() + 60
    while not all(ready.exists() for ready, _ in started) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    results = []
    for _, proc in started:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


def sql_counts(url: str, **queries: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: conn.execute(text(sql)).scalar_one() for name, sql in queries.items()}
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "replace", [(False, False), (True, True), (False, True)], ids=["keep", "replace", "mixed"]
)
def test_two_processes_saving_the_same_images_store_each_once(database_url, tmp_path, replace):
    results = run_workers(tmp_path, database_url, (replace[0], 0, "g1,g2,g3"), (replace[1], 0, "g3,g2,g1"))
    expected = sum(i % 4 for i in range(30))
    assert sql_counts(
        database_url,
        images="SELECT count(*) FROM images",
        paths="SELECT count(DISTINCT path) FROM images",
        segmentations="SELECT count(*) FROM segmentations",
        segments="SELECT count(*) FROM segments",
        distinct="SELECT count(*) FROM (SELECT DISTINCT image_id, model, fingerprint FROM segments) AS d",
        found="SELECT sum(segments) FROM segmentations",
        groups="SELECT count(*) FROM groups",
        members="SELECT count(*) FROM image_groups",
    ) == {
        "images": 30,
        "paths": 30,
        "segmentations": 30,
        "segments": expected,
        "distinct": expected,
        "found": expected,
        "groups": 3,
        "members": 90,
    }
    for i in range(30):
        answers = [r[i] for r in results]
        assert any(not done for *_, done in answers)  # somebody stored it
        if not any(replace):  # exactly one of them, the other found it done
            assert sorted(done for *_, done in answers) == [False, True]
            assert sum(added for added, *_ in answers) == i % 4


def test_two_processes_creating_groups_in_opposite_orders(database_url, tmp_path):
    """Different images, the same new groups named in opposite orders: neither waits for the
    other's group forever (PostgreSQL reported a deadlock when groups were inserted as given)."""
    run_workers(tmp_path, database_url, (False, 0, "a,b,c,d"), (False, 100, "d,c,b,a"), open_first=True)
    assert sql_counts(
        database_url,
        images="SELECT count(*) FROM images",
        groups="SELECT count(*) FROM groups",
        members="SELECT count(*) FROM image_groups",
    ) == {"images": 60, "groups": 4, "members": 240}


# --- badlist ------------------------------------------------------------------------------------


def test_badlist_matches_path_trailing_part_and_stem(store):
    for path in ["a/b/one.jpg", "a/b/two.jpg", "c/three.png", "four.jpg", "keep/five.jpg", "/abs/six.jpg"]:
        store.save_segmentation(facts(path), MODEL, "v1", [seg(1)])
    badlisted, unmatched = store.push_badlist(
        [
            "a/b/one.jpg",
            "b/two.jpg",
            "three",
            "./four.jpg",
            "c\\three.png",
            "/abs/six.jpg",
            "nothing.jpg",
            " ",
        ],
        source="list.txt",
    )
    assert badlisted == 5
    assert unmatched == ["nothing.jpg"]
    assert [i.path for i in store.images()] == ["keep/five.jpg"]
    assert {i.path for i in store.images(include_badlisted=True) if i.badlisted} == {
        "a/b/one.jpg",
        "a/b/two.jpg",
        "c/three.png",
        "four.jpg",
        "/abs/six.jpg",
    }
    assert store.badlist_names() == {
        "a/b/one.jpg",
        "b/two.jpg",
        "three",
        "four.jpg",
        "c/three.png",
        "/abs/six.jpg",
        "nothing.jpg",
    }
    # pushing again is fine and matches the same images
    assert store.push_badlist(["three"]) == (1, [])


def test_badlist_names_apply_to_images_added_later(store):
    assert store.push_badlist(["later.jpg", "x/stem"]) == (0, ["later.jpg", "x/stem"])
    store.save_segmentation(facts("d/later.jpg"), MODEL, "v1", [seg(1)])
    store.save_segmentation(facts("x/stem.png"), MODEL, "v1", [seg(1)])
    store.save_segmentation(facts("y/stem.png"), MODEL, "v1", [seg(1)])
    assert [i.path for i in store.images()] == ["y/stem.png"]
    assert {i.path for i in store.images(include_badlisted=True) if i.badlisted} == {
        "d/later.jpg",
        "x/stem.png",
    }


def test_badlisted_images_are_left_out_of_reads_and_counts(store):
    store.save_segmentation(facts("good.jpg"), MODEL, "v1", [seg(1), seg(2)], ["g"])
    store.save_segmentation(facts("bad.jpg"), MODEL, "v1", [seg(1)], ["g"])
    store.push_badlist(["bad"])
    assert [i.path for i in store.images(group="g")] == ["good.jpg"]
    assert {s.image for s in store.segments()} == {"good.jpg"}
    assert {s.image for s in store.segments(include_badlisted=True)} == {"good.jpg", "bad.jpg"}
    report = store.status()
    assert (report.images, report.badlisted, report.segmented) == (2, 1, {MODEL: 1})
    assert report.counts == [(MODEL, "cat", "unchecked", 2)]
    assert set(store.done_paths(MODEL)) == {"good.jpg", "bad.jpg"}  # a re-run still skips it


# --- review -------------------------------------------------------------------------------------


def test_review_by_name_restricted_by_model(store):
    store.save_segmentation(facts("a/1.jpg"), MODEL, "v1", [seg(1), seg(2)])
    store.save_segmentation(facts("a/1.jpg"), "other", "v1", [seg(1)])
    store.save_segmentation(facts("b/2.jpg"), MODEL, "v1", [seg(1)])
    changed, unknown = review_images(store, ["1.jpg", "ghost"], Status.APPROVED, model=MODEL)
    assert (changed, unknown) == (2, ["ghost"])
    statuses = {(s.image, s.model, s.rle["counts"]): s.status for s in store.segments()}
    assert statuses == {
        ("a/1.jpg", MODEL, "counts1"): Status.APPROVED,
        ("a/1.jpg", MODEL, "counts2"): Status.APPROVED,
        ("a/1.jpg", "other", "counts1"): Status.UNCHECKED,
        ("b/2.jpg", MODEL, "counts1"): Status.UNCHECKED,
    }
    assert review_images(store, ["b/2", "a/1.jpg"], Status.REJECTED) == (4, [])
    assert {s.status for s in store.segments()} == {Status.REJECTED}
    assert count(store, "SELECT count(*) FROM segments WHERE reviewed_at IS NULL") == 0
    assert review_images(store, ["nobody"], Status.APPROVED) == (0, ["nobody"])
    assert [s.status for s in store.segments(statuses=[Status.APPROVED])] == []
    assert len(store.segments(statuses=["rejected"])) == 4


# --- status -------------------------------------------------------------------------------------


def test_status_counts(store):
    store.save_segmentation(facts("1.jpg"), MODEL, "v1", [seg(1), seg(2), seg(3, 1, "dog")], ["g1"])
    store.save_segmentation(facts("2.jpg"), MODEL, "v1", [seg(1, 1, "dog")], ["g1", "g2"])
    store.save_segmentation(facts("2.jpg"), "other", "v1", [seg(1)], ["g2"])
    store.save_segmentation(facts("3.jpg"), "other", "v1", [], ["g2"])
    store.save_segmentation(facts("4.jpg"), MODEL, "v1", [seg(1)], ["g1"])
    review_images(store, ["1.jpg"], Status.APPROVED, model=MODEL)
    review_images(store, ["2.jpg"], Status.REJECTED, model="other")
    store.push_badlist(["4.jpg"])

    report = store.status()
    assert (report.images, report.badlisted) == (4, 1)
    assert report.segmented == {MODEL: 2, "other": 2}
    assert report.counts == [
        ("other", "cat", "rejected", 1),
        (MODEL, "cat", "approved", 2),
        (MODEL, "dog", "approved", 1),
        (MODEL, "dog", "unchecked", 1),
    ]
    g1 = store.status(group="g1")
    # a group counts what every model found in its images, whichever group a save named
    assert (g1.images, g1.badlisted, g1.segmented) == (3, 1, {MODEL: 2, "other": 1})
    assert g1.counts == report.counts
    g2 = store.status(group="g2")
    assert (g2.images, g2.badlisted, g2.segmented) == (2, 0, {MODEL: 1, "other": 2})
    assert g2.counts == [("other", "cat", "rejected", 1), (MODEL, "dog", "unchecked", 1)]
    empty = store.status(group="none")
    assert (empty.images, empty.badlisted, empty.segmented, empty.counts) == (0, 0, {}, [])


def test_name_keys():
    assert name_keys("a/b/c.jpg") == {"a/b/c.jpg", "b/c.jpg", "c.jpg", "c", "a/b/c"}
    assert "/abs/x.jpg" in name_keys("/abs/x.jpg")


def test_a_store_whose_images_are_all_badlisted_says_so(store):
    from store.errors import StoreError

    store.save_segmentation(facts("pics/a.jpg"), MODEL, "v1", [seg(1)])
    store.save_segmentation(facts("pics/b.jpg", sha="b"), MODEL, "v1", [seg(2)])
    assert store.segment_model() == MODEL
    store.push_badlist(["a.jpg", "b.jpg"])
    with pytest.raises(StoreError, match="all 2 stored images are badlisted"):
        store.segment_model()
