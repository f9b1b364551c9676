"""Fault injection on the Admin API (GraphQL and REST): error statuses, latency, dropped
connections — by rate (seeded), for the next N calls, or for a time window."""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("status", "latency", "drop")
APIS = ("any", "graphql", "rest")


@dataclass
class FaultRule:
    """One rule.  ``count`` limits it to the next N matching calls; ``duration_seconds`` to a
    window starting now (after ``delay_seconds``); ``rate`` is the chance per matching call."""

    id: int
    kind: str = "status"
    status: int = 503
    rate: float = 1.0
    count: int | None = None
    api: str = "any"
    latency_ms: int = 0
    retry_after: float = 2.0
    starts_at: float = 0.0
    ends_at: float | None = None
    fired: int = 0

    def view(self) -> dict[str, Any]:
        """JSON view."""
        return asdict(self)


class FaultInjector:
    """The active fault rules of one shop."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, spec: dict[str, Any]) -> FaultRule:
        """Add a rule from JSON (see :class:`FaultRule`; also ``seed``, ``duration_seconds``)."""
        kind = spec.get("kind", "status")
        api = spec.get("api", "any")
        if kind not in KINDS or api not in APIS:
            raise ValueError(f"kind must be one of {KINDS}, api one of {APIS}")
        now = time.monotonic()
        starts = now + float(spec.get("delay_seconds", 0))
        duration = spec.get("duration_seconds")
        with self._lock:
            if "seed" in spec:
                self._rng = random.Random(int(spec["seed"]))
            rule = FaultRule(
                id=next(self._ids), kind=kind, status=int(spec.get("status", 503)),
                rate=float(spec.get("rate", 1.0)),
                count=int(spec["count"]) if spec.get("count") is not None else None,
                api=api, latency_ms=int(spec.get("latency_ms", 0)),
                retry_after=float(spec.get("retry_after", 2.0)), starts_at=starts,
                ends_at=starts + float(duration) if duration is not None else None,
            )
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        """Active rules."""
        with self._lock:
            return list(self._rules)

    def pick(self, api: str) -> FaultRule | None:
        """The rule that fires for this call, if any (consumes one of its ``count``)."""
        now = time.monotonic()
        with self._lock:
            self._rules = [r for r in self._rules
                           if (r.count is None or r.count > 0)
                           and (r.ends_at is None or now < r.ends_at)]
            for r in self._rules:
                if r.api not in ("any", api) or now < r.starts_at:
                    continue
                if r.rate < 1.0 and self._rng.random() >= r.rate:
                    continue
                if r.count is not None:
                    r.count -= 1
                r.fired += 1
                return r
        return None
