"""Integration fixtures: both sandboxes on loopback, the product configured to use them, and a
session-wide Prefect test harness (started only by tests that ask for it)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sandbox.salesforce import SalesforceSandbox
from sandbox.server import BackgroundServer
from sandbox.shopify import ShopConfig, ShopifySandbox, StoreMix
from state import Delivery, StateStore
from tasks.settings import Settings, get_settings

if TYPE_CHECKING:
    from click.testing import Result

    from tasks.runtime import Runtime
    from tasks.sync import SyncContext

SHOP = "sandbox-shop.myshopify.com"
SHOP_TOKEN = "shpat_integration"
WEBHOOK_SECRET = "integration-webhook-secret"
SHOP_TIMEZONE = "America/New_York"
EDGE_MIX = StoreMix(
    repeat_customers=0.3,
    guest_checkouts=0.15,
    with_company=0.2,
    cancelled=0.1,
    refunded=0.15,
    edited=0.2,
    test_orders=0.05,
    non_ascii_names=0.15,
    long_names=0.08,
    presentment_currency_differs=0.15,
)

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def deliver(store: StateStore, webhook_id: str, topic: str, body: dict[str, Any]) -> None:
    """Store a webhook delivery in the inbox as the receiver does (its order: the body's
    ``order_id`` for a refund, else its ``id``)."""
    order_id = body.get("order_id") or body["id"]
    delivery = Delivery(webhook_id, topic, SHOP, json.dumps(body).encode(), order_id=str(order_id))
    store.add_delivery(delivery)


def wait_for(condition: Callable[[], bool], timeout: float = 120) -> bool:
    """Poll ``condition`` every 50 ms until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@dataclass
class SalesforceHandle:
    """The Salesforce sandbox, its URL and a control client."""

    sandbox: SalesforceSandbox
    url: str
    control: httpx.Client

    def stats(self) -> dict[str, Any]:
        return self.control.get("/__sandbox/stats").json()

    def api_calls(self) -> int:
        return int(self.stats()["api_calls"]["total"])

    def reset_stats(self) -> None:
        self.control.post("/__sandbox/stats/reset").raise_for_status()

    def fault(self, **spec: Any) -> dict[str, Any]:
        response = self.control.post("/__sandbox/faults", json=spec)
        response.raise_for_status()
        return response.json()

    def clear_faults(self) -> None:
        self.control.delete("/__sandbox/faults").raise_for_status()

    def rule(self, **spec: Any) -> dict[str, Any]:
        response = self.control.post("/__sandbox/validation-rules", json=spec)
        response.raise_for_status()
        return response.json()

    def clear_rules(self) -> None:
        self.control.delete("/__sandbox/validation-rules").raise_for_status()

    def records(self, sobject: str) -> list[dict[str, Any]]:
        return list(self.sandbox.store.records[sobject].values())


@dataclass
class ShopifyHandle:
    """The Shopify sandbox and its URL."""

    sandbox: ShopifySandbox
    url: str

    @property
    def shop(self) -> Any:
        return self.sandbox.shop(SHOP)


@pytest.fixture(scope="session")
def salesforce_server() -> Iterator[SalesforceHandle]:
    sandbox = SalesforceSandbox()
    with BackgroundServer(sandbox.app) as server, httpx.Client(base_url=server.url) as control:
        yield SalesforceHandle(sandbox, server.url, control)


@pytest.fixture(scope="session")
def shopify_server() -> Iterator[ShopifyHandle]:
    end = datetime.now(UTC) - timedelta(days=1)
    config = ShopConfig(
        domain=SHOP,
        access_token=SHOP_TOKEN,
        orders=500,
        seed=11,
        plan="plus",
        webhook_secret=WEBHOOK_SECRET,
        timezone=SHOP_TIMEZONE,
        start=end - timedelta(days=30),
        end=end,
        mix=EDGE_MIX,
    )
    sandbox = ShopifySandbox(shops=[config])
    with BackgroundServer(sandbox.app) as server:
        yield ShopifyHandle(sandbox, server.url)
    sandbox.close()


@pytest.fixture
def salesforce(salesforce_server: SalesforceHandle) -> SalesforceHandle:
    """A fresh org for every test."""
    salesforce_server.sandbox.reset()
    return salesforce_server


@pytest.fixture
def shopify(shopify_server: ShopifyHandle) -> ShopifyHandle:
    """A fresh shop for every test."""
    shopify_server.sandbox.reset()
    return shopify_server


@pytest.fixture
def product(
    salesforce: SalesforceHandle,
    shopify: ShopifyHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Settings]:
    """The product's settings, pointing at both sandboxes, with fast retries."""
    env = {
        "SALESFORCE_LOGIN_URL": salesforce.url,
        "SALESFORCE_CLIENT_ID": "integration-client",
        "SALESFORCE_CLIENT_SECRET": "integration-secret",
        "SHOPIFY_ADMIN_URL": shopify.url,
        "SHOPIFY_STORE_DOMAIN": SHOP,
        "SHOPIFY_ADMIN_API_ACCESS_TOKEN": SHOP_TOKEN,
        "SHOPIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SHOPSYNC_DATA_DIR": str(tmp_path / "data"),
        "SHOPSYNC_SHOP_TIMEZONE": SHOP_TIMEZONE,
        "SHOPSYNC_RETRY_DELAYS_SECONDS": "0.05,0.1,0.2",
        "SHOPSYNC_INBOX_BACKOFF_SECONDS": "0.2,0.4,0.8",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect server for the whole session (never nested: prefect.md §6)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# -- the product's objects, for tests that call it directly ---------------------------------------


@pytest.fixture
def runtime(product: Settings) -> Iterator[Runtime]:
    """The product's runtime (adapters, state store) on the sandboxes; closed afterwards."""
    from tasks.runtime import build_runtime

    rt = build_runtime(product)
    yield rt
    rt.close()


@pytest.fixture
def ctx(runtime: Runtime) -> SyncContext:
    """The sync context of :func:`runtime`."""
    return runtime.sync_context()


@pytest.fixture
def cli(product: Settings, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``shopsync`` commands against the session's Prefect harness (no server started)."""
    from prefect.settings import PREFECT_API_URL
    from typer.testing import CliRunner

    from deployments.cli import app

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args))

    return run


def order_ids(shopify: ShopifyHandle, n: int) -> list[str]:
    """The ids of the generated shop's first ``n`` orders."""
    return [str(shopify.shop.generator.order_id(i)) for i in range(n)]


def soql(runtime: Runtime, text: str) -> list[dict[str, Any]]:
    """Every record of a SOQL query, read through the runtime's own Salesforce connection: a
    test's look at the org (the product asks through the port's intent methods, never SOQL)."""
    return runtime.salesforce._query(text)
