"""Pure decisions about claimed inbox deliveries: what to sync, and when to try again."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from state import ClaimedOrder, InboxRow
from tasks.errors import InvalidOrder
from tasks.orders import Order, parse_rest_order
from tasks.topics import DELETE_TOPIC, ORDER_TOPICS, REFUND_TOPIC

T = TypeVar("T")

PlanKind = Literal["sync", "fetch", "deleted"]


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What to do for one claimed order: sync a payload, fetch the order first, or a delete."""

    order_id: str
    kind: PlanKind
    order: Order | None = None
    label: str = ""
    payload: bytes | None = None


def plan_claim(claim: ClaimedOrder) -> SyncPlan:
    """Coalesce an order's deliveries into one sync of its newest state.

    A refund's payload is a refund, not an order, so a claim with a refund fetches the order.
    A malformed order payload raises ``InvalidOrder`` (it goes to the dead letters).
    """
    topics = {d.topic for d in claim.deliveries}
    label = f"order {claim.order_id}"
    if REFUND_TOPIC in topics:
        return SyncPlan(claim.order_id, "fetch", label=label)
    orders = [d for d in claim.deliveries if d.topic in ORDER_TOPICS]
    if not orders:
        kind: PlanKind = "deleted" if DELETE_TOPIC in topics else "fetch"
        return SyncPlan(claim.order_id, kind, label=label)
    newest_delivery, newest = max(
        ((d, _parse(d)) for d in orders), key=lambda pair: (pair[1].updated_at, pair[0].received_at)
    )
    return SyncPlan(
        claim.order_id,
        "sync",
        order=newest,
        label=f"order {newest.name or claim.order_id}",
        payload=newest_delivery.body,
    )


def _parse(delivery: InboxRow) -> Order:
    try:
        payload = json.loads(delivery.body)
    except ValueError as exc:
        raise InvalidOrder(f"webhook {delivery.webhook_id} is not JSON", stage="parse") from exc
    order = parse_rest_order(payload)
    return order


def next_attempt(attempts: int, now: datetime, backoff: Sequence[float]) -> datetime | None:
    """When to try again after ``attempts`` failed attempts; None when it is time to give up.

    After a transient failure outlives Prefect's task retries, the delivery waits in the inbox
    (by default 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h); the next failure dead-letters it.
    """
    if attempts > len(backoff):
        return None
    return now + timedelta(seconds=backoff[max(0, attempts - 1)])


def waves(items: Sequence[T], key: Callable[[T], str | None]) -> list[list[T]]:
    """Split ``items`` into waves in which no key appears twice, keeping each key's order.

    Items whose key is None never clash. The first wave holds the first item of every key.
    """
    result: list[list[T]] = []
    keys: list[set[str]] = []
    for item in items:
        k = key(item)
        for wave, taken in zip(result, keys, strict=True):
            if k is None or k not in taken:
                wave.append(item)
                if k is not None:
                    taken.add(k)
                break
        else:
            result.append([item])
            keys.append(set() if k is None else {k})
    return result
