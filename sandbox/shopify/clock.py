"""Clocks a test can move: the shop's wall clock (60-day rule, new timestamps) and a monotonic
ticker (leaky buckets, retries are not affected)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


class ShopClock:
    """Wall-clock time of the shop: real time plus an adjustable offset."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current shop time as epoch seconds."""
        with self._lock:
            return self._now() + self._offset

    def now_dt(self) -> datetime:
        """Current shop time, timezone-aware UTC."""
        return datetime.fromtimestamp(self.now(), UTC)

    def set(self, when: datetime) -> None:
        """Make the shop clock read ``when`` now (it keeps ticking from there)."""
        with self._lock:
            self._offset = when.timestamp() - self._now()

    def advance(self, seconds: float) -> None:
        """Move the shop clock forward."""
        with self._lock:
            self._offset += seconds

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._offset = 0.0


class Ticker:
    """A monotonic clock with a test-controlled skew: ``advance`` instead of ``sleep``."""

    def __init__(self, source: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._skew = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._source() + self._skew

    def advance(self, seconds: float) -> None:
        """Pretend ``seconds`` have passed."""
        with self._lock:
            self._skew += seconds
