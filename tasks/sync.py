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
from tasks.core.adoption import contact_to_adopt
from tasks.core.errors import StaleReference, SyncError
from tasks.core.mapping import (
    ACCOUNT,
    CONTACT,
    OPPORTUNITY,
    MappingConfig,
    OrgSchema,
    SalesforceRecords,
    Truncation,
    placeholder_parents,
    update_body,
)
from tasks.core.orders import Order
from tasks.core.prepared import PreparedOrder, Preparer, customer_key
from tasks.reporting.field_warnings import field_warnings
from tasks.salesforce.errors import refused_create_only_field, required_fields_missing
from tasks.salesforce.port import (
    ContactWrite,
    IdsByKey,
    KeyLookup,
    OrderWrite,
    OrderWriteResult,
    SalesforcePort,
)

Action = Literal["created", "updated", "recreated", "unchanged", "stale", "skipped"]
RECREATED = "the Opportunity had been deleted in Salesforce; recreated with its create-only fields"


@dataclass(frozen=True, slots=True)
class SyncContext:
    """Everything a sync needs, built once per flow run."""

    gateway: SalesforcePort
    store: StateStore
    mapping: MappingConfig
    org: OrgSchema
    shop_timezone: str
    # E-mail → Contacts, fetched for a whole batch in one query; None: look up order by order.
    contacts_by_email: Mapping[str, list[dict[str, Any]]] | None = None
    # Order key → Opportunity Id (None: not in Salesforce), asked for a whole batch at once.
    opportunity_ids: Mapping[str, str | None] | None = None
    # Per object, Account / Contact key → Id (None: not in Salesforce), asked for a whole
    # batch at once for the orders whose bodies carry a placeholder (see :func:`parents_known`).
    parents: Mapping[str, Mapping[str, str | None]] | None = None
    # Replay: an order the ledger calls unchanged is written anyway when its Opportunity is
    # gone from Salesforce (deleted or merged away); see :func:`with_opportunities_checked`.
    verify_unchanged: bool = False

    def preparer(self) -> Preparer:
        """Prepares orders (parse → skip rules → map) under this context's mapping and org."""
        return Preparer(self.mapping, self.org, self.shop_timezone)


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
    """:func:`sync_prepared` for an order not prepared yet (prepared here, once)."""
    return sync_prepared(ctx.preparer()(order), ctx)


def sync_prepared(prepared: PreparedOrder, ctx: SyncContext) -> SyncOutcome:
    """Bring Salesforce to this state of the order, unless the ledger has it or newer."""
    order, records = prepared.order, prepared.records
    ledger = ctx.store.ledger(order.id)
    verdict = freshness(order, ledger)
    if verdict is not None and not _gone_from_salesforce(prepared, verdict[0], ctx):
        return SyncOutcome(order.id, verdict[0], reason=verdict[1])
    if records is None:
        return SyncOutcome(order.id, "skipped", reason=prepared.skip or "")
    result, recreated = _write(records, ledger, ctx)
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
    recreated = recreated or (created and ledger is not None and bool(ledger.opportunity_id))
    action: Action = "recreated" if recreated else "created" if created else "updated"
    return SyncOutcome(
        order.id,
        action,
        reason=RECREATED if recreated else "",
        account_id=result.account_id,
        contact_id=result.contact_id,
        opportunity_id=result.opportunity_id,
        truncations=list(records.truncations),
        field_warnings=field_warnings(order.id, order.name, records, ctx.org),
    )


def _gone_from_salesforce(prepared: PreparedOrder, verdict: Action, ctx: SyncContext) -> bool:
    """Whether an ``unchanged`` order is to be written after all: only when asked
    (``verify_unchanged``) and Salesforce has no Opportunity for it any more."""
    records = prepared.records
    if verdict != "unchanged" or not ctx.verify_unchanged or records is None:
        return False
    known = ctx.opportunity_ids
    if known is not None and records.order_key in known:
        return known[records.order_key] is None
    return _opportunity_ids([records.order_key], ctx)[records.order_key] is None


def freshness(order: Order, ledger: LedgerRecord | None) -> tuple[Action, str] | None:
    """``("stale"|"unchanged", why)`` when the ledger already has this state or a newer one."""
    if ledger is None:
        return None
    if order.updated_at < ledger.order_updated_at:
        return "stale", f"ledger has updated_at {ledger.order_updated_at.isoformat()}"
    if ledger.payload_hash == order.payload_hash():
        return "unchanged", "the mapped fields did not change"
    return None


