"""The end-to-end tests use the integration fixtures (sandboxes, settings, Prefect harness), plus
the receiver on uvicorn, its state store, and the drain flow."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from flows.outcome import run_flow
from flows.sync_pending import sync_pending_orders
from sandbox.server import BackgroundServer
from state import StateStore
from tasks.core.topics import HANDLED_TOPICS
from tasks.settings import Settings
from tests.integration.conftest import *  # noqa: F403
from tests.integration.conftest import SHOP
from webhooks.app import create_app
from webhooks.serve import receiver_config


@pytest.fixture
def receiver(product: Settings, store: StateStore, shopify) -> Iterator[str]:
    """The receiver on uvicorn, subscribed to every handled topic of the sandbox shop."""
    app = create_app(receiver_config(product), store)
    with BackgroundServer(app) as server:
        url = f"{server.url}/webhooks/shopify"
        for topic in sorted(HANDLED_TOPICS):
            shopify.shop.webhooks.subscribe(topic, url)
        shopify.shop.webhooks.configure(time_scale=0.0001, timeout=5.0)
        yield url


def drain(store: StateStore, rounds: int = 20) -> Counter[str]:
    """Run the drain flow until nothing is pending or claimed."""
    totals: Counter[str] = Counter()
    for _ in range(rounds):
        _, result = run_flow(sync_pending_orders, max_seconds=120, batch_size=100, lease_seconds=30)
        totals.update(result["outcomes"])
        depth = store.counts().inbox
        if not depth.get("pending") and not depth.get("claimed"):
            return totals
        time.sleep(0.3)  # let backoffs come due
    raise AssertionError(f"inbox not drained: {store.counts()}")


def post(url: str, body: bytes, signature: str, webhook_id: str) -> httpx.Response:
    """Deliver ``body`` to the receiver as Shopify sends an ``orders/create`` webhook."""
    headers = {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": webhook_id,
        "Content-Type": "application/json",
    }
    return httpx.post(url, content=body, headers=headers)
