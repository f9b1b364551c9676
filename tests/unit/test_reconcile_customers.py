"""Reconcile's table-driven diff and repair for Account and Contact fields, and for fields added
by configuration (tasks/core/diff.py; the compared fields come from tasks/core/mapping_table.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from tasks.core.diff import diff
from tasks.core.diff_columns import (
    ActualColumns,
    ExpectedColumns,
    RecordColumns,
    opportunity_fields,
    readback_fields,
)
from tasks.core.mapping import MappingConfig, OrgSchema, SalesforceRecords
from tasks.core.repair_plan import plan_repair

CONFIG = MappingConfig(
    opportunity_fields={"Shopify_Status__c": "order.financial_status"},
    account_fields={"Shopify_Customer_Number__c": "order.customer.id"},
)
ACC = "External_Shopify_Account_ID__c"
CON = "External_Shopify_ID__c"
OPP = "External_Shopify_Order_ID__c"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def records(
    order_id: str,
    customer: str = "7",
    *,
    phone: str | None = "555-0100",
    email: str = "ada@example.com",
    status: str = "paid",
) -> SalesforceRecords:
    account: dict[str, Any] = {"Name": "Ada Lovelace", ACC: f"shop_cust_{customer}"}
    if phone:
        account["Phone"] = phone
    account["Shopify_Customer_Number__c"] = customer
    return SalesforceRecords(
        account=account,
        contact={"LastName": "Lovelace", "Email": email, CON: customer},
        opportunity={
            "Name": f"Order {order_id}",
            "StageName": "New Order",
            "CloseDate": "2026-12-31",
            "Amount": Decimal("10.00"),
            "Shopify_Status__c": status,
            OPP: order_id,
        },
        account_key=f"shop_cust_{customer}",
        contact_key=customer,
        order_key=order_id,
        truncations=[],
        contact_lookup_email=email,
    )


def expected(*items: tuple[SalesforceRecords, datetime]) -> pd.DataFrame:
    columns = ExpectedColumns(CONFIG)
    for item, updated_at in items:
        columns.add(f"#{item.order_key}", item, updated_at)
    return columns.frame()


def opportunity(order_id: str, customer: str = "7", status: str = "paid") -> dict[str, Any]:
    return {
        "Id": f"006{order_id}",
        OPP: order_id,
        "Name": f"Order {order_id}",
        "Amount": 10.0,
        "StageName": "Closed Won",
        "CloseDate": "2026-12-31",
        "Shopify_Status__c": status,
        "Account": {ACC: f"shop_cust_{customer}"},
    }


def account(customer: str = "7", **fields: Any) -> dict[str, Any]:
    row = {"Id": f"001{customer}", ACC: f"shop_cust_{customer}", "Name": "Ada Lovelace"}
    row |= {"Phone": "555-0100", "Shopify_Customer_Number__c": customer}
    return row | fields


def contact(customer: str = "7", **fields: Any) -> dict[str, Any]:
    row = {"Id": f"003{customer}", CON: customer, "LastName": "Lovelace"}
    return row | {"Email": "ada@example.com"} | fields


def frames(sobject: str, *rows: dict[str, Any]) -> pd.DataFrame:
    columns = RecordColumns(sobject, CONFIG)
    columns.extend(rows)
    return columns.frame()


def run(
    items: list[tuple[SalesforceRecords, datetime]],
    opportunities: list[dict[str, Any]],
    accounts: list[dict[str, Any]],
    contacts: list[dict[str, Any]],
) -> Any:
    actual = ActualColumns(CONFIG)
    actual.extend(opportunities)
    return diff(
        expected(*items),
        actual.frame(),
        accounts=frames("Account", *accounts),
        contacts=frames("Contact", *contacts),
    )


def test_in_sync_across_all_three_objects() -> None:
    result = run([(records("1"), T0)], [opportunity("1")], [account()], [contact()])
    assert result.counts()["in_sync"] == 1
    assert result.drifted_records() == {"Opportunity": 0, "Account": 0, "Contact": 0}


def test_account_contact_and_added_fields_drift() -> None:
    result = run(
        [(records("1"), T0), (records("2", "8"), T0), (records("3", "9"), T0)],
        [opportunity("1", status="refunded"), opportunity("2", "8"), opportunity("3", "9")],
        [account(), account("8", Phone="999", Shopify_Customer_Number__c="x"), account("9")],
        [contact(), contact("8"), contact("9", Email="OTHER@example.com")],
    )
    assert result.drift_fields() == {
        "1": ["Shopify_Status__c"],
        "2": ["Account.Phone", "Account.Shopify_Customer_Number__c"],
        "3": ["Contact.Email"],
    }
    details = dict(zip(result.orders["order_id"], result.orders["drift"], strict=True))
    assert details["1"] == "Shopify_Status__c: refunded → paid"
    assert (
        details["2"] == "Account.Phone: 999 → 555-0100; Account.Shopify_Customer_Number__c: x → 8"
    )
    assert details["3"] == "Contact.Email: other@example.com → ada@example.com"
    assert result.drifted_records() == {"Opportunity": 1, "Account": 1, "Contact": 1}


def test_e_mail_case_is_not_drift() -> None:
    result = run(
        [(records("1"), T0)], [opportunity("1")], [account()], [contact(Email="ADA@Example.COM")]
    )
    assert result.counts()["in_sync"] == 1


def test_a_value_shopify_lacks_is_not_drift() -> None:
    result = run([(records("1", phone=None), T0)], [opportunity("1")], [account(Phone="1")], [])
    assert result.counts()["in_sync"] == 1


def test_records_not_read_back_are_not_compared() -> None:
    result = run([(records("1"), T0)], [opportunity("1")], [], [])
    assert result.counts()["in_sync"] == 1


def test_missing_and_duplicate_orders_are_not_compared_field_by_field() -> None:
    result = run(
        [(records("1"), T0), (records("2"), T0)],
        [opportunity("2"), {**opportunity("2"), "Id": "006X"}],
        [account(Phone="999")],
        [],
    )
    statuses = dict(zip(result.orders["order_id"], result.orders["status"], strict=True))
    assert statuses == {"1": "missing", "2": "duplicate"}


def test_orders_of_one_customer_expect_what_the_webhook_path_leaves() -> None:
    """Per field, the newest order's value; where it has none, the newest that has one."""
    newest = T0.replace(day=2)
    items = [
        (records("2", phone=None, email="new@example.com"), newest),
        (records("1", phone="555-0199", email="old@example.com"), T0),
    ]
    frame = expected(*items)
    assert frame["Account.Phone"].tolist() == ["555-0199", "555-0199"]
    assert frame["Contact.Email"].tolist() == ["new@example.com", "new@example.com"]


