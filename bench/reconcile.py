"""Benchmark 2 (reconcile at scale) and the repair half of benchmark 1 (calls to repair 10,000
missing orders, product vs ``blueprint``).

For each size N (10,000 and 100,000; ``full`` adds 1,000,000) a fresh generated shop of N orders
and an empty org, each in its own process, then three runs of the ``reconcile`` flow over
the whole window, each in a fresh product process (its CPU time and peak RSS are its own):

1. ``all_missing``: the org is empty, so every order is repaired (at 10,000 this is benchmark 1's
   "repair 10,000 missing orders");
2. ``in_sync``: nothing to do;
3. ``gaps``: 3 % of the Opportunities were deleted (by id, through the API) before the run.

Shopify calls and query cost come from the Shopify sandbox's counters, Salesforce calls from the
Salesforce sandbox's (both reset before each run). "Cost per order" is wall time and CPU time per
order; its growth is the 100k figure over the 10k figure (near-linear means close to 1.0).

The blueprint repairs the first ``blueprint_repair_sample`` orders of the 10,000 on an empty org
(one query per order, three upserts per missing order); in the quick profile its calls for all
10,000 are extrapolated from that sample (its calls per order are constant by construction).
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    Child,
    Profile,
    Results,
    children,
    log,
    product_env,
    ratio,
    run_worker,
    sandbox_get,
    sandbox_post,
    start_salesforce,
    start_shopify,
)

NAME = "reconcile"
PHASES = ("all_missing", "in_sync", "gaps")


def window(shop: Child) -> tuple[str, str]:
    """Shop dates covering every generated order (and edits up to today)."""
    info = sandbox_get(shop.url, "shop")
    start = datetime.fromisoformat(info["start"]).date() - timedelta(days=1)
    today = datetime.fromisoformat(info["now"]).date()
    return start.isoformat(), max(today, date.fromisoformat(start.isoformat())).isoformat()


def delete_opportunities(salesforce: Child, db: Path, rate: float) -> int:
    """Delete ``rate`` of the synced Opportunities (every k-th ledger entry) through the API."""
    from sandbox.salesforce.client import simple_salesforce

    connection = sqlite3.connect(db)
    ids = [
        row[0]
        for row in connection.execute(
            "SELECT opportunity_id FROM ledger WHERE opportunity_id IS NOT NULL ORDER BY order_id"
        )
    ]
    connection.close()
    step = max(1, round(1 / rate))
    doomed = ids[::step]
    sf = simple_salesforce(salesforce.url)
    for start in range(0, len(doomed), 200):
        chunk = ",".join(doomed[start : start + 200])
        sf.restful(
            "composite/sobjects", method="DELETE", params={"ids": chunk, "allOrNone": "false"}
        )
    return len(doomed)


def one_phase(
    phase: str, n: int, work: Path, env: dict[str, str], salesforce: Child, shop: Child
) -> dict[str, Any]:
    """One reconcile run in a fresh product process, with both sandboxes' counters."""
    start, end = window(shop)
    sandbox_post(salesforce.url, "stats/reset")
    sandbox_post(shop.url, "stats/reset")
    answer = run_worker(
        f"reconcile-{n}-{phase}",
        ["reconcile", "--start", start, "--end", end],
        work,
        env,
        timeout=900 + n * 0.01,  # the repair of 1,000,000 orders takes over an hour here
    )
    sf_stats = sandbox_get(salesforce.url, "stats")
    shop_stats = sandbox_get(shop.url, "stats")
    result = answer.get("result", {})
    return {
        "orders": n,
        "phase": phase,
        "status": result.get("status"),
        "counts": result.get("counts"),
        "repaired": result.get("repaired"),
        "wall_s": answer["wall_s"],
        "cpu_s": answer["cpu_s"],
        "peak_rss_mb": answer["peak_rss_mb"],
        "salesforce_calls": sf_stats["api_calls"]["total"],
        "salesforce_calls_by_kind": sf_stats["api_calls"]["by_kind"],
        "shopify_calls": shop_stats.get("calls"),
        "shopify_cost": shop_stats.get("cost_spent"),
        "shopify_throttled": shop_stats.get("throttled"),
        "wall_ms_per_order": round(answer["wall_s"] * 1000 / n, 4),
        "cpu_ms_per_order": round(answer["cpu_s"] * 1000 / n, 4),
        "listing": result.get("listing"),
        "read_path": result.get("read_path"),
    }


