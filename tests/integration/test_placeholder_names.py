"""Placeholders of redacted buyer data never overwrite a real name, even when the sync does not
know the record exists (a lost state database, a record created outside the sync).

The stand-ins the mapping uses for withheld buyer data (``Shopify customer 42``, LastName
``Unknown``, an Opportunity named after the customer id) are create-only. When the customer
cache knows neither Account nor Contact, the sync asks Salesforce by external id, once per
batch, and sends the placeholders only to records it creates:

- the webhook drain, on the per-order path and on the Collections path;
- reconcile, repairing a missing redacted order whose Account exists;
- a customer Salesforce does not have: the placeholders are created as before.

Deliveries go into the inbox directly (the drain then reads them as webhooks), with bodies the
Shopify sandbox renders, redacted the way Shopify redacts them, except that the customer's phone
is kept so that a Contact (LastName ``Unknown``) is written too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from flows.outcome import run_flow
from flows.sync_pending import sync_pending_orders
from state import StateStore
from tasks.runtime import Runtime
from tasks.settings import get_settings
from tests.integration.conftest import SHOP_TIMEZONE, SalesforceHandle, ShopifyHandle, deliver

pytestmark = pytest.mark.usefixtures("prefect_harness")

MODES = ["per_order", "batch"]
ACCOUNT_KEY = "External_Shopify_Account_ID__c"
CONTACT_KEY = "External_Shopify_ID__c"
ORDER_KEY = "External_Shopify_Order_ID__c"
PERSONAL = ("first_name", "last_name", "name", "address1", "address2", "phone", "company")


def use_mode(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv("SHOPSYNC_DRAIN_MODE", mode)
    get_settings.cache_clear()


def redacted(payload: dict[str, Any], *, phone: str | None = "+1 802 555 0143") -> dict[str, Any]:
    """A webhook body as Shopify sends it without protected customer data access (names,
    e-mails, phones, street addresses null); ``phone`` kept on the customer (a Contact known by
    phone only: its LastName is the placeholder ``Unknown``)."""
    customer = dict(payload["customer"], first_name=None, last_name=None, email=None, phone=phone)
    if customer.get("default_address"):
        customer["default_address"] = dict(customer["default_address"], **dict.fromkeys(PERSONAL))
    out = dict(payload, customer=customer, email=None, phone=None, contact_email=None)
    for address in ("billing_address", "shipping_address"):
        if out.get(address):
            out[address] = dict(out[address], **dict.fromkeys(PERSONAL))
    return out


def customer_order(shopify: ShopifyHandle) -> dict[str, Any]:
    """A new order of a customer (not a guest), without a company on any address: its Account
    name is a placeholder once redacted."""
    shop = shopify.shop
    for _ in range(50):
        body = shop.rest(shop.create_order())
        customer = body.get("customer")
        addresses = [body.get("billing_address"), (customer or {}).get("default_address")]
        if customer and not any((a or {}).get("company") for a in addresses):
            return body
    raise AssertionError("the sandbox made no customer order without a company")


def drain() -> dict[str, Any]:
    _, result = run_flow(sync_pending_orders, max_seconds=120, batch_size=10, lease_seconds=30)
    return result


def by_key(salesforce: SalesforceHandle, sobject: str, key_field: str) -> dict[str, Any]:
    return {str(r[key_field]): r for r in salesforce.records(sobject) if r.get(key_field)}


def real_customer(runtime: Runtime, customer_id: str) -> tuple[str, str]:
    """What a user (or an earlier integration) made: the customer's Account and Contact with
    real names and our external ids. Returns their Ids."""
    account = runtime.salesforce._call(
        lambda sf: sf.Account.create(
            {"Name": "Okafor Ltd", ACCOUNT_KEY: f"shop_cust_{customer_id}"}
        )
    )
    contact = runtime.salesforce._call(
        lambda sf: sf.Contact.create(
            {
                "FirstName": "Maren",
                "LastName": "Okafor",
                "AccountId": account["id"],
                CONTACT_KEY: customer_id,
            }
        )
    )
    return str(account["id"]), str(contact["id"])


# -- (a) the webhook drain, state lost -----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_redacted_order_keeps_the_real_names_of_records_the_lost_state_did_not_know(
    mode: str,
    store: StateStore,
    shopify: ShopifyHandle,
    salesforce: SalesforceHandle,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_mode(monkeypatch, mode)
    body = redacted(customer_order(shopify))
    customer_id = str(body["customer"]["id"])
    account_id, contact_id = real_customer(runtime, customer_id)
    assert store.customer(customer_id) is None  # the state store knows nothing (lost)
    deliver(store, "w-1", "orders/create", body)

    assert drain()["outcomes"] == {"created": 1}

    account = by_key(salesforce, "Account", ACCOUNT_KEY)[f"shop_cust_{customer_id}"]
    contact = by_key(salesforce, "Contact", CONTACT_KEY)[customer_id]
    names = {
        "Account": (account["Id"], account["Name"]),
        "Contact": (contact["Id"], contact["FirstName"], contact["LastName"]),
    }
    assert names == {
        "Account": (account_id, "Okafor Ltd"),
        "Contact": (contact_id, "Maren", "Okafor"),
    }
    assert contact["Phone"] == "+1 802 555 0143"  # the real data the order has still goes
    opportunity = by_key(salesforce, "Opportunity", ORDER_KEY)[str(body["id"])]
    assert opportunity["AccountId"] == account_id
    assert opportunity["Name"].endswith(f"(customer {customer_id})")  # created: its stand-in
    assert len(salesforce.records("Account")) == len(salesforce.records("Contact")) == 1


@pytest.mark.parametrize(("mode", "composite_calls"), [("per_order", 1 + 6), ("batch", 1)])
def test_a_batch_asks_salesforce_once_whichever_of_its_customers_exist(
    mode: str,
    composite_calls: int,
    store: StateStore,
    shopify: ShopifyHandle,
    salesforce: SalesforceHandle,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Six redacted orders of six customers unknown to the state store, three of whom
    Salesforce has with real names: one lookup for the whole batch (bundled with the batch's
    other lookups), never one per order; the three keep their names, the others are created
    with placeholders."""
    use_mode(monkeypatch, mode)
    bodies: list[dict[str, Any]] = []
    while len(bodies) < 6:
        body = redacted(customer_order(shopify))
        if all(b["customer"]["id"] != body["customer"]["id"] for b in bodies):
            bodies.append(body)
    known = {
        str(b["customer"]["id"]): real_customer(runtime, str(b["customer"]["id"]))
        for b in bodies[:3]
    }
    for n, body in enumerate(bodies):
        deliver(store, f"w-{n}", "orders/create", body)
    salesforce.reset_stats()

    assert drain()["outcomes"] == {"created": 6}

    stats = salesforce.stats()["api_calls"]["by_kind"]
    accounts = by_key(salesforce, "Account", ACCOUNT_KEY)
    contacts = by_key(salesforce, "Contact", CONTACT_KEY)
    for body in bodies:
        customer_id = str(body["customer"]["id"])
        account, contact = accounts[f"shop_cust_{customer_id}"], contacts[customer_id]
        if customer_id in known:
            assert (account["Id"], contact["Id"]) == known[customer_id]
            assert (account["Name"], contact["LastName"]) == ("Okafor Ltd", "Okafor")
        else:
            assert (account["Name"], contact["LastName"]) == (
                f"Shopify customer {customer_id}",
                "Unknown",
            )
    assert stats.get("composite") == composite_calls, stats
    print(f"\n{mode}: six redacted orders, Salesforce calls {stats}")  # noqa: T201


