"""The mapping's configuration and the org's shape: :class:`MappingConfig`, :class:`OrgSchema`.

``MappingConfig`` is how Shopify orders become Salesforce records (``SHOPSYNC_MAPPING__*``; the
defaults are the design's blueprint, the owned and create-only lists come from the tables in
:mod:`tasks.core.mapping_table`). ``OrgSchema`` is what describe told about the org: field
lengths, which fields exist, person accounts, multi-currency. Both are immutable and pure;
:mod:`tasks.core.mapping` re-exports them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.core.mapping_table import (
    ACCOUNT,
    CONTACT,
    OBJECTS,
    OPPORTUNITY,
    TABLES,
    default_ownership,
    source_kind,
    standard_lengths,
)

__all__ = ["STANDARD_FIELD_LENGTHS", "AmountBasis", "MappingConfig", "NameSource", "OrgSchema"]

NameSource = Literal["company", "full_name", "email"]
AmountBasis = Literal["current_total_price", "total_price"]

_TEMPLATE_KEYS = frozenset({"name", "customer_name", "order_number", "id", "email", "company"})

STANDARD_FIELD_LENGTHS: Mapping[str, Mapping[str, int]] = standard_lengths()
"""Standard Salesforce field lengths (Object Reference v67) from the mapping tables, used when
describe is not known."""

_STRING_TYPES = frozenset(
    {"string", "textarea", "email", "phone", "url", "picklist", "combobox", "encryptedstring"}
)
_ALWAYS_CREATE_ONLY: Mapping[str, frozenset[str]] = {OPPORTUNITY: frozenset({"ContactId"})}
"""Create-only in Salesforce itself, whatever the config says (Opportunity.ContactId, API 46+)."""
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
