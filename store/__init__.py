"""The DATA/ layout (groups, pictures, meta) and the segment store (SQLAlchemy models, Alembic
migrations): a shared layer used by clients/ and training/, importing neither."""
