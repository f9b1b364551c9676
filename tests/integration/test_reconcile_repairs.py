"""Reconcile repairs that meet a real org and a running webhook path (issue 13, point 4): Contacts
that already exist are adopted by e-mail, guests get their Contact, the drain writing during a
run is never overwritten, a record that fails every night stops pinning the cursor, and orders
Shopify hides without ``read_all_orders`` are named. Both sandboxes over loopback.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from deployments.cli import app
from flows.reconcile import reconcile
from flows.reconcile_list import list_orders
from flows.reconcile_read import compare, read_back
from flows.reconcile_repair import repair_window
from flows.reconcile_run import CURSOR, Request
from state import StateStore
from tasks.core.orders import parse_graphql_order
from tasks.core.reconcile_window import shop_window
from tasks.runtime import Runtime, build_runtime
from tasks.settings import Settings, get_settings
from tasks.sync import sync_order_state
from tests.integration.conftest import SHOP_TIMEZONE, SalesforceHandle, ShopifyHandle
from tests.integration.test_reconcile import records_written, shop_orders, window, writes
from tests.reliability.support import duplicates, running_receiver

CON = "External_Shopify_ID__c"
OPP = "External_Shopify_Order_ID__c"
USER_STAGE = "Needs Analysis"

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.prefect]


def by_key(salesforce: SalesforceHandle, sobject: str, key: str) -> dict[str, dict[str, Any]]:
    return {str(r[key]): r for r in salesforce.records(sobject) if r.get(key)}


def contacts_with(salesforce: SalesforceHandle, email: str) -> list[dict[str, Any]]:
    return [
        r for r in salesforce.records("Contact") if (r.get("Email") or "").lower() == email.lower()
    ]


def seed(salesforce: SalesforceHandle, sobject: str, rows: list[dict[str, Any]]) -> list[str]:
    answer = salesforce.control.post("/__sandbox/seed", json={"records": {sobject: rows}})
    answer.raise_for_status()
    return list(answer.json()["ids"][sobject])


def user_edits(salesforce: SalesforceHandle, sobject: str, record_id: str, **fields: Any) -> None:
    """A Salesforce user changes a record through the REST API."""
    token = salesforce.control.post("/__sandbox/tokens", json={}).json()["access_token"]
    answer = httpx.patch(
        f"{salesforce.url}/services/data/v59.0/sobjects/{sobject}/{record_id}",
        json=fields,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 204, answer.text


def customer_orders(orders: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Orders with a customer that has an e-mail, by customer id (cancelled ones left out)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for order in orders:
        customer = order.get("customer")
        if customer and customer.get("email") and not order.get("cancelled_at"):
            found.setdefault(str(customer["id"]), []).append(order)
    return found


def guest_orders(orders: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Guest orders with an e-mail, by lower-cased e-mail."""
    found: dict[str, list[dict[str, Any]]] = {}
    for order in orders:
        if order.get("customer") is None and order.get("email"):
            found.setdefault(str(order["email"]).strip().lower(), []).append(order)
    return found


# -- item 1: a backfill adopts the Contacts that already exist ---------------------------------


def test_backfill_adopts_existing_contacts_by_email_instead_of_creating_twins(
    product: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle, store: StateStore
) -> None:
    orders = shop_orders(shopify)
    customers = customer_orders(orders)
    chosen = sorted(customers)[:25]
    (company,) = seed(salesforce, "Account", [{"Name": "Existing Co"}])
    rows = []
    for customer_id in chosen:
        email = customers[customer_id][0]["customer"]["email"]
        rows.append({"LastName": "Existing", "Email": email, "AccountId": company})
    existing = dict(zip(chosen, seed(salesforce, "Contact", rows), strict=True))
    start, end = window(shopify)

    first = reconcile(start, end)

    assert first["status"] == "ok", first
    assert duplicates(salesforce) == {}
    opportunities = by_key(salesforce, "Opportunity", OPP)
    for customer_id, contact_id in existing.items():
        email = customers[customer_id][0]["customer"]["email"]
        (contact,) = contacts_with(salesforce, email)  # adopted, not twinned
        assert contact["Id"] == contact_id
        assert contact[CON] == customer_id
        assert contact["AccountId"] == company  # never re-parented
        for order in customers[customer_id]:
            assert opportunities[str(order["id"])]["ContactId"] == contact_id
    ledger = store.ledger_many(str(o["id"]) for c in chosen for o in customers[c])
    assert {entry.contact_id for entry in ledger.values()} == set(existing.values())
    assert first["plan"]["adopted_contacts"] == len(chosen)

    salesforce.reset_stats()
    again = reconcile(start, end)
    assert again["discrepancies"] == 0
    assert writes(salesforce.stats()) == 0
    assert records_written(salesforce.stats()) == 0


