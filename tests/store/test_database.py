"""Opening a segment store: the URL, the migrations (exactly the ORM schema, run once, never over
a newer schema), and the one-line errors for what cannot be opened."""

from __future__ import annotations

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
