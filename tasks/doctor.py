"""Preflight: is the Salesforce org and the Shopify app set up the way the sync needs?

The checks are pure functions over what describe, the token endpoint and the Admin API said;
``run_doctor`` gathers those answers and never raises: every failure becomes a check result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.errors import SyncError
from tasks.mapping import ACCOUNT, CONTACT, OPPORTUNITY, MappingConfig, OrgSchema
from tasks.org import (
    PERSON_RECORD_TYPES_SOQL,
    choose_person_record_type,
    person_record_type_problem,
)

REQUIRED_SCOPES = ("read_orders", "read_customers", "read_all_orders")
WEBHOOK_TOPICS = ("orders/create", "orders/updated", "orders/cancelled", "refunds/create")

SUBSCRIPTIONS_QUERY = """
query Subscriptions {
  webhookSubscriptions(first: 100) {
    nodes { topic endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } }
  }
}
"""


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
    stage = next((f for f in opportunity.get("fields", []) if f.get("name") == "StageName"), {})
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


DUPLICATE_RULES_SOQL = (
    "SELECT DeveloperName, MasterLabel, SobjectType FROM DuplicateRule "
    "WHERE IsActive = true AND SobjectType IN ('Account', 'Contact', 'Opportunity') "
    "ORDER BY SobjectType, DeveloperName"
)


def duplicate_rule_checks(rules: Sequence[Mapping[str, Any]], allow_save: bool) -> list[Check]:
    """Active duplicate rules on the three objects: they can reject the sync's saves."""
    if not rules:
        return [Check("Duplicate rules", True, "none active on Account, Contact, Opportunity",
                      severity="info")]
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


def _duplicate_rules(salesforce: Any, allow_save: bool) -> list[Check]:
    try:
        rules = salesforce.query(DUPLICATE_RULES_SOQL)
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


def scope_checks(scopes: Iterable[str]) -> list[Check]:
    """The app has the scopes the sync reads with."""
    granted = set(scopes)
    checks = []
    for scope in REQUIRED_SCOPES:
        ok = scope in granted
        fix = "" if ok else f"Grant the app the {scope} scope and reinstall it on the shop."
        if scope == "read_all_orders" and not ok:
            fix += " Without it, orders older than 60 days are invisible to reconciliation."
        checks.append(Check(f"Shopify scope {scope}", ok, "granted" if ok else "missing", fix))
    return checks


def subscription_checks(nodes: Iterable[Mapping[str, Any]], topics: Iterable[str]) -> list[Check]:
    """A webhook subscription exists for each topic the fast path needs."""
    present = {str(n.get("topic", "")).lower().replace("_", "/", 1) for n in nodes}
    checks = []
    for topic in topics:
        ok = topic in present
        checks.append(
            Check(
                f"Webhook {topic}",
                ok,
                "subscribed" if ok else "no subscription",
                ""
                if ok
                else (
                    f"Subscribe {topic} to https://<your host>/webhooks/shopify "
                    "(Shopify admin → Settings → Notifications → Webhooks, or the app's TOML)."
                ),
                severity="error" if ok or topic != "refunds/create" else "warning",
            )
        )
    return checks


def guarded(name: str, probe: Callable[[], list[Check]]) -> list[Check]:
    """Run a probe; a failure to ask is itself a failed check, never a traceback."""
    try:
        return probe()
    except SyncError as exc:
        return [Check(name, False, str(exc), _fix_for(exc))]


def _fix_for(exc: SyncError) -> str:
    if exc.code in {"invalid_client", "invalid_grant", "invalid_client_id", "HTTP_401"}:
        return (
            "Check the SALESFORCE_* credentials and SALESFORCE_LOGIN_URL (shopsync config check)."
        )
    return "Check the credentials and that the service is reachable from this machine."


def failed(checks: Iterable[Check]) -> list[Check]:
    """The checks that fail the preflight."""
    return [c for c in checks if not c.ok and c.severity == "error"]


def run_doctor(
    salesforce: Any, shopify: Any, mapping: MappingConfig, *, allow_save: bool = True
) -> list[Check]:
    """Ask both systems and check every answer (``allow_save``: the duplicate-rule header)."""
    checks: list[Check] = []
    describes: dict[str, dict[str, Any]] = {}

    def org() -> list[Check]:
        for sobject in (ACCOUNT, CONTACT, OPPORTUNITY):
            describes[sobject] = salesforce.describe(sobject)
        found = [Check("Salesforce login", True, "token obtained, describe readable")]
        found += external_id_checks(describes, mapping)
        found += stage_checks(describes[OPPORTUNITY], mapping)
        found += org_feature_checks(describes)
        if OrgSchema.from_describe(describes).person_accounts:
            record_types = salesforce.query(PERSON_RECORD_TYPES_SOQL)
            found += person_account_checks(record_types, mapping)
        return found + _duplicate_rules(salesforce, allow_save)

    def shop() -> list[Check]:
        info = shopify.shop_info()
        found = [Check("Shopify login", True, f"{info.domain} ({info.timezone}, {info.currency})")]
        return found + scope_checks(info.scopes)

    def webhooks() -> list[Check]:
        data = shopify.graphql(SUBSCRIPTIONS_QUERY)
        nodes = (data.get("webhookSubscriptions") or {}).get("nodes") or []
        return subscription_checks(nodes, WEBHOOK_TOPICS)

    checks += guarded("Salesforce", org)
    checks += guarded("Shopify", shop)
    checks += guarded("Shopify webhooks", webhooks)
    return checks
