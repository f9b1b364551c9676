"""Which orders a reconcile run covers, pure: the window in UTC from shop dates or from the
nightly cursor, the CloseDates its new orders get, and the orders Shopify hides from an app
without ``read_all_orders`` (older than :data:`READ_ALL_ORDERS_DAYS`). DESIGN.md §6.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

__all__ = [
    "READ_ALL_ORDERS_DAYS",
    "SCOPE_MESSAGE",
    "UNREADABLE_MESSAGE",
    "close_date_range",
    "created_before_window",
    "needs_read_all_orders",
    "nightly_window",
    "shop_window",
]

READ_ALL_ORDERS_DAYS = 60

SCOPE_MESSAGE = (
    "The window starts more than 60 days ago and the app lacks the read_all_orders scope: "
    "Shopify hides those orders, so they cannot be listed or reported as missing. Grant "
    "read_all_orders (or reconcile the last 60 days only)."
)

UNREADABLE_MESSAGE = (
    "{count} orders updated in this window were created more than {days} days ago and the app "
    "lacks the read_all_orders scope: Shopify hides them, so this run could not check them "
    "(they are listed in the report as 'unreadable'). Grant read_all_orders."
)


def shop_window(start: date, end: date, timezone: str) -> tuple[datetime, datetime]:
    """``[start 00:00, end+1 00:00)`` in the shop's timezone, as UTC (``end`` is inclusive)."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    zone = ZoneInfo(timezone)
    lo = datetime.combine(start, dtime(0), zone).astimezone(UTC)
    hi = datetime.combine(end + timedelta(days=1), dtime(0), zone).astimezone(UTC)
    return lo, hi


def nightly_window(
    cursor: datetime | None, signpost: datetime, lookback_hours: int
) -> tuple[datetime, datetime]:
    """``[cursor − lookback, signpost)``; without a cursor, the lookback before the signpost."""
    anchor = cursor if cursor is not None else signpost
    return anchor - timedelta(hours=lookback_hours), signpost


def close_date_range(
    start: datetime, end: datetime, timezone: str, offset_days: int
) -> tuple[date, date]:
    """CloseDates the window's newly created orders get (orphan candidates are read from it)."""
    zone = ZoneInfo(timezone)
    first = start.astimezone(zone).date() + timedelta(days=offset_days)
    last = (end - timedelta(microseconds=1)).astimezone(zone).date() + timedelta(days=offset_days)
    return first, last


def needs_read_all_orders(window_start: datetime, now: datetime, scopes: frozenset[str]) -> bool:
    """Whether the window reaches past Shopify's 60 days and the app lacks ``read_all_orders``."""
    if "read_all_orders" in scopes:
        return False
    return window_start < now - timedelta(days=READ_ALL_ORDERS_DAYS)


def created_before_window(
    bodies: Iterable[tuple[str, bytes]], start: datetime, end: datetime, cutoff: datetime
) -> dict[str, datetime]:
    """Orders (id → ``created_at``) whose webhook body shows an update in ``[start, end)`` and a
    creation before ``cutoff``: the listing of an ``updated_at`` window cannot show them when
    Shopify hides orders older than 60 days. Bodies that are not orders are passed over."""
    found: dict[str, datetime] = {}
    for order_id, body in bodies:
        try:
            data = json.loads(body)
            if str(data.get("id")) != order_id:
                continue  # a refund or another resource: its dates are not the order's
            created = datetime.fromisoformat(str(data["created_at"]))
            updated = datetime.fromisoformat(str(data["updated_at"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if created.tzinfo is None or updated.tzinfo is None:
            continue
        if start <= updated < end and created < cutoff:
            found[order_id] = created.astimezone(UTC)
    return found
