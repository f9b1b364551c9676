"""The internal ``Order`` model; the parsers in :mod:`tasks.core.orders` build it.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

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
    "NUMERIC_ORDER_ID",
    "ORDER_NAME",
    "Address",
    "Customer",
    "Money",
    "Order",
    "order_reference",
]

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
``tasks.core.mapping_table``): those :data:`tasks.shopify.queries.ORDER_FIELDS` fills and
:meth:`Order.canonical` hashes.
Left out: ``updated_at``/``processed_at`` (not hashed: Shopify bumps them for changes nobody
maps) and ``order_number`` (webhooks carry it, the GraphQL selection does not). Adding a
Shopify field for a mapping means: a model attribute, both parsers,
:data:`tasks.shopify.queries.ORDER_FIELDS`,
:meth:`Order.canonical` and this set (``tests/unit/test_mapping_table.py`` checks they agree).
"""


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
