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
