"""Alembic's entry point: runs the revisions on the connection that ``store.database`` opened
(passed in ``config.attributes["connection"]``), never on a URL of its own."""

from __future__ import annotations

from alembic import context

from store.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
