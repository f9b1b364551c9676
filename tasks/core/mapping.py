"""Pure mapping from one Shopify :class:`~tasks.core.orders.Order` to Salesforce record bodies.

``map_order`` turns an order into three plain dicts (Account, Contact, Opportunity) plus the
external-id keys to upsert them by. It knows nothing about HTTP: the Salesforce adapter decides
how to send them (one ``/composite`` call, sObject Collections or Bulk API 2.0). *Which* fields
each body has, where their values come from, which are owned and their standard lengths is
declared once, in :mod:`tasks.core.mapping_table`; this module applies the rules below to it.

Rules the adapter can rely on:

- **Absent means "leave Salesforce alone".** A field whose value is ``None`` or an empty string is
  *omitted* from the dict, never sent as ``null``: a missing phone in Shopify never clears the
  phone a salesperson typed into Salesforce. (The flip side: clearing a value in Shopify is not
  propagated.)
- **Lengths.** Every string is cut to the org's field length (counted in UTF-16 code units, as
  Salesforce counts) and every cut is reported as a :class:`Truncation`. An e-mail address that is
  too long is *omitted* instead (a cut address is a different, possibly someone else's, address);
  that is reported as a :class:`Truncation` with ``omitted=True``. External-id keys are never cut:
  a key that does not fit raises :class:`~tasks.core.errors.ConfigError`.
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
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.core.errors import ConfigError
from tasks.core.mapping_table import (
    ACCOUNT,
    CONTACT,
    OBJECTS,
    OPPORTUNITY,
    TABLES,
    MappingInput,
    build_body,
    buyer_of,
    default_ownership,
    email_fields,
    first,
    guest_phone,
    source_kind,
    standard_lengths,
)
from tasks.core.orders import Order

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

NameSource = Literal["company", "full_name", "email"]
AmountBasis = Literal["current_total_price", "total_price"]

_TEMPLATE_KEYS = frozenset({"name", "customer_name", "order_number", "id", "email", "company"})

STANDARD_FIELD_LENGTHS: Mapping[str, Mapping[str, int]] = standard_lengths()
"""Standard Salesforce field lengths (Object Reference v67) from the mapping tables, used when
describe is not known."""

_STRING_TYPES = frozenset(
    {"string", "textarea", "email", "phone", "url", "picklist", "combobox", "encryptedstring"}
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|[\ud800-\udfff]")
_ALWAYS_CREATE_ONLY: Mapping[str, frozenset[str]] = {OPPORTUNITY: frozenset({"ContactId"})}
"""Create-only in Salesforce itself, whatever the config says (Opportunity.ContactId, API 46+)."""
_MIN_PHONE_DIGITS = 6
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")
_EXTRA_SETTING = {
    ACCOUNT: "SHOPSYNC_MAPPING__ACCOUNT_FIELDS",
    CONTACT: "SHOPSYNC_MAPPING__CONTACT_FIELDS",
    OPPORTUNITY: "SHOPSYNC_MAPPING__OPPORTUNITY_FIELDS",
}


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def _default_name_sources() -> list[NameSource]:
    return ["company", "full_name", "email"]


def _default_owned() -> dict[str, list[str]]:
    return default_ownership()[0]


def _default_create_only() -> dict[str, list[str]]:
    return default_ownership()[1]


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
    account_fields: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Account fields to add to the mapping: Salesforce field → source (a named source "
            "such as amount, or order.<attribute> / buyer.<attribute>); owned unless listed in "
            "create_only_fields."
        ),
    )
    contact_fields: dict[str, str] = Field(
        default_factory=dict,
        description="Contact fields to add to the mapping (as account_fields).",
    )
    opportunity_fields: dict[str, str] = Field(
        default_factory=dict,
        description="Opportunity fields to add to the mapping (as account_fields).",
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
    def _added_fields_valid(self) -> MappingConfig:
        for sobject in OBJECTS:
            mapped = {rule.field for rule in TABLES[sobject]}
            for name, source in self.extra_fields(sobject).items():
                where = f"{_EXTRA_SETTING[sobject]}: {name}"
                if not _API_NAME.fullmatch(name):
                    raise ValueError(f"{where}: not a Salesforce field API name")
                if name in mapped or name == self.key_field(sobject):
                    raise ValueError(
                        f"{where} is already mapped; change its ownership with "
                        "owned_fields / create_only_fields instead"
                    )
                try:
                    source_kind(source)
                except ValueError as exc:
                    raise ValueError(f"{where}: {exc}") from None
        return self

    @model_validator(mode="after")
    def _owned_and_create_only_disjoint(self) -> MappingConfig:
        for sobject, fields in self.create_only_fields.items():
            both = set(fields) & set(self.owned_fields.get(sobject, []))
            if both:
                raise ValueError(f"{sobject} fields both owned and create-only: {sorted(both)}")
        return self

    def extra_fields(self, sobject: str) -> dict[str, str]:
        """The fields added to one object by configuration: Salesforce field → source."""
        return {
            ACCOUNT: self.account_fields,
            CONTACT: self.contact_fields,
            OPPORTUNITY: self.opportunity_fields,
        }[sobject]

    def create_only(self, sobject: str) -> set[str]:
        """Fields of one object sent only on create (configured, plus Salesforce's own)."""
        names = set(self.create_only_fields.get(sobject, []))
        return names | _ALWAYS_CREATE_ONLY.get(sobject, frozenset())

    def owned(self, sobject: str) -> set[str]:
        """Fields of one object Shopify owns: the configured list plus the added fields, minus
        the create-only ones (external ids aside)."""
        names = set(self.owned_fields.get(sobject, [])) | set(self.extra_fields(sobject))
        return names - self.create_only(sobject)

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
    return standard_lengths()


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
    digits = re.sub(r"[^0-9]", "", guest_phone(order) or "")
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


def _guest_email(order: Order) -> str | None:
    return first(order.email, order.customer.email if order.customer else None)


class _Fitter:
    """Cleans, length-checks and filters one record body, collecting what it had to change."""

    def __init__(
        self, org: OrgSchema, keys: frozenset[tuple[str, str]], emails: frozenset[tuple[str, str]]
    ) -> None:
        self.org = org
        self.keys = keys  # (sobject, field) of external ids: never cut, never dropped
        self.emails = emails  # (sobject, field) holding an e-mail: checked, never cut
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
        if (sobject, name) in self.emails and not _EMAIL.fullmatch(str(value)):
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
        omit = (sobject, name) in self.emails
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

    The bodies are built from the mapping tables (:mod:`tasks.core.mapping_table`, plus the fields
    added by configuration), then cleaned, length-checked and filtered by the org. The external
    ids are added here. ``shop_timezone`` is the shop's IANA timezone (``Shop.ianaTimezone``); it
    only decides the calendar day of ``CloseDate``. Raises
    :class:`~tasks.core.errors.ConfigError` for an unknown timezone or an external-id field the org
    lacks or that is too short for its key, and :class:`~tasks.core.errors.InvalidOrder` when the
    CloseDate would fall outside the calendar.
    """
    src = MappingInput(order, buyer_of(order), config, org, shop_timezone)
    account_key = (
        f"{config.account_key_prefix}{order.customer.id}"
        if order.customer is not None
        else guest_account_key(order, config)
    )
    fitter = _Fitter(org, _key_fields(config), email_fields(config, org))
    account = build_body(ACCOUNT, src)
    if org.person_accounts and order.customer is not None:
        account[config.person_contact_external_id_field] = order.customer.id
    account = fitter.fit(ACCOUNT, {**account, config.account_external_id_field: account_key})
    contact, contact_key, lookup = _contact(src, fitter)
    opportunity = fitter.fit(
        OPPORTUNITY,
        {**build_body(OPPORTUNITY, src), config.opportunity_external_id_field: order.id},
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
    keys = {(s, config.key_field(s)) for s in OBJECTS}
    keys.add((ACCOUNT, config.person_contact_external_id_field))
    return frozenset(keys)


def _contact(
    src: MappingInput, fitter: _Fitter
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """The Contact body, its key and its adoption e-mail (all ``None`` when none is written)."""
    order, buyer, config = src.order, src.buyer, src.config
    if src.org.person_accounts:
        return None, None, None
    if order.customer is None and normalise_email(buyer.email) is None:
        return None, None, None
    if not (buyer.full_name or normalise_email(buyer.email) or buyer.phone):
        return None, None, None  # nobody to name: protected customer data redacted (see above)
    body = build_body(CONTACT, src)
    if order.customer is not None:
        body[config.contact_external_id_field] = order.customer.id
    body = fitter.fit(CONTACT, body)
    key = order.customer.id if order.customer is not None else None
    lookup = normalise_email(body.get("Email"))
    if key is None and lookup is None:  # guest whose e-mail did not fit: nothing to match on
        return None, None, None
    return body, key, lookup


# --------------------------------------------------------------------------------------------
# Create vs update, keys, JSON
# --------------------------------------------------------------------------------------------


def _owned_names(sobject: str, config: MappingConfig, *, cancelled: bool) -> set[str]:
    names = config.owned(sobject)
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
    create_only = config.create_only(sobject)
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
