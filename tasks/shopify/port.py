"""The Shopify interface, by intent: what the product asks of the shop, and the values that
cross it. No implementation here (that is ``tasks.shopify.client``) and no GraphQL: callers say
what they want, and a test can stand in an in-memory fake.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

Node = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ShopInfo:
    """What the product needs to know about the shop."""

    domain: str
    timezone: str
    currency: str
    scopes: frozenset[str]


class ShopifyPort(Protocol):
    """What the product needs from Shopify, by intent."""

    calls: int  # GraphQL requests sent so far (the reconcile reports them)

    def order(self, order_id: str) -> Node | None:
        """One order's node (selected with ``ORDER_FIELDS``), None when Shopify has no such
        order or hides it."""
        ...

    def orders_named(self, name: str) -> list[str]:
        """Ids of the orders named ``name`` (``#1001`` or ``1001``)."""
        ...

    def count_orders(self, start: datetime, end: datetime, limit: int) -> int:
        """How many orders were updated in ``[start, end)``, counted up to ``limit``."""
        ...

    def order_pages(self, start: datetime, end: datetime) -> Iterator[list[Node]]:
        """Pages of order nodes updated in ``[start, end)``, oldest update first."""
        ...

    def bulk_orders(self, start: datetime, end: datetime, path: Path) -> int:
        """List ``[start, end)`` with one bulk operation into ``path`` (JSONL, one order a
        line); returns how many orders."""
        ...

    def existing_order_ids(self, order_ids: Iterable[str]) -> set[str]:
        """Which of these numeric order ids Shopify still has (and this app may see)."""
        ...

    def recent_orders(self) -> list[Node]:
        """The ten newest orders' ids and customer fields (to see whether they are redacted)."""
        ...

    def webhook_subscriptions(self) -> list[Node]:
        """The shop's webhook subscriptions (topic and endpoint)."""
        ...

    def subscribe_webhook(self, topic: str, url: str) -> str:
        """Subscribe ``url`` to ``topic``; the subscription's id."""
        ...

    def shop_info(self) -> ShopInfo:
        """The shop's domain, timezone, currency and this app's access scopes."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
