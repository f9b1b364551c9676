"""The product's side of a benchmark, run in a fresh process so its CPU and memory are its own.

    python -m bench.worker drain [--rounds N]
    python -m bench.worker drain-until --orders N --timeout S
    python -m bench.worker reconcile --start YYYY-MM-DD --end YYYY-MM-DD [--dry-run]
    python -m bench.worker blueprint-inbox --db PATH
    python -m bench.worker blueprint-repair --limit N

The settings come from the environment (``bench.common.product_env``) and ``PREFECT_API_URL``.
The line ``BENCH-RESULT {…}`` on stdout is one JSON object: the figures plus ``cpu_s``
and ``peak_rss_mb``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from bench.common import READY, RESULT, percentile, self_usage


def drain(rounds: int) -> dict[str, Any]:
    """Run the drain flow until nothing is pending or claimed."""
    from flows.outcome import run_flow
    from flows.sync_pending import sync_pending_orders
    from state import StateStore
    from tasks.settings import get_settings

    store = StateStore.open(get_settings().state_url)
    totals: Counter[str] = Counter()
    started = time.perf_counter()
    runs = 0
    for _ in range(rounds):
        runs += 1
        _, result = run_flow(
            sync_pending_orders, max_seconds=600, batch_size=100, lease_seconds=120
        )
        totals.update(result["outcomes"])
        depth = store.counts().inbox
        if not depth.get("pending") and not depth.get("claimed"):
            break
        time.sleep(0.5)
    return {
        "outcomes": dict(totals),
        "flow_runs": runs,
        "wall_s": round(time.perf_counter() - started, 3),
        "inbox": store.counts().inbox,
    }


def drain_until(orders: int, timeout: float) -> dict[str, Any]:
    """Drain back to back (as the trigger would) until ``orders`` orders are in the ledger."""
    from flows.outcome import run_flow
    from flows.sync_pending import sync_pending_orders
    from state import StateStore
    from tasks.settings import get_settings

    store = StateStore.open(get_settings().state_url)
    print(READY, flush=True)
    deadline = time.monotonic() + timeout
    runs = 0
    totals: Counter[str] = Counter()
    while time.monotonic() < deadline:
        counts = store.counts()
        if counts.ledger_orders >= orders:
            break
        depth = counts.inbox
        if not depth.get("pending") and not depth.get("claimed"):
            if sum(depth.values()) >= orders:
                break  # everything arrived and was settled (some not synced: dead or skipped)
            time.sleep(0.05)  # nothing (new) arrived yet
            continue
        runs += 1
        _, result = run_flow(sync_pending_orders, max_seconds=120, batch_size=50, lease_seconds=120)
        totals.update(result["outcomes"])
    return {"flow_runs": runs, "outcomes": dict(totals), **latencies(store.engine)}


def latencies(engine: Any) -> dict[str, Any]:
    """Per order: first receipt in the inbox → ledger entry (the Opportunity was written)."""
    from sqlalchemy import text

    with engine.connect() as connection:
        received = dict(
            connection.execute(
                text("SELECT order_id, MIN(received_at) FROM inbox GROUP BY order_id")
            ).all()
        )
        synced = dict(connection.execute(text("SELECT order_id, synced_at FROM ledger")).all())
    return summarise_latencies(received, synced)


def summarise_latencies(received: dict[str, Any], synced: dict[str, Any]) -> dict[str, Any]:
    """Throughput and latency percentiles from two ``order id → time`` maps."""

    def as_ts(value: Any) -> float:
        # The state store keeps naive UTC; raw SQL hands it back as text on SQLite.
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()

    pairs = [(as_ts(received[o]), as_ts(synced[o])) for o in synced if o in received]
    if not pairs:
        return {"orders_synced": 0}
    lat = [end - start for start, end in pairs]
    span = max(end for _, end in pairs) - min(start for start, _ in pairs)
    return {
        "orders_synced": len(pairs),
        "span_s": round(span, 3),
        "orders_per_s": round(len(pairs) / span, 3) if span > 0 else None,
        "p50_s": round(percentile(lat, 50) or 0, 3),
        "p95_s": round(percentile(lat, 95) or 0, 3),
        "max_s": round(max(lat), 3),
    }


def reconcile(start: str, end: str, dry_run: bool) -> dict[str, Any]:
    """Run the reconcile flow over a window of shop dates."""
    from flows.reconcile import reconcile as reconcile_flow

    started = time.perf_counter()
    result = reconcile_flow(
        start=date.fromisoformat(start), end=date.fromisoformat(end), dry_run=dry_run
    )
    return {"wall_s": round(time.perf_counter() - started, 3), "result": result}


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run the piece, print the JSON answer."""
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    sub = parser.add_subparsers(dest="what", required=True)
    d = sub.add_parser("drain")
    d.add_argument("--rounds", type=int, default=20)
    u = sub.add_parser("drain-until")
    u.add_argument("--orders", type=int, required=True)
    u.add_argument("--timeout", type=float, default=300)
    r = sub.add_parser("reconcile")
    r.add_argument("--start", required=True)
    r.add_argument("--end", required=True)
    r.add_argument("--dry-run", action="store_true")
    b = sub.add_parser("blueprint-inbox")
    b.add_argument("--db", required=True)
    p = sub.add_parser("blueprint-repair")
    p.add_argument("--limit", type=int, required=True)
    args = parser.parse_args(argv)
    if args.what == "drain":
        answer = drain(args.rounds)
    elif args.what == "drain-until":
        answer = drain_until(args.orders, args.timeout)
    elif args.what == "reconcile":
        answer = reconcile(args.start, args.end, args.dry_run)
    elif args.what == "blueprint-inbox":
        from bench.baselines.blueprint import sync_inbox

        answer = sync_inbox(args.db)
    else:
        from bench.baselines.blueprint import repair_missing

        answer = repair_missing(args.limit)
    print(RESULT + json.dumps({**answer, **self_usage()}, default=str), flush=True)


if __name__ == "__main__":
    main()
