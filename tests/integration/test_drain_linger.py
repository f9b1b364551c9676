"""A drain that lingers after the inbox empties (issue 16), over loopback.

The drain runs in this process against both sandboxes; a helper thread plays the receiver: it
waits (conditions, not sleeps) until the drain has emptied the inbox and marked itself alive,
then stores a new order and asks the receiver's nudger whether a drain run is needed.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flows.outcome import run_flow
from flows.sync_pending import sync_pending_orders
from state import StateStore
from state.drain_marks import drain_live_until
from state.models import utcnow
from tests.integration.conftest import deliver, wait_for
from webhooks.serve import DrainNudger, NudgeMemory

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_a_lingering_drain_syncs_an_order_that_arrives_after_the_inbox_emptied(
    store: StateStore, shopify, salesforce
) -> None:
    shop = shopify.shop
    first, later = shop.create_order(), shop.create_order()
    deliver(store, "w-first", "orders/create", shop.rest(shop.store.get(first["id"])))
    seen: dict[str, Any] = {}

    def receiver() -> None:
        # The drain synced the first order and now waits for work with its mark up.
        seen["lingering"] = wait_for(
            lambda: (
                store.ledger(str(first["id"])) is not None
                and drain_live_until(store, utcnow()) is not None
            )
        )
        seen["calls_before"] = salesforce.api_calls()
        deliver(store, "w-later", "orders/create", shop.rest(shop.store.get(later["id"])))
        nudger = DrainNudger(store, lambda: seen.setdefault("asked", True), memory=NudgeMemory())
        nudger.check()  # a live (lingering) drain: no run is asked for
        seen["later_synced"] = wait_for(lambda: store.ledger(str(later["id"])) is not None)
        seen["calls_after"] = salesforce.api_calls()

    helper = threading.Thread(target=receiver, daemon=True)
    helper.start()
    state, result = run_flow(
        sync_pending_orders, max_seconds=120, batch_size=10, lease_seconds=30, linger_seconds=8
    )
    helper.join(timeout=30)

    assert state.is_completed(), state.message
    assert seen["lingering"]
    assert seen["later_synced"]
    assert "asked" not in seen  # the nudger counted the lingering drain as live
    assert result["outcomes"] == {"created": 2}  # both orders, in this one run
    assert result["lingered_s"] > 0
    # A lone order of a new customer: the e-mail lookup and its composite call.
    assert seen["calls_after"] - seen["calls_before"] <= 2
    assert drain_live_until(store, utcnow()) is None  # the mark went with the drain
    assert not store.inbox_rows(status="pending")
    assert not store.inbox_rows(status="claimed")
