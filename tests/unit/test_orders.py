"""The Order model and its two parsers (REST/webhook snake_case, GraphQL camelCase)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import graphql
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.core.errors import InvalidOrder
from tasks.core.orders import (
    Address,
    Money,
    Order,
    parse_graphql_order,
    parse_order,
    parse_rest_order,
)
from tasks.shopify.queries import ORDER_FIELDS
from tests.conftest import shopify_fixture

Build = Callable[..., dict[str, Any]]


def _orders_fixture() -> dict[str, Any]:
    return shopify_fixture("orders.json")["orders"][0]


def _money_bag(amount: str, currency: str) -> dict[str, Any]:
    return {
        "shopMoney": {"amount": amount, "currencyCode": currency},
        "presentmentMoney": {"amount": amount, "currencyCode": currency},
    }


def graphql_twin_of_orders_fixture() -> dict[str, Any]:
    """The GraphQL Admin API view of the order in ``orders.json`` (``order_graphql.json``)."""
    return shopify_fixture("order_graphql.json")


# --------------------------------------------------------------------------------------------
# The repository's fixture payloads (tests/fixtures/shopify)
# --------------------------------------------------------------------------------------------


def test_every_fixture_order_parses(fixture_order: dict[str, Any]) -> None:
    order = parse_rest_order(fixture_order)
    assert order.id.isdigit()
    assert order.gid == f"gid://shopify/Order/{order.id}"
    assert isinstance(order.total_price, Decimal)
    assert isinstance(order.current_total_price, Decimal)
    assert order.created_at.tzinfo is UTC
    assert order.updated_at.tzinfo is UTC
    assert order.customer is not None
    assert order.customer.id.isdigit()


def test_single_order_fixture_fields() -> None:
    order = parse_rest_order(shopify_fixture("order.json"))  # the {"order": {...}} envelope
    assert order.id == "5630193847261"
    assert order.name == "#1001"
    assert order.order_number == 1001
    assert order.financial_status == "authorized"
    assert order.total_price == Decimal("90.72")
    assert order.current_total_price == Decimal("90.72")  # missing → total_price
    assert order.created_at == datetime(2026, 2, 14, 14, 30, tzinfo=UTC)  # -05:00 → UTC
    assert order.customer is not None
    assert order.customer.default_address is not None
    assert order.customer.default_address.first_name is None  # null name parts stay None
    assert order.customer.default_address.address2 is None  # "" becomes None


def test_list_fixture_fields() -> None:
    order = parse_rest_order(_orders_fixture())
    assert order.financial_status == "partially_refunded"
    assert order.presentment_currency == "USD"
    assert order.total_price == Decimal("129.62")
    assert order.current_total_price == Decimal("101.82")  # after the refund
    assert order.presentment_total_price == Money(Decimal("129.62"), "USD")
    assert order.customer is not None
    assert order.customer.phone == "+12065550123"
    assert order.billing_address is not None
    assert order.billing_address.first_name == "Tomás"


def test_refund_fixture_is_not_an_order() -> None:
    with pytest.raises(InvalidOrder):
        parse_rest_order(shopify_fixture("refund.json"))


def test_envelope_and_bare_order_parse_alike() -> None:
    bare = _orders_fixture()
    assert parse_rest_order({"order": bare}) == parse_rest_order(bare)


# --------------------------------------------------------------------------------------------
# REST tolerance
# --------------------------------------------------------------------------------------------


def test_order_without_a_name_is_named_after_its_order_number(rest_order: Build) -> None:
    """The blueprint's sample ``orders/create`` has ``order_number`` and no ``name``; Shopify's
    default name is "#" + order_number, so the order (task-run names, reports) reads "#1001"."""
    payload = shopify_fixture("blueprint_orders_create.json")
    assert "name" not in payload
    assert parse_rest_order(payload).name == "#1001"
    assert parse_rest_order(rest_order(name=None, order_number=1001)).name == "#1001"
    assert parse_rest_order(rest_order(name="SBL1069", order_number=1069)).name == "SBL1069"
    assert parse_rest_order(rest_order(name=None, order_number=None)).name is None


@pytest.mark.parametrize("raw", [820982911946154508, "820982911946154508", " 820982911946154508 "])
def test_big_ids_stay_exact_strings(rest_order: Build, raw: object) -> None:
    order = parse_rest_order(rest_order(id=raw, customer__id=115310627314723954))
    assert order.id == "820982911946154508"
    assert order.customer is not None
    assert order.customer.id == "115310627314723954"


def test_gid_accepted_as_id(rest_order: Build) -> None:
    order = parse_rest_order(rest_order(id="gid://shopify/Order/123"))
    assert order.id == "123"


@pytest.mark.parametrize("raw", [8.209829119461545e17, True, "12a", -5])
def test_bad_ids_rejected(rest_order: Build, raw: object) -> None:
    with pytest.raises(InvalidOrder):
        parse_rest_order(rest_order(id=raw))


def test_missing_id_rejected(rest_order: Build) -> None:
    payload = rest_order()
    del payload["id"], payload["admin_graphql_api_id"]
    with pytest.raises(InvalidOrder, match="no id"):
        parse_rest_order(payload)


def test_id_falls_back_to_admin_graphql_api_id(rest_order: Build) -> None:
    assert parse_rest_order(rest_order(id=None)).id == "820982911946154508"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("409.94", "409.94"), (409.94, "409.94"), (10, "10"), (Decimal("0.10"), "0.10"), ("0", "0")],
)
def test_prices_as_strings_or_numbers(rest_order: Build, raw: object, expected: str) -> None:
    order = parse_rest_order(rest_order(total_price=raw, current_total_price=None))
    assert order.total_price == Decimal(expected)
    assert isinstance(order.total_price, Decimal)
    assert order.current_total_price == Decimal(expected)


@pytest.mark.parametrize("raw", ["abc", "NaN", "Infinity", True])
def test_bad_amount_rejected(rest_order: Build, raw: object) -> None:
    with pytest.raises(InvalidOrder):
        parse_rest_order(rest_order(total_price=raw))


def test_missing_total_rejected(rest_order: Build) -> None:
    payload = rest_order()
    del payload["total_price"]
    with pytest.raises(InvalidOrder, match="total"):
        parse_rest_order(payload)


def test_current_total_price_set_is_preferred(rest_order: Build) -> None:
    payload = rest_order(
        total_price="100.00",
        current_total_price="90.00",
        current_total_price_set={
            "shop_money": {"amount": "80.00", "currency_code": "USD"},
            "presentment_money": {"amount": "110.00", "currency_code": "CAD"},
        },
    )
    order = parse_rest_order(payload)
    assert order.current_total_price == Decimal("80.00")
    assert order.presentment_current_total_price == Money(Decimal("110.00"), "CAD")


def test_current_total_price_falls_back(rest_order: Build) -> None:
    payload = rest_order(total_price="100.00")
    del payload["current_total_price"]
    assert parse_rest_order(payload).current_total_price == Decimal("100.00")


def test_total_price_set_shop_money_beats_flat_field(rest_order: Build) -> None:
    payload = rest_order(
        total_price="1.00",
        total_price_set={"shop_money": {"amount": "2.00", "currency_code": "EUR"}},
        currency=None,
    )
    order = parse_rest_order(payload)
    assert order.total_price == Decimal("2.00")
    assert order.currency == "EUR"


def test_timestamps_normalised_to_utc(rest_order: Build) -> None:
    order = parse_rest_order(
        rest_order(
            created_at="2026-03-01T09:00:00+11:00",
            updated_at="2026-02-28T17:30:00-05:00",
            cancelled_at="2026-03-02T00:00:00Z",
        )
    )
    assert order.created_at == datetime(2026, 2, 28, 22, 0, tzinfo=UTC)
    assert order.updated_at == datetime(2026, 2, 28, 22, 30, tzinfo=UTC)
    assert order.cancelled_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert order.is_cancelled


def test_naive_timestamp_taken_as_utc(rest_order: Build) -> None:
    order = parse_rest_order(rest_order(created_at="2026-03-01T03:00:00"))
    assert order.created_at == datetime(2026, 3, 1, 3, tzinfo=UTC)


def test_bad_timestamp_rejected(rest_order: Build) -> None:
    with pytest.raises(InvalidOrder):
        parse_rest_order(rest_order(created_at="yesterday"))


def test_missing_created_at_falls_back_then_rejects(rest_order: Build) -> None:
    order = parse_rest_order(rest_order(created_at=None))
    assert order.created_at == datetime(2026, 3, 1, 3, tzinfo=UTC)  # processed_at
    with pytest.raises(InvalidOrder):
        parse_rest_order(rest_order(created_at=None, processed_at=None, updated_at=None))


def test_contact_email_fallback(rest_order: Build) -> None:
    order = parse_rest_order(rest_order(email=None, contact_email="c@example.com"))
    assert order.email == "c@example.com"


@pytest.mark.parametrize("customer", [None, {}, {"id": None, "email": "x@example.com"}])
def test_guest_checkout_has_no_customer(rest_order: Build, customer: object) -> None:
    assert parse_rest_order(rest_order(customer=customer)).customer is None


def test_customer_key_absent_is_guest(rest_order: Build) -> None:
    payload = rest_order()
    del payload["customer"]
    assert parse_rest_order(payload).is_guest


def test_customer_without_default_address(rest_order: Build) -> None:
    payload = rest_order()
    del payload["customer"]["default_address"]
    order = parse_rest_order(payload)
    assert order.customer is not None
    assert order.customer.default_address is None


def test_blank_text_becomes_none_and_non_ascii_is_kept(rest_order: Build) -> None:
    order = parse_rest_order(
        rest_order(
            customer__first_name="  Нікіта ",
            customer__last_name="",
            customer__phone="   ",
            billing__company="\x00",
        )
    )
    assert order.customer is not None
    assert order.customer.first_name == "Нікіта"
    assert order.customer.last_name is None
    assert order.customer.phone is None
    assert order.billing_address is not None
    assert order.billing_address.company is None


def test_empty_address_is_none(rest_order: Build) -> None:
    order = parse_rest_order(rest_order(billing_address={"first_name": None, "address2": ""}))
    assert order.billing_address is None


def test_status_and_reason_lower_cased(rest_order: Build) -> None:
    order = parse_rest_order(rest_order(financial_status="Refunded", cancel_reason="CUSTOMER"))
    assert order.financial_status == "refunded"
    assert order.cancel_reason == "customer"


def test_test_flag(rest_order: Build) -> None:
    assert parse_rest_order(rest_order(test=True)).test is True
    assert parse_rest_order(rest_order(test=None)).test is False


def test_non_mapping_payload_rejected() -> None:
    with pytest.raises(InvalidOrder):
        parse_rest_order([1, 2])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# GraphQL
# --------------------------------------------------------------------------------------------


def _selection_tree(selection_set: graphql.language.SelectionSetNode) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for selection in selection_set.selections:
        assert isinstance(selection, graphql.language.FieldNode)
        sub = selection.selection_set
        tree[selection.name.value] = _selection_tree(sub) if sub else None
    return tree


def _key_tree(node: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _key_tree(v) if isinstance(v, Mapping) else None for k, v in node.items()}


def test_order_fields_is_a_valid_fragment_matching_the_parser() -> None:
    document = graphql.parse(f"fragment OrderFields on Order {{ {ORDER_FIELDS} }}")
    fragment = document.definitions[0]
    assert isinstance(fragment, graphql.language.FragmentDefinitionNode)
    assert _selection_tree(fragment.selection_set) == _key_tree(graphql_twin_of_orders_fixture())


def test_graphql_and_rest_parse_to_the_same_order() -> None:
    rest = parse_rest_order(_orders_fixture())
    gql = parse_graphql_order(graphql_twin_of_orders_fixture())
    assert gql == rest
    assert gql.payload_hash() == rest.payload_hash()
    assert rest.order_number == 1002  # display-only; GraphQL does not select it


def test_graphql_fields() -> None:
    node = graphql_twin_of_orders_fixture()
    node["customer"]["defaultEmailAddress"] = None
    node["customer"]["email"] = "fallback@example.com"
    node["displayFinancialStatus"] = "VOIDED"
    node["cancelledAt"] = "2026-03-06T10:00:00-05:00"
    node["cancelReason"] = "CUSTOMER"
    node["currentTotalPriceSet"] = _money_bag("0.00", "USD")
    order = parse_graphql_order(node)
    assert order.customer is not None
    assert order.customer.email == "fallback@example.com"
    assert order.financial_status == "voided"
    assert order.cancel_reason == "customer"
    assert order.cancelled_at == datetime(2026, 3, 6, 15, tzinfo=UTC)
    assert order.current_total_price == Decimal("0.00")
    assert order.total_price == Decimal("129.62")


def test_graphql_guest_checkout_and_gid_fallback() -> None:
    node = graphql_twin_of_orders_fixture()
    node["customer"] = None
    node["legacyResourceId"] = None
    order = parse_graphql_order(node)
    assert order.customer is None
    assert order.id == "5630194913357"


def test_graphql_big_id() -> None:
    node = graphql_twin_of_orders_fixture()
    node["legacyResourceId"] = "820982911946154508"
    node["id"] = "gid://shopify/Order/820982911946154508"
    assert parse_graphql_order(node).id == "820982911946154508"


def test_graphql_without_total_rejected() -> None:
    node = graphql_twin_of_orders_fixture()
    node["totalPriceSet"] = None
    with pytest.raises(InvalidOrder):
        parse_graphql_order(node)


def test_parse_order_dispatches_on_shape() -> None:
    assert parse_order(graphql_twin_of_orders_fixture()) == parse_order(_orders_fixture())


# --------------------------------------------------------------------------------------------
# Canonical form and hash
# --------------------------------------------------------------------------------------------


def test_hash_is_stable_and_ignores_updated_at(rest_order: Build) -> None:
    first = parse_rest_order(rest_order())
    later = parse_rest_order(rest_order(updated_at="2027-01-01T00:00:00Z"))
    assert first.payload_hash() == later.payload_hash()
    assert len(first.payload_hash()) == 64
    json.dumps(first.canonical())  # JSON-ready


def test_hash_ignores_decimal_spelling(rest_order: Build) -> None:
    a = parse_rest_order(rest_order(total_price="10.0", current_total_price="10"))
    b = parse_rest_order(rest_order(total_price=10, current_total_price="10.00"))
    assert a.payload_hash() == b.payload_hash()


@pytest.mark.parametrize(
    "change",
    [
        {"current_total_price": "1.00"},
        {"cancelled_at": "2026-03-02T00:00:00Z"},
        {"customer__last_name": "Targaryen"},
        {"billing__city": "Elsewhere"},
        {"address__company": "Night's Watch"},
        {"email": "other@example.com"},
    ],
)
def test_hash_changes_with_mapped_fields(rest_order: Build, change: dict[str, Any]) -> None:
    assert parse_rest_order(rest_order()).payload_hash() != (
        parse_rest_order(rest_order(**change)).payload_hash()
    )


def test_order_is_frozen(rest_order: Build) -> None:
    order = parse_rest_order(rest_order())
    with pytest.raises(dataclasses.FrozenInstanceError):
        order.id = "1"  # type: ignore[misc]
    assert isinstance(order, Order)
    assert isinstance(order.billing_address, Address)


# --------------------------------------------------------------------------------------------
# Robustness: junk in, Order or InvalidOrder out
# --------------------------------------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        ["1E+999999999", "0E+99999", "2026-03-01T03:00:00Z", "0001-01-01T00:00+05:00"]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
_KEYS = ["id", "created_at", "total_price", "current_total_price", "customer", "billing_address"]
_KEYS += ["email", "name", "total_price_set", "current_total_price_set", "cancelled_at", "test"]


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional=dict.fromkeys(_KEYS, _json)))
def test_junk_payloads_raise_only_invalid_order(payload: dict[str, Any]) -> None:
    try:
        order = parse_rest_order(payload)
    except InvalidOrder:
        return
    assert order.id.isdigit()
    order.payload_hash()


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(
            ["legacyResourceId", "id", "createdAt", "totalPriceSet", "customer", "billingAddress"],
            _json,
        ),
    )
)
def test_junk_graphql_nodes_raise_only_invalid_order(node: dict[str, Any]) -> None:
    try:
        parse_graphql_order(node)
    except InvalidOrder:
        return


@pytest.mark.parametrize("raw", ["1E+999999999", "1e20", "0.0000000000001", 10**40])
def test_implausible_amounts_rejected(rest_order: Build, raw: object) -> None:
    with pytest.raises(InvalidOrder):
        parse_rest_order(rest_order(total_price=raw))


def test_out_of_range_timestamp_rejected(rest_order: Build) -> None:
    with pytest.raises(InvalidOrder):
        parse_rest_order(rest_order(created_at="0001-01-01T00:00:00+05:00"))
