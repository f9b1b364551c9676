"""Reconciliation against both sandboxes over loopback, through the Prefect flows (issue 7).

The Salesforce side is seeded through the sandbox's control API (``/__sandbox/seed``), bypassing
the product. The seeded truth is computed from the Shopify sandbox's own REST view of its orders
(``Shop.rest``) with the design's rules written out here (Opportunity Name ``Shopify Order <name>
(<First Last>)``, Amount = ``current_total_price``, Account key ``shop_cust_<customer id>``,
"Closed Lost" for a cancelled order), not with the product's mapping. To keep that independent
computation exact, the 10,000-order shop has no guest checkouts (whose Account key is a hash
the mapping defines) and no over-long names (cut by the mapping).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from flows.reconcile import reconcile
from flows.reconcile_run import CURSOR
from sandbox.server import BackgroundServer
from sandbox.shopify import ShopConfig, ShopifySandbox, StoreMix
from sandbox.shopify.store import OrderFilter
from state import StateStore
from tasks.settings import Settings, get_settings
from tests.integration.conftest import (
    SHOP,
    SHOP_TIMEZONE,
    SHOP_TOKEN,
    SalesforceHandle,
    ShopifyHandle,
)

BIG = 10_000
ADOPTED = 1_000
ACC = "External_Shopify_Account_ID__c"
OPP = "External_Shopify_Order_ID__c"
USER_STAGE = "Negotiation/Review"
# Reconcile writes through sObject Collections and Bulk 2.0; its /composite calls are bundled
# reads (Ids by key, guests' Contacts by Id), so they are not counted as writes.
WRITE_KINDS = ("collections", "bulk_ingest", "upsert", "sobject")

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.prefect]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_shop() -> Iterator[ShopifyHandle]:
    """A 10,000-order shop (Plus plan; the flow switches to a bulk operation anyway)."""
    end = datetime.now(UTC) - timedelta(days=5)
    config = ShopConfig(
        domain=SHOP,
        access_token=SHOP_TOKEN,
        orders=BIG,
        seed=7,
        plan="plus",
        timezone=SHOP_TIMEZONE,
        start=end - timedelta(days=30),
        end=end,
        mix=StoreMix(guest_checkouts=0.0, long_names=0.0),
    )
    sandbox = ShopifySandbox(shops=[config])
    with BackgroundServer(sandbox.app) as server:
        yield ShopifyHandle(sandbox, server.url)
    sandbox.close()


@pytest.fixture
def big(
    product: Settings, big_shop: ShopifyHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The product pointed at the 10,000-order shop."""
    big_shop.sandbox.reset()
    monkeypatch.setenv("SHOPIFY_ADMIN_URL", big_shop.url)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def window(handle: ShopifyHandle) -> tuple[date, date]:
    """Shop-timezone dates covering every generated order (and edits after it)."""
    zone = ZoneInfo(SHOP_TIMEZONE)
    info = handle.sandbox.describe(handle.shop)
    first = datetime.fromisoformat(info["start"]).astimezone(zone).date() - timedelta(days=1)
    return first, datetime.now(zone).date() + timedelta(days=1)


def shop_orders(handle: ShopifyHandle) -> list[dict[str, Any]]:
    """The shop's orders as the Shopify sandbox itself renders them (REST shape)."""
    shop = handle.shop
    return [shop.rest(rec) for _, rec in shop.store.iterate(OrderFilter())]


def store_of(settings: Settings) -> StateStore:
    return StateStore.open(settings.state_url)


def statuses(result: dict[str, Any]) -> dict[str, int]:
    keys = ("in_sync", "missing", "drifted", "duplicate", "orphan")
    return {k: v for k, v in result["counts"].items() if k in keys}


def writes(stats: dict[str, Any]) -> int:
    kinds = stats["api_calls"]["by_kind"]
    return sum(int(kinds.get(kind, 0)) for kind in WRITE_KINDS)


def records_written(stats: dict[str, Any]) -> int:
    return sum(
        int(counts.get("created", 0)) + int(counts.get("updated", 0))
        for counts in stats["records"].values()
    )


# -- seeding (independent of the product) -----------------------------------------------------


