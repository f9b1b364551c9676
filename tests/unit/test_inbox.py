"""Pure inbox decisions: coalescing a claim, backoff, customer waves."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from state import ClaimedOrder, InboxRow
from tasks.core.errors import InvalidOrder
from tasks.core.inbox import next_attempt, plan_claim, waves

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def row(webhook_id: str, topic: str, body: dict, minutes: int = 0) -> InboxRow:
    return InboxRow(
        webhook_id=webhook_id,
        topic=topic,
        shop_domain="s.myshopify.com",
        order_id="1001",
        body=json.dumps(body).encode(),
        status="claimed",
        attempts=1,
        received_at=NOW + timedelta(minutes=minutes),
        triggered_at=None,
        next_attempt_at=NOW,
        lease_expires_at=None,
        last_error=None,
    )


def order(updated: str, total: str) -> dict:
    return {
        "id": 1001,
        "name": "#1001",
        "created_at": "2026-11-01T00:00:00Z",
        "updated_at": updated,
        "total_price": total,
        "currency": "USD",
    }


def test_the_newest_state_wins_whatever_the_arrival_order() -> None:
    claim = ClaimedOrder(
        "1001",
        [
            row("a", "orders/updated", order("2026-11-02T00:00:00Z", "20.00"), minutes=0),
            row("b", "orders/create", order("2026-11-01T00:00:00Z", "10.00"), minutes=1),
        ],
    )
    plan = plan_claim(claim)
    assert (plan.kind, str(plan.order.total_price)) == ("sync", "20.00")
    assert plan.label == "order #1001"


def test_a_refund_makes_the_order_be_fetched() -> None:
    claim = ClaimedOrder(
        "1001",
        [
            row("a", "orders/create", order("2026-11-01T00:00:00Z", "10.00")),
            row("b", "refunds/create", {"id": 5, "order_id": 1001}),
        ],
    )
    assert plan_claim(claim).kind == "fetch"


def refund(created: str | None, refund_id: int = 5) -> dict:
    return {"id": refund_id, "order_id": 1001, "created_at": created}


def test_a_refund_with_a_newer_order_payload_in_the_claim_needs_no_fetch() -> None:
    claim = ClaimedOrder(
        "1001",
        [
            row("a", "refunds/create", refund("2026-11-03T09:00:00-05:00")),
            row("b", "orders/updated", order("2026-11-03T14:00:00Z", "5.00"), minutes=1),
        ],
    )
    plan = plan_claim(claim)
    assert (plan.kind, str(plan.order.total_price)) == ("sync", "5.00")


def test_a_refund_newer_than_every_order_payload_is_fetched() -> None:
    claim = ClaimedOrder(
        "1001",
        [
            row("a", "orders/updated", order("2026-11-03T13:59:59Z", "10.00")),
            row("b", "refunds/create", refund("2026-11-03T09:00:00-05:00"), minutes=1),
        ],
    )
    assert plan_claim(claim).kind == "fetch"


def test_a_payload_listing_refunds_must_list_this_refund() -> None:
    listed = {**order("2026-11-04T00:00:00Z", "5.00"), "refunds": [{"id": 5}]}
    other = {**order("2026-11-04T00:00:00Z", "5.00"), "refunds": [{"id": 4}]}
    newer = refund("2026-11-03T00:00:00Z")
    assert (
        plan_claim(
            ClaimedOrder(
                "1001", [row("a", "refunds/create", newer), row("b", "orders/updated", listed)]
            )
        ).kind
        == "sync"
    )
    assert (
        plan_claim(
            ClaimedOrder(
                "1001", [row("a", "refunds/create", newer), row("b", "orders/updated", other)]
            )
        ).kind
        == "fetch"
    )


def test_an_unreadable_refund_is_fetched_not_rejected() -> None:
    claim = ClaimedOrder(
        "1001",
        [
            row("a", "refunds/create", refund(None)),
            row("b", "orders/updated", order("2026-11-04T00:00:00Z", "5.00")),
        ],
    )
    assert plan_claim(claim).kind == "fetch"
    assert plan_claim(ClaimedOrder("1001", [row("a", "refunds/create", refund("x"))])).kind == (
        "fetch"
    )


def test_a_delete_alone_is_a_delete() -> None:
    claim = ClaimedOrder("1001", [row("a", "orders/delete", {"id": 1001})])
    assert plan_claim(claim).kind == "deleted"


def test_a_malformed_payload_is_an_invalid_order() -> None:
    claim = ClaimedOrder("1001", [row("a", "orders/create", {"id": 1001})])
    with pytest.raises(InvalidOrder):
        plan_claim(claim)


def test_backoff_then_give_up() -> None:
    backoff = [30, 120]
    assert next_attempt(1, NOW, backoff) == NOW + timedelta(seconds=30)
    assert next_attempt(2, NOW, backoff) == NOW + timedelta(seconds=120)
    assert next_attempt(3, NOW, backoff) is None


def test_waves_never_put_one_customer_twice_in_a_wave_and_keep_order() -> None:
    items = ["a1", "b1", "a2", "x", "a3", "b2", "c1"]
    result = waves(items, key=lambda item: None if item == "x" else item[0])
    assert result == [["a1", "b1", "x", "c1"], ["a2", "b2"], ["a3"]]
