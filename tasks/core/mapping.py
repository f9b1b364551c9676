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
import re
from collections.abc import Mapping
from typing import Any

from tasks.core.buyer import Placeholder
from tasks.core.errors import ConfigError
from tasks.core.mapping_config import STANDARD_FIELD_LENGTHS, MappingConfig, OrgSchema
from tasks.core.mapping_table import (
    ACCOUNT,
    CONTACT,
    OBJECTS,
    OPPORTUNITY,
    MappingInput,
    build_body,
    buyer_of,
    email_fields,
    first,
    guest_phone,
)
from tasks.core.orders import Order
from tasks.core.records import (
    SalesforceRecords,
    Truncation,
    create_body,
    dumps_json,
    has_placeholder,
    jsonable,
    owned_fields,
    placeholder_parents,
    split_key,
    update_body,
    without_placeholders,
)

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
    "has_placeholder",
    "jsonable",
    "map_order",
    "normalise_email",
    "owned_fields",
    "placeholder_parents",
    "skip_reason",
    "split_key",
    "update_body",
    "without_placeholders",
]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|[\ud800-\udfff]")
_MIN_PHONE_DIGITS = 6
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

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
        cut = "" if omit else _keep_kind(value, _cut(value, limit))
        self.truncations.append(Truncation(sobject, name, _sf_length(value), limit, not cut))
        return cut or None


def _clean(value: Any) -> Any:
    """Strings without control characters or lone surrogates, stripped; other values as-is
    (a :class:`Placeholder` stays one)."""
    if not isinstance(value, str):
        return value
    return _keep_kind(value, _CONTROL.sub("", value).strip())


def _keep_kind(original: str, text: str) -> str:
    return Placeholder(text) if isinstance(original, Placeholder) and text else text


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
        customer_id=order.customer.id if order.customer is not None else None,
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
