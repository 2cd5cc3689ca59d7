"""The review_leases table: a segment shown to one reviewer of the review page is theirs for a few
minutes (store.review_leases), so two reviewers are never shown the same one. Nothing else changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_leases",
        sa.Column(
            "segment_id",
            sa.Integer(),
            sa.ForeignKey("segments.id", ondelete="CASCADE", name="fk_review_leases_segment"),
            primary_key=True,
        ),
        sa.Column("reviewer", sa.String(256), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_leases_reviewer", "review_leases", ["reviewer"])


def downgrade() -> None:
    op.drop_index("ix_review_leases_reviewer", table_name="review_leases")
    op.drop_table("review_leases")
