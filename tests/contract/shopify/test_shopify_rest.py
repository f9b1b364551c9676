"""REST Admin API order endpoints: filters, defaults, Link pagination, call limit."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from sandbox.shopify import ShopifySandbox

from .conftest import VERSION

ORDERS = f"/admin/api/{VERSION}/orders.json"


def links(resp: httpx.Response) -> dict[str, str]:
    """Parse ``Link: <url>; rel="next", <url>; rel="previous"``."""
    out = {}
    for part in resp.headers.get("link", "").split(", "):
        m = re.match(r'<([^>]+)>; rel="(\w+)"', part)
        if m:
            out[m.group(2)] = m.group(1)
    return out


def walk(client: httpx.Client, sandbox: ShopifySandbox, **params: object) -> list[dict]:
    out: list[dict] = []
    url: str | None = ORDERS
    first = True
    while url:
        sandbox.shop().rest_bucket.reset()
        resp = client.get(url, params=params if first else None)
        assert resp.status_code == 200, resp.text
        out.extend(resp.json()["orders"])
        url = links(resp).get("next")
        first = False
    return out


def test_get_order_envelope(client: httpx.Client) -> None:
    """research/shopify.md §2 REST: GET orders/{id}.json → {"order": {…}}; 404 otherwise."""
    listed = client.get(ORDERS, params={"limit": 1, "status": "any"}).json()["orders"][0]
    resp = client.get(f"/admin/api/{VERSION}/orders/{listed['id']}.json")
    assert resp.status_code == 200
    assert resp.json() == {"order": listed}
    assert client.get(f"/admin/api/{VERSION}/orders/1.json").status_code == 404
    assert client.get(f"/admin/api/{VERSION}/orders/1.json").json() == {"errors": "Not Found"}


def test_status_defaults_to_open(client: httpx.Client, sandbox: ShopifySandbox) -> None:
    """research/shopify.md §2 REST: status defaults to open; reconciliation must pass any."""
    default = walk(client, sandbox, limit=250)
    assert default
    assert all(o["closed_at"] is None and o["cancelled_at"] is None for o in default)
    everything = walk(client, sandbox, limit=250, status="any")
    assert len(everything) == 600
    assert len(default) < len(everything)
    cancelled = walk(client, sandbox, limit=250, status="cancelled")
    assert cancelled
    assert all(o["cancelled_at"] for o in cancelled)


def test_limit_default_and_max(client: httpx.Client) -> None:
    """research/shopify.md §2 REST: limit defaults to 50, maximum 250."""
    assert len(client.get(ORDERS, params={"status": "any"}).json()["orders"]) == 50
    assert len(client.get(ORDERS, params={"status": "any", "limit": 250}).json()["orders"]) == 250
    assert client.get(ORDERS, params={"limit": 251}).status_code == 400


def test_link_pagination_and_page_info_rule(client: httpx.Client, sandbox: ShopifySandbox
                                            ) -> None:
    """research/shopify.md §2 REST cursor pagination: Link rel=next/previous with opaque
    page_info; a page_info request may carry only limit and fields."""
    first = client.get(ORDERS, params={"status": "any", "limit": 100,
                                       "fields": "id,updated_at"})
    nxt = links(first)["next"]
    assert "previous" not in links(first)
    query = parse_qs(urlparse(nxt).query)
    assert set(query) == {"limit", "fields", "page_info"}
    second = client.get(nxt)
    assert set(second.json()["orders"][0]) == {"id", "updated_at"}
    back = client.get(links(second)["previous"]).json()["orders"]
    assert back == first.json()["orders"]
    bad = client.get(ORDERS, params={"page_info": query["page_info"][0], "status": "any"})
    assert bad.status_code == 400
    assert "page_info" in bad.json()["errors"]
    every = walk(client, sandbox, status="any", limit=77)
    ids = [o["id"] for o in every]
    assert len(ids) == len(set(ids)) == 600


def test_updated_at_and_created_at_filters(client: httpx.Client, sandbox: ShopifySandbox
                                           ) -> None:
    """research/shopify.md §2 REST: updated_at_min means "at or after"; ISO 8601 with offset."""
    everything = walk(client, sandbox, status="any", limit=250)
    lo, hi = "2026-03-01T00:00:00-05:00", "2026-03-31T23:59:59-04:00"
    t = lambda s: datetime.fromisoformat(s).timestamp()  # noqa: E731
    got = walk(client, sandbox, status="any", limit=250, updated_at_min=lo, updated_at_max=hi)
    assert {o["id"] for o in got} == {
        o["id"] for o in everything if t(lo) <= t(o["updated_at"]) <= t(hi)}
    got = walk(client, sandbox, status="any", limit=250, created_at_min=lo)
    assert {o["id"] for o in got} == {o["id"] for o in everything if t(o["created_at"]) >= t(lo)}
    count = client.get(f"/admin/api/{VERSION}/orders/count.json",
                       params={"status": "any", "created_at_min": lo}).json()
    assert count == {"count": len(got)}


def test_since_id(client: httpx.Client) -> None:
    """research/shopify.md §2 REST: since_id pages relatively by id."""
    page = client.get(ORDERS, params={"status": "any", "limit": 10}).json()["orders"]
    after = client.get(ORDERS, params={"status": "any", "limit": 5,
                                       "since_id": page[4]["id"]}).json()["orders"]
    assert [o["id"] for o in after] == [o["id"] for o in page[5:10]]


def test_call_limit_header_and_429(client: httpx.Client, sandbox: ShopifySandbox) -> None:
    """research/shopify.md §2 REST rate limits: X-Shopify-Shop-Api-Call-Limit n/40, leaking
    2/s on Standard; 429 with Retry-After over the limit."""
    r = client.get(ORDERS, params={"limit": 1})
    assert r.headers["X-Shopify-Shop-Api-Call-Limit"] == "1/40"
    calls = 1
    while r.status_code == 200 and calls < 80:
        assert r.headers["X-Shopify-Shop-Api-Call-Limit"].endswith("/40")
        r = client.get(ORDERS, params={"limit": 1})
        calls += 1
    assert calls > 40
    assert r.status_code == 429
    assert float(r.headers["Retry-After"]) > 0
    sandbox.shop().ticker.advance(1.0)
    r = client.get(ORDERS, params={"limit": 1})
    assert r.status_code == 200


@pytest.mark.parametrize("fields", ["id,name,total_price", "id"])
def test_fields_parameter(client: httpx.Client, fields: str) -> None:
    """research/shopify.md §2 REST: fields selects keys of each order."""
    orders = client.get(ORDERS, params={"fields": fields, "status": "any"}).json()["orders"]
    assert all(set(o) == set(fields.split(",")) for o in orders)


def test_ids_parameter(client: httpx.Client) -> None:
    """research/shopify.md §2 REST: the ids parameter of Order.all (with status=any)."""
    page = client.get(ORDERS, params={"status": "any", "limit": 5}).json()["orders"]
    wanted = [page[3]["id"], page[1]["id"], 1]
    got = client.get(ORDERS, params={"status": "any",
                                     "ids": ",".join(map(str, wanted))}).json()["orders"]
    assert [o["id"] for o in got] == [page[1]["id"], page[3]["id"]]
