"""Reconciliation's outcome per order, pure: the repairs that failed (:class:`Failure`, from the
classified per-record results) and the discrepancy table of the report (failed rows first).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tasks.core.diff import DiffResult
from tasks.core.disposition import is_transient
from tasks.core.errors import PermanentError, RetryableError, SyncError
from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY

__all__ = [
    "REPORT_COLUMNS",
    "Failure",
    "discrepancy_rows",
    "failed_first",
    "failure_text",
    "failures_by_order",
    "row_outcome",
]


@dataclass(frozen=True, slots=True)
class Failure:
    """One order whose repair failed: which record, Salesforce's first reason, and every error
    Salesforce reported for that record (``errors``).

    ``error`` is the failure as Salesforce's classifier sees it, for ``tasks.core.disposition``;
    ``transient``: a later run may succeed (it counts as a failed night).
    """

    order_id: str
    stage: str
    code: str
    message: str
    fields: tuple[str, ...] = ()
    transient: bool = False
    errors: tuple[Any, ...] = ()  # RecordError
    error: SyncError | None = field(default=None, compare=False)

    @property
    def classified(self) -> SyncError:
        """The failure for ``tasks.core.disposition``: ``error``, else (a Failure built without
        one) a transient or permanent error with its code and reason."""
        if self.error is not None:
            return self.error
        kind = RetryableError if self.transient else PermanentError
        return kind(self.message, code=self.code, fields=list(self.fields), stage=self.stage)


def failures_by_order(
    results: Iterable[Any], orders_of: Mapping[str, Sequence[str]] | None, stage: str
) -> dict[str, Failure]:
    """Failed ``RecordResult``s → the orders they affect (``orders_of`` maps key → orders;
    ``None`` means the key is the order id). Each result's ``error`` is already classified."""
    found: dict[str, Failure] = {}
    for result in results:
        error = result.error
        if error is None:
            continue
        affected = [result.key] if orders_of is None else orders_of.get(result.key, [])
        for order_id in affected:
            found.setdefault(
                order_id,
                Failure(
                    order_id,
                    stage,
                    str(error.code),
                    error.message,
                    tuple(error.fields),
                    transient=is_transient(error),
                    errors=tuple(result.errors),
                    error=error,
                ),
            )
    return found


REPORT_COLUMNS = (
    "order_id",
    "order_name",
    "status",
    "outcome",
    "error",
    "detail",
    "salesforce_ids",
    "opportunity_id",
    "account_id",
    "contact_id",
)
WOULD = {"missing": "would create", "drifted": "would update"}
REPORTED = "reported only (needs a human; never deleted)"
WRITTEN_OBJECTS = {"opportunity_id": OPPORTUNITY, "account_id": ACCOUNT, "contact_id": CONTACT}


def row_outcome(
    status: str, *, dry_run: bool, failed: bool, repaired: bool, stopped: bool = False
) -> str:
    """What the run did about one discrepancy: ``would create`` / ``would update`` (dry run),
    ``repaired`` / ``failed`` (a real run), or why nothing was written."""
    if status not in WOULD:
        return REPORTED
    if dry_run:
        return WOULD[status]
    if failed:
        return "failed"
    if repaired:
        return "repaired"
    if stopped:
        return "not written: the run stopped early (the next run repairs it)"
    return "not written: the webhook path wrote it during the run"


def failure_text(failure: Failure) -> str:
    """A failure as one cell: the record that failed, Salesforce's code and message."""
    return f"{failure.stage}: {failure.code}: {failure.message}"


def discrepancy_rows(
    result: DiffResult,
    orphans: pd.DataFrame,
    failures: Mapping[str, Failure],
    *,
    dry_run: bool = False,
    written: Mapping[str, Mapping[str, str]] | None = None,
    stopped: bool = False,
) -> pd.DataFrame:
    """Every discrepancy as one table (columns ``REPORT_COLUMNS``), failed rows first, then the
    other non-``in_sync`` orders, then orphans.

    ``outcome`` says what the run did about each row (:func:`row_outcome`), ``error`` why a
    repair failed (code and message); a repaired row names the Salesforce ids written
    (``written``: order id → object → id; the Opportunity always, its Account and Contact when
    this run wrote or linked them).
    """
    written = written or {}
    orders = result.orders[result.orders["status"] != "in_sync"]
    ids = list(orders["order_id"])
    outcomes = [
        row_outcome(
            status,
            dry_run=dry_run,
            failed=order_id in failures,
            repaired=order_id in written,
            stopped=stopped,
        )
        for order_id, status in zip(ids, orders["status"], strict=True)
    ]
    table = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy(),
            "order_name": orders["order_name"].to_numpy(),
            "status": orders["status"].to_numpy(),
            "outcome": pd.Series(outcomes, dtype="object").to_numpy(),
            "error": pd.Series(
                [failure_text(failures[i]) if i in failures else None for i in ids],
                dtype="object",
            ).to_numpy(),
            "detail": orders["drift"].to_numpy(),
            "salesforce_ids": orders["salesforce_ids"].to_numpy(),
            **{
                column: pd.Series(
                    [written.get(i, {}).get(sobject) for i in ids], dtype="object"
                ).to_numpy()
                for column, sobject in WRITTEN_OBJECTS.items()
            },
        },
        columns=list(REPORT_COLUMNS),
    )
    orphan_table = pd.DataFrame(
        {
            "order_id": orphans["order_id"].to_numpy(),
            "order_name": orphans["name"].to_numpy(),
            "status": ["orphan"] * len(orphans),
            "outcome": [REPORTED] * len(orphans),
            "detail": [f"Salesforce-only Opportunity (Amount {a})" for a in orphans["amount"]],
            "salesforce_ids": orphans["sf_id"].to_numpy(),
        },
        columns=list(REPORT_COLUMNS),
    ).astype(object)
    if orphan_table.empty:
        return failed_first(table)
    if table.empty:
        return orphan_table
    return failed_first(pd.concat([table, orphan_table], ignore_index=True))


def failed_first(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its ``failed`` rows first, every other row in its order."""
    if table.empty:
        return table.reset_index(drop=True)
    rank = (table["outcome"] != "failed").astype(int)
    return table.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
