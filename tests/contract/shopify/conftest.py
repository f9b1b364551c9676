"""Fixtures for the Shopify sandbox contract tests: one sandbox server per session (reset
between tests), a webhook receiver, and httpx helpers.  No product code is imported."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.server import BackgroundServer
from sandbox.shopify import ShopConfig, ShopifySandbox, StoreMix

NY = ZoneInfo("America/New_York")
START = datetime(2026, 1, 1, tzinfo=NY)
END = datetime(2026, 7, 1, tzinfo=NY)
TOKEN = "shpat_contract"
SECRET = "contract-webhook-secret"
SHOP = "contract-shop.myshopify.com"
OTHER = "other-shop.myshopify.com"
BIG = "big-shop.myshopify.com"
VERSION = "2026-10"
EDGE_MIX = StoreMix(repeat_customers=0.4, guest_checkouts=0.15, with_company=0.2, cancelled=0.1,
                    refunded=0.15, edited=0.3, test_orders=0.05, non_ascii_names=0.15,
                    long_names=0.05, presentment_currency_differs=0.15)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[ShopifySandbox]:
    """Three shops: a small edge-case shop (default), a Plus shop, and a 1,000,000-order shop."""
    sb = ShopifySandbox(shops=[
        ShopConfig(domain=SHOP, access_token=TOKEN, orders=600, seed=7, plan="basic",
                   webhook_secret=SECRET, start=START, end=END, mix=EDGE_MIX,
                   client_id="contract-client", client_secret="contract-secret"),
        ShopConfig(domain=OTHER, access_token="shpat_other", orders=50, seed=8, plan="plus",
                   timezone="Australia/Sydney", currency="AUD", start=START, end=END,
                   scopes=["read_orders", "read_customers"]),
        ShopConfig(domain=BIG, access_token=TOKEN, orders=1_000_000, seed=9, plan="plus",
                   start=START - timedelta(days=365), end=END),
    ])
    yield sb
    sb.close()


@pytest.fixture(scope="session")
def server(sandbox: ShopifySandbox) -> Iterator[BackgroundServer]:
    """The sandbox served on loopback."""
    with BackgroundServer(sandbox.app) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(sandbox: ShopifySandbox) -> Iterator[None]:
    sandbox.reset()
    for shop in sandbox.shops.values():
        shop.webhooks.configure(time_scale=0.0001, timeout=5.0)
    yield
    for shop in sandbox.shops.values():
        shop.webhooks.flush(5)


@pytest.fixture
def client(server: BackgroundServer) -> Iterator[httpx.Client]:
    """An httpx client on the sandbox base URL with the default shop's token."""
    with httpx.Client(base_url=server.url, headers={"X-Shopify-Access-Token": TOKEN},
                      timeout=30) as c:
        yield c


@pytest.fixture
def gql(client: httpx.Client, sandbox: ShopifySandbox) -> Callable[..., dict[str, Any]]:
    """POST a GraphQL query; returns the JSON body (asserts HTTP 200).  When THROTTLED (and
    ``wait`` is true) it "waits" by advancing the shop's monotonic ticker, then retries."""
    def run(query: str, variables: dict[str, Any] | None = None,
            host: str | None = None, token: str | None = None,
            wait: bool = True) -> dict[str, Any]:
        headers = {}
        if host:
            headers["Host"] = host
        if token:
            headers["X-Shopify-Access-Token"] = token
        for _ in range(5):
            resp = client.post(f"/admin/api/{VERSION}/graphql.json",
                               json={"query": query, "variables": variables or {}},
                               headers=headers)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            codes = [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
            if not wait or "THROTTLED" not in codes:
                return body
            status = body["extensions"]["cost"]["throttleStatus"]
            sandbox.shop(host or SHOP).ticker.advance(
                status["maximumAvailable"] / status["restoreRate"])
        return body
    return run


@dataclass
class Received:
    """A webhook request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A webhook endpoint: records requests; ``plan`` maps an attempt number to a behaviour."""

    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.statuses.clear()
            self.delays.clear()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.02)
        with self.lock:
            return list(self.requests)


@pytest.fixture(scope="session")
def _receiver_server() -> Iterator[tuple[Receiver, BackgroundServer]]:
    rec = Receiver()

    async def hook(request: Request) -> Response:
        body = await request.body()
        with rec.lock:
            rec.requests.append(Received(dict(request.headers), body, time.monotonic()))
            status = rec.statuses.pop(0) if rec.statuses else 200
            delay = rec.delays.pop(0) if rec.delays else 0.0
        if delay:
            import asyncio

            await asyncio.sleep(delay)
        return Response(status_code=status)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with BackgroundServer(app) as srv:
        rec.url = f"{srv.url}/hook"
        yield rec, srv


@pytest.fixture
def receiver(_receiver_server: tuple[Receiver, BackgroundServer]) -> Receiver:
    """The webhook receiver, emptied."""
    rec = _receiver_server[0]
    rec.reset()
    return rec


ORDER_FIELDS = """
  id legacyResourceId name email phone createdAt updatedAt processedAt cancelledAt cancelReason
  closed displayFinancialStatus displayFulfillmentStatus test currencyCode presentmentCurrencyCode
  totalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
  currentTotalPriceSet { shopMoney { amount currencyCode }
                         presentmentMoney { amount currencyCode } }
  subtotalPriceSet { shopMoney { amount currencyCode } }
  totalRefundedSet { shopMoney { amount currencyCode } }
  customer { id legacyResourceId firstName lastName email defaultEmailAddress { emailAddress }
             phone defaultPhoneNumber { phoneNumber } displayName
             defaultAddress { firstName lastName company address1 address2 city province
                              provinceCode zip country countryCodeV2 phone name } }
  billingAddress { firstName lastName company address1 city zip countryCodeV2 name }
  shippingAddress { firstName lastName address1 city }
  lineItems(first: 10) { edges { node { id title name quantity sku
      originalUnitPriceSet { shopMoney { amount currencyCode } } } }
    pageInfo { hasNextPage } }
  refunds { id createdAt note totalRefundedSet { shopMoney { amount } } }
"""
