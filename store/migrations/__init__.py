"""Alembic migrations of the segment store, applied by ``store.database.open_database``."""
