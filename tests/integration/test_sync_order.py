"""Single-order sync against both sandboxes over loopback (issue 5).

The product talks to the Salesforce sandbox through simple-salesforce and to the Shopify sandbox
through httpx; assertions read Salesforce back with SOQL through the product's own gateway, and
count API calls with the sandbox's counters.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from state import StateStore
from tasks.core.errors import InvalidOrder
from tasks.core.orders import Order, parse_graphql_order, parse_rest_order
from tasks.runtime import Runtime
from tasks.sync import SyncContext, sync_order_state
from tests.conftest import shopify_fixture
from tests.integration.conftest import soql

OPPORTUNITY_FIELDS = (
    "Id, Name, Amount, StageName, CloseDate, AccountId, ContactId, External_Shopify_Order_ID__c, "
    "Account.External_Shopify_Account_ID__c, Account.Name"
)


def fixture_orders() -> list[dict[str, Any]]:
    """The fixture orders; the first has no ``current_total_price*``, so tests that edit the flat
    ``current_total_price`` change the amount the product reads."""
    return [shopify_fixture("order.json")["order"], *shopify_fixture("orders.json")["orders"]]


def opportunities(runtime: Runtime, order_id: str | None = None) -> list[dict[str, Any]]:
    where = f" WHERE External_Shopify_Order_ID__c = '{order_id}'" if order_id else ""
    return soql(runtime, f"SELECT {OPPORTUNITY_FIELDS} FROM Opportunity{where}")  # noqa: S608


def count(runtime: Runtime, sobject: str) -> int:
    return len(soql(runtime, f"SELECT Id FROM {sobject}"))  # noqa: S608


def shop_orders(runtime: Runtime) -> list[Order]:
    start = datetime.now(UTC) - timedelta(days=400)
    end = datetime.now(UTC) + timedelta(days=1)
    return [
        parse_graphql_order(node)
        for page in runtime.shopify.order_pages(start, end)
        for node in page
    ]


def test_every_fixture_order_syncs_with_mapped_values_and_links(
    runtime: Runtime, ctx: SyncContext
) -> None:
    for payload in fixture_orders():
        order = parse_rest_order(payload)
        assert sync_order_state(order, ctx).action in {"created", "updated"}
        [opp] = opportunities(runtime, order.id)
        assert opp["External_Shopify_Order_ID__c"] == order.id
        assert Decimal(str(opp["Amount"])) == order.current_total_price
        assert opp["Name"].startswith(f"Shopify Order {order.name}")
        assert opp["StageName"] == "New Order"
        assert opp["Account"]["External_Shopify_Account_ID__c"] == f"shop_cust_{order.customer.id}"
        [contact] = soql(
            runtime,
            f"SELECT Id, AccountId, Email, External_Shopify_ID__c FROM Contact "  # noqa: S608
            f"WHERE External_Shopify_ID__c = '{order.customer.id}'",
        )
        assert contact["AccountId"] == opp["AccountId"]
        assert opp["ContactId"] == contact["Id"]
        assert contact["Email"] == order.customer.email.lower() or contact["Email"] == order.email


def test_close_date_is_the_shop_day_plus_the_offset(runtime: Runtime, ctx: SyncContext) -> None:
    payload = dict(fixture_orders()[-1], created_at="2026-03-01T03:00:00Z", id=777000111)
    sync_order_state(parse_rest_order(payload), ctx)
    [opp] = opportunities(runtime, "777000111")
    assert opp["CloseDate"] == "2026-03-30"  # Feb 28 in New York, + 30 days


def test_syncing_the_same_order_three_times_leaves_one_of_each(
    runtime: Runtime, ctx: SyncContext, tmp_path
) -> None:
    order = parse_rest_order(fixture_orders()[0])
    actions = [sync_order_state(order, ctx).action for _ in range(3)]
    assert actions == ["created", "unchanged", "unchanged"]
    # Without the ledger (a lost state database) the upserts still match by external id.
    amnesiac = replace(ctx, store=StateStore.open(f"sqlite+pysqlite:///{tmp_path / 'new.db'}"))
    assert sync_order_state(order, amnesiac).action == "updated"
    assert count(runtime, "Account") == count(runtime, "Contact") == 1
    assert count(runtime, "Opportunity") == 1


def test_two_orders_of_one_customer_make_one_account_one_contact_two_opportunities(
    runtime: Runtime, ctx: SyncContext, salesforce
) -> None:
    first = fixture_orders()[0]
    second = dict(first, id=first["id"] + 1, name="#1002", order_number=1002)
    sync_order_state(parse_rest_order(first), ctx)
    salesforce.reset_stats()
    sync_order_state(parse_rest_order(second), ctx)
    assert salesforce.api_calls() == 1  # a known customer costs exactly one call
    assert (
        count(runtime, "Account"),
        count(runtime, "Contact"),
        count(runtime, "Opportunity"),
    ) == (1, 1, 2)


def test_a_new_customer_costs_at_most_two_calls(ctx: SyncContext, salesforce) -> None:
    salesforce.reset_stats()
    sync_order_state(parse_rest_order(fixture_orders()[0]), ctx)
    assert salesforce.api_calls() <= 2


def test_a_stale_payload_changes_nothing(runtime: Runtime, ctx: SyncContext, salesforce) -> None:
    payload = fixture_orders()[0]
    newer = dict(payload, updated_at="2030-01-01T00:00:00Z", current_total_price="10.00")
    sync_order_state(parse_rest_order(newer), ctx)
    salesforce.reset_stats()
    outcome = sync_order_state(parse_rest_order(payload), ctx)
    assert outcome.action == "stale"
    assert salesforce.api_calls() == 0
    assert opportunities(runtime)[0]["Amount"] == 10.0


def test_a_salesforce_users_stage_change_survives_a_resync(
    runtime: Runtime, ctx: SyncContext
) -> None:
    payload = fixture_orders()[0]
    sync_order_state(parse_rest_order(payload), ctx)
    [opp] = opportunities(runtime)
    runtime.salesforce._call(  # a Salesforce user moves the deal along
        lambda sf: sf.Opportunity.update(opp["Id"], {"StageName": "Qualification"})
    )
    edited = dict(payload, updated_at="2030-01-01T00:00:00Z", current_total_price="1.00")
    assert sync_order_state(parse_rest_order(edited), ctx).action == "updated"
    [after] = opportunities(runtime)
    assert (after["StageName"], after["Amount"]) == ("Qualification", 1.0)


def test_a_cancellation_moves_the_stage_to_closed_lost(runtime: Runtime, ctx: SyncContext) -> None:
    payload = fixture_orders()[0]
    sync_order_state(parse_rest_order(payload), ctx)
    cancelled = dict(
        payload, updated_at="2030-01-01T00:00:00Z", cancelled_at="2030-01-01T00:00:00Z"
    )
    sync_order_state(parse_rest_order(cancelled), ctx)
    assert opportunities(runtime)[0]["StageName"] == "Closed Lost"


def test_an_existing_contact_with_that_email_is_adopted_not_duplicated(
    runtime: Runtime, ctx: SyncContext
) -> None:
    payload = fixture_orders()[0]
    email = parse_rest_order(payload).customer.email
    runtime.salesforce._call(lambda sf: sf.Contact.create({"LastName": "Existing", "Email": email}))
    sync_order_state(parse_rest_order(payload), ctx)
    [contact] = soql(runtime, "SELECT Id, External_Shopify_ID__c FROM Contact")
    assert contact["External_Shopify_ID__c"] == str(payload["customer"]["id"])


@pytest.mark.parametrize(
    "email", ["o'brien@example.com", "o'brien+a%_b@example.com", "x'or'1'='1@example.com"]
)
def test_soql_metacharacters_in_emails_are_harmless(
    runtime: Runtime, ctx: SyncContext, email: str
) -> None:
    payload = dict(fixture_orders()[0], customer=None, email=email, contact_email=email)
    outcome = sync_order_state(parse_rest_order(payload), ctx)
    assert outcome.action == "created"
    again = dict(payload, id=payload["id"] + 5, name="#2002")
    sync_order_state(parse_rest_order(again), ctx)  # the second guest order finds the Contact
    assert count(runtime, "Contact") == 1


def test_an_email_salesforce_rejects_fails_permanently_with_its_code(ctx: SyncContext) -> None:
    email = "a\\b'--@example.com"
    payload = dict(fixture_orders()[0], customer=None, email=email, contact_email=email)
    with pytest.raises(InvalidOrder) as caught:
        sync_order_state(parse_rest_order(payload), ctx)
    assert (caught.value.code, caught.value.stage) == ("INVALID_EMAIL_ADDRESS", "contact")
