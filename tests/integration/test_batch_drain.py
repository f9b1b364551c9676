"""The drain's batch path (issue 16) over loopback: a claimed batch written with sObject
Collections, with the per-order path's semantics.

Deliveries go into the inbox directly, with the bodies the Shopify sandbox renders for its
webhooks; ``SHOPSYNC_DRAIN_MODE`` picks the path.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from flows.outcome import run_flow
from flows.sync_pending import sync_pending_orders
from state import Delivery, StateStore
from tasks.settings import Settings, get_settings
from tests.integration.conftest import SHOP
from tests.reliability.support import duplicates

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def store(product: Settings) -> Iterator[StateStore]:
    s = StateStore.open(product.state_url)
    yield s
    s.close()


def use_mode(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv("SHOPSYNC_DRAIN_MODE", mode)
    get_settings.cache_clear()


def deliver(store: StateStore, webhook_id: str, topic: str, body: dict[str, Any]) -> None:
    store.add_delivery(
        Delivery(
            webhook_id=webhook_id,
            topic=topic,
            shop_domain=SHOP,
            body=json.dumps(body).encode(),
            order_id=str(body["id"]),
        )
    )


def payload(shop: Any, index: int) -> dict[str, Any]:
    return shop.rest(shop.store.get(shop.generator.order_id(index)))


def drain(batch_size: int | None = None) -> dict[str, Any]:
    _, result = run_flow(
        sync_pending_orders, max_seconds=120, batch_size=batch_size, lease_seconds=30
    )
    return result


def test_smoke_batch(store, shopify, salesforce, monkeypatch) -> None:
    use_mode(monkeypatch, "batch")
    shop = shopify.shop
    for i in range(30):
        deliver(store, f"w-{i}", "orders/create", payload(shop, i))
    salesforce.reset_stats()
    result = drain()
    print(result, salesforce.api_calls())
    assert sum(result["outcomes"].values()) == 30
    assert len(salesforce.records("Opportunity")) == 30
    assert duplicates(salesforce) == {}
