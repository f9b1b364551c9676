"""Pure repair rules (issue 13, point 4): which Contact an order adopts, the repair plan's
Contacts, the ledger re-check before writing, and spotting orders older than 60 days."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flows.reconcile_repair import recheck
from state import FailedRepair, StateStore
from tasks.core.adoption import contact_to_adopt, contacts_by_email, oldest_first
from tasks.core.mapping import MappingConfig, SalesforceRecords
from tasks.core.reconcile_window import created_before_window
from tasks.core.repair_plan import plan_repair, still_due
from tasks.settings import Settings

CONFIG = MappingConfig()
ACC = "External_Shopify_Account_ID__c"
CON = "External_Shopify_ID__c"
OPP = "External_Shopify_Order_ID__c"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def records(order_id: str, customer: str | None, email: str = "ada@example.com") -> Any:
    account_key = f"shop_cust_{customer}" if customer else f"shop_guest_{email}"
    contact: dict[str, Any] = {"LastName": "Lovelace", "Email": email}
    if customer:
        contact[CON] = customer
    return SalesforceRecords(
        account={"Name": "Ada", ACC: account_key},
        contact=contact,
        opportunity={
            "Name": f"Shopify Order #{order_id}",
            "StageName": "New Order",
            "CloseDate": "2026-12-01",
            "Amount": Decimal("10.00"),
            OPP: order_id,
        },
        account_key=account_key,
        contact_key=customer,
        order_key=order_id,
        truncations=[],
        contact_lookup_email=email.lower(),
    )


def contact(cid: str, key: str | None = None, account: str | None = "001X", **extra: Any) -> Any:
    return {"Id": cid, CON: key, "AccountId": account, "Email": "ada@example.com", **extra}


# -- the adoption rule --------------------------------------------------------------------------


def test_a_new_customer_adopts_the_oldest_unkeyed_contact() -> None:
    found = [contact("003A", key="9"), contact("003B"), contact("003C")]
    assert contact_to_adopt(found, CON, "7") == "003B"
    assert contact_to_adopt(found, CON, "7", taken={"003B"}) == "003C"


def test_a_customer_already_keyed_adopts_nothing() -> None:
    assert contact_to_adopt([contact("003B"), contact("003A", key="7")], CON, "7") is None
    assert contact_to_adopt([contact("003A", key="9")], CON, "7") is None
    assert contact_to_adopt([], CON, "7") is None


def test_a_guest_links_to_the_oldest_contact_keyed_or_not() -> None:
    assert contact_to_adopt([contact("003A", key="9"), contact("003B")], CON, None) == "003A"
    assert contact_to_adopt([], CON, None) is None


def test_bulk_rows_are_grouped_by_email_and_sorted_oldest_first() -> None:
    rows = [
        {"Id": "003B", "Email": "Ada@Example.com", "CreatedDate": "2026-02-01T00:00:00.000+0000"},
        {"Id": "003A", "Email": "ada@example.com", "CreatedDate": "2026-01-01T00:00:00.000+0000"},
        {"Id": "003Z", "Email": "other@example.com", "CreatedDate": "2026-01-01T00:00:00.000+0000"},
    ]
    grouped = contacts_by_email(rows, {"ada@example.com", "nobody@example.com"})
    assert [c["Id"] for c in grouped["ada@example.com"]] == ["003A", "003B"]
    assert grouped["nobody@example.com"] == []
    assert [c["Id"] for c in oldest_first([{"Id": "2"}, {"Id": "1"}])] == ["2", "1"]  # stable


# -- the repair plan's Contacts -----------------------------------------------------------------


def test_plan_adopts_by_id_and_links_the_opportunity_by_key() -> None:
    found = {"ada@example.com": [contact("003B", account=None)]}
    plan = plan_repair([("missing", records("1", "7"), [])], CONFIG, found)
    assert plan.contacts == []
    (adopted,) = plan.adoptions
    assert adopted["Id"] == "003B"
    assert adopted[CON] == "7"
    assert "Account" not in adopted  # Contact.AccountId is create-only by default
    assert plan.opportunities[0]["Contact"][CON] == "7"
    assert plan.adoption_orders == {"003B": ["1"]}
    assert plan.counts()["adopted_contacts"] == 1


def test_an_existing_contact_gets_the_account_only_when_account_id_is_owned() -> None:
    found = {"ada@example.com": [contact("003B", account=None), contact("003K", key="8")]}
    owned = MappingConfig(create_only_fields={"Contact": ["OwnerId"]})
    items = [("missing", records("1", "7"), []), ("missing", records("2", "8"), [])]
    assert plan_repair(items, owned, found).adoptions[0]["Account"][ACC] == "shop_cust_7"
    plan = plan_repair(items, CONFIG, found)
    assert "Account" not in plan.adoptions[0]
    assert [c[CON] for c in plan.contacts] == ["8"]
    assert "Account" not in plan.contacts[0]  # already keyed: an update, not re-parented


def test_a_new_customers_contact_is_created_under_its_account() -> None:
    plan = plan_repair([("missing", records("1", "7"), [])], CONFIG, {})
    assert plan.contacts[0]["Account"][ACC] == "shop_cust_7"


def test_one_unkeyed_contact_is_adopted_by_one_customer_only() -> None:
    found = {"ada@example.com": [contact("003B")]}
    items = [("missing", records("1", "7"), []), ("missing", records("2", "8"), [])]
    plan = plan_repair(items, CONFIG, found)
    assert [a["Id"] for a in plan.adoptions] == ["003B"]
    assert [c[CON] for c in plan.contacts] == ["8"]


def test_a_guest_is_linked_to_an_existing_contact_by_id() -> None:
    found = {"ada@example.com": [contact("003A", key="9")]}
    plan = plan_repair([("missing", records("1", None), [])], CONFIG, found)
    assert plan.linked_contacts == {"1": "003A"}
    assert plan.guest_contacts == []
    assert CON not in plan.adoptions[0]  # a guest never stamps a key


def test_new_guests_get_one_contact_per_email() -> None:
    items = [
        ("missing", records("1", None, "Ada@Example.com"), []),
        ("missing", records("2", None, "ada@example.com"), []),
    ]
    plan = plan_repair(items, CONFIG, {})
    (guest,) = plan.guest_contacts
    assert guest["Account"][ACC].startswith("shop_guest_")
    assert plan.guest_orders == {"Ada@Example.com": ["1", "2"]}


def test_a_guest_sharing_a_new_customers_email_links_to_that_contact() -> None:
    items = [("missing", records("1", None), []), ("missing", records("2", "7"), [])]
    plan = plan_repair(items, CONFIG, {})
    assert plan.guest_contacts == []
    assert [c[CON] for c in plan.contacts] == ["7"]
    assert plan.opportunities[0]["Contact"][CON] == "7"
    assert plan.contact_orders == {"7": ["2", "1"]}


def test_drifted_orders_never_touch_contacts() -> None:
    found = {"ada@example.com": [contact("003B")]}
    plan = plan_repair([("drifted", records("1", "7"), ["Amount"])], CONFIG, found)
    assert plan.adoptions == []
    assert plan.contacts == []
    assert "Contact" not in plan.opportunities[0]


# -- the ledger re-check ------------------------------------------------------------------------


class Ledger:
    def __init__(self, updated: datetime, synced: datetime) -> None:
        self.order_updated_at = updated
        self.synced_at = synced


def test_still_due_never_writes_an_older_state_over_a_newer_one() -> None:
    since = T0
    assert still_due("create", T0, None, since) == "create"
    newer = Ledger(T0 + timedelta(minutes=1), T0 - timedelta(days=1))
    assert still_due("update", T0, newer, since) is None
    assert still_due("create", T0, newer, since) is None


def test_still_due_after_the_drain_wrote_during_the_run() -> None:
    since = T0
    same = Ledger(T0 - timedelta(hours=1), T0 + timedelta(seconds=5))
    assert still_due("create", T0 - timedelta(hours=1), same, since) is None
    older = Ledger(T0 - timedelta(hours=2), T0 + timedelta(seconds=5))
    assert still_due("create", T0 - timedelta(hours=1), older, since) == "update"


def test_still_due_recreates_what_the_ledger_wrote_before_the_run() -> None:
    before = Ledger(T0 - timedelta(hours=1), T0 - timedelta(minutes=30))
    assert still_due("create", T0 - timedelta(hours=1), before, T0) == "create"  # deleted in SF


def test_recheck_turns_a_create_into_an_update_of_every_owned_field() -> None:
    item = ("missing", records("1", "7"), [], (T0, "hash"))
    drained = Ledger(T0 - timedelta(hours=1), T0 + timedelta(seconds=1))
    kept, dropped = recheck([item], {"1": drained}, T0)  # type: ignore[dict-item]
    assert dropped == 0
    assert kept[0][0] == "drifted"
    assert "Account" in kept[0][2]
    plan = plan_repair([kept[0][:3]], CONFIG)  # type: ignore[list-item]
    assert "StageName" not in plan.opportunities[0]
    assert "Contact" not in plan.opportunities[0]


# -- orders older than 60 days in an updated_at window ------------------------------------------


def test_orders_created_before_the_cutoff_but_updated_in_the_window_are_named() -> None:
    start, end = T0, T0 + timedelta(days=2)
    cutoff = T0 - timedelta(days=60)

    def body(oid: int, created: datetime, updated: datetime) -> tuple[str, bytes]:
        data = {"id": oid, "created_at": created.isoformat(), "updated_at": updated.isoformat()}
        return str(oid), json.dumps(data).encode()

    old = body(1, T0 - timedelta(days=90), T0 + timedelta(hours=1))
    young = body(2, T0 - timedelta(days=10), T0 + timedelta(hours=1))
    outside = body(3, T0 - timedelta(days=90), T0 + timedelta(days=3))
    refund = ("4", json.dumps({"id": 99, "order_id": 4, "created_at": "x"}).encode())
    junk = ("5", b"not json")
    found = created_before_window([old, young, outside, refund, junk], start, end, cutoff)
    assert found == {"1": T0 - timedelta(days=90)}


def test_max_failed_nights_is_configurable_with_a_default_of_three() -> None:
    assert Settings().reconcile_max_failed_nights == 3


# -- the store: failed nights and an operator's cursor ------------------------------------------


def test_failed_nights_count_per_order_and_clear(tmp_path: Path) -> None:
    store = StateStore.open(data_dir=tmp_path)
    try:
        lock = FailedRepair("1", "opportunity", "UNABLE_TO_LOCK_ROW", "locked")
        assert store.count_failed_night([lock]) == {"1": 1}
        assert store.count_failed_night([lock, replace(lock, order_id="2")]) == {"1": 2, "2": 1}
        store.clear_failed_nights(["1"])
        assert store.failed_nights() == {"2": 1}
    finally:
        store.close()


def test_an_operator_may_move_the_cursor_back_only_when_allowed(tmp_path: Path) -> None:
    store = StateStore.open(data_dir=tmp_path)
    try:
        assert store.set_cursor("nightly", T0) == T0
        with pytest.raises(ValueError, match="allow_backwards"):
            store.set_cursor("nightly", T0 - timedelta(days=1))
        assert store.get_cursor("nightly") == T0
        assert store.set_cursor("nightly", T0 - timedelta(days=1), allow_backwards=True)
        assert store.get_cursor("nightly") == T0 - timedelta(days=1)
        assert store.advance_cursor("nightly", T0 - timedelta(days=2)) == T0 - timedelta(days=1)
    finally:
        store.close()
