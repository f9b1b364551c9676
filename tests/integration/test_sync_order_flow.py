"""The ``sync-order`` flow under the Prefect test harness: the edge-case mix and the error table
of DESIGN.md §3, each injected in the Salesforce sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from flows.outcome import run_flow
from flows.sync_order import sync_order
from tasks.core.errors import AuthError, BudgetExhausted, RateLimited
from tasks.core.orders import Order, parse_graphql_order
from tasks.reporting.dead_letter_board import board_rows
from tasks.runtime import Runtime
from tasks.settings import Settings
from tests.integration.conftest import soql

pytestmark = pytest.mark.usefixtures("prefect_harness")


def all_orders(runtime: Runtime) -> list[Order]:
    start = datetime.now(UTC) - timedelta(days=400)
    end = datetime.now(UTC) + timedelta(days=1)
    pages = runtime.shopify.order_pages(start, end)
    return [parse_graphql_order(node) for page in pages for node in page]


def pick_edge_cases(orders: list[Order]) -> dict[str, Order]:
    """One order of each kind the issue names, from the sandbox's generated mix."""
    kinds = {
        "guest": lambda o: o.customer is None,
        "company": lambda o: (
            o.customer is not None
            and o.customer.default_address is not None
            and bool(o.customer.default_address.company)
        ),
        "no_company": lambda o: (
            o.customer is not None
            and (o.customer.default_address is None or not o.customer.default_address.company)
        ),
        "cancelled": lambda o: o.cancelled_at is not None,
        "refunded": lambda o: o.current_total_price < o.total_price,
        "non_ascii": lambda o: any(
            ord(c) > 127 for c in ((o.customer and o.customer.last_name) or "")
        ),
        "over_long": lambda o: (
            len((o.customer and o.customer.last_name) or "") > 80
            or len(o.billing_address.city or "" if o.billing_address else "") > 40
        ),
        "presentment_currency": lambda o: o.presentment_currency not in (None, o.currency),
    }
    picked = {}
    for name, test in kinds.items():
        match = next((o for o in orders if test(o)), None)
        assert match is not None, f"the sandbox store has no {name} order"
        picked[name] = match
    return picked


def opportunity(runtime: Runtime, order_id: str) -> dict:
    rows = soql(
        runtime,
        "SELECT Id, Name, Amount, StageName, AccountId, ContactId, Account.Name "  # noqa: S608
        f"FROM Opportunity WHERE External_Shopify_Order_ID__c = '{order_id}'",
    )
    assert len(rows) == 1, rows
    return rows[0]


def test_the_generated_edge_case_mix_syncs(runtime: Runtime) -> None:
    cases = pick_edge_cases(all_orders(runtime))
    for name, order in cases.items():
        result = sync_order(order.id)
        assert result["action"] in {"created", "updated"}, (name, result)
        opp = opportunity(runtime, order.id)
        assert Decimal(str(opp["Amount"])) == order.current_total_price, name
        assert len(opp["Name"]) <= 120
        expected_stage = "Closed Lost" if order.cancelled_at else "New Order"
        assert opp["StageName"] == expected_stage, name
        assert opp["AccountId"]
        assert opp["ContactId"], name
    assert runtime.store.dead_letters() == []


def test_an_unknown_order_id_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="numeric Shopify order id"):
        sync_order("gid://shopify/Order/1")


def first_order(runtime: Runtime) -> Order:
    return all_orders(runtime)[0]


def test_an_expired_session_is_renewed_once_and_the_sync_succeeds(
    runtime: Runtime, salesforce
) -> None:
    order = first_order(runtime)
    salesforce.fault(kind="401", count=1, path="/composite")
    assert sync_order(order.id)["action"] == "created"


