"""Real-org states on the webhook path's shared core (issue 13, point 4): records that users
merged, deleted or already had, a ledger that does not know the order, and whose address goes
on the customer's records. Both sandboxes over loopback; Salesforce changes are made the way a
user would (REST, or the sandbox's merge helper), and read back through the product's gateway.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from state import StateStore
from tasks.core.errors import SyncError
from tasks.core.orders import parse_rest_order
from tasks.runtime import Runtime
from tasks.sync import SyncContext, sync_order_state, with_batch_lookups
from tests.conftest import shopify_fixture
from tests.integration.conftest import soql

OPPORTUNITY = (
    "SELECT Id, StageName, CloseDate, Amount, AccountId, ContactId, "
    "Account.External_Shopify_Account_ID__c FROM Opportunity"
)
CONTACT = "SELECT Id, AccountId, Email, Phone, External_Shopify_ID__c FROM Contact"
ACCOUNT = (
    "SELECT Id, Name, Phone, BillingStreet, BillingCity, External_Shopify_Account_ID__c "
    "FROM Account"
)
LATER = "2030-01-01T00:00:00Z"


def maren() -> dict[str, Any]:
    """A fixture order of Maren Okafor, a customer with a default address, billed to herself."""
    return shopify_fixture("order.json")["order"]


def another(payload: dict[str, Any], n: int, **changes: Any) -> dict[str, Any]:
    """A later order of the same buyer."""
    return dict(payload, id=payload["id"] + n, name=f"#{1001 + n}", **changes)


def guest(email: str | None = "guest@example.com", **changes: Any) -> dict[str, Any]:
    return dict(maren(), customer=None, email=email, contact_email=email, **changes)


def sync(payload: dict[str, Any], ctx: SyncContext) -> str:
    return sync_order_state(parse_rest_order(payload), ctx).action


def rows(runtime: Runtime, text: str) -> list[dict[str, Any]]:
    return soql(runtime, text)


def by_user(runtime: Runtime, action: Any) -> Any:
    """Something a Salesforce user does (through the same org, outside the sync)."""
    return runtime.salesforce._call(action)


# -- item 3: cached records that a user deleted or merged -------------------------------------


def test_a_guest_contact_deleted_in_salesforce_is_forgotten_and_the_next_order_syncs(
    runtime: Runtime, ctx: SyncContext, salesforce
) -> None:
    assert sync(guest(), ctx) == "created"
    [gone] = rows(runtime, CONTACT)
    by_user(runtime, lambda sf: sf.Contact.delete(gone["Id"]))
    # Before: PATCH Contact/<cached id> → ENTITY_IS_DELETED on this and every later order.
    second = another(guest(), 1)
    salesforce.reset_stats()
    assert sync(second, ctx) == "created"
    assert salesforce.api_calls() == 3  # refused by Id, looked up by e-mail, written again
    [contact] = rows(runtime, CONTACT)
    assert contact["Id"] != gone["Id"]
    [opportunity] = rows(
        runtime, f"{OPPORTUNITY} WHERE External_Shopify_Order_ID__c = '{second['id']}'"
    )
    assert opportunity["ContactId"] == contact["Id"]
    key = ctx.preparer()(parse_rest_order(second)).customer
    assert key is not None
    assert ctx.store.customer(key) == (opportunity["AccountId"], contact["Id"])


def test_a_contact_merged_into_another_is_resolved_to_the_survivor(
    runtime: Runtime, ctx: SyncContext, salesforce
) -> None:
    payload = maren()
    sync(payload, ctx)
    [ours] = rows(runtime, CONTACT)
    email = payload["customer"]["email"]
    survivor = by_user(runtime, lambda sf: sf.Contact.create({"LastName": "N", "Email": email}))
    merged = salesforce.control.post(
        "/__sandbox/merge",
        json={"object": "Contact", "survivor": survivor["id"], "losers": [ours["Id"]]},
    )
    merged.raise_for_status()
    # Before: the upsert by key created a new Contact beside the survivor, undoing the merge.
    salesforce.reset_stats()
    assert sync(another(payload, 1), ctx) == "created"
    assert salesforce.api_calls() == 3  # refused by Id, looked up by e-mail, written again
    [contact] = rows(runtime, CONTACT)
    assert contact["Id"] == survivor["id"]
    assert contact["External_Shopify_ID__c"] == str(payload["customer"]["id"])
    assert {o["ContactId"] for o in rows(runtime, OPPORTUNITY)} == {survivor["id"]}
    # The next order is back to one call: the survivor is the cached Contact now.
    salesforce.reset_stats()
    assert sync(another(payload, 2), ctx) == "created"
    assert salesforce.api_calls() == 1


def test_an_account_merged_into_another_is_resolved_to_the_survivor(
    runtime: Runtime, ctx: SyncContext, salesforce
) -> None:
    payload = maren()
    sync(payload, ctx)
    [ours] = rows(runtime, "SELECT Id FROM Account")
    survivor = by_user(runtime, lambda sf: sf.Account.create({"Name": "Kept by the user"}))
    salesforce.control.post(
        "/__sandbox/merge",
        json={"object": "Account", "survivor": survivor["id"], "losers": [ours["Id"]]},
    ).raise_for_status()
    # Before: the upsert by key created a new Account beside the survivor, undoing the merge.
    salesforce.reset_stats()
    assert sync(another(payload, 1), ctx) == "created"
    assert salesforce.api_calls() == 3  # refused by Id, survivor found, written again
    [account] = rows(runtime, "SELECT Id, External_Shopify_Account_ID__c FROM Account")
    assert account["Id"] == survivor["id"]
    key = f"shop_cust_{payload['customer']['id']}"
    assert account["External_Shopify_Account_ID__c"] == key
    assert {o["AccountId"] for o in rows(runtime, OPPORTUNITY)} == {survivor["id"]}
    # The next order is back to one call: the survivor is the cached Account now.
    salesforce.reset_stats()
    assert sync(another(payload, 2), ctx) == "created"
    assert salesforce.api_calls() == 1
    assert len(rows(runtime, "SELECT Id FROM Account")) == 1


def test_a_deleted_account_is_created_again(runtime: Runtime, ctx: SyncContext) -> None:
    payload = maren()
    sync(payload, ctx)
    [ours] = rows(runtime, "SELECT Id FROM Account")
    by_user(runtime, lambda sf: sf.Account.delete(ours["Id"]))
    assert sync(another(payload, 1), ctx) == "created"
    [account] = rows(runtime, "SELECT Id, External_Shopify_Account_ID__c FROM Account")
    assert account["Id"] != ours["Id"]
    opportunities = rows(runtime, OPPORTUNITY + " ORDER BY CreatedDate")
    assert opportunities[-1]["AccountId"] == account["Id"]


def test_a_merged_away_guest_contact_is_replayed_onto_the_survivor(
    runtime: Runtime, ctx: SyncContext, salesforce
) -> None:
    sync(guest(), ctx)
    [ours] = rows(runtime, CONTACT)
    survivor = by_user(
        runtime, lambda sf: sf.Contact.create({"LastName": "G", "Email": "guest@example.com"})
    )
    salesforce.control.post(
        "/__sandbox/merge",
        json={"object": "Contact", "survivor": survivor["id"], "losers": [ours["Id"]]},
    ).raise_for_status()
    assert sync(another(guest(), 1), ctx) == "created"
    assert [c["Id"] for c in rows(runtime, CONTACT)] == [survivor["id"]]


# -- item 4: adopting an existing Contact does not re-parent it -------------------------------


def test_an_adopted_contact_keeps_its_account_and_the_opportunity_gets_the_orders(
    runtime: Runtime, ctx: SyncContext
) -> None:
    payload = maren()
    email = payload["customer"]["email"]
    acme = by_user(runtime, lambda sf: sf.Account.create({"Name": "Acme Corp"}))["id"]
    existing = by_user(
        runtime,
        lambda sf: sf.Contact.create({"LastName": "Norman", "Email": email, "AccountId": acme}),
    )["id"]
    sync(payload, ctx)
    sync(another(payload, 1), ctx)  # the known customer's next order
    [contact] = rows(runtime, CONTACT)
    assert (contact["Id"], contact["AccountId"]) == (existing, acme)
    assert contact["External_Shopify_ID__c"] == str(payload["customer"]["id"])
    shop_account = f"shop_cust_{payload['customer']['id']}"
    for opportunity in rows(runtime, OPPORTUNITY):
        assert opportunity["Account"]["External_Shopify_Account_ID__c"] == shop_account
        assert opportunity["ContactId"] == existing


def test_a_contact_created_for_a_new_customer_gets_the_orders_account(
    runtime: Runtime, ctx: SyncContext
) -> None:
    sync(maren(), ctx)
    [contact] = rows(runtime, CONTACT)
    [opportunity] = rows(runtime, OPPORTUNITY)
    assert contact["AccountId"] == opportunity["AccountId"]


# -- item 5: create-only fields when the ledger does not know the order -----------------------


@pytest.mark.parametrize(
    "payload",
    [guest(email=None), maren()],
    ids=["guest without e-mail", "customer with a Contact"],
)
def test_a_lost_ledger_keeps_the_stage_and_close_date_users_set(
    runtime: Runtime, ctx: SyncContext, tmp_path: Path, payload: dict[str, Any]
) -> None:
    sync(payload, ctx)
    [opportunity] = rows(runtime, OPPORTUNITY)
    by_user(
        runtime,
        lambda sf: sf.Opportunity.update(
            opportunity["Id"], {"StageName": "Qualification", "CloseDate": "2031-05-05"}
        ),
    )
    amnesiac = replace(ctx, store=StateStore.open(f"sqlite+pysqlite:///{tmp_path / 'new.db'}"))
    edited = dict(payload, updated_at=LATER, current_total_price="12.34")
    assert sync(edited, amnesiac) == "updated"
    [after] = rows(runtime, OPPORTUNITY)
    assert (after["StageName"], after["CloseDate"]) == ("Qualification", "2031-05-05")
    assert after["Amount"] == 12.34


def test_a_batch_asks_once_whether_the_unknown_orders_exist(
    runtime: Runtime, ctx: SyncContext, salesforce, tmp_path: Path
) -> None:
    orders = [parse_rest_order(another(guest(email=None), n)) for n in range(1, 21)]
    for order in orders[:10]:  # ten already in Salesforce, then the state database is lost
        sync_order_state(order, ctx)
    stage_edits = rows(runtime, OPPORTUNITY)
    for opportunity in stage_edits:
        by_user(
            runtime,
            lambda sf, i=opportunity["Id"]: sf.Opportunity.update(
                i, {"StageName": "Qualification"}
            ),
        )
    amnesiac = replace(ctx, store=StateStore.open(f"sqlite+pysqlite:///{tmp_path / 'new.db'}"))
    salesforce.reset_stats()
    batch = with_batch_lookups(map(amnesiac.preparer(), orders), amnesiac)
    actions = [sync_order_state(order, batch).action for order in orders]
    assert actions == ["updated"] * 10 + ["created"] * 10
    calls = salesforce.api_calls()
    stages = [o["StageName"] for o in rows(runtime, OPPORTUNITY)]
    assert sorted(stages) == ["New Order"] * 10 + ["Qualification"] * 10
    assert calls == 20 + 1  # one composite each, one existence query in all


def test_one_unmappable_order_does_not_cost_the_batch_its_lookups(
    ctx: SyncContext, salesforce
) -> None:
    bad = parse_rest_order(another(maren(), 1, created_at="9999-12-31T23:00:00Z"))
    good = [parse_rest_order(another(guest(email=None), n)) for n in range(2, 5)]
    salesforce.reset_stats()
    new_customer = parse_rest_order(another(maren(), 5))
    prepare = ctx.preparer()
    with pytest.raises(SyncError):  # the drain's planning sets it aside (tests/unit/test_prepared)
        prepare(bad)
    batch = with_batch_lookups(map(prepare, [*good, new_customer]), ctx)
    assert batch.opportunity_ids == dict.fromkeys((o.id for o in good), None)
    assert batch.contacts_by_email == {"maren.okafor@example.net": []}
    assert salesforce.api_calls() == 2  # one e-mail query, one existence query


def test_orders_the_ledger_knows_cost_one_call_and_no_question(
    runtime: Runtime, ctx: SyncContext, salesforce
) -> None:
    payload = guest(email=None)
    sync(payload, ctx)
    salesforce.reset_stats()
    edited = dict(payload, updated_at=LATER, current_total_price="1.00")
    assert sync_order_state(parse_rest_order(edited), with_batch_lookups([], ctx)).action == (
        "updated"
    )
    assert salesforce.api_calls() == 1


# -- item 7: an Opportunity deleted by a user -------------------------------------------------


def test_an_opportunity_deleted_in_salesforce_is_recreated_whole(
    runtime: Runtime, ctx: SyncContext, salesforce
) -> None:
    payload = maren()
    sync(payload, ctx)
    [gone] = rows(runtime, OPPORTUNITY)
    by_user(runtime, lambda sf: sf.Opportunity.delete(gone["Id"]))
    edited = dict(payload, updated_at=LATER, current_total_price="5.00")
    # Before: REQUIRED_FIELD_MISSING (an update body has no StageName/CloseDate) → dead letter.
    salesforce.reset_stats()
    outcome = sync_order_state(parse_rest_order(edited), ctx)
    assert outcome.action == "recreated"
    assert salesforce.api_calls() == 2  # the refused update, then the whole create
    assert "deleted in Salesforce" in outcome.reason
    [opportunity] = rows(runtime, OPPORTUNITY)
    assert opportunity["Id"] != gone["Id"]
    assert (opportunity["StageName"], opportunity["CloseDate"]) == ("New Order", gone["CloseDate"])
    assert opportunity["Amount"] == 5.0
    assert opportunity["ContactId"] == gone["ContactId"]
    ledger = ctx.store.ledger(str(payload["id"]))
    assert ledger is not None
    assert ledger.opportunity_id == opportunity["Id"]


# -- item 14: whose address goes on the customer's records ------------------------------------


def without_default_address(payload: dict[str, Any]) -> dict[str, Any]:
    customer = {k: v for k, v in payload["customer"].items() if k != "default_address"}
    return dict(payload, customer=dict(customer, phone=None), phone=None)


def test_a_gift_billed_to_someone_else_leaves_the_customers_records_alone(
    runtime: Runtime, ctx: SyncContext
) -> None:
    payload = without_default_address(maren())
    payload["billing_address"] = dict(
        payload["billing_address"],
        first_name="Alice",
        last_name="Giver",
        name="Alice Giver",
        address1="1 Other Road",
        city="Elsewhere",
        phone="555-000-1111",
    )
    sync(payload, ctx)
    [account] = rows(runtime, ACCOUNT)
    [contact] = rows(runtime, CONTACT)
    assert (account["Name"], account["BillingCity"], account["Phone"]) == (
        "Maren Okafor",
        None,
        None,
    )
    assert contact["Phone"] is None


def test_the_customers_own_billing_address_is_copied(runtime: Runtime, ctx: SyncContext) -> None:
    payload = without_default_address(maren())  # billed to Maren Okafor herself
    sync(payload, ctx)
    [account] = rows(runtime, ACCOUNT)
    [contact] = rows(runtime, CONTACT)
    assert (account["BillingCity"], account["Phone"]) == ("Burlington", "802-555-0143")
    assert contact["Phone"] == "802-555-0143"


@pytest.mark.usefixtures("prefect_harness")
def test_replaying_the_dead_letter_of_a_deleted_opportunity_recreates_it(
    runtime: Runtime, shopify
) -> None:
    from flows.replay import replay_dead_letters
    from flows.sync_order import sync_order
    from tasks.core.errors import InvalidOrder
    from tasks.steps import dead_letter

    order_id = str(shopify.shop.generator.order_id(0))
    assert sync_order(order_id)["action"] == "created"
    [gone] = rows(runtime, f"{OPPORTUNITY} WHERE External_Shopify_Order_ID__c = '{order_id}'")
    by_user(runtime, lambda sf: sf.Opportunity.delete(gone["Id"]))
    shopify.shop.update_order(int(order_id), {"total_price": "77.25"})
    # What the next sync of that edit used to leave behind (and replay could never clear).
    missing = InvalidOrder(
        "Required fields are missing: [StageName, CloseDate]",
        code="REQUIRED_FIELD_MISSING",
        fields=["StageName", "CloseDate"],
        stage="opportunity",
    )
    dead_letter(runtime.store, order_id, missing, source="webhook", payload=None)
    result = replay_dead_letters()
    assert result["outcomes"] == {"replayed_recreated": 1}
    assert runtime.store.dead_letters() == []
    [opportunity] = rows(
        runtime, f"{OPPORTUNITY} WHERE External_Shopify_Order_ID__c = '{order_id}'"
    )
    assert opportunity["StageName"] in {"New Order", "Closed Lost"}
    assert opportunity["CloseDate"] == gone["CloseDate"]
