"""Preflight: is the Salesforce org and the Shopify app set up the way the sync needs?

The checks are pure functions over what describe, the token endpoint and the Admin API said;
``run_doctor`` gathers those answers and never raises: every failure becomes a check result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.core.errors import AuthError, SyncError
from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY, MappingConfig, OrgSchema
from tasks.core.topics import DeleteAction, Topic, registered_topics
from tasks.salesforce import queries
from tasks.salesforce.org import (
    choose_person_record_type,
    person_record_type_problem,
)

REQUIRED_SCOPES = ("read_orders", "read_customers", "read_all_orders")

SUBSCRIPTIONS_QUERY = """
query Subscriptions {
  webhookSubscriptions(first: 100) {
    nodes { topic endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } }
  }
}
"""


RECENT_ORDERS_QUERY = """
query RecentOrders {
  orders(first: 10, sortKey: CREATED_AT, reverse: true) {
    nodes {
      legacyResourceId email phone
      customer { legacyResourceId firstName lastName defaultEmailAddress { emailAddress } }
      billingAddress { firstName lastName address1 }
    }
  }
}
"""

AUTH_MODES = {
    "static_token": "static token (legacy custom app, SHOPIFY_ADMIN_API_ACCESS_TOKEN)",
    "client_credentials": (
        "client credentials (Dev Dashboard app, SHOPIFY_API_KEY / SHOPIFY_API_SECRET_KEY)"
    ),
}
AUTH_FIXES = {
    "static_token": (
        "Shopify refused SHOPIFY_ADMIN_API_ACCESS_TOKEN: it was revoked, mistyped or belongs to "
        "another shop. Copy it again from the custom app (Shopify admin → Settings → Apps → "
        "Develop apps → your app → API credentials). Legacy custom apps cannot be created since "
        "2026-01-01: for a new app, create a Dev Dashboard app, install it on the shop, set "
        "SHOPIFY_API_KEY and SHOPIFY_API_SECRET_KEY and remove SHOPIFY_ADMIN_API_ACCESS_TOKEN."
    ),
    "client_credentials": (
        "Check SHOPIFY_API_KEY (client id) and SHOPIFY_API_SECRET_KEY (client secret) against "
        "the Dev Dashboard app's settings, and that the app is installed on "
        "SHOPIFY_STORE_DOMAIN: the client credentials grant only works for an app of your own "
        "organization installed on a store it owns."
    ),
}
REDACTION_FIX = (
    "The app lacks protected customer data access (Level 2: name, email, phone, address), so "
    "Shopify answers null for them. Where the app is managed (Dev Dashboard, or Partner "
    "Dashboard → App setup → Protected customer data access), request access to protected "
    "customer data and to the name, email, phone and address fields, then install the approved "
    "version on the shop. Until then orders still sync, named after the customer id and without "
    "a Contact (README: Shopify app setup)."
)


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


def _duplicate_rules(salesforce: Any, allow_save: bool) -> list[Check]:
    try:
        rules = salesforce.query(queries.ACTIVE_DUPLICATE_RULES)
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


def auth_checks(mode: str, expires_in: float | None) -> list[Check]:
    """Which way shopsync gets its Shopify token, and that it got one (informational)."""
    detail = AUTH_MODES.get(mode, mode)
    if mode == "client_credentials":
        lifetime = f" (lifetime {expires_in / 3600:.1f} h)" if expires_in else ""
        detail += f": token obtained{lifetime}, renewed before expiry and once on 401"
    else:
        detail += ": token accepted"
    return [Check("Shopify auth", True, detail, severity="info")]


def auth_failure(mode: str, exc: SyncError) -> Check:
    """A refused Shopify login, with the fix for the mode in use."""
    fix = AUTH_FIXES.get(mode, "") if isinstance(exc, AuthError) else fix_for(exc, "Shopify")
    return Check("Shopify auth", False, f"{AUTH_MODES.get(mode, mode)}: {exc}", fix)


def looks_redacted(node: Mapping[str, Any]) -> bool | None:
    """Does this order's buyer come back with every personal field null?

    ``None`` when the order has no customer and no billing address (a POS sale, say): there is
    nothing that could have been redacted, so it says nothing either way.
    """
    customer = node.get("customer")
    billing = node.get("billingAddress")
    if not customer and not billing:
        return None
    personal = [node.get("email"), node.get("phone")]
    if customer:
        email = (customer.get("defaultEmailAddress") or {}).get("emailAddress")
        personal += [customer.get("firstName"), customer.get("lastName"), email]
    if billing:
        personal += [billing.get("firstName"), billing.get("lastName"), billing.get("address1")]
    return not any(personal)


def redaction_check(nodes: Iterable[Mapping[str, Any]]) -> Check:
    """Protected customer data: redacted when recent orders show a buyer but no personal field.

    Shopify redacts per app, so one order with a visible name or e-mail clears the suspicion.
    """
    verdicts = [(node, looks_redacted(node)) for node in nodes]
    judged = [(node, redacted) for node, redacted in verdicts if redacted is not None]
    name = "Shopify protected customer data"
    if not judged:
        return Check(name, True, "no recent order with a buyer to inspect", severity="info")
    if any(not redacted for _, redacted in judged):
        return Check(name, True, "names and e-mails are visible on recent orders")
    order = judged[0][0].get("legacyResourceId")
    return Check(
        name,
        False,
        f"redacted: recent order {order} has its buyer's name, e-mail, phone and address null",
        REDACTION_FIX,
        severity="warning",
    )


def subscription_checks(nodes: Iterable[Mapping[str, Any]], topics: Iterable[Topic]) -> list[Check]:
    """A webhook subscription exists for each topic ``webhooks register`` subscribes; a missing
    one is an error or a warning as the topic table (tasks/core/topics.py) says."""
    present = {str(n.get("topic", "")).lower().replace("_", "/", 1) for n in nodes}
    checks = []
    for entry in topics:
        topic = entry.name
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
                severity="error" if ok else entry.missing,
            )
        )
    return checks


def guarded(name: str, probe: Callable[[], list[Check]]) -> list[Check]:
    """Run a probe; a failure to ask is itself a failed check, never a traceback."""
    try:
        return probe()
    except SyncError as exc:
        return [Check(name, False, str(exc), fix_for(exc, name.split()[0]))]


def fix_for(exc: SyncError, system: str) -> str:
    """The fix for a failed probe of ``system`` ("Salesforce" or "Shopify")."""
    if isinstance(exc, AuthError):  # both adapters classify refused credentials as AuthError
        return CREDENTIAL_FIXES[system]
    return f"Check that {REACHABLE[system]} is reachable from this machine (shopsync config check)."


CREDENTIAL_FIXES = {
    "Salesforce": "Check the SALESFORCE_* credentials and SALESFORCE_LOGIN_URL "
    "(shopsync config check).",
    "Shopify": "Check SHOPIFY_STORE_DOMAIN and SHOPIFY_ADMIN_API_ACCESS_TOKEN (or SHOPIFY_API_KEY "
    "/ SHOPIFY_API_SECRET_KEY in client-credentials mode) (shopsync config check).",
}
REACHABLE = {
    "Salesforce": "SALESFORCE_LOGIN_URL (and the org's instance URL)",
    "Shopify": "the shop (SHOPIFY_STORE_DOMAIN / SHOPIFY_ADMIN_URL)",
}


def failed(checks: Iterable[Check]) -> list[Check]:
    """The checks that fail the preflight."""
    return [c for c in checks if not c.ok and c.severity == "error"]


def run_doctor(
    salesforce: Any,
    shopify: Any,
    mapping: MappingConfig,
    *,
    allow_save: bool = True,
    delete_action: DeleteAction = "ignore",
) -> list[Check]:
    """Ask both systems and check every answer (``allow_save``: the duplicate-rule header;
    ``delete_action``: SHOPSYNC_ORDER_DELETE_ACTION, which decides whether orders/delete is
    expected)."""
    checks: list[Check] = []
    describes: dict[str, dict[str, Any]] = {}

    def org() -> list[Check]:
        for sobject in (ACCOUNT, CONTACT, OPPORTUNITY):
            describes[sobject] = salesforce.describe(sobject)
        found = [Check("Salesforce login", True, "token obtained, describe readable")]
        found += external_id_checks(describes, mapping)
        found += stage_checks(describes[OPPORTUNITY], mapping)
        found += added_field_checks(describes, mapping)
        found += org_feature_checks(describes)
        if OrgSchema.from_describe(describes).person_accounts:
            record_types = salesforce.query(queries.PERSON_RECORD_TYPES)
            found += person_account_checks(record_types, mapping)
        return found + _duplicate_rules(salesforce, allow_save)

    tokens = getattr(shopify, "tokens", None)
    mode = str(getattr(tokens, "mode", "static_token"))

    def shop() -> list[Check]:
        try:
            info = shopify.shop_info()
        except SyncError as exc:
            return [auth_failure(mode, exc)]
        found = auth_checks(mode, getattr(tokens, "expires_in", None))
        found.append(
            Check("Shopify login", True, f"{info.domain} ({info.timezone}, {info.currency})")
        )
        return found + scope_checks(info.scopes)

    def customer_data() -> list[Check]:
        data = shopify.graphql(RECENT_ORDERS_QUERY)
        return [redaction_check((data.get("orders") or {}).get("nodes") or [])]

    def webhooks() -> list[Check]:
        data = shopify.graphql(SUBSCRIPTIONS_QUERY)
        nodes = (data.get("webhookSubscriptions") or {}).get("nodes") or []
        return subscription_checks(nodes, registered_topics(delete_action))

    checks += guarded("Salesforce", org)
    checks += guarded("Shopify", shop)
    if any(c.name == "Shopify auth" and not c.ok for c in checks):
        return checks  # every further Shopify question would fail the same way
    checks += guarded("Shopify protected customer data", customer_data)
    checks += guarded("Shopify webhooks", webhooks)
    return checks
