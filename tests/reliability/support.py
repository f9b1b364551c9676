"""Shared helpers of the reliability suite: send orders through the webhook path, drain, settle,
replay, and the one invariant check every fault, crash and soak case ends with.

Not collected by pytest (no ``test_`` prefix); imported by the tests and by ``soak.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from sandbox.server import BackgroundServer
from state import StateStore
from state.models import utcnow
from tasks.core.topics import HANDLED_TOPICS
from tasks.settings import Settings
from webhooks.app import create_app
from webhooks.serve import receiver_config

CLI = [sys.executable, "-m", "deployments.cli"]

# When set, each scenario appends its counts here (JSON lines) for RELIABILITY.md.
RECORD_ENV = "RELIABILITY_RECORD"

# The external-id field of each object (the blueprint defaults, DESIGN.md §3).
KEY_FIELDS = {
    "Account": "External_Shopify_Account_ID__c",
    "Contact": "External_Shopify_ID__c",
    "Opportunity": "External_Shopify_Order_ID__c",
}


class Receiver:
    """The receiver as a CLI subprocess on a fixed loopback port."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60, extra_env: dict[str, str] | None = None) -> None:
        """Start ``shopsync webhooks serve`` with this process's environment (the ``product``
        settings) and the Prefect API this process uses; wait until /healthz answers."""
        from prefect.settings import PREFECT_API_URL

        env = dict(os.environ)
        env.pop("PREFECT_API_URL", None)
        if PREFECT_API_URL.value():
            env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
        env.update(extra_env or {})
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*CLI, "webhooks", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the receiver did not come up")

    def alive(self) -> bool:
        """The process runs and /healthz answers 200."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            return httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def record(case: str, **counts: Any) -> None:
    """Append a scenario's counts to ``$RELIABILITY_RECORD`` (no-op when unset)."""
    target = os.environ.get(RECORD_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps({"case": case, **counts}, default=str) + "\n")


@contextmanager
def running_receiver(settings: Settings, store: StateStore, shop: Any) -> Iterator[str]:
    """The receiver on uvicorn over loopback, subscribed to every handled topic of ``shop``."""
    app = create_app(receiver_config(settings), store)
    with BackgroundServer(app) as server:
        url = f"{server.url}/webhooks/shopify"
        subscribe(shop, url)
        yield url


def subscribe(shop: Any, url: str, time_scale: float = 0.0001) -> None:
    """Subscribe ``url`` to every handled topic; compress the sender's retry schedule."""
    for topic in sorted(HANDLED_TOPICS):
        shop.webhooks.subscribe(topic, url)
    shop.webhooks.configure(time_scale=time_scale, timeout=5.0)


def order_ids(shop: Any, start: int, count: int) -> list[str]:
    """The ids of generated orders ``[start, start+count)``."""
    return [str(shop.generator.order_id(i)) for i in range(start, start + count)]


def syncable(shop: Any, ids: Iterable[str]) -> set[str]:
    """The orders the configured mapping syncs (all, unless ``skip_test_orders`` is on)."""
    from tasks.settings import get_settings

    if not get_settings().mapping.skip_test_orders:
        return set(ids)
    return {oid for oid in ids if not shop.rest(shop.store.get(int(oid))).get("test")}


def send_creates(shop: Any, start: int, count: int, timeout: float = 120) -> list[str]:
    """Send ``orders/create`` for generated orders and wait until the sender is idle."""
    assert shop.send_order_events("orders/create", start, count) == count
    assert shop.webhooks.flush(timeout=timeout), "the webhook sender did not go idle"
    return order_ids(shop, start, count)


@dataclass
class DrainLog:
    """What the drain runs of one scenario did."""

    outcomes: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    failed_runs: list[str] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)


def drain_once(log: DrainLog, max_seconds: float = 60) -> None:
    """One run of the drain flow; a failed run is recorded (the schedule would run it again)."""
    from flows.outcome import run_flow
    from flows.sync_pending import sync_pending_orders

    log.runs += 1
    try:
        _, result = run_flow(
            sync_pending_orders, max_seconds=max_seconds, batch_size=50, lease_seconds=30
        )
    except Exception as exc:  # the flow failing loudly is allowed; losing work is not
        log.failed_runs.append(f"{type(exc).__name__}: {exc}"[:300])
        return
    log.outcomes.update(result["outcomes"])
    if result["stopped_because"]:
        log.stops.append(result["stopped_because"])


def open_inbox(store: StateStore) -> int:
    """Deliveries still pending or claimed."""
    depth = store.counts().inbox
    return depth.get("pending", 0) + depth.get("claimed", 0)


def make_due(store: StateStore) -> int:
    """Time passes: every pending delivery's backoff (rate-limit waits included) is over."""
    pending = [row.webhook_id for row in store.inbox_rows(status="pending", limit=100_000)]
    if pending:
        store.retry_later(pending, at=utcnow(), error="test: backoff elapsed")
    return len(pending)


