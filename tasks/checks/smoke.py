"""``shopsync smoke``: an opt-in end-to-end check against a real org and shop.

It verifies both sets of credentials, maps one synthetic order through the product's real
mapping (so the records carry the real field set), writes the Account, Contact and Opportunity
through the gateway's real composite write, reads them back by their external ids, and deletes
them again, newest first, even when an earlier step failed. Every record is clearly marked: its
external ids start with ``shopsync-smoke-`` and its names say it is safe to delete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tasks.core.errors import AuthError, SyncError
from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY, SalesforceRecords, map_order
from tasks.core.orders import parse_rest_order
from tasks.runtime import Runtime
from tasks.salesforce.errors import refused_by_validation_rule
from tasks.sync import SyncContext, plan_write

SMOKE_PREFIX = "shopsync-smoke-"
SMOKE_NAME = "shopsync smoke test — safe to delete"
SMOKE_EMAIL_DOMAIN = "example.com"  # reserved for examples (RFC 2606): never a real inbox


@dataclass(frozen=True, slots=True)
class SmokeStep:
    """One reported step: what it did, or why it failed and how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        """The step as one line of output."""
        mark = "ok  " if self.ok else "FAIL"
        fix = f" — fix: {self.fix}" if self.fix and not self.ok else ""
        return f"[{mark}] {self.name}: {self.detail}{fix}"


