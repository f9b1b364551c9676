"""The drain flow over loopback (issue 13 §4): holds versus failed attempts, refunds that need no
fetch, and truncated or dropped fields recorded per order.

Deliveries are put in the inbox directly, with the bodies the Shopify sandbox renders for its
webhooks, so each test decides exactly which deliveries one claim holds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flows.outcome import run_flow
from flows.sync_pending import sync_pending_orders
from state import StateStore
from state.models import utcnow
from tasks.settings import Settings, get_settings
from tests.integration.conftest import deliver

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(params=["per_order", "batch"])
def drain_mode(request: pytest.FixtureRequest, product: Settings, monkeypatch) -> str:
    """The drain's path (issue 16): one composite call per order, or sObject Collections."""
    monkeypatch.setenv("SHOPSYNC_DRAIN_MODE", request.param)
    get_settings.cache_clear()
    return request.param


def order_payload(shopify, index: int) -> dict[str, Any]:
    shop = shopify.shop
    return shop.rest(shop.store.get(shop.generator.order_id(index)))


def drain_once() -> dict[str, Any]:
    _, result = run_flow(sync_pending_orders, max_seconds=60, batch_size=10, lease_seconds=30)
    return result


def due_now(store: StateStore) -> None:
    """Make every pending delivery due now (as if its wait were over); attempts are untouched."""
    ids = [row.webhook_id for row in store.inbox_rows(status="pending")]
    store.retry_later(ids, at=utcnow() - timedelta(seconds=1), error="test: the wait is over")


def opportunities(salesforce) -> list[dict[str, Any]]:
    return salesforce.records("Opportunity")


# -- item 9: holds do not use up attempts ---------------------------------------------------------


def hold_on_budget(salesforce) -> None:
    salesforce.control.post("/__sandbox/org", json={"api_limit": 100, "api_usage": 95})


def hold_on_rate_limit(salesforce) -> None:
    salesforce.fault(kind="429", path="/composite")


def hold_on_auth(salesforce) -> None:
    salesforce.fault(kind="401", path="/composite")


def clear(salesforce) -> None:
    salesforce.clear_faults()
    salesforce.control.post("/__sandbox/org", json={"api_limit": 100_000, "api_usage": 0})


def test_eight_holds_then_a_transient_error_is_retried_not_dead_lettered(
    drain_mode: str, store: StateStore, shopify, salesforce
) -> None:
    deliver(store, "w-1", "orders/create", order_payload(shopify, 0))
    holds = [hold_on_budget] * 3 + [hold_on_rate_limit] * 3 + [hold_on_auth] * 2
    for hold in holds:
        hold(salesforce)
        result = drain_once()
        assert set(result["outcomes"]) <= {"held", "rate_limited"}, result
        clear(salesforce)
        row = store.inbox_row("w-1")
        assert (row.status, row.attempts) == ("pending", 0), hold.__name__
        due_now(store)
    salesforce.fault(kind="503", path="/composite")  # outlasts Prefect's task retries
    assert drain_once()["outcomes"] == {"retry_later": 1}
    assert store.dead_letters() == []
    row = store.inbox_row("w-1")
    assert (row.status, row.attempts, row.last_error.split(":")[0]) == (
        "pending",
        1,
        "SERVER_UNAVAILABLE",
    )
    clear(salesforce)
    due_now(store)
    assert drain_once()["outcomes"] == {"created": 1}
    assert len(opportunities(salesforce)) == 1
    assert store.counts().inbox == {"done": 1}


# -- item 11: a refund fetches the order only when no payload in the claim shows it -------------


def shopify_calls(shopify) -> int:
    return int(sum(shopify.shop.stats.snapshot()["calls"].values()))


