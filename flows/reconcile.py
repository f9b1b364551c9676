"""The ``reconcile`` flow: prove Salesforce holds every Shopify order of a window, and repair it.

With ``start`` and ``end`` (shop-timezone dates, both inclusive) it reconciles that window — a
backfill — and never moves the nightly cursor. Without dates it covers the nightly window
``[cursor − lookback, signpost)``, the signpost fixed when it starts, and advances the cursor to
the signpost only when every order of the window is in Salesforce or dead-lettered (DESIGN.md §6).
The run reads as its steps (:func:`run_window`): list → read → diff → repair → report, each a
function in a ``flows/reconcile_*.py`` module that takes the values the steps before it returned
and returns a frozen value; the pure diff and repair plan are in ``tasks.core``.

The deployments run ``nightly`` and ``backfill``: the same work, named for what they are
(``nightly 2026-12-01``, ``backfill 2026-11-15…2026-11-30 (dry run)``), ending ``Failed`` when any
order failed or the run stopped early (``flows.outcome``). ``backfill`` requires both dates and
dry-runs unless told otherwise, so the form cannot write to Salesforce or move the cursor by
accident.
"""

from __future__ import annotations

from datetime import UTC, date
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.outcome import RunOutcome, final_state
from flows.reconcile_finish import BLOCKED, Outcome, conclude, finish
from flows.reconcile_list import hidden_orders, list_orders, spool_path
from flows.reconcile_publish import report
from flows.reconcile_read import Comparison, compare, read_back
from flows.reconcile_repair import repair_window
from flows.reconcile_run import CURSOR, Request, fresh_usage, start, sync_context
from state.models import utcnow
from tasks.core.reconcile_window import nightly_window, shop_window
from tasks.runtime import Runtime, build_runtime
from tasks.settings import get_settings


@flow(name="reconcile")
def reconcile(
    start: date | None = None, end: date | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Reconcile Shopify orders into Salesforce over a window, and repair the gaps.

    Args:
        start: First day, in the shop's timezone. Leave both dates empty for the nightly window.
        end: Last day (inclusive), in the shop's timezone.
        dry_run: Report the repair plan without writing anything to Salesforce.
    """
    if start is None and end is None:
        return _nightly(dry_run)
    if start is None or end is None:
        raise ValueError("give both start and end, or neither (the nightly window)")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    runtime = build_runtime(get_settings())
    try:
        zone = runtime.shop_timezone()
        window_start, window_end = shop_window(start, end, zone)
        request = Request(
            "manual", window_start, window_end, dry_run, timezone=zone, dates=(start, end)
        )
        return run_window(runtime, request, advance=False)
    finally:
        runtime.close()


def _nightly(dry_run: bool) -> dict[str, Any]:
    settings = get_settings()
    signpost = utcnow().replace(microsecond=0)  # fixed before anything else happens
    runtime = build_runtime(settings)
    try:
        cursor = runtime.store.get_cursor(CURSOR)
        if cursor is not None and cursor.tzinfo is None:
            cursor = cursor.replace(tzinfo=UTC)
        window_start, window_end = nightly_window(
            cursor, signpost, settings.reconcile_lookback_hours
        )
        request = Request("nightly", window_start, window_end, dry_run)
        return run_window(runtime, request, advance=True)
    finally:
        runtime.close()


def run_window(runtime: Runtime, request: Request, *, advance: bool) -> dict[str, Any]:
    """One reconcile run over ``[request.window_start, request.window_end)``: list → read →
    diff → repair → report; its summary. ``advance``: move the nightly cursor when every order
    of the window is in Salesforce or dead-lettered."""
    run = start(runtime, request)  # the run's row, after recovering abandoned runs
    found: Comparison | None = None
    try:
        if run.blocked:  # the window reaches orders Shopify hides from this app
            return finish(runtime, run, BLOCKED)
        unreadable = hidden_orders(runtime, run)
        api_baseline = fresh_usage(runtime)
        ctx = sync_context(runtime)
        spool = spool_path(runtime, run)
        try:
            listed = list_orders(runtime, request, ctx, spool)
            read = read_back(runtime, request, ctx, listed)
            found = compare(runtime, ctx, listed, read)
            del listed, read  # their frames are done with: free them before the repair
            run.progress.set(50)
            repaired = repair_window(runtime, request, ctx, spool, found)
            run.progress.set(90)
        finally:
            spool.unlink(missing_ok=True)
        reported = report(runtime, run, found, repaired, unreadable)
        outcome = conclude(runtime, run, repaired, unreadable, api_baseline, advance=advance)
        return finish(runtime, run, outcome, found, repaired, reported)
    except Exception as exc:
        finish(runtime, run, Outcome("failed"), found, error=exc)
        raise


def summary_outcome(summary: dict[str, Any]) -> RunOutcome:
    """A reconcile summary in the terms of the run's final state."""
    failed = {"dead-lettered": summary.get("dead_lettered", 0)}
    failed["left for the next run"] = summary.get("retry_later", 0)
    note = None
    if summary.get("status") in {"stopped", "incomplete_scope"}:
        note = f"{summary['status']}: {summary.get('message') or 'see the report'}"
    done = {
        "in step": summary.get("counts", {}).get("in_sync", 0),
        "repaired": summary.get("repaired", 0),
        "to repair (dry run)": summary.get("discrepancies", 0) if summary.get("dry_run") else 0,
    }
    return RunOutcome(
        kind="reconcile",
        total=int(summary.get("shopify_orders", 0)),
        done=done,
        failed={k: v for k, v in failed.items() if v},
        failed_verb="failed",
        note=note,
        dead_lettered=int(summary.get("dead_lettered", 0)),
    )


def _nightly_name() -> str:
    zone = get_settings().shop_timezone
    now = utcnow()
    if zone:
        from zoneinfo import ZoneInfo

        now = now.astimezone(ZoneInfo(zone))
    return f"nightly {now:%Y-%m-%d}"


def _backfill_name() -> str:
    params = flow_run.parameters
    dry = " (dry run)" if params.get("dry_run", True) else ""
    return f"backfill {params.get('start')}…{params.get('end')}{dry}"


@flow(name="reconcile", flow_run_name=_nightly_name)
def nightly(dry_run: bool = False) -> Any:
    """The nightly reconciliation from the cursor; Failed when any order could not be repaired.

    Args:
        dry_run: Report the repair plan without writing anything to Salesforce (or moving the
            cursor).
    """
    summary = _nightly(dry_run)
    return final_state(summary_outcome(summary), summary)


@flow(name="reconcile", flow_run_name=_backfill_name)
def backfill(start: date, end: date, dry_run: bool = True) -> Any:
    """Reconcile a date range by hand; never moves the nightly cursor.

    Args:
        start: First day, in the shop's timezone.
        end: Last day (inclusive), in the shop's timezone.
        dry_run: On by default: only report what would be repaired. Turn it off to write the
            repairs to Salesforce.
    """
    summary = reconcile.fn(start=start, end=end, dry_run=dry_run)
    return final_state(summary_outcome(summary), summary)
