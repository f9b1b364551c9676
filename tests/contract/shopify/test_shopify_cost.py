"""GraphQL cost calculation and leaky-bucket throttling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sandbox.shopify import ShopifySandbox

from .conftest import BIG, OTHER

Gql = Callable[..., dict[str, Any]]


def test_cost_extension_on_every_response(gql: Gql) -> None:
    """research/shopify.md §2 GraphQL cost and throttling: extensions.cost with throttleStatus."""
    body = gql("{ shop { name } }")
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 1
    assert cost["actualQueryCost"] == 1
    assert cost["throttleStatus"] == {"maximumAvailable": 2000.0, "currentlyAvailable": 1999,
                                      "restoreRate": 100.0}


@pytest.mark.parametrize(("query", "requested"), [
    ("{ orders(first: 10) { edges { node { id } } } }", 12),
    ("{ orders(first: 10) { nodes { id name } } }", 12),
    ("{ orders(first: 5) { nodes { id totalPriceSet { shopMoney { amount } } } } }", 2 + 5 * 3),
    ("{ orders(first: 2) { nodes { id lineItems(first: 4) { nodes { id } } } } }",
     2 + 2 * (1 + 2 + 4 * 1)),
    ("{ shop { name plan { displayName } } }", 2),
    ('{ nodes(ids: ["gid://shopify/Order/1", "gid://shopify/Order/2"]) { id } }', 2),
])
def test_requested_cost_formula(gql: Gql, query: str, requested: int) -> None:
    """research/shopify.md §2 GraphQL cost: scalars 0, objects 1, connections 2 + first × node."""
    assert gql(query)["extensions"]["cost"]["requestedQueryCost"] == requested


def test_actual_cost_refunds_unreturned_items(gql: Gql) -> None:
    """research/shopify.md §2 GraphQL cost: the bucket must hold the requested cost; the
    difference to the actual cost is refunded."""
    body = gql('{ orders(first: 100, query: "created_at:<2000-01-01") { nodes { id } } }')
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 102
    assert cost["actualQueryCost"] == 2
    assert cost["throttleStatus"]["currentlyAvailable"] == 1998


def test_throttled_is_http_200_with_null_actual_cost(gql: Gql, sandbox: ShopifySandbox) -> None:
    """research/shopify.md §2 GraphQL cost and throttling: THROTTLED comes back with HTTP 200,
    an errors array and actualQueryCost null; the bucket restores at the plan's rate."""
    q = "{ orders(first: 250) { nodes { id } } }"  # 252 points
    spent = 0
    while True:
        body = gql(q, wait=False)
        if "errors" in body:
            break
        spent += body["extensions"]["cost"]["actualQueryCost"]
    assert spent >= 2000 - 252
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["errors"][0]["message"] == "Throttled"
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert body["extensions"]["cost"]["requestedQueryCost"] == 252
    assert body.get("data") is None
    before = body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
    sandbox.shop().ticker.advance(1.0)  # basic plan: 100 points per second
    after = gql("{ shop { name } }", wait=False)["extensions"]["cost"]["throttleStatus"]
    # +100 from the advanced ticker, -1 for this query, plus whatever real time passed
    assert before + 99 <= after["currentlyAvailable"] <= before + 99 + 100
    sandbox.shop().ticker.advance(5.0)
    assert "errors" not in gql(q, wait=False)


def test_max_cost_exceeded_for_single_query(gql: Gql) -> None:
    """research/shopify.md §2 GraphQL cost: a single query may not exceed 1,000 points."""
    body = gql("{ orders(first: 250) { nodes { id lineItems(first: 10) { nodes { id } } } } }")
    err = body["errors"][0]
    assert err["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert err["extensions"]["cost"] == 2 + 250 * (1 + 2 + 10)
    assert body["extensions"]["cost"]["actualQueryCost"] is None


@pytest.mark.parametrize(("host", "token", "restore"), [
    (OTHER, "shpat_other", 1000.0),
    (BIG, None, 1000.0),
])
def test_restore_rate_depends_on_plan(gql: Gql, host: str, token: str | None,
                                      restore: float) -> None:
    """research/shopify.md §2 GraphQL cost: restore rate by plan (Standard 100, Advanced 200,
    Plus 1000 points/s)."""
    status = gql("{ shop { name } }", host=host, token=token)["extensions"]["cost"][
        "throttleStatus"]
    assert status["restoreRate"] == restore
    assert status["maximumAvailable"] == 20000.0


def test_mutations_cost_ten(gql: Gql) -> None:
    """research/shopify.md §2 GraphQL cost: mutations are priced (10 points each)."""
    body = gql("""mutation { webhookSubscriptionDelete(id: "gid://shopify/WebhookSubscription/9")
                 { userErrors { message } } }""")
    assert body["extensions"]["cost"]["requestedQueryCost"] == 10
