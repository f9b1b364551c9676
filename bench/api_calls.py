"""Benchmark 1: Salesforce API calls per order, product vs ``blueprint``.

Webhook path: the generated shop (30 % repeat customers) sends ``orders/create`` for N orders to
the product's receiver; the drain flow syncs the inbox. Then the org is reset and the blueprint
syncs the same orders from the same webhook bodies (query + three upserts each). Calls are
counted by the Salesforce sandbox (``/__sandbox/stats``), so the figures are exact and do not
depend on the machine's load.

Repair of 10,000 missing orders: measured in ``bench.reconcile`` (it needs the reconcile flow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import (
    Profile,
    Results,
    children,
    log,
    product_env,
    ratio,
    run_worker,
    sandbox_get,
    sandbox_post,
    start_child,
    start_salesforce,
    start_shopify,
    wait_http,
)
from sandbox.server import free_port

NAME = "api_calls"


def deliver(
    shop_url: str, receiver_url: str, start: int, count: int, time_scale: float = 0.0001
) -> dict[str, Any]:
    """Have the shop send ``orders/create`` for orders ``[start, start+count)``; wait for it.

    ``time_scale`` compresses Shopify's 4-hour retry schedule (0.0001: 1.4 s in all).
    """
    sandbox_post(
        shop_url, "webhooks/subscriptions", {"topic": "orders/create", "url": receiver_url}
    )
    sandbox_post(shop_url, "webhooks/config", {"time_scale": time_scale, "timeout": 10})
    queued = sandbox_post(
        shop_url, "webhooks/replay", {"topic": "orders/create", "start": start, "count": count}
    )
    idle = sandbox_post(shop_url, "webhooks/flush", {"timeout": 300})
    deliveries = sandbox_get(shop_url, "webhooks/deliveries")["deliveries"]
    codes: dict[str, int] = {}
    for delivery in deliveries:
        code = str(delivery.get("status_code"))
        codes[code] = codes.get(code, 0) + 1
    return {"queued": queued.get("queued"), "idle": idle.get("idle"), "status_codes": codes}


def run(profile: Profile, run_dir: Path, prefect_api: str, results: Results) -> None:
    """Webhook path: product vs blueprint on ``profile.mix_orders`` orders."""
    n = profile.mix_orders
    work = run_dir / "api_calls"
    work.mkdir(parents=True, exist_ok=True)
    salesforce = start_salesforce(work)
    shop = start_shopify(work, orders=n)
    with children(salesforce, shop):
        env = {
            **product_env(salesforce.url, shop.url, work / "product-data"),
            "PREFECT_API_URL": prefect_api,
        }
        port = free_port()
        receiver = start_child(
            "receiver", ["-m", "bench.serve_receiver", "product", "--port", str(port)], work, env
        )
        with children(receiver):
            wait_http(f"http://127.0.0.1:{port}/healthz", receiver)
            sent = deliver(shop.url, f"http://127.0.0.1:{port}/webhooks/shopify", 0, n)
        log(f"api_calls: {n} webhooks delivered: {sent}")

        sandbox_post(salesforce.url, "stats/reset")
        product = run_worker("drain", ["drain"], work, env, timeout=600)
        product_stats = sandbox_get(salesforce.url, "stats")
        log(f"api_calls: product drain {product['outcomes']}")

        sandbox_post(salesforce.url, "reset")
        blueprint = run_worker(
            "blueprint",
            ["blueprint-inbox", "--db", str(work / "product-data" / "shopsync.db")],
            work,
            env,
            timeout=900,
        )
        blueprint_stats = sandbox_get(salesforce.url, "stats")

    synced = sum(v for k, v in product["outcomes"].items() if k in ("created", "updated"))
    product_calls = product_stats["api_calls"]["total"]
    by_kind = product_stats["api_calls"]["by_kind"]
    setup_calls = by_kind.get("describe", 0) + by_kind.get("limits", 0)
    blueprint_calls = blueprint_stats["api_calls"]["total"]
    product_per_order = round(product_calls / synced, 3) if synced else None
    per_order_sync = round((product_calls - setup_calls) / synced, 3) if synced else None
    blueprint_per_order = (
        round(blueprint_calls / blueprint["orders"], 3) if blueprint["orders"] else None
    )
    results.add(
        NAME,
        "webhook_path_calls_per_order",
        orders_sent=n,
        orders_synced=synced,
        product_outcomes=product["outcomes"],
        product_calls=product_calls,
        product_calls_by_kind=by_kind,
        product_calls_per_order=product_per_order,
        product_calls_per_order_excluding_describe=per_order_sync,
        blueprint_orders=blueprint["orders"],
        blueprint_calls=blueprint_calls,
        blueprint_calls_by_kind=blueprint_stats["api_calls"]["by_kind"],
        blueprint_calls_per_order=blueprint_per_order,
        product_over_blueprint=ratio(product_per_order, blueprint_per_order),
        target="product <= 1.1 calls/order; blueprint ~4",
        met=product_per_order is not None and product_per_order <= 1.1,
        product_drain_cpu_s=product["cpu_s"],
        product_drain_peak_rss_mb=product["peak_rss_mb"],
        product_drain_wall_s=product["wall_s"],
        blueprint_wall_s=blueprint["wall_s"],
    )
