"""SQLAlchemy 2.0 models of the state store: cursors, runs, inbox, ledger, dead letters, field
warnings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored naive-UTC so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the state store; use UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Cursor(Base):
    """A named reconcile cursor; it only ever moves forward."""

    __tablename__ = "cursors"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReconcileRun(Base):
    """One reconcile run: its window, mode, outcome counts and status."""

    __tablename__ = "reconcile_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mode: Mapped[str] = mapped_column(String(20))  # nightly | backfill
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20))  # running | completed | failed | partial
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Which machine and process run it: a later run marks it interrupted once that process is gone.
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)


class InboxItem(Base):
    """One webhook delivery, keyed by ``X-Shopify-Webhook-Id``."""

    __tablename__ = "inbox"

    webhook_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    shop_domain: Mapped[str] = mapped_column(String(255))
    order_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    event_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    api_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    triggered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # pending | claimed | done | dead | ignored
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        Index("ix_inbox_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_inbox_order_id", "order_id"),
    )


class LedgerEntry(Base):
    """What we last applied to Salesforce for one Shopify order."""

    __tablename__ = "ledger"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(18), nullable=True)
    contact_id: Mapped[str | None] = mapped_column(String(18), nullable=True)
    opportunity_id: Mapped[str | None] = mapped_column(String(18), nullable=True)
    order_updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload_hash: Mapped[str] = mapped_column(String(64))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_in_shopify_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CustomerEntry(Base):
    """A Shopify customer (or guest e-mail) whose Account and Contact exist in Salesforce."""

    __tablename__ = "customers"

    customer_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(18), nullable=True)
    contact_id: Mapped[str | None] = mapped_column(String(18), nullable=True)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeadLetter(Base):
    """An order that could not be synced, with Salesforce's (or our) reason."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(32))
    order_name: Mapped[str | None] = mapped_column(String(255), nullable=True)  # "#1301"
    source: Mapped[str] = mapped_column(String(20))  # webhook | reconcile | manual
    stage: Mapped[str] = mapped_column(String(40))  # fetch | map | account | contact | opportunity
    error_code: Mapped[str | None] = mapped_column(String(80), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Every error Salesforce reported: [{"code", "message", "fields", "stage"?}, …]
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(40), nullable=True)

    __table_args__ = (Index("ix_dead_letters_order_resolved", "order_id", "resolved_at"),)


class ReconcileFailure(Base):
    """An order whose nightly repair keeps failing transiently: on how many nightly runs."""

    __tablename__ = "reconcile_failures"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    nights: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(40))
    error_code: Mapped[str | None] = mapped_column(String(80), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FieldWarningEntry(Base):
    """A value of an order that reached Salesforce cut short, or not at all.

    One row per order, object, field and kind: seeing the same warning again moves
    ``last_seen`` (and counts it in ``times_seen``) instead of adding a row.
    """

    __tablename__ = "field_warnings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(32))
    order_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    path: Mapped[str] = mapped_column(String(20))  # webhook | reconcile | manual (last seen on)
    object: Mapped[str] = mapped_column(String(80))
    field: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))  # truncated | dropped
    original_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # "limit" is an SQL keyword: the column is length_limit.
    limit: Mapped[int | None] = mapped_column("length_limit", Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    times_seen: Mapped[int] = mapped_column(Integer, default=1)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        UniqueConstraint("order_id", "object", "field", "kind", name="uq_field_warnings_key"),
        Index("ix_field_warnings_last_seen", "last_seen"),
    )
