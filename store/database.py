"""Opening a segment store: which URL, how each database is connected, and the migrations that
bring its schema to this version's head before anything else touches it.

Only SQLite (the embedded default) and PostgreSQL through psycopg 3 are supported; a
``postgresql://`` URL without a driver means psycopg. Opening never drops data: the revisions only
add, and a database whose schema is newer than this segstack is refused rather than used.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from store.errors import StoreError
from store.layout import DB_ENV, DB_ENV_ORIGIN, DB_OPTION_ORIGIN, database_url, url_origin

__all__ = ["DB_ENV", "create_store_engine", "database_url", "migrate", "open_database", "shown", "url_origin"]

CONNECT_TIMEOUT_S = 10  # a PostgreSQL that does not answer is reported after this
SQLITE_BUSY_TIMEOUT_S = 60  # how long a writer waits for another process's transaction
_MIGRATION_LOCK = 0x5E65  # PostgreSQL advisory lock: one process migrates, the others wait
MIGRATIONS = Path(__file__).with_name("migrations")


SECRET_QUERY_KEYS = ("password", "sslpassword", "passfile")
# a statement or commit that takes longer: the database stopped answering (stopped, network gone)
STORE_DEADLINE_S = 120.0
# PostgreSQL's own bounds: a lock another worker holds (say, one suspended with Ctrl-Z) fails the
# wait after this, and a session idle in a transaction is ended, which frees its locks
LOCK_TIMEOUT_S = 60
IDLE_IN_TRANSACTION_S = 120


def shown(url: URL | str) -> str:
    """The URL as it may appear in output: never its password (in the URL or in its query)."""
    try:
        parsed = make_url(url)
        secrets = {k: "***" for k in parsed.query if k.lower() in SECRET_QUERY_KEYS}
        return parsed.update_query_dict(secrets).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<not a database URL>"


def given_as(url: str) -> str:
    """Where ``url`` came from, as a message puts it after the URL: "given with --db", "from
    $SEGSTACK_DB" or "the default store under --data-root" (``store.layout.url_origin``)."""
    origin = url_origin(url)
    return {DB_OPTION_ORIGIN: "given with --db", DB_ENV_ORIGIN: f"from {DB_ENV_ORIGIN}"}.get(origin, origin)


def _parse(url: str) -> URL:
    origin = url_origin(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number, a broken [host]
        raise StoreError(
            f"{origin} {shown(url)!r} is not a database URL; give sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST:PORT/NAME"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise StoreError(
            f"{origin} {shown(parsed)}: the segment store runs on sqlite:/// or postgresql+psycopg://, "
            f"not {parsed.drivername}"
        )
    return parsed


def create_store_engine(url: str, create: bool = True, connections: int = 4) -> Engine:
    """``create=False`` refuses an SQLite file that does not exist yet; ``connections``: the
    threads that will use the store at once (the pool holds that many)."""
    parsed = _parse(url)
    pool = {"pool_size": max(1, connections), "max_overflow": max(1, connections), "pool_timeout": 120}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise StoreError(
                f"{url_origin(url)} {shown(parsed)}: the segment store needs a file: sqlite:///PATH "
                "(an in-memory one would be lost)"
            )
        if sqlite3.sqlite_version_info < (3, 35):
            raise StoreError(
                f"this Python's SQLite is {sqlite3.sqlite_version}; the segment store needs 3.35 or newer "
                "(or a PostgreSQL store: --db postgresql+psycopg://...)"
            )
        if not create and not Path(parsed.database).exists():
            raise StoreError(
                f"no segment store at {parsed.database} ({given_as(url)}): run `seg-client segments "
                f"build` first, or pass --db URL (or set ${DB_ENV})"
            )
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where its folder should be, a read-only disk
            where = f"{shown(parsed)} ({given_as(url)})"
            raise StoreError(f"cannot open the segment store {where}: {exc}") from None
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **pool)
        _serialise_sqlite_writers(engine)
        return engine
    engine = create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "segstack",
            "options": f"-c lock_timeout={LOCK_TIMEOUT_S}s "
            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_S}s",
            # a network that goes away mid-run is noticed rather than waited on forever
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "tcp_user_timeout": 30_000,
        },
        **pool,
    )
    _track_checkouts(engine)
    return engine


