"""Pure mapping from one Shopify :class:`~tasks.orders.Order` to Salesforce record bodies.

``map_order`` turns an order into three plain dicts (Account, Contact, Opportunity) plus the
external-id keys to upsert them by. It knows nothing about HTTP: the Salesforce adapter decides
how to send them (one ``/composite`` call, sObject Collections or Bulk API 2.0).

Rules the adapter can rely on:

- **Absent means "leave Salesforce alone".** A field whose value is ``None`` or an empty string is
  *omitted* from the dict, never sent as ``null``: a missing phone in Shopify never clears the
  phone a salesperson typed into Salesforce. (The flip side: clearing a value in Shopify is not
  propagated.)
- **Lengths.** Every string is cut to the org's field length (counted in UTF-16 code units, as
  Salesforce counts) and every cut is reported as a :class:`Truncation`. An e-mail address that is
  too long is *omitted* instead (a cut address is a different, possibly someone else's, address);
  that is reported as a :class:`Truncation` with ``omitted=True``. External-id keys are never cut:
  a key that does not fit raises :class:`~tasks.errors.ConfigError`.
- **Clean text.** Control characters and lone surrogates are removed; an ``Email``/``PersonEmail``
  that does not look like ``local@domain.tld`` is left out and listed in ``dropped_fields``.
- **Only fields the org has.** When describe told us an object's fields, a mapped field the org
  lacks is left out and listed in ``SalesforceRecords.dropped_fields``; ``CurrencyIsoCode`` is only
  sent to multi-currency orgs.
- **Money** stays :class:`decimal.Decimal` in ``Opportunity.Amount``. :func:`dumps_json` writes a
  body with it as an exact JSON number (``598.94``); :func:`jsonable` renders it as a fixed-point
  string (``"598.94"``) for a Bulk CSV cell. Neither goes through ``float``.
- **Create vs update.** The dicts are full *create* bodies. :func:`update_body` /
  :func:`owned_fields` keep only the owned fields (plus the external id, plus StageName for a
  cancellation when configured); create-only fields such as CloseDate and ``ContactId`` are never
  sent on update.
- **A buyer with no name, e-mail or phone** (what Shopify sends when the app lacks protected
  customer data approval: research/shopify.md §3) still syncs: the Account is named
  ``Shopify customer <customer id>`` (``Shopify guest <order name>`` without a customer), the
  Opportunity ``… (customer <customer id>)``, and **no Contact** is written: a Contact that
  identifies nobody would only be noise, and none is ever keyed on a null e-mail. Nothing is
  cleared in Salesforce either (absent means "leave alone"). Once the data is visible, the next
  order of that customer writes the Contact.
- **Keys.** Each dict carries its external-id field (needed in sObject Collections and Bulk
  bodies); a single-record ``PATCH .../{field}/{value}`` must not repeat it, use :func:`split_key`.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.errors import ConfigError, InvalidOrder
from tasks.orders import Address, Order

__all__ = [
    "ACCOUNT",
    "CONTACT",
    "OPPORTUNITY",
    "STANDARD_FIELD_LENGTHS",
    "MappingConfig",
    "OrgSchema",
    "SalesforceRecords",
    "Truncation",
    "create_body",
    "dumps_json",
    "guest_account_key",
    "jsonable",
    "map_order",
    "normalise_email",
    "owned_fields",
    "skip_reason",
    "split_key",
    "update_body",
]

ACCOUNT = "Account"
CONTACT = "Contact"
OPPORTUNITY = "Opportunity"

NameSource = Literal["company", "full_name", "email"]
AmountBasis = Literal["current_total_price", "total_price"]

_TEMPLATE_KEYS = frozenset({"name", "customer_name", "order_number", "id", "email", "company"})

STANDARD_FIELD_LENGTHS: Mapping[str, Mapping[str, int]] = {
    ACCOUNT: {
        "Name": 255,
        "BillingStreet": 255,
        "BillingCity": 40,
        "BillingState": 80,
        "BillingPostalCode": 20,
        "BillingCountry": 80,
        "Phone": 40,
        "FirstName": 40,
        "LastName": 80,
        "PersonEmail": 80,
    },
    CONTACT: {"FirstName": 40, "LastName": 80, "Email": 80, "Phone": 40},
    OPPORTUNITY: {"Name": 120, "StageName": 255},
}
"""Standard Salesforce field lengths (Object Reference v67), used when describe is not known."""

_EMAIL_FIELDS = frozenset({(CONTACT, "Email"), (ACCOUNT, "PersonEmail")})
_STRING_TYPES = frozenset(
    {"string", "textarea", "email", "phone", "url", "picklist", "combobox", "encryptedstring"}
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|[\ud800-\udfff]")
_ALWAYS_CREATE_ONLY: Mapping[str, frozenset[str]] = {OPPORTUNITY: frozenset({"ContactId"})}
"""Create-only in Salesforce itself, whatever the config says (Opportunity.ContactId, API 46+)."""
_MIN_PHONE_DIGITS = 6
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def _default_name_sources() -> list[NameSource]:
    return ["company", "full_name", "email"]


def _default_owned() -> dict[str, list[str]]:
    return {
        ACCOUNT: [
            "Name",
            "BillingStreet",
            "BillingCity",
            "BillingState",
            "BillingPostalCode",
            "BillingCountry",
            "Phone",
            "FirstName",
            "LastName",
            "PersonEmail",
            "CurrencyIsoCode",
        ],
        CONTACT: ["FirstName", "LastName", "Email", "Phone", "CurrencyIsoCode"],
        OPPORTUNITY: ["Name", "Amount", "CurrencyIsoCode"],
    }


def _default_create_only() -> dict[str, list[str]]:
    return {
        ACCOUNT: ["OwnerId"],
        CONTACT: ["OwnerId", "AccountId"],
        OPPORTUNITY: ["StageName", "CloseDate", "OwnerId", "ContactId"],
    }


class MappingConfig(BaseModel):
    """How Shopify orders become Salesforce records; the defaults are the design's blueprint.

    Embedded in the app settings as ``settings.mapping``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_external_id_field: str = Field(
        default="External_Shopify_Account_ID__c",
        description="Account external-id field (Text, External ID, Unique).",
    )
    contact_external_id_field: str = Field(
        default="External_Shopify_ID__c",
        description="Contact external-id field; on Person Accounts the same field ends in __pc.",
    )
    opportunity_external_id_field: str = Field(
        default="External_Shopify_Order_ID__c",
        description="Opportunity external-id field; holds the numeric Shopify order id.",
    )
    account_key_prefix: str = Field(
        default="shop_cust_", description="Account key = prefix + Shopify customer id."
    )
    guest_account_key_prefix: str = Field(
        default="shop_guest_",
        description="Guest Account key = prefix + first 24 hex of sha256(normalised e-mail).",
    )
    stage_on_create: str = Field(
        default="New Order", description="Opportunity.StageName on create."
    )
    stage_when_cancelled: str = Field(
        default="Closed Lost", description="Opportunity.StageName for a cancelled order."
    )
    cancellation_updates_stage: bool = Field(
        default=True,
        description=(
            "StageName is create-only, except that a cancellation (a Shopify fact) may move an "
            "existing Opportunity to stage_when_cancelled."
        ),
    )
    close_date_offset_days: int = Field(
        default=30,
        ge=-3650,
        le=3650,
        description="CloseDate = order date in the shop timezone + N days.",
    )
    opportunity_name_template: str = Field(
        default="Shopify Order {name} ({customer_name})",
        description=(
            "str.format template; keys: name, customer_name, order_number, id, email, company. "
            "Cut to the org's Opportunity.Name length (120)."
        ),
    )
    account_name_sources: list[NameSource] = Field(
        default_factory=_default_name_sources,
        min_length=1,
        description="Account.Name candidates in order; last resort 'Shopify customer <id>'.",
    )
    amount_basis: AmountBasis = Field(
        default="current_total_price",
        description="Opportunity.Amount: after edits/refunds (current) or as first placed.",
    )
    skip_test_orders: bool = Field(default=False, description="Do not sync orders with test=true.")
    person_account_record_type: str | None = Field(
        default=None,
        description=(
            "Person Account orgs: the Account record type orders are created with, as an Id "
            "(012…) or a DeveloperName; unset: the org's active person record type (one "
            "RecordType query, cached with the describe)."
        ),
    )
    owned_fields: dict[str, list[str]] = Field(
        default_factory=_default_owned,
        description=(
            "Per object, the fields Shopify owns: sent on every update and repaired by reconcile. "
            "The external-id fields are always owned."
        ),
    )
    create_only_fields: dict[str, list[str]] = Field(
        default_factory=_default_create_only,
        description="Per object, fields sent only on create; Salesforce users own them after.",
    )

    @field_validator("opportunity_name_template")
    @classmethod
    def _template_keys_known(cls, template: str) -> str:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        unknown = names - _TEMPLATE_KEYS
        if unknown:
            raise ValueError(
                f"unknown template keys {sorted(unknown)}; use {sorted(_TEMPLATE_KEYS)}"
            )
        return template

    @model_validator(mode="after")
    def _owned_and_create_only_disjoint(self) -> MappingConfig:
        for sobject, fields in self.create_only_fields.items():
            both = set(fields) & set(self.owned_fields.get(sobject, []))
            if both:
                raise ValueError(f"{sobject} fields both owned and create-only: {sorted(both)}")
        return self

    @property
    def person_contact_external_id_field(self) -> str:
        """The Contact external id as it appears on a Person Account (``__c`` → ``__pc``)."""
        name = self.contact_external_id_field
        return name[:-3] + "__pc" if name.endswith("__c") else name

    def key_field(self, sobject: str) -> str:
        """The external-id field an object is upserted by."""
        return {
            ACCOUNT: self.account_external_id_field,
            CONTACT: self.contact_external_id_field,
            OPPORTUNITY: self.opportunity_external_id_field,
        }[sobject]


