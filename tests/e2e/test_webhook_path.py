"""Webhook path end to end (issue 6): the Shopify sandbox's webhook sender → the receiver on
uvicorn over loopback → the inbox → the drain flow under the Prefect test harness → the
Salesforce sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from decimal import Decimal

import pytest
from prefect.settings import PREFECT_API_URL

from flows.outcome import run_flow
from flows.sync_pending import sync_pending_orders
from sandbox.server import BackgroundServer
from state import StateStore
from tasks.settings import Settings
from tests.e2e.conftest import drain, post
from tests.integration.conftest import WEBHOOK_SECRET
from webhooks.app import create_app
from webhooks.deliveries import sign
from webhooks.serve import receiver_config

pytestmark = pytest.mark.usefixtures("prefect_harness")


def opportunities(salesforce) -> dict[str, list[dict]]:
    by_order: dict[str, list[dict]] = {}
    for record in salesforce.records("Opportunity"):
        by_order.setdefault(record["External_Shopify_Order_ID__c"], []).append(record)
    return by_order


def shop_truth(shopify, order_ids: list[int]) -> dict[str, Decimal]:
    """Each order's current total, from the sandbox's own REST view."""
    truth = {}
    for order_id in order_ids:
        rest = shopify.shop.rest(shopify.shop.store.get(order_id))
        truth[str(order_id)] = Decimal(str(rest["current_total_price"]))
    return truth


def test_500_orders_with_duplicates_and_out_of_order_updates_end_as_500_opportunities(
    receiver: str, shopify, salesforce, store: StateStore
) -> None:
    shop = shopify.shop
    shop.webhooks.configure(duplicate_rate=0.10, out_of_order_rate=0.05, seed=3)
    assert shop.send_order_events("orders/create", 0, 500) == 500
    ids = [shop.generator.order_id(i) for i in range(500)]
    for n, order_id in enumerate(ids[::20]):  # 25 orders edited after creation
        shop.update_order(order_id, {"total_price": f"{100 + n}.25"})
    assert shop.webhooks.flush(timeout=120)
    deliveries = shop.webhooks.deliveries()
    assert any(d.get("duplicate") for d in deliveries) or len(deliveries) > 525
    salesforce.reset_stats()
    outcomes = drain(store)
    synced = opportunities(salesforce)
    assert len(synced) == 500
    # At most one composite per order (the per-order path); the default adaptive drain writes
    # this backlog with sObject Collections, far fewer (tests/integration/test_batch_drain.py).
    assert salesforce.api_calls() <= 1.1 * 500
    assert all(len(records) == 1 for records in synced.values())
    truth = shop_truth(shopify, ids)
    wrong = {
        oid: (synced[oid][0]["Amount"], amount)
        for oid, amount in truth.items()
        if Decimal(str(synced[oid][0]["Amount"])) != amount
    }
    assert wrong == {}
    assert store.dead_letters() == []
    assert outcomes["dead_letter"] == 0


def test_forged_missing_and_stale_signatures_get_401_and_leave_no_row(
    receiver: str, store: StateStore
) -> None:
    body = b'{"id": 123456789}'
    for n, signature in enumerate(["", "Zm9yZ2Vk", sign(body, b"rotated-away-secret")]):
        assert post(receiver, body, signature, f"forged-{n}").status_code == 401
    assert store.inbox_rows() == []


def test_a_secret_rotation_accepts_both_secrets(
    product: Settings, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", f"brand-new-secret,{WEBHOOK_SECRET}")
    config = receiver_config(Settings())
    with BackgroundServer(create_app(config, store)) as server:
        url = f"{server.url}/webhooks/shopify"
        body = b'{"id": 42}'
        assert post(url, body, sign(body, b"brand-new-secret"), "new").status_code == 200
        assert post(url, body, sign(body, WEBHOOK_SECRET.encode()), "old").status_code == 200
    assert len(store.inbox_rows()) == 2


def test_a_salesforce_outage_keeps_the_receiver_answering_and_loses_nothing(
    receiver: str, shopify, salesforce, store: StateStore
) -> None:
    shop = shopify.shop
    salesforce.fault(kind="503")
    assert shop.send_order_events("orders/create", 0, 40) == 40
    assert shop.webhooks.flush(timeout=60)
    statuses = Counter(d["status_code"] for d in shop.webhooks.deliveries())
    assert set(statuses) == {200}, statuses
    state, result = run_flow(sync_pending_orders, max_seconds=20, batch_size=50, lease_seconds=30)
    assert result["stopped_because"].startswith("SERVER_UNAVAILABLE")
    assert state.is_failed(), "a held drain must not end green"
    assert "held: SERVER_UNAVAILABLE" in state.message
    assert store.counts().inbox.get("pending") == 40
    assert store.dead_letters() == []
    salesforce.clear_faults()
    time.sleep(0.3)
    drain(store)
    assert len(opportunities(salesforce)) == 40
    assert store.dead_letters() == []


def test_cancelled_and_refunded_orders_update_the_existing_opportunity(
    receiver: str, shopify, salesforce, store: StateStore
) -> None:
    shop = shopify.shop
    ids = [shop.generator.order_id(i) for i in range(3)]
    live = [i for i in ids if shop.store.get(i)["cancelled"] is None]
    shop.send_order_events("orders/create", 0, 3)
    assert shop.webhooks.flush(timeout=60)
    drain(store)
    cancel, refund = live[0], live[1]
    shop.cancel_order(cancel)
    shop.refund_order(refund, amount="5.00")
    assert shop.webhooks.flush(timeout=60)
    drain(store)
    synced = opportunities(salesforce)
    assert all(len(records) == 1 for records in synced.values())
    assert synced[str(cancel)][0]["StageName"] == "Closed Lost"
    truth = shop_truth(shopify, [refund])
    assert Decimal(str(synced[str(refund)][0]["Amount"])) == truth[str(refund)]


DRAINER = textwrap.dedent(
    """
    from flows.outcome import run_flow
    from flows.sync_pending import sync_pending_orders
    run_flow(sync_pending_orders, max_seconds=120, batch_size=10, lease_seconds=3)
    """
)


def test_a_drain_killed_mid_batch_completes_after_a_restart_with_nothing_twice(
    receiver: str, shopify, salesforce, store: StateStore
) -> None:
    shop = shopify.shop
    shop.send_order_events("orders/create", 0, 60)
    assert shop.webhooks.flush(timeout=60)
    salesforce.fault(kind="latency", latency=0.1, path="/composite")
    # The drainer reports to this test's Prefect server: no temporary server of its own to start
    # (slow on a busy machine) or to orphan when it is killed.
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    proc = subprocess.Popen([sys.executable, "-c", DRAINER], env=env)
    deadline = time.monotonic() + 180
    # Kill it mid-batch: some orders synced and a claimed batch in flight (the batch path holds
    # its claims through four calls of 0.1 s or more; between batches it holds none).
    while time.monotonic() < deadline and not (
        len(salesforce.records("Opportunity")) >= 10 and store.counts().inbox.get("claimed", 0)
    ):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    synced_before = len(salesforce.records("Opportunity"))
    assert 0 < synced_before < 60
    assert store.counts().inbox.get("claimed", 0) > 0  # it died holding leases
    salesforce.clear_faults()
    time.sleep(3.2)  # the dead worker's leases expire
    drain(store)
    synced = opportunities(salesforce)
    assert len(synced) == 60
    assert all(len(records) == 1 for records in synced.values())
    assert store.counts().inbox == {"done": 60}


def test_the_api_budget_reserve_pauses_the_drain_and_keeps_everything_pending(
    receiver: str, shopify, salesforce, store: StateStore
) -> None:
    shop = shopify.shop
    shop.send_order_events("orders/create", 0, 10)
    assert shop.webhooks.flush(timeout=60)
    salesforce.control.post("/__sandbox/org", json={"api_limit": 100, "api_usage": 95})
    state, result = run_flow(sync_pending_orders, max_seconds=20, batch_size=50, lease_seconds=30)
    assert result["stopped_because"].startswith("API_BUDGET_RESERVED")
    assert state.is_failed(), "a held drain must not end green"
    assert "held: API_BUDGET_RESERVED" in state.message
    assert salesforce.records("Opportunity") == []
    assert store.counts().inbox == {"pending": 10}
    assert store.dead_letters() == []
    salesforce.control.post("/__sandbox/org", json={"api_limit": 100_000, "api_usage": 0})
    store.retry_later(
        [row.webhook_id for row in store.inbox_rows()],
        at=store.inbox_rows()[0].received_at,
        error="operator: budget raised",
    )
    drain(store)
    assert len(opportunities(salesforce)) == 10
