"""A 1,000,000-order shop: lazy listing deep in an updated_at window, counts, bulk slices."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from sandbox.shopify import ShopifySandbox

from .conftest import BIG, VERSION

Gql = Callable[..., dict[str, Any]]
PAGE = """query($a: String, $q: String) { orders(first: 250, after: $a, sortKey: UPDATED_AT,
  query: $q) { nodes { legacyResourceId updatedAt } pageInfo { hasNextPage endCursor } } }"""


def test_million_order_shop_counts_without_materializing(client: httpx.Client,
                                                         sandbox: ShopifySandbox) -> None:
    """research/shopify.md §2 REST count and 60-day rule over a large shop (lazy store)."""
    resp = client.get(f"/admin/api/{VERSION}/orders/count.json", params={"status": "any"},
                      headers={"Host": BIG})
    assert resp.json() == {"count": 1_000_000}
    assert sandbox.shop(BIG).store.overlay == {}


def test_deep_pages_of_a_window_are_sorted_and_complete(gql: Gql, sandbox: ShopifySandbox
                                                        ) -> None:
    """research/shopify.md §2 GraphQL orders query: incremental sync pages through a window
    with sortKey UPDATED_AT; pages deep in a million-order shop are as correct as the first."""
    q = "updated_at:>='2026-05-01T00:00:00Z' AND updated_at:<'2026-05-01T12:00:00Z'"
    seen: list[tuple[float, int]] = []
    after = None
    while True:
        body = gql(PAGE, {"a": after, "q": q}, host=BIG)
        conn = body["data"]["orders"]
        seen += [(datetime.fromisoformat(n["updatedAt"]).timestamp(), int(n["legacyResourceId"]))
                 for n in conn["nodes"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert len(seen) > 500
    assert seen == sorted(seen)
    assert len({i for _, i in seen}) == len(seen)
    lo = datetime.fromisoformat("2026-05-01T00:00:00+00:00").timestamp()
    hi = datetime.fromisoformat("2026-05-01T12:00:00+00:00").timestamp()
    assert all(lo <= t < hi for t, _ in seen)
    shop = sandbox.shop(BIG)
    g = shop.generator
    first = g.first_index_created_at_or_after(int(lo) - g.max_delta)
    last = g.first_index_created_at_or_after(int(hi))
    brute = sorted((m.updated, m.id) for m in map(g.meta, range(first, last))
                   if lo <= m.updated < hi)
    assert seen == [(float(u), i) for u, i in brute]
