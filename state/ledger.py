"""The order ledger (what is in Salesforce for each order) and the customer cache."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from state.base import StoreBase
from state.models import CustomerEntry, LedgerEntry, utcnow
from state.records import LedgerRecord, SyncRecord, as_record


class LedgerMixin(StoreBase):
    """What was applied to Salesforce per order, and the customers' Salesforce ids."""

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


def _ledger_record(row: LedgerEntry) -> LedgerRecord:
    return as_record(row, LedgerRecord)
