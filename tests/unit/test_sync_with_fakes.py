"""The sync-order path's decisions over the in-memory fakes of both adapters (tests/fakes.py):
fetch from Shopify, map, decide how to write, write, remember. The same steps the sync-order
flow and the drain compose (``fetch_order``, ``runtime.sync_context``, ``sync_order_state``,
``with_batch_lookups``); no HTTP, no Prefect server. The wire stays the sandbox tier's.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from state import StateStore
from tasks.core.errors import PermanentError
from tasks.core.mapping_config import MappingConfig
from tasks.runtime import Runtime
from tasks.settings import Settings
from tasks.steps import fetch_order
from tasks.sync import sync_order_state, sync_prepared, with_batch_lookups
from tests.conftest import shopify_fixture
from tests.fakes import FakeSalesforce, FakeShopify

ORDER_ID = "5630194913357"
EMAIL = "tomas.lindqvist@example.org"


def node(**changes: Any) -> dict[str, Any]:
    """The fixture's GraphQL order node, with ``changes``."""
    return {**copy.deepcopy(shopify_fixture("order_graphql.json")), **changes}


def fake_runtime(
    tmp_path: Path,
    salesforce: FakeSalesforce,
    shopify: FakeShopify,
    mapping: MappingConfig | None = None,
) -> Runtime:
    """A runtime over the fakes, with a state store in ``tmp_path`` (close it afterwards)."""
    settings = Settings(data_dir=tmp_path, shop_timezone="America/Los_Angeles")
    if mapping is not None:
        settings = settings.model_copy(update={"mapping": mapping})
    return Runtime(settings, StateStore.open(settings.state_url), salesforce, shopify)  # type: ignore[arg-type]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = fake_runtime(tmp_path, FakeSalesforce(), FakeShopify([node()]))
    yield runtime
    runtime.close()


def fakes(runtime: Runtime) -> tuple[FakeSalesforce, FakeShopify]:
    assert isinstance(runtime.salesforce, FakeSalesforce)
    assert isinstance(runtime.shopify, FakeShopify)
    return runtime.salesforce, runtime.shopify


def key_field(runtime: Runtime, sobject: str) -> str:
    return runtime.settings.mapping.key_field(sobject)


def test_an_order_is_written_in_one_call_and_an_unchanged_one_not_again(runtime: Runtime) -> None:
    salesforce, shopify = fakes(runtime)
    ctx = runtime.sync_context()
    order = fetch_order.fn(runtime.shopify, ORDER_ID)

    first = sync_order_state(order, ctx)
    again = sync_order_state(fetch_order.fn(runtime.shopify, ORDER_ID), ctx)

    assert (first.action, again.action) == ("created", "unchanged")
    assert salesforce.calls["write_order"] == 1
    [opportunity] = salesforce.rows("Opportunity")
    [contact] = salesforce.rows("Contact")
    [account] = salesforce.rows("Account")
    assert opportunity[key_field(runtime, "Opportunity")] == ORDER_ID
    assert opportunity["ContactId"] == contact["Id"] == first.contact_id
    assert opportunity["AccountId"] == account["Id"] == first.account_id
    assert runtime.store.ledger(ORDER_ID).opportunity_id == opportunity["Id"]
    assert shopify.calls == 2  # the two fetches: a configured shop timezone is not asked for


