"""The batch drain's pure part (issue 16): grouping, newest-wins dedup, parents before children,
and per-record results → per-order outcomes; plus the mode switch and the report's order rows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from flows.sync_pending import claim_size, uses_collections
from state import LedgerRecord
from tasks.core.batch_plan import (
    PlannedOrder,
    StagedOrder,
    Written,
    account_chunks,
    contact_chunks,
    customers_written,
    lookups_needed,
    newest_by,
    note_parents,
    opportunity_chunks,
    record_outcomes,
    stage_order,
)
from tasks.core.buyer import Placeholder
from tasks.core.errors import InvalidOrder, RecordError, RetryableError, StaleReference, SyncError
from tasks.core.mapping import MappingConfig, OrgSchema, map_order
from tasks.core.orders import parse_rest_order
from tasks.core.prepared import PreparedOrder, Preparer
from tasks.reporting.drain_report import OrderNote, drain_markdown, order_rows
from tasks.salesforce import ContactWrite, OrderWrite, RecordResult
from tasks.salesforce.errors import classify_record
from tests.conftest import shopify_fixture

MAPPING = MappingConfig()
ORG = OrgSchema()
TZ = "UTC"


def order_payload(order_id: int, customer_id: int | None, updated: str, **extra: Any) -> dict:
    payload = dict(shopify_fixture("order.json")["order"], id=order_id, updated_at=updated)
    payload["name"] = f"#{order_id}"
    if customer_id is None:
        payload["customer"] = None
    else:
        payload["customer"] = dict(payload["customer"], id=customer_id, **extra)
    return payload


def planned(
    order_id: int,
    customer_id: int | None,
    updated: str = "2026-01-01T00:00:00Z",
    *,
    account_id: str | None = None,
    contact_write: ContactWrite = ContactWrite.UPSERT_BY_KEY,
    contact_id: str | None = None,
    exists: bool = False,
    **extra: Any,
) -> PlannedOrder:
    order = parse_rest_order(order_payload(order_id, customer_id, updated, **extra))
    records = map_order(order, MAPPING, ORG, TZ)
    write = OrderWrite(
        account_field=MAPPING.key_field("Account"),
        account_key=records.account_key,
        account=records.account,
        account_id=account_id,
        opportunity_field=MAPPING.key_field("Opportunity"),
        order_key=records.order_key,
        opportunity=records.opportunity,
        contact=records.contact,
        contact_field=MAPPING.key_field("Contact"),
        contact_key=records.contact_key,
        contact_write=contact_write,
        contact_id=contact_id,
        link_contact_to_opportunity=not exists,
    )
    return PlannedOrder(StagedOrder(PreparedOrder(order, records), records, None), write)


def ok(key: str, record_id: str, created: bool = True) -> RecordResult:
    return RecordResult(key, True, record_id, created)


def failed(key: str, *errors: tuple[str, str]) -> RecordResult:
    return RecordResult(key, False, errors=tuple(RecordError(c, m) for c, m in errors))


# -- grouping and newest-wins ---------------------------------------------------------------------


def test_newest_by_keeps_the_latest_update_whatever_the_arrival_order() -> None:
    older = planned(1, 7, "2026-01-01T00:00:00Z", first_name="Old")
    newer = planned(2, 7, "2026-01-02T00:00:00Z", first_name="New")
    for items in ([older, newer], [newer, older]):
        chosen = newest_by(items, lambda p: p.prepared.customer, lambda p: p.prepared.order)
        assert chosen == {"7": newer}


def test_one_account_per_key_with_the_newest_orders_body() -> None:
    newer = planned(2, 7, "2026-01-02T00:00:00Z", first_name="New")
    items = [newer, planned(1, 7, "2026-01-01T00:00:00Z", first_name="Old"), planned(3, 8)]
    [chunk] = account_chunks(items)
    assert (chunk.operation, chunk.sobject, chunk.key_field) == (
        "upsert",
        "Account",
        "External_Shopify_Account_ID__c",
    )
    assert chunk.owners == ["shop_cust_7", "shop_cust_8"]
    assert chunk.records[0] == {**newer.write.account, chunk.key_field: "shop_cust_7"}
    assert chunk.name == "upsert 2 Account"


def test_a_newer_orders_placeholder_never_replaces_an_older_orders_real_name() -> None:
    """Two orders of one new customer in a batch, the newer one redacted: as the per-order
    path leaves it (the older order names the records, the newer may not rename them)."""
    older = planned(1, 7, "2026-01-01T00:00:00Z", first_name="Maren", last_name="Okafor")
    newest = planned(2, 7, "2026-01-02T00:00:00Z")
    write = newest.write
    newer = replace(
        newest,
        write=replace(
            write,
            account={**write.account, "Name": Placeholder("Shopify customer 7"), "Phone": "1"},
            contact={**(write.contact or {}), "LastName": Placeholder("Unknown")},
        ),
    )
    [accounts] = account_chunks([newer, older])
    assert (accounts.records[0]["Name"], accounts.records[0]["Phone"]) == ("Maren Okafor", "1")
    written = Written(account_ids={"shop_cust_7": "001A"})
    [contacts] = contact_chunks([older, newer], written)
    assert contacts.records[0]["LastName"] == "Okafor"
    [alone] = account_chunks([newer])
    assert alone.records[0]["Name"] == "Shopify customer 7"  # nobody real: the stand-in


def test_a_cached_account_is_updated_by_id_with_its_key_stamped() -> None:
    chunks = account_chunks([planned(1, 7, account_id="001A"), planned(2, 8)])
    assert [(c.operation, c.owners) for c in chunks] == [
        ("upsert", ["shop_cust_8"]),
        ("update", ["shop_cust_7"]),
    ]
    update = chunks[1].records[0]
    assert (update["Id"], update["External_Shopify_Account_ID__c"]) == ("001A", "shop_cust_7")


def test_records_are_cut_into_calls_of_at_most_200() -> None:
    items = [planned(1000 + n, 5000 + n) for n in range(450)]
    assert [len(c.records) for c in account_chunks(items)] == [200, 200, 50]
    written = Written(account_ids={p.write.account_key: f"001{n}" for n, p in enumerate(items)})
    chunks, blocked = opportunity_chunks(items, written)
    assert [c.name for c in chunks] == [
        "upsert 200 Opportunity",
        "upsert 200 Opportunity",
        "upsert 50 Opportunity",
    ]
    assert blocked == {}


# -- contacts: how each is written ---------------------------------------------------------------


def test_contacts_go_by_upsert_update_or_create_and_link_to_their_written_account() -> None:
    keyed = planned(1, 7)
    adopted = planned(2, 8, contact_write=ContactWrite.UPDATE_BY_ID, contact_id="003X")
    guest = replace(
        planned(3, None),
        write=replace(planned(3, None).write, contact_write=ContactWrite.CREATE, contact_key=None),
    )
    items = [keyed, adopted, guest]
    written = Written(account_ids={p.write.account_key: f"001{n}" for n, p in enumerate(items)})
    chunks = {c.operation: c for c in contact_chunks(items, written)}
    assert chunks["upsert"].records[0]["External_Shopify_ID__c"] == "7"
    assert chunks["upsert"].records[0]["AccountId"] == "0010"
    update = chunks["update"].records[0]
    assert (update["Id"], update["External_Shopify_ID__c"]) == ("003X", "8")
    assert chunks["insert"].key_field == "Email"
    assert chunks["insert"].owners == [guest.prepared.customer]


def test_a_contact_two_customers_adopt_is_written_once_and_an_account_failure_skips_it() -> None:
    first = planned(1, 7, contact_write=ContactWrite.UPDATE_BY_ID, contact_id="003X")
    second = planned(2, 8, contact_write=ContactWrite.UPDATE_BY_ID, contact_id="003X")
    broken = planned(3, 9)
    written = Written(
        account_ids={"shop_cust_7": "0017", "shop_cust_8": "0018"},
        account_errors={"shop_cust_9": RetryableError("locked", code="UNABLE_TO_LOCK_ROW")},
    )
    [chunk] = contact_chunks([first, second, broken], written)
    assert (chunk.operation, chunk.owners) == ("update", ["7"])


# -- opportunities and outcomes -------------------------------------------------------------------


def test_an_order_whose_account_or_contact_failed_is_not_written_further() -> None:
    fine, no_account, no_contact = planned(1, 7), planned(2, 8), planned(3, 9)
    lock = RetryableError("locked", code="UNABLE_TO_LOCK_ROW", stage="account")
    rule = InvalidOrder("Not allowed", code="FIELD_CUSTOM_VALIDATION_EXCEPTION", stage="contact")
    written = Written(
        account_ids={"shop_cust_7": "0017", "shop_cust_9": "0019"},
        contact_ids={"7": "0037"},
        account_errors={"shop_cust_8": lock},
        contact_errors={"9": rule},
    )
    [chunk], blocked = opportunity_chunks([fine, no_account, no_contact], written)
    assert chunk.owners == [fine.order_id]
    assert (chunk.records[0]["AccountId"], chunk.records[0]["ContactId"]) == ("0017", "0037")
    assert blocked == {no_account.order_id: lock, no_contact.order_id: rule}
    assert customers_written([fine, no_account, no_contact], written) == {"7": ("0017", "0037")}


def test_an_existing_opportunity_gets_no_contact_link() -> None:
    item = planned(1, 7, exists=True)
    written = Written(account_ids={"shop_cust_7": "0017"}, contact_ids={"7": "0037"})
    [chunk], _ = opportunity_chunks([item], written)
    assert "ContactId" not in chunk.records[0]


def test_per_record_results_become_per_owner_outcomes_through_the_one_classifier() -> None:
    items = [planned(1, 7), planned(2, 8), planned(3, 9)]
    [chunk] = account_chunks(items)
    results = [
        ok("shop_cust_7", "0017"),
        failed("shop_cust_8", ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access")),
        failed(
            "shop_cust_9",
            ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Name needs review"),
            ("REQUIRED_FIELD_MISSING", "Required fields are missing: [Industry]"),
        ),
    ]
    outcomes = record_outcomes(chunk, results, "account")
    assert outcomes["shop_cust_7"] == results[0]
    lock, rule = outcomes["shop_cust_8"], outcomes["shop_cust_9"]
    assert isinstance(lock, RetryableError)
    assert lock.stage == "account"
    assert isinstance(rule, InvalidOrder)
    assert rule.code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert [e.code for e in rule.errors] == [
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "REQUIRED_FIELD_MISSING",
    ]  # Salesforce's full reason
    written = Written()
    note_parents(chunk, outcomes, written)
    assert written.account_ids == {"shop_cust_7": "0017"}
    assert set(written.account_errors) == {"shop_cust_8", "shop_cust_9"}


def test_a_failed_call_fails_every_owner_and_a_short_answer_fails_the_rest() -> None:
    [chunk] = account_chunks([planned(1, 7), planned(2, 8)])
    down = RetryableError("Server is unavailable", code="SERVER_UNAVAILABLE")
    assert record_outcomes(chunk, down, "account") == {"shop_cust_7": down, "shop_cust_8": down}
    short = record_outcomes(chunk, [ok("shop_cust_7", "0017")], "account")
    missing = short["shop_cust_8"]
    assert isinstance(missing, SyncError)
    assert missing.code == "MALFORMED_RESPONSE"


@pytest.mark.parametrize(
    ("codes", "kind", "code"),
    [
        (["ENTITY_IS_DELETED"], StaleReference, "ENTITY_IS_DELETED"),
        (["DUPLICATE_VALUE"], RetryableError, "DUPLICATE_VALUE"),
        (["ALL_OR_NONE_OPERATION_ROLLED_BACK", "STRING_TOO_LONG"], InvalidOrder, "STRING_TOO_LONG"),
        ([], InvalidOrder, "UNKNOWN_ERROR"),
    ],
)
def test_a_collections_record_error_is_classified_like_any_other(codes, kind, code) -> None:
    error = classify_record([RecordError(c, "m") for c in codes], stage="contact")
    assert type(error) is kind
    assert (error.code, error.stage) == (code, "contact")
    assert all(e.stage == "contact" for e in error.errors)


# -- preparing and looking up ---------------------------------------------------------------------


def test_a_prepared_order_is_staged_as_mapped_and_a_known_state_is_not_staged() -> None:
    item = planned(1, 7)
    prepared = Preparer(MAPPING, ORG, TZ)(item.prepared.order)
    staged = stage_order(prepared, None)
    assert isinstance(staged, StagedOrder)
    assert staged.records is prepared.records  # staged as prepared: not mapped again
    order = prepared.order
    known = LedgerRecord(
        order.id, None, None, "006", order.updated_at, order.payload_hash(), order.updated_at
    )
    assert stage_order(prepared, known).action == "unchanged"  # type: ignore[union-attr]


def test_lookups_ask_for_new_customers_emails_and_unknown_opportunities_only() -> None:
    new, known = planned(1, 7), planned(2, 8)
    cached = {"7": None, "8": ("0018", "0038")}
    emails, keys = lookups_needed([new.prepared, known.prepared], cached)
    assert emails == [new.prepared.records.contact_lookup_email]
    assert keys == sorted([new.prepared.records.order_key, known.prepared.records.order_key])


# -- the switch and the report --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "claimed", "expected"),
    [
        ("adaptive", 7, False),
        ("adaptive", 8, True),
        ("batch", 1, True),
        ("per_order", 800, False),
    ],
)
def test_the_mode_decides_when_a_claim_uses_collections(mode, claimed, expected) -> None:
    assert uses_collections(mode, claimed, 8) is expected


def test_the_claim_is_one_call_per_concurrent_request_unless_asked() -> None:
    assert claim_size(None, "adaptive", 4) == 800
    assert claim_size(None, "per_order", 4) == 50
    assert claim_size(10, "batch", 4) == 10


def test_the_report_lists_each_problem_and_the_synced_orders_as_ranges() -> None:
    notes = [OrderNote(f"#{n}", "created") for n in range(1001, 1301)]
    notes += [OrderNote("#1302", "created"), OrderNote("5551234", "created")]
    notes += [OrderNote("#1301", "dead_letter: FIELD_CUSTOM_VALIDATION_EXCEPTION: no")]
    notes += [OrderNote(f"#{n}", "retry_later: UNABLE_TO_LOCK_ROW: busy") for n in (1, 2, 3)]
    rows = order_rows(notes, limit=3)
    assert rows[0] == "| #1301 | dead_letter: FIELD_CUSTOM_VALIDATION_EXCEPTION: no |"
    assert rows[3] == "| … | 1 more, counted above |"
    assert rows[4] == "| #1001–#1300, #1302, 5551234 | created (302) |"
    report = drain_markdown("ok", {"created": 1}, None, [], [OrderNote("#1", "created")])
    assert report.endswith("## Orders\n\n| order | outcome |\n|---|---|\n| #1 | created (1) |")
