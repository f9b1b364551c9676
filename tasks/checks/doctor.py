"""Preflight: is the Salesforce org and the Shopify app set up the way the sync needs?

The checks are pure functions over what describe, the token endpoint and the Admin API said;
``run_doctor`` gathers those answers and never raises: every failure becomes a check result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tasks.checks.org_checks import (
    Check,
    added_field_checks,
    duplicate_rule_checks,
    duplicate_rules_check,
    external_id_checks,
    org_feature_checks,
    person_account_checks,
    stage_checks,
)
from tasks.core.errors import AuthError, SyncError
from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY, MappingConfig, OrgSchema
from tasks.core.topics import DeleteAction, Topic, registered_topics
from tasks.salesforce.port import SalesforcePort
from tasks.shopify.port import ShopifyPort

__all__ = [
    "Check",
    "added_field_checks",
    "duplicate_rule_checks",
    "failed",
    "fix_for",
    "run_doctor",
]

REQUIRED_SCOPES = ("read_orders", "read_customers", "read_all_orders")

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
    salesforce: SalesforcePort,
    shopify: ShopifyPort,
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
            record_types = salesforce.person_record_types()
            found += person_account_checks(record_types, mapping)
        return found + duplicate_rules_check(salesforce, allow_save)

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
        return [redaction_check(shopify.recent_orders())]

    def webhooks() -> list[Check]:
        nodes = shopify.webhook_subscriptions()
        return subscription_checks(nodes, registered_topics(delete_action))

    checks += guarded("Salesforce", org)
    checks += guarded("Shopify", shop)
    if any(c.name == "Shopify auth" and not c.ok for c in checks):
        return checks  # every further Shopify question would fail the same way
    checks += guarded("Shopify protected customer data", customer_data)
    checks += guarded("Shopify webhooks", webhooks)
    return checks
