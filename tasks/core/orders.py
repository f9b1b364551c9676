"""The internal ``Order`` model and the two parsers that build it at the Shopify boundary.

Shopify speaks two dialects about the same order: webhooks (and the legacy REST API) send the
snake_case REST shape, the GraphQL Admin API answers in camelCase. Both are parsed here into one
frozen :class:`Order`, so nothing downstream knows which door an order came through.

Conventions inside the model:

- ids are strings of digits (Shopify ids exceed 2**53; they never pass through ``float``);
- money is :class:`decimal.Decimal` in the shop currency; presentment amounts are kept as
  :class:`Money` for display only;
- datetimes are timezone-aware UTC (a naive timestamp is taken to be UTC);
- text is stripped of whitespace and control characters; an empty result becomes ``None``.

Everything here is pure: no I/O, no clock, no network.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tasks.core.errors import InvalidOrder

NUMERIC_ORDER_ID = re.compile(r"^[0-9]{1,20}$")
ORDER_NAME = re.compile(r"^#[0-9]{1,20}$")


def order_reference(text: str) -> str:
    """An order as a user names it, stripped: its name (``#1001``) or Shopify's numeric id.

    ``ValueError`` for anything else (a GID, letters), so a typo fails before any work starts.
    """
    reference = text.strip()
    if not (NUMERIC_ORDER_ID.match(reference) or ORDER_NAME.match(reference)):
        raise ValueError(
            "order_id must be an order name like #1001 or the numeric Shopify order id, "
            f"got {reference!r}"
        )
    return reference


__all__ = [
    "MAPPABLE",
    "ORDER_FIELDS",
    "Address",
    "Customer",
    "Money",
    "Order",
    "parse_graphql_order",
    "parse_order",
    "parse_rest_order",
]

_MAILING_ADDRESS_FIELDS = (
    "firstName lastName company address1 address2 city province provinceCode zip country "
    "countryCodeV2 phone"
)
_MONEY_BAG = "shopMoney { amount currencyCode } presentmentMoney { amount currencyCode }"

ORDER_FIELDS: str = f"""
  id
  legacyResourceId
  name
  email
  phone
  createdAt
  updatedAt
  processedAt
  cancelledAt
  cancelReason
  displayFinancialStatus
  test
  currencyCode
  presentmentCurrencyCode
  totalPriceSet {{ {_MONEY_BAG} }}
  currentTotalPriceSet {{ {_MONEY_BAG} }}
  customer {{
    id
    legacyResourceId
    firstName
    lastName
    email
    defaultEmailAddress {{ emailAddress }}
    phone
    defaultAddress {{ {_MAILING_ADDRESS_FIELDS} }}
  }}
  billingAddress {{ {_MAILING_ADDRESS_FIELDS} }}
"""
"""GraphQL selection set for one ``Order``: exactly what :func:`parse_graphql_order` reads.

Use it as ``fragment OrderFields on Order { <ORDER_FIELDS> }`` or inline it in a query's ``node``.
Only standard Shopify Admin GraphQL field names are used.
"""

MAPPABLE: frozenset[str] = frozenset(
    {
        "id",
        "gid",
        "name",
        "email",
        "phone",
        "created_at",
        "cancelled_at",
        "cancel_reason",
        "financial_status",
        "test",
        "currency",
        "presentment_currency",
        "total_price",
        "current_total_price",
        "presentment_total_price",
        "presentment_current_total_price",
        "customer",
        "billing_address",
    }
)
"""The :class:`Order` attributes a mapped field may read (``order.<attribute>`` sources in
``tasks.core.mapping_table``): those :data:`ORDER_FIELDS` fills and :meth:`Order.canonical` hashes.
Left out: ``updated_at``/``processed_at`` (not hashed: Shopify bumps them for changes nobody
maps) and ``order_number`` (webhooks carry it, the GraphQL selection does not). Adding a
Shopify field for a mapping means: a model attribute, both parsers, :data:`ORDER_FIELDS`,
:meth:`Order.canonical` and this set (``tests/unit/test_mapping_table.py`` checks they agree).
"""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|[\ud800-\udfff]")
_MAX_ID = 10**30
_MAX_ADJUSTED = 17  # Salesforce currency fields hold at most 18 digits
_MIN_EXPONENT = -12
_DIGITS = re.compile(r"[0-9]{1,30}")
_GID = re.compile(r"gid://shopify/[A-Za-z]+/([0-9]{1,30})(?:\?.*)?")


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in a named currency (ISO 4217 code, upper case)."""

    amount: Decimal
    currency: str | None


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address (Shopify REST ``*_address`` / GraphQL ``MailingAddress``)."""

    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province: str | None = None
    province_code: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    """The Shopify customer behind an order (absent for a guest checkout)."""

    id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    default_address: Address | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """One Shopify order, reduced to what the sync needs.

    ``order_number`` is display-only: the GraphQL selection does not carry it, so it is excluded
    from equality and from :meth:`canonical`.
    """

    id: str
    gid: str
    name: str | None
    email: str | None
    phone: str | None
    created_at: datetime
    updated_at: datetime
    processed_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    financial_status: str | None
    test: bool
    currency: str | None
    presentment_currency: str | None
    total_price: Decimal
    current_total_price: Decimal
    presentment_total_price: Money | None = None
    presentment_current_total_price: Money | None = None
    customer: Customer | None = None
    billing_address: Address | None = None
    order_number: int | None = field(default=None, compare=False)

    @property
    def is_cancelled(self) -> bool:
        """Whether Shopify has cancelled the order."""
        return self.cancelled_at is not None

    @property
    def is_guest(self) -> bool:
        """Whether the order came from a guest checkout (no customer record)."""
        return self.customer is None

    def canonical(self) -> dict[str, Any]:
        """A JSON-ready, order-independent view of every field that can influence the mapping.

        ``updated_at`` and ``processed_at`` are left out on purpose: Shopify bumps ``updated_at``
        for changes we do not map (fulfilments, tags, notes), and the ledger should see those as
        "nothing changed".
        """
        return {
            "v": 1,
            "id": self.id,
            "gid": self.gid,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "created_at": _iso(self.created_at),
            "cancelled_at": _iso(self.cancelled_at),
            "cancel_reason": self.cancel_reason,
            "financial_status": self.financial_status,
            "test": self.test,
            "currency": self.currency,
            "presentment_currency": self.presentment_currency,
            "total_price": _decimal_text(self.total_price),
            "current_total_price": _decimal_text(self.current_total_price),
            "presentment_total_price": _money_canonical(self.presentment_total_price),
            "presentment_current_total_price": _money_canonical(
                self.presentment_current_total_price
            ),
            "customer": _customer_canonical(self.customer),
            "billing_address": _address_canonical(self.billing_address),
        }

    def payload_hash(self) -> str:
        """A stable sha256 (hex) of :meth:`canonical`; equal orders always hash equally."""
        text = json.dumps(
            self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )
        return hashlib.sha256(text.encode("ascii")).hexdigest()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _decimal_text(value: Decimal) -> str:
    """Fixed-point text with trailing zeros removed, so 10, 10.0 and 1E+1 hash alike."""
    text = format(value.normalize(), "f")
    return "0" if text in {"-0", "0"} else text


def _money_canonical(money: Money | None) -> dict[str, Any] | None:
    if money is None:
        return None
    return {"amount": _decimal_text(money.amount), "currency": money.currency}


def _address_canonical(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {name: getattr(address, name) for name in Address.__slots__}


def _customer_canonical(customer: Customer | None) -> dict[str, Any] | None:
    if customer is None:
        return None
    return {
        "id": customer.id,
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "phone": customer.phone,
        "default_address": _address_canonical(customer.default_address),
    }


# --------------------------------------------------------------------------------------------
# Scalar coercion shared by both parsers
# --------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """Cleaned, stripped text, or ``None`` for null, empty or whitespace-only values.

    Control characters (other than tab and newlines) and lone surrogates are removed: they carry
    no meaning and Salesforce rejects them.
    """
    if isinstance(value, str):
        text = _CONTROL.sub("", value).strip()
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) < _MAX_ID:
        text = str(value)
    else:
        return None
    return text or None


def _lower(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else text.lower()


def _upper(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else text.upper()


def _id(value: Any, what: str) -> str | None:
    """A Shopify id as a string of digits; accepts int, digit strings and GIDs; never floats."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool | float):
        raise InvalidOrder(f"{what} id must be an integer or a string of digits, got {value!r}")
    if isinstance(value, int):
        if not 0 <= value < _MAX_ID:
            raise InvalidOrder(f"{what} id is out of range")
        return str(value)
    text = str(value).strip()
    if _DIGITS.fullmatch(text):
        return str(int(text))  # drops leading zeros, keeps every digit
    gid = _GID.fullmatch(text)
    if gid:
        return str(int(gid.group(1)))
    raise InvalidOrder(f"{what} id is not numeric: {text[:60]!r}")


def _decimal(value: Any, what: str) -> Decimal | None:
    """Money as Decimal from a string, an int, a Decimal or (via its repr) a JSON float."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InvalidOrder(f"{what} is not an amount: {value!r}")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int | float):
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    else:
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise InvalidOrder(f"{what} is not an amount: {str(value)[:60]!r}") from None
    if not _plausible(amount):
        raise InvalidOrder(f"{what} is not a plausible amount: {str(value)[:60]!r}")
    return amount


def _plausible(amount: Decimal) -> bool:
    """Finite, at most 18 integer digits, at most 12 decimals, no positive exponent."""
    if not amount.is_finite():
        return False
    exponent = amount.as_tuple().exponent
    return (
        isinstance(exponent, int)
        and _MIN_EXPONENT <= exponent <= 0
        and (amount.is_zero() or amount.adjusted() <= _MAX_ADJUSTED)
    )


def _datetime(value: Any, what: str) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime (naive input is taken as UTC)."""
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidOrder(f"{what} is not an ISO 8601 timestamp: {text[:60]!r}") from None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _dig(payload: Mapping[str, Any], *path: str) -> Any:
    current: Any = payload
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def _empty_to_none(address: Address) -> Address | None:
    return None if address == Address() else address


def _timestamps(
    created: datetime | None, updated: datetime | None, processed: datetime | None, order_id: str
) -> tuple[datetime, datetime]:
    """``created_at`` (else processed/updated) and ``updated_at`` (else ``created_at``)."""
    created_at = created or processed or updated
    if created_at is None:
        raise InvalidOrder(f"order {order_id} has no created_at", code="NO_CREATED_AT")
    return created_at, updated or created_at


def _required_id(value: Any, fallback: Any) -> str:
    order_id = _id(value, "order") or _id(fallback, "order")
    if order_id is None:
        raise InvalidOrder("order has no id", code="NO_ORDER_ID")
    return order_id


def _require_total(amount: Decimal | None, order_id: str) -> Decimal:
    if amount is None:
        raise InvalidOrder(f"order {order_id} has no total price", code="NO_TOTAL_PRICE")
    return amount


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
    """Parse one GraphQL Admin API ``Order`` node selected with :data:`ORDER_FIELDS`.

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
