"""Authentication, scopes and the 60-day rule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from sandbox.server import BackgroundServer
from sandbox.shopify import ShopConfig, ShopifySandbox

from .conftest import END, OTHER, VERSION

INVALID = "[API] Invalid API key or access token (unrecognized login or wrong password)"


def test_graphql_requires_access_token(client: httpx.Client) -> None:
    """research/shopify.md §3 Authentication: X-Shopify-Access-Token on every Admin API call."""
    for headers in ({"X-Shopify-Access-Token": ""}, {"X-Shopify-Access-Token": "shpat_wrong"}):
        resp = client.post(f"/admin/api/{VERSION}/graphql.json",
                           json={"query": "{ shop { name } }"}, headers=headers)
        assert resp.status_code == 401
        assert resp.json() == {"errors": INVALID}


def test_rest_requires_access_token(client: httpx.Client) -> None:
    """research/shopify.md §3 Authentication: REST routes answer 401 without a valid token."""
    resp = client.get(f"/admin/api/{VERSION}/orders.json", headers={"X-Shopify-Access-Token": "x"})
    assert resp.status_code == 401
    assert resp.json() == {"errors": INVALID}


def test_token_is_per_shop(gql: Callable[..., dict[str, Any]], client: httpx.Client) -> None:
    """research/shopify.md §3 Authentication: a token belongs to one shop (routing by Host)."""
    resp = client.post(f"/admin/api/{VERSION}/graphql.json", json={"query": "{ shop { name } }"},
                       headers={"Host": OTHER})
    assert resp.status_code == 401
    body = gql("{ shop { myshopifyDomain currencyCode ianaTimezone plan { displayName } } }",
               host=OTHER, token="shpat_other")
    assert body["data"]["shop"] == {"myshopifyDomain": OTHER, "currencyCode": "AUD",
                                    "ianaTimezone": "Australia/Sydney",
                                    "plan": {"displayName": "Shopify Plus"}}


def test_access_scopes_are_reported(gql: Callable[..., dict[str, Any]]) -> None:
    """research/shopify.md §3 Scopes: the token's scopes via currentAppInstallation."""
    body = gql("{ currentAppInstallation { accessScopes { handle } } }")
    handles = {s["handle"] for s in body["data"]["currentAppInstallation"]["accessScopes"]}
    assert handles == {"read_orders", "read_customers", "read_all_orders"}


def _set_scopes(client: httpx.Client, scopes: list[str]) -> None:
    assert client.post("/__sandbox/scopes", json={"scopes": scopes}).status_code == 200


def test_orders_older_than_60_days_need_read_all_orders(
    client: httpx.Client, gql: Callable[..., dict[str, Any]]
) -> None:
    """research/shopify.md §3 Scopes (read_all_orders) and §2 60-day limit: without the scope,
    older orders are missing from lists and not found by id, in GraphQL and REST."""
    client.post("/__sandbox/clock", json={"now": (END + timedelta(days=10)).isoformat()})
    q = "{ orders(first: 250, sortKey: CREATED_AT) { nodes { id legacyResourceId createdAt } } }"
    everything = gql(q)["data"]["orders"]["nodes"]
    oldest = everything[0]
    _set_scopes(client, ["read_orders", "read_customers"])
    visible = gql("{ orders(first: 250, sortKey: CREATED_AT) { nodes { createdAt } } }")
    cutoff = (END + timedelta(days=10) - timedelta(days=60)).timestamp()
    from datetime import datetime

    stamps = [datetime.fromisoformat(n["createdAt"]).timestamp()
              for n in visible["data"]["orders"]["nodes"]]
    assert stamps
    assert min(stamps) >= cutoff
    assert gql(f'{{ order(id: "{oldest["id"]}") {{ id }} }}')["data"]["order"] is None
    resp = client.get(f"/admin/api/{VERSION}/orders/{oldest['legacyResourceId']}.json")
    assert resp.status_code == 404
    rest = client.get(f"/admin/api/{VERSION}/orders.json",
                      params={"status": "any", "limit": 250}).json()["orders"]
    assert all(datetime.fromisoformat(o["created_at"]).timestamp() >= cutoff for o in rest)
    _set_scopes(client, ["read_orders", "read_customers", "read_all_orders"])
    assert gql(f'{{ order(id: "{oldest["id"]}") {{ id }} }}')["data"]["order"] == {
        "id": oldest["id"]}


