"""Benchmark 7: a trickle of orders at real Salesforce latency, through the trigger path.

A real ``shopsync serve`` (``bench.serve_path``), every Salesforce API call delayed 200 ms. First
``trickle_warm_orders`` orders are sent and synced (so that some later customers are known), the
serve goes idle (no drain running), then the shop sends one order every ``TRICKLE_EVERY_S``
seconds for ``trickle_seconds``. Each order's latency is its receipt (the receiver's 200, from the
shop's delivery log) → its Opportunity first visible in Salesforce (the sandbox's records, read
every 50 ms): the receiver's poke, the warm drain starting a flow run in the serve process
(``SHOPSYNC_SERVE_DRAIN=warm``, the default; with ``runner``: the receiver's event, Prefect's
automation, the runner's poll and the flow-run process start) and the sync itself, unless a
drain is still running or lingering when it arrives. The trickle starts once no drain runs.

Salesforce calls: orders whose Opportunities became visible in the same sample were synced
together; each group's calls are those counted since the previous group became visible. For
orders synced alone, by customer: ``known`` (the customer had an earlier order synced), ``new``,
``guest``. Expected: 1 for known, 2 for new (the e-mail lookup); a batch shares one lookup.
The drain runs Prefect recorded in the window are counted by state (the run history).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench.api_calls import deliver
from bench.common import (
    Profile,
    Results,
    children,
    log,
    percentile,
    ratio,
    sandbox_get,
    sandbox_post,
    start_salesforce,
    start_shopify,
)
from bench.serve_path import Watcher, drain_runs, receipts, run_states, shopsync_serve

NAME = "trickle"
LATENCY_S = 0.2
TRICKLE_EVERY_S = 2.0
SERVE_DRAINS = ("warm", "runner")  # the product's default, then the baseline: a process per run
TARGET = "p50 receipt -> Opportunity <= 3 s; 1 call per known customer's order, 2 per new one"


def customer_key(order: dict[str, Any]) -> str | None:
    """Who the order belongs to (customer id), None for a guest checkout."""
    customer = order.get("customer") or {}
    return str(customer["id"]) if customer.get("id") else None


def trickle_round(
    profile: Profile, work: Path, salesforce: Any, shop: Any, prefect_api: str, serve_drain: str
) -> dict[str, Any]:
    """Warm up, go idle, trickle; per-order latency and calls (``SHOPSYNC_SERVE_DRAIN``)."""
    warm = profile.trickle_warm_orders
    count = int(profile.trickle_seconds / TRICKLE_EVERY_S)
    sandbox_post(salesforce.url, "reset")
    sandbox_post(shop.url, "reset")
    env = {"SHOPSYNC_SERVE_DRAIN": serve_drain}
    name = f"serve-trickle-{serve_drain}"
    with shopsync_serve(name, work, salesforce.url, shop.url, prefect_api, env) as served:
        sandbox_post(salesforce.url, "faults", {"kind": "latency", "latency": LATENCY_S})
        deliver(shop.url, served.webhook_url, 0, warm)
        deadline = time.time() + 120
        while time.time() < deadline:
            inbox = served.inbox()
            if (
                sum(inbox.values()) >= warm
                and not inbox.get("pending")
                and not inbox.get("claimed")
            ):
                break
            time.sleep(0.25)
        served.wait_idle(60)
        time.sleep(3)  # the warm-up's last drain has finished: nothing is running
        known = {
            customer_key(sandbox_get(shop.url, f"orders/{d['order_id']}")["order"])
            for d in sandbox_get(shop.url, "webhooks/deliveries")["deliveries"]
            if d.get("ok")
        }
        sandbox_post(shop.url, "webhooks/config", {"time_scale": 0.0001, "timeout": 10})
        with Watcher(salesforce.url, keys=True) as watcher:
            began = time.time()
            sandbox_post(
                shop.url,
                "webhooks/replay",
                {"start": warm, "count": count, "rate": 1 / TRICKLE_EVERY_S, "background": True},
            )
            deadline = began + profile.trickle_seconds + 60
            while time.time() < deadline:
                got = receipts(sandbox_get(shop.url, "webhooks/deliveries")["deliveries"])
                fresh = [o for o, at in got.items() if at >= began]
                if len(fresh) >= count and all(o in watcher.first_seen for o in fresh):
                    break
                time.sleep(0.5)
            time.sleep(1)
        inbox = served.inbox()
        served.wait_idle(60)  # the drain lingers 20 s after the last order, then exits
    runs = drain_runs(prefect_api, began - 1)
    got = receipts(sandbox_get(shop.url, "webhooks/deliveries")["deliveries"])
    trickled = sorted(((at, o) for o, at in got.items() if at >= began))
    per_order = []
    seen = set(known)
    for at, order_id in trickled:
        order = sandbox_get(shop.url, f"orders/{order_id}")["order"]
        who = customer_key(order)
        kind = "guest" if who is None else ("known" if who in seen else "new")
        seen.add(who)
        visible = watcher.first_seen.get(order_id)
        per_order.append(
            {
                "order_id": order_id,
                "customer": kind,
                "latency_s": round(visible - at, 3) if visible else None,
                "visible_at": visible,
            }
        )
    groups = sync_groups(per_order, watcher, began)
    latencies = [p["latency_s"] for p in per_order if p["latency_s"] is not None]
    alone = {
        kind: [g["calls"] for g in groups if g["kinds"] == [kind]]
        for kind in ("known", "new", "guest")
    }
    total_calls = sum(g["calls"] for g in groups)
    first = trickled[0][0] if trickled else began
    return {
        "orders": len(trickled),
        "visible": len(latencies),
        "p50_s": round(percentile(latencies, 50) or 0, 3) if latencies else None,
        "p95_s": round(percentile(latencies, 95) or 0, 3) if latencies else None,
        "max_s": round(max(latencies), 3) if latencies else None,
        "calls_per_order": round(total_calls / len(latencies), 3) if latencies else None,
        "calls_per_lone_order": {
            kind: round(statistics.mean(v), 2) if v else None for kind, v in alone.items()
        },
        # The typical lone order; the mean also carries what a drain run costs once at its
        # start (a /limits read before its first write, when no answer reported usage yet).
        "calls_per_lone_order_median": {
            kind: statistics.median(v) if v else None for kind, v in alone.items()
        },
        "lone_orders": {kind: len(v) for kind, v in alone.items()},
        "orders_by_customer": {
            kind: sum(1 for p in per_order if p["customer"] == kind)
            for kind in ("known", "new", "guest")
        },
        "sync_groups": [{k: g[k] for k in ("kinds", "calls", "by_kind")} for g in groups],
        "drain_runs": run_states(runs),
        "drain_runs_timeline_s": [
            {
                "created": round(r["created"] - first, 2),
                "started": round(r["started"] - first, 2) if r["started"] else None,
                "ended": round(r["ended"] - first, 2) if r["ended"] else None,
                "state": r["state"],
            }
            for r in runs
        ],
        "inbox": inbox,
        "per_order": [{k: v for k, v in p.items() if k != "visible_at"} for p in per_order],
    }


def sync_groups(
    per_order: list[dict[str, Any]], watcher: Watcher, began: float
) -> list[dict[str, Any]]:
    """Orders that became visible in the same sample were synced together (one drain batch):
    the calls counted since the previous group became visible are that group's."""
    by_time: dict[float, list[str]] = {}
    for p in per_order:
        if p["visible_at"] is not None:
            by_time.setdefault(p["visible_at"], []).append(p["customer"])
    groups, previous = [], began
    for at in sorted(by_time):
        calls, by_kind = watcher.calls_between(previous, at)
        groups.append({"kinds": sorted(by_time[at]), "calls": calls, "by_kind": by_kind})
        previous = at
    return groups