def test_repair_writes_owned_fields_of_drifted_accounts_and_contacts() -> None:
    items = [
        ("drifted", records("1"), ["Account.Phone"]),
        ("drifted", records("2", "8"), ["Contact.Email"]),
    ]
    plan = plan_repair(items, CONFIG)
    assert plan.accounts == [
        {
            "Name": "Ada Lovelace",
            "Phone": "555-0100",
            "Shopify_Customer_Number__c": "7",
            ACC: "shop_cust_7",
        }
    ]
    assert plan.account_orders == {"shop_cust_7": ["1"]}
    assert plan.contacts == [{"LastName": "Lovelace", "Email": "ada@example.com", CON: "8"}]
    assert plan.contact_orders == {"8": ["2"]}
    assert "Account" not in plan.contacts[0]  # Contact.AccountId stays create-only
    assert [o[OPP] for o in plan.opportunities] == ["1", "2"]
    assert all("Contact" not in o and "StageName" not in o for o in plan.opportunities)
    assert plan.actions == {"1": "update", "2": "update"}


def test_readback_fields_follow_the_tables_and_the_org() -> None:
    assert readback_fields("Account", CONFIG, OrgSchema()) == [
        "Id",
        ACC,
        "Name",
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
        "Phone",
        "Shopify_Customer_Number__c",
    ]
    org = OrgSchema(fields={"Contact": frozenset({"Id", CON, "LastName", "Email"})})
    assert readback_fields("Contact", CONFIG, org) == ["Id", CON, "LastName", "Email"]
    assert "Shopify_Status__c" in opportunity_fields(CONFIG, OrgSchema())


# -- guests' Contacts (no key): read back by the Opportunity's ContactId -------------------------


def guest(
    order_id: str,
    *,
    email: str = "guest@example.net",
    phone: str | None = "555-0101",
    last_name: str = "Guest",
) -> SalesforceRecords:
    """A guest's order: its Contact has no key and is found by e-mail."""
    contact: dict[str, Any] = {"FirstName": "Grace", "LastName": last_name, "Email": email}
    if phone:
        contact["Phone"] = phone
    base = records(order_id, email=email)
    return SalesforceRecords(
        account={"Name": "Grace Guest", ACC: "shop_guest_abc"},
        contact=contact,
        opportunity=base.opportunity,
        account_key="shop_guest_abc",
        contact_key=None,
        order_key=order_id,
        truncations=[],
        contact_lookup_email=email,
    )


