"""Reconcile, step 4 (repair): the ``missing`` and ``drifted`` orders mapped again from the
spool, oldest update first, planned (:func:`tasks.core.repair_plan.plan_repair`) and — unless
it is a dry run — written (:mod:`flows.reconcile_write`) and settled
(:mod:`flows.reconcile_settle`) ``REPAIR_CHUNK`` orders at a time, which bounds the memory of a
large repair. Each chunk is re-checked against the ledger first, and the Opportunities once
more just before they are written: what the webhook path wrote meanwhile is never overwritten.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from flows.reconcile_list import mapped_orders
from flows.reconcile_read import Comparison
from flows.reconcile_run import Request, fresh_usage, minus
from flows.reconcile_settle import (
    chunk_field_warnings,
    dead_letter_invalid,
    order_names,
    record_field_warnings,
    settle,
    written_ids,
)
from flows.reconcile_write import find_contacts, find_parents, write_plan
from state import FieldWarning, LedgerRecord
from tasks.core.diff import DiffResult
from tasks.core.diff_report import Failure
from tasks.core.errors import SyncError
from tasks.core.mapping import CONTACT, OPPORTUNITY, SalesforceRecords
from tasks.core.repair_plan import (
    RepairPlan,
    opportunity_update,
    placeholder_keys,
    plan_repair,
    still_due,
)
from tasks.reporting.artifacts import publish_field_warnings
from tasks.reporting.dead_letter_board import publish_board
from tasks.reporting.progress import report as report_progress
from tasks.runtime import Runtime
from tasks.steps import with_retries
from tasks.sync import SyncContext, parent_lookups

REPAIR_CHUNK = 10_000  # orders planned and written at a time (bounds the memory of a repair)
STATUS_OF_ACTION = {"create": "missing", "update": "drifted"}
ACTION_OF_STATUS = {status: action for action, status in STATUS_OF_ACTION.items()}
ALL_DRIFT = ("Name", "Amount", "Account")  # an Opportunity the drain created: relink it too

# (status, mapped records, drift fields, (updated_at, payload hash)) of one order to repair
RepairItem = tuple[str, SalesforceRecords, Sequence[str], tuple[datetime, str]]


@dataclass(frozen=True)
class Repaired:
    """What the repair of a window did (a dry run: what it planned)."""

    failures: Mapping[str, Failure] = field(default_factory=dict)
    written_ids: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # order → ids
    plan: Mapping[str, int] = field(default_factory=lambda: RepairPlan().counts())
    repaired: int = 0
    dead_lettered: int = 0
    retry_later: int = 0
    superseded: int = 0  # orders the webhook path wrote while the run was under way
    field_warnings: int = 0  # values the repair wrote cut short or left out
    write_calls: int | None = 0
    stopped: SyncError | None = None  # a hold that stopped the writes

    @property
    def message(self) -> str:
        """Why the writes stopped early ('' when they did not)."""
        return "" if self.stopped is None else f"writes stopped: {self.stopped}"


def repair_window(
    runtime: Runtime, request: Request, ctx: SyncContext, spool: Path, found: Comparison
) -> Repaired:
    """Plan (and unless dry-run, write) the repair chunk by chunk; dead-letter what fails."""
    failures: dict[str, Failure] = {}
    ids: dict[str, Mapping[str, str]] = {}
    plan: dict[str, int] = RepairPlan().counts()
    recorded: list[FieldWarning] = []
    repaired = dead = later = superseded = 0
    stopped: SyncError | None = None
    if not request.dry_run:
        dead_letter_invalid(runtime, found.listing.invalid)
        dead += len(found.listing.invalid)
    todo, done = found.counts["missing"] + found.counts["drifted"], 0
    writing = not request.dry_run and bool(todo)
    before = fresh_usage(runtime) if writing else None
    before_writes = None if before is None else before + 1
    report_progress("repair", 0, todo)
    guests = found.result.guest_contacts()  # drifted guests' Contacts, updated by Id
    for chunk in chunks(repair_items(spool, ctx, found.result), REPAIR_CHUNK):
        warnings = chunk_field_warnings((item[1] for item in chunk), found.result, ctx)
        fix, dropped = plan_chunk(runtime, request, ctx, chunk, guests)
        superseded += dropped
        done += len(chunk)
        del chunk
        _add(plan, fix.plan.counts())
        if request.dry_run or not len(fix.plan):
            report_progress("repair", done, todo)
            continue
        recheck = partial(recheck_plan, runtime, request, ctx, fix)
        written = write_plan(runtime, ctx, fix.plan, recheck)
        failures.update(written.failures)
        nightly = request.mode == "nightly"
        chunk_repaired, chunk_dead, chunk_later = settle(
            runtime, fix.plan, fix.states, written, nightly=nightly
        )
        superseded += written.superseded
        ids.update(written_ids(fix.plan, written))
        recorded += record_field_warnings(runtime, warnings, written)
        repaired, dead, later = repaired + chunk_repaired, dead + chunk_dead, later + chunk_later
        report_progress("repair", done, todo)
        if written.stopped is not None:
            stopped = written.stopped
            break
    publish_field_warnings(recorded, key=f"reconcile-{request.mode}-field-warnings")
    if not request.dry_run and (dead or repaired):
        runtime.store.name_dead_letters(order_names(found.result, failures))
        publish_board(runtime.store)
    write_calls: int | None = 0
    if writing:
        write_calls = minus(fresh_usage(runtime), before_writes)
    elif found.read_path == "bulk":
        fresh_usage(runtime)  # bulk reads leave the gateway's usage figure stale
    return Repaired(
        failures, ids, plan, repaired, dead, later, superseded, len(recorded), write_calls, stopped
    )


def _add(total: dict[str, int], more: Mapping[str, int]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value


def repair_items(path: Path, ctx: SyncContext, result: DiffResult) -> Iterator[RepairItem]:
    """The orders to repair, mapped again (second pass over the spool), oldest update first."""
    wanted = set(result.ids("missing"))
    drift = result.drift_fields()
    wanted.update(drift)
    if not wanted:
        return
    for order_id, order, records in mapped_orders(path, ctx):
        if order_id not in wanted or order is None or not isinstance(records, SalesforceRecords):
            continue
        status = "drifted" if order_id in drift else "missing"
        yield status, records, drift.get(order_id, []), (order.updated_at, order.payload_hash())


def chunks(items: Iterator[RepairItem], size: int) -> Iterator[list[RepairItem]]:
    """Consecutive lists of at most ``size`` items."""
    chunk: list[RepairItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True)
class Repair:
    """One chunk's repair plan, the order state each repaired order's ledger entry needs, and
    the mapped records (to re-plan an Opportunity the drain wrote meanwhile)."""

    plan: RepairPlan
    states: Mapping[str, tuple[datetime, str]]
    records: Mapping[str, SalesforceRecords] = field(default_factory=dict)


def plan_chunk(
    runtime: Runtime,
    request: Request,
    ctx: SyncContext,
    chunk: list[RepairItem],
    guest_contacts: Mapping[str, str] | None = None,
) -> tuple[Repair, int]:
    """Re-check the chunk against the ledger, look up its e-mails' Contacts and which of the
    Accounts and Contacts it would write with placeholders exist, plan it; the plan and how
    many orders the ledger shows written meanwhile (dropped). ``guest_contacts``: drifted
    order → its guest's Contact Id (:meth:`~tasks.core.diff.DiffResult.guest_contacts`)."""
    ledger = runtime.store.ledger_many(records.order_key for _, records, _, _ in chunk)
    chunk, superseded = recheck(chunk, ledger, request.started_at)
    emails = adoption_emails(chunk)
    contacts = None
    if emails:
        key_field = ctx.mapping.key_field(CONTACT)
        contacts = with_retries(find_contacts, runtime.settings)(
            runtime.salesforce, key_field, emails
        )
    parents = placeholder_keys((s, r, d) for s, r, d, _ in chunk)
    existing = None
    if parents:
        existing = with_retries(find_parents, runtime.settings)(
            runtime.salesforce, parent_lookups(parents, ctx.mapping)
        )
    return build_repair(chunk, ctx, contacts, existing, guest_contacts), superseded


