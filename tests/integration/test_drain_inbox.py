"""The drain flow over loopback (issue 13 §4): holds versus failed attempts, refunds that need no
fetch, and truncated or dropped fields recorded per order.

Deliveries are put in the inbox directly, with the bodies the Shopify sandbox renders for its
webhooks, so each test decides exactly which deliveries one claim holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from flows.sync_pending import sync_pending_orders
from state import Delivery, StateStore
from state.models import utcnow
from tasks.settings import Settings
from tests.integration.conftest import SHOP

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def store(product: Settings) -> Iterator[StateStore]:
    s = StateStore.open(product.state_url)
    yield s
    s.close()


def deliver(store: StateStore, webhook_id: str, topic: str, body: dict[str, Any]) -> None:
    order_id = body.get("order_id") or body["id"]
    store.add_delivery(
        Delivery(
            webhook_id=webhook_id,
            topic=topic,
            shop_domain=SHOP,
            body=json.dumps(body).encode(),
            order_id=str(order_id),
        )
    )


def order_payload(shopify, index: int) -> dict[str, Any]:
    shop = shopify.shop
    return shop.rest(shop.store.get(shop.generator.order_id(index)))


def drain_once() -> dict[str, Any]:
    return sync_pending_orders(max_seconds=60, batch_size=10, lease_seconds=30)


def due_now(store: StateStore) -> None:
    """Make every pending delivery due now (as if its wait were over); attempts are untouched."""
    ids = [row.webhook_id for row in store.inbox_rows(status="pending")]
    store.retry_later(ids, at=utcnow() - timedelta(seconds=1), error="test: the wait is over")


def opportunities(salesforce) -> list[dict[str, Any]]:
    return salesforce.records("Opportunity")


# -- item 9: holds do not use up attempts ---------------------------------------------------------


def hold_on_budget(salesforce) -> None:
    salesforce.control.post("/__sandbox/org", json={"api_limit": 100, "api_usage": 95})


def hold_on_rate_limit(salesforce) -> None:
    salesforce.fault(kind="429", path="/composite")


def hold_on_auth(salesforce) -> None:
    salesforce.fault(kind="401", path="/composite")


def clear(salesforce) -> None:
    salesforce.clear_faults()
    salesforce.control.post("/__sandbox/org", json={"api_limit": 100_000, "api_usage": 0})


def test_eight_holds_then_a_transient_error_is_retried_not_dead_lettered(
    store: StateStore, shopify, salesforce
) -> None:
    deliver(store, "w-1", "orders/create", order_payload(shopify, 0))
    holds = [hold_on_budget] * 3 + [hold_on_rate_limit] * 3 + [hold_on_auth] * 2
    for hold in holds:
        hold(salesforce)
        result = drain_once()
        assert set(result["outcomes"]) <= {"held", "rate_limited"}, result
        clear(salesforce)
        row = store.inbox_row("w-1")
        assert (row.status, row.attempts) == ("pending", 0), hold.__name__
        due_now(store)
    salesforce.fault(kind="503", path="/composite")  # outlasts Prefect's task retries
    assert drain_once()["outcomes"] == {"retry_later": 1}
    assert store.dead_letters() == []
    row = store.inbox_row("w-1")
    assert (row.status, row.attempts, row.last_error.split(":")[0]) == (
        "pending",
        1,
        "SERVER_UNAVAILABLE",
    )
    clear(salesforce)
    due_now(store)
    assert drain_once()["outcomes"] == {"created": 1}
    assert len(opportunities(salesforce)) == 1
    assert store.counts().inbox == {"done": 1}


# -- item 11: a refund fetches the order only when no payload in the claim shows it -------------


def shopify_calls(shopify) -> int:
    return int(sum(shopify.shop.stats.snapshot()["calls"].values()))


def refund(shopify, index: int, amount: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Refund an order in the sandbox: its refunds/create body and its orders/updated body."""
    shop = shopify.shop
    rec, refund_body = shop.refund_order(shop.generator.order_id(index), amount=amount)
    return refund_body, shop.rest(rec)


def live_order_indexes(shopify, count: int) -> list[int]:
    shop = shopify.shop
    live = [i for i in range(50) if shop.store.get(shop.generator.order_id(i))["cancelled"] is None]
    return live[:count]


def test_a_refund_with_its_newer_order_update_in_the_claim_fetches_nothing(
    store: StateStore, shopify, salesforce
) -> None:
    first, second = live_order_indexes(shopify, 2)
    refund_body, updated_body = refund(shopify, first, "5.00")
    deliver(store, "r-1", "refunds/create", refund_body)
    deliver(store, "u-1", "orders/updated", updated_body)
    before = shopify_calls(shopify)
    assert drain_once()["outcomes"] == {"created": 1}
    assert shopify_calls(shopify) - before == 0
    [synced] = opportunities(salesforce)
    assert str(synced["Amount"]) == updated_body["current_total_price"]

    alone, _ = refund(shopify, second, "5.00")
    deliver(store, "r-2", "refunds/create", alone)
    before = shopify_calls(shopify)
    assert drain_once()["outcomes"] == {"created": 1}
    assert shopify_calls(shopify) - before == 1  # the one order fetch a bare refund needs
