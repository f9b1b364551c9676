"""Reconcile's writes: one chunk's repair plan written in order — Accounts, Contacts (upserts by
key, adoptions by Id, guests' new Contacts), then Opportunities — each object's records in one
``save_many`` (the adapter chooses sObject Collections or Bulk 2.0). A parent's failure keeps its
orders' Opportunities from being written; a hold (auth, budget, rate limit: the disposition of
:mod:`tasks.core.disposition`) stops the writes, and the next run finds the same gaps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context

from state.models import utcnow
from tasks.core.diff_report import Failure, failures_by_order
from tasks.core.disposition import BackoffPolicy, dispose
from tasks.core.errors import SyncError
from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY
from tasks.core.repair_plan import RepairPlan
from tasks.runtime import Runtime
from tasks.salesforce import KeyLookup, RecordResult, SalesforcePort
from tasks.salesforce.port import WriteKind
from tasks.steps import retry_if_transient, with_retries
from tasks.sync import SyncContext


@dataclass(frozen=True)
class Written:
    """Outcome of one chunk's writes."""

    failures: Mapping[str, Failure] = field(default_factory=dict)
    ids: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # object → key → Id
    contact_ids: Mapping[str, str] = field(default_factory=dict)  # order → its Contact's id
    succeeded: tuple[str, ...] = ()
    superseded: int = 0  # orders the drain wrote while the run was under way
    stopped: SyncError | None = None


Recheck = Callable[[RepairPlan], tuple[RepairPlan, int]]


def write_plan(
    runtime: Runtime, ctx: SyncContext, plan: RepairPlan, recheck_plan: Recheck | None = None
) -> Written:
    """Write the plan in order; parents' failures keep their children from being written.

    ``recheck_plan`` runs just before the Opportunities are written and returns the plan as it
    still stands (an order the drain wrote meanwhile is dropped or becomes an update).
    """
    gateway, mapping, settings = runtime.salesforce, ctx.mapping, runtime.settings
    failures: dict[str, Failure] = {}
    ids: dict[str, Mapping[str, str]] = {}
    contacts = _Contacts()
    succeeded: tuple[str, ...] = ()
    superseded = 0
    stopped: SyncError | None = None
    try:
        results = _write_step(gateway, ACCOUNT, mapping.key_field(ACCOUNT), plan.accounts, settings)
        ids[ACCOUNT] = _results_ids(results)
        failures.update(failures_by_order(results, plan.account_orders, "account"))
        _write_contacts(runtime, ctx, plan, contacts, failures)
        remaining = plan.without_orders(failures, mapping)
        if recheck_plan is not None:
            remaining, superseded = recheck_plan(remaining)
        key = mapping.key_field(OPPORTUNITY)
        bodies = _link_contacts(remaining, key, {**plan.linked_contacts, **contacts.guest_ids})
        results = _write_step(gateway, OPPORTUNITY, key, bodies, settings)
        ids[OPPORTUNITY] = _results_ids(results)
        failures.update(failures_by_order(results, None, "opportunity"))
        succeeded = tuple(r.key for r in results if r.success)
        for order_id, contact_id in plan.linked_contacts.items():
            contacts.ids.setdefault(order_id, contact_id)
    except SyncError as exc:
        if dispose(exc, 0, utcnow(), BackoffPolicy()).kind != "hold":
            raise
        stopped = exc  # nothing is lost: the next run finds the same gaps
    if contacts.upserted is not None:
        ids[CONTACT] = contacts.upserted
    return Written(failures, ids, contacts.ids, succeeded, superseded, stopped)


@dataclass
class _Contacts:
    """What the Contact writes of one plan gave (filled in while they are written)."""

    ids: dict[str, str] = field(default_factory=dict)  # order → its Contact's id
    guest_ids: dict[str, str] = field(default_factory=dict)  # order → its guest's new Contact
    upserted: dict[str, str] | None = None  # key → Id of the Contacts upserted by key


def _results_ids(results: list[RecordResult]) -> dict[str, str]:
    return {r.key: r.id for r in results if r.success and r.id}


# Contact writes in order: upserts by key, adoptions by Id, then guests' new Contacts.
def _contact_writes(plan: RepairPlan, key_field: str) -> list[tuple[str, str, list[Any], Any]]:
    return [
        ("upsert", key_field, plan.contacts, plan.contact_orders),
        ("update", "Id", plan.adoptions, plan.adoption_orders),
        ("insert", key_field, plan.guest_contacts, plan.guest_orders),
    ]


