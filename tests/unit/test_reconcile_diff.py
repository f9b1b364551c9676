"""The pure reconcile diff and repair plan (tasks/core/diff.py): every outcome, create-only fields
never drift, money rounding, repair keys deduplicated."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from tasks.core.buyer import Placeholder
from tasks.core.diff import confirm_orphans, diff
from tasks.core.diff_columns import ActualColumns, ExpectedColumns, RecordColumns
from tasks.core.diff_report import Failure, discrepancy_rows, failures_by_order
from tasks.core.errors import InvalidOrder, PermanentError, RecordError, RetryableError
from tasks.core.mapping import MappingConfig, SalesforceRecords
from tasks.core.mapping_table import money_text
from tasks.core.repair_plan import placeholder_keys, plan_repair
from tasks.salesforce import RecordResult
from tasks.salesforce.results import csv_row

CONFIG = MappingConfig()
ACC = "External_Shopify_Account_ID__c"
CON = "External_Shopify_ID__c"
OPP = "External_Shopify_Order_ID__c"


def records(
    order_id: str,
    *,
    amount: str = "10.00",
    customer: str | None = "7",
    cancelled: bool = False,
    currency: str | None = None,
) -> SalesforceRecords:
    account_key = f"shop_cust_{customer}" if customer else f"shop_guest_order_{order_id}"
    opportunity: dict[str, Any] = {
        "Name": f"Shopify Order #{order_id} (Ada Lovelace)",
        "StageName": "Closed Lost" if cancelled else "New Order",
        "CloseDate": "2026-12-01",
        "Amount": Decimal(amount),
        OPP: order_id,
    }
    if currency:
        opportunity["CurrencyIsoCode"] = currency
    contact = {"LastName": "Lovelace", CON: customer} if customer else None
    return SalesforceRecords(
        account={"Name": "Ada Lovelace", "Phone": "123", ACC: account_key},
        contact=contact,
        opportunity=opportunity,
        account_key=account_key,
        contact_key=customer,
        order_key=order_id,
        truncations=[],
        contact_lookup_email=None,
        cancelled=cancelled,
    )


def expected(*items: SalesforceRecords, multi_currency: bool = False) -> pd.DataFrame:
    columns = ExpectedColumns(CONFIG, multi_currency=multi_currency)
    for item in items:
        columns.add(f"#{item.order_key}", item)
    return columns.frame()


def sf_row(
    sf_id: str,
    order_id: str,
    *,
    amount: Any = 10.0,
    name: str | None = None,
    stage: str = "New Order",
    close: str = "2026-12-01",
    account: str | None = "shop_cust_7",
    currency: str | None = None,
    bulk: bool = False,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "Id": sf_id,
        OPP: order_id,
        "Name": name or f"Shopify Order #{order_id} (Ada Lovelace)",
        "Amount": amount,
        "StageName": stage,
        "CloseDate": close,
        "CurrencyIsoCode": currency,
    }
    if bulk:
        row[f"Account.{ACC}"] = account or ""
    else:
        row["Account"] = None if account is None else {"attributes": {}, ACC: account}
    return row


def actual(*rows: dict[str, Any]) -> pd.DataFrame:
    columns = ActualColumns(CONFIG)
    columns.extend(rows)
    return columns.frame()


def status_of(result: Any) -> dict[str, str]:
    return dict(zip(result.orders["order_id"], result.orders["status"], strict=True))


# -- money ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("59.9"), "59.90"),
        (59.9, "59.90"),
        ("59.90", "59.90"),
        ("59.9", "59.90"),
        (100, "100.00"),
        (0.1 + 0.2, "0.30"),
        (Decimal("10.005"), "10.01"),
        ("", None),
        (None, None),
        ("abc", None),
    ],
)
def test_money_text_rounds_to_cents(value: Any, text: str | None) -> None:
    assert money_text(value) == text


def test_salesforce_float_equals_shopify_decimal() -> None:
    result = diff(
        expected(records("1", amount="598.94")), actual(sf_row("006A", "1", amount=598.94))
    )
    assert status_of(result) == {"1": "in_sync"}


def test_bulk_csv_strings_compare_like_json_numbers() -> None:
    result = diff(
        expected(records("1", amount="20.5")),
        actual(sf_row("006A", "1", amount="20.50", bulk=True)),
    )
    assert status_of(result) == {"1": "in_sync"}


# -- outcomes ---------------------------------------------------------------------------------


def test_every_outcome() -> None:
    exp = expected(records("1"), records("2"), records("3", amount="12.00"), records("4"))
    act = actual(
        sf_row("006A", "1"),
        sf_row("006B", "3", amount=11.0),
        sf_row("006C", "4"),
        sf_row("006D", "4"),
        sf_row("006E", "99"),
    )
    result = diff(exp, act)
    assert status_of(result) == {"1": "in_sync", "2": "missing", "3": "drifted", "4": "duplicate"}
    assert result.counts() == {"in_sync": 1, "missing": 1, "drifted": 1, "duplicate": 1}
    row = result.orders.set_index("order_id").loc["3"]
    assert row["drift"] == "Amount: 11.00 → 12.00"
    assert row["drift_fields"] == "Amount"
    assert result.orders.set_index("order_id").loc["4", "salesforce_ids"] == "006C;006D"
    assert result.candidates["order_id"].tolist() == ["99"]


def test_name_and_account_drift_listed_together() -> None:
    result = diff(
        expected(records("1")),
        actual(sf_row("006A", "1", name="Renamed", account="shop_cust_8")),
    )
    assert result.drift_fields() == {"1": ["Name", "Account"]}
    detail = result.orders.loc[0, "drift"]
    assert "Name: Renamed → Shopify Order #1 (Ada Lovelace)" in detail
    assert "Account: shop_cust_8 → shop_cust_7" in detail


def test_create_only_fields_never_drift() -> None:
    result = diff(
        expected(records("1")),
        actual(sf_row("006A", "1", stage="Negotiation/Review", close="2030-01-01")),
    )
    assert status_of(result) == {"1": "in_sync"}


def test_cancelled_order_stage_is_owned_when_configured() -> None:
    result = diff(expected(records("1", cancelled=True)), actual(sf_row("006A", "1")))
    assert status_of(result) == {"1": "drifted"}
    assert result.orders.loc[0, "drift"] == "StageName: New Order → Closed Lost"


def test_cancelled_order_stage_is_create_only_when_not_configured() -> None:
    config = MappingConfig(cancellation_updates_stage=False)
    columns = ExpectedColumns(config)
    columns.add("#1", records("1", cancelled=True))
    result = diff(columns.frame(), actual(sf_row("006A", "1")))
    assert status_of(result) == {"1": "in_sync"}


def test_currency_compared_only_for_multi_currency() -> None:
    item = records("1", currency="EUR")
    row = sf_row("006A", "1", currency="USD")
    assert status_of(diff(expected(item), actual(row))) == {"1": "in_sync"}
    multi = diff(expected(item, multi_currency=True), actual(row), compare_currency=True)
    assert multi.orders.loc[0, "drift"] == "CurrencyIsoCode: USD → EUR"


def test_missing_account_link_is_drift() -> None:
    result = diff(expected(records("1")), actual(sf_row("006A", "1", account=None)))
    assert result.orders.loc[0, "drift"] == "Account: ∅ → shop_cust_7"


def test_same_salesforce_row_twice_is_not_a_duplicate() -> None:
    result = diff(expected(records("1")), actual(sf_row("006A", "1"), sf_row("006A", "1")))
    assert status_of(result) == {"1": "in_sync"}


def test_orphans_are_candidates_shopify_does_not_have() -> None:
    result = diff(expected(records("1")), actual(sf_row("006A", "5"), sf_row("006B", "6")))
    orphans = confirm_orphans(result.candidates, {"6"})
    assert orphans["order_id"].tolist() == ["5"]
    table = discrepancy_rows(result, orphans, {})
    assert table["status"].tolist() == ["missing", "orphan"]


# -- repair plan ------------------------------------------------------------------------------


def test_missing_order_gets_create_bodies_linked_by_external_id() -> None:
    plan = plan_repair([("missing", records("1"), [])], CONFIG)
    assert plan.accounts == [{"Name": "Ada Lovelace", "Phone": "123", ACC: "shop_cust_7"}]
    (contact,) = plan.contacts
    assert contact[CON] == "7"
    assert contact["Account"] == {"attributes": {"type": "Account"}, ACC: "shop_cust_7"}
    (opportunity,) = plan.opportunities
    assert opportunity["StageName"] == "New Order"
    assert opportunity["CloseDate"] == "2026-12-01"
    assert opportunity["Account"][ACC] == "shop_cust_7"
    assert opportunity["Contact"] == {"attributes": {"type": "Contact"}, CON: "7"}
    assert plan.actions == {"1": "create"}


def test_drifted_order_gets_owned_fields_only() -> None:
    plan = plan_repair([("drifted", records("1", amount="12.00"), ["Amount"])], CONFIG)
    assert plan.accounts == []
    assert plan.contacts == []
    assert plan.opportunities == [
        {"Name": "Shopify Order #1 (Ada Lovelace)", "Amount": Decimal("12.00"), OPP: "1"}
    ]


def test_drifted_cancelled_order_may_move_stage_but_not_close_date() -> None:
    plan = plan_repair([("drifted", records("1", cancelled=True), ["StageName"])], CONFIG)
    (body,) = plan.opportunities
    assert body["StageName"] == "Closed Lost"
    assert "CloseDate" not in body


def test_account_drift_relinks_and_upserts_the_account() -> None:
    plan = plan_repair([("drifted", records("1"), ["Account"])], CONFIG)
    assert [a[ACC] for a in plan.accounts] == ["shop_cust_7"]
    assert plan.opportunities[0]["Account"][ACC] == "shop_cust_7"
    assert "Contact" not in plan.opportunities[0]


def test_repair_keys_are_deduplicated() -> None:
    items = [
        ("missing", records("1", customer="7"), []),
        ("missing", records("2", customer="7"), []),
        ("missing", records("2", customer="7", amount="11.00"), []),
        ("in_sync", records("3"), []),
    ]
    plan = plan_repair(items, CONFIG)
    assert [a[ACC] for a in plan.accounts] == ["shop_cust_7"]
    assert [c[CON] for c in plan.contacts] == ["7"]
    assert [o[OPP] for o in plan.opportunities] == ["1", "2"]
    assert plan.opportunities[1]["Amount"] == Decimal("11.00")  # the later item wins
    assert plan.account_orders == {"shop_cust_7": ["1", "2", "2"]}


def test_guest_without_contact_key_writes_no_contact() -> None:
    plan = plan_repair([("missing", records("1", customer=None), [])], CONFIG)
    assert plan.contacts == []
    assert "Contact" not in plan.opportunities[0]


def test_without_orders_drops_children_of_failed_parents() -> None:
    plan = plan_repair(
        [("missing", records("1"), []), ("missing", records("2", customer="8"), [])], CONFIG
    )
    rest = plan.without_orders({"1"}, CONFIG)
    assert [o[OPP] for o in rest.opportunities] == ["2"]


def test_bulk_rows_of_a_plan_use_relationship_columns() -> None:
    plan = plan_repair([("missing", records("1"), [])], CONFIG)
    row = csv_row(plan.opportunities[0])
    assert row[f"Account.{ACC}"] == "shop_cust_7"
    assert row[f"Contact.{CON}"] == "7"
    assert "Account" not in row


def test_failures_map_parent_keys_to_orders() -> None:
    bad = RecordResult(
        key="shop_cust_7", success=False, errors=(RecordError("STRING_TOO_LONG", "too long"),)
    )
    good = RecordResult(key="shop_cust_8", success=True, id="001A")
    found = failures_by_order([bad, good], {"shop_cust_7": ["1", "2"]}, "account")
    assert set(found) == {"1", "2"}
    assert found["1"].code == "STRING_TOO_LONG"
    assert not found["1"].transient
    assert isinstance(found["1"].error, InvalidOrder)
    lock = RecordResult(key="3", success=False, errors=(RecordError("UNABLE_TO_LOCK_ROW", "x"),))
    assert failures_by_order([lock], None, "opportunity")["3"].transient


def test_a_failure_built_without_its_error_is_classified_by_transient() -> None:
    lock = Failure("5", "account", "UNABLE_TO_LOCK_ROW", "locked", transient=True)
    assert isinstance(lock.classified, RetryableError)
    assert lock.classified.code == "UNABLE_TO_LOCK_ROW"
    rule = Failure("6", "opportunity", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "No #3 today")
    assert isinstance(rule.classified, PermanentError)
    assert not isinstance(rule.classified, RetryableError)


def test_a_failure_without_a_reason_is_permanent_and_says_so() -> None:
    found = failures_by_order([RecordResult(key="4", success=False)], None, "opportunity")
    assert found["4"].code == "UNKNOWN_ERROR"
    assert found["4"].message == "Salesforce reported a failure without a reason"
    assert not found["4"].transient
    assert found["4"].errors == ()


# -- windows and listing helpers (pure) -------------------------------------------------------


def test_manual_window_is_whole_shop_days_end_inclusive() -> None:
    from datetime import UTC, date, datetime

    from tasks.core.reconcile_window import shop_window

    lo, hi = shop_window(date(2026, 3, 1), date(2026, 3, 31), "America/New_York")
    assert lo == datetime(2026, 3, 1, 5, tzinfo=UTC)  # EST
    assert hi == datetime(2026, 4, 1, 4, tzinfo=UTC)  # EDT after the switch
    with pytest.raises(ValueError, match="before start"):
        shop_window(date(2026, 3, 2), date(2026, 3, 1), "UTC")


def test_nightly_window_looks_back_from_the_cursor() -> None:
    from datetime import UTC, datetime, timedelta

    from tasks.core.reconcile_window import nightly_window

    signpost = datetime(2026, 5, 2, 3, 30, tzinfo=UTC)
    cursor = datetime(2026, 5, 1, 3, 30, tzinfo=UTC)
    assert nightly_window(cursor, signpost, 48) == (cursor - timedelta(hours=48), signpost)
    assert nightly_window(None, signpost, 48) == (signpost - timedelta(hours=48), signpost)


def test_sixty_day_rule_needs_read_all_orders() -> None:
    from datetime import UTC, datetime, timedelta

    from tasks.core.reconcile_window import needs_read_all_orders

    now = datetime(2026, 6, 1, tzinfo=UTC)
    old = now - timedelta(days=61)
    assert needs_read_all_orders(old, now, frozenset({"read_orders"}))
    assert not needs_read_all_orders(old, now, frozenset({"read_orders", "read_all_orders"}))
    assert not needs_read_all_orders(now - timedelta(days=59), now, frozenset({"read_orders"}))


def test_close_date_range_follows_the_mapping_offset() -> None:
    from datetime import UTC, date, datetime

    from tasks.core.reconcile_window import close_date_range

    lo = datetime(2026, 3, 1, 5, tzinfo=UTC)
    hi = datetime(2026, 3, 3, 5, tzinfo=UTC)
    assert close_date_range(lo, hi, "America/New_York", 30) == (
        date(2026, 3, 31),
        date(2026, 4, 1),
    )


def test_bulk_jsonl_children_are_stitched_to_their_parent() -> None:
    import json

    from tasks.shopify.bulk import stitch

    lines = [
        json.dumps({"id": "gid://shopify/Order/1"}),
        json.dumps({"id": "gid://shopify/LineItem/9", "__parentId": "gid://shopify/Order/1"}),
        "",
        json.dumps({"id": "gid://shopify/Order/2"}),
    ]
    orders = list(stitch(lines))
    assert [o["id"] for o in orders] == ["gid://shopify/Order/1", "gid://shopify/Order/2"]
    assert orders[0]["__children"] == [{"id": "gid://shopify/LineItem/9"}]
    assert "__children" not in orders[1]


def test_bulk_query_inlines_the_order_fields_and_window() -> None:
    from datetime import UTC, datetime

    from tasks.shopify.bulk import bulk_orders_query

    query = bulk_orders_query(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    assert "updated_at:>='2026-01-01T00:00:00Z'" in query
    assert "legacyResourceId" in query
    assert "..." not in query  # no fragments in a bulk query


# -- placeholders of redacted buyer data are create-only ----------------------------------------


def redacted(order_id: str, customer: str = "7") -> SalesforceRecords:
    """An order whose buyer data Shopify withheld: the names are placeholders."""
    base = records(order_id, customer=customer)
    return SalesforceRecords(
        account={**base.account, "Name": Placeholder(f"Shopify customer {customer}")},
        contact={**(base.contact or {}), "LastName": Placeholder("Unknown")},
        opportunity=base.opportunity,
        account_key=base.account_key,
        contact_key=base.contact_key,
        order_key=base.order_key,
        truncations=[],
        contact_lookup_email=None,
    )


def customers(sobject: str, row: dict[str, Any]) -> pd.DataFrame:
    columns = RecordColumns(sobject, CONFIG)
    columns.add(row)
    return columns.frame()


def diff_with_customers(item: SalesforceRecords, phone: str = "123") -> Any:
    account = {"Id": "0017", ACC: "shop_cust_7", "Name": "Ada Lovelace", "Phone": phone}
    contact = {"Id": "0037", CON: "7", "LastName": "Lovelace"}
    return diff(
        expected(item),
        actual(sf_row("0061", item.order_key)),
        accounts=customers("Account", account),
        contacts=customers("Contact", contact),
    )


def test_a_placeholder_name_is_not_drift_from_a_real_one() -> None:
    result = diff_with_customers(redacted("1"))
    assert status_of(result) == {"1": "in_sync"}
    items = [(s, redacted("1"), []) for s in result.orders["status"]]
    assert len(plan_repair(items, CONFIG)) == 0


def test_a_real_name_still_drifts() -> None:
    named = records("1")
    named.account["Name"] = "Ada King"
    assert diff_with_customers(named).drift_fields() == {"1": ["Account.Name"]}


def test_repairing_a_redacted_order_never_writes_its_placeholders() -> None:
    result = diff_with_customers(redacted("1"), phone="999")
    assert result.drift_fields() == {"1": ["Account.Phone"]}
    plan = plan_repair([("drifted", redacted("1"), ["Account.Phone", "Contact.LastName"])], CONFIG)
    assert plan.accounts == [{"Phone": "123", ACC: "shop_cust_7"}]
    assert plan.contacts == [{CON: "7"}]


def test_a_placeholder_never_replaces_a_real_name_planned_earlier() -> None:
    plan = plan_repair([("missing", records("1"), []), ("missing", redacted("2"), [])], CONFIG)
    assert [a["Name"] for a in plan.accounts] == ["Ada Lovelace"]
    alone = plan_repair([("missing", redacted("2"), [])], CONFIG)
    assert [a["Name"] for a in alone.accounts] == ["Shopify customer 7"]  # a create needs one


def test_the_placeholder_records_written_whole_are_the_ones_asked_about() -> None:
    items = [
        ("missing", redacted("1", customer="7"), []),
        ("drifted", redacted("2", customer="8"), ["Account"]),  # relinked: Account written whole
        ("drifted", redacted("3", customer="9"), ["Amount"]),  # owned fields only: no question
        ("missing", records("4", customer="5"), []),  # real names: no question
    ]
    assert placeholder_keys(items) == [
        ("Account", "shop_cust_7"),
        ("Contact", "7"),
        ("Account", "shop_cust_8"),
    ]


@pytest.mark.parametrize(
    ("status", "drift"), [("missing", []), ("drifted", ["Account", "Name", "Amount"])]
)
def test_an_existing_account_written_whole_gets_no_placeholder(
    status: str, drift: list[str]
) -> None:
    existing = {"Account": {"shop_cust_7"}, "Contact": {"7"}}
    plan = plan_repair([(status, redacted("1"), drift)], CONFIG, existing=existing)
    assert plan.accounts == [{"Phone": "123", ACC: "shop_cust_7"}]  # no Name: the real one stays
    assert plan.opportunities[0]["Account"][ACC] == "shop_cust_7"
    if status == "missing":
        assert plan.contacts == [{CON: "7"}]  # an existing Contact: no LastName, no Account move
        assert plan.opportunities[0]["Contact"][CON] == "7"


def test_a_placeholder_account_salesforce_does_not_have_is_created_with_it() -> None:
    plan = plan_repair([("missing", redacted("1"), [])], CONFIG, existing={"Account": set()})
    assert [a["Name"] for a in plan.accounts] == ["Shopify customer 7"]
    assert [c["LastName"] for c in plan.contacts] == ["Unknown"]


@pytest.mark.parametrize("guest", [False, True])
def test_adopting_an_existing_contact_never_writes_a_placeholder_over_its_name(
    guest: bool,
) -> None:
    import dataclasses

    item = dataclasses.replace(
        redacted("1"),
        contact_lookup_email="ada@example.com",
        contact_key=None if guest else "7",
    )
    found = {"ada@example.com": [{"Id": "003A", CON: None, "LastName": "Lovelace"}]}
    existing = {"Account": {"shop_cust_7"}, "Contact": set()}
    plan = plan_repair([("missing", item, [])], CONFIG, contacts=found, existing=existing)
    [adopted] = plan.adoptions
    assert adopted["Id"] == "003A"
    assert "LastName" not in adopted  # "Unknown" never replaces Lovelace


def test_a_create_only_account_field_goes_only_to_an_account_salesforce_lacks() -> None:
    import dataclasses

    from tasks.core.mapping_table import default_ownership

    create_only = default_ownership()[1]
    config = CONFIG.model_copy(
        update={
            "account_fields": {"Shopify_Source__c": "order.financial_status"},
            "create_only_fields": {
                **create_only,
                "Account": [*create_only["Account"], "Shopify_Source__c"],
            },
        }
    )
    base = records("1")
    item = dataclasses.replace(base, account={**base.account, "Shopify_Source__c": "paid"})
    known = plan_repair([("missing", item, [])], config, existing={"Account": {"shop_cust_7"}})
    assert "Shopify_Source__c" not in known.accounts[0]  # a sales rep's value there stays
    new = plan_repair([("missing", item, [])], config, existing={"Account": set()})
    assert new.accounts[0]["Shopify_Source__c"] == "paid"