def one_size(
    n: int, profile: Profile, run_dir: Path, prefect_api: str, results: Results
) -> dict[str, dict[str, Any]]:
    """The three phases at one size (and the blueprint's repair at 10,000)."""
    work = run_dir / f"reconcile-{n}"
    work.mkdir(parents=True, exist_ok=True)
    salesforce = start_salesforce(work)
    shop = start_shopify(work, orders=n, days=20)
    phases: dict[str, dict[str, Any]] = {}
    with children(salesforce, shop):
        data = work / "product-data"
        env = {**product_env(salesforce.url, shop.url, data), "PREFECT_API_URL": prefect_api}
        for phase in PHASES:
            if phase == "gaps":
                deleted = delete_opportunities(salesforce, data / "shopsync.db", profile.gap_rate)
                log(f"reconcile {n}: deleted {deleted} Opportunities")
            figures = one_phase(phase, n, work, env, salesforce, shop)
            log(f"reconcile {n} {phase}: {figures}")
            results.add(NAME, f"reconcile_{n}_{phase}", **figures)
            phases[phase] = figures
        if n == profile.repair_orders:
            repair_vs_blueprint(profile, work, env, salesforce, phases["all_missing"], results)
    return phases


def repair_vs_blueprint(
    profile: Profile,
    work: Path,
    env: dict[str, str],
    salesforce: Child,
    product: dict[str, Any],
    results: Results,
) -> None:
    """Benchmark 1, repair half: product's calls to repair N missing orders vs the blueprint's."""
    sample = min(profile.blueprint_repair_sample, profile.repair_orders)
    sandbox_post(salesforce.url, "reset")
    answer = run_worker(
        "blueprint-repair", ["blueprint-repair", "--limit", str(sample)], work, env, timeout=3600
    )
    stats = sandbox_get(salesforce.url, "stats")
    per_order = stats["api_calls"]["total"] / answer["orders"] if answer["orders"] else None
    blueprint_total = round(per_order * profile.repair_orders) if per_order else None
    results.add(
        "api_calls",
        f"repair_{profile.repair_orders}_missing",
        orders=profile.repair_orders,
        product_calls=product["salesforce_calls"],
        product_calls_by_kind=product["salesforce_calls_by_kind"],
        product_repaired=product.get("repaired"),
        blueprint_orders_measured=answer["orders"],
        blueprint_calls_measured=stats["api_calls"]["total"],
        blueprint_calls_per_order=round(per_order, 3) if per_order else None,
        blueprint_calls=blueprint_total,
        blueprint_extrapolated=sample < profile.repair_orders,
        blueprint_over_product=ratio(blueprint_total, product["salesforce_calls"]),
        target="product <= 50 calls; blueprint >= 40,000",
        met=product["salesforce_calls"] <= 50,
    )


def run(profile: Profile, run_dir: Path, prefect_api: str, results: Results) -> None:
    """Every size, then the growth of the cost per order between the two smallest sizes."""
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for n in profile.reconcile_sizes:
        by_size[n] = one_size(n, profile, run_dir, prefect_api, results)
    sizes = sorted(by_size)
    for big in sizes[1:]:
        small = sizes[0]
        for phase in ("in_sync", "gaps"):
            a, b = by_size[small].get(phase), by_size[big].get(phase)
            if not a or not b:
                continue
            results.add(
                NAME,
                f"growth_{small}_to_{big}_{phase}",
                wall_per_order_growth=ratio(b["wall_ms_per_order"], a["wall_ms_per_order"]),
                cpu_per_order_growth=ratio(b["cpu_ms_per_order"], a["cpu_ms_per_order"]),
                peak_rss_mb=b["peak_rss_mb"],
                target="growth <= 1.3; peak RSS at 100k < 500 MB",
                met=(ratio(b["wall_ms_per_order"], a["wall_ms_per_order"]) or 9) <= 1.3
                and (b["peak_rss_mb"] < 500 if big == 100_000 else True),
            )