def guest_opportunity(order_id: str, contact_id: str | None = "003G") -> dict[str, Any]:
    row = opportunity(order_id) | {"Account": {ACC: "shop_guest_abc"}}
    return row | {"ContactId": contact_id}


def guest_contact(contact_id: str = "003G", **fields: Any) -> dict[str, Any]:
    row = {"Id": contact_id, CON: None, "FirstName": "Grace", "LastName": "Guest"}
    return row | {"Email": "guest@example.net", "Phone": "555-0101"} | fields


def run_guests(
    items: list[tuple[SalesforceRecords, datetime]],
    opportunities: list[dict[str, Any]],
    contacts: list[dict[str, Any]],
    *,
    config: MappingConfig = CONFIG,
) -> Any:
    columns = ExpectedColumns(config)
    for item, updated_at in items:
        columns.add(f"#{item.order_key}", item, updated_at)
    actual = ActualColumns(config)
    actual.extend(opportunities)
    guests = RecordColumns("Contact", config, by_id=True)
    guests.extend(contacts)
    accounts = RecordColumns("Account", config)
    accounts.extend([account() | {ACC: "shop_guest_abc", "Name": "Grace Guest", "Phone": None}])
    return diff(
        columns.frame(),
        actual.frame(),
        accounts=accounts.frame(),
        contacts=frames("Contact"),
        guest_contacts=guests.frame(),
    )


def test_a_guests_contact_is_compared_through_its_opportunitys_contact_id() -> None:
    result = run_guests([(guest("1"), T0)], [guest_opportunity("1")], [guest_contact()])
    assert result.counts()["in_sync"] == 1

    edited = guest_contact(Phone="555-9999", FirstName="G.")
    result = run_guests([(guest("1"), T0)], [guest_opportunity("1")], [edited])
    assert result.drift_fields() == {"1": ["Contact.FirstName", "Contact.Phone"]}
    details = dict(zip(result.orders["order_id"], result.orders["drift"], strict=True))
    assert details["1"] == "Contact.FirstName: G. → Grace; Contact.Phone: 555-9999 → 555-0101"
    assert result.drifted_records() == {"Opportunity": 0, "Account": 0, "Contact": 1}
    assert result.guest_contacts() == {"1": "003G"}


def test_a_guests_e_mail_edited_in_salesforce_is_drift() -> None:
    edited = guest_contact(Email="someone.else@example.com")
    result = run_guests([(guest("1"), T0)], [guest_opportunity("1")], [edited])
    assert result.drift_fields() == {"1": ["Contact.Email"]}


def test_guest_placeholders_and_values_shopify_lacks_are_not_drift() -> None:
    from tasks.core.buyer import Placeholder

    redacted = guest("1", phone=None, last_name=Placeholder("Unknown"))
    contact = guest_contact(LastName="Hopper", Phone="555-7777")
    result = run_guests([(redacted, T0)], [guest_opportunity("1")], [contact])
    assert result.counts()["in_sync"] == 1


def test_a_guest_contact_not_read_back_or_keyed_is_not_compared_as_the_guests() -> None:
    other = guest_contact(Phone="1")
    # not linked, linked to a Contact not read back, linked to a customer's (keyed) Contact
    for opp, contacts in (
        (guest_opportunity("1", None), [other]),
        (guest_opportunity("1", "003X"), [other]),
        (guest_opportunity("1"), [other | {CON: "42"}]),
    ):
        result = run_guests([(guest("1"), T0)], [opp], contacts)
        assert result.counts()["in_sync"] == 1
        assert result.guest_contacts() == {}


def test_a_customers_contact_is_never_looked_up_by_contact_id() -> None:
    """A customer's order whose Opportunity links some Contact: compared by key only."""
    result = run_guests(
        [(records("1"), T0)],
        [opportunity("1") | {"ContactId": "003G"}],
        [guest_contact(Phone="1", LastName="Other")],
    )
    assert result.counts()["in_sync"] == 1


def test_orders_of_one_guest_expect_the_newest_orders_values() -> None:
    newest = T0.replace(day=2)
    items = [
        (guest("2", phone=None, last_name="Newer"), newest),
        (guest("1", phone="555-0199", last_name="Older"), T0),
        (guest("3", email="other@example.net", phone="555-0300"), T0),
    ]
    columns = ExpectedColumns(CONFIG)
    for item, updated_at in items:
        columns.add(f"#{item.order_key}", item, updated_at)
    frame = columns.frame().set_index("order_id")
    assert frame.loc[["1", "2"], "Contact.LastName"].tolist() == ["Newer", "Newer"]
    assert frame.loc[["1", "2"], "Contact.Phone"].tolist() == ["555-0199", "555-0199"]
    assert frame.loc["3", "Contact.Phone"] == "555-0300"
    assert frame["contact_key"].isna().all()


