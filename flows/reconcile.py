"""The ``reconcile`` flow: prove Salesforce holds every Shopify order of a window, and repair it.

With ``start`` and ``end`` (shop-timezone dates, both inclusive) it reconciles that window — a
backfill — and never moves the nightly cursor. Without dates it covers the nightly window
``[cursor − lookback, signpost)``, the signpost fixed when it starts, and advances the cursor to
the signpost only when every order of the window is in Salesforce or dead-lettered (DESIGN.md §6).
The steps are in ``tasks.reconcile_run``; the pure diff in ``tasks.reconcile``.
"""

from __future__ import annotations

from datetime import UTC, date
from typing import Any

from prefect import flow

from state.models import utcnow
from tasks.reconcile_run import CURSOR, Run, execute, nightly_window, shop_window
from tasks.runtime import build_runtime
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
        window_start, window_end = shop_window(start, end, runtime.shop_timezone())
        return execute(runtime, Run("manual", window_start, window_end, dry_run), advance=False)
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
        return execute(runtime, Run("nightly", window_start, window_end, dry_run), advance=True)
    finally:
        runtime.close()