# -- (c) a customer Salesforce does not have: the placeholders are created -----------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_redacted_order_of_a_new_customer_creates_the_placeholders(
    mode: str,
    store: StateStore,
    shopify: ShopifyHandle,
    salesforce: SalesforceHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_mode(monkeypatch, mode)
    body = redacted(customer_order(shopify))
    customer_id = str(body["customer"]["id"])
    deliver(store, "w-1", "orders/create", body)

    assert drain()["outcomes"] == {"created": 1}

    [account] = salesforce.records("Account")
    [contact] = salesforce.records("Contact")
    assert (account[ACCOUNT_KEY], account["Name"]) == (
        f"shop_cust_{customer_id}",
        f"Shopify customer {customer_id}",
    )
    assert (contact[CONTACT_KEY], contact["LastName"]) == (customer_id, "Unknown")
    opportunity = by_key(salesforce, "Opportunity", ORDER_KEY)[str(body["id"])]
    assert opportunity["Name"].endswith(f"(customer {customer_id})")
    assert (opportunity["AccountId"], opportunity["ContactId"]) == (account["Id"], contact["Id"])


# -- (b) reconcile repairs a missing redacted order ----------------------------------------------


def control(shopify: ShopifyHandle, path: str, **body: Any) -> None:
    httpx.post(f"{shopify.url}/__sandbox/{path}", json=body).raise_for_status()


def test_reconcile_repairing_a_missing_redacted_order_keeps_the_accounts_real_name(
    store: StateStore,
    shopify: ShopifyHandle,
    salesforce: SalesforceHandle,
    runtime: Runtime,
) -> None:
    from flows.reconcile import reconcile

    body = customer_order(shopify)  # created now: inside today's window
    customer_id = str(body["customer"]["id"])
    account_id, _ = real_customer(runtime, customer_id)
    control(shopify, "protected-data", redacted=True)
    today = datetime.now(ZoneInfo(SHOP_TIMEZONE)).date()

    result = reconcile(today - timedelta(days=1), today)

    assert result["dead_lettered"] == 0, result
    assert result["repaired"] == result["counts"]["missing"] > 0
    accounts = by_key(salesforce, "Account", ACCOUNT_KEY)
    account = accounts[f"shop_cust_{customer_id}"]
    assert (account["Id"], account["Name"]) == (account_id, "Okafor Ltd")
    opportunity = by_key(salesforce, "Opportunity", ORDER_KEY)[str(body["id"])]
    assert opportunity["AccountId"] == account_id