def test_opportunities_are_read_with_their_contact_id() -> None:
    assert "ContactId" in opportunity_fields(CONFIG, OrgSchema())
    no_contact = MappingConfig(owned_fields={"Contact": []})
    assert "ContactId" not in opportunity_fields(no_contact, OrgSchema())


def test_repair_updates_a_drifted_guests_contact_by_id() -> None:
    from tasks.core.buyer import Placeholder

    items = [
        ("drifted", guest("1", last_name=Placeholder("Unknown")), ["Contact.Phone"]),
        ("drifted", guest("2", phone="555-0202"), ["Contact.Phone"]),
    ]
    plan = plan_repair(items, CONFIG, guest_contacts={"1": "003G", "2": "003G"})
    # owned fields only, newest (last) order's values, never a placeholder, never a key
    assert plan.adoptions == [
        {"FirstName": "Grace", "LastName": "Guest", "Email": "guest@example.net",
         "Phone": "555-0202", "Id": "003G"}
    ]  # fmt: skip
    assert plan.adoption_orders == {"003G": ["1", "2"]}
    assert plan.guest_updates == ["003G"]
    assert plan.contacts == []
    assert plan.guest_contacts == []
    assert plan.counts()["adopted_contacts"] == 0
    assert plan.counts()["contacts"] == 1
    assert all("ContactId" not in o and "Contact" not in o for o in plan.opportunities)
    assert plan.actions == {"1": "update", "2": "update"}


def test_repair_of_a_drifted_guest_without_its_contact_id_writes_no_contact() -> None:
    plan = plan_repair([("drifted", guest("1"), ["Contact.Phone"])], CONFIG)
    assert plan.adoptions == []
    assert plan.contacts == []
    assert plan.actions == {"1": "update"}


def test_missing_orders_of_one_guest_get_the_newest_orders_values() -> None:
    """Like the webhook path, which writes each order's values in turn (oldest update first)."""
    older, newer = guest("1", phone="555-0001"), guest("2", phone="555-0002", last_name="New")
    plan = plan_repair([("missing", older, []), ("missing", newer, [])], CONFIG)
    (body,) = plan.guest_contacts
    assert (body["Phone"], body["LastName"]) == ("555-0002", "New")
    assert plan.guest_orders == {"guest@example.net": ["1", "2"]}

    found = {"guest@example.net": [{"Id": "003K", "Email": "guest@example.net", CON: None}]}
    plan = plan_repair([("missing", older, []), ("missing", newer, [])], CONFIG, found)
    (adopted,) = plan.adoptions
    assert (adopted["Id"], adopted["Phone"], adopted["LastName"]) == ("003K", "555-0002", "New")
    assert plan.linked_contacts == {"1": "003K", "2": "003K"}


# -- Person Account orgs: the person's fields live on the Account, read back by its key ----------


def test_person_fields_on_the_account_are_compared_on_person_account_orgs() -> None:
    org = OrgSchema(person_accounts=True)
    person = SalesforceRecords(
        account={
            "FirstName": "Ada",
            "LastName": "Lovelace",
            "PersonEmail": "ada@example.com",
            "Phone": "555-0100",
            ACC: "shop_cust_7",
        },
        contact=None,
        opportunity=records("1").opportunity,
        account_key="shop_cust_7",
        contact_key=None,
        order_key="1",
        truncations=[],
        contact_lookup_email=None,
    )
    columns = ExpectedColumns(CONFIG, org=org)
    columns.add("#1", person, T0)
    actual = ActualColumns(CONFIG, org=org)
    actual.extend([opportunity("1")])
    accounts = RecordColumns("Account", CONFIG, org)
    row = {"Id": "001P", ACC: "shop_cust_7", "FirstName": "Ada", "LastName": "Lovelace"}
    accounts.extend([row | {"PersonEmail": "OTHER@example.com", "Phone": "555-0100"}])
    assert "PersonEmail" in readback_fields("Account", CONFIG, org)
    result = diff(columns.frame(), actual.frame(), accounts=accounts.frame())
    assert result.drift_fields() == {"1": ["Account.PersonEmail"]}
    assert result.drifted_records()["Account"] == 1
    plan = plan_repair([("drifted", person, ["Account.PersonEmail"])], CONFIG)
    assert plan.accounts[0]["PersonEmail"] == "ada@example.com"
