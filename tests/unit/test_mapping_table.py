"""The mapping tables (tasks/core/mapping_table.py): the table-driven body builder, fields added by
configuration, the sources a configuration may name, and the GraphQL selection supplying every
order attribute a source can read."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from tasks.core.buyer import Placeholder
from tasks.core.mapping import (
    ACCOUNT,
    CONTACT,
    OPPORTUNITY,
    STANDARD_FIELD_LENGTHS,
    MappingConfig,
    OrgSchema,
    map_order,
    placeholder_parents,
    update_body,
    without_placeholders,
)
from tasks.core.mapping_table import (
    TABLES,
    MappingInput,
    build_body,
    buyer_of,
    comparable,
    compared_rules,
    resolve,
    rules_for,
    source_kind,
)
from tasks.core.orders import MAPPABLE, parse_graphql_order, parse_rest_order
from tasks.shopify.queries import ORDER_FIELDS

Build = Callable[..., dict[str, Any]]
NY = "America/New_York"
ADDED = {
    "opportunity_fields": {"Shopify_Status__c": "order.financial_status"},
    "account_fields": {"Shopify_Country_Code__c": "buyer.address.country_code"},
    "contact_fields": {"Shopify_Customer_Email__c": "order.customer.email"},
}


def _input(payload: dict[str, Any], config: MappingConfig, org: OrgSchema) -> MappingInput:
    order = parse_rest_order(payload)
    return MappingInput(order, buyer_of(order), config, org, NY)


# -- the body builder -------------------------------------------------------------------------


def test_bodies_are_built_from_the_tables(rest_order: Build) -> None:
    src = _input(rest_order(), MappingConfig(), OrgSchema())
    assert build_body(OPPORTUNITY, src) == {
        "Name": "Shopify Order #9999 (Jon Snow)",
        "StageName": "New Order",
        "CloseDate": "2026-03-30",
        "Amount": Decimal("199.65"),
    }
    assert build_body(CONTACT, src) == {
        "FirstName": "Jon",
        "LastName": "Snow",
        "Email": "jon@example.com",
        "Phone": "+16135550100",
    }
    assert set(build_body(ACCOUNT, src)) == {
        "Name",
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
        "Phone",
    }


@pytest.mark.parametrize(
    ("org", "present", "absent"),
    [
        (OrgSchema(), {"Name"}, {"FirstName", "PersonEmail", "RecordTypeId"}),
        (
            OrgSchema(person_accounts=True, person_record_type_id="012000000000001AAA"),
            {"FirstName", "LastName", "PersonEmail", "RecordTypeId"},
            {"Name"},
        ),
    ],
)
def test_org_variants_choose_the_rules(
    rest_order: Build, org: OrgSchema, present: set[str], absent: set[str]
) -> None:
    body = build_body(ACCOUNT, _input(rest_order(), MappingConfig(), org))
    assert present <= set(body)
    assert not absent & set(body)


def test_currency_rule_only_on_multi_currency_orgs(rest_order: Build) -> None:
    order = parse_rest_order(rest_order())
    single = build_body(
        OPPORTUNITY, MappingInput(order, buyer_of(order), MappingConfig(), OrgSchema(), NY)
    )
    multi = OrgSchema(multi_currency=True)
    body = build_body(OPPORTUNITY, MappingInput(order, buyer_of(order), MappingConfig(), multi, NY))
    assert "CurrencyIsoCode" not in single
    assert body["CurrencyIsoCode"] == order.currency is not None


def test_fields_added_by_configuration_are_mapped_and_owned(rest_order: Build) -> None:
    config = MappingConfig(**ADDED)
    payload = rest_order(financial_status="PAID", address__country_code="ca")
    records = map_order(parse_rest_order(payload), config, OrgSchema(), NY)
    assert records.opportunity["Shopify_Status__c"] == "paid"
    assert records.account["Shopify_Country_Code__c"] == "CA"
    assert records.contact is not None
    assert records.contact["Shopify_Customer_Email__c"] == "jon@example.com"
    # Owned: sent on update, and compared by reconcile.
    update = update_body(OPPORTUNITY, records.opportunity, config)
    assert update["Shopify_Status__c"] == "paid"
    for sobject, added in (
        (OPPORTUNITY, "Shopify_Status__c"),
        (ACCOUNT, "Shopify_Country_Code__c"),
        (CONTACT, "Shopify_Customer_Email__c"),
    ):
        assert added in {r.field for r in compared_rules(sobject, config, OrgSchema())}


def test_an_added_field_listed_create_only_is_sent_on_create_only(rest_order: Build) -> None:
    create_only = {**MappingConfig().create_only_fields, OPPORTUNITY: ["Shopify_Status__c"]}
    config = MappingConfig(
        opportunity_fields=ADDED["opportunity_fields"], create_only_fields=create_only
    )
    records = map_order(parse_rest_order(rest_order()), config, OrgSchema(), NY)
    assert "Shopify_Status__c" in records.opportunity
    assert "Shopify_Status__c" not in update_body(OPPORTUNITY, records.opportunity, config)
    assert "Shopify_Status__c" not in {
        r.field for r in compared_rules(OPPORTUNITY, config, OrgSchema())
    }


def test_an_added_field_the_org_lacks_is_dropped_and_not_compared(rest_order: Build) -> None:
    config = MappingConfig(opportunity_fields=ADDED["opportunity_fields"])
    org = OrgSchema(
        fields={
            OPPORTUNITY: frozenset(
                {"Name", "Amount", "StageName", "CloseDate", "External_Shopify_Order_ID__c"}
            )
        }
    )
    records = map_order(parse_rest_order(rest_order()), config, org, NY)
    assert "Shopify_Status__c" not in records.opportunity
    assert "Opportunity.Shopify_Status__c" in records.dropped_fields
    assert [r.field for r in compared_rules(OPPORTUNITY, config, org)] == ["Name", "Amount"]


def test_an_added_field_is_cut_to_the_described_length(rest_order: Build) -> None:
    config = MappingConfig(opportunity_fields={"Shopify_Status__c": "order.financial_status"})
    org = OrgSchema(lengths={**STANDARD_FIELD_LENGTHS, OPPORTUNITY: {"Shopify_Status__c": 3}})
    records = map_order(parse_rest_order(rest_order(financial_status="paid")), config, org, NY)
    assert records.opportunity["Shopify_Status__c"] == "pai"
    assert [(t.object, t.field, t.limit) for t in records.truncations] == [
        (OPPORTUNITY, "Shopify_Status__c", 3)
    ]


def test_defaults_come_from_the_tables() -> None:
    config = MappingConfig()
    assert config.owned_fields[OPPORTUNITY] == ["Name", "Amount", "CurrencyIsoCode"]
    assert config.create_only_fields[OPPORTUNITY] == [
        "StageName",
        "CloseDate",
        "OwnerId",
        "ContactId",
    ]
    assert STANDARD_FIELD_LENGTHS[CONTACT]["Email"] == 80
    for sobject, rules in TABLES.items():
        assert len({r.field for r in rules}) == len(rules), sobject  # one rule per field
        assert set(config.owned(sobject)) == {r.field for r in rules if r.owned}


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"X__c": "order.nope"}, "order has no 'nope'"),
        ({"X__c": "order.customer"}, "whole Customer"),
        ({"X__c": "order.order_number"}, "order has no 'order_number'"),  # webhooks only
        ({"X__c": "order.updated_at"}, "order has no 'updated_at'"),  # not hashed
        ({"X__c": "shop.name"}, "unknown source"),
        ({"Amount": "amount"}, "already mapped"),
        ({"External_Shopify_Order_ID__c": "order.id"}, "already mapped"),
        ({"not a name": "order.id"}, "not a Salesforce field API name"),
    ],
)
def test_bad_added_fields_are_rejected(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        MappingConfig(opportunity_fields=fields)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("amount", "money"),
        ("close_date", "date"),
        ("order.total_price", "money"),
        ("order.test", "bool"),
        ("order.created_at", "datetime"),
        ("order.customer.default_address.city", "text"),
        ("order.presentment_total_price.amount", "money"),
        ("buyer.full_name", "text"),
        ("buyer.address.zip", "text"),
    ],
)
def test_source_kinds(source: str, kind: str) -> None:
    assert source_kind(source) == kind


# -- comparing values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "left", "right"),
    [
        ("money", Decimal("59.9"), 59.9),
        ("money", "59.90", "59.9"),
        ("number", Decimal("5"), "5.0"),
        ("email", "Jon@Example.com", "jon@example.com"),
        ("bool", True, "true"),
        ("datetime", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000+0000"),
        ("date", "2026-01-02", "2026-01-02"),
    ],
)
def test_comparable_values_agree_across_wire_formats(kind: Any, left: Any, right: Any) -> None:
    assert comparable(kind, left) == comparable(kind, right)


def test_blank_is_never_a_value() -> None:
    assert comparable("text", "") is None
    assert comparable("money", None) is None


# -- the Shopify fields behind the sources ----------------------------------------------------


def _selection_tree(text: str) -> dict[str, Any]:
    """A GraphQL selection set as nested dicts (leaves are ``None``)."""
    tokens = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|[{}]", text)
    stack: list[dict[str, Any]] = [{}]
    last: str | None = None
    for token in tokens:
        if token == "{":
            assert last is not None
            stack[-1][last] = {}
            stack.append(stack[-1][last])
        elif token == "}":
            stack.pop()
        else:
            stack[-1][token] = None
            last = token
    return stack[0]


def _leaf(name: str) -> Any:
    if name in {"id", "legacyResourceId"}:
        return "1234"
    if name.endswith("At"):
        return "2026-01-02T03:04:05Z"
    if name == "amount":
        return "12.34"
    if name == "test":
        return True
    return f"x-{name}"


def _populated(tree: dict[str, Any]) -> dict[str, Any]:
    return {k: _leaf(k) if v is None else _populated(v) for k, v in tree.items()}


def _paths(cls: type, prefix: str, top: bool = False) -> list[str]:
    """Every leaf attribute path of a model dataclass (``MAPPABLE`` at the top)."""
    hints = typing.get_type_hints(cls)
    found: list[str] = []
    for f in dataclasses.fields(cls):
        if top and f.name not in MAPPABLE:
            continue
        inner = [a for a in typing.get_args(hints[f.name]) if dataclasses.is_dataclass(a)]
        target = inner[0] if inner else hints[f.name]
        if dataclasses.is_dataclass(target):
            found += _paths(target, f"{prefix}.{f.name}")  # type: ignore[arg-type]
        else:
            found.append(f"{prefix}.{f.name}")
    return found


def test_the_graphql_selection_supplies_every_attribute_a_source_can_read() -> None:
    """A field added by configuration reads the order through reconcile's GraphQL listing:
    every order path a configuration may name is filled from :data:`ORDER_FIELDS`."""
    order = parse_graphql_order(_populated(_selection_tree(ORDER_FIELDS)))
    src = MappingInput(order, buyer_of(order), MappingConfig(), OrgSchema(), NY)

    paths = _paths(type(order), "order", top=True)
    assert len(paths) > 30
    empty = [path for path in paths if resolve(path, src) is None]
    assert empty == []
    for path in paths:
        source_kind(path)  # and each is a valid source


def test_mappable_attributes_are_exactly_those_the_payload_hash_covers() -> None:
    order = parse_graphql_order(_populated(_selection_tree(ORDER_FIELDS)))
    assert set(order.canonical()) - {"v"} == MAPPABLE


def test_every_rule_names_a_known_source() -> None:
    for rules in TABLES.values():
        for rule in rules:
            if rule.source is not None:
                source_kind(rule.source)
    assert rules_for(OPPORTUNITY, MappingConfig(**ADDED), OrgSchema())[-1].field == (
        "Shopify_Status__c"
    )


# -- doctor: the added fields exist in the org ------------------------------------------------


def test_doctor_checks_the_added_fields_exist_and_are_writable() -> None:
    from tasks.checks.doctor import added_field_checks

    describes = {
        OPPORTUNITY: {
            "fields": [{"name": "Shopify_Status__c", "createable": True, "updateable": False}]
        },
        ACCOUNT: {
            "fields": [{"name": "Shopify_Country_Code__c", "createable": True, "updateable": True}]
        },
        CONTACT: {"fields": []},
    }
    checks = {c.name: c for c in added_field_checks(describes, MappingConfig(**ADDED))}
    assert checks["Account.Shopify_Country_Code__c"].ok
    assert not checks["Opportunity.Shopify_Status__c"].ok  # owned, but not updateable
    assert "cannot write" in checks["Opportunity.Shopify_Status__c"].detail
    assert not checks["Contact.Shopify_Customer_Email__c"].ok
    assert "missing" in checks["Contact.Shopify_Customer_Email__c"].detail
    assert added_field_checks(describes, MappingConfig()) == []


# -- placeholders of redacted buyer data are create-only ---------------------------------------


def _withheld(rest_order: Build, **overrides: Any) -> dict[str, Any]:
    """An order whose buyer's personal data Shopify redacted (names, e-mail, phone null)."""
    payload = rest_order(email=None, phone=None, contact_email=None, **overrides)
    personal = ("first_name", "last_name", "name", "address1", "address2", "phone", "company")
    if payload.get("customer"):
        payload["customer"].update(first_name=None, last_name=None, email=None, phone=None)
        payload["customer"]["default_address"].update(dict.fromkeys(personal))
    for address in ("billing_address", "shipping_address"):
        if payload.get(address):
            payload[address].update(dict.fromkeys(personal))
    return payload


