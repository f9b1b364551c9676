"""The state store's repository API: the only code that reads or writes the state tables.

Every method is one short transaction and returns plain dataclasses, never ORM objects, so callers
(flows, the receiver, the CLI) cannot hold a session open by accident. :class:`StateStore` is the
one entry point; its methods live by subject in this package's modules (runs and cursors, the inbox,
claims and leases, the ledger, dead letters, field warnings), each a mixin over
:class:`state.base.StoreBase` (the engine and the transaction helper).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from state.base import StoreBase
from state.claims import CLAIM_LOCK_KEY, ClaimsMixin, claim_owner
from state.db import create_state_engine, sqlite_url
from state.dead_letters import DeadLettersMixin
from state.field_warnings import FieldWarningsMixin
from state.inbox import InboxMixin
from state.ledger import LedgerMixin
from state.models import DeadLetter, FieldWarningEntry, InboxItem, LedgerEntry
from state.records import (
    AddResult,
    ClaimedOrder,
    DeadLetterRecord,
    Delivery,
    FailedRepair,
    FieldWarning,
    FieldWarningRecord,
    InboxRow,
    InboxStatus,
    LedgerRecord,
    RunRecord,
    StoreCounts,
    SyncRecord,
    WarningKind,
)
from state.runs import RunsMixin

__all__ = [
    "CLAIM_LOCK_KEY",
    "AddResult",
    "ClaimedOrder",
    "DeadLetterRecord",
    "Delivery",
    "FailedRepair",
    "FieldWarning",
    "FieldWarningRecord",
    "InboxRow",
    "InboxStatus",
    "LedgerRecord",
    "RunRecord",
    "StateStore",
    "StoreCounts",
    "SyncRecord",
    "WarningKind",
    "claim_owner",
]


class StateStore(
    RunsMixin,
    InboxMixin,
    ClaimsMixin,
    LedgerMixin,
    DeadLettersMixin,
    FieldWarningsMixin,
    StoreBase,
):
    """Repository over the state database (SQLite by default, any SQLAlchemy URL works)."""

    @classmethod
    def open(cls, url: str | None = None, *, data_dir: Path | None = None) -> StateStore:
        """Open (and migrate) the store at ``url``, or ``shopsync.db`` in ``data_dir``."""
        if url is None:
            url = sqlite_url(data_dir or Path("data"))
        return cls(create_state_engine(url))

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

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
