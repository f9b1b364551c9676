"""Two data fixes on the shared sync path (issue 15), against both sandboxes over loopback.

A: an order the ledger calls unchanged is written again by replay and ``sync-order`` when its
Opportunity is gone from Salesforce (a user deleted it), exactly once.
B: the stand-in names of a buyer whose data Shopify redacted are create-only: they never
overwrite a real name a user or an earlier payload put on the Account, Contact or Opportunity.
"""

from __future__ import annotations

from typing import Any

import pytest

from flows.replay import replay_dead_letters
from flows.sync_order import sync_order
from tasks.core.errors import InvalidOrder
from tasks.core.orders import parse_rest_order
from tasks.runtime import Runtime
from tasks.steps import dead_letter
from tasks.sync import SyncContext, sync_order_state
from tests.conftest import shopify_fixture
from tests.integration.conftest import soql

pytestmark = pytest.mark.usefixtures("prefect_harness")

KEY = "External_Shopify_Order_ID__c"


def opportunities(runtime: Runtime, order_id: str) -> list[dict[str, Any]]:
    fields = "Id, Name, StageName, CloseDate, Amount"
    return soql(runtime, f"SELECT {fields} FROM Opportunity WHERE {KEY} = '{order_id}'")  # noqa: S608


def delete_opportunity(runtime: Runtime, order_id: str) -> dict[str, Any]:
    """What a Salesforce user does: delete the order's Opportunity (outside the sync)."""
    [gone] = opportunities(runtime, order_id)
    runtime.salesforce._call(lambda sf: sf.Opportunity.delete(gone["Id"]))
    assert opportunities(runtime, order_id) == []
    return gone


def park(runtime: Runtime, order_id: str) -> None:
    """A dead letter for the order (why does not matter: replay syncs it from Shopify)."""
    error = InvalidOrder("a reason fixed since", code="FIXED_SINCE", stage="opportunity")
    dead_letter(runtime.store, order_id, error, source="webhook", payload=None)


def test_replay_writes_an_unchanged_order_whose_opportunity_was_deleted(
    runtime: Runtime, shopify, salesforce
) -> None:
    deleted, kept = (str(shopify.shop.generator.order_id(n)) for n in (0, 1))
    for order_id in (deleted, kept):
        assert sync_order(order_id)["action"] == "created"
    park(runtime, kept)
    salesforce.reset_stats()
    assert replay_dead_letters()["outcomes"] == {"replayed_unchanged": 1}
    one = salesforce.stats()["api_calls"]["by_kind"]  # the run's reads and one existence query
    assert "composite" not in one  # unchanged and still there: nothing written
    park(runtime, deleted)
    park(runtime, kept)
    gone = delete_opportunity(runtime, deleted)
    salesforce.reset_stats()
    result = replay_dead_letters()
    two = salesforce.stats()["api_calls"]["by_kind"]
    assert result["outcomes"] == {"replayed_recreated": 1, "replayed_unchanged": 1}
    [back] = opportunities(runtime, deleted)  # back, exactly once
    assert back["CloseDate"] == gone["CloseDate"]
    assert len(opportunities(runtime, kept)) == 1
    # the same queries for two replayed orders as for one (one existence query for the batch),
    # and one composite, for the deleted one
    assert (two.get("query"), two.get("composite")) == (one.get("query"), 1), (one, two)
    assert runtime.store.dead_letters() == []


def test_sync_order_writes_an_unchanged_order_whose_opportunity_was_deleted(
    runtime: Runtime, shopify
) -> None:
    order_id = str(shopify.shop.generator.order_id(2))
    assert sync_order(order_id)["action"] == "created"
    assert sync_order(order_id)["action"] == "unchanged"
    delete_opportunity(runtime, order_id)
    assert sync_order(order_id)["action"] == "recreated"
    assert len(opportunities(runtime, order_id)) == 1
    assert sync_order(order_id)["action"] == "unchanged"
    assert len(opportunities(runtime, order_id)) == 1


# -- B: placeholders of redacted buyer data are create-only ----------------------------------


def maren(n: int = 0, **changes: Any) -> dict[str, Any]:
    payload = shopify_fixture("order.json")["order"]
    return dict(payload, id=payload["id"] + n, name=f"#{1001 + n}", **changes)


def redacted(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as Shopify sends it when the app may not see protected customer data."""
    personal = ("first_name", "last_name", "name", "address1", "address2", "phone", "company")
    customer = dict(payload["customer"], first_name=None, last_name=None, email=None, phone=None)
    customer["default_address"] = dict(customer["default_address"], **dict.fromkeys(personal))
    out = dict(payload, customer=customer, email=None, phone=None, contact_email=None)
    for address in ("billing_address", "shipping_address"):
        if out.get(address):
            out[address] = dict(out[address], **dict.fromkeys(personal))
    return out


def test_a_redacted_order_does_not_overwrite_real_names(runtime: Runtime, ctx: SyncContext) -> None:
    first = maren()
    assert sync_order_state(parse_rest_order(first), ctx).action == "created"
    [account] = soql(runtime, "SELECT Id, Name FROM Account")
    runtime.salesforce._call(lambda sf: sf.Account.update(account["Id"], {"Name": "Okafor Ltd"}))
    # A later state of the same order, and a new order of the customer, both redacted.
    edited = redacted(dict(first, updated_at="2030-01-01T00:00:00Z", total_price="77.00"))
    assert sync_order_state(parse_rest_order(edited), ctx).action == "updated"
    assert sync_order_state(parse_rest_order(redacted(maren(1))), ctx).action == "created"
    [still] = soql(runtime, "SELECT Id, Name FROM Account")
    assert still == {**account, "Name": "Okafor Ltd"}  # the user's name, not a placeholder
    [opportunity] = opportunities(runtime, str(first["id"]))
    assert "customer" not in opportunity["Name"]  # the first payload's real name stays
    assert str(opportunity["Amount"]) in {"77", "77.0", "77.00"}  # owned data still updated
    [new] = opportunities(runtime, str(maren(1)["id"]))
    assert new["Name"].endswith(f"(customer {first['customer']['id']})")  # created: stand-in


def test_a_redacted_buyer_seen_first_gets_placeholders_then_real_names(
    runtime: Runtime, ctx: SyncContext
) -> None:
    assert sync_order_state(parse_rest_order(redacted(maren())), ctx).action == "created"
    [account] = soql(runtime, "SELECT Id, Name FROM Account")
    assert account["Name"].startswith("Shopify customer ")
    later = dict(maren(), updated_at="2030-01-01T00:00:00Z")  # the data visible again
    assert sync_order_state(parse_rest_order(later), ctx).action == "updated"
    [named] = soql(runtime, "SELECT Id, Name FROM Account")
    assert named["Id"] == account["Id"]
    assert not named["Name"].startswith("Shopify customer ")
