"""``shopsync serve``'s warm drain (issue 16): when it starts a drain run, its backoff after held
or crashed runs, and its shutdown. A real SQLite state store; the drain run itself is a plain
function here (the integration test runs the real flow)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from deployments.warm_drain import (
    BACKOFF_MAX,
    DrainRun,
    WarmDrain,
    backoff_delay,
    drain_run_of,
    needs_backoff,
)
from flows.drain_linger import SHUTTING_DOWN, DrainClock
from state import Delivery, StateStore
from state.drain_marks import mark_drain_live
from state.models import utcnow

SHOP = "shop.myshopify.com"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def deliver(store: StateStore, n: int = 1) -> None:
    for i in range(n):
        store.add_delivery(
            Delivery(f"w{i}-{time.monotonic_ns()}", "orders/create", SHOP, b"{}", order_id=str(i))
        )


def draining(store: StateStore, outcome: DrainRun | None = None) -> tuple[list[int], object]:
    """A stand-in drain run: claims and completes everything due, returns ``outcome``."""
    calls: list[int] = []

    def run() -> DrainRun:
        claims = store.claim(max_orders=100, lease=timedelta(seconds=30), owner="test")
        store.complete([w for c in claims for w in c.webhook_ids])
        calls.append(len(claims))
        return outcome or DrainRun(settled=len(claims))

    return calls, run


def test_the_backoff_doubles_from_30_s_and_stops_at_15_minutes() -> None:
    assert [backoff_delay(n) for n in range(0, 7)] == [0, 30, 60, 120, 240, 480, 900]
    assert backoff_delay(40) == BACKOFF_MAX


def test_a_run_backs_off_only_when_it_stopped_early_without_settling_anything() -> None:
    assert needs_backoff(DrainRun(settled=0, stopped="INVALID_LOGIN: refused"))
    assert not needs_backoff(DrainRun(settled=3, stopped="REQUEST_LIMIT_EXCEEDED: reserve"))
    assert not needs_backoff(DrainRun(settled=0))  # nothing was due after all


def test_what_a_finished_drain_run_says() -> None:
    held = {"outcomes": {"held": 4}, "stopped_because": "INVALID_LOGIN: refused"}
    assert drain_run_of("FAILED", held, "held") == DrainRun(0, "INVALID_LOGIN: refused")
    letters = {"outcomes": {"created": 5, "dead_letter": 2}, "stopped_because": None}
    assert drain_run_of("FAILED", letters, "2 of 7 dead-lettered") == DrainRun(7, None)
    crashed = drain_run_of("CRASHED", RuntimeError("database is locked"), "boom")
    assert crashed == DrainRun(0, "CRASHED: boom")


def test_it_starts_a_run_only_when_due_work_waits(store: StateStore) -> None:
    calls, run = draining(store)
    warm = WarmDrain(store, run)
    assert not warm.step()  # empty inbox: no run
    deliver(store, 3)
    assert warm.step()
    assert calls == [3]
    assert not warm.step()  # drained


def test_it_leaves_work_to_a_live_drain_elsewhere(store: StateStore) -> None:
    calls, run = draining(store)
    warm = WarmDrain(store, run)
    deliver(store, 2)
    store.claim(max_orders=1, lease=timedelta(seconds=30), owner="other-drain")
    assert not warm.step()  # another drain holds claims: its next claim takes the rest
    store.add_delivery(Delivery("late", "orders/create", SHOP, b"{}", order_id="9"))
    mark_drain_live(store, "lingering-drain", utcnow() + timedelta(seconds=30))
    assert not warm.step()
    assert calls == []


def test_a_held_run_backs_off_and_a_run_that_settles_resets_the_backoff(
    store: StateStore,
) -> None:
    clock = FakeClock()
    outcomes = [DrainRun(0, "INVALID_LOGIN: refused"), DrainRun(0, "INVALID_LOGIN: refused")]
    runs: list[str] = []

    def run() -> DrainRun:
        runs.append("run")
        if outcomes:
            return outcomes.pop(0)  # held: the work stays pending (due at once, here)
        claims = store.claim(max_orders=100, lease=timedelta(seconds=30), owner="test")
        store.complete([w for c in claims for w in c.webhook_ids])
        return DrainRun(settled=len(claims))

    warm = WarmDrain(store, run, clock=clock)
    deliver(store)
    assert warm.step()
    assert not warm.step()  # backing off although the work is due
    clock.now += 29
    assert not warm.step()
    clock.now += 1
    assert warm.step()  # 30 s later: refused again
    clock.now += 59
    assert not warm.step()
    clock.now += 1
    assert warm.step()  # 60 s later: the login works now
    assert warm.failures_in_a_row == 0
    deliver(store)
    assert warm.step()  # no backoff any more
    assert len(runs) == 4


def test_a_run_that_raises_counts_as_a_failure_and_the_warm_drain_goes_on(
    store: StateStore,
) -> None:
    clock = FakeClock()

    def run() -> DrainRun:
        raise ConnectionError("Prefect API unreachable")

    warm = WarmDrain(store, run, clock=clock)
    deliver(store)
    assert warm.step()
    assert warm.failures_in_a_row == 1
    assert not warm.step()
    clock.now += 30
    assert warm.step()
    assert warm.failures_in_a_row == 2


def test_a_poke_starts_a_run_at_once_and_stop_ends_a_running_drain(store: StateStore) -> None:
    started = threading.Event()
    ended = threading.Event()

    def run() -> DrainRun:
        claims = store.claim(max_orders=100, lease=timedelta(seconds=30), owner="test")
        store.complete([w for c in claims for w in c.webhook_ids])
        started.set()
        clock = DrainClock(max_seconds=600, linger_seconds=600)
        while not clock.out_of_time():  # a lingering drain, until shutdown
            time.sleep(0.01)
        ended.set()
        return DrainRun(settled=len(claims))

    with WarmDrain(store, run, every=60) as warm:
        began = time.monotonic()
        deliver(store)
        warm.poke()
        assert started.wait(5)
        assert time.monotonic() - began < 2  # the poke, not the 60 s look
    assert ended.is_set()  # stop() asked the drain to end and waited for it
    assert not SHUTTING_DOWN.is_set()  # and lowered the flag once it had: other drains go on


def test_a_shutdown_ends_the_linger_and_the_claims() -> None:
    clock = DrainClock(max_seconds=600, linger_seconds=60)
    assert clock.lingering()
    assert not clock.out_of_time()
    SHUTTING_DOWN.set()
    try:
        assert not clock.lingering()
        assert clock.out_of_time()
    finally:
        SHUTTING_DOWN.clear()
