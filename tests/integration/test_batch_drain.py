"""The drain's batch path (issue 16) over loopback: a claimed batch written with sObject
Collections, with exactly the per-order path's semantics.

Deliveries go into the inbox directly, with the bodies the Shopify sandbox renders for its
webhooks; ``SHOPSYNC_DRAIN_MODE`` picks the path. The semantics tests run both paths.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from flows.outcome import run_flow
from flows.sync_pending import sync_pending_orders
from state import StateStore
from state.models import utcnow
from tasks.runtime import Runtime
from tasks.settings import get_settings
from tests.integration.conftest import deliver
from tests.reliability.support import KEY_FIELDS, duplicates

pytestmark = pytest.mark.usefixtures("prefect_harness")

MODES = ["per_order", "batch"]
REJECTED = "Rejectme"  # a Contact LastName the test's validation rule refuses
LOCKED = ("Lockone", "Locktwo")  # first names whose Accounts are locked (scope: record)


def use_mode(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv("SHOPSYNC_DRAIN_MODE", mode)
    get_settings.cache_clear()


def drain(batch_size: int | None = None) -> tuple[Any, dict[str, Any]]:
    return run_flow(sync_pending_orders, max_seconds=300, batch_size=batch_size, lease_seconds=30)


def due_now(store: StateStore) -> None:
    ids = [row.webhook_id for row in store.inbox_rows(status="pending", limit=10_000)]
    store.retry_later(ids, at=utcnow() - timedelta(seconds=1), error="test: the wait is over")


def opportunity_by_order(salesforce) -> dict[str, dict[str, Any]]:
    key = KEY_FIELDS["Opportunity"]
    return {str(r[key]): r for r in salesforce.records("Opportunity")}


def amount(opportunity: dict[str, Any]) -> Decimal:
    return Decimal(str(opportunity["Amount"])).quantize(Decimal("0.01"))


def drain_artifact(flow_run_id: Any) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["shopsync-drain"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    return str(artifact.data)


def live_single_customer_orders(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Orders of customers who have no other order, not cancelled, not guests, no company."""
    counts = Counter(p["customer"]["id"] for p in payloads if p.get("customer"))
    return [
        p
        for p in payloads
        if p.get("customer")
        and counts[p["customer"]["id"]] == 1
        and p.get("cancelled_at") is None
        and p["customer"].get("email")
        and not (p.get("billing_address") or {}).get("company")
        and not ((p["customer"].get("default_address") or {}).get("company"))
    ]


# -- the 600-order backlog ---------------------------------------------------------------------