def _track_checkouts(engine: Engine) -> None:
    """Keep every PostgreSQL connection the engine opens, so a deadline can cut them (the pool
    checks a connection before handing it out, and that check can be what hangs)."""
    opened: weakref.WeakSet = weakref.WeakSet()
    engine.info_opened = opened  # type: ignore[attr-defined]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        opened.add(dbapi_connection)


def _cut(connections: list) -> None:
    """Shut the sockets of these PostgreSQL connections: the statement waiting on them fails at
    once (a server that is stopped still acknowledges TCP, so nothing else would end the wait)."""
    for connection in connections:
        with contextlib.suppress(Exception):
            fd = connection.pgconn.socket
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def deadline(engine: Engine, seconds: float | None = None) -> Iterator[None]:
    """Everything done on ``engine`` in this block must finish within ``seconds`` (default
    STORE_DEADLINE_S); else its connections are cut and StoreError says the database stopped
    answering. SQLite needs none: its waits are bounded by the busy timeout."""
    if engine.dialect.name != "postgresql":
        yield
        return
    limit = STORE_DEADLINE_S if seconds is None else seconds
    fired = threading.Event()

    def give_up() -> None:
        fired.set()
        _cut(list(engine.info_opened))  # a stopped server: every connection to it is as stuck

    timer = threading.Timer(limit, give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception:
        if fired.is_set():
            raise StoreError(
                f"the segment store {shown(engine.url)} stopped answering (nothing within {limit:g} s); "
                "check the database server, then re-run: what was stored is kept"
            ) from None
        raise
    finally:
        timer.cancel()


def _serialise_sqlite_writers(engine: Engine) -> None:
    """SQLite allows one writer: every transaction takes the write lock when it begins (BEGIN
    IMMEDIATE), so that two processes wait for each other instead of failing half-way with
    "database is locked". Reads wait as well (transactions are short: one image's segments)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        _set_wal(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _set_wal(cursor) -> None:
    """Switching a new database to WAL fails at once, without the busy wait, while another process
    is creating it too: retry as long as any other statement would wait."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _alembic_config(connection):
    from alembic.config import Config  # alembic is imported only when a store is opened (1 s)

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def migrate(engine: Engine) -> None:
    """Bring the schema to this version's head, in one transaction; refuse a newer schema."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config = _alembic_config(connection)
        script = ScriptDirectory.from_config(config)
        current = MigrationContext.configure(connection).get_current_revision()
        known = {r.revision for r in script.walk_revisions()}
        if current is not None and current not in known:
            raise StoreError(
                f"the segment store {shown(engine.url)} has schema revision {current}, newer than this "
                f"segstack knows (up to {script.get_current_head()}); upgrade segstack to use it"
            )
        if current != script.get_current_head():
            command.upgrade(config, "head")


def open_database(url: str, create: bool = True, connections: int = 4) -> Engine:
    """An engine on an up-to-date store; StoreError (one line, no password) when it cannot be."""
    engine = create_store_engine(url, create=create, connections=connections)
    try:
        migrate(engine)
    except StoreError:
        engine.dispose()
        raise
    except (DBAPIError, SQLAlchemyError, OSError) as exc:
        engine.dispose()
        raise StoreError(
            f"cannot open the segment store {shown(engine.url)} ({given_as(url)}): {_reason(exc, url)}"
        ) from None
    return engine


def _reason(exc: BaseException, url: str | None = None) -> str:
    """Why the database refused, in one line, with the fix; ``url``: the URL as the command got
    it, whose origin is then the thing to check (else both --db and $SEGSTACK_DB are named)."""
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    reason = lines[0] if lines else type(original).__name__
    if "file is not a database" in reason:
        return f"{reason} (that file is not an SQLite database: pass --db or move it)"
    if "Connection refused" in str(original) or "timeout expired" in str(original):
        check = url_origin(url) if url is not None else f"--db or ${DB_ENV}"
        return f"{reason} (is the database running? check {check})"
    return reason
