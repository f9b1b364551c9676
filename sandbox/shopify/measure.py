"""Measure the sandbox at scale and print JSON: GraphQL paging (250/page, sortKey UPDATED_AT)
through shops of different sizes — first pages vs pages deep in the window, RSS before/after —
and a bulk operation over 100,000 orders (time, objects, file size).

    .venv/bin/python -m sandbox.shopify.measure [--pages 20] [--bulk-orders 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from sandbox.server import BackgroundServer

from .config import ShopConfig
from .cursors import encode_sort_key
from .sandbox import ShopifySandbox

END = datetime(2026, 7, 1, tzinfo=UTC)
START = END - timedelta(days=365)
TOKEN = "shpat_measure"
PAGE = """query($a: String) { orders(first: 250, after: $a, sortKey: UPDATED_AT) {
  nodes { id legacyResourceId name updatedAt totalPriceSet { shopMoney { amount } } }
  pageInfo { hasNextPage endCursor } } }"""
BULK = """mutation($q: String!) { bulkOperationRunQuery(query: $q) {
  bulkOperation { id } userErrors { message } } }"""
BULK_QUERY = """{ orders { edges { node { id legacyResourceId name email updatedAt
  totalPriceSet { shopMoney { amount currencyCode } } customer { id displayName }
  lineItems { edges { node { id title quantity } } } } } } }"""


def rss_mb() -> float:
    """Current resident set size in MiB (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def _pages(client: httpx.Client, sb: ShopifySandbox, domain: str, cursor: str | None,
           n: int) -> dict[str, float]:
    """Fetch ``n`` consecutive pages from ``cursor``; the first (cold) page is reported apart."""
    shop = sb.shop(domain)
    times = []
    for _ in range(n):
        shop.graphql_bucket.reset()
        t0 = time.perf_counter()
        body = client.post("/admin/api/2026-10/graphql.json", json={
            "query": PAGE, "variables": {"a": cursor}}, headers={"Host": domain}).json()
        times.append(time.perf_counter() - t0)
        conn = body["data"]["orders"]
        if len(conn["nodes"]) != 250:
            raise RuntimeError(f"short page: {len(conn['nodes'])} orders")
        cursor = conn["pageInfo"]["endCursor"]
    rest = sorted(times[1:]) or times
    return {"first_page_ms": round(1000 * times[0], 1),
            "mean_ms": round(1000 * sum(rest) / len(rest), 1),
            "median_ms": round(1000 * rest[len(rest) // 2], 1),
            "max_ms": round(1000 * rest[-1], 1)}


def measure_listing(sizes: list[int], pages: int, repeat: int = 3) -> list[dict[str, Any]]:
    """Page through each shop size at its start, middle and end (cursor jumps to depth)."""
    configs = [ShopConfig(domain=f"shop-{n}.myshopify.com", access_token=TOKEN, orders=n,
                          plan="plus", start=START, end=END) for n in sizes]
    rss0 = rss_mb()
    sb = ShopifySandbox(shops=configs)
    out = []
    with BackgroundServer(sb.app) as srv, httpx.Client(
            base_url=srv.url, headers={"X-Shopify-Access-Token": TOKEN}, timeout=60) as client:
        for cfg in configs:
            shop = sb.shop(cfg.domain)
            g = shop.generator
            before = rss_mb()
            row: dict[str, Any] = {"orders": cfg.orders}
            span = (pages + 4) * 250
            for label, index in (("first_pages", None), ("middle_pages", (g.n - span) // 2),
                                 ("deep_pages", g.n - span)):
                cursor = None
                if index is not None:  # jump deep: the cursor of an order at that index
                    m = g.meta(index)
                    cursor = encode_sort_key((m.created, 0))
                runs = [_pages(client, sb, cfg.domain, cursor, pages) for _ in range(repeat)]
                best = min(runs, key=lambda r: r["median_ms"])  # least disturbed run
                row[label] = {**best, "first_page_ms": runs[0]["first_page_ms"]}  # cold
            row["rss_before_mb"] = round(before, 1)
            row["rss_after_mb"] = round(rss_mb(), 1)
            out.append(row)
    sb.close()
    return [{"process_rss_at_start_mb": round(rss0, 1)}, *out]


def measure_bulk(orders: int) -> dict[str, Any]:
    """Run one bulk query over a whole shop through the HTTP API; time it and size the JSONL."""
    sb = ShopifySandbox(shops=[ShopConfig(domain="bulk.myshopify.com", access_token=TOKEN,
                                          orders=orders, plan="plus", start=START, end=END)])
    with BackgroundServer(sb.app) as srv, httpx.Client(
            base_url=srv.url, headers={"X-Shopify-Access-Token": TOKEN}, timeout=60) as client:
        rss = rss_mb()
        t0 = time.perf_counter()
        started = client.post("/admin/api/2026-10/graphql.json", json={
            "query": BULK, "variables": {"q": BULK_QUERY}}).json()
        if not started["data"]["bulkOperationRunQuery"]["bulkOperation"]:
            raise RuntimeError(f"bulk operation not started: {started}")
        while True:
            op = client.post("/admin/api/2026-10/graphql.json", json={
                "query": "{ currentBulkOperation { status objectCount rootObjectCount fileSize"
                         " url } }"}).json()["data"]["currentBulkOperation"]
            if op["status"] not in ("CREATED", "RUNNING"):
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - t0
        rss_done = rss_mb()
        t1 = time.perf_counter()
        size = 0
        with httpx.stream("GET", op["url"], timeout=120) as resp:
            for chunk in resp.iter_bytes():
                size += len(chunk)
        download = time.perf_counter() - t1
    sb.close()
    return {"orders": orders, "status": op["status"], "seconds": round(elapsed, 2),
            "root_objects": int(op["rootObjectCount"]), "objects": int(op["objectCount"]),
            "file_bytes": int(op["fileSize"]), "downloaded_bytes": size,
            "download_seconds": round(download, 2), "rss_before_mb": round(rss, 1),
            "rss_when_completed_mb": round(rss_done, 1),
            "rss_after_download_mb": round(rss_mb(), 1)}


def measure_plateau(pages: int, orders: int = 1_000_000) -> list[dict[str, float]]:
    """In-process: page (250, UPDATED_AT) through a big shop and sample RSS every 100 pages, to
    show memory levels off at the bounded caches instead of growing with pages read."""
    from itertools import islice

    from .graphql_api import order_view
    from .store import OrderFilter

    sb = ShopifySandbox(shops=[ShopConfig(orders=orders, start=START, end=END)])
    shop = sb.shop()
    after = None
    samples = [{"pages": 0, "rss_mb": round(rss_mb(), 1)}]
    t0 = time.perf_counter()
    for page in range(1, pages + 1):
        rows = list(islice(shop.store.iterate(OrderFilter(), "UPDATED_AT", False, after), 251))
        for _, rec in rows[:250]:
            order_view(rec)
        after = rows[249][0]
        if page % 100 == 0:
            samples.append({"pages": page, "rss_mb": round(rss_mb(), 1),
                            "ms_per_page": round((time.perf_counter() - t0) * 10, 1)})
            t0 = time.perf_counter()
    return samples


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--bulk-orders", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per segment; best kept")
    parser.add_argument("--plateau-pages", type=int, default=400)
    args = parser.parse_args()
    result = {
        "listing": measure_listing([int(s) for s in args.sizes.split(",")], args.pages,
                                   args.repeat),
        "bulk": measure_bulk(args.bulk_orders) if args.bulk_orders else None,
        "in_process_rss_by_pages": measure_plateau(args.plateau_pages)
        if args.plateau_pages else None,
    }
    print(json.dumps(result, indent=2))  # noqa: T201 - the script's output


if __name__ == "__main__":
    main()
