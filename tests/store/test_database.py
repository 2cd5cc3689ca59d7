"""Opening a segment store: the URL, the migrations (exactly the ORM schema, run once, never over
a newer schema), and the one-line errors for what cannot be opened."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from store import database
from store.database import CONNECT_TIMEOUT_S, DB_ENV, head_revision, open_database, shown
from store.errors import StoreError
from store.layout import DataLayout
from store.schema import Base
from store.segment_store import ImageFacts, NewSegment, SegmentStore
from tests.fixtures.postgres import free_port


def versions(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def save_one(url: str) -> None:
    with SegmentStore.open(url) as store:
        segment = NewSegment(0, "cat", 0.9, (0, 0, 1, 1), "abc")
        store.save_segmentation(ImageFacts("1.jpg", "a" * 64, 10, 4, 3), "m", "v1", [segment], ["g"])


def table_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in Base.metadata.tables}


def test_default_url_from_layout_and_env(tmp_path, monkeypatch):
    layout = DataLayout(tmp_path)
    monkeypatch.delenv(DB_ENV, raising=False)
    assert database.database_url(None, layout) == f"sqlite:///{tmp_path}/DATA/segments.db"
    assert database.database_url(None, DataLayout()) == "sqlite:///DATA/segments.db"
    monkeypatch.setenv(DB_ENV, "postgresql://team@db/segments")
    assert database.database_url(None, layout) == "postgresql://team@db/segments"
    assert database.database_url("sqlite:///other.db", layout) == "sqlite:///other.db"  # --db wins
    monkeypatch.setenv(DB_ENV, "")
    assert database.database_url(None, layout) == f"sqlite:///{tmp_path}/DATA/segments.db"
    engine = open_database(database.database_url(None, layout))  # the folder is made, the file created
    engine.dispose()
    assert layout.database.is_file()


def test_open_twice_migrates_once(database_url, monkeypatch):
    engine = open_database(database_url)
    assert versions(engine) == [head_revision()]
    engine.dispose()

    def no_second_upgrade(*args, **kwargs):
        raise AssertionError("a store at head was migrated again")

    monkeypatch.setattr("alembic.command.upgrade", no_second_upgrade)
    engine = open_database(database_url)
    try:
        assert versions(engine) == [head_revision()]
    finally:
        engine.dispose()


def test_migrations_produce_exactly_the_orm_schema(database_url):
    engine = open_database(database_url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            tables = set(inspect(conn).get_table_names())
        assert tables == {*Base.metadata.tables, "alembic_version"}
    finally:
        engine.dispose()


def test_a_newer_schema_is_refused_and_left_alone(database_url):
    save_one(database_url)
    engine = open_database(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num='9999'"))
    before = table_counts(engine)
    engine.dispose()

    with pytest.raises(StoreError, match="newer") as caught:
        open_database(database_url)
    message = str(caught.value)
    assert "9999" in message and head_revision() in message and "\n" not in message

    engine = database.create_store_engine(database_url)  # look without migrating
    try:
        assert versions(engine) == ["9999"]
        assert table_counts(engine) == before
    finally:
        engine.dispose()


def test_rows_survive_a_reopen(database_url):
    save_one(database_url)
    for _ in range(2):
        with SegmentStore.open(database_url) as store:
            assert [i.path for i in store.images()] == ["1.jpg"]
            assert [s.rle["counts"] for s in store.segments()] == ["abc"]
            assert store.group_names() == ["g"]
            assert versions(store.engine) == [head_revision()]


def test_a_file_that_is_not_sqlite(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(StoreError) as caught:
        open_database(f"sqlite:///{path}")
    message = str(caught.value)
    assert str(path) in message and "not an SQLite database" in message
    assert "\n" not in message
    assert path.read_text() == "these are my notes, not a database\n" * 50


def test_unreachable_postgres_is_reported_without_the_password():
    url = f"postgresql+psycopg://u:s3cret@127.0.0.1:{free_port()}/x"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        open_database(url)
    assert time.monotonic() - started < CONNECT_TIMEOUT_S + 5
    message = str(caught.value)
    assert shown(url) in message and "u:***@127.0.0.1" in message
    assert "s3cret" not in message and "\n" not in message
    assert "is the database running" in message


def test_a_postgres_that_never_answers_times_out(monkeypatch):
    monkeypatch.setattr(database, "CONNECT_TIMEOUT_S", 2)  # libpq's smallest
    with socket.socket() as listener:  # accepts the TCP connection, never says a word
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"postgresql+psycopg://u:s3cret@127.0.0.1:{listener.getsockname()[1]}/x"
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            open_database(url)
        assert time.monotonic() - started < 2 + 5
    message = str(caught.value)
    assert "timeout" in message and shown(url) in message and "s3cret" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u:s3cret@localhost/segments", "not mysql"),
        ("mysql+pymysql://u:s3cret@localhost/segments", "not mysql+pymysql"),
        ("oracle://u:s3cret@localhost/segments", "not oracle"),
        ("segments.db", "not a database URL"),
        ("sqlite://", "needs a file"),
        ("sqlite:///:memory:", "needs a file"),
    ],
)
def test_unsupported_urls(url, expected):
    with pytest.raises(StoreError, match=re.escape(expected)) as caught:
        open_database(url)
    assert "s3cret" not in str(caught.value) and "\n" not in str(caught.value)


def test_postgresql_without_a_driver_means_psycopg(postgres_server):
    url = postgres_server.create_database().replace("postgresql+psycopg://", "postgresql://")
    engine = open_database(url)
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert versions(engine) == [head_revision()]
    finally:
        engine.dispose()


def test_the_schema_enforces_status_and_fingerprints(database_url):
    save_one(database_url)
    engine = open_database(database_url)
    row = "(image_id, model, model_version, class_id, class_name, score, x1, y1, x2, y2, rle_counts, "
    row += "fingerprint, status, created_at, updated_at)"
    values = "(1, 'm', 'v1', 0, 'cat', 0.5, 0, 0, 1, 1, 'x', :fp, :status, :now, :now)"
    try:
        for fingerprint, status in (
            ("new", "bogus"),
            (NewSegment(0, "cat", 0.9, (0, 0, 1, 1), "abc").fingerprint, "unchecked"),
        ):
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(
                    text(f"INSERT INTO segments {row} VALUES {values}"),
                    {"fp": fingerprint, "status": status, "now": datetime.now(timezone.utc)},
                )
        assert table_counts(engine)["segments"] == 1
    finally:
        engine.dispose()


def test_a_store_whose_folder_cannot_be_made(tmp_path):
    (tmp_path / "DATA").write_text("a file where the folder should be")
    url = f"sqlite:///{tmp_path / 'DATA' / 'segments.db'}"
    with pytest.raises(StoreError, match="cannot open the segment store") as caught:
        open_database(url)
    assert str(tmp_path / "DATA") in str(caught.value) and "\n" not in str(caught.value)


def test_upgrading_a_first_version_store_keeps_every_row(database_url):
    """A store made by revision 0001 (before segments recorded their picture) is upgraded in place
    when opened: its rows stay, and the new columns take their image's values."""
    from alembic import command

    engine = database.create_store_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(database._alembic_config(connection), "0001")
        stamp = datetime(2026, 1, 1, tzinfo=timezone.utc)
        connection.execute(
            text(
                "INSERT INTO images (id, path, sha256, size, width, height, badlisted, created_at, "
                "updated_at) VALUES (1, 'a.jpg', :sha, 10, 40, 30, false, :t, :t)"
            ),
            {"sha": "f" * 64, "t": stamp},
        )
        connection.execute(
            text(
                "INSERT INTO segments (id, image_id, model, model_version, class_id, class_name, score, "
                "x1, y1, x2, y2, rle_counts, fingerprint, status, created_at, updated_at) VALUES "
                "(1, 1, 'm', 'v1', 0, 'cat', 0.9, 0, 0, 1, 1, 'abc', 'fp', 'approved', :t, :t)"
            ),
            {"t": stamp},
        )
        connection.execute(
            text(
                "INSERT INTO segmentations (id, image_id, model, model_version, segments, created_at, "
                "updated_at) VALUES (1, 1, 'm', 'v1', 1, :t, :t)"
            ),
            {"t": stamp},
        )
    engine.dispose()
    with SegmentStore.open(database_url) as store:
        assert versions(store.engine) == [head_revision()]
        [segment] = store.segments()
        assert segment.rle["size"] == [30, 40] and segment.status.value == "approved"
        assert store.done_paths("m") == {"a.jpg": "f" * 64}


