"""The order ledger (what is in Salesforce for each order) and the customer cache."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import select
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
            keys = list(customers)
            known: dict[str, CustomerEntry] = {}
            for start in range(0, len(keys), 500):
                query = select(CustomerEntry).where(
                    CustomerEntry.customer_key.in_(keys[start : start + 500])
                )
                known.update((row.customer_key, row) for row in s.scalars(query))
            for key, (account_id, contact_id) in customers.items():
                row = known.get(key)
                if row is None:
                    row = CustomerEntry(customer_key=key)
                    s.add(row)
                row.account_id = account_id or row.account_id
                row.contact_id = contact_id or row.contact_id
                row.synced_at = now

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
            row = s.get(CustomerEntry, customer_key)
            if row is None:
                row = CustomerEntry(customer_key=customer_key)
                s.add(row)
            row.account_id = account_id or row.account_id
            row.contact_id = contact_id or row.contact_id
            row.synced_at = utcnow()

    def forget_customer(self, customer_key: str) -> None:
        """Drop a customer whose cached Salesforce ids turned out to be stale."""
        with self._tx() as s:
            row = s.get(CustomerEntry, customer_key)
            if row is not None:
                s.delete(row)


def _apply_syncs(s: Session, records: Iterable[SyncRecord], now: datetime) -> None:
    """Apply many syncs to the ledger in the caller's transaction, 500 orders a read."""
    pending = {r.order_id: r for r in records}
    ids = list(pending)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = {
            row.order_id: row
            for row in s.scalars(select(LedgerEntry).where(LedgerEntry.order_id.in_(chunk)))
        }
        for order_id in chunk:
            _apply_sync(s, rows.get(order_id), pending[order_id], now)


def _apply_sync(s: Session, row: LedgerEntry | None, record: SyncRecord, now: datetime) -> None:
    if row is None:
        row = LedgerEntry(order_id=record.order_id)
        s.add(row)
    elif row.order_updated_at > record.order_updated_at:
        return  # never let an older state overwrite a newer one
    row.order_updated_at = record.order_updated_at
    row.payload_hash = record.payload_hash
    row.account_id = record.account_id or row.account_id
    row.contact_id = record.contact_id or row.contact_id
    row.opportunity_id = record.opportunity_id or row.opportunity_id
    row.synced_at = now


def _ledger_record(row: LedgerEntry) -> LedgerRecord:
    return as_record(row, LedgerRecord)