def recheck(
    chunk: list[RepairItem], ledger: Mapping[str, LedgerRecord], since: datetime
) -> tuple[list[RepairItem], int]:
    """The chunk as it still needs writing (``still_due`` per order), and how many orders
    the ledger shows already written meanwhile (dropped)."""
    kept: list[RepairItem] = []
    for status, records, drift_fields, state in chunk:
        action = still_due(ACTION_OF_STATUS[status], state[0], ledger.get(records.order_key), since)
        if action is None:
            continue
        if STATUS_OF_ACTION[action] != status:
            status, drift_fields = STATUS_OF_ACTION[action], ALL_DRIFT
        kept.append((status, records, drift_fields, state))
    return kept, len(chunk) - len(kept)


def adoption_emails(chunk: list[RepairItem]) -> set[str]:
    """The e-mails whose Contacts the plan must know: those of missing orders with a Contact."""
    return {
        str(records.contact_lookup_email).lower()
        for status, records, _, _ in chunk
        if status == "missing" and records.contact is not None and records.contact_lookup_email
    }


def build_repair(
    chunk: list[RepairItem],
    ctx: SyncContext,
    contacts: Mapping[str, Any] | None = None,
    existing: Mapping[str, Collection[str]] | None = None,
    guest_contacts: Mapping[str, str] | None = None,
) -> Repair:
    """The repair plan of one chunk of orders (``contacts``: what ``find_contacts`` found;
    ``existing``: what ``find_parents`` found; ``guest_contacts``: drifted guests' Contacts)."""
    plan = plan_repair(
        ((s, r, d) for s, r, d, _ in chunk), ctx.mapping, contacts, existing, guest_contacts
    )
    return Repair(
        plan,
        {records.order_key: state for _, records, _, state in chunk},
        {records.order_key: records for _, records, _, _ in chunk},
    )


def recheck_plan(
    runtime: Runtime, request: Request, ctx: SyncContext, fix: Repair, plan: RepairPlan
) -> tuple[RepairPlan, int]:
    """The Opportunities as they still need writing, read against the ledger just before the
    write: an order the drain wrote meanwhile is dropped, or updated without create-only fields."""
    ledger = runtime.store.ledger_many(plan.actions)
    key = ctx.mapping.key_field(OPPORTUNITY)
    bodies: list[dict[str, Any]] = []
    actions: dict[str, str] = {}
    for body in plan.opportunities:
        order_id = str(body.get(key))
        planned = plan.actions[order_id]
        since = request.started_at
        action = still_due(planned, fix.states[order_id][0], ledger.get(order_id), since)
        if action is None:
            continue
        if action != planned:
            body = opportunity_update(fix.records[order_id], ctx.mapping, relink=True)
        bodies.append(body)
        actions[order_id] = action
    dropped = len(plan.opportunities) - len(bodies)
    return replace(plan, opportunities=bodies, actions=actions), dropped
