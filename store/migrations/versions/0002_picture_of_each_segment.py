"""Each segment and segmentation records the picture it came from (its sha256) and the mask's size,
so that a replaced picture's old segments are neither read as the new one's nor decoded at its size.

Existing rows get the values of their image as it is now (the only picture known for them).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _from_image(table: str, column: str, image_column: str) -> None:
    value = f"(SELECT images.{image_column} FROM images WHERE images.id = {table}.image_id)"
    op.execute(f"UPDATE {table} SET {column} = {value}")


def upgrade() -> None:
    for table, columns in (
        (
            "segments",
            [("image_sha256", sa.String(64)), ("mask_height", sa.Integer()), ("mask_width", sa.Integer())],
        ),
        ("segmentations", [("image_sha256", sa.String(64))]),
    ):
        with op.batch_alter_table(table) as batch:
            for name, type_ in columns:
                batch.add_column(sa.Column(name, type_, nullable=True))
    _from_image("segments", "image_sha256", "sha256")
    _from_image("segments", "mask_height", "height")
    _from_image("segments", "mask_width", "width")
    _from_image("segmentations", "image_sha256", "sha256")
    for table, names in (
        ("segments", ["image_sha256", "mask_height", "mask_width"]),
        ("segmentations", ["image_sha256"]),
    ):
        with op.batch_alter_table(table) as batch:
            for name in names:
                batch.alter_column(name, nullable=False)


def downgrade() -> None:
    raise NotImplementedError("the segment store is never downgraded: that would drop what it records")
