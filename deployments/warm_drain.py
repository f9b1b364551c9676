"""The warm drain: ``shopsync serve`` runs the inbox drain in its own process (issue 16).

A drain started through the deployment (the receiver's event → Prefect's automation → the
runner) pays a new flow-run process first: an interpreter importing Prefect and the product,
about 3 s on an idle machine and up to a minute on a loaded one, before it claims anything. Under
``shopsync serve`` the receiver stores deliveries in the process that already has all of that
imported, so the drain flow runs right here, in a thread, as soon as a delivery is committed. It is
a Prefect flow run all the same (``sync-pending-orders``, named ``drain``, tagged ``warm``): its
state, one-line message, logs, artifacts and alerts are those of any drain run.

Only one warm drain runs at a time, and only when the inbox has due work that no live drain holds
(``webhooks.serve.drain_outlook``; a drain lingering elsewhere counts as live). A run that
Salesforce held (refused login, API budget reserved) or that crashed makes the next start wait,
doubling from ``BACKOFF_FIRST`` to ``BACKOFF_MAX`` (:func:`backoff_delay`); a run that settled
any order starts the count again. So a bad credential costs one failed run and one alert per
backoff step, never a run per poll. On shutdown the running drain is asked to stop claiming
(``flows.drain_linger.SHUTTING_DOWN``): it settles what it holds and ends its run.

The ``sync-pending-orders/webhook`` deployment stays: its hourly safety net, manual runs from the
UI, and receivers on other machines (``shopsync webhooks serve``, whose events its trigger
answers) still start drains through the runner. ``SHOPSYNC_SERVE_DRAIN=runner`` makes ``serve``
do the same (every drain in a flow-run process of its own).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from state import StateStore
from webhooks.serve import drain_outlook, due_work_waiting

if TYPE_CHECKING:
    from prefect.states import State

log = logging.getLogger("shopsync.warm_drain")

BACKOFF_FIRST = 30.0  # seconds before the first start after a held or crashed run
BACKOFF_MAX = 900.0  # the longest wait between held or crashed runs
WARM_TAG = "warm"  # marks a drain run that ran inside a serve process (deployments/recovery.py)
WARM_TAGS = ("shopsync", "webhooks", WARM_TAG)  # on the flow run only, not its task runs
LOOK_EVERY = 2.0  # seconds between looks at the inbox when nothing pokes (retries coming due)


@dataclass(frozen=True)
class DrainRun:
    """What the warm drain needs to know of a finished drain run."""

    settled: int  # orders settled: synced, unchanged, dead-lettered, retried later
    stopped: str | None = None  # why it stopped early (held, crashed), if it did


def backoff_delay(failures_in_a_row: int) -> float:
    """Seconds to wait before the next drain after this many held or crashed runs in a row."""
    if failures_in_a_row <= 0:
        return 0.0
    return min(BACKOFF_FIRST * 2 ** (failures_in_a_row - 1), BACKOFF_MAX)


def needs_backoff(run: DrainRun) -> bool:
    """A run that stopped early without settling anything: starting again at once would only
    repeat it (the login is still refused, the budget still reserved, the database still down)."""
    return run.stopped is not None and run.settled == 0


def run_drain_here(linger_seconds: float) -> DrainRun:
    """Run the drain flow in this thread (a Prefect flow run without a process start).

    The run is created with its tags first and then run, rather than called inside a
    ``tags(...)`` block: tags in context would pass to every task run, and Prefect takes a
    tag concurrency slot (an API call, up to seconds on a busy server) for each tagged task run.
    """
    from prefect import get_client
    from prefect.flow_engine import run_flow

    from flows.sync_pending import sync_pending_orders

    parameters = {"linger_seconds": linger_seconds}
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(
            sync_pending_orders, name="drain", parameters=parameters, tags=WARM_TAGS
        )
    finished = run_flow(sync_pending_orders, flow_run, parameters, return_type="state")
    state = cast("State[Any]", finished)
    return drain_run_of(state.type.value, state.result(raise_on_failure=False), state.message)


def drain_run_of(state_type: str, result: Any, message: str | None) -> DrainRun:
    """A :class:`DrainRun` from a drain flow run's final state type, result and message."""
    if not isinstance(result, dict):  # the flow raised (crashed) before it returned its counts
        return DrainRun(settled=0, stopped=f"{state_type}: {message or 'no message'}")
    outcomes = result.get("outcomes") or {}
    waiting = {"held", "rate_limited"}
    settled = sum(int(n) for kind, n in outcomes.items() if kind not in waiting)
    return DrainRun(settled=settled, stopped=result.get("stopped_because"))


class WarmDrain:
    """Starts drain runs in this process when the inbox has work, one at a time, with backoff.

    ``poke()`` is the receiver's hook after each stored delivery (an ``Event.set``: nothing on
    the request path waits); the thread also looks every ``every`` seconds, so retries that come
    due and a dead drain's expired claims are drained without a delivery to poke it.
    """

    def __init__(
        self,
        store: StateStore,
        run: Callable[[], DrainRun],
        every: float = LOOK_EVERY,
        clock: Callable[[], float] = time.monotonic,
        backoff: Callable[[int], float] = backoff_delay,
    ):
        self._store = store
        self._run = run
        self._backoff = backoff
        self._every = every
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures_in_a_row = 0
        self.not_before = 0.0  # monotonic time before which no drain starts (backoff)
        self.runs = 0

    def __enter__(self) -> WarmDrain:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the thread."""
        from flows.drain_linger import SHUTTING_DOWN

        SHUTTING_DOWN.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="warm-drain", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Ask a running drain to settle what it holds and end, then stop the thread."""
        from flows.drain_linger import SHUTTING_DOWN

        self._stop.set()
        SHUTTING_DOWN.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                log.warning("the warm drain did not end within %.0f s; its claims expire", timeout)
                return  # the flag stays up: that drain must still stop
        SHUTTING_DOWN.clear()  # it served its purpose; other drains in this process run as usual

    def poke(self, _delivery: object = None) -> None:
        """A delivery was stored: look at the inbox now (never blocks)."""
        self._wake.set()

    def should_start(self, now: datetime | None = None) -> bool:
        """Whether to start a drain now: due work that no live drain holds, and no backoff."""
        if self._clock() < self.not_before:
            return False
        now = now or datetime.now(UTC)
        return due_work_waiting(*drain_outlook(self._store, now), now)

    def step(self) -> bool:
        """One look, and one drain run if there is work; True when a run happened."""
        if not self.should_start():
            return False
        self.runs += 1
        try:
            outcome = self._run()
        except Exception as exc:  # the flow call itself failed (e.g. the Prefect API is down)
            log.warning("the warm drain could not run", exc_info=True)
            outcome = DrainRun(settled=0, stopped=f"{type(exc).__name__}: {exc}")
        self._after(outcome)
        return True

    def _after(self, outcome: DrainRun) -> None:
        if not needs_backoff(outcome):
            self.failures_in_a_row = 0
            self.not_before = 0.0
            return
        self.failures_in_a_row += 1
        delay = self._backoff(self.failures_in_a_row)
        self.not_before = self._clock() + delay
        log.warning(
            "drain stopped (%s); next warm drain in %s",
            outcome.stopped,
            timedelta(seconds=round(delay)),
        )

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.step()
            except Exception:
                log.warning("could not look at the inbox", exc_info=True)
                ran = False
            if ran:
                continue  # look again at once: work may have come in during the run
            self._wake.wait(self._wait_seconds())
            self._wake.clear()

    def _wait_seconds(self) -> float:
        return max(self._every, self.not_before - self._clock())  # a poke may wake it earlier
