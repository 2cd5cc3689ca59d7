"""Per-segment review with provenance, on SQLite and on a real PostgreSQL: selections by id and by
filters, the reviewer and reason recorded, the audit trail, stale decisions refused, an import's
decisions applied (corrections beside the originals, additions, deletions), its ledger, and the
0004 migration keeping every row."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from store.errors import StaleSegments
from store.records import (
    ImportOutcome,
    ImportSource,
    NewSegment,
    Origin,
    SegmentSelection,
    ShapeDecision,
    Status,
)
from store.segment_store import SegmentStore
from tests.helpers import review_images
from tests.store.test_segment_store import MODEL, count, facts, seg

SOURCE = ImportSource("task.xml", "f" * 64, "cvat", "ann", cvat_task=5, cvat_job=7)


@pytest.fixture
def store(database_url):
    with SegmentStore.open(database_url) as opened:
        opened.save_segmentation(
            facts("a/1.jpg"),
            MODEL,
            "v1",
            [seg(1, score=0.2), seg(2, 1, "dog", 0.5), seg(3, score=0.9)],
            ["g"],
        )
        opened.save_segmentation(facts("b/2.jpg", "b"), MODEL, "v1", [seg(4, score=0.7)], ["h"])
        opened.save_segmentation(facts("b/2.jpg", "b"), "other", "v9", [seg(5, score=0.7)])
        yield opened


def _ids(store, **where) -> list[int]:
    return [s.id for s in store.segments() if all(getattr(s, k) == v for k, v in where.items())]


def test_review_by_ids_records_reviewer_reason_and_an_audit_row_per_change(store):
    first, second = _ids(store, image="a/1.jpg")[:2]
    outcome = store.review_segments(
        SegmentSelection(ids=(first, second, 999)), Status.REJECTED, "alice", "test", reason="blurry"
    )
    assert (outcome.changed, outcome.unchanged, outcome.unknown_ids) == (2, 0, [999])
    rows = {s.id: s for s in store.segments()}
    assert rows[first].status == Status.REJECTED and rows[first].reviewer == "alice"
    assert rows[first].reason == "blurry" and rows[first].revision == 2 and rows[first].reviewed_at
    again = store.review_segments(SegmentSelection(ids=(first,)), Status.REJECTED, "bob", "test")
    assert (again.changed, again.unchanged) == (0, 1)  # nothing to decide: no audit row
    store.review_segments(SegmentSelection(ids=(first,)), Status.APPROVED, "bob", "test")
    trail = [(d.reviewer, d.from_status, d.to_status, d.reason) for d in store.decisions([first])]
    assert trail == [("alice", "unchecked", "rejected", "blurry"), ("bob", "rejected", "approved", None)]


def test_filters_narrow_by_model_class_score_status_and_group(store):
    low = SegmentSelection(model=MODEL, classes=("cat",), max_score=0.5)
    assert store.review_segments(low, Status.REJECTED, "a", "t").changed == 1  # seg 1 only (0.2)
    by_id = SegmentSelection(model=MODEL, classes=("1",))  # class id 1: the dog
    assert store.review_segments(by_id, Status.APPROVED, "a", "t").changed == 1
    group = SegmentSelection(group="h", statuses=(Status.UNCHECKED,))
    assert store.review_segments(group, Status.APPROVED, "a", "t").changed == 2  # both models' of b/2
    states = {(s.model, s.score, s.class_name): s.status.value for s in store.segments()}
    assert states == {
        (MODEL, 0.2, "cat"): "rejected",
        (MODEL, 0.5, "dog"): "approved",
        (MODEL, 0.9, "cat"): "unchecked",
        (MODEL, 0.7, "cat"): "approved",
        ("other", 0.7, "cat"): "approved",
    }


def test_images_and_ids_together_and_unknown_names(store):
    [other] = _ids(store, model="other")
    outcome = store.review_segments(
        SegmentSelection(ids=(other,), images=("1", "ghost")), Status.APPROVED, "a", "t"
    )
    assert (outcome.changed, outcome.unknown_names) == (4, ["ghost"])


def test_a_decision_on_a_changed_segment_is_refused(store):
    segment = store.segments()[0]
    store.review_segments(SegmentSelection(ids=(segment.id,)), Status.APPROVED, "a", "t")
    late = store.review_segments(
        SegmentSelection(ids=(segment.id,)),
        Status.REJECTED,
        "b",
        "t",
        expected={segment.id: segment.revision},
    )
    assert (late.changed, late.stale_ids) == (0, [segment.id])
    assert store.segments()[0].status == Status.APPROVED


def test_a_decision_on_a_segment_the_reviewer_did_not_see_is_refused(store):
    first, second = _ids(store, image="a/1.jpg")[:2]
    outcome = store.review_segments(
        SegmentSelection(ids=(first, second)), Status.APPROVED, "a", "t", expected={first: 1, 999: 1}
    )
    assert (outcome.changed, outcome.stale_ids) == (1, [second, 999])


def test_a_review_by_image_counts_what_it_selected_and_audits_only_changes(store):
    assert review_images(store, ["a/1.jpg"], Status.APPROVED) == (3, [])
    assert review_images(store, ["a/1.jpg"], Status.APPROVED) == (3, [])
    assert count(store, "SELECT count(*) FROM segment_decisions") == 3


def test_a_rebuild_keeps_a_segment_set_back_to_unchecked(store):
    segment = store.segments()[0]
    store.review_segments(SegmentSelection(ids=(segment.id,)), Status.APPROVED, "a", "t")
    store.review_segments(SegmentSelection(ids=(segment.id,)), Status.UNCHECKED, "a", "t")
    store.save_segmentation(facts("a/1.jpg"), MODEL, "v2", [seg(9)], replace=True)
    assert segment.id in {s.id for s in store.segments()}
    assert len(store.decisions([segment.id])) == 2


def _new(n: int, class_id: int = 0, name: str = "cat") -> NewSegment:
    return NewSegment(class_id, name, 1.0, (0.0, 0.0, 3.0, 3.0), f"drawn{n}")


def test_an_import_applies_each_outcome_and_keeps_the_originals(store):
    image, segments = store.image_segments("a/1.jpg", MODEL)
    a, b, c = segments
    ledger = store.begin_import(SOURCE)
    decisions = [
        ShapeDecision(ImportOutcome.UNCHANGED, a.id, a.revision),
        ShapeDecision(ImportOutcome.EDITED, b.id, b.revision, new=_new(1, 1, "dog")),
        ShapeDecision(ImportOutcome.REJECTED, c.id, c.revision),
        ShapeDecision(ImportOutcome.ADDED, new=_new(2)),
        ShapeDecision(ImportOutcome.SKIPPED, note="unknown label"),
    ]
    counts = store.apply_import(ledger, SOURCE, image, MODEL, decisions)
    assert counts == {"unchanged": 1, "edited": 1, "relabelled": 0, "rejected": 1, "added": 1, "skipped": 1}
    rows = {s.id: s for s in store.segments(model=MODEL)}
    assert rows[a.id].status == Status.APPROVED and rows[a.id].reviewer == "ann"
    assert rows[b.id].status == Status.REJECTED and "replaced by #" in rows[b.id].reason
    assert rows[c.id].status == Status.REJECTED and rows[c.id].reason == "deleted by the annotator (task.xml)"
    [correction] = [s for s in rows.values() if s.replaces == b.id]
    assert (correction.status, correction.origin, correction.author) == (
        Status.APPROVED,
        Origin.IMPORT,
        "ann",
    )
    assert correction.source_file == "task.xml" and correction.model_version == "v1"
    [added] = [s for s in rows.values() if s.rle["counts"] == "drawn2"]
    assert added.origin == Origin.IMPORT and added.replaces is None and added.model == MODEL
    assert count(store, f"SELECT cvat_task FROM segments WHERE id = {added.id}") == 5
    assert [(d.from_status, d.to_status) for d in store.decisions([correction.id])] == [(None, "approved")]
    # the same image again: already done, nothing written
    assert store.apply_import(store.begin_import(SOURCE), SOURCE, image, MODEL, decisions) == {}
    total = store.finish_import(ledger, {"skipped": 3})  # an image skipped whole, say
    assert total == {**counts, "skipped": 4}
    again = store.begin_import(SOURCE)
    assert again.finished_at is not None and again.summary == total and again.done_images == {image.id}


def test_an_import_on_a_segment_decided_since_it_was_read_is_refused_whole(store):
    image, segments = store.image_segments("a/1.jpg", MODEL)
    store.review_segments(SegmentSelection(ids=(segments[0].id,)), Status.REJECTED, "x", "t")
    ledger = store.begin_import(SOURCE)
    decisions = [
        ShapeDecision(ImportOutcome.ADDED, new=_new(3)),
        ShapeDecision(ImportOutcome.UNCHANGED, segments[0].id, segments[0].revision),
    ]
    with pytest.raises(StaleSegments):
        store.apply_import(ledger, SOURCE, image, MODEL, decisions)
    assert not [s for s in store.segments() if s.rle["counts"] == "drawn3"]
    assert store.begin_import(SOURCE).done_images == frozenset()


def test_upgrading_an_0002_store_keeps_reviews_and_makes_them_model_segments(database_url):
    from alembic import command

    from store import database
    from tests.store.old_rows import write_0002_rows

    engine = database.create_store_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(database._alembic_config(connection), "0002")
        write_0002_rows(connection, reviewed=True)
    engine.dispose()
    with SegmentStore.open(database_url) as store:
        [segment] = store.segments()
        assert (segment.status, segment.origin, segment.revision, segment.replaces) == (
            Status.APPROVED,
            Origin.MODEL,
            1,
            None,
        )
        assert segment.reviewed_at is not None and segment.reviewer is None
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM segment_decisions")).scalar_one() == 0


def test_segments_stored_approved_have_their_reviewer_and_audit_row(store):
    store.save_segmentation(
        facts("c/3.jpg", "c"), MODEL, "v1", [seg(7)], status=Status.APPROVED, reviewer="bot"
    )
    [segment] = [s for s in store.segments() if s.image == "c/3.jpg"]
    assert (segment.status, segment.reviewer) == (Status.APPROVED, "bot")
    [row] = store.decisions([segment.id])
    assert (row.reviewer, row.from_status, row.to_status) == ("bot", None, "approved")
