"""Dead letters: the orders that could not be synced, and why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update

from state.base import StoreBase
from state.models import DeadLetter, utcnow
from state.records import DeadLetterRecord, as_record


class DeadLettersMixin(StoreBase):
    """Records, names, lists and resolves dead letters."""

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


def _dead_letter_record(row: DeadLetter) -> DeadLetterRecord:
    return as_record(row, DeadLetterRecord)
