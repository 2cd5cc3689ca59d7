"""Provenance and per-segment review: where each segment came from (a model, a person, an import
with its file, sha256 and CVAT task/job), the correction it is (the segment it replaces), who
decided its status last and why, a revision that every decision bumps; the audit table of every
decision; and the ledger of imported files and the images each applied.

Every existing row is kept: its segments are a model's (origin ``model``), revision 1, and each
reviewed one keeps its ``reviewed_at`` (who reviewed it was not recorded before, so nobody is named).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("file_name", sa.String(1024), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(256), nullable=False),
        sa.Column("cvat_task", sa.Integer(), nullable=True),
        sa.Column("cvat_job", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
    )
    # recreated on SQLite, now with AUTOINCREMENT: a segment id is never given out twice, so an
    # old export's segment_id cannot name a segment stored after it
    with op.batch_alter_table(
        "segments", recreate="auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.add_column(sa.Column("origin", sa.String(16), nullable=False, server_default="model"))
        batch.add_column(sa.Column("author", sa.String(256), nullable=True))
        batch.add_column(sa.Column("source_file", sa.String(1024), nullable=True))
        batch.add_column(sa.Column("source_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("cvat_task", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cvat_job", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("replaces_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reviewer", sa.String(256), nullable=True))
        batch.add_column(sa.Column("review_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
        batch.create_foreign_key(
            "fk_segments_replaces", "segments", ["replaces_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_check_constraint("ck_segment_origin", "origin IN ('model', 'person', 'import')")
        batch.create_index("ix_segments_replaces", ["replaces_id"])
    op.create_table(
        "segment_decisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "segment_id", sa.Integer(), sa.ForeignKey("segments.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewer", sa.String(256), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("via", sa.String(256), nullable=False),
        sa.Column("import_id", sa.Integer(), sa.ForeignKey("imports.id", ondelete="SET NULL"), nullable=True),
    )
    op.create_index("ix_segment_decisions_segment", "segment_decisions", ["segment_id"])
    op.create_table(
        "imported_images",
        sa.Column(
            "import_id", sa.Integer(), sa.ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("summary", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    raise NotImplementedError("the segment store is never downgraded: that would drop what it records")
