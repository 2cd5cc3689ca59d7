"""The work_claims table: images of a job several workers share, claimed with a lease
(store.claims). Rows exist only for work not yet finished; nothing else changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_claims",
        sa.Column("job", sa.String(128), primary_key=True),
        sa.Column("item", sa.String(1024), primary_key=True),
        sa.Column("worker", sa.String(128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_work_claims_job_lease", "work_claims", ["job", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_work_claims_job_lease", table_name="work_claims")
    op.drop_table("work_claims")
