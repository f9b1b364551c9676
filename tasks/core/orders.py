"""The two parsers that build an :class:`Order` at the Shopify boundary (model re-exported).

Shopify speaks two dialects about the same order: webhooks (and the legacy REST API) send the
snake_case REST shape, the GraphQL Admin API answers in camelCase. Both are parsed here into one
frozen :class:`~tasks.core.order_model.Order` (conventions in :mod:`tasks.core.order_model`), so
nothing downstream knows which door an order came through. Pure: no I/O, no clock, no network.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tasks.core.errors import InvalidOrder
from tasks.core.order_coercion import (
    _DIGITS,
    _datetime,
    _decimal,
    _dig,
    _empty_to_none,
    _id,
    _lower,
    _mapping,
    _require_total,
    _required_id,
    _text,
    _timestamps,
    _upper,
)
from tasks.core.order_model import (
    MAPPABLE,
    NUMERIC_ORDER_ID,
    ORDER_NAME,
    Address,
    Customer,
    Money,
    Order,
    order_reference,
)

__all__ = [
    "MAPPABLE",
    "NUMERIC_ORDER_ID",
    "ORDER_NAME",
    "Address",
    "Customer",
    "Money",
    "Order",
    "order_reference",
    "parse_graphql_order",
    "parse_order",
    "parse_rest_order",
]

# --------------------------------------------------------------------------------------------
# REST / webhook shape (snake_case)
# --------------------------------------------------------------------------------------------


def _rest_address(payload: Any) -> Address | None:
    data = _mapping(payload)
    return _empty_to_none(
        Address(
            first_name=_text(data.get("first_name")),
            last_name=_text(data.get("last_name")),
            company=_text(data.get("company")),
            address1=_text(data.get("address1")),
            address2=_text(data.get("address2")),
            city=_text(data.get("city")),
            province=_text(data.get("province")),
            province_code=_text(data.get("province_code")),
            zip=_text(data.get("zip")),
            country=_text(data.get("country")),
            country_code=_upper(data.get("country_code")),
            phone=_text(data.get("phone")),
        )
    )


def _rest_customer(payload: Any) -> Customer | None:
    """The embedded customer; ``None`` when missing, null, or without an id (guest checkout)."""
    data = _mapping(payload)
    customer_id = _id(data.get("id"), "customer") or _id(
        data.get("admin_graphql_api_id"), "customer"
    )
    if customer_id is None:
        return None
    return Customer(
        id=customer_id,
        email=_text(data.get("email")),
        first_name=_text(data.get("first_name")),
        last_name=_text(data.get("last_name")),
        phone=_text(data.get("phone")),
        default_address=_rest_address(data.get("default_address")),
    )


def _rest_money(payload: Mapping[str, Any], name: str, bag: str) -> Money | None:
    """``<name>_set.<bag>`` as Money, or ``None`` when the bag is absent."""
    data = _dig(payload, f"{name}_set", bag)
    if not isinstance(data, Mapping):
        return None
    amount = _decimal(data.get("amount"), f"{name}_set.{bag}.amount")
    if amount is None:
        return None
    return Money(amount, _upper(data.get("currency_code")))


def _rest_shop_amount(payload: Mapping[str, Any], name: str) -> Decimal | None:
    """Shop-currency amount: ``<name>_set.shop_money.amount`` first, then the flat ``<name>``."""
    money = _rest_money(payload, name, "shop_money")
    if money is not None:
        return money.amount
    return _decimal(payload.get(name), name)


def _unwrap(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise InvalidOrder(f"order payload must be a JSON object, got {type(payload).__name__}")
    inner = payload.get("order")
    if isinstance(inner, Mapping) and "id" not in payload:
        return inner
    return payload


def parse_rest_order(payload: Mapping[str, Any]) -> Order:
    """Parse a webhook / REST Admin API order (bare, or in an ``{"order": {...}}`` envelope).

    Raises :class:`~tasks.core.errors.InvalidOrder` when the order has no usable id, creation
    time or total, or when an id, amount or timestamp is malformed.
    """
    data = _unwrap(payload)
    order_id = _required_id(data.get("id"), data.get("admin_graphql_api_id"))
    created_at, updated_at = _timestamps(
        _datetime(data.get("created_at"), "created_at"),
        _datetime(data.get("updated_at"), "updated_at"),
        _datetime(data.get("processed_at"), "processed_at"),
        order_id,
    )
    total = _require_total(_rest_shop_amount(data, "total_price"), order_id)
    current = _rest_shop_amount(data, "current_total_price")
    presentment_total = _rest_money(data, "total_price", "presentment_money")
    presentment_current = _rest_money(data, "current_total_price", "presentment_money")
    order_number = _order_number(data.get("order_number"))
    return Order(
        id=order_id,
        gid=_text(data.get("admin_graphql_api_id")) or f"gid://shopify/Order/{order_id}",
        name=_text(data.get("name")) or _default_name(order_number),
        email=_text(data.get("email")) or _text(data.get("contact_email")),
        phone=_text(data.get("phone")),
        created_at=created_at,
        updated_at=updated_at,
        processed_at=_datetime(data.get("processed_at"), "processed_at"),
        cancelled_at=_datetime(data.get("cancelled_at"), "cancelled_at"),
        cancel_reason=_lower(data.get("cancel_reason")),
        financial_status=_lower(data.get("financial_status")),
        test=data.get("test") is True,
        currency=_upper(data.get("currency"))
        or _upper(_dig(data, "total_price_set", "shop_money", "currency_code")),
        presentment_currency=_upper(data.get("presentment_currency"))
        or (presentment_total.currency if presentment_total else None),
        total_price=total,
        current_total_price=total if current is None else current,
        presentment_total_price=presentment_total,
        presentment_current_total_price=presentment_current or presentment_total,
        customer=_rest_customer(data.get("customer")),
        billing_address=_rest_address(data.get("billing_address")),
        order_number=order_number,
    )


def _default_name(order_number: int | None) -> str | None:
    """Shopify's default order name, "#" + order_number, for a payload that carries no ``name``."""
    return None if order_number is None else f"#{order_number}"