def drain_for(store: StateStore, log: DrainLog, seconds: float, rounds: int = 20) -> None:
    """Drain while faults are on: a bounded number of runs, letting short backoffs come due
    (a delivery held for longer, e.g. rate-limited for a minute, is left pending)."""
    deadline = time.monotonic() + seconds
    for _ in range(rounds):
        drain_once(log, max_seconds=max(1.0, deadline - time.monotonic()))
        due = store.next_due_at()
        if not open_inbox(store) or due is None or time.monotonic() >= deadline:
            return
        wait = (due - utcnow()).total_seconds()
        if wait > 2.0:
            return
        time.sleep(max(0.05, wait))


def settle(store: StateStore, log: DrainLog, rounds: int = 30) -> None:
    """Drain until the inbox holds nothing pending or claimed, advancing backoffs as needed."""
    for _ in range(rounds):
        if not open_inbox(store):
            return
        make_due(store)
        drain_once(log)
    if not open_inbox(store):
        return
    raise AssertionError(f"inbox not drained after {rounds} runs: {store.counts()}, {log}")


def duplicates(salesforce: Any) -> dict[str, dict[str, int]]:
    """External ids that appear on more than one record, per object, and e-mails shared by an
    unkeyed Contact and any other Contact (a twin the e-mail adoption should have prevented;
    keyed Contacts of different customers may share one). Should be empty."""
    found: dict[str, dict[str, int]] = {}
    for sobject, key in KEY_FIELDS.items():
        counts = Counter(r.get(key) for r in salesforce.records(sobject) if r.get(key))
        twice = {k: n for k, n in counts.items() if n > 1}
        if twice:
            found[sobject] = twice
    contacts = [r for r in salesforce.records("Contact") if r.get("Email")]
    emails = Counter(str(r["Email"]).lower() for r in contacts)
    unkeyed = {str(r["Email"]).lower() for r in contacts if not r.get(KEY_FIELDS["Contact"])}
    twins = {email: n for email, n in emails.items() if n > 1 and email in unkeyed}
    if twins:
        found["Contact(email)"] = twins
    return found


def opportunities(salesforce: Any) -> dict[str, dict[str, Any]]:
    """Opportunities by Shopify order id (assumes no duplicates; checked separately)."""
    key = KEY_FIELDS["Opportunity"]
    return {str(r[key]): r for r in salesforce.records("Opportunity") if r.get(key)}


@dataclass
class Verdict:
    """Where every expected order ended up."""

    synced: set[str]
    dead: dict[str, str]
    pending: set[str]
    lost: set[str]


def account(store: StateStore, salesforce: Any, expected: set[str]) -> Verdict:
    """Classify every expected order: in Salesforce, dead-lettered, still in the inbox, or lost."""
    synced = set(opportunities(salesforce)) & expected
    dead = {
        d.order_id: f"{d.error_code}: {d.message}"
        for d in store.dead_letters()
        if d.order_id in expected
    }
    pending = {
        str(row.order_id)
        for status in ("pending", "claimed")
        for row in store.inbox_rows(status=status, limit=100_000)
    } & expected
    lost = expected - synced - set(dead) - pending
    return Verdict(synced, dead, pending, lost)


def assert_invariants(
    store: StateStore, salesforce: Any, expected: set[str], *, allow_pending: bool = False
) -> Verdict:
    """Every order is in Salesforce or in an open dead letter with its reason; no external id
    twice on any object; with ``allow_pending`` (faults still on), the inbox may hold some."""
    verdict = account(store, salesforce, expected)
    assert verdict.lost == set(), f"orders neither in Salesforce nor dead-lettered: {verdict}"
    if not allow_pending:
        assert verdict.pending == set(), f"orders still in the inbox: {verdict.pending}"
    for letter in store.dead_letters():
        # The reason is the message (Salesforce's or ours); some parse errors carry no code.
        assert letter.message.strip(), letter
        assert letter.stage, letter
    assert duplicates(salesforce) == {}
    return verdict


def assert_complete(store: StateStore, salesforce: Any, shop: Any, expected: set[str]) -> None:
    """Salesforce holds every expected order exactly once, with Shopify's current amount, and
    no dead letter is open."""
    assert duplicates(salesforce) == {}
    synced = opportunities(salesforce)
    assert expected - set(synced) == set()
    wrong = {}
    for oid in expected:
        truth = Decimal(str(shop.rest(shop.store.get(int(oid)))["current_total_price"]))
        if Decimal(str(synced[oid]["Amount"])) != truth:
            wrong[oid] = (synced[oid]["Amount"], truth)
    assert wrong == {}
    assert [d.order_id for d in store.dead_letters() if d.order_id in expected] == []


def replay_and_settle(store: StateStore, log: DrainLog) -> dict[str, Any]:
    """Once faults clear: replay every open dead letter, then drain what is left."""
    from flows.outcome import run_flow
    from flows.replay import replay_dead_letters

    _, result = run_flow(replay_dead_letters)
    settle(store, log)
    return result
