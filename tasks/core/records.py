"""What the mapping produces, and the bodies a write sends: create vs update, keys, JSON.

:class:`SalesforceRecords` is one order mapped (:func:`tasks.core.mapping.map_order`): three full
*create* bodies and their keys. :func:`update_body` / :func:`owned_fields` keep what an update of
an existing record may send (owned fields, never create-only ones, never a placeholder standing
in for redacted data). :func:`dumps_json` / :func:`jsonable` serialise Decimal money exactly.
Pure; :mod:`tasks.core.mapping` re-exports all of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from tasks.core.buyer import Placeholder
from tasks.core.mapping_config import MappingConfig
from tasks.core.mapping_table import ACCOUNT, CONTACT, OPPORTUNITY

__all__ = [
    "SalesforceRecords",
    "Truncation",
    "create_body",
    "dumps_json",
    "has_placeholder",
    "jsonable",
    "owned_fields",
    "placeholder_parents",
    "split_key",
    "update_body",
    "without_placeholders",
]

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
    # The Shopify customer's id (None for a guest): the customer cache's key, whether or not a
    # Contact is written (a redacted order of a known customer finds the customer's Account).
    customer_id: str | None = None


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
    never pass, nor does a placeholder standing in for redacted buyer data.
    """
    create_only = config.create_only(sobject)
    owned = _owned_names(sobject, config, cancelled=cancelled)
    if cancelled and config.cancellation_updates_stage and sobject == OPPORTUNITY:
        create_only.discard("StageName")
    return without_placeholders(
        {k: v for k, v in record.items() if k in owned and k not in create_only}
    )


def without_placeholders(record: Mapping[str, Any]) -> dict[str, Any]:
    """The body for a record known to exist: without the values standing in for redacted
    buyer data (:class:`~tasks.core.buyer.Placeholder`), which are create-only."""
    return {k: v for k, v in record.items() if not isinstance(v, Placeholder)}


def has_placeholder(record: Mapping[str, Any] | None) -> bool:
    """Whether a body carries a value standing in for redacted buyer data."""
    return record is not None and any(isinstance(v, Placeholder) for v in record.values())


def placeholder_parents(
    records: SalesforceRecords, cached: tuple[str | None, str | None] | None
) -> list[tuple[str, str]]:
    """``(object, external id)`` of the order's Account and keyed Contact whose body carries a
    placeholder and whose existence the customer cache does not vouch for (``cached``: the
    customer's (Account id, Contact id), None when unknown).

    Whether Salesforce has them decides the write: an existing one gets the body without its
    placeholders (create-only), a new one the whole body. A record without a placeholder, or
    one the cache knows, needs no such question (and costs no call).
    """
    found: list[tuple[str, str]] = []
    if has_placeholder(records.account) and not (cached is not None and cached[0]):
        found.append((ACCOUNT, records.account_key))
    contact_known = cached is not None and bool(cached[1])
    if records.contact_key is not None and has_placeholder(records.contact) and not contact_known:
        found.append((CONTACT, records.contact_key))
    return found


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
