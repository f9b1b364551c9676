"""Generated orders: REST key set vs the fixture payloads, edge-case mix, determinism, ids."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from sandbox.shopify import ShopConfig, ShopifySandbox, StoreMix
from tests.conftest import shopify_fixture

from .conftest import END, START, VERSION

ADDRESS = {"first_name", "last_name", "company", "address1", "address2", "city", "province",
           "province_code", "zip", "country", "country_code", "phone", "name"}
MAPPED = {"id", "admin_graphql_api_id", "name", "order_number", "email", "phone",
          "contact_email", "created_at", "updated_at", "processed_at", "cancelled_at",
          "cancel_reason", "financial_status", "test", "currency", "presentment_currency",
          "total_price", "current_total_price", "total_price_set", "current_total_price_set",
          "subtotal_price", "total_tax", "customer", "billing_address", "shipping_address",
          "line_items", "refunds"}
LINE = {"id", "title", "name", "quantity", "price", "sku", "product_id", "variant_id"}


def fixture_orders() -> list[dict[str, Any]]:
    return [shopify_fixture("order.json")["order"], *shopify_fixture("orders.json")["orders"]]


def fixture_refund() -> dict[str, Any]:
    return shopify_fixture("refund.json")["refund"]


def all_rest(client: httpx.Client, sandbox: ShopifySandbox) -> list[dict[str, Any]]:
    shop = sandbox.shop()
    return [shop.rest(shop.store.get(shop.generator.order_id(i)))
            for i in range(shop.generator.n)]


def test_generated_rest_payload_carries_fixture_keys(client: httpx.Client,
                                                     sandbox: ShopifySandbox) -> None:
    """tests/fixtures/shopify and research/shopify.md §4: every key the fixture payloads carry
    for the mapped fields (top level, customer, default_address, addresses, line items,
    refunds)."""
    fixtures = fixture_orders()
    fx_top = set().union(*(set(o) for o in fixtures))
    fx_customer = set().union(*(set(o["customer"]) for o in fixtures if o.get("customer")))
    fx_default = set().union(*(set(o["customer"]["default_address"]) for o in fixtures
                               if o.get("customer")))
    fx_billing = set().union(*(set(o["billing_address"]) for o in fixtures))
    fx_line = set().union(*(set(li) for o in fixtures for li in o["line_items"]))
    fx_refund = set().union(*(set(r) for o in fixtures for r in o.get("refunds", [])))
    fx_refund |= set(fixture_refund())
    orders = client.get(f"/admin/api/{VERSION}/orders.json",
                        params={"status": "any", "limit": 250}).json()["orders"]
    for o in orders:
        assert set(o) >= MAPPED
        assert set(fx_top) <= set(o), sorted(fx_top - set(o))
        for key in ("billing_address", "shipping_address"):
            assert fx_billing <= set(o[key]), sorted(fx_billing - set(o[key]))
            assert set(o[key]) >= ADDRESS
        for li in o["line_items"]:
            assert fx_line <= set(li), sorted(fx_line - set(li))
            assert set(li) >= LINE
        for money_key in ("total_price_set", "current_total_price_set"):
            assert set(o[money_key]) == {"shop_money", "presentment_money"}
            assert set(o[money_key]["shop_money"]) == {"amount", "currency_code"}
        if o["customer"] is not None:
            assert fx_customer <= set(o["customer"]), sorted(fx_customer - set(o["customer"]))
            default = o["customer"]["default_address"]
            if default is not None:  # research §4: default_address may be missing
                assert fx_default <= set(default), sorted(fx_default - set(default))
                assert set(default) >= ADDRESS
        for r in o["refunds"]:
            assert fx_refund <= set(r), sorted(fx_refund - set(r))


def test_types_match_fixtures(client: httpx.Client) -> None:
    """research/shopify.md §4 Money as strings, big integer ids, order name not a number."""
    o = client.get(f"/admin/api/{VERSION}/orders.json", params={"limit": 1}).json()["orders"][0]
    assert isinstance(o["id"], int)
    assert o["id"] > 2**53
    assert len(str(o["id"])) in range(13, 19)
    assert isinstance(o["total_price"], str)
    assert isinstance(o["order_number"], int)
    assert isinstance(o["name"], str)
    assert isinstance(o["line_items"][0]["price"], str)


def test_edge_case_mix_is_present(client: httpx.Client, sandbox: ShopifySandbox) -> None:
    """research/shopify.md §4 Edge cases: guests, companies, cancelled, refunded (partially and
    fully, current_total_price lower), edited, test, non-ASCII, long names, presentment currency,
    repeat customers, default_address missing or without names, shop UTC offsets."""
    orders = all_rest(client, sandbox)
    guests = [o for o in orders if o["customer"] is None]
    assert guests
    assert all(o["email"] and o["billing_address"] for o in guests)
    assert any(o["billing_address"]["company"] for o in orders)
    assert any(o["cancelled_at"] and o["cancel_reason"] for o in orders)
    partial = [o for o in orders if o["financial_status"] == "partially_refunded"]
    full = [o for o in orders if o["financial_status"] == "refunded"]
    assert partial
    assert full
    assert all(float(o["current_total_price"]) < float(o["total_price"]) for o in partial)
    assert all(float(o["current_total_price"]) == 0 for o in full)
    assert all(o["refunds"] for o in partial + full)
    assert any(o["updated_at"] != o["created_at"] for o in orders)
    assert any(o["test"] for o in orders)
    names = [o["billing_address"]["first_name"] + o["billing_address"]["last_name"]
             for o in orders]
    assert any(not n.isascii() for n in names)
    assert any(any("\u0400" <= ch <= "\u04ff" for ch in n) for n in names)
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names)
    assert any(len(o["billing_address"]["first_name"]) >= 300 for o in orders)
    assert any(len(o["billing_address"]["address1"]) >= 300 for o in orders)
    assert any(o["presentment_currency"] != o["currency"] for o in orders)
    for o in orders:
        if o["presentment_currency"] != o["currency"]:
            pm = o["total_price_set"]["presentment_money"]
            assert pm["currency_code"] == o["presentment_currency"]
            assert o["total_price_set"]["shop_money"]["amount"] == o["total_price"]
    customers: dict[int, set[str]] = {}
    for o in orders:
        if o["customer"]:
            customers.setdefault(o["customer"]["id"], set()).add(o["customer"]["email"])
            assert o["customer"]["id"] > 2**53
    assert any(len([o for o in orders if o["customer"] and o["customer"]["id"] == cid]) > 1
               for cid in customers)
    assert all(len(emails) == 1 for emails in customers.values())
    defaults = [o["customer"]["default_address"] for o in orders if o["customer"]]
    assert any(d is None for d in defaults)
    assert any(d and d["first_name"] is None and d["name"] == "" for d in defaults)
    offsets = {o["created_at"][-6:] for o in orders}
    assert offsets == {"-05:00", "-04:00"}


def test_orders_spread_over_window(client: httpx.Client, sandbox: ShopifySandbox) -> None:
    """research/shopify.md §4 Time zones: orders spread over [start, end] with the shop offset."""
    orders = all_rest(client, sandbox)
    created = sorted(datetime.fromisoformat(o["created_at"]) for o in orders)
    assert created[0] >= START
    assert created[-1] <= END
    assert (created[-1] - created[0]).days > 150


def test_generation_is_deterministic_and_lazy() -> None:
    """research/shopify.md §4 (sandbox design): the same (seed, index) gives the same order;
    a million-order shop costs nothing until read."""
    cfg = dict(orders=1_000_000, seed=3, start=START, end=END,
               mix=StoreMix(guest_checkouts=0.5))
    a = ShopifySandbox(shops=[ShopConfig(**cfg)]).shop()
    b = ShopifySandbox(shops=[ShopConfig(**cfg)]).shop()
    for i in (0, 1, 499_999, 999_999):
        oid = a.generator.order_id(i)
        assert a.rest(a.store.get(oid)) == b.rest(b.store.get(oid))
    other = ShopifySandbox(shops=[ShopConfig(**{**cfg, "seed": 4})]).shop()
    assert other.generator.order_id(0) != a.generator.order_id(0)


@pytest.mark.parametrize("mix", [StoreMix(guest_checkouts=1.0), StoreMix(guest_checkouts=0.0)])
def test_mix_knobs_are_honoured(mix: StoreMix) -> None:
    """research/shopify.md §4 Guest checkout: customer null (knob at 0 % and 100 %)."""
    shop = ShopifySandbox(shops=[ShopConfig(orders=50, start=START, end=END, mix=mix)]).shop()
    guests = [shop.store.get(shop.generator.order_id(i))["customer"] is None for i in range(50)]
    assert all(guests) if mix.guest_checkouts == 1.0 else not any(guests)
