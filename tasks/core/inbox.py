"""Pure decisions about claimed inbox deliveries: what to sync, and when to try again."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from state import ClaimedOrder, InboxRow
from tasks.core.errors import InvalidOrder
from tasks.core.orders import Order, parse_rest_order
from tasks.core.topics import DELETE_TOPIC, ORDER_TOPICS, REFUND_TOPIC

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


@dataclass(frozen=True, slots=True)
class RefundSeen:
    """What a ``refunds/create`` payload tells about its refund (None where it does not say)."""

    id: str | None
    created_at: datetime | None


def plan_claim(claim: ClaimedOrder) -> SyncPlan:
    """Coalesce an order's deliveries into one sync of its newest state.

    A refund's payload is a refund, not an order: a claim with a refund syncs its newest order
    payload only when that payload already reflects every refund of the claim (see
    :func:`reflects_refund`), and fetches the order otherwise. A fetch is what an order older
    than 60 days cannot get without ``read_all_orders``, so it is avoided whenever it can be.
    A malformed order payload raises ``InvalidOrder`` (it goes to the dead letters).
    """
    topics = {d.topic for d in claim.deliveries}
    label = f"order {claim.order_id}"
    orders = [d for d in claim.deliveries if d.topic in ORDER_TOPICS]
    if not orders:
        kind: PlanKind = "deleted" if topics == {DELETE_TOPIC} else "fetch"
        return SyncPlan(claim.order_id, kind, label=label)
    newest_delivery, payload, newest = max(
        ((d, *_parse(d)) for d in orders),
        key=lambda item: (item[2].updated_at, item[0].received_at),
    )
    refunds = [refund_seen(d.body) for d in claim.deliveries if d.topic == REFUND_TOPIC]
    if not all(reflects_refund(payload, newest, refund) for refund in refunds):
        return SyncPlan(claim.order_id, "fetch", label=label)
    return SyncPlan(
        claim.order_id,
        "sync",
        order=newest,
        label=f"order {newest.name or claim.order_id}",
        payload=newest_delivery.body,
    )


def refund_seen(body: bytes) -> RefundSeen:
    """The refund's id and creation time from a ``refunds/create`` body (None when unreadable)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return RefundSeen(None, None)
    if not isinstance(payload, dict):
        return RefundSeen(None, None)
    refund = payload.get("refund", payload)
    refund = refund if isinstance(refund, dict) else {}
    raw_id = refund.get("id")
    return RefundSeen(None if raw_id is None else str(raw_id), _timestamp(refund.get("created_at")))


def reflects_refund(payload: Mapping[str, Any], order: Order, refund: RefundSeen) -> bool:
    """Whether an order payload already shows the refund, so the order need not be fetched.

    An order payload lists its refunds (``refunds[].id``): when it has that list, the refund's
    id must be in it. Without the list, an ``updated_at`` at or after the refund's creation
    means the order was saved with the refund. A refund whose id or time is unknown is not
    assumed to be reflected.
    """
    data = payload.get("order", payload)
    listed = data.get("refunds") if isinstance(data, Mapping) else None
    if isinstance(listed, list):
        ids = {str(r.get("id")) for r in listed if isinstance(r, Mapping)}
        return refund.id is not None and refund.id in ids
    return refund.created_at is not None and order.updated_at >= refund.created_at


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse(delivery: InboxRow) -> tuple[Mapping[str, Any], Order]:
    try:
        payload = json.loads(delivery.body)
    except ValueError as exc:
        raise InvalidOrder(f"webhook {delivery.webhook_id} is not JSON", stage="parse") from exc
    order = parse_rest_order(payload)
    return payload, order


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
