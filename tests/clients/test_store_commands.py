"""The store commands' answers to a store they cannot use: one line each, nothing changed."""

from __future__ import annotations

import sqlite3

from tests.conftest import run_cli


def _status(*args: str):
    return run_cli("seg-client", "segments", "status", *args, check=False)


def test_a_store_of_a_newer_schema_is_refused_in_one_line(tmp_path):
    db = tmp_path / "segments.db"
    assert _status("--db", f"sqlite:///{db}").returncode == 0  # creates it at this version's head
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
    result = _status("--data-root", str(tmp_path))
    assert result.returncode == 0 and "0 images, 0 badlisted" in result.stdout
    assert (tmp_path / "DATA" / "segments.db").is_file()
    other = tmp_path / "other.db"
    monkeypatch.setenv("SEGSTACK_DB", f"sqlite:///{other}")
    assert _status("--data-root", str(tmp_path)).returncode == 0
    assert other.is_file()


def test_export_of_an_empty_group_says_what_to_run(tmp_path):
    result = run_cli(
        "seg-client", "segments", "export", "--group", "nope", "--format", "coco",
        "--out", str(tmp_path / "x.json"), "--data-root", str(tmp_path), check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "run `segments build` first" in result.stderr
    assert not (tmp_path / "x.json").exists()
