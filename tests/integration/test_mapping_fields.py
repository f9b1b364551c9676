"""Owned fields added by configuration, end to end over loopback (issue 15, "mapping is declared
once"): a new Opportunity, Account and Contact field, each set only through
``SHOPSYNC_MAPPING__*_FIELDS``, is written by the webhook path (the drain), reported as drift by
reconcile after a Salesforce user edits it, and repaired by reconcile.

The org gets the custom fields the way an admin adds them (the Salesforce sandbox's
``custom_fields`` org option). Expected values come from the Shopify sandbox's own REST view of
the orders, not from the product's mapping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from flows.outcome import run_flow
from flows.reconcile import reconcile
from flows.sync_pending import sync_pending_orders
from state import Delivery, StateStore
from tasks.settings import Settings, get_settings
from tests.integration.conftest import SHOP, SalesforceHandle, ShopifyHandle
from tests.integration.test_reconcile import shop_orders, window

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.prefect]

ACC = "External_Shopify_Account_ID__c"
CON = "External_Shopify_ID__c"
OPP = "External_Shopify_Order_ID__c"
STATUS = "Shopify_Financial_Status__c"  # Opportunity, text
TOTAL = "Shopify_Order_Total__c"  # Opportunity, currency
CUSTOMER = "Shopify_Customer_Number__c"  # Account, text
EMAIL = "Shopify_Customer_Email__c"  # Contact, email
CUSTOM_FIELDS = [
    {"object": "Opportunity", "name": STATUS, "type": "string", "length": 40},
    {"object": "Opportunity", "name": TOTAL, "type": "currency"},
    {"object": "Account", "name": CUSTOMER, "type": "string", "length": 40},
    {"object": "Contact", "name": EMAIL, "type": "email", "length": 80},
]


@pytest.fixture
def configured(
    product: Settings, salesforce: SalesforceHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The org has the custom fields; the product maps them, by configuration only."""
    answer = salesforce.control.post("/__sandbox/org", json={"custom_fields": CUSTOM_FIELDS})
    answer.raise_for_status()
    fields = {
        "OPPORTUNITY": {STATUS: "order.financial_status", TOTAL: "order.total_price"},
        "ACCOUNT": {CUSTOMER: "order.customer.id"},
        "CONTACT": {EMAIL: "order.customer.email"},
    }
    for name, value in fields.items():
        monkeypatch.setenv(f"SHOPSYNC_MAPPING__{name}_FIELDS", json.dumps(value))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def three_customers(shopify: ShopifyHandle) -> list[dict[str, Any]]:
    """One live order each of three customers with an e-mail and a single order in the shop."""
    orders = shop_orders(shopify)
    per_customer: dict[str, list[dict[str, Any]]] = {}
    for order in orders:
        customer = order.get("customer")
        if customer:
            per_customer.setdefault(str(customer["id"]), []).append(order)
    chosen = [
        found[0]
        for found in per_customer.values()
        if len(found) == 1
        and found[0]["customer"].get("email")
        and not found[0].get("cancelled_at")
        and not found[0].get("test")
    ]
    assert len(chosen) >= 3
    return chosen[:3]


def drain(store: StateStore, orders: list[dict[str, Any]]) -> dict[str, Any]:
    """The webhook path: each order's ``orders/create`` in the inbox, then one drain run."""
    for order in orders:
        store.add_delivery(
            Delivery(
                webhook_id=f"mapping-{order['id']}",
                topic="orders/create",
                shop_domain=SHOP,
                body=json.dumps(order).encode(),
                order_id=str(order["id"]),
            )
        )
    _, result = run_flow(sync_pending_orders, max_seconds=60, batch_size=10, lease_seconds=30)
    return result


def by_key(salesforce: SalesforceHandle, sobject: str, key: str) -> dict[str, dict[str, Any]]:
    return {str(r[key]): r for r in salesforce.records(sobject) if r.get(key)}


