"""The order store of one shop: lazily generated orders plus an overlay of mutations, with
filtered, sorted, cursor-resumable iteration that never materializes the whole shop."""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .generator import F_CANCELLED, F_CLOSED, F_TEST, Generator, Meta

SORT_KEYS = ("ID", "CREATED_AT", "PROCESSED_AT", "UPDATED_AT")
SortKey = tuple[int, int]


@dataclass
class OrderFilter:
    """Filters shared by REST parameters and GraphQL search; bounds are [lo, hi) epoch seconds."""

    created_lo: int | None = None
    created_hi: int | None = None
    updated_lo: int | None = None
    updated_hi: int | None = None
    status: str = "any"
    test: bool | None = None
    since_id: int | None = None
    visible_from: int | None = None
    ids: list[int] | None = None
    order_number: int | None = None  # ``name:#1001`` (the order's name is ``#`` + its number)

    def needs_scan(self) -> bool:
        """True if matching depends on more than the created/id index range."""
        return (
            self.ids is not None or self.status != "any" or self.test is not None
            or self.updated_lo is not None or self.updated_hi is not None
        )


def _status_ok(status: str, cancelled: bool, closed: bool) -> bool:
    if status == "any":
        return True
    if status == "cancelled":
        return cancelled
    if status == "closed":
        return closed
    return not closed and not cancelled  # open


def _between(v: int, lo: int | None, hi: int | None) -> bool:
    return (lo is None or v >= lo) and (hi is None or v < hi)


def meta_matches(m: Meta, f: OrderFilter) -> bool:
    """Does generated order ``m`` pass ``f``?"""
    lo = f.created_lo if f.visible_from is None else max(f.created_lo or 0, f.visible_from)
    return (
        _between(m.created, lo, f.created_hi)
        and _between(m.updated, f.updated_lo, f.updated_hi)
        and (f.since_id is None or m.id > f.since_id)
        and (f.test is None or bool(m.flags & F_TEST) == f.test)
        and _status_ok(f.status, bool(m.flags & F_CANCELLED), bool(m.flags & F_CLOSED))
    )


def rec_matches(r: dict[str, Any], f: OrderFilter) -> bool:
    """Does stored order ``r`` pass ``f``?"""
    lo = f.created_lo if f.visible_from is None else max(f.created_lo or 0, f.visible_from)
    return (
        _between(r["created"], lo, f.created_hi)
        and _between(r["updated"], f.updated_lo, f.updated_hi)
        and (f.since_id is None or r["id"] > f.since_id)
        and (f.test is None or bool(r["test"]) == f.test)
        and _status_ok(f.status, r["cancelled"] is not None, r["closed"] is not None)
    )


def rec_sort_key(r: dict[str, Any], key: str) -> SortKey:
    """The (value, id) sort key of a stored order."""
    value = {"ID": r["id"], "CREATED_AT": r["created"], "PROCESSED_AT": r["processed"],
             "UPDATED_AT": r["updated"]}[key]
    return (value, r["id"])


def meta_sort_key(m: Meta, key: str) -> SortKey:
    """The (value, id) sort key of a generated order (processed_at == created_at)."""
    if key == "ID":
        return (m.id, m.id)
    if key == "UPDATED_AT":
        return (m.updated, m.id)
    return (m.created, m.id)


