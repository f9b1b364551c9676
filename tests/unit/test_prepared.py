"""Prepare once: a claimed order is mapped once, and planning, grouping and staging share it."""

from __future__ import annotations

import ast
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from state import ClaimedOrder, InboxRow
from tasks.core.batch_plan import StagedOrder, lookups_needed, newest_by, stage_order
from tasks.core.inbox import SyncPlan, plan_claims, sync_plan, waves
from tasks.core.mapping import MappingConfig, OrgSchema, SalesforceRecords, map_order
from tasks.core.orders import Order, parse_rest_order
from tasks.core.prepared import PreparedOrder, Preparer

NOW = datetime(2026, 11, 5, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


class CountingMapper:
    """``map_order``, counting its calls per order id (the seam :class:`Preparer` takes)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(
        self, order: Order, config: MappingConfig, org: OrgSchema, tz: str
    ) -> SalesforceRecords:
        self.calls[order.id] += 1
        return map_order(order, config, org, tz)


def payload(order_id: int, customer: int, updated: str, total: str) -> dict[str, Any]:
    return {
        "id": order_id,
        "name": f"#{order_id}",
        "email": f"c{customer}@example.com",
        "created_at": "2026-11-01T00:00:00Z",
        "updated_at": updated,
        "total_price": total,
        "current_total_price": total,
        "currency": "USD",
        "customer": {"id": customer, "first_name": "Ada", "last_name": f"C{customer}"},
    }


def delivery(webhook_id: str, order_id: int, topic: str, body: dict[str, Any]) -> InboxRow:
    return InboxRow(
        webhook_id=webhook_id,
        topic=topic,
        shop_domain="s.myshopify.com",
        order_id=str(order_id),
        body=json.dumps(body).encode(),
        status="claimed",
        attempts=1,
        received_at=NOW,
        triggered_at=None,
        next_attempt_at=NOW,
        lease_expires_at=None,
        last_error=None,
    )


def claims() -> list[ClaimedOrder]:
    """Six orders of three customers, each with three coalesced deliveries; one refund-only
    claim (fetched later, so not mapped at planning)."""
    found = []
    for n in range(6):
        order_id, customer = 1000 + n, 7 + n % 3
        rows = [
            delivery(f"w{n}-{k}", order_id, topic, payload(order_id, customer, updated, total))
            for k, (topic, updated, total) in enumerate(
                [
                    ("orders/create", "2026-11-02T00:00:00Z", "10.00"),
                    ("orders/updated", "2026-11-04T00:00:00Z", "12.00"),
                    ("orders/updated", "2026-11-03T00:00:00Z", "11.00"),
                ]
            )
        ]
        found.append(ClaimedOrder(str(order_id), rows))
    refund = {"refund": {"id": 5, "created_at": "2026-11-04T00:00:00Z"}}
    found.append(ClaimedOrder("2000", [delivery("r", 2000, "refunds/create", refund)]))
    return found


def test_a_claimed_order_is_mapped_once_through_planning_grouping_and_staging() -> None:
    mapper = CountingMapper()
    planned = plan_claims(claims(), Preparer(MappingConfig(), OrgSchema(), "UTC", mapper))
    plans = [p for _, p in planned if isinstance(p, SyncPlan)]
    prepared = [p.prepared for p in plans if p.prepared is not None]
    assert mapper.calls == dict.fromkeys((str(1000 + n) for n in range(6)), 1)

    # Planning and grouping read the prepared value: the waves of one customer's orders,
    # the batch's lookups, one Account / Contact per customer, then staging for the write.
    grouped = waves(planned, key=lambda item: item[1].customer)  # type: ignore[union-attr]
    assert [len(w) for w in grouped] == [4, 3]  # three customers and the fetch; then the rest
    staged = [stage_order(p, None) for p in prepared]
    assert all(isinstance(s, StagedOrder) for s in staged)
    items = [s for s in staged if isinstance(s, StagedOrder)]
    emails, keys = lookups_needed(items, {})
    assert len(emails) == 3
    assert len(keys) == 6
    assert len(newest_by(items, lambda s: s.customer, lambda s: s.order)) == 3
    assert all(s.records is p.records for s, p in zip(items, prepared, strict=True))
    assert mapper.calls == dict.fromkeys((str(1000 + n) for n in range(6)), 1)  # still once


def test_the_newest_coalesced_state_is_the_one_prepared() -> None:
    [first, *_] = plan_claims(claims()[:1], Preparer(MappingConfig(), OrgSchema(), "UTC"))
    plan = first[1]
    assert isinstance(plan, SyncPlan)
    assert plan.prepared is not None
    assert plan.prepared.records is not None
    assert plan.prepared.records.opportunity["Amount"] == 12  # 2026-11-04's payload
    assert plan.customer == "7"


def test_a_skipped_order_is_prepared_without_records_and_never_clashes() -> None:
    prepare = Preparer(MappingConfig(skip_test_orders=True), OrgSchema(), "UTC")
    test_order = {**payload(1, 7, "2026-11-02T00:00:00Z", "1.00"), "test": True}
    prepared = prepare(parse_rest_order(test_order))
    assert prepared.records is None
    assert prepared.customer is None
    assert prepared.skip == "test order (skip_test_orders is on)"
    assert sync_plan(prepared).customer is None


def test_an_unmappable_claim_has_its_error_as_its_plan() -> None:
    bad = payload(1, 7, "2026-11-02T00:00:00Z", "1.00")
    claim = ClaimedOrder("1", [delivery("b", 1, "orders/create", bad)])
    [(_, plan)] = plan_claims([claim], Preparer(MappingConfig(), OrgSchema(), "Mars/Olympus"))
    assert not isinstance(plan, SyncPlan)
    assert plan.code == "BAD_SHOP_TIMEZONE"


def test_the_sync_paths_never_map_an_order_themselves() -> None:
    """Only the preparer maps on the sync paths (drain, sync-order, replay)."""
    paths = [
        "tasks/sync.py",
        "tasks/steps.py",
        "tasks/batch_drain.py",
        "tasks/core/batch_plan.py",
        "tasks/core/inbox.py",
        "flows/sync_pending.py",
        "flows/sync_order.py",
        "flows/replay.py",
    ]
    for path in paths:
        tree = ast.parse((ROOT / path).read_text())
        called = {
            node.func.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert "map_order" not in called, path
    assert PreparedOrder.__dataclass_fields__.keys() == {"order", "records", "skip"}


def test_prepared_values_are_immutable() -> None:
    order = parse_rest_order(payload(1, 7, "2026-11-02T00:00:00Z", "1.00"))
    prepared = Preparer(MappingConfig(), OrgSchema(), "UTC")(order)
    with pytest.raises(AttributeError):
        prepared.records = None  # type: ignore[misc]
