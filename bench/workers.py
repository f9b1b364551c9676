"""Benchmark 5: drain throughput with 1 and with 3 Prefect workers, on PostgreSQL.

Per round: a fresh Prefect server on PostgreSQL, a ``process`` work pool, the deployments of
``deployments/prefect.yaml`` with the drain's concurrency limit set to the number of workers, that
many ``prefect worker`` processes, and a PostgreSQL state store (``bench/cluster.py``). The shop
sends N orders to the receiver first (its inbox fills; no drain runs yet); then the clock starts,
drain runs are asked for (one per worker; the every-minute safety net and the limit do the rest)
and it stops when the ledger holds all N orders. Every Salesforce request waits 200 ms (the
sandbox's ``latency`` fault, an ``asyncio.sleep``: the sandbox keeps serving meanwhile).

``orders_per_s`` counts from the request for drain runs, so it includes Prefect scheduling them and
each flow run's start (a new process, several seconds), as production does; ``syncing_orders_per_s``
counts from the first order in the ledger to the last.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.api_calls import deliver
from bench.cluster import cluster, max_overlap, wait_until
from bench.common import (
    Profile,
    Results,
    children,
    log,
    product_env,
    ratio,
    sandbox_post,
    start_child,
    start_salesforce,
    start_shopify,
    wait_http,
)
from sandbox.server import free_port
from state import StateStore

NAME = "workers"
LATENCY_S = 0.2
ROUNDS = (1, 3)


def one_round(
    workers: int, orders: int, work: Path, postgres: Any, salesforce: Any, shop: Any
) -> dict[str, Any]:
    """Fill the inbox with ``orders`` orders, then time ``workers`` workers draining it."""
    sandbox_post(salesforce.url, "reset")
    sandbox_post(shop.url, "reset")
    sandbox_post(salesforce.url, "faults", {"kind": "latency", "latency": LATENCY_S})
    root = work / f"workers-{workers}"
    env = product_env(salesforce.url, shop.url, root / "data")
    with cluster(root, postgres, env, workers=workers, drain_concurrency=workers) as running:
        port = free_port()
        receiver = start_child(
            f"receiver-{workers}",
            ["-m", "bench.serve_receiver", "product", "--port", str(port)],
            root,
            running.env,
        )
        with children(receiver):
            wait_http(f"http://127.0.0.1:{port}/healthz", receiver)
            sent = deliver(shop.url, f"http://127.0.0.1:{port}/webhooks/shopify", 0, orders)
        store = StateStore.open(running.state_url)
        try:
            began = time.monotonic()
            running.start_drains(workers)

            def synced() -> bool:
                return store.counts().ledger_orders >= orders

            ok = wait_until(synced, 900, every=0.5)
            seconds = time.monotonic() - began
            synced_orders = store.counts().ledger_orders
            first, last = ledger_span(store)
        finally:
            store.close()
        overlap = max_overlap(running.drain_runs())
    syncing = (last - first).total_seconds() if first and last else None
    return {
        "workers": workers,
        "orders": orders,
        "orders_synced": synced_orders,
        "complete": ok,
        "seconds": round(seconds, 1),
        "orders_per_s": round(synced_orders / seconds, 2) if seconds else None,
        "syncing_seconds": round(syncing, 1) if syncing else None,
        "syncing_orders_per_s": round(synced_orders / syncing, 2) if syncing else None,
        "drains_at_once": overlap,
        "deliveries": sent,
    }


def ledger_span(store: StateStore) -> tuple[datetime | None, datetime | None]:
    """When the first and the last order reached the ledger (right after its Salesforce write):
    the syncing itself, without the flow runs' start-up in front of it."""
    with store.engine.connect() as connection:
        row = connection.execute(text("SELECT min(synced_at), max(synced_at) FROM ledger")).one()
    return row[0], row[1]


def run(profile: Profile, run_dir: Path, prefect_api: str, results: Results) -> None:
    """1 worker, then 3 workers, on the same orders; the ratio of their throughputs."""
    from sandbox.postgres import PostgresServer, find_bin_dir

    orders = profile.workers_orders
    bin_dir = find_bin_dir()
    if bin_dir is None:
        results.add(NAME, "workers_3_vs_1", measured=False, reason="no PostgreSQL binaries")
        return
    work = run_dir / NAME
    work.mkdir(parents=True, exist_ok=True)
    salesforce = start_salesforce(work)
    shop = start_shopify(work, orders=orders)
    rounds = []
    with PostgresServer(bin_dir) as postgres, children(salesforce, shop):
        for workers in ROUNDS:
            answer = one_round(workers, orders, work, postgres, salesforce, shop)
            log(f"workers: {answer}")
            rounds.append(answer)
    one, three = rounds
    results.add(
        NAME,
        "workers_3_vs_1",
        salesforce_latency_ms=int(LATENCY_S * 1000),
        one_worker=one,
        three_workers=three,
        throughput_ratio=ratio(three["orders_per_s"], one["orders_per_s"]),
        syncing_ratio=ratio(three["syncing_orders_per_s"], one["syncing_orders_per_s"]),
        target=">= 2x with 3 workers",
        met=(ratio(three["orders_per_s"], one["orders_per_s"]) or 0) >= 2,
    )
