"""Org-level Salesforce behaviour (issue 13, point 4): Person Account record types, full error
lists in dead letters, stopping at once on a failed re-login or REQUEST_LIMIT_EXCEEDED,
Retry-After, duplicate rules, and the budget governor at the start of a run. Each test runs the
product against the Salesforce sandbox over loopback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deployments.cli import app
from flows.outcome import run_flow
from flows.sync_order import sync_order
from tests.integration.conftest import order_ids

pytestmark = pytest.mark.usefixtures("prefect_harness")


# -- 13: the full error list -------------------------------------------------------------------


def test_a_dead_letter_keeps_every_error_salesforce_reported(cli, shopify, salesforce) -> None:
    salesforce.rule(object="Opportunity", field="Name", contains="Shopify", message="No shop deals")
    salesforce.rule(
        object="Opportunity", field="Name", regex="[0-9]", message="No digits", error_field="Name"
    )
    assert run_flow(sync_order, order_id=order_ids(shopify, 1)[0])[1]["action"] == "dead_letter"
    letter_id = cli("dlq", "list").output.split()[0].lstrip("#")
    shown = json.loads(cli("dlq", "show", letter_id).output)
    assert shown["error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert shown["errors"] == [
        {
            "code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "No shop deals",
            "fields": [],
            "stage": "opportunity",
        },
        {
            "code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "No digits",
            "fields": ["Name"],
            "stage": "opportunity",
        },
    ]


# -- 15: stop at once on a refused re-login or a request limit -----------------------------------



def enqueue_creates(store, shopify, count: int) -> list[str]:
    """``orders/create`` deliveries for the first ``count`` generated orders, as the receiver
    would have stored them."""
    from state import Delivery

    ids = order_ids(shopify, count)
    for order_id in ids:
        body = json.dumps(shopify.shop.rest(shopify.shop.store.get(int(order_id)))).encode()
        store.add_delivery(
            Delivery(
                webhook_id=f"wh-{order_id}",
                topic="orders/create",
                shop_domain=shopify.shop.domain,
                body=body,
                order_id=order_id,
            )
        )
    return ids


def pending(store) -> int:
    return len(store.inbox_rows(status="pending"))


def test_a_refused_relogin_stops_the_drain_at_once_and_fails_the_run(
    store, shopify, salesforce
) -> None:
    from flows.sync_pending import sync_pending_orders

    enqueue_creates(store, shopify, 30)
    # The first write finds its session dead and the app's access revoked.
    salesforce.fault(kind="revoke", path="/composite", count=1)
    state = sync_pending_orders(max_seconds=60, batch_size=50, lease_seconds=30, return_state=True)
    tokens = salesforce.stats()["token_requests"]
    assert tokens["total"] == 2, tokens  # the run's login, then exactly one re-login
    assert tokens["refused"] == 1
    assert state.is_failed(), state
    assert "invalid_client" in (state.message or "")
    written = len(salesforce.records("Opportunity"))
    assert written <= 3  # only writes already in flight when the session died
    assert pending(store) == 30 - written
    assert store.dead_letters() == []


def test_request_limit_exceeded_stops_the_drain_without_probing_order_by_order(
    store, shopify, salesforce, product
) -> None:
    from flows.sync_pending import sync_pending_orders

    enqueue_creates(store, shopify, 30)
    salesforce.fault(kind="request_limit", path="/composite")
    state = sync_pending_orders(max_seconds=60, batch_size=50, lease_seconds=30, return_state=True)
    assert state.is_failed(), state
    assert "REQUEST_LIMIT_EXCEEDED" in (state.message or "")
    probes = salesforce.stats()["faults_fired"]["403"]
    assert probes <= product.salesforce_concurrency  # only the writes already in flight
    assert pending(store) == 30
    assert store.dead_letters() == []


def test_retry_after_is_the_hold_time_of_a_rate_limited_order(store, shopify, salesforce) -> None:
    from flows.sync_pending import sync_pending_orders
    from state.models import utcnow

    enqueue_creates(store, shopify, 1)
    salesforce.fault(kind="429", path="/composite", retry_after=900)
    before = utcnow()
    state = sync_pending_orders(max_seconds=60, batch_size=50, lease_seconds=30, return_state=True)
    assert state.is_failed()
    [row] = store.inbox_rows(status="pending")
    assert (row.next_attempt_at - before).total_seconds() >= 890
    assert salesforce.stats()["faults_fired"]["429"] == 1  # Prefect did not retry it either


# -- 8: Person Account orgs --------------------------------------------------------------------


def person_org(salesforce) -> None:
    salesforce.control.post("/__sandbox/org", json={"person_accounts": True}).raise_for_status()


def person_record_type(salesforce) -> dict:
    [record_type] = [r for r in salesforce.records("RecordType") if r["IsPersonType"]]
    return record_type


def test_a_person_account_org_gets_person_accounts_with_their_record_type(
    product, shopify, salesforce
) -> None:
    person_org(salesforce)
    order_id = order_ids(shopify, 1)[0]
    result = sync_order(order_id)
    assert result["action"] == "created", result
    [account] = salesforce.records("Account")
    assert account["IsPersonAccount"] is True
    assert account["RecordTypeId"] == person_record_type(salesforce)["Id"]
    assert account["PersonEmail"]
    assert salesforce.records("Contact") == []  # the person account is the contact
    [opportunity] = salesforce.records("Opportunity")
    assert opportunity["AccountId"] == account["Id"]


def test_a_configured_person_record_type_is_used(shopify, salesforce, product, monkeypatch) -> None:
    from tasks.settings import get_settings

    person_org(salesforce)
    salesforce.control.post(
        "/__sandbox/seed",
        json={
            "records": {
                "RecordType": [
                    {
                        "Name": "Shop Buyer",
                        "DeveloperName": "Shop_Buyer",
                        "SobjectType": "Account",
                        "IsPersonType": True,
                        "IsActive": True,
                    }
                ]
            }
        },
    ).raise_for_status()
    monkeypatch.setenv("SHOPSYNC_MAPPING__PERSON_ACCOUNT_RECORD_TYPE", "Shop_Buyer")
    get_settings.cache_clear()
    assert sync_order(order_ids(shopify, 1)[0])["action"] == "created"
    [account] = salesforce.records("Account")
    [shop_buyer] = [r for r in salesforce.records("RecordType") if r["Name"] == "Shop Buyer"]
    assert account["RecordTypeId"] == shop_buyer["Id"]


def doctor() -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor"])
    return result.exit_code, result.output


def test_doctor_reports_the_person_record_type(product, salesforce, shopify) -> None:
    person_org(salesforce)
    _, output = doctor()
    expected = person_record_type(salesforce)["Id"]
    assert f"[ok  ] Person Account record type: PersonAccount ({expected})" in output


def test_doctor_fails_a_person_record_type_the_org_does_not_have(
    product, salesforce, shopify, monkeypatch
) -> None:
    from tasks.settings import get_settings

    person_org(salesforce)
    monkeypatch.setenv("SHOPSYNC_MAPPING__PERSON_ACCOUNT_RECORD_TYPE", "No_Such_Type")
    get_settings.cache_clear()
    code, output = doctor()
    assert code == 1
    assert "[FAIL] Person Account record type:" in output
    assert "No_Such_Type is not an active Person Account record type" in output


# -- 16: duplicate rules ---------------------------------------------------------------------


def customer_order(shopify) -> tuple[str, str]:
    """A generated order with a customer and an e-mail: (order id, the customer's e-mail)."""
    for index in range(50):
        order_id = shopify.shop.generator.order_id(index)
        rest = shopify.shop.rest(shopify.shop.store.get(order_id))
        customer = rest.get("customer") or {}
        if customer.get("email"):
            return str(order_id), customer["email"]
    raise AssertionError("no customer order with an e-mail in the first 50")


def contact_rule(salesforce, action: str = "allow") -> None:
    salesforce.control.post(
        "/__sandbox/duplicate-rules",
        json={
            "object": "Contact",
            "fields": ["Email"],
            "action": action,
            "name": "Contacts_By_Email",
        },
    ).raise_for_status()


def someone_else_with_the_same_email(salesforce, email: str) -> None:
    """A Contact keyed to another Shopify customer (so not adoptable) sharing the e-mail."""
    salesforce.control.post(
        "/__sandbox/seed",
        json={
            "records": {
                "Contact": [{"LastName": "Other", "Email": email, "External_Shopify_ID__c": "1"}]
            }
        },
    ).raise_for_status()


def test_an_alert_duplicate_rule_lets_the_order_through(product, shopify, salesforce) -> None:
    order_id, email = customer_order(shopify)
    contact_rule(salesforce)
    someone_else_with_the_same_email(salesforce, email)
    assert sync_order(order_id)["action"] == "created"
    assert len(salesforce.records("Contact")) == 2


def test_a_block_duplicate_rule_is_dead_lettered_naming_the_rule(
    product, shopify, salesforce
) -> None:
    order_id, email = customer_order(shopify)
    contact_rule(salesforce, action="block")
    someone_else_with_the_same_email(salesforce, email)
    result = run_flow(sync_order, order_id=order_id)[1]
    assert result["action"] == "dead_letter"
    [letter] = product_store_dead_letters(product)
    assert (letter.error_code, letter.stage) == ("DUPLICATES_DETECTED", "contact")
    assert "duplicate rule Contacts_By_Email (block)" in letter.message


def test_allow_save_can_be_turned_off(product, shopify, salesforce, monkeypatch) -> None:
    from tasks.settings import get_settings

    monkeypatch.setenv("SHOPSYNC_SALESFORCE_DUPLICATE_RULE_ALLOW_SAVE", "false")
    get_settings.cache_clear()
    order_id, email = customer_order(shopify)
    contact_rule(salesforce)
    someone_else_with_the_same_email(salesforce, email)
    assert run_flow(sync_order, order_id=order_id)[1]["action"] == "dead_letter"


def product_store_dead_letters(product):
    from state import StateStore

    store = StateStore.open(product.state_url)
    try:
        return store.dead_letters()
    finally:
        store.close()


def test_doctor_lists_active_duplicate_rules(product, salesforce, shopify) -> None:
    _, output = doctor()
    assert "[ok  ] Duplicate rules: none active" in output
    contact_rule(salesforce)
    _, output = doctor()
    assert "[warn] Duplicate rules: active: Contact: Contacts_By_Email" in output


# -- 17: the budget governor is never blind ---------------------------------------------------


def one_order_write():
    from tasks.salesforce import OrderWrite

    return OrderWrite(
        account_field="External_Shopify_Account_ID__c",
        account_key="shop_cust_1",
        account={"Name": "Ada"},
        opportunity_field="External_Shopify_Order_ID__c",
        order_key="1001",
        opportunity={"Name": "Order 1001", "StageName": "New Order", "CloseDate": "2026-12-31"},
    )


def set_usage(salesforce, used: int, limit: int = 1000) -> None:
    salesforce.control.post(
        "/__sandbox/org", json={"api_limit": limit, "api_usage": used}
    ).raise_for_status()


def test_the_first_write_of_a_run_reads_limits_before_it_writes(product, salesforce) -> None:
    from tasks.core.errors import BudgetExhausted
    from tasks.runtime import salesforce_adapter

    set_usage(salesforce, 900)  # past the 80 % reserve before the run even starts
    gateway = salesforce_adapter(product)
    with pytest.raises(BudgetExhausted):
        gateway.write_order(one_order_write())
    assert salesforce.records("Opportunity") == []
    assert salesforce.stats()["api_calls"]["by_kind"] == {"limits": 1}


def test_a_bulk_job_reads_limits_fresh_before_it_starts(product, salesforce) -> None:
    from tasks.core.errors import BudgetExhausted
    from tasks.runtime import salesforce_adapter

    set_usage(salesforce, 10)
    gateway = salesforce_adapter(product)
    gateway.describe("Account")  # the gateway has seen a low usage
    set_usage(salesforce, 900)  # other integrations used the org meanwhile
    with pytest.raises(BudgetExhausted):
        gateway.save_many(
            "Account",
            "External_Shopify_Account_ID__c",
            [
                {"External_Shopify_Account_ID__c": f"shop_cust_{n}", "Name": "Ada"}
                for n in range(2_001)  # more than Collections are used for: one Bulk job
            ],
        )
    assert salesforce.stats()["bulk"]["ingest_jobs"] == 0


def test_reconcile_dead_letters_keep_every_error_too(product, shopify, salesforce) -> None:
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from flows.reconcile import reconcile
    from tests.integration.conftest import SHOP_TIMEZONE

    salesforce.rule(object="Opportunity", field="Name", contains="Shopify", message="No shop deals")
    salesforce.rule(object="Opportunity", field="Name", regex="[0-9]", message="No digits")
    day = (datetime.now(UTC) - timedelta(days=2)).astimezone(ZoneInfo(SHOP_TIMEZONE)).date()
    result = reconcile(start=day, end=day)
    assert result["dead_lettered"] > 0
    letter = product_store_dead_letters(product)[0]
    assert [e["message"] for e in letter.errors] == ["No shop deals", "No digits"]
    assert {e["stage"] for e in letter.errors} == {"opportunity"}