def _write(
    records: SalesforceRecords, ledger: LedgerRecord | None, ctx: SyncContext
) -> tuple[OrderWriteResult, bool]:
    """Write the order: ``(result, whether a deleted Opportunity was recreated)``.

    A cached Contact or Account that a user deleted or merged away in Salesforce answers
    ENTITY_IS_DELETED: the cache entry is forgotten, the customer found again and the order
    written once more. A Contact is found by external id and e-mail (after a merge that finds the
    surviving record); a merged Account by its ``MasterRecordId``, and gets our key stamped.
    """
    exists = opportunity_exists(records, ledger, ctx)
    try:
        return _write_against(records, ctx, exists)
    except StaleReference as exc:
        _forget_stale(records, exc, ctx)
    return _write_against(records, replace(ctx, contacts_by_email=None), exists)


def _forget_stale(records: SalesforceRecords, exc: StaleReference, ctx: SyncContext) -> None:
    """Drop the customer's stale cache entry; keep a merged Account's survivor in its place
    (with the known Contact, which a merge re-parents rather than deletes)."""
    key = customer_key(records)
    cached = ctx.store.customer(key)
    ctx.store.forget_customer(key)
    if exc.stage != "account" or cached is None or not cached[0]:
        return
    survivor = ctx.gateway.merged_into(ACCOUNT, cached[0])
    if survivor is not None:
        ctx.store.remember_customer(key, account_id=survivor, contact_id=cached[1])


def _write_against(
    records: SalesforceRecords, ctx: SyncContext, exists: bool
) -> tuple[OrderWriteResult, bool]:
    try:
        return ctx.gateway.write_order(plan_write(records, ctx, opportunity_exists=exists)), False
    except SyncError as exc:
        if exists and opportunity_was_deleted(exc, records):
            # A user deleted it: an update body cannot create it (StageName and CloseDate are
            # missing), so recreate it whole.
            return ctx.gateway.write_order(plan_write(records, ctx, opportunity_exists=False)), True
        if exists or not opportunity_already_existed(exc):
            raise
    # Salesforce has it after all (an earlier run, a reconcile repair, another integration):
    # write again without the create-only fields.
    return ctx.gateway.write_order(plan_write(records, ctx, opportunity_exists=True)), False


def opportunity_exists(
    records: SalesforceRecords, ledger: LedgerRecord | None, ctx: SyncContext
) -> bool:
    """Whether Salesforce has the order's Opportunity, asked as cheaply as possible.

    The ledger knows what we wrote. Otherwise the ledger's silence proves nothing (a lost state
    database, an earlier integration, a reconcile repair): a create body that links a Contact
    asks for free, because Opportunity.ContactId is create-only in Salesforce and an existing
    Opportunity refuses it (the write is then repeated without create-only fields). Without a
    Contact to link (a guest without e-mail, Person Account orgs) Salesforce is asked by query:
    once per batch in the drain (:func:`with_batch_lookups`), else here.
    """
    known = ctx.opportunity_ids
    if known is not None and records.order_key in known:
        return known[records.order_key] is not None  # asked for this batch: the freshest word
    if ledger is not None and ledger.opportunity_id is not None:
        return True
    if records.contact is not None:
        return False
    return bool(_opportunity_ids([records.order_key], ctx)[records.order_key])


def _opportunity_ids(order_keys: list[str], ctx: SyncContext) -> dict[str, str | None]:
    key_field = ctx.mapping.key_field(OPPORTUNITY)
    found: dict[str, str | None] = dict.fromkeys(order_keys)
    for row in ctx.gateway.records(OPPORTUNITY, key_field, ["Id"], keys=order_keys):
        found[str(row.get(key_field))] = str(row["Id"])
    return found


def opportunity_already_existed(exc: SyncError) -> bool:
    return exc.stage == "opportunity" and refused_create_only_field(exc, "ContactId")


def opportunity_was_deleted(exc: SyncError, records: SalesforceRecords) -> bool:
    """An update-only body created a record: the fields it lacked are the create-only ones."""
    return (
        exc.stage == "opportunity"
        and required_fields_missing(exc)
        and set(exc.fields) <= set(records.opportunity)
    )


def plan_write(
    records: SalesforceRecords, ctx: SyncContext, *, opportunity_exists: bool
) -> OrderWrite:
    """How to write this order: full bodies on create, owned fields on update."""
    cached = ctx.store.customer(customer_key(records))
    return plan_write_for(records, ctx, cached, opportunity_exists=opportunity_exists)


