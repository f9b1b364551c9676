"""The mapping, declared once: one table per Salesforce object.

Each :class:`FieldRule` says, for one Salesforce field, how its value is computed from the parsed
:class:`~tasks.core.orders.Order` (a *source*), whether Shopify owns it (sent on every update and
repaired by reconcile) or it is create-only (sent when the record is created, then Salesforce
users own it), its standard length (the cut and the field warning use the org's describe when
known, this length otherwise) and its kind (how reconcile compares it). The tables drive:

- the request bodies (:func:`build_body`, used by :func:`tasks.core.mapping.map_order`, hence by the
  webhook path, ``sync-order``, replay and the reconcile repair);
- the default owned and create-only lists of :class:`~tasks.core.mapping.MappingConfig`;
- what reconcile reads back and compares, for Account, Contact and Opportunity
  (:func:`compared_rules`).

A source is either a *named source* (a computed value: ``account_name``, ``opportunity_name``,
``amount``, ``close_date``, ``stage``, ``billing_street``, ``account_phone``,
``person_record_type``) or a *path*: ``order.<attribute>[.<attribute>…]`` into the Order model
(``order.financial_status``, ``order.customer.id``, ``order.billing_address.city``) or
``buyer.<attribute>`` into :class:`Buyer`, the customer as the mapping sees them
(``buyer.email``, ``buyer.address.city``). Users add owned fields by configuration
(``SHOPSYNC_MAPPING__OPPORTUNITY_FIELDS`` and friends: Salesforce field → source); those become
rules of the same table. Adding a built-in field is one :class:`FieldRule` line here.

Only the order attributes the GraphQL selection (:data:`tasks.shopify.queries.ORDER_FIELDS`)
fills are paths (:data:`tasks.core.orders.MAPPABLE`): reconcile reads orders through GraphQL,
and a value the webhook has but GraphQL lacks would drift forever.

Pure: no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tasks.core.buyer import Buyer, Placeholder, buyer_of, first, guest_phone, join, path_kind
from tasks.core.comparable import Kind, comparable, money_text
from tasks.core.errors import ConfigError, InvalidOrder
from tasks.core.orders import Order

if TYPE_CHECKING:
    from tasks.core.mapping_config import MappingConfig, OrgSchema

__all__ = [
    "ACCOUNT",
    "CONTACT",
    "OBJECTS",
    "OPPORTUNITY",
    "TABLES",
    "Buyer",
    "FieldRule",
    "Kind",
    "MappingInput",
    "build_body",
    "buyer_of",
    "comparable",
    "compared_rules",
    "first",
    "guest_phone",
    "money_text",
    "rules_for",
    "source_kind",
]

ACCOUNT = "Account"
CONTACT = "Contact"
OPPORTUNITY = "Opportunity"
OBJECTS = (ACCOUNT, CONTACT, OPPORTUNITY)

Condition = Literal["always", "business_accounts", "person_accounts", "multi_currency"]


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One Salesforce field of the mapping.

    ``source`` is a named source or a path (module docstring); ``None`` for a field the adapter
    sets (``OwnerId``, ``AccountId``, ``ContactId``), listed so that updates never send it.
    ``owned``: Shopify owns it (sent on every update, compared and repaired by reconcile);
    otherwise it is create-only. ``length``: the standard Salesforce length (text kinds).
    ``when``: the org variant the field applies to.
    """

    field: str
    source: str | None
    owned: bool
    length: int | None = None
    kind: Kind = "text"
    when: Condition = "always"


def _owned(field: str, source: str, length: int | None = None, **kw: Any) -> FieldRule:
    return FieldRule(field, source, True, length, **kw)


def _create_only(field: str, source: str | None, length: int | None = None, **kw: Any) -> FieldRule:
    return FieldRule(field, source, False, length, **kw)


