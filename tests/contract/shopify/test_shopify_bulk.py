"""Bulk query operations: run, poll, download JSONL with __parentId."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

Gql = Callable[..., dict[str, Any]]
RUN = """mutation($q: String!) { bulkOperationRunQuery(query: $q) {
  bulkOperation { id status } userErrors { field message } } }"""
POLL = """{ currentBulkOperation { id status errorCode objectCount rootObjectCount fileSize url
  partialDataUrl createdAt completedAt } }"""
INNER = """{ orders(sortKey: UPDATED_AT,
  query: "updated_at:>='2026-02-01T00:00:00Z' AND updated_at:<'2026-03-01T00:00:00Z'")
  { edges { node { id legacyResourceId name updatedAt
  totalPriceSet { shopMoney { amount currencyCode } }
  customer { id displayName }
  lineItems { edges { node { id title quantity sku } } } } } } }"""


def run_bulk(gql: Gql, inner: str) -> dict[str, Any]:
    body = gql(RUN, {"q": inner})
    payload = body["data"]["bulkOperationRunQuery"]
    assert payload["userErrors"] == [], payload
    op_id = payload["bulkOperation"]["id"]
    assert payload["bulkOperation"]["status"] in ("CREATED", "RUNNING", "COMPLETED")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        op = gql(POLL)["data"]["currentBulkOperation"]
        if op["status"] == "COMPLETED":
            assert op["id"] == op_id
            return op
        time.sleep(0.05)
    raise AssertionError("bulk operation did not complete")


def test_bulk_query_writes_jsonl_with_parent_ids(gql: Gql, client: httpx.Client) -> None:
    """research/shopify.md §2 Bulk operations: bulkOperationRunQuery, poll currentBulkOperation,
    download JSONL from url; nested connection objects on their own lines with __parentId."""
    op = run_bulk(gql, INNER)
    assert op["url"]
    assert op["completedAt"]
    resp = httpx.get(op["url"])  # no access token, like a signed download URL
    assert resp.status_code == 200
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert len(lines) == int(op["objectCount"])
    assert int(op["fileSize"]) == len(resp.content)
    orders = [x for x in lines if "__parentId" not in x]
    items = [x for x in lines if "__parentId" in x]
    assert len(orders) == int(op["rootObjectCount"])
    assert items
    order_ids = {o["id"] for o in orders}
    assert all(i["__parentId"] in order_ids for i in items)
    assert all(i["id"].startswith("gid://shopify/LineItem/") for i in items)
    assert all("lineItems" not in o for o in orders)
    expected = []
    after = None
    while True:
        conn = gql("""query($a: String) { orders(first: 250, after: $a, sortKey: UPDATED_AT,
          query: "updated_at:>='2026-02-01T00:00:00Z' AND updated_at:<'2026-03-01T00:00:00Z'")
          { nodes { id } pageInfo { hasNextPage endCursor } } }""", {"a": after})
        page = conn["data"]["orders"]
        expected += [n["id"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert [o["id"] for o in orders] == expected


def test_bulk_operation_by_id(gql: Gql) -> None:
    """research/shopify.md §2 Bulk operations: bulkOperation(id:) (API 2026-01+)."""
    op = run_bulk(gql, "{ orders { edges { node { id } } } }")
    again = gql('query($id: ID!) { bulkOperation(id: $id) { id status objectCount } }',
                {"id": op["id"]})["data"]["bulkOperation"]
    assert again == {"id": op["id"], "status": "COMPLETED", "objectCount": op["objectCount"]}
    assert int(op["objectCount"]) == 600


def test_empty_result_has_null_url(gql: Gql) -> None:
    """research/shopify.md §2 Bulk operations: "If the query produced no results, then the url
    field will return null"."""
    op = run_bulk(gql, '{ orders(query: "created_at:<2001-01-01") { edges { node { id } } } }')
    assert op["url"] is None
    assert op["objectCount"] == "0"


def test_invalid_inner_query_is_a_user_error(gql: Gql) -> None:
    """research/shopify.md §2 Bulk operations: invalid bulk queries come back as userErrors."""
    body = gql(RUN, {"q": "{ orders { edges { node { id nope } } } }"})
    payload = body["data"]["bulkOperationRunQuery"]
    assert payload["bulkOperation"] is None
    assert payload["userErrors"][0]["field"] == ["query"]
    body = gql(RUN, {"q": "{ shop { name } }"})
    assert body["data"]["bulkOperationRunQuery"]["userErrors"]
