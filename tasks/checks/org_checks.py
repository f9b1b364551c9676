"""Preflight checks of the Salesforce org: pure functions over what describe and the org's
setup records (Person Account record types, duplicate rules) said. ``tasks.checks.doctor``
gathers the answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.core.errors import SyncError
from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY, MappingConfig
from tasks.salesforce.org import (
    choose_person_record_type,
    person_record_type_problem,
)
from tasks.salesforce.port import SalesforcePort


@dataclass(frozen=True, slots=True)
class Check:
    """One preflight finding."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    severity: str = "error"  # error | warning | info


def external_id_checks(
    describes: Mapping[str, Mapping[str, Any]], mapping: MappingConfig
) -> list[Check]:
    """Each external-id field exists, is External ID, and Unique (DESIGN §3)."""
    checks = []
    for sobject in (ACCOUNT, CONTACT, OPPORTUNITY):
        name = mapping.key_field(sobject)
        fields = {f.get("name"): f for f in describes.get(sobject, {}).get("fields", [])}
        field = fields.get(name)
        label = f"{sobject}.{name}"
        if field is None:
            checks.append(
                Check(
                    label,
                    False,
                    "field is missing",
                    f"Create {label} as Text(255), External ID, Unique, case-sensitive.",
                )
            )
        elif not field.get("externalId"):
            checks.append(
                Check(
                    label,
                    False,
                    "field is not marked External ID",
                    f"Edit {label}: tick 'External ID' (and 'Unique').",
                )
            )
        elif not field.get("unique"):
            checks.append(
                Check(
                    label,
                    False,
                    "field is External ID but not Unique: concurrent creates "
                    "can make duplicates and upserts then fail with 300",
                    f"Edit {label}: tick 'Unique' (merge any duplicates first).",
                )
            )
        else:
            checks.append(Check(label, True, "External ID, Unique"))
    return checks


def stage_checks(opportunity: Mapping[str, Any], mapping: MappingConfig) -> list[Check]:
    """The stages the mapping writes exist (and are active) in the StageName picklist."""
    fields = opportunity.get("fields", [])
    stage: Mapping[str, Any] = next((f for f in fields if f.get("name") == "StageName"), {})
    active = {p.get("value") for p in stage.get("picklistValues", []) if p.get("active", True)}
    checks = []
    for value in dict.fromkeys([mapping.stage_on_create, mapping.stage_when_cancelled]):
        ok = value in active
        checks.append(
            Check(
                f"Opportunity stage '{value}'",
                ok,
                "present in the StageName picklist" if ok else "missing from the picklist",
                ""
                if ok
                else (
                    f"Add '{value}' to Setup → Opportunity Stages, or set "
                    "SHOPSYNC_MAPPING__STAGE_ON_CREATE / _STAGE_WHEN_CANCELLED to stages you use."
                ),
            )
        )
    return checks


def added_field_checks(
    describes: Mapping[str, Mapping[str, Any]], mapping: MappingConfig
) -> list[Check]:
    """Each field added by configuration (``SHOPSYNC_MAPPING__<OBJECT>_FIELDS``) exists in the
    org and the integration user may write it (on update too, when it is owned)."""
    checks = []
    for sobject in (ACCOUNT, CONTACT, OPPORTUNITY):
        fields = {f.get("name"): f for f in describes.get(sobject, {}).get("fields", [])}
        owned = mapping.owned(sobject)
        for name, source in mapping.extra_fields(sobject).items():
            label = f"{sobject}.{name}"
            field = fields.get(name)
            if field is None:
                problem = "field is missing (or the integration user cannot see it)"
                fix = f"Create {label}, or give the integration user field-level access to it."
            elif not field.get("createable", True) or (
                name in owned and not field.get("updateable", True)
            ):
                problem = "the integration user cannot write it"
                fix = f"Grant the integration user edit access to {label} (field-level security)."
            else:
                checks.append(Check(label, True, f"mapped from {source}"))
                continue
            checks.append(Check(label, False, f"{problem}; it is never written", fix))
    return checks


def org_feature_checks(describes: Mapping[str, Mapping[str, Any]]) -> list[Check]:
    """Person Accounts and multi-currency, detected (informational)."""
    account = {f.get("name") for f in describes.get(ACCOUNT, {}).get("fields", [])}
    opportunity = {f.get("name") for f in describes.get(OPPORTUNITY, {}).get("fields", [])}
    person = "IsPersonAccount" in account
    currency = "CurrencyIsoCode" in opportunity
    return [
        Check(
            "Person Accounts",
            True,
            "enabled: orders become person accounts"
            if person
            else "not enabled: orders become Account + Contact",
            severity="info",
        ),
        Check(
            "Multi-currency",
            True,
            "enabled: CurrencyIsoCode is set from the shop currency"
            if currency
            else "not enabled: amounts are in the org currency",
            severity="info",
        ),
    ]


def person_account_checks(
    record_types: Sequence[Mapping[str, Any]], mapping: MappingConfig
) -> list[Check]:
    """On a Person Account org: the record type new Accounts are created with exists."""
    configured = mapping.person_account_record_type
    chosen = choose_person_record_type(record_types, configured)
    if chosen is None:
        return [
            Check(
                "Person Account record type",
                False,
                person_record_type_problem(record_types, configured),
                "Activate a Person Account record type for the integration user's profile, or "
                "set SHOPSYNC_MAPPING__PERSON_ACCOUNT_RECORD_TYPE to one of the active ones.",
            )
        ]
    name = next(
        (r.get("DeveloperName") for r in record_types if str(r.get("Id")) == chosen), chosen
    )
    how = "configured" if configured else "found by RecordType query"
    return [Check("Person Account record type", True, f"{name} ({chosen}), {how}")]


def duplicate_rule_checks(rules: Sequence[Mapping[str, Any]], allow_save: bool) -> list[Check]:
    """Active duplicate rules on the three objects: they can reject the sync's saves."""
    if not rules:
        return [
            Check(
                "Duplicate rules",
                True,
                "none active on Account, Contact, Opportunity",
                severity="info",
            )
        ]
    names = ", ".join(f"{r.get('SobjectType')}: {r.get('DeveloperName')}" for r in rules)
    if allow_save:
        detail = (
            f"active: {names}; writes send allowSave=true, so alert rules let orders through, "
            "but a rule whose action is Block rejects them (DUPLICATES_DETECTED dead letters)"
        )
        fix = (
            "Set those rules' action to Allow with an alert, or exclude the integration user "
            "in the rule's conditions."
        )
    else:
        detail = (
            f"active: {names}; SHOPSYNC_SALESFORCE_DUPLICATE_RULE_ALLOW_SAVE=false, so any "
            "match rejects the order (DUPLICATES_DETECTED dead letters)"
        )
        fix = (
            "Set SHOPSYNC_SALESFORCE_DUPLICATE_RULE_ALLOW_SAVE=true, or exclude the "
            "integration user in the rules' conditions."
        )
    return [Check("Duplicate rules", False, detail, fix, severity="warning")]


def duplicate_rules_check(salesforce: SalesforcePort, allow_save: bool) -> list[Check]:
    try:
        rules = salesforce.duplicate_rules()
    except SyncError as exc:  # DuplicateRule needs "View Setup and Configuration"
        return [
            Check(
                "Duplicate rules",
                False,
                f"could not list them: {exc}",
                "Give the integration user View Setup and Configuration, or check the rules "
                "on Account, Contact and Opportunity by hand (Setup → Duplicate Rules).",
                severity="warning",
            )
        ]
    return duplicate_rule_checks(rules, allow_save)
