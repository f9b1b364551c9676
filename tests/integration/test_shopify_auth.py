"""Shopify auth modes and protected customer data, against the Shopify sandbox (issue 13.3).

Client credentials: the product obtains an expiring token, keeps it, and renews it once when the
sandbox answers 401 after expiry; the sandbox counts the grants; no token or secret is logged.
A static token keeps working. A shop without protected customer data approval (names,
e-mails, phones and addresses null) still syncs, through the webhook path and through reconcile,
without a Contact that names nobody and without "None" names; doctor says so, with the fix.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from typer.testing import CliRunner

from deployments.cli import app
from sandbox.server import BackgroundServer
from state import StateStore
from tasks.core.errors import AuthError
from tasks.core.orders import Order, parse_graphql_order
from tasks.core.topics import HANDLED_TOPICS
from tasks.runtime import Runtime, build_runtime
from tasks.settings import Settings, get_settings
from tasks.sync import sync_order_state
from tests.integration.conftest import SHOP_TIMEZONE, SalesforceHandle, ShopifyHandle

CLIENT_SECRET = "shpss_integration_client_secret"
TTL = 3600


def control(shopify: ShopifyHandle, path: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{shopify.url}/__sandbox/{path}", json=body)
    response.raise_for_status()
    return response.json()


def shop_stats(shopify: ShopifyHandle) -> dict[str, Any]:
    return httpx.get(f"{shopify.url}/__sandbox/stats").json()


@pytest.fixture
def client_credentials(
    product: Settings, shopify: ShopifyHandle, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The product as a Dev Dashboard app: key and secret, no static token. A new client id per
    test, so no token cached by an earlier test is reused."""
    client_id = f"integration-{uuid.uuid4().hex[:8]}"
    control(
        shopify, "auth", client_id=client_id, client_secret=CLIENT_SECRET, token_ttl_seconds=TTL
    )
    monkeypatch.delenv("SHOPIFY_ADMIN_API_ACCESS_TOKEN")
    monkeypatch.setenv("SHOPIFY_API_KEY", client_id)
    monkeypatch.setenv("SHOPIFY_API_SECRET_KEY", CLIENT_SECRET)
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.shopify_auth_mode == "client_credentials"
    return settings


@pytest.fixture
def runtime(product: Settings) -> Iterator[Runtime]:
    rt = build_runtime(get_settings())
    yield rt
    rt.close()


def recent_orders(runtime: Runtime, count: int) -> list[Order]:
    start = datetime.now(UTC) - timedelta(days=400)
    end = datetime.now(UTC) + timedelta(days=1)
    pages = runtime.shopify.order_pages(start, end)
    return [parse_graphql_order(node) for page in pages for node in page][:count]


def sync_by_id(runtime: Runtime, order_id: str) -> str:
    node = runtime.shopify.order(order_id)
    assert node is not None
    return sync_order_state(parse_graphql_order(node), runtime.sync_context()).action


def opportunity_ids(salesforce: SalesforceHandle) -> set[str]:
    return {r["External_Shopify_Order_ID__c"] for r in salesforce.records("Opportunity")}


def doctor() -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor"])
    return result.exit_code, result.output


def subscribe_all(shopify: ShopifyHandle, url: str) -> None:
    for topic in sorted(HANDLED_TOPICS):
        shopify.shop.webhooks.subscribe(topic, url)


# -- client credentials -----------------------------------------------------------------------


