"""Benchmark 4: webhook → Salesforce end to end, product vs ``run-per-webhook``.

Product: the shop sends ``orders/create`` for N orders as fast as its sender goes (4 workers) to
the product receiver (its own uvicorn process, real SQLite inbox); a drain worker process runs the
``sync-pending-orders`` flow back to back against the run's Prefect server whenever the inbox has
work, as the debounced trigger would (without Prefect's trigger-to-run scheduling delay, which
this benchmark does not include). Latency per order: first receipt in the inbox → ledger entry
written right after the Opportunity's composite call; throughput: orders / (last ledger entry -
first receipt).

Baseline: the same shop sends the first M orders to ``bench.baselines.run_per_webhook``'s receiver,
which creates one flow run of the served ``sync-order`` deployment per webhook (limit 4 flow-run
subprocesses, runner polling every second — generous to the baseline: the default is 10 s).
Latency per order: receipt → ledger entry; throughput as above. Both use the same org (reset
before each round) and the same Prefect server. The product runs twice, before and after the
baseline, and its figures are the means of the two rounds (load from other work on the machine
changes within a run).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench.api_calls import deliver
from bench.common import (
    Child,
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
    start_worker,
    wait_http,
    wait_worker,
)
from bench.worker import summarise_latencies
from sandbox.server import free_port

NAME = "end_to_end"


def product(
    profile: Profile, work: Path, salesforce: Child, shop: Child, prefect_api: str, tag: str = ""
) -> dict[str, Any]:
    """The product's receiver + drain on ``profile.e2e_orders`` orders (fresh org and shop)."""
    n = profile.e2e_orders
    sandbox_post(salesforce.url, "reset")
    sandbox_post(shop.url, "reset")
    env = {
        **product_env(salesforce.url, shop.url, work / f"product-data{tag}"),
        "PREFECT_API_URL": prefect_api,
    }
    port = free_port()
    receiver = start_child(
        f"product-receiver{tag}",
        ["-m", "bench.serve_receiver", "product", "--port", str(port)],
        work,
        env,
    )
    with children(receiver):
        wait_http(f"http://127.0.0.1:{port}/healthz", receiver)
        drain = start_worker(
            f"product-drain{tag}",
            ["drain-until", "--orders", str(n), "--timeout", "300"],
            work,
            env,
        )
        with children(drain):
            sent = deliver(shop.url, f"http://127.0.0.1:{port}/webhooks/shopify", 0, n)
            answer = wait_worker(drain, timeout=360)
        receiver_usage = receiver.usage()
    answer["deliveries"] = sent
    answer["receiver_cpu_s"] = receiver_usage.get("cpu_s")
    answer["receiver_peak_rss_mb"] = receiver_usage.get("peak_rss_mb")
    return answer


def mean_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The means of the numeric figures of the product's rounds, and the rounds themselves."""
    keys = ("orders_synced", "orders_per_s", "p50_s", "p95_s", "max_s", "cpu_s", "receiver_cpu_s")
    mean: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in rounds if isinstance(r.get(key), int | float)]
        mean[key] = round(sum(values) / len(values), 3) if values else None
    mean["peak_rss_mb"] = max((r.get("peak_rss_mb") or 0) for r in rounds)
    mean["rounds"] = rounds
    return mean


