"""One-off runs in the foreground: ``sync-order``, ``drain``, ``reconcile`` (and moving the
nightly cursor)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated

import typer

from deployments.cli_common import (
    EXIT_FAILED,
    _fail,
    _prefect_api,
    _preflight,
    _run_flow,
    _settings,
    _store,
)


def sync_order_command(
    order_id: Annotated[str, typer.Argument(help="Order name (#1001) or numeric order id.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run's result as JSON (for scripts).")
    ] = False,
) -> None:
    """Sync one Shopify order now (exit 1, with one line, when it was dead-lettered)."""
    from tasks.core.orders import order_reference

    try:
        order_id = order_reference(order_id)
    except ValueError as exc:
        _fail([f"shopsync sync-order: {exc} (the number at the end of the order's admin URL)"])
    settings = _settings("shopify", "salesforce")
    _preflight(settings, "Shopify", "Salesforce")
    with _prefect_api(settings, json_out=as_json):
        from flows.sync_order import sync_order

        result = _run_flow(sync_order, order_id=order_id)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    elif result.get("action") != "dead_letter":  # a dead letter's one line is already out
        from deployments.status_view import sync_order_line

        typer.echo(sync_order_line(result))
    if result.get("action") == "dead_letter":
        raise typer.Exit(EXIT_FAILED)


def drain_command(
    max_seconds: Annotated[
        float, typer.Option(help="Stop claiming new work after this long.")
    ] = 240.0,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Orders claimed at a time (default: 800 when SHOPSYNC_DRAIN_MODE may use "
            "sObject Collections, 50 with per_order).",
            min=1,
        ),
    ] = None,
) -> None:
    """Drain the webhook inbox once, in the foreground (for cron, and for debugging)."""
    settings = _settings("shopify", "salesforce")
    _preflight(settings, "Shopify", "Salesforce")
    with _prefect_api(settings):
        from flows.sync_pending import sync_pending_orders

        result = _run_flow(sync_pending_orders, max_seconds=max_seconds, batch_size=batch_size)
    outcomes = result.get("outcomes") or {}
    done = ", ".join(f"{count} {what}" for what, count in sorted(outcomes.items()))
    typer.echo(f"drain finished: {done or 'nothing was pending'}")
    if result.get("stopped_because"):
        typer.echo(f"stopped early: {result['stopped_because']}", err=True)
        raise typer.Exit(EXIT_FAILED)


def reconcile_command(
    start: Annotated[
        str | None, typer.Option(help="First day (shop timezone), YYYY-MM-DD.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Last day, inclusive, YYYY-MM-DD.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Report the repair plan; write nothing.")] = False,
    advance_cursor_to: Annotated[
        str | None,
        typer.Option(
            help="Run nothing: move the nightly cursor to this ISO 8601 time with a timezone "
            "(orders updated before it are no longer checked by the nightly run)."
        ),
    ] = None,
    allow_backwards: Annotated[
        bool, typer.Option(help="With --advance-cursor-to: allow moving the cursor back.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run's full result as JSON (for scripts).")
    ] = False,
) -> None:
    """Reconcile a date range (or, without dates, the nightly window from the cursor)."""
    if advance_cursor_to is not None:
        if start or end or dry_run:
            _fail(["--advance-cursor-to runs nothing: give it without --start/--end/--dry-run"])
        _move_cursor(advance_cursor_to, allow_backwards)
        return
    first, last = _dates(start, end)
    settings = _settings("shopify", "salesforce")
    _preflight(settings, "Shopify", "Salesforce")
    with _prefect_api(settings, json_out=as_json):
        from deployments.progress_view import DRY_RUN_STAGES, RECONCILE_STAGES, progress_display
        from flows.reconcile import backfill, nightly

        with progress_display(DRY_RUN_STAGES if dry_run else RECONCILE_STAGES):
            if first is None or last is None:
                result = _run_flow(nightly, dry_run=dry_run)
            else:
                result = _run_flow(backfill, start=first, end=last, dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        from deployments.status_view import reconcile_line

        typer.echo(reconcile_line(result))


def _move_cursor(value: str, allow_backwards: bool) -> None:
    """An operator's move of the nightly cursor (the nightly run only ever moves it forward)."""
    from flows.reconcile_run import CURSOR

    try:
        target = datetime.fromisoformat(value)
    except ValueError as exc:
        _fail([f"--advance-cursor-to must be an ISO 8601 time: {exc}"])
        raise
    if target.tzinfo is None:
        _fail([f"--advance-cursor-to {value}: give a timezone, e.g. {value}+00:00"])
    store = _store(_settings())
    try:
        before = store.get_cursor(CURSOR)
        after = store.set_cursor(CURSOR, target.astimezone(UTC), allow_backwards=allow_backwards)
    except ValueError as exc:
        _fail([f"{exc} (pass --allow-backwards to widen the next nightly window)"], EXIT_FAILED)
        raise
    finally:
        store.close()
    moved = {"cursor": CURSOR, "from": before, "to": after}
    typer.echo(json.dumps(moved, indent=2, default=str))


def _dates(start: str | None, end: str | None) -> tuple[date | None, date | None]:
    if (start is None) != (end is None):
        _fail(["give both --start and --end, or neither (the nightly window)"])
    try:
        first = date.fromisoformat(start) if start else None
        last = date.fromisoformat(end) if end else None
    except ValueError as exc:
        _fail([f"dates must be YYYY-MM-DD: {exc}"])
        raise
    if first and last and last < first:
        _fail([f"--end {last} is before --start {first}"])
    return first, last