# -- item 2: guests repaired by reconcile get their Contact -------------------------------------


def test_guest_orders_repaired_by_reconcile_are_linked_to_a_contact(
    product: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    orders = shop_orders(shopify)
    guests = guest_orders(orders)
    assert len(guests) >= 5, "the session shop has guest checkouts"
    known_email = sorted(guests)[0]
    (known,) = seed(salesforce, "Contact", [{"LastName": "Known", "Email": known_email}])
    start, end = window(shopify)

    result = reconcile(start, end)

    assert result["status"] == "ok", result
    assert duplicates(salesforce) == {}
    opportunities = by_key(salesforce, "Opportunity", OPP)
    contacts = {r["Id"]: r for r in salesforce.records("Contact")}
    for email, placed in guests.items():
        for order in placed:
            contact_id = opportunities[str(order["id"])].get("ContactId")
            assert contact_id, f"guest order {order['id']} has no Contact"
            assert contacts[contact_id]["Email"].lower() == email
        assert len(contacts_with(salesforce, email)) == 1
    assert {opportunities[str(o["id"])]["ContactId"] for o in guests[known_email]} == {known}
    assert reconcile(start, end)["discrepancies"] == 0


def test_a_retried_creation_of_guest_contacts_creates_no_twins(
    product: Settings,
    shopify: ShopifyHandle,
    salesforce: SalesforceHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The create call lands but its answer comes too late: the retry must not create again."""
    monkeypatch.setenv("SHOPSYNC_SALESFORCE_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("SHOPSYNC_RETRY_DELAYS_SECONDS", "2,2,2")  # it lands before the retry
    get_settings.cache_clear()
    salesforce.fault(kind="latency", latency=1.5, path="composite/sobjects", method="POST", count=1)
    start, end = window(shopify)

    result = reconcile(start, end)

    assert salesforce.stats()["faults_fired"] == {"latency": 1}
    assert duplicates(salesforce) == {}
    assert result["status"] == "ok", result
    opportunities = by_key(salesforce, "Opportunity", OPP)
    for placed in guest_orders(shop_orders(shopify)).values():
        assert all(opportunities[str(o["id"])].get("ContactId") for o in placed)


# -- a guest's Contact (no key) is read back by its Opportunity's ContactId ---------------------


def test_a_guests_contact_edited_in_salesforce_is_reported_and_repaired_by_id(
    product: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    orders = shop_orders(shopify)
    guests = {e: p for e, p in guest_orders(orders).items() if not p[0].get("cancelled_at")}
    named = [e for e, p in guests.items() if (p[0].get("billing_address") or {}).get("last_name")]
    email = sorted(named)[0]
    (order,) = guests[email]  # the generated shop gives every guest an e-mail of their own
    last_name = order["billing_address"]["last_name"]
    start, end = window(shopify)
    assert reconcile(start, end)["status"] == "ok"  # every order and guest Contact created
    contact_id = by_key(salesforce, "Opportunity", OPP)[str(order["id"])]["ContactId"]
    contacts = {r["Id"]: r for r in salesforce.records("Contact")}
    assert contacts[contact_id]["LastName"] == last_name
    assert not contacts[contact_id].get(CON)  # a guest's Contact has no key
    before = len(contacts)

    # A Salesforce user edits the guest's Contact.
    user_edits(salesforce, "Contact", contact_id, LastName="Edited by a user")

    salesforce.reset_stats()
    dry = reconcile(start, end, dry_run=True)
    assert dry["counts"]["drifted"] == 1, dry
    assert dry["counts"]["missing"] == 0
    assert dry["drifted_records"] == {"Opportunity": 0, "Account": 0, "Contact": 1}
    report = pd.read_csv(dry["report_csv"], dtype=str).set_index("order_id")
    assert report.loc[str(order["id"]), "detail"] == (
        f"Contact.LastName: Edited by a user → {last_name}"
    )
    assert records_written(salesforce.stats()) == 0  # a dry run only reports
    contact = {r["Id"]: r for r in salesforce.records("Contact")}[contact_id]
    assert contact["LastName"] == "Edited by a user"
    assert dry["customers_read"]["Contact"] >= len(guests)  # guests' Contacts read back
    # One bundled read for the guests' Contacts (1,500 Ids a call), nothing per order.
    assert salesforce.stats()["api_calls"]["total"] <= 12, salesforce.stats()["api_calls"]

    real = reconcile(start, end)
    assert real["status"] == "ok", real
    assert real["counts"]["drifted"] == 1
    assert real["dead_lettered"] == 0
    assert real["plan"]["adopted_contacts"] == 0  # an update by Id, not an adoption
    contacts = {r["Id"]: r for r in salesforce.records("Contact")}
    assert contacts[contact_id]["LastName"] == last_name  # repaired, by Id
    assert len(contacts) == before  # and no twin created
    assert by_key(salesforce, "Opportunity", OPP)[str(order["id"])]["ContactId"] == contact_id
    again = reconcile(start, end, dry_run=True)
    assert again["discrepancies"] == 0, again


def test_contacts_are_read_by_id_fifteen_hundred_a_call(
    runtime: Runtime, salesforce: SalesforceHandle
) -> None:
    rows = [{"LastName": f"Guest {n}", "Email": f"g{n}@example.net"} for n in range(1_600)]
    ids = seed(salesforce, "Contact", rows)
    salesforce.reset_stats()

    found = list(runtime.salesforce.records_by_ids("Contact", ids, ["LastName"]))

    assert {r["Id"]: r["LastName"] for r in found} == {i: f"Guest {n}" for n, i in enumerate(ids)}
    assert salesforce.stats()["api_calls"]["by_kind"] == {"composite": 2}
    salesforce.reset_stats()
    assert list(runtime.salesforce.records_by_ids("Contact", [], ["LastName"])) == []
    assert salesforce.api_calls() == 0


# -- item 6: the drain syncs orders while the run is under way ----------------------------------


def test_orders_the_drain_writes_during_a_run_are_never_overwritten(
    product: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle, tmp_path: Path
) -> None:
    shop = shopify.shop
    runtime = build_runtime(get_settings())
    try:
        ctx = runtime.sync_context()
        start, end = window(shopify)
        request = Request("manual", *shop_window(start, end, SHOP_TIMEZONE), dry_run=False)
        spool = tmp_path / "spool.jsonl"
        listed = list_orders(runtime, request, ctx, spool)
        found = compare(runtime, ctx, listed, read_back(runtime, request, ctx, listed))
        live = [
            str(o["id"])
            for o in shop_orders(shopify)
            if o.get("customer") and not o.get("cancelled_at") and Decimal(o["current_total_price"])
        ]
        same, newer = live[0], live[1]
        assert {same, newer} <= set(found.result.ids("missing"))
        shop.refund_order(int(newer), amount="1.00")  # a newer state, after the listing
        for order_id in (same, newer):  # the webhook path syncs both meanwhile
            sync_now(runtime, ctx, order_id)
        opportunities = by_key(salesforce, "Opportunity", OPP)
        for order_id in (same, newer):
            user_edits(
                salesforce, "Opportunity", opportunities[order_id]["Id"], StageName=USER_STAGE
            )

        repaired = repair_window(runtime, request, ctx, spool, found)
        failures = repaired.failures

        opportunities = by_key(salesforce, "Opportunity", OPP)
        truth = Decimal(shop.rest(shop.store.get(int(newer)))["current_total_price"])
        assert Decimal(str(opportunities[newer]["Amount"])) == truth  # not the listed amount
        assert opportunities[same]["StageName"] == USER_STAGE  # no create body over it
        assert opportunities[newer]["StageName"] == USER_STAGE
        assert failures == {}
        assert runtime.store.dead_letters() == []
        assert duplicates(salesforce) == {}
        assert repaired.superseded == 2
        listed = datetime.fromisoformat(shop.rest(shop.store.get(int(newer)))["updated_at"])
        assert runtime.store.ledger(newer).order_updated_at == listed  # the newer state
    finally:
        runtime.close()


def sync_now(runtime: Runtime, ctx: Any, order_id: str) -> None:
    """The webhook path's sync of the order's current state (what the drain runs)."""
    node = runtime.shopify.order(order_id)
    assert node is not None
    outcome = sync_order_state(parse_graphql_order(node), ctx)
    assert outcome.action == "created", outcome


# -- item 10: a record failing every night stops pinning the cursor -----------------------------


def test_a_record_failing_every_night_is_dead_lettered_and_the_cursor_moves_on(
    product: Settings,
    shopify: ShopifyHandle,
    salesforce: SalesforceHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOPSYNC_RECONCILE_LOOKBACK_HOURS", str(24 * 45))
    monkeypatch.setenv("SHOPSYNC_RECONCILE_MAX_FAILED_NIGHTS", "3")
    get_settings.cache_clear()
    stuck = str(shop_orders(shopify)[0]["id"])
    salesforce.fault(kind="lock", scope="record", object="Opportunity", external_id=stuck)

    nights = [reconcile() for _ in range(3)]

    assert [n["retry_later"] for n in nights] == [1, 1, 0]
    assert [n["cursor_advanced_to"] for n in nights[:2]] == [None, None]
    assert nights[2]["dead_lettered"] == 1
    assert nights[2]["cursor_advanced_to"] == nights[2]["window_end"]
    store = StateStore.open(get_settings().state_url)
    try:
        (letter,) = store.dead_letters()
        assert letter.order_id == stuck
        assert letter.error_code == "UNABLE_TO_LOCK_ROW"
        assert "3 nightly runs" in letter.message
        assert store.failed_nights() == {}
    finally:
        store.close()


def test_an_operator_moves_the_nightly_cursor(product: Settings) -> None:
    runner = CliRunner()
    target = datetime(2026, 11, 1, tzinfo=UTC)
    moved = runner.invoke(app, ["reconcile", "--advance-cursor-to", target.isoformat()])
    assert moved.exit_code == 0, moved.output
    back = (target - timedelta(days=3)).isoformat()
    refused = runner.invoke(app, ["reconcile", "--advance-cursor-to", back])
    assert refused.exit_code == 1
    assert "--allow-backwards" in refused.output
    naive = runner.invoke(app, ["reconcile", "--advance-cursor-to", "2026-11-05T00:00:00"])
    assert naive.exit_code == 2
    allowed = runner.invoke(app, ["reconcile", "--advance-cursor-to", back, "--allow-backwards"])
    assert allowed.exit_code == 0, allowed.output
    store = StateStore.open(get_settings().state_url)
    try:
        assert store.get_cursor(CURSOR) == datetime.fromisoformat(back)
    finally:
        store.close()


# -- item 11: an updated_at window holds orders older than 60 days ------------------------------


def test_a_window_without_read_all_orders_names_old_orders_updated_in_it(
    product: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle, store: StateStore
) -> None:
    shop = shopify.shop
    with running_receiver(product, store, shop):
        old = shop.create_order(
            {"created_at": (datetime.now(UTC) - timedelta(days=90)).isoformat()}
        )
        shop.update_order(old["id"], {"note": "changed today"})
        assert shop.webhooks.flush(timeout=60)
    received = [r for r in store.inbox_rows(limit=100) if r.order_id == str(old["id"])]
    assert {r.topic for r in received} >= {"orders/updated"}, store.inbox_rows(limit=100)
    shop.cfg.scopes = ["read_orders", "read_customers"]
    today = datetime.now(ZoneInfo(SHOP_TIMEZONE)).date()

    result = reconcile(today - timedelta(days=2), today, dry_run=True)  # an updated_at window

    assert "read_all_orders" in result["message"]
    report = pd.read_csv(result["report_csv"], dtype=str)
    row = report[report["order_id"] == str(old["id"])]
    assert row["status"].tolist() == ["unreadable"]
    assert Counter(report["status"])["unreadable"] == 1
    assert result["unreadable"] == 1
