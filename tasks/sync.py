"""Sync one order's newest state into Salesforce: the code shared by every path.

The webhook drain, the ``sync-order`` flow and dead-letter replay all end here. It decides
(from the ledger) whether the order is stale or unchanged, maps it, chooses how the Contact is
found (upsert by key, adopt by e-mail, or create for a guest), writes the three records in one
composite call, and records the result. Errors propagate, already classified; the caller decides
between retry and dead letter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from state import FieldWarning, LedgerRecord, StateStore
from tasks.errors import SyncError
from tasks.field_warnings import field_warnings
from tasks.mapping import (
    ACCOUNT,
    CONTACT,
    OPPORTUNITY,
    MappingConfig,
    OrgSchema,
    SalesforceRecords,
    Truncation,
    map_order,
    skip_reason,
    update_body,
)
from tasks.orders import Order
from tasks.salesforce import ContactWrite, OrderWrite, OrderWriteResult, SalesforceGateway

Action = Literal["created", "updated", "unchanged", "stale", "skipped"]


@dataclass(frozen=True, slots=True)
class SyncContext:
    """Everything a sync needs, built once per flow run."""

    gateway: SalesforceGateway
    store: StateStore
    mapping: MappingConfig
    org: OrgSchema
    shop_timezone: str
    # E-mail → Contacts, fetched for a whole batch in one query; None: look up order by order.
    contacts_by_email: Mapping[str, list[dict[str, Any]]] | None = None


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What happened to one order."""

    order_id: str
    action: Action
    reason: str = ""
    account_id: str | None = None
    contact_id: str | None = None
    opportunity_id: str | None = None
    truncations: list[Truncation] = field(default_factory=list)
    # Every value cut or left out on the way (truncations and dropped fields), for the record.
    field_warnings: list[FieldWarning] = field(default_factory=list)


def sync_order_state(order: Order, ctx: SyncContext) -> SyncOutcome:
    """Bring Salesforce to this state of the order, unless the ledger has it or newer."""
    ledger = ctx.store.ledger(order.id)
    verdict = freshness(order, ledger)
    if verdict is not None:
        return SyncOutcome(order.id, verdict[0], reason=verdict[1])
    reason = skip_reason(order, ctx.mapping)
    if reason is not None:
        return SyncOutcome(order.id, "skipped", reason=reason)
    records = map_order(order, ctx.mapping, ctx.org, ctx.shop_timezone)
    result = _write(records, ledger, ctx)
    ctx.store.record_sync(
        order.id,
        order_updated_at=order.updated_at,
        payload_hash=order.payload_hash(),
        account_id=result.account_id,
        contact_id=result.contact_id,
        opportunity_id=result.opportunity_id,
    )
    ctx.store.remember_customer(
        customer_key(records), account_id=result.account_id, contact_id=result.contact_id
    )
    created = result.created.get("opportunity", False)
    return SyncOutcome(
        order.id,
        "created" if created else "updated",
        account_id=result.account_id,
        contact_id=result.contact_id,
        opportunity_id=result.opportunity_id,
        truncations=list(records.truncations),
        field_warnings=field_warnings(order.id, order.name, records, ctx.org),
    )


def freshness(order: Order, ledger: LedgerRecord | None) -> tuple[Action, str] | None:
    """``("stale"|"unchanged", why)`` when the ledger already has this state or a newer one."""
    if ledger is None:
        return None
    if order.updated_at < ledger.order_updated_at:
        return "stale", f"ledger has updated_at {ledger.order_updated_at.isoformat()}"
    if ledger.payload_hash == order.payload_hash():
        return "unchanged", "the mapped fields did not change"
    return None


def customer_key(records: SalesforceRecords) -> str:
    """The key the customer cache uses: the Shopify customer id, or the guest Account key."""
    return records.contact_key or records.account_key


def _write(
    records: SalesforceRecords, ledger: LedgerRecord | None, ctx: SyncContext
) -> OrderWriteResult:
    exists = ledger is not None and ledger.opportunity_id is not None
    write = plan_write(records, ctx, opportunity_exists=exists)
    try:
        return ctx.gateway.write_order(write)
    except SyncError as exc:
        if exists or not _opportunity_already_existed(exc):
            raise
    # The ledger did not know the Opportunity, but Salesforce has it (an earlier run, or a
    # reconcile repair): write again without the create-only fields.
    return ctx.gateway.write_order(plan_write(records, ctx, opportunity_exists=True))