# --------------------------------------------------------------------------------------------
# What the org looks like
# --------------------------------------------------------------------------------------------


def _standard_lengths() -> dict[str, dict[str, int]]:
    return {sobject: dict(fields) for sobject, fields in STANDARD_FIELD_LENGTHS.items()}


@dataclass(frozen=True, slots=True)
class OrgSchema:
    """What describe told us about the Salesforce org.

    ``lengths`` maps object → field → maximum length. ``fields`` maps object → the set of field
    names the org has; an object absent from ``fields`` is not filtered (unknown, assume present).
    """

    lengths: Mapping[str, Mapping[str, int]] = field(default_factory=_standard_lengths, hash=False)
    fields: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    person_accounts: bool = False
    multi_currency: bool = False
    # Person Account orgs: the record type a new Account needs to be a person account.
    person_record_type_id: str | None = None

    def length(self, sobject: str, name: str) -> int | None:
        """The maximum length of a field, or ``None`` when unknown or unlimited."""
        return self.lengths.get(sobject, {}).get(name)

    def has_field(self, sobject: str, name: str) -> bool:
        """Whether the org has the field (``True`` when the object was not described)."""
        known = self.fields.get(sobject)
        return known is None or name in known

    @classmethod
    def from_describe(cls, describes: Mapping[str, Mapping[str, Any]]) -> OrgSchema:
        """Build from describe JSON: ``{"Account": {"fields": [{"name", "length", "type"}]}}``.

        Objects not described keep the standard lengths and are not filtered. Person accounts are
        on when Account has ``IsPersonAccount``; multi-currency when any described object has
        ``CurrencyIsoCode``.
        """
        lengths = _standard_lengths()
        fields: dict[str, frozenset[str]] = {}
        for sobject, describe in describes.items():
            entries = [e for e in describe.get("fields", []) if isinstance(e, Mapping)]
            fields[sobject] = frozenset(str(e.get("name")) for e in entries if e.get("name"))
            lengths[sobject] = _describe_lengths(entries)
        return cls(
            lengths=lengths,
            fields=fields,
            person_accounts="IsPersonAccount" in fields.get(ACCOUNT, frozenset()),
            multi_currency=any("CurrencyIsoCode" in names for names in fields.values()),
        )


