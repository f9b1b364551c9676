"""Reconcile at scale: peak RSS and wall time of the product process, API calls per phase.

    python -m bench.reconcile_scale [--orders 100000] [--gap 0.03]

Three processes: the two sandboxes (one child process, seeded there), and the product, started
fresh for every phase so that its peak RSS (``ru_maxrss``) belongs to that phase alone. Phases
over the same window, through the ``reconcile`` flow (Prefect's ephemeral server runs in
yet another process):

1. ``repair-all``: an empty org, so every order is missing (Bulk 2.0 read and writes);
2. ``gaps``: the sandbox then deletes ``--gap`` of the Opportunities and drifts as many amounts
   (through its control store, not the product), and the flow repairs them;
3. ``rerun``: the same window again; expected to find and write nothing.

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

SHOP = "bench-shop.myshopify.com"
TOKEN = "shpat_bench_reconcile"  # noqa: S105 - the local sandbox's, not a secret
TIMEZONE = "America/New_York"
DAYS = 30


def _serve(orders: int) -> None:
    """Child: both sandboxes on loopback; commands on stdin (``gaps <rate>``, ``stats``)."""
    from sandbox.salesforce import SalesforceSandbox
    from sandbox.server import BackgroundServer
    from sandbox.shopify import ShopConfig, ShopifySandbox

    end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=4)
    shop = ShopifySandbox(
        shops=[
            ShopConfig(
                domain=SHOP,
                access_token=TOKEN,
                orders=orders,
                seed=2026,
                plan="plus",
                timezone=TIMEZONE,
                start=end - timedelta(days=DAYS),
                end=end,
            )
        ]
    )
    salesforce = SalesforceSandbox(api_limit=100_000_000)
    with BackgroundServer(salesforce.app) as sf, BackgroundServer(shop.app) as sh:
        print(json.dumps({"salesforce": sf.url, "shopify": sh.url}), flush=True)
        for line in sys.stdin:
            command = line.split()
            if not command:
                continue
            if command[0] == "gaps":
                answer = _make_gaps(salesforce, float(command[1]))
            elif command[0] == "stats":
                answer = salesforce.stats
                salesforce.core.stats.__init__()  # type: ignore[misc]
                salesforce.core.store.written.clear()
            else:
                break
            print(json.dumps(answer), flush=True)
    shop.close()


def _make_gaps(salesforce: Any, rate: float) -> dict[str, int]:
    """Delete ``rate`` of the Opportunities and drift the Amount of as many others."""
    store = salesforce.core.store
    rng = random.Random(7)
    ids = sorted(store.records["Opportunity"])
    chosen = rng.sample(ids, 2 * int(len(ids) * rate))
    half = len(chosen) // 2
    for rid in chosen[:half]:
        store.delete("Opportunity", rid)
    for rid in chosen[half:]:
        record = store.records["Opportunity"][rid]
        store.update("Opportunity", rid, {"Amount": float(record.get("Amount") or 0) + 1.0})
    return {"deleted": half, "drifted": len(chosen) - half}


def _product(start: str, end: str) -> None:
    """Child: one reconcile run in a fresh process; prints the summary, peak RSS and wall."""
    from flows.reconcile import reconcile

    began = time.monotonic()
    summary = reconcile(date.fromisoformat(start), date.fromisoformat(end))
    wall = time.monotonic() - began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        "RESULT "
        + json.dumps({"summary": summary, "peak_rss_mb": round(peak_kib / 1024, 1), "wall": wall})
    )


def _run_phase(env: dict[str, str], start: date, end: date) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.reconcile_scale", "--product", str(start), str(end)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"product run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def _ask(server: subprocess.Popen[str], command: str) -> Any:
    assert server.stdin is not None
    assert server.stdout is not None
    server.stdin.write(command + "\n")
    server.stdin.flush()
    return json.loads(server.stdout.readline())


def main() -> None:
    """Run the phases and print the measurements."""
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile_scale")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--gap", type=float, default=0.03)
    parser.add_argument("--serve", type=int)
    parser.add_argument("--product", nargs=2)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    if args.product:
        _product(*args.product)
        return
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.reconcile_scale", "--serve", str(args.orders)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        urls = json.loads(server.stdout.readline())
        data_dir = tempfile.mkdtemp(prefix="reconcile-bench-")
        env = {
            **os.environ,
            "SALESFORCE_LOGIN_URL": urls["salesforce"],
            "SALESFORCE_CLIENT_ID": "bench",
            "SALESFORCE_CLIENT_SECRET": "bench",
            "SHOPIFY_ADMIN_URL": urls["shopify"],
            "SHOPIFY_STORE_DOMAIN": SHOP,
            "SHOPIFY_ADMIN_API_ACCESS_TOKEN": TOKEN,
            "SHOPSYNC_DATA_DIR": data_dir,
            "SHOPSYNC_SHOP_TIMEZONE": TIMEZONE,
            "SHOPSYNC_RETRY_DELAYS_SECONDS": "0.5,1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
        today = datetime.now(UTC).date()
        start, end = today - timedelta(days=DAYS + 6), today + timedelta(days=1)
        phases: dict[str, Any] = {}
        for name in ("repair-all", "gaps", "rerun"):
            if name == "gaps":
                phases["gaps_seeded"] = _ask(server, f"gaps {args.gap}")
            _ask(server, "stats")
            measured = _run_phase(env, start, end)
            stats = _ask(server, "stats")
            summary = measured["summary"]
            phases[name] = {
                "peak_rss_mb": measured["peak_rss_mb"],
                "wall_seconds": round(measured["wall"], 1),
                "flow_duration_seconds": summary["duration_seconds"],
                "counts": summary["counts"],
                "listing": summary["listing"],
                "salesforce_read": summary["salesforce_read"],
                "salesforce_api_calls": stats["api_calls"]["total"],
                "salesforce_calls_by_kind": stats["api_calls"]["by_kind"],
                "salesforce_write_calls": summary["salesforce_write_calls"],
                "records_written": stats["records"],
                "shopify_calls": summary["shopify_calls"],
                "status": summary["status"],
            }
            print(json.dumps({name: phases[name]}), file=sys.stderr, flush=True)
        print(json.dumps({"orders": args.orders, "phases": phases}, indent=2))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
