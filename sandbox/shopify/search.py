"""Shopify search syntax (the ``query`` argument of ``orders``) → :class:`OrderFilter`.

Supported terms: ``updated_at``/``created_at``/``processed_at`` with ``:``, ``:>``, ``:>=``, ``:<``,
``:<=`` (quoted or not; ISO datetimes or plain dates in the shop's timezone), ``status:any|open|
closed|cancelled``, ``test:true|false``, ``id:>N`` (like ``since_id``), ``name:#1001`` (or
``name:1001``: the order's name, the filter Shopify staff point to for finding an order by the
number customers see), joined by ``AND`` or by spaces.  Unknown terms are ignored, as Shopify
ignores search fields it does not index.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, time
from zoneinfo import ZoneInfo

from .store import OrderFilter

TERM = re.compile(
    r"""(?P<neg>-)?(?P<field>[a-z_]+):(?P<op>>=|<=|>|<|=)?(?P<value>'[^']*'|"[^"]*"|[^\s()]+)""",
    re.IGNORECASE,
)


class SearchError(ValueError):
    """A term the sandbox cannot interpret (e.g. an unparseable date)."""


def parse_time(value: str, tz: ZoneInfo) -> float:
    """An ISO datetime or date; naive values are in the shop's timezone."""
    text = value.strip().strip("'\"")
    try:
        if len(text) == 10:
            dt = datetime.combine(datetime.fromisoformat(text).date(), time(0), tz)
        else:
            dt = datetime.fromisoformat(text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=tz)
    except ValueError as exc:
        raise SearchError(f"invalid date {value!r}") from exc
    return dt.timestamp()


def _bounds(op: str, ts: float) -> tuple[int | None, int | None]:
    """[lo, hi) integer-second bounds for ``op ts``."""
    if op == ">":
        return math.floor(ts) + 1, None
    if op == ">=":
        return math.ceil(ts), None
    if op == "<":
        return None, math.ceil(ts)
    if op == "<=":
        return None, math.floor(ts) + 1
    return math.ceil(ts), math.floor(ts) + 1


def _tighten(f: OrderFilter, prefix: str, lo: int | None, hi: int | None) -> None:
    cur_lo, cur_hi = getattr(f, f"{prefix}_lo"), getattr(f, f"{prefix}_hi")
    if lo is not None:
        setattr(f, f"{prefix}_lo", lo if cur_lo is None else max(cur_lo, lo))
    if hi is not None:
        setattr(f, f"{prefix}_hi", hi if cur_hi is None else min(cur_hi, hi))


def parse_search(query: str | None, tz: ZoneInfo) -> OrderFilter:
    """Translate a search string into an :class:`OrderFilter`."""
    f = OrderFilter()
    if not query:
        return f
    for m in TERM.finditer(query):
        field = m["field"].lower()
        op = m["op"] or "="
        value = m["value"].strip("'\"")
        if field in ("updated_at", "created_at", "processed_at"):
            lo, hi = _bounds(op, parse_time(value, tz))
            _tighten(f, "updated" if field == "updated_at" else "created", lo, hi)
        elif field == "status" and value.lower() in ("any", "open", "closed", "cancelled"):
            f.status = value.lower()
        elif field == "test" and value.lower() in ("true", "false"):
            f.test = value.lower() == "true"
        elif field == "name":
            number = value.removeprefix("#")
            f.order_number = int(number) if number.isdigit() else -1  # -1 matches nothing
        elif field == "id" and op in (">", ">=") and value.isdigit():
            f.since_id = int(value) - (1 if op == ">=" else 0)
    return f
