"""Fault matrix, reconcile column (issue 10): Salesforce faults while ``reconcile`` repairs what
the webhook path did not deliver.

The webhook path syncs a few orders; the rest of the shop (about 500 orders) is missing from
Salesforce. A manual reconcile over the whole shop then runs with a seeded Salesforce fault on.
Whether the run finishes or fails loudly, nothing may be duplicated and every dead letter has its
reason. Once the fault clears, a replay plus a second reconcile make Salesforce complete (every
order once, with Shopify's current amount, no open dead letter), and a third run finds nothing.
(``tests/integration/test_reconcile.py`` covers the cursor and a run failing mid-repair on a
full outage.)
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flows.reconcile import reconcile
from flows.reconcile_run import CURSOR
from sandbox.shopify.store import OrderFilter
from state import StateStore
from tasks.settings import Settings, get_settings
from tests.integration.conftest import SHOP_TIMEZONE
from tests.reliability.support import (
    DrainLog,
    assert_complete,
    duplicates,
    record,
    replay_and_settle,
    running_receiver,
    send_creates,
    settle,
)

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

FAULTS = {
    "503 at rate 0.3": {"kind": "503", "rate": 0.3, "seed": 31},
    "UNABLE_TO_LOCK_ROW per record": {
        "kind": "unable_to_lock_row",
        "scope": "record",
        "object": "Opportunity",
        "rate": 0.05,
        "seed": 32,
    },
}
LOCK_PER_RECORD = FAULTS["UNABLE_TO_LOCK_ROW per record"]


def whole_shop(shopify: Any) -> tuple[date, date]:
    """Shop-timezone dates covering every generated order and every later edit."""
    zone = ZoneInfo(SHOP_TIMEZONE)
    info = shopify.sandbox.describe(shopify.shop)
    first = datetime.fromisoformat(info["start"]).astimezone(zone).date() - timedelta(days=1)
    return first, datetime.now(zone).date() + timedelta(days=1)


@pytest.mark.parametrize("spec", FAULTS.values(), ids=list(FAULTS))
def test_a_reconcile_under_salesforce_faults_duplicates_nothing_and_completes_after(
    spec: dict[str, Any],
    product: Settings,
    store: StateStore,
    salesforce: Any,
    shopify: Any,
) -> None:
    shop = shopify.shop
    with running_receiver(product, store, shop):
        send_creates(shop, 0, 10)
    log = DrainLog()
    settle(store, log)
    everything = {str(rec["id"]) for _, rec in shop.store.iterate(OrderFilter())}
    start, end = whole_shop(shopify)

    salesforce.fault(**spec)
    try:
        first: dict[str, Any] | None = reconcile(start, end)
        failure = None
    except Exception as exc:  # failing loudly under faults is allowed; duplicating is not
        first, failure = None, f"{type(exc).__name__}: {exc}"[:200]
    fired = sum(f["fired"] for f in salesforce.control.get("/__sandbox/faults").json()["faults"])
    assert fired > 0
    assert duplicates(salesforce) == {}
    for letter in store.dead_letters():
        assert letter.message.strip(), letter
    dead_during = len(store.dead_letters())
    if first is not None:  # a finished run accounts for every order it did not write
        synced = {r["External_Shopify_Order_ID__c"] for r in salesforce.records("Opportunity")}
        dead = {d.order_id for d in store.dead_letters()}
        assert len(everything - synced - dead) == first["retry_later"], first

    salesforce.clear_faults()
    replayed = replay_and_settle(store, log)
    second = reconcile(start, end)
    assert_complete(store, salesforce, shop, everything)
    third = reconcile(start, end)
    assert third["discrepancies"] == 0
    record(
        f"reconcile {next(k for k, v in FAULTS.items() if v == spec)}",
        orders=len(everything),
        faults_fired=fired,
        first_run=failure
        or {k: first.get(k) for k in ("status", "repaired", "dead_lettered", "retry_later")},
        dead_letters=dead_during,
        replayed=replayed["replayed"],
        second_run={k: second.get(k) for k in ("status", "repaired", "discrepancies")},
        third_run_discrepancies=third["discrepancies"],
        complete=True,
    )


def test_a_nightly_reconcile_never_moves_the_cursor_past_an_unsynced_order(
    product: Settings,
    store: StateStore,
    salesforce: Any,
    shopify: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Per-record lock failures during the nightly run: the orders left for the next run keep
    the cursor where it was; the next run (faults gone) repairs them and moves it."""
    monkeypatch.setenv("SHOPSYNC_RECONCILE_LOOKBACK_HOURS", str(24 * 45))
    get_settings.cache_clear()
    shop = shopify.shop
    everything = {str(rec["id"]) for _, rec in shop.store.iterate(OrderFilter())}
    salesforce.fault(**LOCK_PER_RECORD)
    first = reconcile()
    assert first["retry_later"] > 0, first
    assert first["cursor_advanced_to"] is None
    assert store.get_cursor(CURSOR) is None
    synced = {r["External_Shopify_Order_ID__c"] for r in salesforce.records("Opportunity")}
    dead = {d.order_id for d in store.dead_letters()}
    assert len(everything - synced - dead) == first["retry_later"]
    assert duplicates(salesforce) == {}

    salesforce.clear_faults()
    second = reconcile()
    assert second["cursor_advanced_to"] == second["window_end"]
    assert store.get_cursor(CURSOR) is not None
    assert_complete(store, salesforce, shop, everything)
    record(
        "reconcile nightly cursor under per-record locks",
        orders=len(everything),
        first_run={k: first.get(k) for k in ("status", "repaired", "retry_later")},
        cursor_after_first=first["cursor_advanced_to"],
        second_run={k: second.get(k) for k in ("status", "repaired")},
        cursor_after_second=second["cursor_advanced_to"],
    )


def test_a_single_transient_503_does_not_fail_a_reconcile_run(
    product: Settings, salesforce: Any, shopify: Any
) -> None:
    start, end = whole_shop(shopify)
    salesforce.fault(kind="503", count=1)
    result = reconcile(start, end)
    assert result["status"] == "ok"
    assert duplicates(salesforce) == {}