class OrderStore:
    """Generated orders + overlay (modified, created, deleted)."""

    def __init__(self, generator: Generator) -> None:
        self.gen = generator
        self._lock = threading.RLock()
        self.overlay: dict[int, dict[str, Any]] = {}
        self.deleted: set[int] = set()
        self._created = 0

    # -- single orders ------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every mutation."""
        with self._lock:
            self.overlay.clear()
            self.deleted.clear()
            self._created = 0

    def get(self, order_id: int) -> dict[str, Any] | None:
        """The order's internal record, or None if it does not exist (or was deleted)."""
        with self._lock:
            if order_id in self.deleted:
                return None
            if order_id in self.overlay:
                return self.overlay[order_id]
        i = self.gen.index_of(order_id)
        if i is None or i >= self.gen.n:
            return None
        return self.gen.order(i)

    def put(self, rec: dict[str, Any]) -> None:
        """Store a modified or new order in the overlay."""
        with self._lock:
            self.overlay[rec["id"]] = rec

    def delete(self, order_id: int) -> bool:
        """Delete an order; False if it did not exist."""
        with self._lock:
            if self.get(order_id) is None:
                return False
            self.overlay.pop(order_id, None)
            self.deleted.add(order_id)
            return True

    def new_index(self) -> int:
        """Reserve the index of an order created through the control API."""
        with self._lock:
            i = self.gen.n + self._created
            self._created += 1
            return i

    def total(self) -> int:
        """How many orders exist (generated + created − deleted)."""
        with self._lock:
            return self.gen.n + self._created - len(self.deleted)

    # -- listing ------------------------------------------------------------------------
    def iterate(
        self, f: OrderFilter, key: str = "ID", desc: bool = False, after: SortKey | None = None
    ) -> Iterator[tuple[SortKey, dict[str, Any]]]:
        """Matching orders in (sort value, id) order, strictly after ``after``, lazily."""
        if f.order_number is not None:
            named = self.ids_numbered(f.order_number)
            f.ids = named if f.ids is None else [i for i in f.ids if i in named]
        if f.ids is not None:
            yield from self._by_ids(f, key, desc, after)
            return
        with self._lock:
            excluded = set(self.overlay) | set(self.deleted)
            extra = [
                (rec_sort_key(r, key), r) for r in self.overlay.values() if rec_matches(r, f)
            ]
        extra.sort(key=lambda t: t[0], reverse=desc)
        if after is not None:
            extra = [t for t in extra if (t[0] < after if desc else t[0] > after)]
        generated = self._generated(f, key, desc, after, excluded)
        merged = heapq.merge(generated, iter(extra), key=lambda t: t[0], reverse=desc)
        for sk, item in merged:
            yield sk, (self.gen.order(item.index) if isinstance(item, Meta) else item)

    def ids_numbered(self, number: int) -> list[int]:
        """Ids of the orders with this ``order_number`` (generated, or created later)."""
        with self._lock:
            found = [r["id"] for r in self.overlay.values() if r.get("order_number") == number]
        index = number - self.gen.number_base
        if 0 <= index < self.gen.n and self.gen.order_id(index) not in found:
            found.append(self.gen.order_id(index))
        return found

    def _by_ids(
        self, f: OrderFilter, key: str, desc: bool, after: SortKey | None
    ) -> Iterator[tuple[SortKey, dict[str, Any]]]:
        recs = [r for r in map(self.get, dict.fromkeys(f.ids or ())) if r and rec_matches(r, f)]
        rows = sorted(((rec_sort_key(r, key), r) for r in recs), key=lambda t: t[0],
                      reverse=desc)
        for sk, r in rows:
            if after is None or (sk < after if desc else sk > after):
                yield sk, r

    def count(self, f: OrderFilter) -> int:
        """Number of matching orders (binary search when no per-order predicate applies)."""
        if f.needs_scan():
            return sum(1 for _ in self.iterate(f))
        lo, hi = self._index_range(f)
        n = max(0, hi - lo)
        with self._lock:
            for oid in set(self.overlay) | self.deleted:
                i = self.gen.index_of(oid)
                if i is not None and lo <= i < hi and i < self.gen.n:
                    n -= 1
            n += sum(1 for r in self.overlay.values() if rec_matches(r, f))
        return n

    def _index_range(self, f: OrderFilter) -> tuple[int, int]:
        g = self.gen
        lo_ts = [x for x in (f.created_lo, f.visible_from) if x is not None]
        if f.updated_lo is not None:
            lo_ts.append(f.updated_lo - g.max_delta)
        hi_ts = [x for x in (f.created_hi, f.updated_hi) if x is not None]
        lo = g.first_index_created_at_or_after(max(lo_ts)) if lo_ts else 0
        hi = g.first_index_created_at_or_after(min(hi_ts)) if hi_ts else g.n
        if f.since_id is not None:
            lo = max(lo, bisect_left(range(g.n), f.since_id + 1, key=g.order_id))
        return lo, hi

    def _generated(
        self, f: OrderFilter, key: str, desc: bool, after: SortKey | None, excluded: set[int]
    ) -> Iterator[tuple[SortKey, Meta]]:
        lo, hi = self._index_range(f)
        if key == "UPDATED_AT":
            stream = self._by_updated(lo, hi, desc, after)
        else:
            stream = self._by_index(lo, hi, key, desc, after)
        for sk, m in stream:
            if m.id not in excluded and meta_matches(m, f):
                yield sk, m

    def _by_index(
        self, lo: int, hi: int, key: str, desc: bool, after: SortKey | None
    ) -> Iterator[tuple[SortKey, Meta]]:
        """Sort keys other than UPDATED_AT are monotonic in the index."""
        g = self.gen
        if after is not None:
            def sk(i: int) -> SortKey:
                oid = g.order_id(i)
                return (oid, oid) if key == "ID" else (g.created(i), oid)
            pos = bisect_left(range(lo, hi), after, key=sk) + lo
            if desc:
                hi = min(hi, pos)
            else:
                lo = max(lo, pos + (1 if pos < hi and sk(pos) == after else 0))
        indices = range(hi - 1, lo - 1, -1) if desc else range(lo, hi)
        for i in indices:
            m = g.meta(i)
            yield meta_sort_key(m, key), m

    def _by_updated(
        self, lo: int, hi: int, desc: bool, after: SortKey | None
    ) -> Iterator[tuple[SortKey, Meta]]:
        """Stream in updated_at order with a heap: updated_at − created_at <= max_delta."""
        g = self.gen
        d = g.max_delta
        if desc:
            yield from self._by_updated_desc(lo, hi, after)
            return
        if after is not None:
            lo = max(lo, g.first_index_created_at_or_after(after[0] - d))
        heap: list[tuple[int, int, Meta]] = []
        for i in range(lo, hi):
            m = g.meta(i)
            while heap and heap[0][0] <= m.created:
                u, oid, top = heapq.heappop(heap)
                if after is None or (u, oid) > after:
                    yield (u, oid), top
            heapq.heappush(heap, (m.updated, m.id, m))
        while heap:
            u, oid, top = heapq.heappop(heap)
            if after is None or (u, oid) > after:
                yield (u, oid), top

    def _by_updated_desc(
        self, lo: int, hi: int, after: SortKey | None
    ) -> Iterator[tuple[SortKey, Meta]]:
        g = self.gen
        d = g.max_delta
        if after is not None:
            hi = min(hi, g.first_index_created_at_or_after(after[0] + 1))
        heap: list[tuple[int, int, Meta]] = []
        for i in range(hi - 1, lo - 1, -1):
            m = g.meta(i)
            while heap and -heap[0][0] >= m.created + d:
                nu, noid, top = heapq.heappop(heap)
                if after is None or (-nu, -noid) < after:
                    yield (-nu, -noid), top
            heapq.heappush(heap, (-m.updated, -m.id, m))
        while heap:
            nu, noid, top = heapq.heappop(heap)
            if after is None or (-nu, -noid) < after:
                yield (-nu, -noid), top
