"""field warnings: values cut short or left out on their way to Salesforce

Revision ID: 0002_inbox
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import state.models

revision = "0002_inbox"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "field_warnings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("order_name", sa.String(length=255), nullable=True),
        sa.Column("path", sa.String(length=20), nullable=False),
        sa.Column("object", sa.String(length=80), nullable=False),
        sa.Column("field", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("original_length", sa.Integer(), nullable=True),
        sa.Column("length_limit", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("first_seen", state.models.UTCDateTime(), nullable=False),
        sa.Column("last_seen", state.models.UTCDateTime(), nullable=False),
        sa.Column("times_seen", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_field_warnings")),
        sa.UniqueConstraint("order_id", "object", "field", "kind", name="uq_field_warnings_key"),
    )
    with op.batch_alter_table("field_warnings", schema=None) as batch_op:
        batch_op.create_index("ix_field_warnings_last_seen", ["last_seen"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("field_warnings", schema=None) as batch_op:
        batch_op.drop_index("ix_field_warnings_last_seen")
    op.drop_table("field_warnings")
