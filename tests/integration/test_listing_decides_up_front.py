"""The reconcile listing decides up front (issue 14): one ``ordersCount`` of the window, and a
window over the threshold goes straight to a bulk operation without a single paged ``orders``
query; a window under it pages. Against the Shopify sandbox, counting the queries it served."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tasks.runtime import shopify_adapter
from tasks.settings import Settings
from tasks.shopify.bulk import read_spool, spool_window

WHOLE_SHOP = (datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1))


def pages_served(shopify) -> int:
    return int(shopify.shop.stats.snapshot()["order_pages"])


def test_a_window_over_the_threshold_goes_straight_to_bulk(
    product: Settings, shopify, tmp_path: Path
) -> None:
    client = shopify_adapter(product)
    try:
        result = spool_window(client, *WHOLE_SHOP, tmp_path / "run-1.jsonl", bulk_over=100)
    finally:
        client.close()
    assert result.method == "bulk"
    assert pages_served(shopify) == 0
    assert result.orders == len(list(read_spool(tmp_path / "run-1.jsonl"))) > 100


def test_a_window_under_the_threshold_pages(product: Settings, shopify, tmp_path: Path) -> None:
    client = shopify_adapter(product)
    try:
        total = client.count_orders(*WHOLE_SHOP, limit=100_000)
        result = spool_window(client, *WHOLE_SHOP, tmp_path / "run-1.jsonl", bulk_over=total)
    finally:
        client.close()
    assert result.method == "pages"
    assert result.orders == total
    assert pages_served(shopify) >= 1


def test_the_count_stops_at_its_limit(product: Settings, shopify) -> None:
    client = shopify_adapter(product)
    try:
        assert client.count_orders(*WHOLE_SHOP, limit=7) == 7
        assert client.count_orders(*WHOLE_SHOP, limit=100_000) > 7
    finally:
        client.close()
