"""Several workers and receivers at once, end to end (issue 17).

A Prefect server on PostgreSQL, a ``process`` work pool with 3 workers running the deployments of
``deployments/prefect.yaml`` (drain concurrency limit 3), 2 receiver processes writing into one
PostgreSQL inbox. A burst of orders is sent to both receivers (each receiver has its own
subscription, so every order arrives at least twice; the sender also repeats 20 % of deliveries)
while drain runs go several at once. Every order must end exactly once in Salesforce (SOQL), with
no inbox row claimed twice and no acknowledged delivery lost; then the same with one worker (and
the flow runs it started) and one receiver SIGKILLed mid-burst.

Bounded: loopback only, a few minutes. ``SHOPSYNC_E2E_ORDERS`` overrides the burst size (2,000).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.cluster import Cluster, cluster, max_overlap, wait_until
from sandbox.server import BackgroundServer, free_port
from sandbox.shopify import ShopConfig, ShopifySandbox
from state import StateStore
from tests.integration.conftest import EDGE_MIX, SHOP, SHOP_TIMEZONE, WEBHOOK_SECRET
from tests.reliability.support import KEY_FIELDS, Receiver, duplicates, record

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]

ORDERS = int(os.environ.get("SHOPSYNC_E2E_ORDERS", "2000"))
TOKEN = "shpat_multi_worker"
WORKERS, RECEIVERS, DRAINS = 3, 2, 3


@pytest.fixture(scope="module")
def shop() -> Iterator[tuple[Any, str]]:
    """A shop with two bursts' worth of orders (the session shop has 500)."""
    end = datetime.now(UTC) - timedelta(days=1)
    config = ShopConfig(
        domain=SHOP, access_token=TOKEN, orders=2 * ORDERS, seed=17, plan="plus",
        webhook_secret=WEBHOOK_SECRET, timezone=SHOP_TIMEZONE,
        start=end - timedelta(days=30), end=end, mix=EDGE_MIX,
    )  # fmt: skip
    sandbox = ShopifySandbox(shops=[config])
    with BackgroundServer(sandbox.app) as server:
        yield sandbox.shop(SHOP), server.url
    sandbox.close()


def product_env(salesforce_url: str, shop_url: str, data_dir: Path) -> dict[str, str]:
    return {
        "SALESFORCE_LOGIN_URL": salesforce_url,
        "SALESFORCE_CLIENT_ID": "integration-client",
        "SALESFORCE_CLIENT_SECRET": "integration-secret",
        "SHOPIFY_ADMIN_URL": shop_url,
        "SHOPIFY_STORE_DOMAIN": SHOP,
        "SHOPIFY_ADMIN_API_ACCESS_TOKEN": TOKEN,
        "SHOPIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SHOPSYNC_DATA_DIR": str(data_dir),
        "SHOPSYNC_SHOP_TIMEZONE": SHOP_TIMEZONE,
        "SHOPSYNC_RETRY_DELAYS_SECONDS": "0.05,0.1,0.2",
        "SHOPSYNC_INBOX_BACKOFF_SECONDS": "0.5,1,2",
        # A killed worker's claims come free this soon (the default is 300 s).
        "SHOPSYNC_INBOX_LEASE_SECONDS": "15",
    }


def soql_order_ids(salesforce_url: str) -> Counter[str]:
    """Opportunities per Shopify order id, read through the REST query API (paged)."""
    token = httpx.post(
        f"{salesforce_url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "integration-client",
            "client_secret": "integration-secret",
        },
    ).json()
    base, headers = token["instance_url"], {"Authorization": f"Bearer {token['access_token']}"}
    key = KEY_FIELDS["Opportunity"]
    url = f"{base}/services/data/v62.0/query"
    query = f"SELECT {key} FROM Opportunity"  # noqa: S608 (a constant field name)
    page = httpx.get(url, params={"q": query}, headers=headers).json()
    found: Counter[str] = Counter()
    while True:
        found.update(str(r[key]) for r in page["records"] if r.get(key))
        if page.get("done", True):
            return found
        page = httpx.get(f"{base}{page['nextRecordsUrl']}", headers=headers).json()


def acknowledged(shop: Any) -> set[str]:
    """Webhook ids the sender saw answered 200 (Shopify's "delivered")."""
    return {a["webhook_id"] for a in shop.webhooks.deliveries() if a["ok"]}


def burst(shop: Any, start: int, count: int) -> threading.Thread:
    """Send ``orders/create`` for ``count`` generated orders in the background."""
    return shop.send_order_events_in_background(topic="orders/create", start=start, count=count)


def settled(store: StateStore, expected: set[str]) -> bool:
    depth = store.counts().inbox
    if depth.get("pending") or depth.get("claimed"):
        return False
    return expected <= set(store.ledger_many(expected))