def _order_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = _text(value)
    return int(text) if text is not None and _DIGITS.fullmatch(text) else None


# --------------------------------------------------------------------------------------------
# GraphQL Admin API shape (camelCase)
# --------------------------------------------------------------------------------------------


def _graphql_address(payload: Any) -> Address | None:
    data = _mapping(payload)
    return _empty_to_none(
        Address(
            first_name=_text(data.get("firstName")),
            last_name=_text(data.get("lastName")),
            company=_text(data.get("company")),
            address1=_text(data.get("address1")),
            address2=_text(data.get("address2")),
            city=_text(data.get("city")),
            province=_text(data.get("province")),
            province_code=_text(data.get("provinceCode")),
            zip=_text(data.get("zip")),
            country=_text(data.get("country")),
            country_code=_upper(data.get("countryCodeV2") or data.get("countryCode")),
            phone=_text(data.get("phone")),
        )
    )


def _graphql_customer(payload: Any) -> Customer | None:
    data = _mapping(payload)
    customer_id = _id(data.get("legacyResourceId"), "customer") or _id(data.get("id"), "customer")
    if customer_id is None:
        return None
    return Customer(
        id=customer_id,
        email=_text(_dig(data, "defaultEmailAddress", "emailAddress")) or _text(data.get("email")),
        first_name=_text(data.get("firstName")),
        last_name=_text(data.get("lastName")),
        phone=_text(data.get("phone")),
        default_address=_graphql_address(data.get("defaultAddress")),
    )


def _graphql_money(payload: Mapping[str, Any], name: str, bag: str) -> Money | None:
    data = _dig(payload, name, bag)
    if not isinstance(data, Mapping):
        return None
    amount = _decimal(data.get("amount"), f"{name}.{bag}.amount")
    if amount is None:
        return None
    return Money(amount, _upper(data.get("currencyCode")))


def parse_graphql_order(node: Mapping[str, Any]) -> Order:
    """Parse one GraphQL Admin API ``Order`` node (selected with
    :data:`tasks.shopify.queries.ORDER_FIELDS`).

    Raises :class:`~tasks.core.errors.InvalidOrder` like :func:`parse_rest_order`.
    """
    if not isinstance(node, Mapping):
        raise InvalidOrder(f"order node must be a JSON object, got {type(node).__name__}")
    order_id = _required_id(node.get("legacyResourceId"), node.get("id"))
    created_at, updated_at = _timestamps(
        _datetime(node.get("createdAt"), "createdAt"),
        _datetime(node.get("updatedAt"), "updatedAt"),
        _datetime(node.get("processedAt"), "processedAt"),
        order_id,
    )
    shop_total = _graphql_money(node, "totalPriceSet", "shopMoney")
    total = _require_total(shop_total.amount if shop_total else None, order_id)
    shop_current = _graphql_money(node, "currentTotalPriceSet", "shopMoney")
    presentment_total = _graphql_money(node, "totalPriceSet", "presentmentMoney")
    presentment_current = _graphql_money(node, "currentTotalPriceSet", "presentmentMoney")
    return Order(
        id=order_id,
        gid=_text(node.get("id")) or f"gid://shopify/Order/{order_id}",
        name=_text(node.get("name")),
        email=_text(node.get("email")),
        phone=_text(node.get("phone")),
        created_at=created_at,
        updated_at=updated_at,
        processed_at=_datetime(node.get("processedAt"), "processedAt"),
        cancelled_at=_datetime(node.get("cancelledAt"), "cancelledAt"),
        cancel_reason=_lower(node.get("cancelReason")),
        financial_status=_lower(node.get("displayFinancialStatus")),
        test=node.get("test") is True,
        currency=_upper(node.get("currencyCode")) or (shop_total.currency if shop_total else None),
        presentment_currency=_upper(node.get("presentmentCurrencyCode"))
        or (presentment_total.currency if presentment_total else None),
        total_price=total,
        current_total_price=total if shop_current is None else shop_current.amount,
        presentment_total_price=presentment_total,
        presentment_current_total_price=presentment_current or presentment_total,
        customer=_graphql_customer(node.get("customer")),
        billing_address=_graphql_address(node.get("billingAddress")),
    )


def parse_order(payload: Mapping[str, Any]) -> Order:
    """Parse either shape: GraphQL when the payload has camelCase markers, REST otherwise."""
    data = _unwrap(payload)
    if "legacyResourceId" in data or "createdAt" in data or "totalPriceSet" in data:
        return parse_graphql_order(data)
    return parse_rest_order(data)