def test_customer_needs_read_customers(
    client: httpx.Client, gql: Callable[..., dict[str, Any]]
) -> None:
    """research/shopify.md §3 Scopes: customer data needs read_customers (ACCESS_DENIED)."""
    _set_scopes(client, ["read_orders", "read_all_orders"])
    body = gql("{ orders(first: 1) { nodes { id customer { id } } } }")
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    body = gql("{ orders(first: 1) { nodes { id } } }")
    assert "errors" not in body


def test_orders_need_read_orders(client: httpx.Client, gql: Callable[..., dict[str, Any]]) -> None:
    """research/shopify.md §3 Scopes: read_orders for order queries (GraphQL and REST)."""
    _set_scopes(client, ["read_customers"])
    body = gql("{ orders(first: 1) { nodes { id } } }")
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    assert client.get(f"/admin/api/{VERSION}/orders.json").status_code == 403


def test_client_credentials_grant(server: BackgroundServer, client: httpx.Client) -> None:
    """research/shopify.md §3 Authentication: client credentials grant at
    /admin/oauth/access_token returns access_token, scope and expires_in (24 h)."""
    url = f"{server.url}/admin/oauth/access_token"
    bad = httpx.post(url, data={"grant_type": "client_credentials", "client_id": "contract-client",
                                "client_secret": "nope"})
    assert bad.status_code == 400
    resp = httpx.post(url, data={"grant_type": "client_credentials",
                                 "client_id": "contract-client",
                                 "client_secret": "contract-secret"})
    assert resp.status_code == 200
    grant = resp.json()
    assert set(grant) == {"access_token", "scope", "expires_in"}
    assert grant["scope"] == "read_orders,read_customers,read_all_orders"
    assert grant["expires_in"] == 86399
    headers = {"X-Shopify-Access-Token": grant["access_token"]}
    query = {"query": "{ shop { name } }"}
    ok = httpx.post(f"{server.url}/admin/api/{VERSION}/graphql.json", json=query, headers=headers)
    assert ok.status_code == 200
    client.post("/__sandbox/clock", json={"advance_seconds": 86400})
    expired = httpx.post(f"{server.url}/admin/api/{VERSION}/graphql.json", json=query,
                         headers=headers)
    assert expired.status_code == 401


def test_injectable_monotonic_clock() -> None:
    """research/shopify.md §2 GraphQL cost and throttling: the bucket restores by elapsed
    (injected) time at the plan's restore rate."""
    now = [1000.0]
    sb = ShopifySandbox(shops=[ShopConfig(orders=10, plan="advanced")], monotonic=lambda: now[0])
    shop = sb.shop()
    assert shop.graphql_bucket.try_take(4000)
    assert not shop.graphql_bucket.try_take(1)
    now[0] += 2.5
    assert shop.graphql_bucket.available() == 500.0


def test_protected_customer_data_redaction(client: httpx.Client,
                                           gql: Callable[..., dict[str, Any]]) -> None:
    """research/shopify.md §3 Protected customer data: without Level 2 approval names, emails,
    phones and addresses come back null (REST and GraphQL)."""
    client.post("/__sandbox/protected-data", json={"redacted": True})
    order = client.get(f"/admin/api/{VERSION}/orders.json",
                       params={"status": "any", "limit": 1}).json()["orders"][0]
    assert order["email"] is None
    assert order["billing_address"]["first_name"] is None
    assert order["billing_address"]["country_code"]
    node = gql("{ orders(first: 5) { nodes { email billingAddress { firstName address1 }"
               " customer { firstName defaultEmailAddress { emailAddress } } } } }")
    for n in node["data"]["orders"]["nodes"]:
        assert n["email"] is None
        assert n["billingAddress"] == {"firstName": None, "address1": None}
        if n["customer"]:
            assert n["customer"]["firstName"] is None
            assert n["customer"]["defaultEmailAddress"] is None
