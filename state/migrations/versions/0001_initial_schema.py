"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import state.models

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cursors',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('value', state.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', state.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_cursors'))
    )
    op.create_table('customers',
    sa.Column('customer_key', sa.String(length=100), nullable=False),
    sa.Column('account_id', sa.String(length=18), nullable=True),
    sa.Column('contact_id', sa.String(length=18), nullable=True),
    sa.Column('synced_at', state.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('customer_key', name=op.f('pk_customers'))
    )
    op.create_table('dead_letters',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('stage', sa.String(length=40), nullable=False),
    sa.Column('error_code', sa.String(length=80), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=True),
    sa.Column('first_seen', state.models.UTCDateTime(), nullable=False),
    sa.Column('last_seen', state.models.UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('resolved_at', state.models.UTCDateTime(), nullable=True),
    sa.Column('resolution', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters'))
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index('ix_dead_letters_order_resolved', ['order_id', 'resolved_at'], unique=False)

    op.create_table('inbox',
    sa.Column('webhook_id', sa.String(length=100), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('shop_domain', sa.String(length=255), nullable=False),
    sa.Column('order_id', sa.String(length=32), nullable=True),
    sa.Column('event_id', sa.String(length=100), nullable=True),
    sa.Column('api_version', sa.String(length=20), nullable=True),
    sa.Column('triggered_at', state.models.UTCDateTime(), nullable=True),
    sa.Column('received_at', state.models.UTCDateTime(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_expires_at', state.models.UTCDateTime(), nullable=True),
    sa.Column('next_attempt_at', state.models.UTCDateTime(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('finished_at', state.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('webhook_id', name=op.f('pk_inbox'))
    )
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_order_id', ['order_id'], unique=False)
        batch_op.create_index('ix_inbox_status_next_attempt', ['status', 'next_attempt_at'], unique=False)

    op.create_table('ledger',
    sa.Column('order_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=18), nullable=True),
    sa.Column('contact_id', sa.String(length=18), nullable=True),
    sa.Column('opportunity_id', sa.String(length=18), nullable=True),
    sa.Column('order_updated_at', state.models.UTCDateTime(), nullable=False),
    sa.Column('payload_hash', sa.String(length=64), nullable=False),
    sa.Column('synced_at', state.models.UTCDateTime(), nullable=False),
    sa.Column('deleted_in_shopify_at', state.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_ledger'))
    )
    op.create_table('reconcile_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('mode', sa.String(length=20), nullable=False),
    sa.Column('window_start', state.models.UTCDateTime(), nullable=False),
    sa.Column('window_end', state.models.UTCDateTime(), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('started_at', state.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', state.models.UTCDateTime(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconcile_runs'))
    )


def downgrade() -> None:
    op.drop_table('reconcile_runs')
    op.drop_table('ledger')
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_status_next_attempt')
        batch_op.drop_index('ix_inbox_order_id')

    op.drop_table('inbox')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index('ix_dead_letters_order_resolved')

    op.drop_table('dead_letters')
    op.drop_table('customers')
    op.drop_table('cursors')