def test_a_validation_failure_is_dead_lettered_with_code_and_message(
    runtime: Runtime, salesforce
) -> None:
    order = first_order(runtime)
    salesforce.rule(
        object="Opportunity", field="Name", contains="Shopify", message="No webshop deals"
    )
    state, result = run_flow(sync_order, order_id=order.id)
    assert result["action"] == "dead_letter"
    assert state.is_failed()
    assert state.message.startswith("1 of 1 orders dead-lettered: FIELD_CUSTOM_VALIDATION_")
    assert "\n" not in state.message
    [letter] = runtime.store.dead_letters()
    assert (letter.order_id, letter.error_code) == (order.id, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    assert "No webshop deals" in letter.message
    assert letter.stage == "opportunity"
    # the dead letter carries the order's name for the board and `shopsync status`
    assert order.name
    assert letter.order_name == order.name
    [row] = board_rows([letter])
    assert row["order"] == order.name
    assert f"'{order.name}'" in row["what_to_do"]


def test_a_synced_order_ends_the_run_completed(runtime: Runtime) -> None:
    order = first_order(runtime)
    state, result = run_flow(sync_order, order_id=order.id)
    assert state.is_completed(), state.message
    assert state.message == "1 order: 1 created"
    assert result["action"] == "created"


@pytest.mark.parametrize("kind", ["503", "500", "lock"])
def test_transient_failures_back_off_then_succeed(runtime: Runtime, salesforce, kind: str) -> None:
    order = first_order(runtime)
    salesforce.fault(kind=kind, count=2, path="/composite")
    assert sync_order(order.id)["action"] == "created"
    assert runtime.store.dead_letters() == []


def test_transient_failures_that_outlast_the_retries_are_dead_lettered(
    runtime: Runtime, salesforce
) -> None:
    order = first_order(runtime)
    salesforce.fault(kind="503", path="/composite")
    state, result = run_flow(sync_order, order_id=order.id)
    assert result["action"] == "dead_letter"
    assert state.is_failed()
    assert runtime.store.dead_letters()[0].error_code == "SERVER_UNAVAILABLE"
    salesforce.clear_faults()
    assert sync_order(order.id)["action"] == "created"
    assert runtime.store.dead_letters() == []  # a later success resolves the dead letter


def test_rate_limiting_fails_the_run_without_dead_lettering(runtime: Runtime, salesforce) -> None:
    order = first_order(runtime)
    salesforce.fault(kind="request_limit", path="/composite")
    with pytest.raises(RateLimited):
        sync_order(order.id)
    assert runtime.store.dead_letters() == []


def test_a_racing_creator_duplicate_value_is_retried_and_then_matches(
    runtime: Runtime, salesforce
) -> None:
    order = first_order(runtime)
    salesforce.fault(kind="race", count=1, path="/composite")
    assert sync_order(order.id)["action"] in {"created", "updated"}
    assert len(salesforce.records("Opportunity")) == 1


def test_credentials_refused_after_reauth_fail_the_run_loudly(
    runtime: Runtime, salesforce, monkeypatch
) -> None:
    order = first_order(runtime)
    salesforce.fault(kind="401", path="/composite")  # every session is rejected
    with pytest.raises(AuthError):
        sync_order(order.id)
    assert runtime.store.dead_letters() == []


def test_the_api_budget_governor_stops_writes_at_the_reserve(runtime: Runtime, salesforce) -> None:
    order = first_order(runtime)
    salesforce.control.post(
        "/__sandbox/org", json={"api_limit": 1000, "api_usage": 900}
    ).raise_for_status()
    with pytest.raises(BudgetExhausted):
        sync_order(order.id)
    assert salesforce.records("Opportunity") == []
    assert runtime.store.dead_letters() == []


def test_sync_order_takes_the_order_name_customers_see(
    product: Settings, shopify, salesforce
) -> None:
    shop = shopify.shop
    order_id = shop.generator.order_id(3)
    name = shop.rest(shop.store.get(order_id))["name"]
    created = shop.rest(shop.create_order())

    assert sync_order(name)["order_id"] == str(order_id)
    assert sync_order(created["name"])["order_id"] == str(created["id"])
    synced = {r["External_Shopify_Order_ID__c"] for r in salesforce.records("Opportunity")}
    assert synced == {str(order_id), str(created["id"])}
    with pytest.raises(ValueError, match="no order named #999999"):
        sync_order("#999999")
