"""seg-client segments import: a CVAT export edited as an annotator would, imported back through
the command line, on SQLite and on a real PostgreSQL. What each edit becomes in the store, the
summary (text and --json), provenance, a second import of the same file, COCO files, and files
that name what the store does not know."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annotations.coco import mask_rle, rle_mask
from store.records import ImageFacts, NewSegment, Origin, Status
from store.segment_store import SegmentStore
from tests.conftest import run_cli
from tests.fixtures.annotator_edits import edit_like_an_annotator

W, H = 96, 80
CLASSES = ["circle", "rectangle"]


def _masks() -> list[tuple[int, np.ndarray]]:
    yy, xx = np.mgrid[0:H, 0:W]
    shapes = [
        (1, (xx >= 10) & (xx < 30) & (yy >= 10) & (yy < 25)),
        (0, (xx - 60) ** 2 + (yy - 20) ** 2 <= 64),
        (1, (xx >= 40) & (xx < 70) & (yy >= 50) & (yy < 60)),
        (0, (xx - 20) ** 2 + (yy - 60) ** 2 <= 36),
    ]
    return [(c, m) for c, m in shapes]


def _segment(class_id: int, mask: np.ndarray, score: float) -> NewSegment:
    rows, cols = np.nonzero(mask)
    box = (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
    return NewSegment(class_id, CLASSES[class_id], score, box, mask_rle(mask)["counts"])


@pytest.fixture
def stored(database_url, tmp_path) -> tuple[str, Path]:
    with SegmentStore.open(database_url) as store:
        segments = [_segment(c, m, 0.9 - 0.1 * i) for i, (c, m) in enumerate(_masks())]
        store.save_segmentation(ImageFacts("a/1.jpg", "a" * 64, 1000, W, H), "yolo", "v1", segments, ["test"])
        store.save_segmentation(
            ImageFacts("b/2.jpg", "b" * 64, 1000, W, H), "yolo", "v1", segments[:1], ["test"]
        )
    return database_url, tmp_path


def _seg(*args: str, check: bool = True):
    return run_cli("seg-client", "segments", *args, check=check)


def test_each_edit_comes_back_as_what_the_annotator_did(stored):
    db, tmp = stored
    export = tmp / "task.xml"
    _seg("export", "--format", "cvat", "--group", "test", "--out", str(export), "--db", db)
    edited, edits = edit_like_an_annotator(export.read_bytes())
    annotated = tmp / "annotations.xml"
    annotated.write_bytes(edited)

    proc = _seg("import", "--format", "cvat", str(annotated), "--reviewer", "ann", "--json", "--db", db)
    summary = json.loads(proc.stdout)
    counts = {k: summary[k] for k in ("unchanged", "edited", "relabelled", "rejected", "added", "skipped")}
    # a/1.jpg: 4 segments (one moved, one deleted, one relabelled, one untouched) + 2 drawn; b/2.jpg: 1
    assert counts == {"unchanged": 2, "edited": 1, "relabelled": 1, "rejected": 1, "added": 2, "skipped": 0}

    with SegmentStore.open(db) as store:
        rows = {s.id: s for s in store.segments()}
        assert rows[edits.deleted].status == Status.REJECTED
        for original, edit in ((edits.moved, "moved"), (edits.relabelled, None)):
            assert rows[original].status == Status.REJECTED  # kept, not deleted
            [correction] = [s for s in rows.values() if s.replaces == original]
            assert correction.status == Status.APPROVED and correction.origin == Origin.IMPORT
            assert correction.author == "ann" and correction.source_file == "annotations.xml"
            if edit:
                name, drawn = edits.drawn[edit]
                assert correction.class_name == name and np.array_equal(rle_mask(correction.rle) > 0, drawn)
            else:
                assert correction.class_name == edits.relabelled_to
                assert np.array_equal(rle_mask(correction.rle), rle_mask(rows[original].rle))
        added = [s for s in rows.values() if s.origin == Origin.IMPORT and s.replaces is None]
        drawn = {edit: mask for edit, (_, mask) in edits.drawn.items() if edit != "moved"}
        assert sorted(
            next(e for e, m in drawn.items() if np.array_equal(rle_mask(s.rle) > 0, m)) for s in added
        ) == ["added polygon", "drawn mask"]
        untouched = [s for s in rows.values() if s.origin == Origin.MODEL and s.status == Status.APPROVED]
        assert len(untouched) == 2 and all(s.reviewer == "ann" for s in untouched)
        trail = store.decisions([edits.deleted])
        assert [(d.reviewer, d.from_status, d.to_status) for d in trail] == [("ann", "unchecked", "rejected")]
        assert "annotations.xml" in trail[0].via

    again = _seg("import", "--format", "cvat", str(annotated), "--reviewer", "bob", "--db", db)
    assert "already imported" in again.stdout and "nothing changed" in again.stdout
    with SegmentStore.open(db) as store:
        assert {s.id: s for s in store.segments()} == rows

    # the same task exported from CVAT again (a new <dumped> stamp, another sha256) still names the
    # originals: it confirms the corrections, and rejects nothing the first import wrote
    later = tmp / "annotations-again.xml"
    later.write_bytes(edited.replace(b"<dumped>", b"<dumped>2026-12-08 ", 1))
    assert later.read_bytes() != edited
    proc = _seg("import", "--format", "cvat", str(later), "--reviewer", "bob", "--json", "--db", db)
    summary = json.loads(proc.stdout)
    assert {k: summary[k] for k in ("edited", "relabelled", "rejected", "added", "skipped")} == dict.fromkeys(
        ("edited", "relabelled", "rejected", "added", "skipped"), 0
    ), summary["notes"]
    with SegmentStore.open(db) as store:
        assert {s.id: s.status for s in store.segments()} == {i: s.status for i, s in rows.items()}


def test_an_untouched_coco_export_approves_every_segment(stored):
    db, tmp = stored
    export = tmp / "instances.json"
    _seg("export", "--format", "coco", "--group", "test", "--out", str(export), "--db", db)
    proc = _seg("import", "--format", "coco", str(export), "--db", db)
    assert "5 unchanged, 0 edited, 0 relabelled, 0 rejected, 0 added, 0 skipped" in proc.stdout
    with SegmentStore.open(db) as store:
        assert {s.status for s in store.segments()} == {Status.APPROVED}


def test_what_the_store_does_not_know_is_reported_not_guessed(stored):
    db, tmp = stored
    export = tmp / "task.xml"
    _seg("export", "--format", "cvat", "--out", str(export), "--db", db)
    text = export.read_text()
    text = text.replace('name="b/2.jpg"', 'name="c/3.jpg"', 1)
    text = text.replace('label="circle"', 'label="unicorn"', 1)
    strange = tmp / "strange.xml"
    strange.write_text(text)
    proc = _seg("import", "--format", "cvat", str(strange), "--json", "--db", db, check=False)
    summary = json.loads(proc.stdout)
    assert summary["skipped"] == 2  # c/3.jpg's one shape, the unicorn
    assert any("c/3.jpg" in n and "not in the store" in n for n in summary["notes"])
    assert any("unicorn" in n for n in summary["notes"])
    wrong = _seg("import", "--format", "coco", str(strange), "--db", db, check=False)
    assert wrong.returncode == 2 and "pass --format cvat" in wrong.stderr and "Traceback" not in wrong.stderr