def smoke_stamp(now: datetime | None = None) -> str:
    """The marker of one smoke run: ``shopsync-smoke-<UTC timestamp>``."""
    return SMOKE_PREFIX + (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%f")


def synthetic_payload(stamp: str, now: datetime) -> dict[str, Any]:
    """A webhook-shaped order that exercises every mapped field (customer, address, money)."""
    digits = int(now.timestamp() * 1000)
    address = {
        "first_name": "Smoke",
        "last_name": "Test",
        "company": SMOKE_NAME,
        "address1": "1 Test Street",
        "city": "Ottawa",
        "province": "Ontario",
        "province_code": "ON",
        "zip": "K1A 0A1",
        "country": "Canada",
        "country_code": "CA",
        "phone": "+16135550100",
    }
    return {
        "id": digits,
        "name": f"#{stamp}",
        "email": f"{stamp}@{SMOKE_EMAIL_DOMAIN}",
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
        "processed_at": now.isoformat(),
        "financial_status": "paid",
        "currency": "USD",
        "total_price": "1.00",
        "current_total_price": "1.00",
        "test": True,
        "customer": {
            "id": digits,
            "email": f"{stamp}@{SMOKE_EMAIL_DOMAIN}",
            "first_name": "Smoke",
            "last_name": "Test",
            "default_address": address,
        },
        "billing_address": address,
    }


def marked_records(records: SalesforceRecords, ctx: SyncContext, stamp: str) -> SalesforceRecords:
    """The mapped records with smoke external ids and names, so nobody mistakes them."""
    mapping = ctx.mapping
    keys = {
        ACCOUNT: f"{stamp}-account",
        CONTACT: f"{stamp}-contact",
        OPPORTUNITY: f"{stamp}-order",
    }
    account = {**records.account, mapping.key_field(ACCOUNT): keys[ACCOUNT], "Name": SMOKE_NAME}
    opportunity = {
        **records.opportunity,
        mapping.key_field(OPPORTUNITY): keys[OPPORTUNITY],
        "Name": SMOKE_NAME,
    }
    contact = records.contact
    if contact is not None:
        contact = {**contact, mapping.key_field(CONTACT): keys[CONTACT], "LastName": SMOKE_NAME}
    return replace(
        records,
        account=account,
        contact=contact,
        opportunity=opportunity,
        account_key=keys[ACCOUNT],
        contact_key=keys[CONTACT] if contact is not None else None,
        order_key=keys[OPPORTUNITY],
    )


def fix_for(error: Exception) -> str:
    """What the user can do about a failed step."""
    if isinstance(error, AuthError):
        return "check the SALESFORCE_/SHOPIFY_ credentials in .env (`shopsync config check`)"
    if isinstance(error, SyncError) and refused_by_validation_rule(error):
        record = error.stage or "record"
        return (
            f"a validation rule in the org refuses the {record} every synced order writes: "
            "change the rule (or exempt the integration user) so that orders can be synced"
        )
    if isinstance(error, SyncError) and error.fields:
        return (
            f"Salesforce rejected {', '.join(error.fields)}: change the validation rule, the "
            "field's permissions or the mapping so that synced orders can be written"
        )
    if isinstance(error, SyncError) and error.code:
        return f"Salesforce answered {error.code}: `shopsync doctor` checks the org's setup"
    return "run `shopsync doctor` for the details"


class SmokeRun:
    """The steps of one smoke run, in order; ``steps`` holds what was reported so far."""

    def __init__(self, runtime: Runtime, now: datetime | None = None):
        self.runtime = runtime
        self.now = now or datetime.now(UTC)
        self.stamp = smoke_stamp(self.now)
        self.steps: list[SmokeStep] = []
        self.records: SalesforceRecords | None = None
        self.ctx: SyncContext | None = None

    def step(self, name: str, action: Callable[[], str]) -> bool:
        """Run one step and record its line; False when it failed."""
        try:
            detail = action()
        except (SyncError, ValueError, LookupError) as exc:
            self.steps.append(SmokeStep(name, False, str(exc), fix_for(exc)))
            return False
        self.steps.append(SmokeStep(name, True, detail))
        return True

    def run(self, report: Callable[[SmokeStep], None] = lambda step: None) -> list[SmokeStep]:
        """Every step, reporting each as it ends; the clean-up runs whatever happened before."""
        plan = [
            ("salesforce login", self.salesforce_login),
            ("shopify access", self.shopify_access),
            ("map a test order", self.map_test_order),
            ("write Account/Contact/Opportunity", self.write),
            ("read back", self.read_back),
        ]
        for name, action in plan:
            ok = self.step(name, action)
            report(self.steps[-1])
            if not ok:
                break
        if self.records is not None:
            self.step("delete test records", self.delete)
            report(self.steps[-1])
        return self.steps

    # -- the steps ---------------------------------------------------------------------------

    def salesforce_login(self) -> str:
        usage = self.runtime.salesforce.usage(refresh=True)
        if usage is None:
            return "logged in; the org did not report its API usage"
        return f"logged in; {usage.used}/{usage.limit} API calls used in the last 24 h"

    def shopify_access(self) -> str:
        return f"shop answers; timezone {self.runtime.shop_timezone()}"

    def map_test_order(self) -> str:
        self.ctx = self.runtime.sync_context()
        order = parse_rest_order(synthetic_payload(self.stamp, self.now))
        mapped = map_order(order, self.ctx.mapping, self.ctx.org, self.ctx.shop_timezone)
        self.records = marked_records(mapped, self.ctx, self.stamp)
        fields = sum(len(body) for body in self._bodies().values())
        return f"{fields} fields, external ids {self.stamp}-*"

    def write(self) -> str:
        assert self.ctx is not None
        assert self.records is not None
        write = plan_write(self.records, self.ctx, opportunity_exists=False)
        result = self.runtime.salesforce.write_order(write)
        contact = f", Contact {result.contact_id}" if result.contact_id else ""
        return f"Account {result.account_id}{contact}, Opportunity {result.opportunity_id}"

    def read_back(self) -> str:
        found = self._found()
        missing = [sobject for sobject in self._bodies() if not found.get(sobject)]
        if missing:
            raise LookupError(f"not found after the write: {', '.join(missing)}")
        names = {sobject: rows[0].get("Name") for sobject, rows in found.items()}
        if names.get(ACCOUNT) != SMOKE_NAME or names.get(OPPORTUNITY) != SMOKE_NAME:
            raise LookupError(f"read back other values than written: {names}")
        return f"{', '.join(found)} found by external id"

    def delete(self) -> str:
        """Delete whatever exists of the test records, newest first, then check they are gone."""
        deleted = 0
        for sobject, rows in reversed(list(self._found().items())):
            for row in rows:
                self.runtime.salesforce.delete(sobject, str(row["Id"]))
                deleted += 1
        left = {sobject: rows for sobject, rows in self._found().items() if rows}
        if left:
            raise LookupError(f"still there after the delete: {', '.join(left)}")
        return f"{deleted} record(s) deleted, none left"

    # -- helpers -----------------------------------------------------------------------------

    def _bodies(self) -> dict[str, dict[str, Any]]:
        assert self.records is not None
        bodies = {ACCOUNT: self.records.account}
        if self.records.contact is not None:
            bodies[CONTACT] = self.records.contact
        bodies[OPPORTUNITY] = self.records.opportunity
        return bodies

    def _found(self) -> dict[str, list[dict[str, Any]]]:
        """The test records that exist now, by object, in write order."""
        assert self.ctx is not None
        assert self.records is not None
        keys = {
            ACCOUNT: self.records.account_key,
            CONTACT: self.records.contact_key,
            OPPORTUNITY: self.records.order_key,
        }
        found: dict[str, list[dict[str, Any]]] = {}
        for sobject in self._bodies():
            key_field = self.ctx.mapping.key_field(sobject)
            fields = ["Id", _name_field(sobject)]
            found[sobject] = list(
                self.runtime.salesforce.records(
                    sobject, key_field, fields, keys=[str(keys[sobject])]
                )
            )
        return found


def _name_field(sobject: str) -> str:
    return "LastName" if sobject == CONTACT else "Name"