def kill_a_worker_holding_claims(running: Cluster, store: StateStore, done_before: int) -> dict:
    """Once a quarter of the burst is done, SIGKILL a worker whose drain holds claimed rows (the
    lease owner names the claiming process), with its flow runs; return what its drains held.

    The worker's flow runs are frozen (SIGSTOP) before their claims are read, so they cannot
    settle them between the look and the kill."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if store.counts().inbox.get("done", 0) < done_before + ORDERS // 4:
            continue
        claimed = store.inbox_rows(status="claimed", limit=1_000_000)
        for owner in {str(r.lease_owner) for r in claimed}:
            worker = running.worker_of(owner_pid(owner))
            if worker is None:
                continue
            flow_runs = running.flow_runs_of(worker)
            signal_all(flow_runs, signal.SIGSTOP)
            held = [
                r.webhook_id
                for r in store.inbox_rows(status="claimed", limit=1_000_000)
                if owner_pid(str(r.lease_owner)) in flow_runs
            ]
            if held:
                running.kill_worker(worker)
                return {"killed_worker": worker, "held_by_the_killed_runs": held}
            signal_all(flow_runs, signal.SIGCONT)
    raise AssertionError("no worker's drain held claims during the burst")


def owner_pid(owner: str) -> int:
    """The process id in a lease owner (``host:pid:random``)."""
    return int(owner.split(":")[1])


def signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def run_burst(
    running: Cluster,
    receivers: list[Receiver],
    shop: Any,
    store: StateStore,
    start: int,
    *,
    kill: bool,
    salesforce: Any = None,
) -> dict[str, Any]:
    """One burst while drains run; optionally SIGKILL worker 0 and receiver 1 mid-burst.

    For the kill, every Salesforce call waits 300 ms (the sandbox's ``latency`` fault, as a real
    org answers) until the worker is dead: on loopback a drain holds its claims for milliseconds
    and the kill could miss them; at real latency a drain holds them for a second or more."""
    expected = {str(shop.generator.order_id(i)) for i in range(start, start + ORDERS)}
    if kill:
        salesforce.fault(kind="latency", latency=0.3)
    sender = burst(shop, start, ORDERS)
    running.start_drains(DRAINS)
    killed: dict[str, Any] = {}
    if kill:
        killed = kill_a_worker_holding_claims(running, store, store.counts().inbox.get("done", 0))
        salesforce.clear_faults()
        receivers[1].kill()
        time.sleep(1.0)
        receivers[1].start(extra_env=running.env)  # its supervisor restarts it
    sender.join(timeout=600)
    assert shop.webhooks.flush(timeout=300), "the webhook sender did not go idle"
    done = wait_until(lambda: settled(store, expected), 600, every=5.0, tick=running.nudge)
    assert done, f"not drained: {store.counts()}"
    return {"expected": expected, **killed}


def test_three_workers_two_receivers_every_order_once_with_and_without_sigkill(
    postgres_server: Any, salesforce_server: Any, shop: tuple[Any, str], tmp_path: Path
) -> None:
    salesforce_server.sandbox.reset()
    shopify, shop_url = shop
    env = product_env(salesforce_server.url, shop_url, tmp_path / "data")
    with cluster(
        tmp_path / "cluster", postgres_server, env, workers=WORKERS, drain_concurrency=DRAINS
    ) as running:
        store = StateStore.open(running.state_url)
        receivers = [Receiver(free_port(), tmp_path / f"receiver-{i}.log") for i in range(2)]
        try:
            for receiver in receivers:
                receiver.start(extra_env=running.env)
                shopify.webhooks.subscribe("orders/create", f"{receiver.url}/webhooks/shopify")
            shopify.webhooks.configure(time_scale=0.001, timeout=5.0, duplicate_rate=0.2)

            first = run_burst(running, receivers, shopify, store, 0, kill=False)
            rows = store.inbox_rows(limit=1_000_000)
            claimed_twice = [r.webhook_id for r in rows if r.attempts != 1]
            # The last drains may still be finishing (reporting their end) when the inbox is empty.
            assert wait_until(running.drains_idle, 180, every=2.0), "drain runs never finished"
            overlap = max_overlap(running.drain_runs())
            check_salesforce(salesforce_server, store, first["expected"], shopify)
            assert claimed_twice == []
            assert overlap >= 2, "the drains never ran at the same time"
            report("burst", orders=ORDERS, inbox_rows=len(rows), drains_at_once=overlap)

            second = run_burst(
                running, receivers, shopify, store, ORDERS, kill=True, salesforce=salesforce_server
            )
            everything = first["expected"] | second["expected"]
            check_salesforce(salesforce_server, store, everything, shopify)
            held = set(second["held_by_the_killed_runs"])
            attempts = {r.webhook_id: r.attempts for r in store.inbox_rows(limit=1_000_000)}
            # The dead drains' rows were taken over by others after their lease expired.
            assert min(attempts[w] for w in held) >= 2
            report(
                "burst_with_sigkill",
                orders=ORDERS,
                inbox_rows=len(attempts) - len(rows),
                killed_worker=second["killed_worker"],
                rows_held_by_the_killed_drains=len(held),
                other_rows_claimed_more_than_once=sum(
                    1 for w, n in attempts.items() if n > 1 and w not in held
                ),
                drains_at_once=max_overlap(running.drain_runs()),
            )
        finally:
            for receiver in receivers:
                receiver.stop()
            store.close()


def report(case: str, **counts: Any) -> None:
    """The counts for the issue note: on stderr (``pytest -s``) and in ``$RELIABILITY_RECORD``."""
    record(f"multi_worker_{case}", **counts)
    sys.stderr.write(f"\n{case}: {json.dumps(counts, default=str)}\n")


def check_salesforce(salesforce: Any, store: StateStore, expected: set[str], shop: Any) -> None:
    """Every expected order exactly once in Salesforce; every acknowledged delivery stored and
    settled; no dead letter."""
    per_order = soql_order_ids(salesforce.url)
    assert expected - set(per_order) == set(), "orders missing in Salesforce"
    assert {oid: n for oid, n in per_order.items() if n > 1} == {}
    assert duplicates(salesforce) == {}
    stored = {r.webhook_id: r.status for r in store.inbox_rows(limit=1_000_000)}
    assert acknowledged(shop) - set(stored) == set(), "an acknowledged delivery was lost"
    assert {s for s in stored.values()} <= {"done"}
    assert store.dead_letters() == []