def plan_write_for(
    records: SalesforceRecords,
    ctx: SyncContext,
    cached: tuple[str | None, str | None] | None,
    *,
    opportunity_exists: bool,
) -> OrderWrite:
    """:func:`plan_write` with the customer cache's entry already read (``cached``: the
    customer's (Account id, Contact id), None when unknown), as a batch reads it for all.

    A record known to exist (a cached Account, a Contact written by Id or matched by its key,
    or one Salesforce was asked about: :func:`parents_known`) gets no placeholder standing in
    for redacted buyer data: those are create-only."""
    mapping = ctx.mapping
    account_id = cached[0] if cached is not None else None
    existing = parents_known(records, ctx, cached)
    opportunity = (
        update_body(OPPORTUNITY, records.opportunity, mapping, cancelled=records.cancelled)
        if opportunity_exists
        else dict(records.opportunity)
    )
    write = OrderWrite(
        account_field=mapping.key_field(ACCOUNT),
        account_key=records.account_key,
        # An Account known to exist gets its owned fields only: create-only ones (configured,
        # the Person Account record type) and placeholders are Salesforce users' after create.
        account=(
            update_body(ACCOUNT, records.account, mapping)
            if account_id or ACCOUNT in existing
            else records.account
        ),
        account_id=account_id,
        opportunity_field=mapping.key_field(OPPORTUNITY),
        order_key=records.order_key,
        opportunity=opportunity,
        link_contact_to_opportunity=not opportunity_exists,
    )
    if records.contact is None:
        return write
    return _with_contact(write, records, ctx, cached, contact_exists=CONTACT in existing)


def parents_known(
    records: SalesforceRecords,
    ctx: SyncContext,
    cached: tuple[str | None, str | None] | None,
) -> set[str]:
    """Which of the order's Account and keyed Contact whose bodies carry a placeholder
    (:func:`~tasks.core.records.placeholder_parents`) Salesforce has, by external id.

    The batch asked once for all its orders (``ctx.parents``); a key it did not ask about (a
    single order, a cache entry forgotten since) is asked here, in one call. An order without
    a placeholder, or whose customer the cache knows, asks nothing.
    """
    wanted = placeholder_parents(records, cached)
    if not wanted:
        return set()
    known: Mapping[str, Mapping[str, str | None]] = ctx.parents or {}
    unasked = [(sobject, key) for sobject, key in wanted if key not in known.get(sobject, {})]
    if unasked:
        found = ctx.gateway.ids_by_keys(parent_lookups(unasked, ctx.mapping))
        known = {s: {**known.get(s, {}), **found.get(s, {})} for s in {*known, *found}}
    return {sobject for sobject, key in wanted if known.get(sobject, {}).get(key)}


def parent_lookups(parents: Iterable[tuple[str, str]], mapping: MappingConfig) -> list[KeyLookup]:
    """``(object, external id)`` pairs as one lookup per object (keys once each, sorted)."""
    keys: dict[str, set[str]] = {}
    for sobject, key in parents:
        keys.setdefault(sobject, set()).add(key)
    return [KeyLookup(s, mapping.key_field(s), sorted(k)) for s, k in sorted(keys.items())]


def _with_contact(
    write: OrderWrite,
    records: SalesforceRecords,
    ctx: SyncContext,
    cached: tuple[str | None, str | None] | None,
    *,
    contact_exists: bool = False,
) -> OrderWrite:
    """How the Contact is found: by its cached Id, adopted by e-mail, upserted or created.

    A Contact we know is written by Id, so that a delete or merge in Salesforce shows up as
    ENTITY_IS_DELETED instead of a silent duplicate. Only a Contact being created gets the
    order's Account (Contact.AccountId is create-only unless configured otherwise).
    """
    key_field = ctx.mapping.key_field(CONTACT)
    write = replace(
        write, contact=records.contact, contact_field=key_field, contact_key=records.contact_key
    )
    if cached is not None and cached[1]:
        return _existing_contact(write, ctx, contact_id=cached[1])
    if records.contact_key is None:  # a guest: no Shopify customer id, found by e-mail
        found = _contact_by_email(records, ctx, key_field)
        if found is None:
            return replace(write, contact_write=ContactWrite.CREATE)
        return _existing_contact(write, ctx, contact_id=found)
    if contact_exists:  # Salesforce has it by key (asked because of a placeholder)
        return _existing_contact(write, ctx)
    if cached is not None or records.contact_lookup_email is None:
        return write
    contacts = _contacts(records.contact_lookup_email, ctx, key_field)
    if any(c.get(key_field) == records.contact_key for c in contacts):
        return _existing_contact(write, ctx)  # already keyed to this customer: the upsert matches
    adopt = contact_to_adopt(contacts, key_field, records.contact_key)
    if adopt is None:
        return write
    return _existing_contact(write, ctx, contact_id=adopt)  # adopt it


def _existing_contact(
    write: OrderWrite, ctx: SyncContext, contact_id: str | None = None
) -> OrderWrite:
    account = "AccountId" not in ctx.mapping.create_only_fields.get(CONTACT, [])
    body = update_body(CONTACT, write.contact or {}, ctx.mapping)  # owned fields, no placeholder
    if contact_id is None:
        return replace(write, contact=body, contact_account=account)
    return replace(
        write,
        contact=body,
        contact_write=ContactWrite.UPDATE_BY_ID,
        contact_id=contact_id,
        contact_account=account,
    )


