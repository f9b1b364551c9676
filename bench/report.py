"""Render ``bench/results/latest.json`` as the Markdown tables of ``BENCHMARKS.md``.

python -m bench.report [path/to/latest.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

LATEST = Path(__file__).with_name("results") / "latest.json"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _row(*cells: Any) -> str:
    return "| " + " | ".join(_fmt(c) for c in cells) + " |"


def render(report: dict[str, Any]) -> str:
    """The Markdown for one run."""
    rows = {(r["benchmark"], r["name"]): r for r in report["results"]}
    m = report["machine"]
    out = [
        f"Run: `{report['command']}` finished {report['finished_at']} in {report['wall_s']} s "
        f"on {m['nproc']} × {m['cpu']}, Python {m['python']}, load average (1/5/15 min) at "
        f"the end {', '.join(f'{x:.1f}' for x in m.get('loadavg_at_end', m['loadavg_at_start']))}.",
        "",
        "| Benchmark | Product | Baseline (same run) | Ratio | Target | Met |",
        "|---|---|---|---|---|---|",
    ]
    r = rows.get(("api_calls", "webhook_path_calls_per_order"))
    if r:
        out.append(
            _row(
                f"1. SF calls per order, webhook path ({r['orders_synced']} orders, 30 % repeat)",
                r["product_calls_per_order"],
                f"blueprint {_fmt(r['blueprint_calls_per_order'])}",
                f"{_fmt(r['product_over_blueprint'])}×",
                "≤ 1.1",
                r["met"],
            )
        )
    for (bench, name), r in rows.items():
        if bench == "api_calls" and name.startswith("repair_"):
            extra = " (extrapolated from " if r["blueprint_extrapolated"] else " ("
            extra += f"{_fmt(r['blueprint_orders_measured'])} orders measured)"
            out.append(
                _row(
                    f"1. SF calls to repair {_fmt(r['orders'])} missing orders",
                    r["product_calls"],
                    f"blueprint {_fmt(r['blueprint_calls'])}{extra}",
                    f"blueprint/product {_fmt(r['blueprint_over_product'])}×",
                    "≤ 50 (blueprint ≥ 40,000)",
                    r["met"],
                )
            )
    receiver_rows = [
        row
        for (benchmark, name), row in rows.items()
        if benchmark == "receiver" and "_vs_floor" in name
    ]
    for r in receiver_rows:
        kind = r["name"].split("_vs_floor")[0]
        p, f = r["product"], r["floor"]
        out.append(
            _row(
                f"3. Receiver `{kind}`, {r['connections']} connections: req/s · p50 / p99 ms "
                "· CPU ms/req",
                f"{_fmt(p['rps'])} · {_fmt(p['p50_ms'])} / {_fmt(p['p99_ms'])} · "
                f"{_fmt(p['cpu_ms_per_request'])}",
                f"floor {_fmt(f['rps'])} · {_fmt(f['p50_ms'])} / {_fmt(f['p99_ms'])} · "
                f"{_fmt(f['cpu_ms_per_request'])}",
                f"req/s {_fmt(r['rps_ratio'])}×, p99 {_fmt(r.get('p99_ratio'))}×, "
                f"CPU/req {_fmt(r['cpu_per_request_ratio'])}×",
                "≥ 0.7× floor req/s, p99 ≤ 2× floor's",
                r["met"],
            )
        )
    r = rows.get(("end_to_end", "webhook_to_opportunity"))
    if r:
        p, b = r["product"], r["baseline"]
        out.append(
            _row(
                "4. Webhook → Opportunity: orders/s · p50 / p95 s",
                f"{_fmt(p.get('orders_per_s'))} · {_fmt(p.get('p50_s'))} / {_fmt(p.get('p95_s'))}"
                f" ({_fmt(p.get('orders_synced'))} orders)",
                f"run-per-webhook {_fmt(b.get('orders_per_s'))} · {_fmt(b.get('p50_s'))} / "
                f"{_fmt(b.get('p95_s'))} ({_fmt(b.get('orders_synced'))} of "
                f"{_fmt(r['baseline_orders'])} orders)",
                f"{_fmt(r['throughput_ratio'])}×",
                "≥ 25/s and ≥ 50×",
                r["met"],
            )
        )
    r = rows.get(("workers", "workers_3_vs_1"))
    if r and "three_workers" in r:
        three, one = r["three_workers"], r["one_worker"]
        out.append(
            _row(
                f"5. Drain on PostgreSQL, {r['salesforce_latency_ms']} ms per SF request: "
                "orders/s · drains at once",
                f"3 workers {_fmt(three['orders_per_s'])} (syncing "
                f"{_fmt(three.get('syncing_orders_per_s'))}) · {_fmt(three['drains_at_once'])} "
                f"({_fmt(three['orders_synced'])} orders)",
                f"1 worker {_fmt(one['orders_per_s'])} (syncing "
                f"{_fmt(one.get('syncing_orders_per_s'))}) · {_fmt(one['drains_at_once'])}",
                f"{_fmt(r['throughput_ratio'])}× (syncing {_fmt(r.get('syncing_ratio'))}×)",
                "≥ 2×",
                r["met"],
            )
        )
    out += _flash_sale_rows(rows.get(("flash_sale", "adaptive_vs_per_order")))
    out += _trickle_rows(rows.get(("trickle", "receipt_to_opportunity")))
    recon = [r for (b, _), r in rows.items() if b == "reconcile" and "phase" in r]
    if recon:
        out += [
            "",
            "Benchmark 2, reconcile (product process only; sandboxes and Prefect server apart):",
            "",
            "| Orders | Phase | Found | Wall s | CPU s | Peak RSS MB | Shopify calls / cost "
            "| SF calls | CPU ms/order |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in recon:
            counts = r.get("counts") or {}
            found = ", ".join(f"{k} {v:,}" for k, v in counts.items() if v)
            calls = r.get("shopify_calls") or {}
            out.append(
                _row(
                    r["orders"],
                    r["phase"],
                    found,
                    r["wall_s"],
                    r["cpu_s"],
                    r["peak_rss_mb"],
                    f"{sum(calls.values()):,} / {_fmt(r.get('shopify_cost'))}",
                    r["salesforce_calls"],
                    r["cpu_ms_per_order"],
                )
            )
        growth = [r for (b, n), r in rows.items() if b == "reconcile" and n.startswith("growth")]
        if growth:
            out += [
                "",
                "| Growth | Wall/order | CPU/order | Peak RSS MB | Met |",
                "|---|---|---|---|---|",
            ]
            for r in growth:
                out.append(
                    _row(
                        r["name"],
                        f"{_fmt(r['wall_per_order_growth'])}×",
                        f"{_fmt(r['cpu_per_order_growth'])}×",
                        r["peak_rss_mb"],
                        r["met"],
                    )
                )
    errors = [
        r
        for r in report["results"]
        if r["name"] == "error" or str(r.get("status", "")).startswith("not measured")
    ]
    for r in errors:
        out.append(f"\n- `{r['benchmark']}`: {r.get('error') or r.get('status')}")
    return "\n".join(out) + "\n"


def _flash_sale_rows(r: dict[str, Any] | None) -> list[str]:
    """Benchmark 6, one row per figure: adaptive vs per_order."""
    if not r or "adaptive" not in r:
        return []
    a, p, met = r["adaptive"], r["per_order"], r["met_each"]
    figures = [
        (
            "orders/s (10 → 90 % visible)",
            "orders_per_s",
            "≥ 100 and ≥ 10× per_order",
            met["orders_per_s_100"] and met["ratio_10x"],
        ),
        ("SF calls per order", "calls_per_order", "≤ 0.05", met["calls_per_order_0.05"]),
        (
            "first webhook → first Opportunity, s",
            "first_opportunity_s",
            "≤ 3",
            met["first_opportunity_3s"],
        ),
        ("drain CPU ms per order", "drain_cpu_ms_per_order", "≤ 5", met["drain_cpu_5ms"]),
        ("all visible after, s", "all_visible_s", "", None),
        ("orders/s, first webhook → all visible", "overall_orders_per_s", "", None),
        ("first drain run: created · Running after, s", "first_run", "", None),
    ]
    for mode in (a, p):
        if mode.get("all_visible_s"):
            mode["overall_orders_per_s"] = round(mode["opportunities"] / mode["all_visible_s"], 2)
        if mode.get("first_run_created_s") is not None:
            mode["first_run"] = (
                f"{_fmt(mode['first_run_created_s'])} · {_fmt(mode.get('first_run_started_s'))}"
            )
    out = [
        "",
        f"Benchmark 6, flash sale: {_fmt(r['orders'])} orders, {r['salesforce_latency_ms']} ms "
        "per Salesforce call, through `shopsync serve` (same run):",
        "",
        "| Figure | `adaptive` | `per_order` | Ratio | Target | Met |",
        "|---|---|---|---|---|---|",
    ]
    for label, key, target, ok in figures:
        out.append(_row(label, a.get(key), p.get(key), _ratio(a.get(key), p.get(key)), target, ok))
    out.append(
        _row(
            "drain runs (by state)",
            _states(a.get("drain_runs")),
            _states(p.get("drain_runs")),
            None,
            "",
            None,
        )
    )
    return out


def _trickle_rows(r: dict[str, Any] | None) -> list[str]:
    """Benchmark 7: the trickle's latency and calls."""
    if not r or "p50_s" not in r:
        return []
    rows = [
        "",
        f"Benchmark 7, trickle: {_fmt(r['orders'])} orders, one every {_fmt(r['every_s'])} s, "
        f"{r['salesforce_latency_ms']} ms per Salesforce call, through `shopsync serve`:",
        "",
        "| drain | receipt → Opportunity p50 / p95 / max s | SF calls per order (all) | per lone "
        "order, median (mean): known · new · guest | drain runs (by state) | Target | Met |",
        "|---|---|---|---|---|---|---|",
        _trickle_row("warm (default)", r, "p50 ≤ 3 s; 1 known, 2 new", r["met"]),
    ]
    if r.get("runner"):
        rows.append(_trickle_row("runner (baseline)", r["runner"], "", None))
    return rows


def _trickle_row(label: str, r: dict[str, Any], target: str, met: bool | None) -> str:
    lone, n = r.get("calls_per_lone_order") or {}, r.get("lone_orders") or {}
    median = r.get("calls_per_lone_order_median") or {}
    return _row(
        label,
        f"{_fmt(r['p50_s'])} / {_fmt(r['p95_s'])} / {_fmt(r['max_s'])}",
        r["calls_per_order"],
        " · ".join(
            f"{_fmt(median.get(k))} ({_fmt(lone.get(k))}, {n.get(k, 0)})"
            for k in ("known", "new", "guest")
        ),
        _states(r.get("drain_runs")),
        target,
        met,
    )


def _ratio(a: Any, b: Any) -> str | None:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return None
    return f"{a / b:,.3g}×"


def _states(states: dict[str, int] | None) -> str:
    return ", ".join(f"{k.lower()} {v}" for k, v in (states or {}).items()) or "—"


def main(argv: list[str] | None = None) -> None:
    """Print the Markdown for the given (or the latest) results file."""
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0]) if args else LATEST
    print(render(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
