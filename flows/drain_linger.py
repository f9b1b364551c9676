"""The drain's loop timing (issue 16): its time budget, the linger after the inbox empties
(with the "alive until" mark the receiver's nudger reads), and its own CPU per milestone."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from state import StateStore
from state.drain_marks import clear_drain_mark, mark_drain_live
from state.models import utcnow

LINGER_POLL_SECONDS = 0.25  # how often a lingering drain looks for new work
# Set when the process hosting drains in threads is shutting down (``shopsync serve``'s warm
# drain, deployments/warm_drain.py): a drain claims nothing more, stops lingering, settles what it
# holds and ends its run, instead of being cut off mid-batch.
SHUTTING_DOWN = threading.Event()


@dataclass
class DrainCpu:
    """This process's CPU time (``time.process_time``) at the drain's milestones: what the
    drain itself costs per order, apart from the process start (imports, Prefect's engine)."""

    at_first_claim: float | None = None
    at_last_work: float | None = None

    def first_claim(self) -> None:
        """A claim found work: the first one starts the drain's own clock."""
        if self.at_first_claim is None:
            self.at_first_claim = time.process_time()

    def worked(self) -> None:
        """A batch was synced and settled."""
        self.at_last_work = time.process_time()

    def as_dict(self) -> dict[str, float | None]:
        """Seconds of CPU: before the first claim (start-up), first claim → last batch
        settled (the drain's work), and the process's total so far."""
        now = time.process_time()
        first, last = self.at_first_claim, self.at_last_work
        return {
            "cpu_s_before_first_claim": _rounded(first),
            "cpu_s_working": _rounded(last - first if first is not None and last else None),
            "cpu_s_total": _rounded(now),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class DrainClock:
    """The drain's time budget (``max_seconds``) and its linger window after the last work."""

    def __init__(self, max_seconds: float, linger_seconds: float, now: float | None = None):
        self.start = time.monotonic() if now is None else now
        self.deadline = self.start + max_seconds
        self.linger = max(0.0, linger_seconds)
        self.last_work = self.start

    def worked(self, now: float | None = None) -> None:
        """A batch was synced: the linger window starts again."""
        self.last_work = time.monotonic() if now is None else now

    def out_of_time(self, now: float | None = None) -> bool:
        """Whether ``max_seconds`` is spent or the process is shutting down (no new claims)."""
        if SHUTTING_DOWN.is_set():
            return True
        return (time.monotonic() if now is None else now) >= self.deadline

    def linger_until(self) -> float:
        """When the drain stops looking for new work if none comes (monotonic)."""
        return min(self.last_work + self.linger, self.deadline)

    def lingering(self, now: float | None = None) -> bool:
        """Whether to keep looking for new work now (the window since the last work is open)."""
        if SHUTTING_DOWN.is_set():
            return False
        return (time.monotonic() if now is None else now) < self.linger_until()


class Linger:
    """The drain's wait for new work once the inbox is empty, and its "alive until" mark.

    While it lingers the drain looks every ``LINGER_POLL_SECONDS`` (a read without the write
    lock; a claim only when work is due) and keeps a mark in the state store
    (``state.drain_marks``), so the receiver's nudger counts it as live and asks for no run the
    concurrency limit would cancel. When the window closes it deletes the mark and then claims
    once more: a delivery committed before that claim is taken by it, one committed after it
    finds no mark and gets a drain from the nudger. Nothing is left behind in between.
    """

    def __init__(self, store: StateStore, owner: str, clock: DrainClock):
        self._store = store
        self._owner = owner
        self._clock = clock
        self.lingered_s = 0.0  # time spent waiting with the inbox empty
        self._marked_until: float | None = None  # the monotonic time the mark says, if set
        self._idle_since: float | None = None  # when the inbox was last found empty
        self._closing = False  # the mark is gone: one last claim, then stop

    def __enter__(self) -> Linger:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_idling(time.monotonic())
        self._unmark()

    def worked(self) -> None:
        """A claim found work: lingering (if any) is over until the inbox empties again."""
        self._stop_idling(time.monotonic())
        self._closing = False

    def due(self) -> bool:
        """Whether to claim now: always, except while lingering when nothing is due."""
        if self._idle_since is None or self._closing:
            return True
        now = utcnow()
        next_due, _ = self._store.drain_outlook(now)
        return next_due is not None and next_due <= now

    def idle(self) -> bool:
        """The claim found nothing: wait a moment and look again (True), or stop (False)."""
        now = time.monotonic()
        if self._closing:
            return False
        if not self._clock.lingering(now):
            self._stop_idling(now)
            if self._marked_until is None:
                return False  # no mark was ever seen: nobody relied on this drain
            self._unmark()
            self._closing = True
            return True
        if self._idle_since is None:
            self._idle_since = now
        self._keep_mark(now)
        time.sleep(min(LINGER_POLL_SECONDS, max(0.0, self._clock.linger_until() - now)))
        return True

    def _keep_mark(self, now: float) -> None:
        until = self._clock.linger_until()
        if self._marked_until is not None and self._marked_until >= until - LINGER_POLL_SECONDS:
            return  # the mark still covers the window: one write per window, not one per look
        mark_drain_live(self._store, self._owner, utcnow() + timedelta(seconds=until - now))
        self._marked_until = until

    def _stop_idling(self, now: float) -> None:
        if self._idle_since is not None:
            self.lingered_s += now - self._idle_since
            self._idle_since = None

    def _unmark(self) -> None:
        if self._marked_until is not None:
            clear_drain_mark(self._store, self._owner)
            self._marked_until = None
