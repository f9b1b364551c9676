"""dead letters keep the order's name (#1301), whatever path dead-lettered them

Revision ID: 0006_report14
Revises: 0005_opsrest
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_report14"
down_revision = "0005_opsrest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("order_name", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_column("order_name")