def _opportunity_already_existed(exc: SyncError) -> bool:
    return exc.stage == "opportunity" and exc.code == "INVALID_FIELD_FOR_INSERT_UPDATE"


def plan_write(
    records: SalesforceRecords, ctx: SyncContext, *, opportunity_exists: bool
) -> OrderWrite:
    """How to write this order: full bodies on create, owned fields on update."""
    mapping = ctx.mapping
    opportunity = (
        update_body(OPPORTUNITY, records.opportunity, mapping, cancelled=records.cancelled)
        if opportunity_exists
        else dict(records.opportunity)
    )
    write = OrderWrite(
        account_field=mapping.key_field(ACCOUNT),
        account_key=records.account_key,
        account=records.account,
        opportunity_field=mapping.key_field(OPPORTUNITY),
        order_key=records.order_key,
        opportunity=opportunity,
        link_contact_to_opportunity=not opportunity_exists,
    )
    if records.contact is None:
        return write
    return _with_contact(write, records, ctx)


def _with_contact(write: OrderWrite, records: SalesforceRecords, ctx: SyncContext) -> OrderWrite:
    key_field = ctx.mapping.key_field(CONTACT)
    write = replace(write, contact=records.contact, contact_field=key_field)
    cached = ctx.store.customer(customer_key(records))
    if records.contact_key is not None:
        write = replace(write, contact_key=records.contact_key)
        if cached is not None or records.contact_lookup_email is None:
            return write
        adoptable = _adoptable_contact(records, ctx, key_field)
        if adoptable is None:
            return write
        return replace(write, contact_write=ContactWrite.UPDATE_BY_ID, contact_id=adoptable)
    # A guest: no Shopify customer id, so the Contact is found by e-mail.
    if cached is not None and cached[1]:
        return replace(write, contact_write=ContactWrite.UPDATE_BY_ID, contact_id=cached[1])
    found = _contact_by_email(records, ctx, key_field)
    if found is None:
        return replace(write, contact_write=ContactWrite.CREATE)
    return replace(write, contact_write=ContactWrite.UPDATE_BY_ID, contact_id=found)


def _contacts(email: str, ctx: SyncContext, key_field: str) -> list[dict[str, Any]]:
    hints = ctx.contacts_by_email
    if hints is not None and email.lower() in hints:
        return list(hints[email.lower()])
    return ctx.gateway.find_contacts_by_email(email, key_field)


def _adoptable_contact(records: SalesforceRecords, ctx: SyncContext, key_field: str) -> str | None:
    """An existing Contact with this e-mail and no external id, for a customer new to us."""
    contacts = _contacts(str(records.contact_lookup_email), ctx, key_field)
    if any(c.get(key_field) == records.contact_key for c in contacts):
        return None  # already keyed to this customer: the upsert will match it
    unkeyed = [c for c in contacts if not c.get(key_field)]
    return str(unkeyed[0]["Id"]) if unkeyed else None


def _contact_by_email(records: SalesforceRecords, ctx: SyncContext, key_field: str) -> str | None:
    if records.contact_lookup_email is None:
        return None
    contacts = _contacts(records.contact_lookup_email, ctx, key_field)
    return str(contacts[0]["Id"]) if contacts else None


def customer_of(order: Order, ctx: SyncContext) -> str | None:
    """The customer key an order's sync writes under (None when it would be skipped)."""
    if skip_reason(order, ctx.mapping) is not None:
        return None
    return customer_key(map_order(order, ctx.mapping, ctx.org, ctx.shop_timezone))


def with_contact_hints(orders: Iterable[Order], ctx: SyncContext) -> SyncContext:
    """Look up, in one query per 100, the e-mails of every customer in ``orders`` new to us.

    Replaces the per-order e-mail lookup, so a batch of new customers costs one API call each
    (the composite) instead of two.
    """
    emails: set[str] = set()
    for order in orders:
        if skip_reason(order, ctx.mapping) is not None:
            continue
        records = map_order(order, ctx.mapping, ctx.org, ctx.shop_timezone)
        if records.contact is None or records.contact_lookup_email is None:
            continue
        if ctx.store.customer(customer_key(records)) is None:
            emails.add(records.contact_lookup_email)
    if not emails:
        return ctx
    found = ctx.gateway.find_contacts_by_emails(sorted(emails), ctx.mapping.key_field(CONTACT))
    return replace(ctx, contacts_by_email=found)