def _contacts(email: str, ctx: SyncContext, key_field: str) -> list[dict[str, Any]]:
    hints = ctx.contacts_by_email
    if hints is not None and email.lower() in hints:
        return list(hints[email.lower()])
    return ctx.gateway.contacts_by_emails([email], key_field).get(email.lower(), [])


def _contact_by_email(records: SalesforceRecords, ctx: SyncContext, key_field: str) -> str | None:
    if records.contact_lookup_email is None:
        return None
    contacts = _contacts(records.contact_lookup_email, ctx, key_field)
    return contact_to_adopt(contacts, key_field, None)


def with_batch_lookups(prepared: Iterable[PreparedOrder], ctx: SyncContext) -> SyncContext:
    """Ask Salesforce, for a whole batch at once, what each order's sync would ask on its own.

    The e-mails of customers new to us (one query per 100), so a new customer costs one call
    (the composite) instead of two; and whether the Opportunities exist for orders the ledger
    does not know and whose sync has no free way to tell (see :func:`opportunity_exists`; one
    query per 300). Reads the orders as prepared: nothing is mapped again.
    """
    items = [(p.order, p.records) for p in prepared if p.records is not None]
    ledger = ctx.store.ledger_many(order.id for order, _ in items)
    emails: set[str] = set()
    unknown: list[str] = []
    parents: list[tuple[str, str]] = []
    for order, records in items:
        cached = ctx.store.customer(customer_key(records))
        parents += placeholder_parents(records, cached)
        if records.contact is None:
            known = ledger.get(order.id)
            if known is None or known.opportunity_id is None:
                unknown.append(records.order_key)
        elif records.contact_lookup_email and cached is None:
            emails.add(records.contact_lookup_email)
    if parents:
        return _with_parents(ctx, sorted(emails), sorted(set(unknown)), parents)
    if emails:
        found = ctx.gateway.contacts_by_emails(sorted(emails), ctx.mapping.key_field(CONTACT))
        ctx = replace(ctx, contacts_by_email=found)
    if unknown:
        ctx = replace(ctx, opportunity_ids=_opportunity_ids(sorted(set(unknown)), ctx))
    return ctx


def _with_parents(
    ctx: SyncContext, emails: list[str], unknown: list[str], parents: list[tuple[str, str]]
) -> SyncContext:
    """:func:`with_batch_lookups` for a batch with placeholders: the e-mails, the unknown
    Opportunities and the placeholder-bearing Accounts and Contacts, all asked at once."""
    mapping = ctx.mapping
    found = ctx.gateway.lookups_for(
        emails,
        mapping.key_field(CONTACT),
        OPPORTUNITY,
        mapping.key_field(OPPORTUNITY),
        unknown,
        parents=parent_lookups(parents, mapping),
    )
    return replace(
        ctx,
        contacts_by_email=found.contacts if emails else ctx.contacts_by_email,
        opportunity_ids=found.ids if unknown else ctx.opportunity_ids,
        parents=found.parents,
    )


def with_opportunities_checked(prepared: Iterable[PreparedOrder], ctx: SyncContext) -> SyncContext:
    """Replay's context: which of these orders' Opportunities Salesforce has, asked in one
    query (per 300) for the orders the ledger calls unchanged, so that one deleted or merged
    away in Salesforce is written again instead of being marked unchanged."""
    items = [p for p in prepared if p.records is not None]
    ledger = ctx.store.ledger_many(p.order_id for p in items)
    keys = sorted(
        p.records.order_key
        for p in items
        if p.records is not None and _unchanged(p.order, ledger.get(p.order_id))
    )
    parents = [
        parent
        for p in items
        if p.records is not None and not _stale(p.order, ledger.get(p.order_id))
        for parent in placeholder_parents(p.records, ctx.store.customer(customer_key(p.records)))
    ]
    if parents:  # the Opportunities and the placeholders' Accounts and Contacts, asked at once
        opportunity = KeyLookup(OPPORTUNITY, ctx.mapping.key_field(OPPORTUNITY), keys)
        found: IdsByKey = ctx.gateway.ids_by_keys(
            [opportunity, *parent_lookups(parents, ctx.mapping)]
        )
        known = found.pop(OPPORTUNITY, {})
        return replace(ctx, opportunity_ids=known, verify_unchanged=True, parents=found)
    known = _opportunity_ids(keys, ctx) if keys else {}
    return replace(ctx, opportunity_ids=known, verify_unchanged=True)


def _stale(order: Order, ledger: LedgerRecord | None) -> bool:
    verdict = freshness(order, ledger)
    return verdict is not None and verdict[0] == "stale"


def _unchanged(order: Order, ledger: LedgerRecord | None) -> bool:
    verdict = freshness(order, ledger)
    return verdict is not None and verdict[0] == "unchanged"
