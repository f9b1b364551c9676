"""The soak (issue 10): ``make soak [DURATION=seconds]`` →
``python -m tests.reliability.soak --duration N``.

Both sandboxes and the receiver on loopback, the Prefect test harness, and for ``--duration``
seconds: the Shopify sandbox sends ``orders/create`` webhooks at a bounded rate (with duplicates
and out-of-order deliveries) while orders already sent are edited, refunded and cancelled; random
Salesforce faults are switched on and off; the drain flow runs in a loop. At the end the faults
are cleared, the inbox is drained, the invariants are checked (every order in Salesforce or an
open dead letter with its reason, no external id twice on any object), dead letters are replayed
and Salesforce must be complete. Prints one JSON summary; exits 1 when an invariant failed.

Bounded: at most ``--max-orders`` orders (default 1,000) and ``--duration`` capped at 4 hours;
loopback only. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

MAX_DURATION = 4 * 3600

FAULTS: list[dict[str, Any]] = [
    {"kind": "401", "count": 2, "path": "/composite"},
    {"kind": "403", "rate": 0.3, "path": "/composite"},
    {"kind": "429", "rate": 0.3, "retry_after": 1},
    {"kind": "500", "rate": 0.3},
    {"kind": "503", "rate": 0.4},
    {"kind": "unable_to_lock_row", "rate": 0.3},
    {"kind": "unable_to_lock_row", "rate": 0.3, "scope": "record", "object": "Opportunity"},
    {"kind": "latency", "latency": 0.6, "rate": 0.2, "path": "/composite"},
    {"kind": "drop", "rate": 0.2},
    {"kind": "503"},  # a full outage for one period
]
SHOPIFY_FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 429, "rate": 0.3, "retry_after": 0.5, "api": "graphql"},
    {"kind": "status", "status": 503, "rate": 0.3, "api": "graphql"},
    {"kind": "drop", "rate": 0.3, "api": "graphql"},
]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=4.0, help="new orders per second")
    parser.add_argument("--max-orders", type=int, default=1000, help="hard cap on orders")
    parser.add_argument("--fault-period", type=float, default=8.0, help="seconds per fault state")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def _environment(data_dir: Path, salesforce_url: str, shopify_url: str) -> dict[str, str]:
    from tests.integration.conftest import SHOP, SHOP_TIMEZONE, SHOP_TOKEN, WEBHOOK_SECRET

    return {
        "SALESFORCE_LOGIN_URL": salesforce_url,
        "SALESFORCE_CLIENT_ID": "soak-client",
        "SALESFORCE_CLIENT_SECRET": "soak-secret",
        "SHOPIFY_ADMIN_URL": shopify_url,
        "SHOPIFY_STORE_DOMAIN": SHOP,
        "SHOPIFY_ADMIN_API_ACCESS_TOKEN": SHOP_TOKEN,
        "SHOPIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SHOPSYNC_DATA_DIR": str(data_dir),
        "SHOPSYNC_SHOP_TIMEZONE": SHOP_TIMEZONE,
        "SHOPSYNC_RETRY_DELAYS_SECONDS": "0.05,0.2",
        "SHOPSYNC_INBOX_BACKOFF_SECONDS": "0.5,1,2,4",
        "SHOPSYNC_SALESFORCE_TIMEOUT_SECONDS": "0.4",
    }


class FaultSwitch(threading.Thread):
    """Switches a random fault on for one period, off for the next, until stopped."""

    def __init__(self, salesforce: Any, shop: Any, period: float, rng: random.Random) -> None:
        super().__init__(daemon=True, name="soak-faults")
        self.salesforce, self.shop, self.period, self.rng = salesforce, shop, period, rng
        self.stop = threading.Event()
        self.timeline: list[dict[str, Any]] = []

    def run(self) -> None:
        on = False
        while not self.stop.wait(self.period):
            self.salesforce.clear_faults()
            self.shop.faults.clear()
            on = not on
            if not on:
                self.timeline.append({"at": round(time.monotonic(), 1), "fault": None})
                continue
            if self.rng.random() < 0.8:
                spec = {**self.rng.choice(FAULTS), "seed": self.rng.randrange(1000)}
                self.salesforce.fault(**spec)
            else:
                spec = {**self.rng.choice(SHOPIFY_FAULTS), "seed": self.rng.randrange(1000)}
                self.shop.faults.add(spec)
                spec = {"shopify": True, **spec}
            self.timeline.append({"at": round(time.monotonic(), 1), "fault": spec})
        self.salesforce.clear_faults()
        self.shop.faults.clear()


def _mutate(shop: Any, sent: int, rng: random.Random, counts: Counter[str]) -> None:
    """Edit, refund or cancel one order already sent (each emits its webhooks)."""
    if sent < 5:
        return
    order_id = shop.generator.order_id(rng.randrange(sent))
    record = shop.store.get(order_id)
    if record is None or record.get("cancelled") is not None:
        return
    choice = rng.random()
    try:
        if choice < 0.5:
            shop.update_order(
                order_id, {"total_price": f"{rng.randint(20, 900)}.{rng.randint(10, 99)}"}
            )
            counts["edited"] += 1
        elif choice < 0.85:
            shop.refund_order(order_id, amount="1.00")
            counts["refunded"] += 1
        else:
            shop.cancel_order(order_id, "customer")
            counts["cancelled"] += 1
    except (ValueError, KeyError):
        counts["mutation_refused"] += 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The soak itself; returns the summary."""
    from sandbox.salesforce import SalesforceSandbox
    from sandbox.server import BackgroundServer
    from sandbox.shopify import ShopConfig, ShopifySandbox
    from tests.integration.conftest import (
        EDGE_MIX,
        SHOP,
        SHOP_TIMEZONE,
        SHOP_TOKEN,
        WEBHOOK_SECRET,
        SalesforceHandle,
    )

    duration = min(max(args.duration, 1.0), MAX_DURATION)
    orders = max(1, min(args.max_orders, int(duration * args.rate)))
    rng = random.Random(args.seed)
    end = datetime.now(UTC) - timedelta(days=1)
    shop_config = ShopConfig(
        domain=SHOP,
        access_token=SHOP_TOKEN,
        orders=orders,
        seed=args.seed,
        plan="plus",
        webhook_secret=WEBHOOK_SECRET,
        timezone=SHOP_TIMEZONE,
        start=end - timedelta(days=30),
        end=end,
        mix=EDGE_MIX,
    )
    shopify_sandbox = ShopifySandbox(shops=[shop_config])
    salesforce_sandbox = SalesforceSandbox()
    import httpx

    with (
        tempfile.TemporaryDirectory(prefix="shopsync-soak-") as tmp,
        BackgroundServer(salesforce_sandbox.app) as sf_server,
        BackgroundServer(shopify_sandbox.app) as shop_server,
        httpx.Client(base_url=sf_server.url) as control,
    ):
        os.environ.update(_environment(Path(tmp) / "data", sf_server.url, shop_server.url))
        os.chdir(tmp)
        from prefect.testing.utilities import prefect_test_harness

        from tasks.settings import get_settings

        get_settings.cache_clear()
        salesforce = SalesforceHandle(salesforce_sandbox, sf_server.url, control)
        with prefect_test_harness(server_startup_timeout=120):
            summary = _soak(salesforce, shopify_sandbox.shop(SHOP), duration, orders, args, rng)
    shopify_sandbox.close()
    return summary