TABLES: Mapping[str, tuple[FieldRule, ...]] = {
    ACCOUNT: (
        _owned("Name", "account_name", 255, when="business_accounts"),
        _create_only("RecordTypeId", "person_record_type", when="person_accounts"),
        _owned("FirstName", "buyer.first_name", 40, when="person_accounts"),
        _owned("LastName", "buyer.required_last_name", 80, when="person_accounts"),
        _owned("PersonEmail", "buyer.email", 80, kind="email", when="person_accounts"),
        _owned("BillingStreet", "billing_street", 255),
        _owned("BillingCity", "buyer.address.city", 40),
        _owned("BillingState", "buyer.address.province", 80),
        _owned("BillingPostalCode", "buyer.address.zip", 20),
        _owned("BillingCountry", "buyer.address.country", 80),
        _owned("Phone", "account_phone", 40),
        _create_only("OwnerId", None),
    ),
    CONTACT: (
        _owned("FirstName", "buyer.first_name", 40),
        _owned("LastName", "buyer.required_last_name", 80),
        _owned("Email", "buyer.email", 80, kind="email"),
        _owned("Phone", "buyer.phone", 40),
        _create_only("OwnerId", None),
        _create_only("AccountId", None),
    ),
    OPPORTUNITY: (
        _owned("Name", "opportunity_name", 120),
        _create_only("StageName", "stage", 255),
        _create_only("CloseDate", "close_date", kind="date"),
        _owned("Amount", "amount", kind="money"),
        _owned("CurrencyIsoCode", "order.currency", when="multi_currency"),
        _create_only("OwnerId", None),
        _create_only("ContactId", None),
    ),
}
"""The blueprint's mapping (DESIGN §3). Order matters only for the order of body keys."""


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MappingInput:
    """What a source computes from: the order, its buyer, the configuration and the org."""

    order: Order
    buyer: Buyer
    config: MappingConfig
    org: OrgSchema
    shop_timezone: str


def _account_name(src: MappingInput) -> str:
    buyer, order = src.buyer, src.order
    candidates: dict[str, str | None] = {
        "company": buyer.address.company if buyer.address else None,
        "full_name": buyer.full_name,
        "email": buyer.email,
    }
    for source in src.config.account_name_sources:
        value = candidates[source]
        if value:
            return value
    if order.customer is not None:
        return Placeholder(f"Shopify customer {order.customer.id}")
    return Placeholder(f"Shopify guest {order.name or order.id}")


def _close_date(src: MappingInput) -> str:
    order = src.order
    try:
        zone = ZoneInfo(src.shop_timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown shop timezone {src.shop_timezone!r}", code="BAD_SHOP_TIMEZONE"
        ) from exc
    try:
        local_day = order.created_at.astimezone(zone).date()
        return (local_day + timedelta(days=src.config.close_date_offset_days)).isoformat()
    except OverflowError:
        raise InvalidOrder(
            f"order {order.id}: created_at {order.created_at.isoformat()} gives no valid CloseDate",
            code="BAD_CLOSE_DATE",
        ) from None


def _anonymous(order: Order) -> str:
    """How a buyer without name or e-mail is called: by customer id, else a guest."""
    return f"customer {order.customer.id}" if order.customer is not None else "guest"


def _opportunity_name(src: MappingInput) -> str:
    order, buyer = src.order, src.buyer
    values = {
        "name": order.name or (f"#{order.order_number}" if order.order_number else order.id),
        "customer_name": buyer.full_name or buyer.email or _anonymous(order),
        "order_number": "" if order.order_number is None else str(order.order_number),
        "id": order.id,
        "email": buyer.email or "",
        "company": (buyer.address.company if buyer.address else None) or "",
    }
    text = src.config.opportunity_name_template.format(**values).strip()
    if not (buyer.full_name or buyer.email):  # named after a stand-in for the buyer
        return Placeholder(text or f"Shopify Order {order.id}")
    return text or f"Shopify Order {order.id}"


def _amount(src: MappingInput) -> Decimal:
    if src.config.amount_basis == "total_price":
        return src.order.total_price
    return src.order.current_total_price


def _stage(src: MappingInput) -> str:
    config = src.config
    return config.stage_when_cancelled if src.order.is_cancelled else config.stage_on_create


def _billing_street(src: MappingInput) -> str | None:
    address = src.buyer.address
    return None if address is None else join(address.address1, address.address2, sep="\n")


def _account_phone(src: MappingInput) -> str | None:
    address = src.buyer.address
    return first(address.phone if address else None, src.buyer.phone)


NAMED_SOURCES: Mapping[str, tuple[Callable[[MappingInput], Any], Kind]] = {
    "account_name": (_account_name, "text"),
    "opportunity_name": (_opportunity_name, "text"),
    "amount": (_amount, "money"),
    "close_date": (_close_date, "date"),
    "stage": (_stage, "text"),
    "billing_street": (_billing_street, "text"),
    "account_phone": (_account_phone, "text"),
    "person_record_type": (lambda src: src.org.person_record_type_id, "text"),
}
"""Computed values, by name: the blueprint's rules that are more than a path."""


