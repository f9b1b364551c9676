"""Field warnings: values that reached Salesforce cut short or not at all."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from state.base import StoreBase
from state.models import FieldWarningEntry, utcnow
from state.records import FieldWarning, FieldWarningRecord, as_record


class FieldWarningsMixin(StoreBase):
    """Records and lists field warnings."""

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
            return [as_record(r, FieldWarningRecord) for r in s.scalars(query)]


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