@pytest.mark.parametrize(
    ("overrides", "account_name", "opportunity_name"),
    [
        ({}, "Shopify customer 115310627314723954", "(customer 115310627314723954)"),
        ({"customer": None}, "Shopify guest #9999", "(guest)"),
    ],
)
def test_a_redacted_buyers_stand_in_names_are_sent_on_create_only(
    rest_order: Build, overrides: dict[str, Any], account_name: str, opportunity_name: str
) -> None:
    records = map_order(
        parse_rest_order(_withheld(rest_order, **overrides)), MappingConfig(), OrgSchema(), NY
    )
    assert records.account["Name"] == account_name  # Salesforce needs a name to create it
    assert isinstance(records.account["Name"], Placeholder)
    assert records.opportunity["Name"].endswith(opportunity_name)
    assert "Name" not in without_placeholders(records.account)
    assert "BillingCity" in without_placeholders(records.account)  # real data still goes
    for sobject, body in ((ACCOUNT, records.account), (OPPORTUNITY, records.opportunity)):
        assert "Name" not in update_body(sobject, body, MappingConfig())
    assert "Amount" in update_body(OPPORTUNITY, records.opportunity, MappingConfig())


def test_a_real_name_is_no_placeholder_and_is_updated(rest_order: Build) -> None:
    records = map_order(parse_rest_order(rest_order()), MappingConfig(), OrgSchema(), NY)
    for sobject, body in ((ACCOUNT, records.account), (OPPORTUNITY, records.opportunity)):
        assert not isinstance(body["Name"], Placeholder)
        assert update_body(sobject, body, MappingConfig())["Name"] == body["Name"]
    assert records.contact is not None
    assert without_placeholders(records.contact) == records.contact