@dataclass
class Truth:
    """What was seeded, by order id."""

    missing: set[str] = field(default_factory=set)
    drifted: set[str] = field(default_factory=set)
    duplicate: set[str] = field(default_factory=set)
    user_stage: set[str] = field(default_factory=set)
    orphans: set[str] = field(default_factory=set)
    total: int = 0

    def counts(self) -> dict[str, int]:
        bad = len(self.missing) + len(self.drifted) + len(self.duplicate)
        return {
            "in_sync": self.total - bad,
            "missing": len(self.missing),
            "drifted": len(self.drifted),
            "duplicate": len(self.duplicate),
            "orphan": len(self.orphans),
        }


def expected_name(order: dict[str, Any]) -> str:
    customer = order["customer"]
    return f"Shopify Order {order['name']} ({customer['first_name']} {customer['last_name']})"


def close_date(order: dict[str, Any]) -> str:
    created = datetime.fromisoformat(order["created_at"])
    return (created.date() + timedelta(days=30)).isoformat()


def seed(salesforce: SalesforceHandle, orders: list[dict[str, Any]]) -> Truth:
    """3 % missing, 2 % drifted amounts, 0.5 % duplicated, 1 % user stages, 25 orphans."""
    rng = random.Random(20261128)
    ids = [str(o["id"]) for o in orders]
    shuffled = rng.sample(ids, len(ids))
    n = len(ids)
    truth = Truth(total=n)
    truth.missing = set(shuffled[: n * 3 // 100])
    cut = n * 3 // 100
    truth.drifted = set(shuffled[cut : cut + n * 2 // 100])
    cut += n * 2 // 100
    truth.duplicate = set(shuffled[cut : cut + n // 200])
    cut += n // 200
    by_id = {str(o["id"]): o for o in orders}
    live = [i for i in shuffled[cut:] if not by_id[i]["cancelled_at"]]
    truth.user_stage = set(live[: n // 100])
    drifted_live = [i for i in sorted(truth.drifted) if not by_id[i]["cancelled_at"]]
    truth.user_stage |= set(drifted_live[:20])  # drifted amount AND a user stage

    accounts: dict[str, dict[str, Any]] = {}
    for order in orders:
        customer = order["customer"]
        key = f"shop_cust_{customer['id']}"
        accounts.setdefault(
            key, {"Name": f"{customer['first_name']} {customer['last_name']}", ACC: key}
        )
    answer = salesforce.control.post(
        "/__sandbox/seed", json={"records": {"Account": list(accounts.values())}}
    )
    answer.raise_for_status()
    account_ids = dict(zip(accounts, answer.json()["ids"]["Account"], strict=True))

    opportunities = []
    for order in orders:
        order_id = str(order["id"])
        if order_id in truth.missing:
            continue
        amount = float(order["current_total_price"])
        if order_id in truth.drifted:
            amount = round(amount + 1.0, 2)
        stage = "Closed Lost" if order["cancelled_at"] else "New Order"
        if order_id in truth.user_stage:
            stage = USER_STAGE
        body = {
            "Name": expected_name(order),
            "Amount": amount,
            "StageName": stage,
            "CloseDate": close_date(order),
            "AccountId": account_ids[f"shop_cust_{order['customer']['id']}"],
            OPP: order_id,
        }
        opportunities.append(body)
        if order_id in truth.duplicate:
            opportunities.append(dict(body))
    some_account = next(iter(account_ids.values()))
    for number in range(25):
        orphan_id = str(999_000_000_000 + number)
        truth.orphans.add(orphan_id)
        opportunities.append(
            {
                "Name": f"Shopify Order #X{number} (Deleted Order)",
                "Amount": 5.0,
                "StageName": "New Order",
                "CloseDate": close_date(orders[number]),
                "AccountId": some_account,
                OPP: orphan_id,
            }
        )
    for start in range(0, len(opportunities), 5_000):
        chunk = opportunities[start : start + 5_000]
        salesforce.control.post(
            "/__sandbox/seed", json={"records": {"Opportunity": chunk}}
        ).raise_for_status()
    return truth


def opportunity_stages(salesforce: SalesforceHandle) -> dict[str, str]:
    return {r[OPP]: r["StageName"] for r in salesforce.records("Opportunity")}


# -- the 10,000-order scenario ----------------------------------------------------------------


@pytest.mark.slow
def test_ten_thousand_orders_seeded_truth_dry_run_repair_and_rerun(
    big: Settings,
    big_shop: ShopifyHandle,
    salesforce: SalesforceHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The seeded Accounts are bare (Name and key): this scenario is about Opportunities, so the
    # Accounts own no fields here (Account and Contact drift: test_mapping_fields.py).
    owned = {"Account": [], "Contact": ["FirstName", "LastName", "Email", "Phone"]}
    owned["Opportunity"] = ["Name", "Amount", "CurrencyIsoCode"]
    monkeypatch.setenv("SHOPSYNC_MAPPING__OWNED_FIELDS", json.dumps(owned))
    get_settings.cache_clear()
    orders = shop_orders(big_shop)
    assert len(orders) == BIG
    truth = seed(salesforce, orders)
    start, end = window(big_shop)

    salesforce.reset_stats()
    dry = reconcile(start, end, dry_run=True)
    dry_stats = salesforce.stats()
    assert statuses(dry) == truth.counts()
    assert writes(dry_stats) == 0
    assert records_written(dry_stats) == 0
    assert dry["listing"] == "bulk"
    assert dry["salesforce_read"] == "bulk"

    salesforce.reset_stats()
    real = reconcile(start, end)
    stats = salesforce.stats()
    assert statuses(real) == truth.counts()
    assert real["plan"] == dry["plan"]  # the dry run reported exactly this plan
    assert real["repaired"] == len(truth.missing) + len(truth.drifted)
    assert real["dead_lettered"] == 0
    assert real["status"] == "ok"
    assert real["salesforce_api_calls"] == stats["api_calls"]["total"]

    report = pd.read_csv(real["report_csv"], dtype=str)
    found = report.groupby("status")["order_id"].apply(set).to_dict()
    assert found["missing"] == truth.missing
    assert found["drifted"] == truth.drifted
    assert found["duplicate"] == truth.duplicate
    assert found["orphan"] == truth.orphans
    drift_detail = report.loc[report["status"] == "drifted", "detail"]
    assert drift_detail.str.startswith("Amount: ").all()

    salesforce.reset_stats()
    again = reconcile(start, end)
    again_stats = salesforce.stats()
    assert again["discrepancies"] == 0
    assert again["counts"]["missing"] == again["counts"]["drifted"] == 0
    assert again["counts"]["duplicate"] == len(truth.duplicate)  # reported, never deleted
    assert again["counts"]["orphan"] == len(truth.orphans)  # reported, never deleted
    assert writes(again_stats) == 0
    assert records_written(again_stats) == 0

    stages = opportunity_stages(salesforce)
    assert all(stages[order_id] == USER_STAGE for order_id in truth.user_stage)
    assert truth.orphans <= set(stages)  # orphans were not deleted
    store = store_of(big)
    try:
        ledger = store.ledger_many(truth.missing | truth.drifted)
        assert len(ledger) == len(truth.missing) + len(truth.drifted)
        assert all(entry.opportunity_id for entry in ledger.values())
        assert store.dead_letters() == []
        runs = store.recent_runs(3)
        assert [r.status for r in runs] == ["ok", "ok", "ok"]
        assert runs[1].counts["repaired"] == real["repaired"]
        assert store.get_cursor(CURSOR) is None  # manual windows never move the cursor
    finally:
        store.close()


@pytest.mark.slow
def test_repairing_ten_thousand_missing_orders_stays_within_the_api_budget(
    big: Settings, big_shop: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    """With e-mail adoption: 1,000 of the customers already have an unkeyed Contact."""
    emails = sorted({o["customer"]["email"] for o in shop_orders(big_shop)})[:ADOPTED]
    rows = [{"LastName": "Existing", "Email": email} for email in emails]
    salesforce.control.post("/__sandbox/seed", json={"records": {"Contact": rows}})
    start, end = window(big_shop)
    salesforce.reset_stats()
    result = reconcile(start, end)
    stats = salesforce.stats()
    assert result["counts"]["missing"] == BIG
    assert result["repaired"] == BIG
    assert result["dead_lettered"] == 0
    assert result["plan"]["adopted_contacts"] == ADOPTED
    assert stats["api_calls"]["total"] <= 50, stats["api_calls"]  # BENCHMARKS.md budget
    assert len(salesforce.records("Opportunity")) == BIG
    contacts = salesforce.records("Contact")
    assert all(c.get("External_Shopify_ID__c") for c in contacts)  # adopted, no twins


# -- smaller behaviours (the 300-order session shop) ------------------------------------------


def test_window_past_sixty_days_without_read_all_orders_says_so(
    product: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    shopify.shop.cfg.scopes = ["read_orders", "read_customers"]
    today = datetime.now(ZoneInfo(SHOP_TIMEZONE)).date()
    salesforce.reset_stats()
    result = reconcile(today - timedelta(days=90), today)
    assert result["status"] == "incomplete_scope"
    assert "read_all_orders" in result["message"]
    assert result["counts"] == {"orphan": 0}
    assert result["discrepancies"] == 0
    assert salesforce.api_calls() == 0
    store = store_of(product)
    try:
        assert store.recent_runs(1)[0].status == "incomplete_scope"
    finally:
        store.close()


def test_recent_window_without_read_all_orders_still_runs(
    product: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    shopify.shop.cfg.scopes = ["read_orders", "read_customers"]
    today = datetime.now(ZoneInfo(SHOP_TIMEZONE)).date()
    result = reconcile(today - timedelta(days=10), today, dry_run=True)
    assert result["status"] == "ok"


@pytest.mark.slow
def test_nightly_advances_cursor_and_dead_letters_rejected_records(
    product: Settings,
    shopify: ShopifyHandle,
    salesforce: SalesforceHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOPSYNC_RECONCILE_LOOKBACK_HOURS", str(24 * 45))
    get_settings.cache_clear()
    salesforce.rule(
        object="Opportunity", field="Name", contains="#10", message="No orders #10xx today"
    )
    dry = reconcile(dry_run=True)
    assert dry["cursor_advanced_to"] is None
    undated = reconcile(dry_run=True)  # the CLI's and nightly deployment's entry: no dates
    assert undated["mode"] == "nightly"
    assert undated["counts"] == dry["counts"]
    first = reconcile()
    assert first["counts"]["missing"] == first["shopify_orders"] > 0
    assert first["dead_lettered"] > 0
    assert first["repaired"] + first["dead_lettered"] == first["counts"]["missing"]
    assert first["status"] == "repaired_with_failures"
    assert first["cursor_advanced_to"] == first["window_end"]
    settings = get_settings()
    store = store_of(settings)
    try:
        letters = store.dead_letters()
        assert len(letters) == first["dead_lettered"]
        assert {d.source for d in letters} == {"reconcile"}
        assert {d.stage for d in letters} == {"opportunity"}
        assert {d.error_code for d in letters} == {"FIELD_CUSTOM_VALIDATION_EXCEPTION"}
        assert store.get_cursor(CURSOR) == datetime.fromisoformat(first["window_end"])
    finally:
        store.close()
    salesforce.clear_rules()
    second = reconcile()
    assert second["repaired"] == first["dead_lettered"]
    assert second["discrepancies"] == second["counts"]["missing"] + second["counts"]["drifted"]
    third = reconcile()
    assert third["discrepancies"] == 0
    assert third["plan"]["opportunities"] == 0
    store = store_of(settings)
    try:
        assert store.dead_letters() == []  # resolved by the repair
    finally:
        store.close()


@pytest.mark.slow
def test_run_killed_mid_repair_completes_on_rerun_without_duplicates(
    product: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    start, end = window(shopify)
    salesforce.fault(kind="503", path="composite/sobjects/Opportunity", method="PATCH")
    with pytest.raises(Exception, match=r"SERVER_UNAVAILABLE|503"):
        reconcile(start, end)
    assert salesforce.records("Opportunity") == []  # Accounts and Contacts went in first
    accounts = len(salesforce.records("Account"))
    assert accounts > 0
    salesforce.clear_faults()
    result = reconcile(start, end)
    assert result["status"] == "ok"
    assert result["repaired"] == result["counts"]["missing"] == result["shopify_orders"]
    for sobject, key in (("Opportunity", OPP), ("Account", ACC)):
        keys = [r[key] for r in salesforce.records(sobject)]
        assert len(keys) == len(set(keys)), sobject
    assert len(salesforce.records("Account")) == accounts
    store = store_of(product)
    try:
        assert [r.status for r in store.recent_runs(2)] == ["ok", "failed"]
    finally:
        store.close()
    assert reconcile(start, end)["discrepancies"] == 0