def test_a_postgresql_that_stops_answering_mid_run_ends_within_the_deadline(monkeypatch):
    """A server that is stopped (SIGSTOP: its kernel still acknowledges TCP) is noticed by the
    store's own deadline, not waited on forever."""
    import os
    import signal

    import psutil

    from tests.fixtures.postgres import postgres_bin, start_postgres

    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed")
    server = start_postgres(postgres_bin())
    stopped: list[psutil.Process] = []
    try:
        url = server.create_database()
        monkeypatch.setattr(database, "STORE_DEADLINE_S", 3.0)
        with SegmentStore.open(url) as store:
            save_one_to(store, "1.jpg")
            postmaster = psutil.Process(server.pid)
            stopped = [postmaster, *postmaster.children(recursive=True)]
            for process in stopped:
                os.kill(process.pid, signal.SIGSTOP)
            started = time.monotonic()
            with pytest.raises(StoreError, match=r"stopped answering \(nothing within 3 s\)"):
                save_one_to(store, "2.jpg")
            assert time.monotonic() - started < 15
    finally:
        for process in stopped:
            with contextlib.suppress(psutil.NoSuchProcess):
                os.kill(process.pid, signal.SIGCONT)
        server.stop()


def save_one_to(store: SegmentStore, path: str) -> None:
    segment = NewSegment(0, "cat", 0.9, (0, 0, 1, 1), "abc")
    store.save_segmentation(ImageFacts(path, "a" * 64, 10, 4, 3), "m", "v1", [segment], ["g"])


def test_a_password_in_the_query_or_a_broken_url_is_never_shown():
    assert "s3cret" not in shown("postgresql://u@h/db?password=s3cret")
    with pytest.raises(StoreError, match="is not a database URL") as caught:
        database.create_store_engine("postgresql://u:s3cret@host:abc/db")
    assert "s3cret" not in str(caught.value)


def test_commands_that_only_read_do_not_create_a_store(tmp_path):
    missing = tmp_path / "typo" / "DATA" / "segments.db"
    with pytest.raises(StoreError, match=r"no segment store at .*run `seg-client segments build` first"):
        SegmentStore.open(f"sqlite:///{missing}", create=False)
    assert not missing.parent.exists()
