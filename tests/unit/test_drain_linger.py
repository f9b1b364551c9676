"""The drain's linger (issue 16): its clock, its "alive until" mark, and the nudger reading it.

Pure timing logic with injected clocks; the mark and the nudger on a real SQLite state store.
"""

from __future__ import annotations

import time
from datetime import timedelta

from flows.drain_linger import DrainClock, DrainCpu, Linger
from state import Delivery, StateStore
from state.drain_marks import clear_drain_mark, drain_live_until, mark_drain_live
from state.models import utcnow
from webhooks.serve import DrainNudger, NudgeMemory

SHOP = "shop.myshopify.com"


def test_the_linger_window_runs_from_the_last_work_and_never_past_the_budget() -> None:
    clock = DrainClock(max_seconds=100, linger_seconds=20, now=0)
    assert clock.lingering(now=19)
    assert not clock.lingering(now=20)
    clock.worked(now=50)
    assert clock.lingering(now=69)
    assert not clock.lingering(now=70)
    clock.worked(now=95)
    assert clock.linger_until() == 100  # the budget caps it
    assert clock.out_of_time(now=100)
    assert not clock.out_of_time(now=99.9)


def test_without_a_linger_window_the_drain_stops_at_the_first_empty_claim() -> None:
    clock = DrainClock(max_seconds=100, linger_seconds=0, now=0)
    assert not clock.lingering(now=0)


def test_the_drain_cpu_splits_start_up_from_work() -> None:
    cpu = DrainCpu()
    assert cpu.as_dict()["cpu_s_working"] is None  # no work: no per-order figure
    cpu.first_claim()
    cpu.worked()
    figures = cpu.as_dict()
    assert figures["cpu_s_before_first_claim"] is not None
    assert figures["cpu_s_working"] is not None
    assert figures["cpu_s_working"] >= 0
    assert figures["cpu_s_total"] >= figures["cpu_s_before_first_claim"]


def test_marks_are_per_drain_and_run_out(store: StateStore) -> None:
    now = utcnow()
    assert drain_live_until(store, now) is None
    mark_drain_live(store, "a", now + timedelta(seconds=5))
    mark_drain_live(store, "b", now + timedelta(seconds=9))
    until = drain_live_until(store, now)
    assert until is not None
    assert until > now + timedelta(seconds=8)
    clear_drain_mark(store, "b")
    until = drain_live_until(store, now)
    assert until is not None
    assert until < now + timedelta(seconds=6)
    assert drain_live_until(store, now + timedelta(seconds=6)) is None  # "a" ran out


def test_a_lingering_drain_marks_itself_and_unmarks_before_its_last_claim(
    store: StateStore,
) -> None:
    clock = DrainClock(max_seconds=600, linger_seconds=300)
    with Linger(store, "drain-1", clock) as linger:
        assert linger.due()  # before any empty claim: always claim
        assert linger.idle()  # the window is open: wait and look again
        assert drain_live_until(store, utcnow()) is not None
        assert not linger.due()  # nothing is due: no claim (no write lock) this time
        store.add_delivery(Delivery("w1", "orders/create", SHOP, b"{}", order_id="1"))
        assert linger.due()
        clock.worked(now=time.monotonic() - 301)  # the window has closed
        assert linger.idle()  # one last claim ...
        assert drain_live_until(store, utcnow()) is None  # ... after the mark is gone
        assert linger.due()
        assert not linger.idle()  # the last claim found nothing: stop
    assert linger.lingered_s > 0


def test_a_drain_that_never_lingered_stops_without_touching_the_marks(store: StateStore) -> None:
    clock = DrainClock(max_seconds=600, linger_seconds=0)
    with Linger(store, "drain-1", clock) as linger:
        assert not linger.idle()
    assert linger.lingered_s == 0


def test_the_nudger_counts_a_lingering_drain_as_live_until_its_mark_ends(
    store: StateStore,
) -> None:
    asked: list[int] = []
    nudger = DrainNudger(store, lambda: asked.append(1), memory=NudgeMemory())
    now = utcnow()
    mark_drain_live(store, "drain-1", now + timedelta(seconds=30))
    store.add_delivery(Delivery("w1", "orders/create", SHOP, b"{}", order_id="1"))
    assert not nudger.check()  # the lingering drain claims it within a moment
    assert nudger.check(now=now + timedelta(seconds=31))  # a killed drain's mark ran out
    assert asked == [1]


def test_the_nudger_asks_for_a_drain_once_the_lingering_drain_unmarked(
    store: StateStore,
) -> None:
    asked: list[int] = []
    nudger = DrainNudger(store, lambda: asked.append(1), memory=NudgeMemory())
    mark_drain_live(store, "drain-1", utcnow() + timedelta(seconds=30))
    clear_drain_mark(store, "drain-1")
    store.add_delivery(Delivery("w1", "orders/create", SHOP, b"{}", order_id="1"))
    assert nudger.check()
    assert asked == [1]
