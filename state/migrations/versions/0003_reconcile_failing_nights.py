"""reconcile: nightly runs each order's repair has failed on (issue 13, point 4 item 10)

Revision ID: 0003_reconcile
Revises: 0002_inbox
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import state.models

revision = "0003_reconcile"
down_revision = "0002_inbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_failures",
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("nights", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=False),
        sa.Column("error_code", sa.String(length=80), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("first_failed_at", state.models.UTCDateTime(), nullable=False),
        sa.Column("last_failed_at", state.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_reconcile_failures")),
    )


def downgrade() -> None:
    op.drop_table("reconcile_failures")