def refund(shopify, index: int, amount: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Refund an order in the sandbox: its refunds/create body and its orders/updated body."""
    shop = shopify.shop
    rec, refund_body = shop.refund_order(shop.generator.order_id(index), amount=amount)
    return refund_body, shop.rest(rec)


def live_order_indexes(shopify, count: int) -> list[int]:
    shop = shopify.shop
    live = [i for i in range(50) if shop.store.get(shop.generator.order_id(i))["cancelled"] is None]
    return live[:count]


def test_a_refund_with_its_newer_order_update_in_the_claim_fetches_nothing(
    drain_mode: str, store: StateStore, shopify, salesforce
) -> None:
    first, second = live_order_indexes(shopify, 2)
    refund_body, updated_body = refund(shopify, first, "5.00")
    deliver(store, "r-1", "refunds/create", refund_body)
    deliver(store, "u-1", "orders/updated", updated_body)
    before = shopify_calls(shopify)
    assert drain_once()["outcomes"] == {"created": 1}
    assert shopify_calls(shopify) - before == 0
    [synced] = opportunities(salesforce)
    assert str(synced["Amount"]) == updated_body["current_total_price"]

    alone, _ = refund(shopify, second, "5.00")
    deliver(store, "r-2", "refunds/create", alone)
    before = shopify_calls(shopify)
    assert drain_once()["outcomes"] == {"created": 1}
    assert shopify_calls(shopify) - before == 1  # the one order fetch a bare refund needs


# -- item 12: truncated and dropped fields are recorded, counted, listed and published ----------


def drain_artifacts(flow_run_id: Any, key: str = "drain-field-warnings") -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )


def customer_order_index(shopify) -> int:
    shop = shopify.shop
    return next(
        i for i in range(50) if shop.store.get(shop.generator.order_id(i))["customer"] is not None
    )


def test_cut_and_dropped_fields_are_recorded_per_order_counted_listed_and_published(
    drain_mode: str, store: StateStore, shopify, salesforce, product: Settings, monkeypatch
) -> None:
    shop = shopify.shop
    order_id = shop.generator.order_id(customer_order_index(shopify))
    long_name = "Lindqvist-" * 12  # 120 characters; Contact.LastName holds 80
    rec = shop.update_order(order_id, {"last_name": long_name})
    deliver(store, "w-1", "orders/updated", with_bad_email(shop.rest(rec)))
    state = sync_pending_orders(max_seconds=60, batch_size=10, lease_seconds=30, return_state=True)
    result = state.result()
    assert result["outcomes"] == {"created": 1}

    recorded = {(w.object, w.field): w for w in store.field_warnings(order_id=str(order_id))}
    last_name = recorded[("Contact", "LastName")]
    assert (last_name.kind, last_name.original_length, last_name.limit) == ("truncated", 120, 80)
    assert (last_name.path, last_name.order_name, last_name.times_seen) == (
        "webhook",
        rec_name(shop, order_id),
        1,
    )
    assert last_name.run_id == str(state.state_details.flow_run_id)
    assert recorded[("Contact", "Email")].kind == "dropped"
    assert result["field_warnings"] == len(recorded) >= 2
    assert result["orders_with_field_warnings"] == 1
    [synced] = salesforce.records("Contact")
    assert len(synced["LastName"]) == 80

    [artifact] = drain_artifacts(state.state_details.flow_run_id)
    assert "| Contact | LastName | truncated | 120 / 80 |" in artifact.data

    # The same order again: the same warnings, seen twice, no new rows.
    rec = shop.update_order(order_id, {"total_price": "12.34"})
    deliver(store, "w-2", "orders/updated", with_bad_email(shop.rest(rec)))
    assert drain_once()["field_warnings"] == len(recorded)
    again = store.field_warnings(order_id=str(order_id))
    assert len(again) == len(recorded)
    assert {w.times_seen for w in again} == {2}

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9")  # the CLI needs no Prefect here
    from typer.testing import CliRunner

    from deployments.cli import app

    status = CliRunner().invoke(app, ["status", "--no-salesforce"])
    assert f"field warnings: {len(recorded)} in 1 order(s)" in status.output, status.output
    listed = CliRunner().invoke(app, ["warnings", "--order", str(order_id)])
    assert listed.exit_code == 0, listed.output
    assert "Contact.LastName  truncated 120>80  webhook  x2" in listed.output
    assert "Contact.Email  dropped" in listed.output


def rec_name(shop, order_id: int) -> str:
    return shop.rest(shop.store.get(order_id))["name"]


def with_bad_email(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with a customer e-mail that is not an address (Salesforce would reject it)."""
    payload["customer"]["email"] = "no-at-sign.example"
    return payload


def test_a_reconcile_repair_records_the_values_it_cut_and_counts_them(
    store: StateStore, shopify, salesforce
) -> None:
    from datetime import datetime

    from flows.reconcile import reconcile

    shop = shopify.shop
    order_id = shop.generator.order_id(customer_order_index(shopify))
    rec = shop.update_order(order_id, {"last_name": "Lindqvist-" * 12})
    day = datetime.fromisoformat(shop.rest(rec)["updated_at"]).date()  # a window lists updates
    state = reconcile(day, day, return_state=True)
    result = state.result()
    assert result["repaired"] >= 1
    recorded = store.field_warnings()
    mine = {(w.object, w.field): w for w in recorded if w.order_id == str(order_id)}
    last_name = mine[("Contact", "LastName")]
    assert (last_name.kind, last_name.path, last_name.order_name) == (
        "truncated",
        "reconcile",
        rec_name(shop, order_id),
    )
    assert last_name.run_id is not None
    assert result["field_warnings"] == len(recorded)
    [artifact] = drain_artifacts(
        state.state_details.flow_run_id, key="reconcile-manual-field-warnings"
    )
    assert "| Contact | LastName | truncated |" in artifact.data
