"""The state store: reconcile cursors, run history, the webhook inbox, the order ledger, dead
letters and field warnings, in SQLite by default (any SQLAlchemy URL works), migrated
automatically."""

from state.store import (
    ClaimedOrder,
    DeadLetterRecord,
    Delivery,
    FailedRepair,
    FieldWarning,
    FieldWarningRecord,
    InboxRow,
    LedgerRecord,
    RunRecord,
    StateStore,
    StoreCounts,
    SyncRecord,
)

__all__ = [
    "ClaimedOrder",
    "DeadLetterRecord",
    "Delivery",
    "FailedRepair",
    "FieldWarning",
    "FieldWarningRecord",
    "InboxRow",
    "LedgerRecord",
    "RunRecord",
    "StateStore",
    "StoreCounts",
    "SyncRecord",
]