def _describe_lengths(entries: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    lengths: dict[str, int] = {}
    for entry in entries:
        name, length = entry.get("name"), entry.get("length")
        if name and entry.get("type") in _STRING_TYPES and isinstance(length, int) and length > 0:
            lengths[str(name)] = length
    return lengths


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Truncation:
    """One value that did not fit its Salesforce field.

    ``omitted`` is true when the value was left out instead of cut (e-mail addresses).
    """

    object: str
    field: str
    original_length: int
    limit: int
    omitted: bool = False


@dataclass(frozen=True, slots=True)
class SalesforceRecords:
    """The three record bodies for one order, plus the keys to upsert them by.

    ``contact`` is ``None`` on Person Account orgs, for a guest without an e-mail address, and
    for a buyer with no name, e-mail or phone (redacted customer data).
    ``contact_key`` is ``None`` for a guest: the adapter then adopts an existing Contact whose Email
    is ``contact_lookup_email`` (or creates one). ``contact_lookup_email`` is the normalised e-mail
    whenever a separate Contact is written, so the adapter may also adopt an unkeyed Contact for a
    customer seen for the first time.
    """

    account: dict[str, Any]
    contact: dict[str, Any] | None
    opportunity: dict[str, Any]
    account_key: str
    contact_key: str | None
    order_key: str
    truncations: list[Truncation]
    contact_lookup_email: str | None
    cancelled: bool = False
    dropped_fields: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------------------------


def normalise_email(email: str | None) -> str | None:
    """Trimmed, lower-cased e-mail (no provider-specific rewriting), or ``None`` if blank."""
    if email is None:
        return None
    text = email.strip().lower()
    return text or None


def guest_account_key(order: Order, config: MappingConfig) -> str:
    """The Account key for a guest checkout.

    ``<guest prefix><first 24 hex of sha256(normalised email)>`` so repeat guest orders from one
    address share an Account, the key holds no PII and is URL-safe. Without an e-mail, the phone
    number's digits (at least 6) are hashed the same way (``<guest prefix>tel_<hex>``); without
    either, the order gets its own Account (``<guest prefix>order_<order id>``).
    """
    email = normalise_email(_guest_email(order))
    if email is not None:
        return config.guest_account_key_prefix + _digest(email)
    digits = re.sub(r"[^0-9]", "", _guest_phone(order) or "")
    if len(digits) >= _MIN_PHONE_DIGITS:
        return f"{config.guest_account_key_prefix}tel_{_digest(digits)}"
    return f"{config.guest_account_key_prefix}order_{order.id}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def skip_reason(order: Order, config: MappingConfig) -> str | None:
    """Why an order should not be synced at all under this config, or ``None`` to sync it."""
    if config.skip_test_orders and order.test:
        return "test order (skip_test_orders is on)"
    return None


def _first(*values: str | None) -> str | None:
    return next((v for v in values if v), None)


def _join(*parts: str | None, sep: str = " ") -> str | None:
    text = sep.join(p for p in parts if p)
    return text or None


def _guest_email(order: Order) -> str | None:
    return _first(order.email, order.customer.email if order.customer else None)


def _guest_phone(order: Order) -> str | None:
    billing = order.billing_address
    return _first(order.phone, billing.phone if billing else None)


@dataclass(frozen=True, slots=True)
class _Person:
    """The buyer as the mapping sees them, whichever source each part came from."""

    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    address: Address | None

    @property
    def full_name(self) -> str | None:
        return _join(self.first_name, self.last_name)

    @property
    def required_last_name(self) -> str:
        local = self.email.split("@", 1)[0].strip() if self.email else ""
        return self.last_name or local or "Unknown"


def _name_pair(*sources: Address | None) -> tuple[str | None, str | None]:
    for source in sources:
        if source is not None and (source.first_name or source.last_name):
            return source.first_name, source.last_name
    return None, None


def _buyer(order: Order) -> _Person:
    """Who bought: the customer record first, the order's own contact data as fallback.

    Whose data goes where (README, "Mapping: what goes where"): the Account and Contact describe the
    *customer*. An order's billing address, and the phone on it, may be someone else's (a gift,
    a company card), so it is used only when it is the customer's: the customer has no default
    address and the billing name is the customer's name. A guest has no customer record: the
    billing address is the only identity there is, so it is taken as theirs.
    """
    billing = order.billing_address
    customer = order.customer
    if customer is None:
        first, last = _name_pair(billing)
        return _Person(first, last, order.email, _guest_phone(order), billing)
    if customer.first_name or customer.last_name:
        first, last = customer.first_name, customer.last_name
    else:
        first, last = _name_pair(customer.default_address)
    address = customer.default_address or _if_named(billing, first, last)
    return _Person(
        first_name=first,
        last_name=last,
        email=_first(customer.email, order.email),
        phone=_first(customer.phone, address.phone if address else None, order.phone),
        address=address,
    )


def _if_named(address: Address | None, first: str | None, last: str | None) -> Address | None:
    """``address`` when the name on it is this person's (case and spacing aside), else None."""
    own = _folded_name(first, last)
    if address is None or not own:
        return None
    return address if _folded_name(address.first_name, address.last_name) == own else None


def _folded_name(first: str | None, last: str | None) -> str:
    return " ".join(f"{first or ''} {last or ''}".casefold().split())


def _account_name(order: Order, buyer: _Person, config: MappingConfig) -> str:
    candidates: dict[str, str | None] = {
        "company": buyer.address.company if buyer.address else None,
        "full_name": buyer.full_name,
        "email": buyer.email,
    }
    for source in config.account_name_sources:
        value = candidates[source]
        if value:
            return value
    if order.customer is not None:
        return f"Shopify customer {order.customer.id}"
    return f"Shopify guest {order.name or order.id}"


def _billing(address: Address | None) -> dict[str, Any]:
    if address is None:
        return {}
    return {
        "BillingStreet": _join(address.address1, address.address2, sep="\n"),
        "BillingCity": address.city,
        "BillingState": address.province,
        "BillingPostalCode": address.zip,
        "BillingCountry": address.country,
    }


def _close_date(order: Order, config: MappingConfig, shop_timezone: str) -> date:
    try:
        zone = ZoneInfo(shop_timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown shop timezone {shop_timezone!r}", code="BAD_SHOP_TIMEZONE"
        ) from exc
    try:
        local_day = order.created_at.astimezone(zone).date()
        return local_day + timedelta(days=config.close_date_offset_days)
    except OverflowError:
        raise InvalidOrder(
            f"order {order.id}: created_at {order.created_at.isoformat()} gives no valid CloseDate",
            code="BAD_CLOSE_DATE",
        ) from None


def _opportunity_name(order: Order, buyer: _Person, config: MappingConfig) -> str:
    values = {
        "name": order.name or (f"#{order.order_number}" if order.order_number else order.id),
        "customer_name": buyer.full_name or buyer.email or _anonymous(order),
        "order_number": "" if order.order_number is None else str(order.order_number),
        "id": order.id,
        "email": buyer.email or "",
        "company": (buyer.address.company if buyer.address else None) or "",
    }
    text = config.opportunity_name_template.format(**values).strip()
    return text or f"Shopify Order {order.id}"


def _anonymous(order: Order) -> str:
    """How a buyer without name or e-mail is called: by customer id, else a guest."""
    return f"customer {order.customer.id}" if order.customer is not None else "guest"


def _amount(order: Order, config: MappingConfig) -> Decimal:
    if config.amount_basis == "total_price":
        return order.total_price
    return order.current_total_price


# --------------------------------------------------------------------------------------------
# Record assembly
# --------------------------------------------------------------------------------------------


def _account_body(
    order: Order, buyer: _Person, config: MappingConfig, org: OrgSchema
) -> dict[str, Any]:
    body: dict[str, Any]
    if org.person_accounts:
        # Without the person record type Salesforce takes the Account for a business account
        # and refuses the person fields ("Business Account may not use Person Account field").
        body = {
            "RecordTypeId": org.person_record_type_id,
            "FirstName": buyer.first_name,
            "LastName": buyer.required_last_name,
            "PersonEmail": buyer.email,
        }
        if order.customer is not None:
            body[config.person_contact_external_id_field] = order.customer.id
    else:
        body = {"Name": _account_name(order, buyer, config)}
    body.update(_billing(buyer.address))
    body["Phone"] = _first(buyer.address.phone if buyer.address else None, buyer.phone)
    return body


def _contact_body(order: Order, buyer: _Person, config: MappingConfig) -> dict[str, Any]:
    body: dict[str, Any] = {
        "FirstName": buyer.first_name,
        "LastName": buyer.required_last_name,
        "Email": buyer.email,
        "Phone": buyer.phone,
    }
    if order.customer is not None:
        body[config.contact_external_id_field] = order.customer.id
    return body


def _opportunity_body(
    order: Order, buyer: _Person, config: MappingConfig, org: OrgSchema, shop_timezone: str
) -> dict[str, Any]:
    stage = config.stage_when_cancelled if order.is_cancelled else config.stage_on_create
    body: dict[str, Any] = {
        "Name": _opportunity_name(order, buyer, config),
        "StageName": stage,
        "CloseDate": _close_date(order, config, shop_timezone).isoformat(),
        "Amount": _amount(order, config),
    }
    if org.multi_currency:
        body["CurrencyIsoCode"] = order.currency
    return body


class _Fitter:
    """Cleans, length-checks and filters one record body, collecting what it had to change."""

    def __init__(self, org: OrgSchema, keys: frozenset[tuple[str, str]]) -> None:
        self.org = org
        self.keys = keys  # (sobject, field) of external ids: never cut, never dropped
        self.truncations: list[Truncation] = []
        self.dropped: list[str] = []

    def fit(self, sobject: str, body: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, raw in body.items():
            value = _clean(raw)
            if value is None or value == "":
                continue
            if not self.org.has_field(sobject, name):
                if (sobject, name) in self.keys:
                    raise ConfigError(
                        f"the org has no {sobject}.{name} external-id field",
                        code="MISSING_EXTERNAL_ID_FIELD",
                        fields=[name],
                    )
                self.dropped.append(f"{sobject}.{name}")
                continue
            fitted = self._fit_value(sobject, name, value)
            if fitted is not None:
                out[name] = fitted
        return out

    def _fit_value(self, sobject: str, name: str, value: Any) -> Any:
        if (sobject, name) in _EMAIL_FIELDS and not _EMAIL.fullmatch(str(value)):
            self.dropped.append(f"{sobject}.{name}")  # not an address: Salesforce would reject it
            return None
        limit = self.org.length(sobject, name)
        if not isinstance(value, str) or limit is None or _sf_length(value) <= limit:
            return value
        if (sobject, name) in self.keys:
            raise ConfigError(
                f"{sobject}.{name} is {limit} characters long; key {value!r} does not fit",
                code="EXTERNAL_ID_TOO_SHORT",
                fields=[name],
            )
        omit = (sobject, name) in _EMAIL_FIELDS
        cut = "" if omit else _cut(value, limit)
        self.truncations.append(Truncation(sobject, name, _sf_length(value), limit, not cut))
        return cut or None


def _clean(value: Any) -> Any:
    """Strings without control characters or lone surrogates, stripped; other values as-is."""
    if not isinstance(value, str):
        return value
    return _CONTROL.sub("", value).strip()


def _sf_length(text: str) -> int:
    """Length as Salesforce counts it (UTF-16 code units; astral characters count twice)."""
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, limit: int) -> str:
    """The longest prefix of whole characters within ``limit`` UTF-16 units, right-stripped."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return text[:index].rstrip()
    return text


def map_order(
    order: Order, config: MappingConfig, org: OrgSchema, shop_timezone: str
) -> SalesforceRecords:
    """Map one order to Account, Contact and Opportunity bodies (see the module docstring).

    ``shop_timezone`` is the shop's IANA timezone (``Shop.ianaTimezone``); it only decides the
    calendar day of ``CloseDate``. Raises :class:`~tasks.errors.ConfigError` for an unknown
    timezone or an external-id field the org lacks or that is too short for its key, and
    :class:`~tasks.errors.InvalidOrder` when the CloseDate would fall outside the calendar.
    """
    buyer = _buyer(order)
    account_key = (
        f"{config.account_key_prefix}{order.customer.id}"
        if order.customer is not None
        else guest_account_key(order, config)
    )
    fitter = _Fitter(org, _key_fields(config))
    account = fitter.fit(
        ACCOUNT,
        {**_account_body(order, buyer, config, org), config.account_external_id_field: account_key},
    )
    contact, contact_key, lookup = _contact(order, buyer, config, org, fitter)
    opportunity = fitter.fit(
        OPPORTUNITY,
        {
            **_opportunity_body(order, buyer, config, org, shop_timezone),
            config.opportunity_external_id_field: order.id,
        },
    )
    return SalesforceRecords(
        account=account,
        contact=contact,
        opportunity=opportunity,
        account_key=account_key,
        contact_key=contact_key,
        order_key=order.id,
        truncations=fitter.truncations,
        contact_lookup_email=lookup,
        cancelled=order.is_cancelled,
        dropped_fields=fitter.dropped,
    )


def _key_fields(config: MappingConfig) -> frozenset[tuple[str, str]]:
    keys = {(s, config.key_field(s)) for s in (ACCOUNT, CONTACT, OPPORTUNITY)}
    keys.add((ACCOUNT, config.person_contact_external_id_field))
    return frozenset(keys)


def _contact(
    order: Order, buyer: _Person, config: MappingConfig, org: OrgSchema, fitter: _Fitter
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """The Contact body, its key and its adoption e-mail (all ``None`` when none is written)."""
    if org.person_accounts:
        return None, None, None
    if order.customer is None and normalise_email(buyer.email) is None:
        return None, None, None
    if not (buyer.full_name or normalise_email(buyer.email) or buyer.phone):
        return None, None, None  # nobody to name: protected customer data redacted (see above)
    body = fitter.fit(CONTACT, _contact_body(order, buyer, config))
    key = order.customer.id if order.customer is not None else None
    lookup = normalise_email(body.get("Email"))
    if key is None and lookup is None:  # guest whose e-mail did not fit: nothing to match on
        return None, None, None
    return body, key, lookup


# --------------------------------------------------------------------------------------------
# Create vs update, keys, JSON
# --------------------------------------------------------------------------------------------


def _owned_names(sobject: str, config: MappingConfig, *, cancelled: bool) -> set[str]:
    names = set(config.owned_fields.get(sobject, []))
    names.add(config.key_field(sobject))
    if sobject == ACCOUNT:
        names.add(config.person_contact_external_id_field)
    if sobject == OPPORTUNITY and cancelled and config.cancellation_updates_stage:
        names.add("StageName")
    return names


def update_body(
    sobject: str, record: Mapping[str, Any], config: MappingConfig, *, cancelled: bool = False
) -> dict[str, Any]:
    """Only the fields an update of an existing record may overwrite.

    Owned fields plus the external id; for a cancelled order (and ``cancellation_updates_stage``)
    also Opportunity.StageName. Create-only fields (StageName, CloseDate, OwnerId, ContactId …)
    never pass.
    """
    create_only = set(config.create_only_fields.get(sobject, []))
    create_only |= _ALWAYS_CREATE_ONLY.get(sobject, frozenset())
    owned = _owned_names(sobject, config, cancelled=cancelled)
    if cancelled and config.cancellation_updates_stage and sobject == OPPORTUNITY:
        create_only.discard("StageName")
    return {k: v for k, v in record.items() if k in owned and k not in create_only}


def create_body(
    sobject: str, record: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The full body for creating a record, with adapter-supplied extras (AccountId, ContactId…).

    Extras with ``None`` values are left out, like everything else the mapping produces.
    """
    body = dict(record)
    body.update({k: v for k, v in (extra or {}).items() if v is not None})
    return body


def owned_fields(records: SalesforceRecords, config: MappingConfig) -> dict[str, dict[str, Any]]:
    """Per object, only the owned fields of ``records`` (what an update after create may send).

    Keys are ``"Account"``, ``"Opportunity"`` and, when a Contact is written, ``"Contact"``.
    Reconcile compares and repairs exactly these.
    """
    result = {
        ACCOUNT: update_body(ACCOUNT, records.account, config, cancelled=records.cancelled),
        OPPORTUNITY: update_body(
            OPPORTUNITY, records.opportunity, config, cancelled=records.cancelled
        ),
    }
    if records.contact is not None:
        result[CONTACT] = update_body(CONTACT, records.contact, config)
    return result


def split_key(
    sobject: str, record: Mapping[str, Any], config: MappingConfig
) -> tuple[str, str | None, dict[str, Any]]:
    """``(key field, key value, body without the key)`` for ``PATCH /sobjects/{o}/{field}/{value}``.

    Salesforce rejects a single-record upsert whose body repeats the external id.
    """
    key_field = config.key_field(sobject)
    body = {k: v for k, v in record.items() if k != key_field}
    value = record.get(key_field)
    return key_field, None if value is None else str(value), body


def jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe for ``json.dumps``: Decimal → fixed-point string, date → ISO string.

    Use it for Bulk API CSV cells, or for JSON where a numeric string is acceptable; for an exact
    JSON *number* use :func:`dumps_json`.
    """
    out: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, Decimal):
            out[name] = format(value, "f")
        elif isinstance(value, date):
            out[name] = value.isoformat()
        else:
            out[name] = value
    return out


def dumps_json(value: Any) -> str:
    """JSON text in which every Decimal is an exact JSON number (``598.94``), never a float.

    Mappings, lists and tuples are walked; dates become ISO strings; everything else goes through
    :func:`json.dumps`. Non-finite Decimals raise ``ValueError``.
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return format(value, "f")
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k))}:{dumps_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps_json(v) for v in value) + "]"
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    return json.dumps(value)