def user_edits(salesforce: SalesforceHandle, sobject: str, record_id: str, **fields: Any) -> None:
    """A Salesforce user changes a record through the REST API."""
    token = salesforce.control.post("/__sandbox/tokens", json={}).json()["access_token"]
    answer = httpx.patch(
        f"{salesforce.url}/services/data/v62.0/sobjects/{sobject}/{record_id}",
        json=fields,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 204, answer.text


def custom_values(salesforce: SalesforceHandle, orders: list[dict[str, Any]]) -> dict[str, Any]:
    """The configured fields as Salesforce holds them, per order."""
    opportunities = by_key(salesforce, "Opportunity", OPP)
    accounts = by_key(salesforce, "Account", ACC)
    contacts = by_key(salesforce, "Contact", CON)
    values: dict[str, Any] = {}
    for order in orders:
        customer = str(order["customer"]["id"])
        opportunity = opportunities[str(order["id"])]
        values[str(order["id"])] = (
            opportunity.get(STATUS),
            float(opportunity.get(TOTAL) or 0),
            accounts[f"shop_cust_{customer}"].get(CUSTOMER),
            contacts[customer].get(EMAIL),
        )
    return values


def shopify_values(orders: list[dict[str, Any]]) -> dict[str, Any]:
    """What the configuration asks for, read off the Shopify sandbox's REST rendering."""
    return {
        str(order["id"]): (
            str(order["financial_status"]).lower(),
            float(order["total_price"]),
            str(order["customer"]["id"]),
            order["customer"]["email"],
        )
        for order in orders
    }


def test_fields_added_by_configuration_are_synced_drift_checked_and_repaired(
    configured: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    orders = three_customers(shopify)
    store = StateStore.open(configured.state_url)
    try:
        drained = drain(store, orders)
    finally:
        store.close()
    assert drained["outcomes"].get("created") == 3, drained

    # Synced on the webhook path.
    assert custom_values(salesforce, orders) == shopify_values(orders)

    # A Salesforce user edits one field of each object (three different orders' records).
    first, second, third = (str(o["id"]) for o in orders)
    opportunity = by_key(salesforce, "Opportunity", OPP)[first]
    account = by_key(salesforce, "Account", ACC)[f"shop_cust_{orders[1]['customer']['id']}"]
    contact = by_key(salesforce, "Contact", CON)[str(orders[2]["customer"]["id"])]
    user_edits(salesforce, "Opportunity", opportunity["Id"], **{STATUS: "edited by a user"})
    user_edits(salesforce, "Account", account["Id"], **{CUSTOMER: "not-the-customer"})
    user_edits(salesforce, "Contact", contact["Id"], **{EMAIL: "someone.else@example.com"})

    # Reported as drift (the orders never synced are missing; nothing else drifted).
    start, end = window(shopify)
    dry = reconcile(start, end, dry_run=True)
    assert dry["counts"]["drifted"] == 3, dry
    assert dry["drifted_records"] == {"Opportunity": 1, "Account": 1, "Contact": 1}
    assert dry["customers_read"] == {"Account": 3, "Contact": 3}
    report = pd.read_csv(dry["report_csv"], dtype=str).set_index("order_id")
    status = str(orders[0]["financial_status"]).lower()
    assert report.loc[first, "detail"] == f"{STATUS}: edited by a user → {status}"
    assert report.loc[second, "detail"] == (
        f"Account.{CUSTOMER}: not-the-customer → {orders[1]['customer']['id']}"
    )
    assert report.loc[third, "detail"] == (
        f"Contact.{EMAIL}: someone.else@example.com → {orders[2]['customer']['email'].lower()}"
    )

    # Repaired by reconcile, and the next run finds nothing to do for these orders.
    real = reconcile(start, end)
    assert real["status"] == "ok", real
    assert real["dead_lettered"] == 0
    assert custom_values(salesforce, orders) == shopify_values(orders)
    again = reconcile(start, end, dry_run=True)
    assert again["discrepancies"] == 0, again
    assert again["drifted_records"] == {"Opportunity": 0, "Account": 0, "Contact": 0}