def test_the_shop_timezone_comes_from_shopify_when_not_configured(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    shopify = FakeShopify([node()], timezone="Europe/Oslo")
    runtime = Runtime(settings, StateStore.open(settings.state_url), FakeSalesforce(), shopify)  # type: ignore[arg-type]
    try:
        assert runtime.sync_context().shop_timezone == "Europe/Oslo"
        assert shopify.calls == 1
    finally:
        runtime.close()


def test_a_guest_adopts_the_contact_a_user_created_with_the_same_email(runtime: Runtime) -> None:
    salesforce, shopify = fakes(runtime)
    shopify.nodes[ORDER_ID] = node(customer=None)
    seeded = salesforce.seed("Contact", LastName="Lindqvist", Email=EMAIL.upper())

    outcome = sync_order_state(fetch_order.fn(shopify, ORDER_ID), runtime.sync_context())

    assert outcome.action == "created"
    assert [c["Id"] for c in salesforce.rows("Contact")] == [seeded]  # adopted, not duplicated
    [opportunity] = salesforce.rows("Opportunity")
    assert opportunity["ContactId"] == seeded == outcome.contact_id
    assert salesforce.calls["contacts_by_emails"] == 1


def test_an_opportunity_a_user_deleted_is_recreated_whole(runtime: Runtime) -> None:
    salesforce, shopify = fakes(runtime)
    ctx = runtime.sync_context()
    sync_order_state(fetch_order.fn(shopify, ORDER_ID), ctx)
    [deleted] = salesforce.rows("Opportunity")
    salesforce.user_deletes("Opportunity", deleted["Id"])
    money = {"shopMoney": {"amount": "90.00", "currencyCode": "USD"}}
    shopify.nodes[ORDER_ID] = node(
        updatedAt="2026-03-06T10:00:00Z",
        currentTotalPriceSet={**money, "presentmentMoney": money["shopMoney"]},
    )

    outcome = sync_order_state(fetch_order.fn(shopify, ORDER_ID), ctx)

    assert outcome.action == "recreated"
    [opportunity] = salesforce.rows("Opportunity")
    assert opportunity["Id"] != deleted["Id"]
    assert (
        opportunity["Id"] == outcome.opportunity_id == runtime.store.ledger(ORDER_ID).opportunity_id
    )
    assert opportunity["StageName"]
    assert opportunity["CloseDate"]
    assert salesforce.calls["write_order"] == 3  # created, refused update, recreated


def test_an_order_shopify_does_not_have_is_a_permanent_failure(runtime: Runtime) -> None:
    with pytest.raises(PermanentError) as caught:
        fetch_order.fn(runtime.shopify, "1")
    assert (caught.value.code, caught.value.stage) == ("ORDER_NOT_FOUND", "fetch")


def test_a_batch_asks_for_its_new_customers_emails_once(runtime: Runtime) -> None:
    salesforce, shopify = fakes(runtime)
    seeded = salesforce.seed("Contact", LastName="Lindqvist", Email=EMAIL)
    order = fetch_order.fn(shopify, ORDER_ID)

    base = runtime.sync_context()
    prepared = base.preparer()(order)
    ctx = with_batch_lookups([prepared], base)

    assert salesforce.calls["contacts_by_emails"] == 1
    assert ctx.contacts_by_email is not None
    assert [c["Id"] for c in ctx.contacts_by_email[EMAIL]] == [seeded]
    outcome = sync_prepared(prepared, ctx)
    assert outcome.contact_id == seeded  # adopted from the batch's answer, no second lookup
    assert salesforce.calls["contacts_by_emails"] == 1


# -- placeholders of redacted buyer data, for records the customer cache does not know -------------


def redacted_node() -> dict[str, Any]:
    """The fixture's order with the buyer's data withheld, but for the customer's phone: the
    Account is named ``Shopify customer …`` and the Contact's LastName is ``Unknown``."""
    order = node(email=None, phone=None)
    personal = dict.fromkeys(("firstName", "lastName", "company", "address1", "address2", "phone"))
    order["customer"].update(firstName=None, lastName=None, email=None, defaultEmailAddress=None)
    order["customer"]["defaultAddress"].update(personal)
    order["billingAddress"].update(personal)
    return order


def test_a_redacted_order_keeps_the_real_names_salesforce_has_asked_once(tmp_path: Path) -> None:
    salesforce = FakeSalesforce()
    runtime = fake_runtime(tmp_path, salesforce, FakeShopify([redacted_node()]))
    customer = "7029385120774"
    account = salesforce.seed(
        "Account", Name="Lindqvist AB", **{key_field(runtime, "Account"): f"shop_cust_{customer}"}
    )
    contact = salesforce.seed(
        "Contact", LastName="Lindqvist", **{key_field(runtime, "Contact"): customer}
    )
    try:
        base = runtime.sync_context()
        prepared = base.preparer()(fetch_order.fn(runtime.shopify, ORDER_ID))
        assert prepared.records is not None
        assert prepared.records.contact is not None
        assert prepared.records.contact["LastName"] == "Unknown"  # a placeholder
        ctx = with_batch_lookups([prepared], base)
        assert salesforce.calls["lookups_for"] == 1  # the batch asked, once
        outcome = sync_prepared(prepared, ctx)
    finally:
        runtime.close()
    assert (outcome.action, outcome.account_id, outcome.contact_id) == ("created", account, contact)
    assert salesforce.db["Account"][account]["Name"] == "Lindqvist AB"
    assert salesforce.db["Contact"][contact]["LastName"] == "Lindqvist"
    assert salesforce.calls["ids_by_keys"] == 0  # nothing asked again order by order
    assert salesforce.calls["write_order"] == 1


def test_a_redacted_order_of_a_new_customer_creates_its_placeholders(tmp_path: Path) -> None:
    salesforce = FakeSalesforce()
    runtime = fake_runtime(tmp_path, salesforce, FakeShopify([redacted_node()]))
    try:
        outcome = sync_order_state(
            fetch_order.fn(runtime.shopify, ORDER_ID), runtime.sync_context()
        )
        known = runtime.store.customer("7029385120774")
    finally:
        runtime.close()
    assert outcome.action == "created"
    [account] = salesforce.rows("Account")
    [contact] = salesforce.rows("Contact")
    assert (account["Name"], contact["LastName"]) == ("Shopify customer 7029385120774", "Unknown")
    assert salesforce.calls["ids_by_keys"] == 1  # one order on its own: asked for it alone
    assert known == (account["Id"], contact["Id"])


def test_an_order_without_placeholders_asks_nothing_more(runtime: Runtime) -> None:
    salesforce, _ = fakes(runtime)
    ctx = runtime.sync_context()
    sync_order_state(fetch_order.fn(runtime.shopify, ORDER_ID), ctx)
    assert salesforce.calls["ids_by_keys"] == salesforce.calls["lookups_for"] == 0
    assert salesforce.calls["write_order"] == 1


def test_create_only_account_and_contact_fields_are_written_once_then_left_to_users(
    tmp_path: Path,
) -> None:
    from sandbox.salesforce.schema import OrgProfile
    from tasks.core.mapping_table import default_ownership

    create_only = default_ownership()[1]
    mapping = MappingConfig(
        account_fields={"Shopify_Source__c": "order.financial_status"},
        contact_fields={"Shopify_Source__c": "order.financial_status"},
        create_only_fields={
            **create_only,
            "Account": [*create_only["Account"], "Shopify_Source__c"],
            "Contact": [*create_only["Contact"], "Shopify_Source__c"],
        },
    )
    custom = tuple(
        {"object": sobject, "name": "Shopify_Source__c", "type": "string", "length": 40}
        for sobject in ("Account", "Contact")
    )
    salesforce, shopify = FakeSalesforce(OrgProfile(custom_fields=custom)), FakeShopify([node()])
    runtime = fake_runtime(tmp_path, salesforce, shopify, mapping)
    try:
        ctx = runtime.sync_context()
        sync_order_state(fetch_order.fn(shopify, ORDER_ID), ctx)
        [account], [contact] = salesforce.rows("Account"), salesforce.rows("Contact")
        assert account["Shopify_Source__c"] == contact["Shopify_Source__c"] == "partially_refunded"
        account["Shopify_Source__c"] = contact["Shopify_Source__c"] = "set by a sales rep"

        shopify.nodes[ORDER_ID] = node(
            updatedAt="2026-03-06T10:00:00Z", displayFinancialStatus="REFUNDED"
        )
        again = sync_order_state(fetch_order.fn(shopify, ORDER_ID), ctx)
        assert again.action == "updated"
        assert account["Shopify_Source__c"] == "set by a sales rep"
        assert contact["Shopify_Source__c"] == "set by a sales rep"
    finally:
        runtime.close()