def test_an_unknown_last_name_is_a_placeholder_a_known_contact_is_not_sent(
    rest_order: Build,
) -> None:
    payload = _withheld(rest_order)
    payload["customer"]["phone"] = "+1 613 555 0100"  # known by phone only: a Contact is kept
    records = map_order(parse_rest_order(payload), MappingConfig(), OrgSchema(), NY)
    assert records.contact is not None
    assert records.contact["LastName"] == "Unknown"
    assert without_placeholders(records.contact) == {
        k: v for k, v in records.contact.items() if k != "LastName"
    }
    assert "LastName" not in update_body(CONTACT, records.contact, MappingConfig())


def test_whose_existence_a_redacted_order_asks_about(rest_order: Build) -> None:
    payload = _withheld(rest_order)
    payload["customer"]["phone"] = "+1 613 555 0100"  # a Contact named ``Unknown``
    records = map_order(parse_rest_order(payload), MappingConfig(), OrgSchema(), NY)
    customer = str(payload["customer"]["id"])
    both = [(ACCOUNT, f"shop_cust_{customer}"), (CONTACT, customer)]
    assert placeholder_parents(records, None) == both  # the cache knows nothing
    assert placeholder_parents(records, ("001A", None)) == [(CONTACT, customer)]
    assert placeholder_parents(records, ("001A", "003C")) == []  # known: stripped, no question
    named = map_order(parse_rest_order(rest_order()), MappingConfig(), OrgSchema(), NY)
    assert placeholder_parents(named, None) == []  # no placeholder: no question, no call


def test_a_placeholder_cut_to_the_orgs_length_stays_a_placeholder(rest_order: Build) -> None:
    org = OrgSchema(lengths={ACCOUNT: {"Name": 12}})
    records = map_order(parse_rest_order(_withheld(rest_order)), MappingConfig(), org, NY)
    assert records.account["Name"] == "Shopify cust"
    assert isinstance(records.account["Name"], Placeholder)
