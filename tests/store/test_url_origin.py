"""A store error about its URL names where the URL came from: --db, $SEGSTACK_DB or the default
store under --data-root, so the user knows what to change."""

from __future__ import annotations

import pickle

import pytest

from store.errors import StoreError
from store.layout import (
    DB_ENV,
    DB_ENV_ORIGIN,
    DB_OPTION_ORIGIN,
    DEFAULT_ORIGIN,
    DataLayout,
    StoreURL,
    database_url,
    url_origin,
)
from store.segment_store import SegmentStore
from tests.conftest import run_cli


def _refusal(url: str, create: bool = True) -> str:
    with pytest.raises(StoreError) as caught:
        SegmentStore.open(url, create=create)
    return str(caught.value)


def test_database_url_says_which_source_it_took(tmp_path, monkeypatch):
    layout = DataLayout(tmp_path)
    monkeypatch.delenv(DB_ENV, raising=False)
    default = database_url(None, layout)
    assert (default, default.origin) == (f"sqlite:///{tmp_path}/DATA/segments.db", DEFAULT_ORIGIN)
    monkeypatch.setenv(DB_ENV, "postgresql://team@db/segments")
    from_env = database_url(None, layout)
    assert (from_env, from_env.origin) == ("postgresql://team@db/segments", DB_ENV_ORIGIN)
    given = database_url("sqlite:///other.db", layout)
    assert (given, given.origin) == ("sqlite:///other.db", DB_OPTION_ORIGIN)
    assert isinstance(given, str) and url_origin("sqlite:///plain.db") == DB_OPTION_ORIGIN
    copy = pickle.loads(pickle.dumps(from_env))
    assert (copy, copy.origin) == (from_env, DB_ENV_ORIGIN)


def test_a_bad_url_from_the_environment_names_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DB_ENV, "segments.db")
    message = _refusal(database_url(None, DataLayout(tmp_path)))
    assert message.startswith(f"${DB_ENV} '<not a database URL>' is not a database URL"), message
    assert "--db" not in message

    monkeypatch.setenv(DB_ENV, "mysql://u:s3cret@localhost/segments")
    message = _refusal(database_url(None, DataLayout(tmp_path)))
    assert message.startswith(f"${DB_ENV} mysql://u:***@localhost/segments: the segment store runs on")
    assert "s3cret" not in message


def test_a_bad_url_given_with_db_names_db(tmp_path, monkeypatch):
    monkeypatch.setenv(DB_ENV, "sqlite:///elsewhere.db")  # --db wins over it, and the message says --db
    message = _refusal(database_url("segments.db", DataLayout(tmp_path)))
    assert message.startswith("--db '<not a database URL>' is not a database URL"), message
    assert f"${DB_ENV}" not in message


def test_a_missing_store_says_whether_it_was_given_or_the_default(tmp_path, monkeypatch):
    layout = DataLayout(tmp_path)
    monkeypatch.delenv(DB_ENV, raising=False)
    default = _refusal(database_url(None, layout), create=False)
    assert default.startswith(f"no segment store at {layout.database} ({DEFAULT_ORIGIN}):"), default
    monkeypatch.setenv(DB_ENV, f"sqlite:///{tmp_path / 'env.db'}")
    from_env = _refusal(database_url(None, layout), create=False)
    assert from_env.startswith(f"no segment store at {tmp_path / 'env.db'} (from ${DB_ENV}):"), from_env
    given = _refusal(database_url(f"sqlite:///{tmp_path / 'given.db'}", layout), create=False)
    assert given.startswith(f"no segment store at {tmp_path / 'given.db'} (given with --db):"), given
    assert "--db URL" in given  # the way out is still named
    assert not (tmp_path / "DATA").exists()


def test_a_url_made_elsewhere_counts_as_given_with_db(tmp_path):
    assert _refusal("segments.db").startswith("--db '<not a database URL>' is not a database URL")
    assert StoreURL("x").origin == DB_OPTION_ORIGIN


def test_a_command_names_the_environment_when_the_bad_url_came_from_it(tmp_path, monkeypatch):
    monkeypatch.setenv(DB_ENV, "segments.db")
    proc = run_cli("seg-client", "segments", "status", "--data-root", str(tmp_path), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line == (
        f"seg-client: error: ${DB_ENV} '<not a database URL>' is not a database URL; give sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST:PORT/NAME"
    )
    given = run_cli("seg-client", "segments", "status", "--db", "other.db", check=False)
    assert given.returncode == 2
    assert given.stderr.strip() == (
        "seg-client: error: --db '<not a database URL>' is not a database URL; give sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST:PORT/NAME"
    )
