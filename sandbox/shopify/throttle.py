"""Leaky buckets: GraphQL cost points (§2 GraphQL cost and throttling) and REST calls
(§2 REST rate limits), driven by an injectable monotonic clock."""

from __future__ import annotations

import threading
from collections.abc import Callable


class LeakyBucket:
    """A bucket of ``capacity`` units that refills at ``rate`` units per second."""

    def __init__(self, capacity: float, rate: float, clock: Callable[[], float]) -> None:
        self.capacity = float(capacity)
        self.rate = float(rate)
        self._clock = clock
        self._available = float(capacity)
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._available = min(self.capacity, self._available + (now - self._last) * self.rate)
        self._last = now

    def available(self) -> float:
        """Units available now."""
        with self._lock:
            self._refill()
            return self._available

    def try_take(self, amount: float) -> bool:
        """Take ``amount`` if the bucket holds it; False (and nothing taken) otherwise."""
        with self._lock:
            self._refill()
            if amount > self._available:
                return False
            self._available -= amount
            return True

    def give_back(self, amount: float) -> None:
        """Return units (the difference between requested and actual cost)."""
        with self._lock:
            self._refill()
            self._available = min(self.capacity, self._available + amount)

    def reset(self) -> None:
        """Fill the bucket."""
        with self._lock:
            self._available = self.capacity
            self._last = self._clock()


class CallBucket:
    """REST call limit: each call fills one slot; slots leak at ``rate`` per second."""

    def __init__(self, size: int, rate: float, clock: Callable[[], float]) -> None:
        self.size = int(size)
        self.rate = float(rate)
        self._clock = clock
        self._used = 0.0
        self._last = clock()
        self._lock = threading.Lock()

    def _leak(self) -> None:
        now = self._clock()
        self._used = max(0.0, self._used - (now - self._last) * self.rate)
        self._last = now

    def hit(self) -> tuple[bool, int, float]:
        """Record a call: (allowed, used slots for the header, seconds to wait if refused)."""
        with self._lock:
            self._leak()
            if self._used + 1 > self.size:
                wait = (self._used + 1 - self.size) / self.rate
                return False, self.size, max(wait, 1.0 / self.rate)
            self._used += 1
            return True, max(1, round(self._used)), 0.0

    def reset(self) -> None:
        """Empty the bucket."""
        with self._lock:
            self._used = 0.0
            self._last = self._clock()