def test_a_600_order_backlog_syncs_once_each_or_is_dead_lettered_with_its_reason(
    store: StateStore, shopify, salesforce, runtime: Runtime, monkeypatch
) -> None:
    # As in production, an order tried again waits long enough for the run to end first.
    monkeypatch.setenv("SHOPSYNC_INBOX_BACKOFF_SECONDS", "30,60,120")
    use_mode(monkeypatch, "adaptive")  # the default: 600 claimed orders take the batch path
    shop = shopify.shop
    ids = [shop.generator.order_id(i) for i in range(500)]
    ids += [shop.create_order()["id"] for _ in range(100)]
    payloads = [shop.rest(shop.store.get(i)) for i in ids]
    # Generated orders are dated in the past, so an update now is strictly newer.
    singles = [p for p in live_single_customer_orders(payloads) if p["id"] in ids[:500]]
    rejected = [p["id"] for p in singles[:3]]
    locked = [p["id"] for p in singles[3:5]]
    reordered = [p["id"] for p in singles[5:25]]  # an update, and its older payload later
    user_edited = singles[25]["id"]
    for order_id in rejected:
        shop.update_order(order_id, {"last_name": REJECTED})
    for order_id, name in zip(locked, LOCKED, strict=True):
        shop.update_order(order_id, {"first_name": name})
    older = {oid: shop.rest(shop.store.get(oid)) for oid in reordered}
    for order_id in reordered:
        shop.update_order(order_id, {"total_price": "77.77"})
    payloads = [shop.rest(shop.store.get(i)) for i in ids]
    salesforce.rule(object="Contact", field="LastName", contains=REJECTED, message="Not allowed")
    for name in LOCKED:
        salesforce.fault(kind="lock", scope="record", object="Account", external_id=name)

    for n, body in enumerate(payloads):
        deliver(store, f"c-{n}", "orders/create", body)
        if n % 10 == 0:
            deliver(store, f"c-{n}", "orders/create", body)  # Shopify's retry: the same id
        if n % 7 == 0:
            deliver(store, f"p-{n}", "orders/paid", body)  # another topic, the same state
    salesforce.reset_stats()

    state, first = drain()
    assert first["outcomes"]["created"] == 600 - 5, first
    assert first["outcomes"]["dead_letter"] == 3
    assert first["outcomes"]["retry_later"] == 2
    assert {r.order_id for r in store.inbox_rows(status="pending")} == {str(o) for o in locked}
    assert state.is_failed()  # dead letters: the run is not green (flows/outcome.py)
    report = drain_artifact(state.state_details.flow_run_id)
    rejected_name = shop.rest(shop.store.get(rejected[0]))["name"]
    assert f"| {rejected_name} | dead_letter: FIELD_CUSTOM_VALIDATION_EXCEPTION" in report
    assert f"| created ({600 - 5}) |" in report  # the synced orders' names, as ranges

    # A Salesforce user moves a deal along; Shopify updates the order, and older payloads of
    # twenty orders arrive late; the locks are gone.
    opportunity = opportunity_by_order(salesforce)[str(user_edited)]
    runtime.salesforce._call(
        lambda sf: sf.Opportunity.update(opportunity["Id"], {"StageName": "Qualification"})
    )
    salesforce.clear_faults()
    edited_payload = shop.rest(shop.update_order(user_edited, {"total_price": "55.55"}))
    deliver(store, "u-1", "orders/updated", edited_payload)
    for order_id, body in older.items():
        deliver(store, f"late-{order_id}", "orders/updated", body)
    deliver(store, "c-0", "orders/create", payloads[0])  # a redelivery of a done webhook
    due_now(store)
    _, second = drain()
    assert second["outcomes"] == {"created": 2, "updated": 1, "stale": 20}, second

    calls = salesforce.api_calls()
    synced = opportunity_by_order(salesforce)
    letters = {d.order_id: d for d in store.dead_letters()}
    assert set(letters) == {str(o) for o in rejected}
    for letter in letters.values():
        assert (letter.stage, letter.error_code) == ("contact", "FIELD_CUSTOM_VALIDATION_EXCEPTION")
        assert "Not allowed" in letter.message
    assert set(synced) == {str(i) for i in ids} - set(letters)
    assert duplicates(salesforce) == {}
    assert store.counts().inbox.get("pending", 0) == 0
    current = {str(p["id"]): p for p in payloads}
    for order_id in reordered:
        assert amount(synced[str(order_id)]) == Decimal(
            current[str(order_id)]["current_total_price"]
        )
        late = datetime.fromisoformat(older[order_id]["updated_at"].replace("Z", "+00:00"))
        assert store.ledger(str(order_id)).order_updated_at > late
    edited = synced[str(user_edited)]
    assert (edited["StageName"], amount(edited)) == (
        "Qualification",
        Decimal(edited_payload["current_total_price"]),
    )
    print(f"\n600-order backlog: {calls} Salesforce API calls, {calls / 600:.3f} per order")  # noqa: T201
    assert calls / 600 <= 0.05


# -- the same semantics on both paths ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_an_unkeyed_contact_with_the_customers_email_is_adopted_not_duplicated(
    mode: str, store: StateStore, shopify, salesforce, runtime: Runtime, monkeypatch
) -> None:
    use_mode(monkeypatch, mode)
    shop = shopify.shop
    payloads = [shop.rest(shop.store.get(shop.generator.order_id(i))) for i in range(12)]
    target = live_single_customer_orders(payloads)[0]
    email = target["customer"]["email"]
    runtime.salesforce._call(lambda sf: sf.Contact.create({"LastName": "Existing", "Email": email}))
    for n, body in enumerate(payloads):
        deliver(store, f"w-{n}", "orders/create", body)
    _, result = drain(batch_size=50)
    assert result["outcomes"] == {"created": 12}
    same = [
        c for c in salesforce.records("Contact") if str(c.get("Email")).lower() == email.lower()
    ]
    assert len(same) == 1
    assert same[0][KEY_FIELDS["Contact"]] == str(target["customer"]["id"])
    assert duplicates(salesforce) == {}