def resolve(source: str, src: MappingInput) -> Any:
    """The value of a source for this input (``None`` where a path meets a missing part)."""
    return _resolver(source)(src)


@functools.cache
def _resolver(source: str) -> Callable[[MappingInput], Any]:
    """A source compiled once: its named function, or a walk along its path."""
    named = NAMED_SOURCES.get(source)
    if named is not None:
        return named[0]
    root, *path = source.split(".")

    def walk(src: MappingInput) -> Any:
        value: Any = src.order if root == "order" else src.buyer
        for name in path:
            if value is None:
                return None
            value = getattr(value, name)
        return value

    return walk


def source_kind(source: str) -> Kind:
    """The kind of a source's value; ``ValueError`` (naming what exists) for an unknown one."""
    if source in NAMED_SOURCES:
        return NAMED_SOURCES[source][1]
    return path_kind(source, sorted(NAMED_SOURCES))


# --------------------------------------------------------------------------------------------
# The rules that apply, and the bodies they build
# --------------------------------------------------------------------------------------------


def _applies(rule: FieldRule, org: OrgSchema) -> bool:
    if rule.when == "business_accounts":
        return not org.person_accounts
    if rule.when == "person_accounts":
        return org.person_accounts
    if rule.when == "multi_currency":
        return org.multi_currency
    return True


def configured_rules(sobject: str, config: MappingConfig) -> list[FieldRule]:
    """The fields users added by configuration (owned unless listed create-only)."""
    create_only = set(config.create_only_fields.get(sobject, []))
    return [
        FieldRule(name, source, name not in create_only, None, source_kind(source))
        for name, source in config.extra_fields(sobject).items()
    ]


def rules_for(sobject: str, config: MappingConfig, org: OrgSchema) -> list[FieldRule]:
    """The rules of one object that apply to this org: the table's, then the configured ones."""
    return list(_rules(sobject, config, org))


_CACHE: dict[tuple[str, int, int], tuple[Any, Any, tuple[FieldRule, ...]]] = {}
_CACHE_MAX = 64


def _rules(sobject: str, config: MappingConfig, org: OrgSchema) -> tuple[FieldRule, ...]:
    """:func:`rules_for`, worked out once per (object, config, org) — both are immutable."""
    key = (sobject, id(config), id(org))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is config and hit[1] is org:
        return hit[2]
    table = [rule for rule in TABLES[sobject] if _applies(rule, org)]
    rules = tuple(table + configured_rules(sobject, config))
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = (config, org, rules)
    return rules


def build_body(sobject: str, src: MappingInput) -> dict[str, Any]:
    """The raw create body of one object (before cleaning, length checks and the org filter)."""
    return {
        rule.field: _resolver(rule.source)(src)
        for rule in _rules(sobject, src.config, src.org)
        if rule.source is not None
    }


def email_fields(config: MappingConfig, org: OrgSchema) -> frozenset[tuple[str, str]]:
    """``(object, field)`` of the fields holding an e-mail address (checked, and left out
    rather than cut)."""
    return frozenset(
        (sobject, r.field)
        for sobject in OBJECTS
        for r in _rules(sobject, config, org)
        if r.kind == "email"
    )


def compared_rules(sobject: str, config: MappingConfig, org: OrgSchema) -> list[FieldRule]:
    """The fields reconcile reads back and compares: mapped, owned by the configuration, and
    present in the org (StageName's cancellation rule is reconcile's own)."""
    owned = config.owned(sobject)
    return [
        rule
        for rule in rules_for(sobject, config, org)
        if rule.source is not None and rule.field in owned and org.has_field(sobject, rule.field)
    ]


def standard_lengths() -> dict[str, dict[str, int]]:
    """Field → standard length per object, from the tables (person fields included)."""
    return {
        sobject: {r.field: r.length for r in rules if r.length is not None}
        for sobject, rules in TABLES.items()
    }


def default_ownership() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """``(owned, create_only)`` field lists per object, from the tables."""
    owned = {s: [r.field for r in rules if r.owned] for s, rules in TABLES.items()}
    create_only = {s: [r.field for r in rules if not r.owned] for s, rules in TABLES.items()}
    return owned, create_only