def test_client_credentials_sync_across_a_token_expiry_renews_once_and_logs_no_secret(
    client_credentials: Settings,
    runtime: Runtime,
    shopify: ShopifyHandle,
    salesforce: SalesforceHandle,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    orders = recent_orders(runtime, 6)
    for order in orders[:3]:
        assert sync_by_id(runtime, order.id) == "created"
    assert shop_stats(shopify)["tokens_issued"] == 1  # the listing and three syncs: one token
    control(shopify, "clock", advance_seconds=TTL + 1)  # the token expires at Shopify's end
    for order in orders[3:]:
        assert sync_by_id(runtime, order.id) == "created"
    stats = shop_stats(shopify)
    assert stats["tokens_issued"] == 2
    assert stats["expired_token"] == 1
    assert runtime.shopify.tokens.renewals == 1
    assert {o.id for o in orders} <= opportunity_ids(salesforce)
    secrets = [*shopify.shop.issued_tokens, CLIENT_SECRET]
    captured = capfd.readouterr()
    for text in (caplog.text, captured.out, captured.err):
        for secret in secrets:
            assert secret not in text


def test_a_wrong_client_secret_stops_with_an_auth_error_that_names_the_settings(
    client_credentials: Settings, shopify: ShopifyHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPIFY_API_SECRET_KEY", "shpss_wrong")
    get_settings.cache_clear()
    rt = build_runtime(get_settings())
    try:
        with pytest.raises(AuthError) as caught:
            rt.shopify.shop_info()
    finally:
        rt.close()
    assert caught.value.code == "invalid_client"
    assert "SHOPIFY_API_SECRET_KEY" in str(caught.value)
    assert "shpss_wrong" not in str(caught.value)
    assert shop_stats(shopify)["token_refused"] == 1


def test_a_static_token_still_works_and_makes_no_grant(
    runtime: Runtime, shopify: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    assert runtime.shopify.tokens.mode == "static_token"
    [order] = recent_orders(runtime, 1)
    assert sync_by_id(runtime, order.id) == "created"
    assert shop_stats(shopify)["tokens_issued"] == 0


def test_doctor_reports_client_credentials_and_that_the_token_works(
    client_credentials: Settings, shopify: ShopifyHandle
) -> None:
    subscribe_all(shopify, "https://shopsync.example.com/webhooks/shopify")
    code, output = doctor()
    assert code == 0, output
    assert (
        "[ok  ] Shopify auth: client credentials (Dev Dashboard app, SHOPIFY_API_KEY / "
        "SHOPIFY_API_SECRET_KEY): token obtained (lifetime 1.0 h)" in output
    )
    assert "[ok  ] Shopify protected customer data: names and e-mails are visible" in output


def test_doctor_reports_a_refused_client_secret_with_the_fix(
    client_credentials: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPIFY_API_SECRET_KEY", "shpss_wrong")
    get_settings.cache_clear()
    code, output = doctor()
    assert code == 1
    assert "[FAIL] Shopify auth: client credentials" in output
    assert "invalid_client" in output
    assert "fix: Check SHOPIFY_API_KEY (client id) and SHOPIFY_API_SECRET_KEY" in output
    assert "shpss_wrong" not in output


def test_doctor_reports_a_revoked_static_token_with_the_way_to_a_new_app(
    product: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPIFY_ADMIN_API_ACCESS_TOKEN", "shpat_revoked")
    get_settings.cache_clear()
    code, output = doctor()
    assert code == 1
    assert "[FAIL] Shopify auth: static token (legacy custom app" in output
    assert "HTTP_401" in output
    assert "create a Dev Dashboard app" in output


# -- protected customer data ------------------------------------------------------------------


def companies(record: dict[str, Any]) -> set[str]:
    """Company names on a sandbox order record (not personal data: never redacted)."""
    addresses = [record.get("billing"), (record.get("customer") or {}).get("default_address")]
    return {a["company"] for a in addresses if a and a.get("company")}


def assert_no_nameless_records(salesforce: SalesforceHandle) -> None:
    """No "None" in a name, and no Contact without a key, a name or an e-mail."""
    for sobject, fields in (
        ("Account", ("Name",)),
        ("Contact", ("FirstName", "LastName")),
        ("Opportunity", ("Name",)),
    ):
        for record in salesforce.records(sobject):
            for name in fields:
                assert "None" not in str(record.get(name) or ""), (sobject, record)
    for contact in salesforce.records("Contact"):
        assert contact.get("External_Shopify_ID__c") or contact.get("Email"), contact
        assert contact.get("LastName") not in (None, "", "Unknown"), contact


def test_doctor_detects_redacted_customer_data_and_explains_the_fix(
    product: Settings, shopify: ShopifyHandle
) -> None:
    subscribe_all(shopify, "https://shopsync.example.com/webhooks/shopify")
    control(shopify, "protected-data", redacted=True)
    code, output = doctor()
    assert code == 0, output  # a warning: orders still sync
    assert "[warn] Shopify protected customer data: redacted: recent order" in output
    assert "fix: The app lacks protected customer data access (Level 2" in output


@pytest.mark.usefixtures("prefect_harness")
def test_redacted_orders_sync_through_the_webhook_path(
    product: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    from flows.outcome import run_flow
    from flows.sync_pending import sync_pending_orders
    from webhooks.app import create_app
    from webhooks.serve import receiver_config

    control(shopify, "protected-data", redacted=True)
    store = StateStore.open(product.state_url)
    try:
        with BackgroundServer(create_app(receiver_config(product), store)) as server:
            subscribe_all(shopify, f"{server.url}/webhooks/shopify")
            shopify.shop.webhooks.configure(time_scale=0.0001, timeout=5.0)
            created = [shopify.shop.create_order() for _ in range(12)]
            assert shopify.shop.webhooks.flush(30)
        for _ in range(10):
            run_flow(sync_pending_orders, max_seconds=120, batch_size=100, lease_seconds=30)
            depth = store.counts().inbox
            if not depth.get("pending") and not depth.get("claimed"):
                break
        assert store.dead_letters() == []
    finally:
        store.close()
    assert {str(r["id"]) for r in created} <= opportunity_ids(salesforce)
    customers = [r for r in created if r["customer"] is not None]
    assert customers, "the generated orders include a customer's order"
    accounts = {a["External_Shopify_Account_ID__c"]: a for a in salesforce.records("Account")}
    for record in customers:
        cid = record["customer"]["id"]
        account = accounts[f"shop_cust_{cid}"]
        assert account["Name"] in {f"Shopify customer {cid}", *companies(record)}
    assert salesforce.records("Contact") == []
    assert_no_nameless_records(salesforce)


@pytest.mark.usefixtures("prefect_harness")
def test_redacted_orders_sync_through_reconcile(
    product: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    from flows.reconcile import reconcile

    control(shopify, "protected-data", redacted=True)
    today = datetime.now(ZoneInfo(SHOP_TIMEZONE)).date()
    result = reconcile(today - timedelta(days=5), today)
    assert result["dead_lettered"] == 0, result
    assert result["repaired"] == result["counts"]["missing"] > 0
    assert salesforce.records("Contact") == []
    assert_no_nameless_records(salesforce)
    again = reconcile(today - timedelta(days=5), today)
    assert again["discrepancies"] == 0


def test_webhooks_register_uses_client_credentials(
    client_credentials: Settings, shopify: ShopifyHandle
) -> None:
    url = "https://shopsync.example.com/webhooks/shopify"
    result = CliRunner().invoke(app, ["webhooks", "register", "--url", url])
    assert result.exit_code == 0, result.output
    assert f"subscribed orders/create → {url}" in result.output
    assert shop_stats(shopify)["tokens_issued"] == 1


@pytest.mark.usefixtures("prefect_harness")
def test_client_credentials_reconcile_across_a_token_expiry(
    client_credentials: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    from flows.reconcile import reconcile

    today = datetime.now(ZoneInfo(SHOP_TIMEZONE)).date()
    first = reconcile(today - timedelta(days=3), today)
    assert first["repaired"] == first["counts"]["missing"] > 0
    control(shopify, "clock", advance_seconds=TTL + 1)
    second = reconcile(today - timedelta(days=6), today)
    assert second["repaired"] == second["counts"]["missing"] > 0
    assert second["dead_lettered"] == 0
    stats = shop_stats(shopify)
    assert stats["tokens_issued"] == 2  # one per process and lifetime, renewed after expiry
    assert stats["expired_token"] == 1


def test_a_401_on_a_live_token_is_answered_by_one_renewal(
    client_credentials: Settings, runtime: Runtime, shopify: ShopifyHandle
) -> None:
    [order] = recent_orders(runtime, 1)
    control(shopify, "faults", kind="status", status=401, count=1, api="graphql")
    assert sync_by_id(runtime, order.id) == "created"
    assert shop_stats(shopify)["tokens_issued"] == 2
    assert runtime.shopify.tokens.renewals == 1


@pytest.mark.usefixtures("prefect_harness")
def test_a_refused_shopify_token_fails_the_run_and_dead_letters_nothing(
    product: Settings, shopify: ShopifyHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.sync_order import sync_order

    order_id = str(shopify.sandbox.describe(shopify.shop)["first_order_id"])
    monkeypatch.setenv("SHOPIFY_ADMIN_API_ACCESS_TOKEN", "shpat_revoked")
    get_settings.cache_clear()
    with pytest.raises(AuthError):
        sync_order(order_id)
    store = StateStore.open(product.state_url)
    try:
        assert store.dead_letters() == []
    finally:
        store.close()
