"""The /__sandbox/ control API: order mutations seen through the Admin API, clock, faults,
stats, multi-shop."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from .conftest import END, OTHER, VERSION

Gql = Callable[..., dict[str, Any]]
ORDERS = f"/admin/api/{VERSION}/orders.json"


def test_created_order_is_listed_and_fetchable(client: httpx.Client, gql: Gql) -> None:
    """research/shopify.md §2 GraphQL orders query (incremental sync by updated_at): an order
    created now shows up in the updated_at window, in REST and GraphQL alike."""
    now = datetime.fromisoformat(client.post("/__sandbox/clock", json={}).json()["now"])
    before = (now - timedelta(seconds=1)).isoformat()
    order = client.post("/__sandbox/orders", json={
        "email": "Ünïcødé@example.com", "first_name": "Нікіта", "last_name": "Шевченко",
        "total_price": "12.34", "test": True}).json()["order"]
    assert order["total_price"] == "12.34"
    assert order["billing_address"]["first_name"] == "Нікіта"
    body = gql("""query($q: String) { orders(first: 10, sortKey: UPDATED_AT, query: $q) {
      nodes { legacyResourceId email test totalPriceSet { shopMoney { amount } } } } }""",
               {"q": f"updated_at:>='{before}'"})
    nodes = body["data"]["orders"]["nodes"]
    assert nodes == [{"legacyResourceId": str(order["id"]), "email": "Ünïcødé@example.com",
                      "test": True, "totalPriceSet": {"shopMoney": {"amount": "12.34"}}}]
    got = client.get(f"/admin/api/{VERSION}/orders/{order['id']}.json").json()["order"]
    assert got == order


def test_update_moves_order_to_the_end_of_updated_at_order(client: httpx.Client,
                                                           gql: Gql) -> None:
    """research/shopify.md §1 orders/updated and §2 incremental sync: an edit bumps updated_at,
    so the order leaves its old place and appears once, last, when sorting by UPDATED_AT."""
    oid = client.get("/__sandbox/shop").json()["first_order_id"]
    updated = client.post(f"/__sandbox/orders/{oid}/update",
                          json={"email": "changed@example.com"}).json()["order"]
    assert updated["updated_at"] > updated["created_at"]
    ids: list[str] = []
    after = None
    while True:
        conn = gql("""query($a: String) { orders(first: 250, after: $a, sortKey: UPDATED_AT) {
          nodes { legacyResourceId email } pageInfo { hasNextPage endCursor } } }""",
                   {"a": after})["data"]["orders"]
        ids += [n["legacyResourceId"] for n in conn["nodes"]]
        if not conn["pageInfo"]["hasNextPage"]:
            last = conn["nodes"][-1]
            break
        after = conn["pageInfo"]["endCursor"]
    assert ids.count(str(oid)) == 1
    assert last == {"legacyResourceId": str(oid), "email": "changed@example.com"}


def test_cancel_refund_delete(client: httpx.Client, gql: Gql) -> None:
    """research/shopify.md §4 Cancelled orders and refunds: cancelled_at/cancel_reason set,
    current_total_price drops on refund; deleted orders disappear."""
    shop = client.get("/__sandbox/shop").json()
    oid = shop["first_order_id"]
    order = client.post(f"/__sandbox/orders/{oid}/refund", json={}).json()["order"]
    assert order["current_total_price"] == "0.00"
    assert order["financial_status"] == "refunded"
    assert client.post(f"/__sandbox/orders/{oid}/refund", json={"amount": "1"}).status_code == 400
    cancelled = client.post(f"/__sandbox/orders/{oid}/cancel", json={}).json()["order"]
    assert cancelled["cancelled_at"]
    assert cancelled["cancel_reason"] == "customer"
    node = gql(f'{{ order(id: "gid://shopify/Order/{oid}") {{ cancelledAt cancelReason '
               'currentTotalPriceSet { shopMoney { amount } } '
               'totalRefundedSet { shopMoney { amount } } } }')["data"]["order"]
    assert node["cancelReason"] == "CUSTOMER"
    assert node["currentTotalPriceSet"]["shopMoney"]["amount"] == "0.00"
    assert node["totalRefundedSet"]["shopMoney"]["amount"] == order["total_price"]
    assert client.request("DELETE", f"/__sandbox/orders/{oid}").status_code == 200
    assert client.get(f"/admin/api/{VERSION}/orders/{oid}.json").status_code == 404
    assert gql(f'{{ order(id: "gid://shopify/Order/{oid}") {{ id }} }}')["data"]["order"] is None
    count = client.get(f"/admin/api/{VERSION}/orders/count.json", params={"status": "any"})
    assert count.json() == {"count": 599}
    assert client.request("DELETE", f"/__sandbox/orders/{oid}").status_code == 404


def test_clock_controls_the_60_day_rule(client: httpx.Client) -> None:
    """research/shopify.md §3 Scopes (read_all_orders): the shop clock decides "60 days ago"."""
    client.post("/__sandbox/scopes", json={"scopes": ["read_orders"]})
    count = f"/admin/api/{VERSION}/orders/count.json"
    client.post("/__sandbox/clock", json={"now": (END + timedelta(days=1)).isoformat()})
    recent = client.get(count, params={"status": "any"}).json()["count"]
    client.post("/__sandbox/clock", json={"now": (END + timedelta(days=400)).isoformat()})
    assert client.get(count, params={"status": "any"}).json()["count"] == 0
    client.post("/__sandbox/clock", json={"now": END.isoformat()})
    assert client.get(count, params={"status": "any"}).json()["count"] >= recent
    assert 0 < recent < 600


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_fault_status_for_next_n_calls(client: httpx.Client, status: int) -> None:
    """research/shopify.md §2 REST rate limits (429 + Retry-After) and server errors: injected
    for the next N calls, on REST and GraphQL."""
    client.post("/__sandbox/faults", json={"kind": "status", "status": status, "count": 2})
    r1 = client.get(ORDERS)
    r2 = client.post(f"/admin/api/{VERSION}/graphql.json", json={"query": "{ shop { name } }"})
    r3 = client.get(ORDERS)
    assert (r1.status_code, r2.status_code, r3.status_code) == (status, status, 200)
    if status == 429:
        assert float(r1.headers["Retry-After"]) > 0


def test_fault_only_for_one_api_and_by_rate(client: httpx.Client) -> None:
    """research/shopify.md §2 (sandbox fault injection): rules target graphql or rest, and fire
    at a seeded rate."""
    client.post("/__sandbox/faults", json={"status": 500, "api": "graphql", "rate": 0.5,
                                           "seed": 3})
    assert client.get(ORDERS).status_code == 200
    codes = [client.post(f"/admin/api/{VERSION}/graphql.json",
                         json={"query": "{ shop { name } }"}).status_code for _ in range(40)]
    assert 5 < codes.count(500) < 35
    assert codes.count(200) == 40 - codes.count(500)
    assert client.request("DELETE", "/__sandbox/faults").json() == {"cleared": True}
    assert client.get("/__sandbox/faults").json() == {"faults": []}


def test_fault_time_window(client: httpx.Client) -> None:
    """research/shopify.md §2 (sandbox fault injection): a rule active for a time window."""
    client.post("/__sandbox/faults", json={"status": 503, "duration_seconds": 1.0})
    assert client.get(ORDERS).status_code == 503
    time.sleep(1.05)
    assert client.get(ORDERS).status_code == 200


def test_fault_latency_and_drop(client: httpx.Client) -> None:
    """research/shopify.md §1/§2 (sandbox fault injection): slow responses and dropped
    connections."""
    client.post("/__sandbox/faults", json={"kind": "latency", "latency_ms": 200, "count": 1})
    start = time.monotonic()
    assert client.get(ORDERS).status_code == 200
    assert time.monotonic() - start >= 0.2
    client.post("/__sandbox/faults", json={"kind": "drop", "count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(ORDERS)
    assert client.get(ORDERS).status_code == 200


def test_stats(client: httpx.Client, gql: Gql) -> None:
    """research/shopify.md §2 GraphQL cost: stats count calls by API, cost spent, throttling."""
    gql("{ orders(first: 5) { nodes { id } } }")
    client.get(ORDERS)
    client.get(ORDERS, headers={"X-Shopify-Access-Token": "bad"})
    stats = client.get("/__sandbox/stats").json()
    assert stats["calls"] == {"graphql": 1, "rest": 2}
    assert stats["cost_spent"] == 7
    assert stats["unauthorized"] == 1
    assert stats["throttled"] == 0
    client.post("/__sandbox/stats/reset")
    assert client.get("/__sandbox/stats").json()["calls"] == {}


def test_shop_parameter_selects_shop(client: httpx.Client, gql: Gql) -> None:
    """research/shopify.md §3 Authentication (per shop): control calls take a shop domain."""
    order = client.post("/__sandbox/orders", json={"shop": OTHER}).json()["order"]
    assert order["currency"] == "AUD"
    assert order["created_at"][-6:] in ("+11:00", "+10:00")
    found = gql(f'{{ order(id: "gid://shopify/Order/{order["id"]}") {{ id }} }}',
                host=OTHER, token="shpat_other")
    assert found["data"]["order"]["id"].endswith(str(order["id"]))
    assert gql(f'{{ order(id: "gid://shopify/Order/{order["id"]}") {{ id }} }}')["data"][
        "order"] is None
    info = client.get("/__sandbox/shop", params={"shop": OTHER}).json()
    assert info["domain"] == OTHER


def test_backdated_order_and_bad_requests(client: httpx.Client) -> None:
    """research/shopify.md §4 (sandbox control API): optional created_at; clear 4xx errors."""
    when = datetime(2026, 2, 2, 12, tzinfo=UTC)
    order = client.post("/__sandbox/orders", json={"created_at": when.isoformat()}).json()["order"]
    assert datetime.fromisoformat(order["created_at"]) == when
    assert client.post("/__sandbox/orders", json={"bogus": 1}).status_code == 400
    assert client.post("/__sandbox/orders/1/update", json={}).status_code == 404
