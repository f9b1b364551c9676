"""How a reconcile run ends: its status and message, the nightly cursor moved only when every
order of the window is in Salesforce or dead-lettered (DESIGN.md §6), and the summary — the
flow's return value, the run's row in the state store and its markdown artifact — assembled
from the values the steps returned.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.reconcile_list import Listing
from flows.reconcile_publish import Reported
from flows.reconcile_read import Comparison
from flows.reconcile_repair import Repaired
from flows.reconcile_run import CURSOR, Started, api_used, minus
from tasks.core.reconcile_window import (
    READ_ALL_ORDERS_DAYS,
    SCOPE_MESSAGE,
    UNREADABLE_MESSAGE,
)
from tasks.reporting.reconcile_report import markdown_report, summary_line, window_label
from tasks.runtime import Runtime

OK_STATUSES = frozenset({"ok", "repaired_with_failures"})


@dataclass(frozen=True)
class Outcome:
    """How the run ended: ``ok`` / ``repaired_with_failures`` / ``stopped`` /
    ``incomplete_scope`` / ``failed``, why, the Salesforce API calls it used, and where the
    nightly cursor moved (None: it did not)."""

    status: str
    message: str = ""
    api_calls: int | None = None
    cursor_advanced_to: str | None = None
    unreadable: int = 0


BLOCKED = Outcome("incomplete_scope", SCOPE_MESSAGE)


def conclude(
    runtime: Runtime,
    run: Started,
    repaired: Repaired,
    unreadable: Mapping[str, datetime],
    api_baseline: int | None,
    *,
    advance: bool,
) -> Outcome:
    """The run's status and message; advance the nightly cursor when every order is accounted
    for (``advance``: a nightly run)."""
    status = run_status(repaired)
    message = repaired.message
    if unreadable:
        note = UNREADABLE_MESSAGE.format(count=len(unreadable), days=READ_ALL_ORDERS_DAYS)
        message = f"{message}; {note}" if message else note
    api_calls = minus(api_used(runtime.salesforce), api_baseline)
    cursor = None
    request = run.request
    if advance and all_accounted(status, repaired, dry_run=request.dry_run):
        runtime.store.advance_cursor(CURSOR, request.window_end)
        cursor = request.window_end.isoformat()
    return Outcome(status, message, api_calls, cursor, len(unreadable))


def run_status(repaired: Repaired) -> str:
    """``stopped`` (a hold stopped the writes), ``repaired_with_failures`` or ``ok``."""
    if repaired.stopped is not None:
        return "stopped"
    if repaired.dead_lettered or repaired.retry_later:
        return "repaired_with_failures"
    return "ok"


def all_accounted(status: str, repaired: Repaired, *, dry_run: bool) -> bool:
    """Every order of the window is in Salesforce or dead-lettered (nightly cursor rule)."""
    if dry_run or status not in OK_STATUSES:
        return False
    return not (repaired.retry_later or repaired.stopped is not None)


def finish(
    runtime: Runtime,
    run: Started,
    outcome: Outcome,
    found: Comparison | None = None,
    repaired: Repaired | None = None,
    reported: Reported | None = None,
    *,
    error: BaseException | None = None,
) -> dict[str, Any]:
    """Record the run's end in the state store and as a markdown artifact; its summary."""
    shopify_calls = runtime.shopify.calls - run.shopify_before
    result = summary(run, outcome, found, repaired, reported, shopify_calls=shopify_calls)
    get_run_logger().info("%s", summary_line(result))
    runtime.store.finish_run(
        run.run_id, outcome.status, result, error=None if error is None else str(error)
    )
    run.progress.set(100)
    try:
        create_markdown_artifact(
            markdown_report(result),
            key=f"reconcile-{run.request.mode}",
            description="Reconcile run summary",
        )
    except Exception:  # pragma: no cover - reporting never fails the run
        get_run_logger().warning("could not create the reconcile report artifact")
    return result


def summary(
    run: Started,
    outcome: Outcome,
    found: Comparison | None = None,
    repaired: Repaired | None = None,
    reported: Reported | None = None,
    *,
    shopify_calls: int = 0,
) -> dict[str, Any]:
    """A plain dict (JSON-ready) of the run, from what its steps returned (``None``: the step
    did not run)."""
    request = run.request
    fixed = repaired or Repaired()
    listing = found.listing if found is not None else Listing()
    found_counts = dict(found.counts) if found is not None else {}
    orphans = len(found.orphans) if found is not None else 0
    counts = {**found_counts, "orphan": orphans}
    if found_counts:
        counts["repaired"] = fixed.repaired
        counts["failed"] = fixed.dead_lettered + fixed.retry_later
    discrepancies = counts.get("missing", 0) + counts.get("drifted", 0)
    return {
        "run_id": run.run_id,
        "mode": request.mode,
        "status": outcome.status,
        "message": outcome.message,
        "dry_run": request.dry_run,
        "window": window_label(
            request.window_start, request.window_end, run.timezone, request.dates
        ),
        "timezone": run.timezone,
        "start_date": request.dates[0].isoformat() if request.dates else None,
        "end_date": request.dates[1].isoformat() if request.dates else None,
        "window_start": request.window_start.isoformat(),
        "window_end": request.window_end.isoformat(),
        "shopify_orders": listing.orders,
        "listing": listing.method,
        "salesforce_read": found.read_path if found is not None else "",
        "counts": counts,
        "discrepancies": discrepancies,
        "needs_human": counts.get("duplicate", 0) + orphans,
        "skipped": listing.skipped,
        "invalid": len(listing.invalid),
        "plan": dict(fixed.plan),
        "repaired": fixed.repaired,
        "dead_lettered": fixed.dead_lettered,
        "retry_later": fixed.retry_later,
        "superseded": fixed.superseded,
        "unreadable": outcome.unreadable,
        "field_warnings": fixed.field_warnings,
        "customers_read": dict(found.customers_read) if found is not None else {},
        "drifted_records": dict(found.drifted_records) if found is not None else {},
        "salesforce_api_calls": outcome.api_calls,
        "salesforce_write_calls": fixed.write_calls,
        "shopify_calls": shopify_calls,
        "duration_seconds": round(time.monotonic() - request.started, 3),
        "report_csv": reported.csv if reported is not None else None,
        "report_rows": reported.rows if reported is not None else None,
        "cursor_advanced_to": outcome.cursor_advanced_to,
    }