def _soak(
    salesforce: Any,
    shop: Any,
    duration: float,
    orders: int,
    args: argparse.Namespace,
    rng: random.Random,
) -> dict[str, Any]:
    from state import StateStore
    from tasks.settings import get_settings
    from tests.reliability import support

    settings = get_settings()
    store = StateStore.open(settings.state_url)
    log = support.DrainLog()
    mutations: Counter[str] = Counter()
    started = time.monotonic()
    failures: list[str] = []
    result: dict[str, Any] = {}
    with support.running_receiver(settings, store, shop):
        shop.webhooks.configure(
            duplicate_rate=0.05, out_of_order_rate=0.05, seed=args.seed, time_scale=0.001
        )
        sender = shop.send_order_events_in_background(
            topic="orders/create", start=0, count=orders, rate=orders / duration
        )
        switch = FaultSwitch(salesforce, shop, args.fault_period, rng)
        switch.start()
        while time.monotonic() - started < duration:
            support.drain_once(log, max_seconds=5)
            sent = min(orders, int((time.monotonic() - started) * orders / duration))
            for _ in range(2):
                _mutate(shop, sent, rng, mutations)
            time.sleep(0.5)
        switch.stop.set()
        switch.join(timeout=30)
        sender.join(timeout=120)
        salesforce.clear_faults()
        shop.faults.clear()
        flushed = shop.webhooks.flush(timeout=120)
    load_seconds = time.monotonic() - started
    ids = support.order_ids(shop, 0, orders)
    expected = support.syncable(shop, ids)
    try:
        support.settle(store, log, rounds=60)
        verdict = support.assert_invariants(store, salesforce, expected)
        result["after_faults"] = {
            "synced": len(verdict.synced),
            "dead_letters": len(verdict.dead),
            "dead_letter_reasons": dict(Counter(r.split(":")[0] for r in verdict.dead.values())),
            "lost": len(verdict.lost),
        }
        replay = support.replay_and_settle(store, log)
        result["replay"] = {k: replay[k] for k in ("replayed", "still_failing")}
        support.assert_complete(store, salesforce, shop, expected)
    except AssertionError as exc:
        failures.append(str(exc)[:2000])
    deliveries = shop.webhooks.deliveries()
    fired = Counter()
    for entry in switch.timeline:
        spec = entry["fault"]
        fired[
            "off"
            if spec is None
            else ("shopify " if spec.get("shopify") else "") + str(spec.get("kind"))
        ] += 1
    summary = {
        "ok": not failures and flushed,
        "duration_seconds": round(load_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        "orders": orders,
        "orders_expected_in_salesforce": len(expected),
        "mutations": dict(mutations),
        "webhooks": {
            "attempts": len(deliveries),
            "acknowledged": len({d["webhook_id"] for d in deliveries if d["ok"]}),
            "duplicates_sent": sum(1 for d in deliveries if d.get("duplicate")),
            "failed_attempts": sum(1 for d in deliveries if not d["ok"]),
            "sender_idle_at_end": flushed,
        },
        "inbox": store.counts().inbox,
        "fault_periods": dict(fired),
        "salesforce_faults_fired": salesforce.stats().get("faults_fired", {}),
        "salesforce_api_calls": salesforce.api_calls(),
        "drain": {
            "runs": log.runs,
            "failed_runs": len(log.failed_runs),
            "outcomes": dict(log.outcomes),
            "stops": dict(Counter(s.split(":")[0] for s in log.stops)),
        },
        **result,
        "invariants": {
            "every_order_in_salesforce_or_dead_letter": "after_faults" in result
            and result["after_faults"]["lost"] == 0,
            "no_duplicate_external_ids": support.duplicates(salesforce) == {},
            "complete_after_replay": not failures,
        },
        "failures": failures,
    }
    store.close()
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its JSON summary; 0 when every invariant held."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    args = _arguments(argv)
    summary = run(args)
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