@pytest.mark.parametrize("mode", MODES)
def test_an_opportunity_salesforce_already_has_keeps_its_create_only_fields(
    mode: str, store: StateStore, shopify, salesforce, runtime: Runtime, monkeypatch
) -> None:
    use_mode(monkeypatch, mode)
    shop = shopify.shop
    payloads = [shop.rest(shop.store.get(shop.generator.order_id(i))) for i in range(10)]
    target = live_single_customer_orders(payloads)[0]
    runtime.salesforce._call(  # an earlier integration (the ledger does not know it)
        lambda sf: sf.Opportunity.create(
            {
                KEY_FIELDS["Opportunity"]: str(target["id"]),
                "Name": "Imported",
                "StageName": "Prospecting",
                "CloseDate": "2020-01-31",
            }
        )
    )
    for n, body in enumerate(payloads):
        deliver(store, f"w-{n}", "orders/create", body)
    _, result = drain(batch_size=50)
    assert result["outcomes"] == {"created": 9, "updated": 1}
    opportunity = opportunity_by_order(salesforce)[str(target["id"])]
    assert (opportunity["StageName"], opportunity["CloseDate"]) == ("Prospecting", "2020-01-31")
    assert opportunity["Name"] != "Imported"  # owned fields are written
    assert duplicates(salesforce) == {}


@pytest.mark.parametrize("mode", MODES)
def test_a_late_older_payload_changes_nothing_and_a_users_stage_survives(
    mode: str, store: StateStore, shopify, salesforce, runtime: Runtime, monkeypatch
) -> None:
    use_mode(monkeypatch, mode)
    shop = shopify.shop
    ids = [shop.generator.order_id(i) for i in range(10)]
    payloads = [shop.rest(shop.store.get(i)) for i in ids]
    target = live_single_customer_orders(payloads)[0]["id"]
    old = shop.rest(shop.store.get(target))
    new = shop.rest(shop.update_order(target, {"total_price": "42.00"}))
    for n, body in enumerate(payloads):
        deliver(store, f"w-{n}", "orders/create", new if body["id"] == target else body)
    assert drain(batch_size=50)[1]["outcomes"] == {"created": 10}
    opportunity = opportunity_by_order(salesforce)[str(target)]
    runtime.salesforce._call(
        lambda sf: sf.Opportunity.update(opportunity["Id"], {"StageName": "Qualification"})
    )
    for n, body in enumerate(payloads):  # every order again (8 of them unchanged), one stale
        deliver(store, f"again-{n}", "orders/updated", old if body["id"] == target else body)
    newer = shop.rest(
        shop.update_order(ids[1] if ids[0] == target else ids[0], {"total_price": "9.99"})
    )
    deliver(store, "newer", "orders/updated", newer)
    outcomes = drain(batch_size=50)[1]["outcomes"]
    assert outcomes == {"stale": 1, "unchanged": 8, "updated": 1}, outcomes
    after = opportunity_by_order(salesforce)
    assert amount(after[str(target)]) == Decimal(new["current_total_price"])
    assert after[str(target)]["StageName"] == "Qualification"
    assert amount(after[str(newer["id"])]) == Decimal(newer["current_total_price"])


def test_an_account_a_user_deleted_is_handed_to_the_per_order_recovery(
    store: StateStore, shopify, salesforce, runtime: Runtime, monkeypatch
) -> None:
    use_mode(monkeypatch, "batch")
    shop = shopify.shop
    payloads = [shop.rest(shop.store.get(shop.generator.order_id(i))) for i in range(10)]
    target = live_single_customer_orders(payloads)[0]
    for n, body in enumerate(payloads):
        deliver(store, f"w-{n}", "orders/create", body)
    assert drain(batch_size=50)[1]["outcomes"] == {"created": 10}
    account_key = f"shop_cust_{target['customer']['id']}"
    [account] = [
        r for r in salesforce.records("Account") if r.get(KEY_FIELDS["Account"]) == account_key
    ]
    runtime.salesforce.delete("Account", account["Id"])  # the cached Id is now in the recycle bin
    updated = shop.rest(shop.update_order(target["id"], {"total_price": "31.00"}))
    deliver(store, "u-1", "orders/updated", updated)
    outcomes = drain(batch_size=50)[1]["outcomes"]
    assert set(outcomes) <= {"updated", "recreated"}, outcomes
    assert sum(outcomes.values()) == 1
    assert store.dead_letters() == []
    assert duplicates(salesforce) == {}
    opportunity = opportunity_by_order(salesforce)[str(target["id"])]
    assert amount(opportunity) == Decimal(updated["current_total_price"])
    live = [r for r in salesforce.records("Account") if r.get(KEY_FIELDS["Account"]) == account_key]
    assert [opportunity["AccountId"]] == [r["Id"] for r in live]
