"""The state store's repository API: the only code that reads or writes the state tables.

Every method is one short transaction and returns plain dataclasses, never ORM objects, so callers
(flows, the receiver, the CLI) cannot hold a session open by accident.
"""

from __future__ import annotations

import copy
import functools
import os
import socket
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Dialect, Engine, and_, case, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from state.db import READ_ONLY, create_state_engine, migrate, sqlite_url
from state.models import (
    Cursor,
    CustomerEntry,
    DeadLetter,
    FieldWarningEntry,
    InboxItem,
    LedgerEntry,
    ReconcileFailure,
    ReconcileRun,
    utcnow,
)

InboxStatus = Literal["pending", "claimed", "done", "dead", "ignored"]
AddResult = Literal["stored", "duplicate", "ignored"]
# Any constant: the PostgreSQL advisory lock that claim transactions queue on.
CLAIM_LOCK_KEY = 0x5305_5C02


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


class StateStore:
    """Repository over the state database (SQLite by default, any SQLAlchemy URL works)."""

    def __init__(self, engine: Engine, *, auto_migrate: bool = True):
        self.engine = engine
        if auto_migrate:
            migrate(engine)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None, *, data_dir: Path | None = None) -> StateStore:
        """Open (and migrate) the store at ``url``, or ``shopsync.db`` in ``data_dir``."""
        if url is None:
            url = sqlite_url(data_dir or Path("data"))
        return cls(create_state_engine(url))

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # -- cursors -----------------------------------------------------------------------------

    def get_cursor(self, name: str) -> datetime | None:
        """The cursor's value, or None when it was never set."""
        with self._tx() as s:
            row = s.get(Cursor, name)
            return None if row is None else row.value

    def advance_cursor(self, name: str, value: datetime) -> datetime:
        """Move the cursor forward to ``value``; an older value leaves it where it is.

        Returns the cursor's value after the call.
        """
        with self._tx() as s:
            row = s.get(Cursor, name)
            if row is None:
                s.add(Cursor(name=name, value=value, updated_at=utcnow()))
                return value
            if value > row.value:
                row.value = value
                row.updated_at = utcnow()
            return row.value

    def set_cursor(self, name: str, value: datetime, *, allow_backwards: bool = False) -> datetime:
        """An operator's move of the cursor to ``value`` (forward; back only when allowed).

        Moving forward skips orders the nightly has not proven (the operator's call); moving
        back only widens the next window. Raises ``ValueError`` for a move back not allowed.
        """
        with self._tx() as s:
            row = s.get(Cursor, name)
            if row is None:
                s.add(Cursor(name=name, value=value, updated_at=utcnow()))
                return value
            if value < row.value and not allow_backwards:
                raise ValueError(
                    f"the {name} cursor is at {row.value.isoformat()}; moving it back to "
                    f"{value.isoformat()} needs allow_backwards"
                )
            row.value = value
            row.updated_at = utcnow()
            return value

    # -- orders whose nightly repair keeps failing ---------------------------------------------

    def count_failed_night(self, failures: Iterable[FailedRepair]) -> dict[str, int]:
        """One more nightly run on which each of these orders' repair failed; returns the
        number of such runs per order (its reason is the latest failure's)."""
        now = utcnow()
        counts: dict[str, int] = {}
        with self._tx() as s:
            for failure in failures:
                row = s.get(ReconcileFailure, failure.order_id)
                if row is None:
                    row = ReconcileFailure(order_id=failure.order_id, nights=0, first_failed_at=now)
                    s.add(row)
                row.nights += 1
                row.stage, row.error_code, row.message = (
                    failure.stage,
                    failure.error_code,
                    failure.message,
                )
                row.last_failed_at = now
                counts[failure.order_id] = row.nights
        return counts

    def clear_failed_nights(self, order_ids: Iterable[str]) -> None:
        """Forget the failed nights of orders that are now repaired or dead-lettered."""
        ids = list(order_ids)
        with self._tx() as s:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                s.execute(delete(ReconcileFailure).where(ReconcileFailure.order_id.in_(chunk)))

    def failed_nights(self) -> dict[str, int]:
        """Orders whose nightly repair failed, and on how many nightly runs."""
        with self._tx() as s:
            return {r.order_id: r.nights for r in s.scalars(select(ReconcileFailure))}

    # -- reconcile runs ----------------------------------------------------------------------

    def start_run(
        self,
        mode: str,
        window_start: datetime,
        window_end: datetime,
        *,
        dry_run: bool = False,
        flow_run_id: str | None = None,
        host: str | None = None,
        pid: int | None = None,
    ) -> int:
        """Record the start of a reconcile run (and the host and process running it); its id."""
        with self._tx() as s:
            run = ReconcileRun(
                mode=mode,
                window_start=window_start,
                window_end=window_end,
                dry_run=dry_run,
                status="running",
                counts={},
                started_at=utcnow(),
                flow_run_id=flow_run_id,
                host=host,
                pid=pid,
            )
            s.add(run)
            s.flush()
            return run.id

    def finish_run(
        self, run_id: int, status: str, counts: dict[str, Any], error: str | None = None
    ) -> None:
        """Record a run's outcome."""
        with self._tx() as s:
            run = s.get_one(ReconcileRun, run_id)
            run.status = status
            run.counts = counts
            run.error = error
            run.finished_at = utcnow()

    def running_runs(self) -> list[RunRecord]:
        """Runs still marked running, oldest first."""
        with self._tx() as s:
            rows = s.scalars(
                select(ReconcileRun)
                .where(ReconcileRun.status == "running")
                .order_by(ReconcileRun.id)
            )
            return [_run_record(r) for r in rows]

    def recent_runs(self, limit: int = 10) -> list[RunRecord]:
        """The newest runs first."""
        with self._tx() as s:
            rows = s.scalars(select(ReconcileRun).order_by(ReconcileRun.id.desc()).limit(limit))
            return [_run_record(r) for r in rows]

    # -- inbox -------------------------------------------------------------------------------

    def add_delivery(self, delivery: Delivery, *, ignored: bool = False) -> AddResult:
        """Store a delivery; a webhook id seen before is a duplicate and changes nothing."""
        return self.add_deliveries([(delivery, ignored)])[0]

    def add_deliveries(self, items: Sequence[tuple[Delivery, bool]]) -> list[AddResult]:
        """Store several deliveries in one transaction (one disk sync for all of them).

        Each ``(delivery, ignored)`` gets its own answer; if the transaction fails, none is
        stored and the error propagates.
        """
        now = utcnow()
        rows = [_inbox_values(delivery, ignored, now) for delivery, ignored in items]
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            return [self._add_portably(row) for row in rows]
        if dialect == "sqlite":
            inserted = self._insert_sqlite(rows)
        else:
            # INSERT … ON CONFLICT DO NOTHING, the row passed as parameters (values baked into a
            # new statement cost ~1 ms of CPU per row to key and compile). preserve_rowcount:
            # SQLAlchemy only guarantees an INSERT's rowcount when asked; without it psycopg's
            # driver answers -1 and a duplicate would count as stored.
            statement = _insert_ignoring_duplicates(dialect)
            with self.engine.begin() as connection:
                connection = connection.execution_options(preserve_rowcount=True)
                inserted = [bool(connection.execute(statement, row).rowcount) for row in rows]
        return [_add_result(ok, row) for ok, row in zip(inserted, rows, strict=True)]

    def _insert_sqlite(self, rows: list[dict[str, Any]]) -> list[bool]:
        """The receiver's hot path on SQLite: the driver's cached prepared ``INSERT … ON
        CONFLICT DO NOTHING`` in ``BEGIN IMMEDIATE … COMMIT`` on a pooled connection (WAL,
        ``synchronous=FULL``: durable at COMMIT), with each column's own bind conversion. Skips
        SQLAlchemy's per-transaction work (~0.3 ms of CPU per commit, measured); the driver
        releases the GIL while SQLite works. Driver errors come out as SQLAlchemy's."""
        sql, to_params = _sqlite_inbox_insert(self.engine.dialect)
        connection = self.engine.raw_connection()
        try:
            cursor = connection.driver_connection.cursor()  # type: ignore[union-attr]  # open
            try:
                cursor.execute("BEGIN IMMEDIATE")
                inserted = []
                for row in rows:
                    cursor.execute(sql, to_params(row))
                    inserted.append(cursor.rowcount == 1)
                cursor.execute("COMMIT")
                return inserted
            except sqlite3.Error as exc:
                if connection.driver_connection.in_transaction:  # type: ignore[union-attr]
                    with suppress(sqlite3.Error):
                        cursor.execute("ROLLBACK")
                raise OperationalError(sql, None, exc) from exc
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool

    def _add_portably(self, row: dict[str, Any]) -> AddResult:
        try:
            with self._tx() as s:
                if s.get(InboxItem, row["webhook_id"]) is not None:
                    return "duplicate"
                s.add(InboxItem(**row))
        except IntegrityError:
            return "duplicate"  # a concurrent insert of the same webhook id won the race
        return _add_result(True, row)

    def claim(
        self,
        *,
        max_orders: int,
        lease: timedelta,
        owner: str | None = None,
        now: datetime | None = None,
    ) -> list[ClaimedOrder]:
        """Claim the due deliveries of up to ``max_orders`` orders under a lease.

        A row is due when it is pending and its next attempt time has come, or when it is
        claimed under a lease that has expired (its worker died). All due rows of an order are
        claimed together so several deliveries of one order coalesce into one sync. The lease
        owner names the claiming process (``host:pid:random``): a claimed row shows who holds it.
        """
        now = now or utcnow()
        owner = owner or claim_owner()
        due = or_(
            and_(InboxItem.status == "pending", InboxItem.next_attempt_at <= now),
            and_(InboxItem.status == "claimed", InboxItem.lease_expires_at <= now),
        )
        # An order whose sync is in flight under a live lease waits: one order, one worker.
        in_flight = select(InboxItem.order_id).where(
            InboxItem.status == "claimed", InboxItem.lease_expires_at > now
        )
        with self._tx() as s:
            self._serialise_claims(s)
            order_ids = list(
                s.scalars(
                    select(InboxItem.order_id)
                    .where(
                        due, InboxItem.order_id.is_not(None), InboxItem.order_id.not_in(in_flight)
                    )
                    .group_by(InboxItem.order_id)
                    .order_by(func.min(InboxItem.received_at))
                    .limit(max_orders)
                )
            )
            if not order_ids:
                return []
            # Re-checking `due` in the UPDATE means a row is never claimed twice even where
            # claimers do overlap (a database other than SQLite and PostgreSQL).
            s.execute(
                update(InboxItem)
                .where(due, InboxItem.order_id.in_(order_ids))
                .values(
                    status="claimed",
                    lease_owner=owner,
                    lease_expires_at=now + lease,
                    attempts=InboxItem.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            rows = s.scalars(
                select(InboxItem)
                .where(InboxItem.lease_owner == owner, InboxItem.status == "claimed")
                .order_by(InboxItem.received_at)
            ).all()
            return _group_by_order(rows)

    def _serialise_claims(self, s: Session) -> None:
        """Make claim transactions run one at a time, as SQLite's BEGIN IMMEDIATE does.

        The unit a claim takes is an order (all its due deliveries, none while another claimer
        holds it), not a row: ``FOR UPDATE SKIP LOCKED`` or a conditional UPDATE alone keep a row
        from being claimed twice, but a delivery that lands for an order another claimer holds
        is an unlocked, due row, and a second drain would sync that order at the same time. On
        PostgreSQL a transaction-scoped advisory lock closes that gap: claims are two short
        statements, so they queue for milliseconds while the syncs they hand out (seconds) run
        in parallel. The lock is released at commit or rollback, also when the client dies.
        """
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})

    def renew(self, owner: str, lease: timedelta, now: datetime | None = None) -> int:
        """Extend the live claims of ``owner`` to ``now + lease`` (a drain's heartbeat); returns
        how many rows it still holds. A lease that already expired is not revived: another drain
        may have taken the order over."""
        now = now or utcnow()
        with self._tx() as s:
            result = s.execute(
                update(InboxItem)
                .where(
                    InboxItem.lease_owner == owner,
                    InboxItem.status == "claimed",
                    InboxItem.lease_expires_at > now,
                )
                .values(lease_expires_at=now + lease)
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a CursorResult

    def complete(self, webhook_ids: Sequence[str]) -> None:
        """Mark deliveries done."""
        self._finish(webhook_ids, status="done", error=None)

    def dead(self, webhook_ids: Sequence[str], error: str) -> None:
        """Mark deliveries dead (their order is in the dead letters)."""
        self._finish(webhook_ids, status="dead", error=error)

    def retry_later(self, webhook_ids: Sequence[str], at: datetime, error: str) -> None:
        """Release deliveries back to pending, due again at ``at``, after a failed attempt.

        The claim that took them counted as an attempt and still does: after enough of these
        the drain gives up and dead-letters the order.
        """
        with self._tx() as s:
            s.execute(
                update(InboxItem)
                .where(InboxItem.webhook_id.in_(list(webhook_ids)))
                .values(**_released(at, error))
            )

    def hold(self, webhook_ids: Sequence[str], until: datetime, reason: str) -> None:
        """Put claimed deliveries back to pending until ``until`` without using up an attempt.

        For waits that say nothing about the order itself (a rate limit, the API budget
        reserve, rejected credentials): the claim's attempt is given back, so no number of holds
        brings an order closer to the dead letters. Rows no longer claimed are left alone, so
        holding the same rows twice gives back one attempt, not two.
        """
        with self._tx() as s:
            s.execute(
                update(InboxItem)
                .where(InboxItem.webhook_id.in_(list(webhook_ids)), InboxItem.status == "claimed")
                .values(
                    **_released(until, reason),
                    attempts=case((InboxItem.attempts > 0, InboxItem.attempts - 1), else_=0),
                )
            )

    def _finish(self, webhook_ids: Sequence[str], *, status: str, error: str | None) -> None:
        with self._tx() as s:
            s.execute(
                update(InboxItem)
                .where(InboxItem.webhook_id.in_(list(webhook_ids)))
                .values(
                    status=status,
                    last_error=error,
                    finished_at=utcnow(),
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )

    def inbox_row(self, webhook_id: str) -> InboxRow | None:
        """One delivery by webhook id."""
        with self._tx() as s:
            row = s.get(InboxItem, webhook_id)
            return None if row is None else _inbox_row(row)

    def inbox_rows(self, *, status: str | None = None, limit: int = 1000) -> list[InboxRow]:
        """Deliveries, oldest first, optionally of one status."""
        query = select(InboxItem).order_by(InboxItem.received_at).limit(limit)
        if status is not None:
            query = query.where(InboxItem.status == status)
        with self._tx() as s:
            return [_inbox_row(r) for r in s.scalars(query)]

    def order_bodies_received_since(
        self, since: datetime, topics: Iterable[str]
    ) -> Iterator[tuple[str, bytes]]:
        """``(order id, raw body)`` of every delivery of these topics received at or after
        ``since`` (the receiver stores Shopify's bytes as they came), in pages of 500."""
        wanted = sorted(topics)
        last: tuple[datetime, str] | None = None
        while True:
            query = (
                select(
                    InboxItem.received_at, InboxItem.webhook_id, InboxItem.order_id, InboxItem.body
                )
                .where(
                    InboxItem.received_at >= since,
                    InboxItem.order_id.is_not(None),
                    InboxItem.topic.in_(wanted),
                )
                .order_by(InboxItem.received_at, InboxItem.webhook_id)
                .limit(500)
            )
            if last is not None:
                query = query.where(
                    or_(
                        InboxItem.received_at > last[0],
                        and_(InboxItem.received_at == last[0], InboxItem.webhook_id > last[1]),
                    )
                )
            with self._tx() as s:
                rows = s.execute(query).all()
            if not rows:
                return
            for received_at, webhook_id, order_id, body in rows:
                last = (received_at, webhook_id)
                yield str(order_id), bytes(body)

    def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery becomes due, if any is pending."""
        with self._tx() as s:
            return s.scalar(
                select(func.min(InboxItem.next_attempt_at)).where(InboxItem.status == "pending")
            )

    def drain_outlook(self, now: datetime) -> tuple[datetime | None, int]:
        """When the inbox next has work for a new drain, and how many rows live drains hold.

        Work is a pending delivery whose time has come, or a claim whose lease ran out (its drain
        died): the first of those times, if any, and the count of claims under a live lease.
        """
        # Two index-friendly reads (ix_inbox_status_next_attempt) in one read-only snapshot: the
        # receiver's nudger asks this several times a second during a burst, with thousands of
        # rows pending, and must not take the write lock the receiver's commits need.
        claimed = InboxItem.status == "claimed"
        with self.engine.connect() as connection:
            s = connection.execution_options(**{READ_ONLY: True})
            first_pending = s.execute(
                select(func.min(InboxItem.next_attempt_at)).where(InboxItem.status == "pending")
            ).scalar()
            first_lease_end, live_claims = s.execute(
                select(
                    func.min(InboxItem.lease_expires_at),
                    func.count(case((InboxItem.lease_expires_at > now, 1), else_=None)),
                ).where(claimed)
            ).one()
        times = [t for t in (first_pending, first_lease_end) if t is not None]
        return (min(times) if times else None), int(live_claims or 0)

    # -- ledger ------------------------------------------------------------------------------

    def ledger(self, order_id: str) -> LedgerRecord | None:
        """The ledger entry of one order."""
        with self._tx() as s:
            row = s.get(LedgerEntry, order_id)
            return None if row is None else _ledger_record(row)

    def ledger_many(self, order_ids: Iterable[str]) -> dict[str, LedgerRecord]:
        """Ledger entries by order id (missing orders are absent)."""
        ids = list(order_ids)
        found: dict[str, LedgerRecord] = {}
        with self._tx() as s:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for row in s.scalars(select(LedgerEntry).where(LedgerEntry.order_id.in_(chunk))):
                    found[row.order_id] = _ledger_record(row)
        return found

    def record_sync(
        self,
        order_id: str,
        *,
        order_updated_at: datetime,
        payload_hash: str,
        account_id: str | None,
        contact_id: str | None,
        opportunity_id: str | None,
    ) -> None:
        """Record that the order's state as of ``order_updated_at`` is in Salesforce."""
        self.record_syncs(
            [
                SyncRecord(
                    order_id, order_updated_at, payload_hash, account_id, contact_id, opportunity_id
                )
            ]
        )

    def record_syncs(self, records: Iterable[SyncRecord]) -> None:
        """Record many syncs in one transaction (a bulk repair writes thousands at once)."""
        with self._tx() as s:
            _apply_syncs(s, records, utcnow())

    def record_batch(
        self,
        records: Iterable[SyncRecord],
        customers: Mapping[str, tuple[str | None, str | None]],
    ) -> None:
        """Record a drained batch in one transaction: its orders' syncs in the ledger and its
        customers' (Account id, Contact id) in the customer cache."""
        now = utcnow()
        with self._tx() as s:
            _apply_syncs(s, records, now)
            _upsert_customers(s, customers, now)

    def flag_deleted(self, order_id: str, at: datetime) -> bool:
        """Note that Shopify deleted an order we synced; False when the ledger does not know it."""
        with self._tx() as s:
            row = s.get(LedgerEntry, order_id)
            if row is None:
                return False
            row.deleted_in_shopify_at = at
            return True

    # -- customers ---------------------------------------------------------------------------

    def customer(self, customer_key: str) -> tuple[str | None, str | None] | None:
        """The Salesforce (Account id, Contact id) of a customer synced before, else None."""
        with self._tx() as s:
            row = s.get(CustomerEntry, customer_key)
            return None if row is None else (row.account_id, row.contact_id)

    def customers(self, keys: Iterable[str]) -> dict[str, tuple[str | None, str | None] | None]:
        """:meth:`customer` for many customers in one transaction (None: not known)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, tuple[str | None, str | None] | None] = dict.fromkeys(wanted)
        with self._tx() as s:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = select(CustomerEntry).where(CustomerEntry.customer_key.in_(chunk))
                for row in s.scalars(query):
                    found[row.customer_key] = (row.account_id, row.contact_id)
        return found

    def remember_customer(
        self, customer_key: str, *, account_id: str | None, contact_id: str | None
    ) -> None:
        """Record that a customer's Account and Contact exist in Salesforce."""
        with self._tx() as s:
            _upsert_customers(s, {customer_key: (account_id, contact_id)}, utcnow())

    def forget_customer(self, customer_key: str) -> None:
        """Drop a customer whose cached Salesforce ids turned out to be stale."""
        with self._tx() as s:
            row = s.get(CustomerEntry, customer_key)
            if row is not None:
                s.delete(row)

    # -- dead letters ------------------------------------------------------------------------

    def add_dead_letter(
        self,
        order_id: str,
        *,
        source: str,
        stage: str,
        message: str,
        error_code: str | None = None,
        fields: list[str] | None = None,
        payload: bytes | None = None,
        errors: list[dict[str, Any]] | None = None,
        order_name: str | None = None,
    ) -> int:
        """Record a failure; an order's open dead letter is updated rather than repeated.

        ``errors`` is the remote system's whole error list (``[{"code", "message", "fields"}]``);
        ``error_code``/``message``/``fields`` repeat its first real cause. ``order_name`` is the
        order's name (``#1301``) when the caller knows it (kept when a later call does not).
        """
        now = utcnow()
        with self._tx() as s:
            row = s.scalars(
                select(DeadLetter).where(
                    DeadLetter.order_id == order_id, DeadLetter.resolved_at.is_(None)
                )
            ).first()
            if row is None:
                row = DeadLetter(order_id=order_id, first_seen=now, attempts=0)
                s.add(row)
            row.source = source
            row.stage = stage
            row.message = message
            row.error_code = error_code
            row.fields = list(fields or [])
            row.errors = [dict(e) for e in errors] if errors else None
            row.payload = payload if payload is not None else row.payload
            row.order_name = order_name or row.order_name
            row.last_seen = now
            row.attempts = (row.attempts or 0) + 1
            s.flush()
            return row.id

    def name_dead_letters(self, names: Mapping[str, str | None]) -> int:
        """Give the open dead letters of these orders (order id → name) their order's name where
        they have none yet; returns how many were named."""
        named = 0
        wanted = {order_id: name for order_id, name in names.items() if name}
        ids = list(wanted)
        with self._tx() as s:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = s.scalars(
                    select(DeadLetter).where(
                        DeadLetter.order_id.in_(chunk),
                        DeadLetter.resolved_at.is_(None),
                        DeadLetter.order_name.is_(None),
                    )
                )
                for row in rows:
                    row.order_name = wanted[row.order_id]
                    named += 1
        return named

    def dead_letters(self, *, include_resolved: bool = False) -> list[DeadLetterRecord]:
        """Dead letters, newest first."""
        query = select(DeadLetter).order_by(DeadLetter.id.desc())
        if not include_resolved:
            query = query.where(DeadLetter.resolved_at.is_(None))
        with self._tx() as s:
            return [_dead_letter_record(r) for r in s.scalars(query)]

    def dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None:
        """One dead letter by id."""
        with self._tx() as s:
            row = s.get(DeadLetter, dead_letter_id)
            return None if row is None else _dead_letter_record(row)

    def resolve_dead_letters(self, order_id: str, resolution: str) -> int:
        """Close every open dead letter of an order; returns how many were closed."""
        with self._tx() as s:
            result = s.execute(
                update(DeadLetter)
                .where(DeadLetter.order_id == order_id, DeadLetter.resolved_at.is_(None))
                .values(resolved_at=utcnow(), resolution=resolution)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # -- field warnings ----------------------------------------------------------------------

    def record_field_warnings(
        self, warnings: Iterable[FieldWarning], *, path: str, run_id: str | None = None
    ) -> int:
        """Record values that were cut or left out; returns how many were new.

        A warning already recorded for the order (same object, field and kind) is updated:
        last seen, how often, on which path and run, the lengths of this time.
        """
        pending = {_warning_key(w): w for w in warnings}
        if not pending:
            return 0
        try:
            return self._record_field_warnings(pending, path, run_id)
        except IntegrityError:  # another writer added one of them first: now they all exist
            return self._record_field_warnings(pending, path, run_id)

    def _record_field_warnings(
        self, pending: dict[tuple[str, str, str, str], FieldWarning], path: str, run_id: str | None
    ) -> int:
        now = utcnow()
        order_ids = sorted({key[0] for key in pending})
        added = 0
        with self._tx() as s:
            existing = {
                (row.order_id, row.object, row.field, row.kind): row
                for row in s.scalars(
                    select(FieldWarningEntry).where(FieldWarningEntry.order_id.in_(order_ids))
                )
            }
            for key, warning in pending.items():
                row = existing.get(key)
                if row is None:
                    row = FieldWarningEntry(first_seen=now, times_seen=0)
                    s.add(row)
                    added += 1
                _apply_warning(row, warning, path, run_id, now)
        return added

    def field_warnings(
        self, *, order_id: str | None = None, limit: int = 1000
    ) -> list[FieldWarningRecord]:
        """Recorded field warnings, most recently seen first (optionally of one order)."""
        query = (
            select(FieldWarningEntry)
            .order_by(FieldWarningEntry.last_seen.desc(), FieldWarningEntry.id.desc())
            .limit(limit)
        )
        if order_id is not None:
            query = query.where(FieldWarningEntry.order_id == order_id)
        with self._tx() as s:
            return [_record(r, FieldWarningRecord) for r in s.scalars(query)]

    # -- overview ----------------------------------------------------------------------------

    def counts(self) -> StoreCounts:
        """Inbox depth by status, open dead letters, orders in the ledger."""
        with self._tx() as s:
            by_status = s.execute(
                select(InboxItem.status, func.count()).group_by(InboxItem.status)
            ).all()
            open_dead = s.scalar(
                select(func.count()).select_from(DeadLetter).where(DeadLetter.resolved_at.is_(None))
            )
            ledger = s.scalar(select(func.count()).select_from(LedgerEntry))
            warnings, warned_orders = s.execute(
                select(func.count(), func.count(FieldWarningEntry.order_id.distinct()))
            ).one()
        return StoreCounts(
            inbox={status: int(n) for status, n in by_status},
            dead_letters_open=int(open_dead or 0),
            ledger_orders=int(ledger or 0),
            field_warnings=int(warnings or 0),
            orders_with_field_warnings=int(warned_orders or 0),
        )


def claim_owner() -> str:
    """A lease owner for one claim: this host and process, and a random part (≤ 64 chars)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


def _inbox_values(delivery: Delivery, ignored: bool, now: datetime) -> dict[str, Any]:
    return {
        "webhook_id": delivery.webhook_id,
        "topic": delivery.topic,
        "shop_domain": delivery.shop_domain,
        "order_id": delivery.order_id,
        "event_id": delivery.event_id,
        "api_version": delivery.api_version,
        "triggered_at": delivery.triggered_at,
        "received_at": now,
        "body": delivery.body,
        "status": "ignored" if ignored else "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "finished_at": now if ignored else None,
    }


def _released(at: datetime, error: str) -> dict[str, Any]:
    """Column values of deliveries let go by their worker, due again at ``at``."""
    return {
        "status": "pending",
        "next_attempt_at": at,
        "last_error": error,
        "lease_owner": None,
        "lease_expires_at": None,
    }


def _add_result(inserted: bool, row: dict[str, Any]) -> AddResult:
    if not inserted:
        return "duplicate"
    return "ignored" if row["status"] == "ignored" else "stored"


RowToParams = Callable[[dict[str, Any]], tuple[Any, ...]]


@functools.cache
def _sqlite_inbox_insert(dialect: Dialect) -> tuple[str, RowToParams]:
    """SQLite's inbox insert as driver SQL, and the function that turns a row into its
    parameters through each column's bind conversion (the same stored form as through Core)."""
    columns = list(InboxItem.__table__.columns)
    names = [column.name for column in columns]
    processors = [column.type.bind_processor(dialect) for column in columns]
    # The column names are the model's; nothing in this SQL comes from input.
    columns_sql, marks = ", ".join(names), ", ".join("?" for _ in names)
    sql = f"INSERT INTO inbox ({columns_sql}) VALUES ({marks}) ON CONFLICT DO NOTHING"  # noqa: S608

    def to_params(row: dict[str, Any]) -> tuple[Any, ...]:
        values = (row.get(name) for name in names)
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(values, processors, strict=True)
        )

    return sql, to_params


@functools.cache
def _insert_ignoring_duplicates(dialect: str) -> Any:
    """``INSERT INTO inbox … ON CONFLICT DO NOTHING``, its values given at execution."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(InboxItem).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(InboxItem).on_conflict_do_nothing()


def _apply_syncs(s: Session, records: Iterable[SyncRecord], now: datetime) -> None:
    """Upsert many syncs into the ledger in the caller's transaction, 500 orders a statement.

    An INSERT … ON CONFLICT DO UPDATE, not a read then a write: two processes recording the same
    order (a drain and a reconcile repair on PostgreSQL) must not fail on the primary key. The
    update applies only when the recorded state is not older than the stored one, so an older
    state never overwrites a newer one."""
    rows = [
        {
            "order_id": r.order_id,
            "order_updated_at": r.order_updated_at,
            "payload_hash": r.payload_hash,
            "account_id": r.account_id,
            "contact_id": r.contact_id,
            "opportunity_id": r.opportunity_id,
            "synced_at": now,
        }
        for r in {r.order_id: r for r in records}.values()
    ]
    insert = _dialect_insert(s)(LedgerEntry)
    table = LedgerEntry.__table__.c
    new = insert.excluded
    statement = insert.on_conflict_do_update(
        index_elements=[table.order_id],
        set_={
            "order_updated_at": new.order_updated_at,
            "payload_hash": new.payload_hash,
            "account_id": func.coalesce(new.account_id, table.account_id),
            "contact_id": func.coalesce(new.contact_id, table.contact_id),
            "opportunity_id": func.coalesce(new.opportunity_id, table.opportunity_id),
            "synced_at": new.synced_at,
        },
        where=table.order_updated_at <= new.order_updated_at,
    )
    for start in range(0, len(rows), 500):
        s.execute(statement, rows[start : start + 500])


def _upsert_customers(
    s: Session, customers: Mapping[str, tuple[str | None, str | None]], now: datetime
) -> None:
    """Upsert customers' (Account id, Contact id) into the cache in the caller's transaction.

    ON CONFLICT, because drains in other processes record the same repeat customer at the same
    moment on PostgreSQL; an id not known this time keeps the one stored."""
    rows = [
        {"customer_key": key, "account_id": account, "contact_id": contact, "synced_at": now}
        for key, (account, contact) in customers.items()
    ]
    if not rows:
        return
    insert = _dialect_insert(s)(CustomerEntry)
    table = CustomerEntry.__table__.c
    statement = insert.on_conflict_do_update(
        index_elements=[table.customer_key],
        set_={
            "account_id": func.coalesce(insert.excluded.account_id, table.account_id),
            "contact_id": func.coalesce(insert.excluded.contact_id, table.contact_id),
            "synced_at": insert.excluded.synced_at,
        },
    )
    for start in range(0, len(rows), 500):
        s.execute(statement, rows[start : start + 500])


def _dialect_insert(s: Session) -> Any:
    """The INSERT construct with ON CONFLICT of the session's database (SQLite or PostgreSQL)."""
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _warning_key(warning: FieldWarning) -> tuple[str, str, str, str]:
    return (warning.order_id, warning.object, warning.field, warning.kind)


def _apply_warning(
    row: FieldWarningEntry, warning: FieldWarning, path: str, run_id: str | None, now: datetime
) -> None:
    row.order_id, row.object, row.field, row.kind = _warning_key(warning)
    row.order_name = warning.order_name or row.order_name
    row.original_length = warning.original_length
    row.limit = warning.limit
    row.reason = warning.reason
    row.path = path
    row.run_id = run_id or row.run_id
    row.last_seen = now
    row.times_seen = (row.times_seen or 0) + 1


def _group_by_order(rows: Sequence[InboxItem]) -> list[ClaimedOrder]:
    grouped: dict[str, list[InboxRow]] = defaultdict(list)
    for row in rows:
        grouped[str(row.order_id)].append(_inbox_row(row))
    return [ClaimedOrder(order_id=oid, deliveries=items) for oid, items in grouped.items()]


R = TypeVar("R")


def _record(row: object, record_type: type[R]) -> R:
    """Copy an ORM row into its plain record (lists and dicts copied, so callers own them)."""
    values = {}
    for item in fields(record_type):  # type: ignore[arg-type]
        value = getattr(row, item.name)
        values[item.name] = copy.copy(value) if isinstance(value, list | dict) else value
    return record_type(**values)


def _inbox_row(row: InboxItem) -> InboxRow:
    return _record(row, InboxRow)


def _ledger_record(row: LedgerEntry) -> LedgerRecord:
    return _record(row, LedgerRecord)


def _dead_letter_record(row: DeadLetter) -> DeadLetterRecord:
    return _record(row, DeadLetterRecord)


def _run_record(row: ReconcileRun) -> RunRecord:
    return _record(row, RunRecord)