def ledger_times(db: Path) -> dict[str, str]:
    """``order id → synced_at`` from a state database (empty if it does not exist yet)."""
    if not db.exists():
        return {}
    connection = sqlite3.connect(db)
    try:
        return dict(connection.execute("SELECT order_id, synced_at FROM ledger").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        connection.close()


def baseline(
    profile: Profile, work: Path, salesforce: Child, shop: Child, prefect_api: str
) -> dict[str, Any]:
    """``run-per-webhook`` on ``profile.e2e_baseline_orders`` orders."""
    m = profile.e2e_baseline_orders
    data = work / "baseline-data"
    env = {
        **product_env(salesforce.url, shop.url, data),
        "PREFECT_API_URL": prefect_api,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    module = "bench.baselines.run_per_webhook"
    server = start_child("baseline-serve", ["-m", module, "serve"], work, env)
    port = free_port()
    with children(server):
        receiver = start_child(
            "baseline-receiver", ["-m", module, "receive", "--port", str(port)], work, env
        )
        with children(receiver):
            wait_http(f"http://127.0.0.1:{port}/healthz", receiver, timeout=150)
            url = f"http://127.0.0.1:{port}/webhooks/shopify"
            # Retries over 144 s instead of 4 h: the baseline gets time to recover from 503s.
            sent = deliver(shop.url, url, 0, m, time_scale=0.01)
            deadline = time.monotonic() + 240
            stalled_since, seen = time.monotonic(), -1
            while time.monotonic() < deadline:
                done = len(ledger_times(data / "shopsync.db"))
                if done >= m or time.monotonic() - stalled_since > 60:
                    break  # all synced, or a minute without progress (a lost delivery)
                if done != seen:
                    stalled_since, seen = time.monotonic(), done
                time.sleep(0.5)
            receiver_usage = receiver.usage()
        server_usage = server.usage()
    received = {}
    journal = data / "received.jsonl"
    for line in journal.read_text().splitlines() if journal.exists() else []:
        entry = json.loads(line)
        received.setdefault(entry["order_id"], entry["received_at"])
    figures = summarise_latencies(received, ledger_times(data / "shopsync.db"))
    return {
        **figures,
        "deliveries": sent,
        "receiver_cpu_s": receiver_usage.get("cpu_s"),
        "serve_cpu_s": server_usage.get("cpu_s"),
        "flow_run_processes_cpu_s": server_usage.get("children_cpu_s"),
        "serve_peak_rss_mb": server_usage.get("peak_rss_mb"),
    }


def run(profile: Profile, run_dir: Path, prefect_api: str, results: Results) -> None:
    """Product, baseline, product again (org and shop reset before each); the product's figures
    are the means of its two rounds, which bracket the baseline in time."""
    work = run_dir / "end_to_end"
    work.mkdir(parents=True, exist_ok=True)
    salesforce = start_salesforce(work)
    shop = start_shopify(work, orders=profile.e2e_orders)
    with children(salesforce, shop):
        first = product(profile, work, salesforce, shop, prefect_api, "-1")
        log(f"end_to_end: product {first}")
        sandbox_post(salesforce.url, "reset")
        sandbox_post(shop.url, "reset")
        theirs = baseline(profile, work, salesforce, shop, prefect_api)
        log(f"end_to_end: run-per-webhook {theirs}")
        second = product(profile, work, salesforce, shop, prefect_api, "-2")
        log(f"end_to_end: product {second}")
    mine = mean_rounds([first, second])
    product_cpu = (mine.get("cpu_s") or 0) + (mine.get("receiver_cpu_s") or 0)
    baseline_cpu = sum(
        theirs.get(k) or 0 for k in ("receiver_cpu_s", "serve_cpu_s", "flow_run_processes_cpu_s")
    )
    results.add(
        NAME,
        "webhook_to_opportunity",
        product_orders=profile.e2e_orders,
        baseline_orders=profile.e2e_baseline_orders,
        product=mine,
        baseline=theirs,
        product_cpu_ms_per_order=round(product_cpu * 1000 / mine["orders_synced"], 1)
        if mine.get("orders_synced")
        else None,
        baseline_cpu_ms_per_order=round(baseline_cpu * 1000 / theirs["orders_synced"], 1)
        if theirs.get("orders_synced")
        else None,
        throughput_ratio=ratio(mine.get("orders_per_s"), theirs.get("orders_per_s")),
        p50_ratio=ratio(mine.get("p50_s"), theirs.get("p50_s")),
        p95_ratio=ratio(mine.get("p95_s"), theirs.get("p95_s")),
        target=">= 25 orders/s and >= 50 x run-per-webhook",
        met=(mine.get("orders_per_s") or 0) >= 25
        and (ratio(mine.get("orders_per_s"), theirs.get("orders_per_s")) or 0) >= 50,
    )
