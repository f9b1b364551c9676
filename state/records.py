"""The plain records the state store hands out (never ORM objects, so callers cannot hold a
session open by accident)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, TypeVar

InboxStatus = Literal["pending", "claimed", "done", "dead", "ignored"]
AddResult = Literal["stored", "duplicate", "ignored"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A webhook delivery as the receiver accepted it."""

    webhook_id: str
    topic: str
    shop_domain: str
    body: bytes
    order_id: str | None = None
    event_id: str | None = None
    api_version: str | None = None
    triggered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One inbox row as read back."""

    webhook_id: str
    topic: str
    shop_domain: str
    order_id: str | None
    body: bytes
    status: str
    attempts: int
    received_at: datetime
    triggered_at: datetime | None
    next_attempt_at: datetime
    lease_expires_at: datetime | None
    last_error: str | None
    lease_owner: str | None = None  # host:pid:random of the claiming process, while claimed


@dataclass(frozen=True, slots=True)
class ClaimedOrder:
    """Every claimed delivery of one order, oldest first; synced once, as its newest state."""

    order_id: str
    deliveries: list[InboxRow]

    @property
    def webhook_ids(self) -> list[str]:
        """The webhook ids of all deliveries in this claim."""
        return [d.webhook_id for d in self.deliveries]


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """What was last applied to Salesforce for one order."""

    order_id: str
    account_id: str | None
    contact_id: str | None
    opportunity_id: str | None
    order_updated_at: datetime
    payload_hash: str
    synced_at: datetime
    deleted_in_shopify_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SyncRecord:
    """One order's state that is now in Salesforce, for the ledger."""

    order_id: str
    order_updated_at: datetime
    payload_hash: str
    account_id: str | None
    contact_id: str | None
    opportunity_id: str | None


@dataclass(frozen=True, slots=True)
class FailedRepair:
    """One order whose reconcile repair failed transiently, and why."""

    order_id: str
    stage: str
    error_code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """An unsynced order and why."""

    id: int
    order_id: str
    source: str
    stage: str
    error_code: str | None
    message: str
    fields: list[str]
    payload: bytes | None
    first_seen: datetime
    last_seen: datetime
    attempts: int
    resolved_at: datetime | None
    resolution: str | None
    # Every error Salesforce reported: [{"code", "message", "fields", "stage"?}, …]
    errors: list[dict[str, Any]] | None = None
    order_name: str | None = None  # "#1301", when the path that dead-lettered it knew it


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A reconcile run."""

    id: int
    mode: str
    window_start: datetime
    window_end: datetime
    dry_run: bool
    status: str
    counts: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    host: str | None = None
    pid: int | None = None


WarningKind = Literal["truncated", "dropped"]


@dataclass(frozen=True, slots=True)
class FieldWarning:
    """One value of an order that reached Salesforce cut short (truncated) or not at all
    (dropped), and why. ``original_length`` and ``limit`` are UTF-16 units, as Salesforce counts."""

    order_id: str
    order_name: str | None
    object: str
    field: str
    kind: WarningKind
    original_length: int | None = None
    limit: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FieldWarningRecord:
    """A recorded field warning: where it was last seen, when, how often."""

    id: int
    order_id: str
    order_name: str | None
    path: str
    object: str
    field: str
    kind: str
    original_length: int | None
    limit: int | None
    reason: str | None
    first_seen: datetime
    last_seen: datetime
    times_seen: int
    run_id: str | None


@dataclass(slots=True)
class StoreCounts:
    """Inbox depth by status and open dead letters, for ``shopsync status``."""

    inbox: dict[str, int] = field(default_factory=dict)
    dead_letters_open: int = 0
    ledger_orders: int = 0
    field_warnings: int = 0
    orders_with_field_warnings: int = 0


R = TypeVar("R")


def as_record(row: object, record_type: type[R]) -> R:
    """Copy an ORM row into its plain record (lists and dicts copied, so callers own them)."""
    values = {}
    for item in fields(record_type):  # type: ignore[arg-type]
        value = getattr(row, item.name)
        values[item.name] = copy.copy(value) if isinstance(value, list | dict) else value
    return record_type(**values)