def run(profile: Profile, run_dir: Path, prefect_api: str, results: Results) -> None:
    """The same trickle through ``shopsync serve`` with the warm drain (the default), then
    with every drain a flow-run process started by the runner (the baseline)."""
    work = run_dir / NAME
    work.mkdir(parents=True, exist_ok=True)
    count = int(profile.trickle_seconds / TRICKLE_EVERY_S)
    salesforce = start_salesforce(work)
    shop = start_shopify(work, orders=profile.trickle_warm_orders + count)
    rounds = {}
    with children(salesforce, shop):
        for mode in SERVE_DRAINS:
            rounds[mode] = trickle_round(profile, work, salesforce, shop, prefect_api, mode)
            got = rounds[mode]
            log(f"{NAME} ({mode}): p50 {got['p50_s']} s, p95 {got['p95_s']} s, {got['drain_runs']}")
    answer, runner = rounds["warm"], rounds["runner"]
    calls = answer["calls_per_lone_order_median"]
    results.add(
        NAME,
        "receipt_to_opportunity",
        salesforce_latency_ms=int(LATENCY_S * 1000),
        every_s=TRICKLE_EVERY_S,
        seconds=profile.trickle_seconds,
        serve_drain="warm",
        **answer,
        runner={k: v for k, v in runner.items() if k not in {"per_order", "sync_groups"}},
        p50_ratio_warm_vs_runner=ratio(answer["p50_s"], runner["p50_s"]),
        target=TARGET,
        met=(answer["p50_s"] or 99) <= 3
        and calls.get("known") in (None, 1)
        and calls.get("new") in (None, 2),
    )
