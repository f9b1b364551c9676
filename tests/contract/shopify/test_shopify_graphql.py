"""GraphQL Admin API: schema, orders search/sort/pagination, nodes, REST/GraphQL agreement."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from .conftest import ORDER_FIELDS, VERSION

Gql = Callable[..., dict[str, Any]]
LIST = """query($after: String, $q: String, $key: OrderSortKeys, $rev: Boolean) {
  orders(first: 250, after: $after, query: $q, sortKey: $key, reverse: $rev) {
    edges { cursor node { id legacyResourceId createdAt updatedAt cancelledAt closed test } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def walk(gql: Gql, q: str | None = None, key: str = "ID", rev: bool = False) -> list[dict]:
    out: list[dict] = []
    after = None
    while True:
        body = gql(LIST, {"after": after, "q": q, "key": key, "rev": rev})
        assert "errors" not in body, body
        conn = body["data"]["orders"]
        out.extend(e["node"] for e in conn["edges"])
        if not conn["pageInfo"]["hasNextPage"]:
            return out
        after = conn["pageInfo"]["endCursor"]


def test_unknown_field_is_a_graphql_error_with_http_200(client: httpx.Client) -> None:
    """research/shopify.md §2 GraphQL Admin API: a field outside the schema fails validation."""
    resp = client.post(f"/admin/api/{VERSION}/graphql.json",
                       json={"query": "{ orders(first: 1) { nodes { id fooBar } } }"})
    assert resp.status_code == 200
    body = resp.json()
    assert "data" not in body or body["data"] is None
    assert "fooBar" in body["errors"][0]["message"]


def test_connection_needs_first_or_last_at_most_250(gql: Gql) -> None:
    """research/shopify.md §2 Pagination: up to 250 resources per page; first or last needed."""
    assert gql("{ orders(first: 251) { nodes { id } } }")["errors"]
    assert gql("{ orders { nodes { id } } }")["errors"]


def test_walk_by_updated_at_sees_every_order_once_in_order(gql: Gql) -> None:
    """research/shopify.md §2 GraphQL orders query: sortKey UPDATED_AT with endCursor paging."""
    nodes = walk(gql, key="UPDATED_AT")
    assert len(nodes) == 600
    assert len({n["id"] for n in nodes}) == 600
    keys = [(ts(n["updatedAt"]), int(n["legacyResourceId"])) for n in nodes]
    assert keys == sorted(keys)
    assert all(ts(n["updatedAt"]) >= ts(n["createdAt"]) for n in nodes)
    assert any(ts(n["updatedAt"]) > ts(n["createdAt"]) for n in nodes)


def test_sort_keys_and_reverse(gql: Gql) -> None:
    """research/shopify.md §2 GraphQL orders query: sortKey (ID, CREATED_AT) and reverse."""
    by_id = walk(gql, key="ID")
    ids = [int(n["legacyResourceId"]) for n in by_id]
    assert ids == sorted(ids)
    assert all(i > 2**53 for i in ids)
    by_created_rev = walk(gql, key="CREATED_AT", rev=True)
    created = [ts(n["createdAt"]) for n in by_created_rev]
    assert created == sorted(created, reverse=True)


def test_updated_at_window_matches_brute_force(gql: Gql) -> None:
    """research/shopify.md §2 GraphQL orders query: updated_at:>='…' AND updated_at:<'…'."""
    everything = walk(gql, key="UPDATED_AT")
    lo, hi = "2026-03-01T00:00:00Z", "2026-04-15T12:00:00-04:00"
    expected = [n["id"] for n in everything if ts(lo) <= ts(n["updatedAt"]) < ts(hi)]
    got = walk(gql, f"updated_at:>='{lo}' AND updated_at:<'{hi}'", key="UPDATED_AT")
    assert [n["id"] for n in got] == expected
    assert expected


@pytest.mark.parametrize(("query", "predicate"), [
    ("created_at:>2026-03-01", lambda t: t >= datetime.fromisoformat(
        "2026-03-02T00:00:00-05:00").timestamp() or t > datetime.fromisoformat(
        "2026-03-01T00:00:00-05:00").timestamp()),
    ("created_at:>='2026-03-01T00:00:00Z'", lambda t: t >= 1772323200),
    ("created_at:<=2026-04-01T00:00:00-04:00", lambda t: t <= 1775016000),
    ("created_at:<'2026-02-01T00:00:00Z' created_at:>=2026-01-15T00:00:00Z",
     lambda t: 1768435200 <= t < 1769904000),
])
def test_created_at_comparisons(gql: Gql, query: str, predicate: Callable[[float], bool]) -> None:
    """research/shopify.md §2 GraphQL orders query: created_at with >, >=, <, <=, quoted or not,
    dates (shop timezone) or ISO datetimes, AND or plain space."""
    everything = walk(gql)
    expected = {n["id"] for n in everything if predicate(ts(n["createdAt"]))}
    got = {n["id"] for n in walk(gql, query)}
    assert got == expected
    assert got


def test_status_and_test_filters(gql: Gql) -> None:
    """research/shopify.md §2 REST/GraphQL status (open, closed, cancelled, any) and test:false;
    §4 test and cancelled orders."""
    everything = walk(gql)
    cancelled = walk(gql, "status:cancelled")
    assert cancelled
    assert {n["id"] for n in cancelled} == {n["id"] for n in everything if n["cancelledAt"]}
    open_ = walk(gql, "status:open")
    assert {n["id"] for n in open_} == {
        n["id"] for n in everything if not n["closed"] and not n["cancelledAt"]}
    closed = walk(gql, "status:closed")
    assert {n["id"] for n in closed} == {n["id"] for n in everything if n["closed"]}
    assert len(walk(gql, "status:any")) == len(everything)
    not_test = walk(gql, "test:false AND status:any")
    assert not_test
    assert all(not n["test"] for n in not_test)
    assert len(not_test) < len(everything)


def test_backward_pagination_matches_forward(gql: Gql) -> None:
    """research/shopify.md §2 Pagination: last/before walks the same pages backwards."""
    q = """query($before: String) { orders(last: 100, before: $before, sortKey: UPDATED_AT) {
      edges { cursor node { id } } pageInfo { hasPreviousPage startCursor hasNextPage } } }"""
    out: list[str] = []
    before = None
    while True:
        conn = gql(q, {"before": before})["data"]["orders"]
        assert conn["pageInfo"]["hasNextPage"] is (before is not None)
        out = [e["node"]["id"] for e in conn["edges"]] + out
        if not conn["pageInfo"]["hasPreviousPage"]:
            break
        before = conn["pageInfo"]["startCursor"]
    assert out == [n["id"] for n in walk(gql, key="UPDATED_AT")]


def test_order_nodes_and_page_info(gql: Gql) -> None:
    """research/shopify.md §2 GraphQL Admin API: order(id:), nodes(ids:), edges/nodes, pageInfo."""
    first = gql("{ orders(first: 3) { edges { cursor node { id } } nodes { id }"
                " pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }")
    conn = first["data"]["orders"]
    assert [e["node"] for e in conn["edges"]] == conn["nodes"]
    assert conn["pageInfo"]["hasNextPage"] is True
    assert conn["pageInfo"]["hasPreviousPage"] is False
    assert conn["pageInfo"]["startCursor"] == conn["edges"][0]["cursor"]
    assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
    second = gql('query($a: String) { orders(first: 3, after: $a) { nodes { id } pageInfo {'
                 ' hasNextPage hasPreviousPage } } }', {"a": conn["pageInfo"]["endCursor"]})
    assert second["data"]["orders"]["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": True}
    ids = [n["id"] for n in conn["nodes"]]
    one = gql(f'{{ order(id: "{ids[0]}") {{ id name }} }}')["data"]["order"]
    assert one["id"] == ids[0]
    assert one["name"].startswith("#")
    many = gql("query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Order { legacyResourceId } } }",
               {"ids": [*ids, "gid://shopify/Order/1"]})["data"]["nodes"]
    assert [n["id"] for n in many[:3]] == ids
    assert many[3] is None


def test_line_items_paginate(gql: Gql) -> None:
    """research/shopify.md §2 GraphQL Order fields: the lineItems(first:) connection."""
    nodes = gql("{ orders(first: 50) { nodes { id lineItems(first: 10) { nodes { id } } } } }")
    order = max(nodes["data"]["orders"]["nodes"], key=lambda n: len(n["lineItems"]["nodes"]))
    items = [li["id"] for li in order["lineItems"]["nodes"]]
    assert len(items) >= 2
    q = """query($id: ID!, $after: String) { order(id: $id) { lineItems(first: 1, after: $after) {
      nodes { id } pageInfo { hasNextPage endCursor } } } }"""
    seen, after = [], None
    while True:
        conn = gql(q, {"id": order["id"], "after": after})["data"]["order"]["lineItems"]
        seen += [n["id"] for n in conn["nodes"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert seen == items


def test_graphql_and_rest_views_agree(gql: Gql, client: httpx.Client) -> None:
    """research/shopify.md §2 legacyResourceId = REST id, admin_graphql_api_id = GraphQL id;
    §4 money strings, shop vs presentment currency, timezones (same instant, different offsets)."""
    nodes = gql(f"{{ orders(first: 15) {{ nodes {{ {ORDER_FIELDS} }} }} }}")["data"]["orders"]
    for g in nodes["nodes"]:
        r = client.get(f"/admin/api/{VERSION}/orders/{g['legacyResourceId']}.json").json()["order"]
        assert r["id"] == int(g["legacyResourceId"])
        assert r["admin_graphql_api_id"] == g["id"]
        assert r["name"] == g["name"]
        assert r["email"] == g["email"]
        assert ts(r["created_at"]) == ts(g["createdAt"])
        assert ts(r["updated_at"]) == ts(g["updatedAt"])
        assert g["createdAt"].endswith("Z")
        assert r["created_at"][-6:] in ("-05:00", "-04:00")
        assert r["total_price"] == g["totalPriceSet"]["shopMoney"]["amount"]
        assert r["current_total_price"] == g["currentTotalPriceSet"]["shopMoney"]["amount"]
        assert r["total_price_set"]["presentment_money"]["currency_code"] == g[
            "presentmentCurrencyCode"]
        assert r["financial_status"].upper() == g["displayFinancialStatus"]
        if g["customer"] is None:
            assert r["customer"] is None
        else:
            assert r["customer"]["id"] == int(g["customer"]["legacyResourceId"])
            assert r["customer"]["email"] == g["customer"]["defaultEmailAddress"]["emailAddress"]
            assert r["customer"]["first_name"] == g["customer"]["firstName"]
        assert [li["id"] for li in r["line_items"]] == [
            int(e["node"]["id"].rsplit("/", 1)[1]) for e in g["lineItems"]["edges"]]
        assert len(r["refunds"]) == len(g["refunds"])


def test_parse_error_is_reported_with_http_200(client: httpx.Client) -> None:
    """research/shopify.md §2 GraphQL Admin API: malformed queries come back as errors."""
    resp = client.post(f"/admin/api/{VERSION}/graphql.json", json={"query": "{ orders(first: "})
    assert resp.status_code == 200
    assert resp.json()["errors"]


def test_utc_now_is_after_generated_window(gql: Gql) -> None:
    """research/shopify.md §4 Time zones: GraphQL DateTime values are UTC ISO 8601."""
    node = gql("{ orders(first: 1) { nodes { createdAt } } }")["data"]["orders"]["nodes"][0]
    assert datetime.fromisoformat(node["createdAt"]).tzinfo == UTC
