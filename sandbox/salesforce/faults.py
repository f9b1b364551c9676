"""Fault injection (DESIGN §7, research §4/§6): errors, latency and dropped connections."""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import SfError

KINDS: dict[str, str] = {
    "401": "401", "expired_session": "401", "invalid_session": "401",
    "revoke": "revoke", "revoked_credentials": "revoke",
    "403": "403", "request_limit": "403", "request_limit_exceeded": "403",
    "429": "429", "500": "500", "server_error": "500",
    "503": "503", "server_unavailable": "503",
    "lock": "lock", "unable_to_lock_row": "lock",
    "latency": "latency", "slow": "latency",
    "drop": "drop", "dropped_connection": "drop",
    "race": "race", "duplicate_value": "race",
}


@dataclass
class Fault:
    """One injected fault and the requests it applies to."""

    id: str
    kind: str
    rate: float = 1.0
    seed: int | None = None
    count: int | None = None
    object: str | None = None
    external_id: str | None = None
    path: str | None = None
    method: str | None = None
    start: float | None = None
    end: float | None = None
    latency: float = 0.0
    retry_after: int | None = None
    scope: str = "request"
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def active(self, now: float) -> bool:
        """Inside its time window and with calls left."""
        if self.count is not None and self.count <= 0:
            return False
        if self.start is not None and now < self.start:
            return False
        return self.end is None or now < self.end

    def matches(self, method: str, path: str, body: str) -> bool:
        """Does this fault target the request?"""
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path and self.path not in path:
            return False
        if self.object and not _mentions_object(self.object, path, body):
            return False
        return not (self.external_id and self.external_id not in path + "\n" + body)

    def roll(self) -> bool:
        """Apply the rate (seeded) and use up one of ``count``."""
        if self.rate < 1.0 and self._rng.random() >= self.rate:
            return False
        if self.count is not None:
            self.count -= 1
        self.fired += 1
        return True

    def to_json(self) -> dict[str, Any]:
        """JSON form for the control API."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


def _mentions_object(obj: str, path: str, body: str) -> bool:
    pattern = re.compile(
        rf'/sobjects/{re.escape(obj)}(?:[/"?]|$)|"(?:type|object)"\s*:\s*"{re.escape(obj)}"',
        re.IGNORECASE,
    )
    return bool(pattern.search(path) or pattern.search(body))


class FaultBook:
    """The live faults; thread-safe."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._next = 1

    def add(self, spec: dict[str, Any]) -> Fault:
        """Register a fault from its JSON spec (see README for the fields)."""
        spec = dict(spec)
        kind = KINDS.get(str(spec.pop("kind", "")).lower())
        if kind is None:
            raise ValueError(f"unknown fault kind; use one of {sorted(set(KINDS))}")
        now = time.time()
        if "after" in spec:
            spec["start"] = now + float(spec.pop("after"))
        if "duration" in spec:
            spec["end"] = (spec.get("start") or now) + float(spec.pop("duration"))
        known = set(Fault.__dataclass_fields__) - {"id", "kind", "fired", "_rng"}
        bad = set(spec) - known
        if bad:
            raise ValueError(f"unknown fault fields: {sorted(bad)}")
        if kind == "race":
            spec["scope"] = "record"
        with self._lock:
            fault = Fault(id=f"f{self._next}", kind=kind, **spec)
            self._next += 1
            fault._rng = random.Random(fault.seed)
            self.faults.append(fault)
        return fault

    def clear(self, fault_id: str | None = None) -> int:
        """Remove one fault (by id) or all; returns how many were removed."""
        with self._lock:
            before = len(self.faults)
            self.faults = [f for f in self.faults if fault_id and f.id != fault_id]
            return before - len(self.faults)

    def pick(self, method: str, path: str, body: str) -> Fault | None:
        """The first request-scope fault that fires for this request, if any."""
        now = time.time()
        with self._lock:
            for fault in self.faults:
                if fault.scope != "request" or not fault.active(now):
                    continue
                if fault.matches(method, path, body) and fault.roll():
                    return fault
        return None

    def check_record(self, obj: str, body: dict[str, Any]) -> None:
        """Record-scope faults: raise UNABLE_TO_LOCK_ROW etc. for one record write."""
        now = time.time()
        text = repr(body)
        with self._lock:
            for fault in self.faults:
                if fault.scope != "record" or fault.kind == "race" or not fault.active(now):
                    continue
                if fault.object and fault.object.lower() != obj.lower():
                    continue
                if fault.external_id and fault.external_id not in text:
                    continue
                if fault.roll():
                    raise record_error(fault)

    def check_race(self, obj: str, value: str) -> bool:
        """``race`` faults: should another creator win the insert of ``obj`` key ``value``?"""
        now = time.time()
        with self._lock:
            for fault in self.faults:
                if fault.kind != "race" or not fault.active(now):
                    continue
                if fault.object and fault.object.lower() != obj.lower():
                    continue
                if fault.external_id and fault.external_id != value:
                    continue
                if fault.roll():
                    return True
        return False


def record_error(fault: Fault) -> SfError:
    """The error a record-scope fault produces (a lock error unless the kind says otherwise)."""
    if fault.kind == "503":
        return SfError("SERVER_UNAVAILABLE", "Server is unavailable", status=503)
    return SfError(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record or 1 records",
        [],
    )