def _write_contacts(
    runtime: Runtime,
    ctx: SyncContext,
    plan: RepairPlan,
    found: _Contacts,
    failures: dict[str, Failure],
) -> None:
    """Write every Contact of the plan, noting each order's Contact Id, and its failure unless
    its Account failed first."""
    for operation, key_field, records, orders_of in _contact_writes(
        plan, ctx.mapping.key_field(CONTACT)
    ):
        results = _write_step(
            runtime.salesforce, CONTACT, key_field, records, runtime.settings, operation
        )
        for order_id, failure in failures_by_order(results, orders_of, "contact").items():
            failures.setdefault(order_id, failure)
        for key, contact_id in _results_ids(results).items():
            for order_id in orders_of.get(key, []):
                found.ids[order_id] = contact_id
                if operation == "insert":
                    found.guest_ids[order_id] = contact_id
        if operation == "upsert":
            found.upserted = _results_ids(results)


def _link_contacts(plan: RepairPlan, key: str, contact_ids: Mapping[str, str]) -> list[Any]:
    """Create bodies with the ``ContactId`` of a guest's Contact (found or just created);
    never an update (``ContactId`` is create-only)."""
    linked = []
    for body in plan.opportunities:
        order_id = str(body.get(key))
        if order_id in contact_ids and plan.actions.get(order_id) == "create":
            body = {**body, "ContactId": contact_ids[order_id]}
        linked.append(body)
    return linked


def _write_step(
    gateway: SalesforcePort,
    sobject: str,
    key_field: str,
    records: list[dict[str, Any]],
    retries: Any,
    operation: str = "upsert",
) -> list[RecordResult]:
    name = f"write {sobject}" if operation == "upsert" else f"{operation} {sobject}"
    if operation == "insert":
        create = with_retries(create_contacts, retries).with_options(task_run_name=name)
        return create(gateway, key_field, records)
    step = with_retries(write_records, retries).with_options(task_run_name=name)
    return step(gateway, sobject, key_field, records, operation)


@task(name="write-salesforce", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def write_records(
    gateway: SalesforcePort,
    sobject: str,
    key_field: str,
    records: list[dict[str, Any]],
    operation: str = "upsert",
) -> list[RecordResult]:
    """Write one object's records (the adapter chooses sObject Collections or Bulk 2.0).

    ``upsert`` by the external id ``key_field``; ``update`` by ``Id``; ``insert`` (results
    matched back by ``key_field``, unique within ``records``).
    """
    if not records:
        return []
    return gateway.save_many(sobject, key_field, records, kind=_kind(operation))


def _kind(operation: str) -> WriteKind:
    if operation == "update":
        return "update"
    if operation == "insert":
        return "insert"
    return "upsert"


@task(name="find-contacts", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def find_contacts(
    gateway: SalesforcePort, key_field: str, emails: set[str]
) -> dict[str, list[Mapping[str, Any]]]:
    """The Contacts Salesforce holds with these e-mails (lower-cased e-mail → oldest first;
    the adapter chooses SOQL ``Email IN`` chunks or one Bulk 2.0 query)."""
    return contacts_with(gateway, key_field, emails)


@task(name="find-parents", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def find_parents(gateway: SalesforcePort, lookups: list[KeyLookup]) -> dict[str, set[str]]:
    """Per object, the keys of these Accounts and Contacts that Salesforce has (asked by
    external id, the queries bundled five to a call): those whose bodies carry a placeholder
    standing in for redacted buyer data, which an existing record must not get."""
    found = gateway.ids_by_keys(lookups)
    return {sobject: {k for k, v in ids.items() if v} for sobject, ids in found.items()}


def contacts_with(
    gateway: SalesforcePort, key_field: str, emails: set[str]
) -> dict[str, list[Mapping[str, Any]]]:
    """What :func:`find_contacts` returns, without the task around it."""
    if not emails:
        return {}
    found = gateway.contacts_by_emails(sorted(emails), key_field)
    return {email: list(contacts) for email, contacts in found.items()}


@task(name="create-contacts", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def create_contacts(
    gateway: SalesforcePort, key_field: str, records: list[dict[str, Any]]
) -> list[RecordResult]:
    """Create guests' Contacts (results keyed by ``Email``). Creating is not idempotent, so a
    retry first takes the Contacts an earlier attempt may have created, found by e-mail."""
    todo = records
    earlier: list[RecordResult] = []
    if _retrying():
        found = contacts_with(gateway, key_field, {str(r["Email"]).lower() for r in records})
        todo = []
        for record in records:
            existing = found.get(str(record["Email"]).lower())
            if existing:
                earlier.append(RecordResult(str(record["Email"]), True, str(existing[0]["Id"])))
            else:
                todo.append(record)
    return earlier + write_records.fn(gateway, CONTACT, "Email", todo, "insert")


def _retrying() -> bool:
    try:
        return get_run_context().task_run.run_count > 1  # type: ignore[union-attr]
    except Exception:
        return False
