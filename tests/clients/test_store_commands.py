"""The store commands' answers to a store they cannot use: one line each, nothing changed."""

from __future__ import annotations

import sqlite3

from store.segment_store import ImageFacts, NewSegment, SegmentStore
from tests.conftest import run_cli


def _status(*args: str):
    return run_cli("seg-client", "segments", "status", *args, check=False)


def test_a_store_of_a_newer_schema_is_refused_in_one_line(tmp_path):
    db = tmp_path / "segments.db"
    SegmentStore.open(f"sqlite:///{db}").close()  # at this version's head
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    tables = "SELECT name, sql FROM sqlite_master ORDER BY name"
    with sqlite3.connect(db) as conn:
        before = conn.execute(tables).fetchall()
    result = _status("--db", f"sqlite:///{db}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "revision 9999, newer than this segstack knows" in lines[0]
    with sqlite3.connect(db) as conn:  # not migrated, not stamped
        assert conn.execute(tables).fetchall() == before
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999",)]


def test_a_file_that_is_not_a_database_is_one_line_and_kept(tmp_path):
    (tmp_path / "DATA").mkdir()
    db = tmp_path / "DATA" / "segments.db"
    db.write_text("my notes, not a database\n")
    result = _status("--data-root", str(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "not an SQLite database" in result.stderr
    assert db.read_text() == "my notes, not a database\n"


def test_the_default_store_lives_under_the_data_root_and_env_overrides_it(tmp_path, monkeypatch):
    missing = _status("--data-root", str(tmp_path))  # reading commands never create a store
    assert missing.returncode == 2 and "no segment store at" in missing.stderr
    assert not (tmp_path / "DATA").exists()
    SegmentStore.open(f"sqlite:///{tmp_path / 'DATA' / 'segments.db'}").close()
    result = _status("--data-root", str(tmp_path))
    assert result.returncode == 0 and "0 images, 0 badlisted" in result.stdout
    other = tmp_path / "other.db"
    SegmentStore.open(f"sqlite:///{other}").close()
    monkeypatch.setenv("SEGSTACK_DB", f"sqlite:///{other}")
    assert _status("--data-root", str(tmp_path / "nowhere")).returncode == 0


def test_review_refuses_a_name_that_matches_several_images(tmp_path):
    db = f"sqlite:///{tmp_path / 'segments.db'}"
    with SegmentStore.open(db) as store:
        for path in ("a/001.jpg", "b/001.png"):
            segment = NewSegment(0, "cat", 0.9, (0, 0, 1, 1), "abc")
            store.save_segmentation(ImageFacts(path, "a" * 64, 10, 4, 3), "m", "v1", [segment])
    review = run_cli("seg-client", "segments", "review", "--approve", "001", "--db", db, check=False)
    assert review.returncode == 1 and "'001' names 2 images (a/001.jpg, b/001.png)" in review.stderr
    both = run_cli(
        "seg-client", "segments", "review", "--approve", "--reject", "a/001.jpg", "--db", db, check=False
    )
    assert both.returncode == 2 and "exactly one of" in both.stderr
    exact = run_cli("seg-client", "segments", "review", "--approve", "a/001.jpg", "--db", db)
    assert "1 segments marked approved" in exact.stdout


def test_export_of_an_empty_group_says_what_to_run(tmp_path):
    result = run_cli(
        "seg-client", "segments", "export", "--group", "nope", "--format", "coco",
        "--out", str(tmp_path / "x.json"), "--data-root", str(tmp_path), check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "segments build` first" in result.stderr
    assert not (tmp_path / "x.json").exists()
