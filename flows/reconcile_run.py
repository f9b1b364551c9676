"""The reconcile run: Prefect tasks and the steps the ``reconcile`` flow orchestrates.

The steps: list the window from Shopify into a spool file (GraphQL pages, or a bulk operation
for large windows); map it to the expected frame; read the Opportunities back (SOQL ``IN``
chunks, or a Bulk 2.0 query for large windows); diff; confirm orphans with Shopify; build the
repair plan; write it (Accounts, Contacts, then Opportunities; sObject Collections up to
``COLLECTION_MAX`` records per object, Bulk 2.0 above); dead-letter what Salesforce rejected;
record ledger entries, the run, a CSV and Prefect artifacts. ``dry_run`` stops before writing.
The pure diff lives in ``tasks.core.diff``; DESIGN.md §6.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context

from flows.reconcile_recovery import recover_abandoned_runs, this_host
from state import FailedRepair, FieldWarning, LedgerRecord, SyncRecord
from state.models import utcnow
from tasks.core.adoption import contacts_by_email
from tasks.core.diff import (
    REPORT_COLUMNS,
    ActualColumns,
    DiffResult,
    ExpectedColumns,
    Failure,
    RecordColumns,
    RepairPlan,
    confirm_orphans,
    diff,
    discrepancy_rows,
    failed_first,
    failures_by_order,
    flatten_for_bulk,
    opportunity_fields,
    opportunity_update,
    plan_repair,
    readback_fields,
    still_due,
)
from tasks.core.disposition import BackoffPolicy, dispose
from tasks.core.errors import InvalidOrder, RetryableError, SyncError
from tasks.core.mapping import (
    ACCOUNT,
    CONTACT,
    OPPORTUNITY,
    SalesforceRecords,
    map_order,
    skip_reason,
)
from tasks.core.orders import Order, parse_graphql_order
from tasks.core.topics import ORDER_TOPICS
from tasks.reporting.artifacts import publish_field_warnings
from tasks.reporting.dead_letter_board import publish_board
from tasks.reporting.field_warnings import field_warnings
from tasks.reporting.progress import report as report_progress
from tasks.reporting.reconcile_report import (
    csv_link,
    markdown_report,
    summary_line,
    table_description,
    table_rows,
    window_label,
)
from tasks.runtime import Runtime
from tasks.salesforce import RecordResult, SalesforceGateway, queries
from tasks.shopify.bulk import SpoolResult, existing_order_ids, read_spool, spool_window
from tasks.shopify.client import ORDER_FIELDS, ShopifyClient, ShopInfo, page_size_for
from tasks.steps import dead_letter, retry_if_transient, with_retries
from tasks.sync import SyncContext

CURSOR = "nightly"  # the name `shopsync status` reads
SOQL_IN_MAX = 2_000  # above this many orders, read Salesforce back with one Bulk 2.0 query
COLLECTION_MAX = 2_000  # above this many records of one object, write with Bulk 2.0 ingest
EMAIL_SOQL_MAX = 1_000  # above this many e-mails, find their Contacts with one Bulk 2.0 query
REPAIR_CHUNK = 10_000  # orders planned and written at a time (bounds the memory of a repair)
BULK_AFTER_PAGES = 10  # a window longer than this many GraphQL pages becomes a bulk operation
TABLE_ROWS = 200
READ_ALL_ORDERS_DAYS = 60
SOURCE = "reconcile"


# --------------------------------------------------------------------------------------------
# Run bookkeeping
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one reconcile run found and did (becomes the returned summary)."""

    mode: str
    window_start: datetime
    window_end: datetime
    dry_run: bool
    started: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=utcnow)
    status: str = "running"
    message: str = ""
    shopify_orders: int = 0
    listing: str = ""
    read_path: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    orphans: int = 0
    skipped: int = 0
    invalid: int = 0
    plan: dict[str, int] = field(default_factory=lambda: RepairPlan().counts())
    repaired: int = 0
    dead_lettered: int = 0
    retry_later: int = 0
    superseded: int = 0
    unreadable: dict[str, datetime] = field(default_factory=dict)
    api_calls: int | None = None
    write_calls: int | None = 0
    shopify_calls: int = 0
    report_csv: str | None = None
    cursor_advanced_to: str | None = None
    run_id: int | None = None
    field_warnings: int = 0  # values the repair wrote cut short or left out
    timezone: str | None = None  # the shop's (the report shows the window in it)
    dates: tuple[date, date] | None = None  # the shop dates asked for (a backfill)
    report_rows: int | None = None
    # order id → object → the Salesforce id the repair wrote (the report's repaired rows)
    written_ids: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    customers_read: dict[str, int] = field(default_factory=dict)  # Accounts/Contacts read back
    drifted_records: dict[str, int] = field(default_factory=dict)  # per object

    def summary(self) -> dict[str, Any]:
        """A plain dict (JSON-ready) of the run."""
        counts = {**self.counts, "orphan": self.orphans}
        if self.counts:
            counts["repaired"] = self.repaired
            counts["failed"] = self.dead_lettered + self.retry_later
        discrepancies = counts.get("missing", 0) + counts.get("drifted", 0)
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "message": self.message,
            "dry_run": self.dry_run,
            "window": window_label(self.window_start, self.window_end, self.timezone, self.dates),
            "timezone": self.timezone,
            "start_date": self.dates[0].isoformat() if self.dates else None,
            "end_date": self.dates[1].isoformat() if self.dates else None,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "shopify_orders": self.shopify_orders,
            "listing": self.listing,
            "salesforce_read": self.read_path,
            "counts": counts,
            "discrepancies": discrepancies,
            "needs_human": counts.get("duplicate", 0) + self.orphans,
            "skipped": self.skipped,
            "invalid": self.invalid,
            "plan": dict(self.plan),
            "repaired": self.repaired,
            "dead_lettered": self.dead_lettered,
            "retry_later": self.retry_later,
            "superseded": self.superseded,
            "unreadable": len(self.unreadable),
            "field_warnings": self.field_warnings,
            "customers_read": dict(self.customers_read),
            "drifted_records": dict(self.drifted_records),
            "salesforce_api_calls": self.api_calls,
            "salesforce_write_calls": self.write_calls,
            "shopify_calls": self.shopify_calls,
            "duration_seconds": round(time.monotonic() - self.started, 3),
            "report_csv": self.report_csv,
            "report_rows": self.report_rows,
            "cursor_advanced_to": self.cursor_advanced_to,
        }


def shop_window(start: date, end: date, timezone: str) -> tuple[datetime, datetime]:
    """``[start 00:00, end+1 00:00)`` in the shop's timezone, as UTC (``end`` is inclusive)."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    zone = ZoneInfo(timezone)
    lo = datetime.combine(start, dtime(0), zone).astimezone(UTC)
    hi = datetime.combine(end + timedelta(days=1), dtime(0), zone).astimezone(UTC)
    return lo, hi


def nightly_window(
    cursor: datetime | None, signpost: datetime, lookback_hours: int
) -> tuple[datetime, datetime]:
    """``[cursor − lookback, signpost)``; without a cursor, the lookback before the signpost."""
    anchor = cursor if cursor is not None else signpost
    return anchor - timedelta(hours=lookback_hours), signpost


def created_before_window(
    bodies: Iterable[tuple[str, bytes]], start: datetime, end: datetime, cutoff: datetime
) -> dict[str, datetime]:
    """Orders (id → ``created_at``) whose webhook body shows an update in ``[start, end)`` and a
    creation before ``cutoff``: the listing of an ``updated_at`` window cannot show them when
    Shopify hides orders older than 60 days. Bodies that are not orders are passed over."""
    found: dict[str, datetime] = {}
    for order_id, body in bodies:
        try:
            data = json.loads(body)
            if str(data.get("id")) != order_id:
                continue  # a refund or another resource: its dates are not the order's
            created = datetime.fromisoformat(str(data["created_at"]))
            updated = datetime.fromisoformat(str(data["updated_at"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if created.tzinfo is None or updated.tzinfo is None:
            continue
        if start <= updated < end and created < cutoff:
            found[order_id] = created.astimezone(UTC)
    return found


def needs_read_all_orders(window_start: datetime, now: datetime, scopes: frozenset[str]) -> bool:
    """Whether the window reaches past Shopify's 60 days and the app lacks ``read_all_orders``."""
    if "read_all_orders" in scopes:
        return False
    return window_start < now - timedelta(days=READ_ALL_ORDERS_DAYS)


# --------------------------------------------------------------------------------------------
# Tasks (thin: one adapter call, or one pure step)
# --------------------------------------------------------------------------------------------


@task(name="list-shopify-window", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def list_shopify_window(
    shopify: ShopifyClient, start: datetime, end: datetime, path: Path
) -> SpoolResult:
    """Spool the window's orders (pages, or a bulk operation when large) to ``path``."""
    return spool_window(
        shopify,
        start,
        end,
        path,
        bulk_after_pages=BULK_AFTER_PAGES,
        bulk_over=BULK_AFTER_PAGES * page_size_for(ORDER_FIELDS),
    )


@dataclass
class Expected:
    """The expected frame plus what could not be expected."""

    frame: pd.DataFrame
    skipped: int
    invalid: dict[str, InvalidOrder]


def _orders(path: Path) -> Iterator[tuple[str, Order | InvalidOrder]]:
    for node in read_spool(path):
        try:
            order = parse_graphql_order(node)
        except InvalidOrder as exc:
            yield str(node.get("legacyResourceId") or node.get("id") or "?"), exc
            continue
        yield order.id, order


def _mapped(
    path: Path, ctx: SyncContext
) -> Iterator[tuple[str, Order | None, SalesforceRecords | InvalidOrder | None]]:
    """Every spooled order mapped (None for a skipped order, the error for an invalid one)."""
    for order_id, order in _orders(path):
        if isinstance(order, InvalidOrder):
            yield order_id, None, order
            continue
        if skip_reason(order, ctx.mapping) is not None:
            yield order_id, order, None
            continue
        try:
            yield order_id, order, map_order(order, ctx.mapping, ctx.org, ctx.shop_timezone)
        except InvalidOrder as exc:
            yield order_id, order, exc


@task(name="build-expected", cache_policy=NO_CACHE)
def build_expected(path: Path, ctx: SyncContext) -> Expected:
    """Map every spooled order to what Salesforce should hold."""
    columns = ExpectedColumns(ctx.mapping, multi_currency=ctx.org.multi_currency, org=ctx.org)
    skipped = 0
    invalid: dict[str, InvalidOrder] = {}
    for order_id, order, records in _mapped(path, ctx):
        if records is None:
            skipped += 1
        elif isinstance(records, InvalidOrder):
            invalid[order_id] = records
        else:
            columns.add(order.name if order else None, records, order.updated_at if order else None)
    return Expected(columns.frame(), skipped, invalid)


def close_date_range(
    start: datetime, end: datetime, timezone: str, offset_days: int
) -> tuple[date, date]:
    """CloseDates the window's newly created orders get (orphan candidates are read from it)."""
    zone = ZoneInfo(timezone)
    first = start.astimezone(zone).date() + timedelta(days=offset_days)
    last = (end - timedelta(microseconds=1)).astimezone(zone).date() + timedelta(days=offset_days)
    return first, last


@task(name="read-salesforce", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def read_salesforce(
    gateway: SalesforceGateway,
    ctx: SyncContext,
    order_ids: Sequence[str],
    close_dates: tuple[date, date],
) -> tuple[pd.DataFrame, str]:
    """The Opportunities of these orders, plus those with a CloseDate in range (orphan
    candidates): SOQL ``IN`` chunks for small windows, one Bulk 2.0 query for large ones."""
    key = ctx.mapping.key_field(OPPORTUNITY)
    fields = opportunity_fields(ctx.mapping, ctx.org)
    columns = ActualColumns(ctx.mapping, org=ctx.org)
    first, last = close_dates
    if len(order_ids) <= SOQL_IN_MAX:
        columns.extend(gateway.records_by_keys(OPPORTUNITY, key, list(order_ids), fields))
        columns.extend(
            gateway.query(queries.keyed_closing_between(OPPORTUNITY, key, fields, first, last))
        )
        return columns.frame(), "soql"
    wanted = set(order_ids)
    lo, hi = first.isoformat(), last.isoformat()
    for row in gateway.bulk_query(OPPORTUNITY, queries.keyed_records(OPPORTUNITY, key, fields)):
        close = row.get("CloseDate") or ""
        if row.get(key) in wanted or lo <= close <= hi:
            columns.add(row)
    return columns.frame(), "bulk"


@dataclass
class Customers:
    """The Accounts and Contacts read back (:class:`~tasks.core.diff.RecordColumns` frames)."""

    accounts: pd.DataFrame
    contacts: pd.DataFrame
    read_path: str = "soql"

    def counts(self) -> dict[str, int]:
        """Records read back per object."""
        return {ACCOUNT: len(self.accounts), CONTACT: len(self.contacts)}


def customer_keys(expected: pd.DataFrame, actual: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The Account and Contact keys of the orders whose Opportunity exists: only those can
    drift (a missing order's records are written whole anyway)."""
    present = expected[expected["order_id"].isin(set(actual["order_id"].dropna()))]
    accounts = sorted(set(present["account_key"].dropna()))
    contacts = sorted(set(present["contact_key"].dropna()))
    return accounts, contacts


@task(name="read-customers", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def read_customers(
    gateway: SalesforceGateway,
    ctx: SyncContext,
    account_keys: Sequence[str],
    contact_keys: Sequence[str],
) -> Customers:
    """The Accounts and Contacts of these keys, with the fields the mapping owns: SOQL ``IN``
    chunks (300 keys a query) up to ``SOQL_IN_MAX`` keys, one Bulk 2.0 query per object above;
    an object that owns no field is not read."""
    frames: dict[str, pd.DataFrame] = {}
    path = "soql"
    for sobject, keys in ((ACCOUNT, account_keys), (CONTACT, contact_keys)):
        columns = RecordColumns(sobject, ctx.mapping, ctx.org)
        key = ctx.mapping.key_field(sobject)
        fields = readback_fields(sobject, ctx.mapping, ctx.org)
        if not columns.rules:
            pass  # the object owns no field: nothing to compare, nothing to read
        elif len(keys) <= SOQL_IN_MAX:
            columns.extend(
                gateway.records_by_keys(sobject, key, list(keys), fields) if keys else []
            )
        else:
            path = "bulk"
            wanted = set(keys)
            soql = queries.keyed_records(sobject, key, fields)
            columns.extend(r for r in gateway.bulk_query(sobject, soql) if r.get(key) in wanted)
        frames[sobject] = columns.frame()
    return Customers(frames[ACCOUNT], frames[CONTACT], path)


@task(name="confirm-orphans", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def confirm_orphan_candidates(shopify: ShopifyClient, candidates: pd.DataFrame) -> pd.DataFrame:
    """Keep the candidate Opportunities whose order Shopify does not have."""
    if candidates.empty:
        return candidates
    known = existing_order_ids(shopify, candidates["order_id"].dropna().tolist())
    return confirm_orphans(candidates, known)


@dataclass
class Repair:
    """One chunk's repair plan, the order state each repaired order's ledger entry needs, and
    the mapped records (to re-plan an Opportunity the drain wrote meanwhile)."""

    plan: RepairPlan
    states: dict[str, tuple[datetime, str]]
    records: dict[str, SalesforceRecords] = field(default_factory=dict)


RepairItem = tuple[str, SalesforceRecords, Sequence[str], tuple[datetime, str]]


def repair_items(path: Path, ctx: SyncContext, result: DiffResult) -> Iterator[RepairItem]:
    """The orders to repair, mapped again (second pass over the spool), oldest update first."""
    wanted = set(result.ids("missing"))
    drift = result.drift_fields()
    wanted.update(drift)
    if not wanted:
        return
    for order_id, order, records in _mapped(path, ctx):
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


STATUS_OF_ACTION = {"create": "missing", "update": "drifted"}
ACTION_OF_STATUS = {status: action for action, status in STATUS_OF_ACTION.items()}
ALL_DRIFT = ("Name", "Amount", "Account")  # an Opportunity the drain created: relink it too


def recheck(
    chunk: list[RepairItem], ledger: dict[str, LedgerRecord], since: datetime
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


@task(name="find-contacts", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def find_contacts(
    gateway: SalesforceGateway, key_field: str, emails: set[str]
) -> dict[str, list[Mapping[str, Any]]]:
    """The Contacts Salesforce holds with these e-mails (lower-cased e-mail → oldest first):
    SOQL ``Email IN`` chunks for up to ``EMAIL_SOQL_MAX`` e-mails, one Bulk 2.0 query above."""
    return contacts_with(gateway, key_field, emails)


def contacts_with(
    gateway: SalesforceGateway, key_field: str, emails: set[str]
) -> dict[str, list[Mapping[str, Any]]]:
    """What :func:`find_contacts` returns, without the task around it."""
    if not emails:
        return {}
    if len(emails) <= EMAIL_SOQL_MAX:
        found = gateway.find_contacts_by_emails(sorted(emails), key_field)
        return {email: list(contacts) for email, contacts in found.items()}
    soql = queries.contacts_with_email(key_field)
    return contacts_by_email(gateway.bulk_query(CONTACT, soql), emails)


@task(name="create-contacts", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def create_contacts(
    gateway: SalesforceGateway, key_field: str, records: list[dict[str, Any]]
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


def build_repair(
    chunk: list[RepairItem], ctx: SyncContext, contacts: Mapping[str, Any] | None = None
) -> Repair:
    """The repair plan of one chunk of orders (``contacts``: what ``find_contacts`` found)."""
    plan = plan_repair(((s, r, d) for s, r, d, _ in chunk), ctx.mapping, contacts)
    return Repair(
        plan,
        {records.order_key: state for _, records, _, state in chunk},
        {records.order_key: records for _, records, _, _ in chunk},
    )


@task(name="write-salesforce", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def write_records(
    gateway: SalesforceGateway,
    sobject: str,
    key_field: str,
    records: list[dict[str, Any]],
    operation: str = "upsert",
) -> list[RecordResult]:
    """Write one object's records: sObject Collections for small sets, Bulk 2.0 above.

    ``upsert`` by the external id ``key_field``; ``update`` by ``Id``; ``insert`` (results
    matched back by ``key_field``, unique within ``records``).
    """
    if not records:
        return []
    if len(records) <= COLLECTION_MAX:
        if operation == "update":
            return gateway.update_collection(sobject, records)
        if operation == "insert":
            return gateway.insert_collection(sobject, key_field, records)
        return gateway.upsert_collection(sobject, key_field, records)
    rows = [flatten_for_bulk(r) for r in records]
    if operation == "update":
        return gateway.bulk_update(sobject, rows)
    if operation == "insert":
        return gateway.bulk_insert(sobject, key_field, rows)
    return gateway.bulk_upsert(sobject, key_field, rows)


# --------------------------------------------------------------------------------------------
# Repair orchestration
# --------------------------------------------------------------------------------------------


@dataclass
class Written:
    """Outcome of the writes."""

    failures: dict[str, Failure] = field(default_factory=dict)
    ids: dict[str, dict[str, str]] = field(default_factory=dict)  # object → key → Salesforce id
    contact_ids: dict[str, str] = field(default_factory=dict)  # order → its Contact's id
    succeeded: list[str] = field(default_factory=list)
    superseded: int = 0  # orders the drain wrote while the run was under way
    stopped: SyncError | None = None


def _results_ids(results: list[RecordResult]) -> dict[str, str]:
    return {r.key: r.id for r in results if r.success and r.id}


def _write_step(
    gateway: SalesforceGateway,
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


# Contact writes in order: upserts by key, adoptions by Id, then guests' new Contacts.
def _contact_writes(plan: RepairPlan, key_field: str) -> list[tuple[str, str, list[Any], Any]]:
    return [
        ("upsert", key_field, plan.contacts, plan.contact_orders),
        ("update", "Id", plan.adoptions, plan.adoption_orders),
        ("insert", key_field, plan.guest_contacts, plan.guest_orders),
    ]


def _write_contacts(
    runtime: Runtime, ctx: SyncContext, plan: RepairPlan, written: Written
) -> dict[str, str]:
    """Write every Contact of the plan; returns the new Contact Id of each guest order."""
    guest_ids: dict[str, str] = {}
    for operation, key_field, records, orders_of in _contact_writes(
        plan, ctx.mapping.key_field(CONTACT)
    ):
        results = _write_step(
            runtime.salesforce, CONTACT, key_field, records, runtime.settings, operation
        )
        lost = failures_by_order(results, orders_of, "contact")
        for order_id, failure in lost.items():
            written.failures.setdefault(order_id, failure)
        for key, contact_id in _results_ids(results).items():
            for order_id in orders_of.get(key, []):
                written.contact_ids[order_id] = contact_id
                if operation == "insert":
                    guest_ids[order_id] = contact_id
        if operation == "upsert":
            written.ids[CONTACT] = _results_ids(results)
    return guest_ids


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


Recheck = Callable[[RepairPlan], tuple[RepairPlan, int]]


def repair(
    runtime: Runtime, ctx: SyncContext, plan: RepairPlan, recheck_plan: Recheck | None = None
) -> Written:
    """Write the plan in order; parents' failures keep their children from being written.

    ``recheck_plan`` runs just before the Opportunities are written and returns the plan as it
    still stands (an order the drain wrote meanwhile is dropped or becomes an update).
    """
    gateway, mapping, settings = runtime.salesforce, ctx.mapping, runtime.settings
    written = Written()
    try:
        results = _write_step(gateway, ACCOUNT, mapping.key_field(ACCOUNT), plan.accounts, settings)
        written.ids[ACCOUNT] = _results_ids(results)
        written.failures.update(failures_by_order(results, plan.account_orders, "account"))
        guest_ids = _write_contacts(runtime, ctx, plan, written)
        remaining = plan.without_orders(written.failures, mapping)
        if recheck_plan is not None:
            remaining, written.superseded = recheck_plan(remaining)
        key = mapping.key_field(OPPORTUNITY)
        links = {**plan.linked_contacts, **guest_ids}
        bodies = _link_contacts(remaining, key, links)
        results = _write_step(gateway, OPPORTUNITY, key, bodies, settings)
        written.ids[OPPORTUNITY] = _results_ids(results)
        lost = failures_by_order(results, None, "opportunity")
        written.failures.update(lost)
        written.succeeded = [r.key for r in results if r.success]
        for order_id, contact_id in plan.linked_contacts.items():
            written.contact_ids.setdefault(order_id, contact_id)
    except SyncError as exc:
        if dispose(exc, 0, utcnow(), BackoffPolicy()).kind != "hold":
            raise
        written.stopped = exc  # nothing is lost: the next run finds the same gaps
    return written


def chunk_field_warnings(
    chunk: list[RepairItem], result: DiffResult, ctx: SyncContext
) -> list[FieldWarning]:
    """The values of a repair chunk's orders that are cut or left out in what it writes."""
    records = [item[1] for item in chunk]
    orders = result.orders
    named = orders[orders["order_id"].isin([r.order_key for r in records])]
    names = dict(zip(named["order_id"], named["order_name"], strict=True))
    return [
        warning
        for r in records
        for warning in field_warnings(r.order_key, names.get(r.order_key), r, ctx.org)
    ]


def record_field_warnings(
    runtime: Runtime, warnings: list[FieldWarning], written: Written
) -> list[FieldWarning]:
    """Record the field warnings of the orders the repair wrote; returns those warnings."""
    succeeded = set(written.succeeded)
    kept = [w for w in warnings if w.order_id in succeeded]
    runtime.store.record_field_warnings(kept, path=SOURCE, run_id=_flow_run_id())
    return kept


def _dead_letter(runtime: Runtime, failure: Failure) -> None:
    runtime.store.add_dead_letter(
        failure.order_id,
        source=SOURCE,
        stage=failure.stage,
        error_code=failure.code,
        message=failure.message,
        fields=list(failure.fields),
        errors=[{**e.as_dict(), "stage": failure.stage} for e in failure.errors] or None,
    )


def _dead_letter_invalid(runtime: Runtime, invalid: dict[str, InvalidOrder]) -> None:
    for order_id, exc in invalid.items():
        dead_letter(runtime.store, order_id, exc, source=SOURCE, payload=None, stage="map")


def settle(
    runtime: Runtime,
    plan: RepairPlan,
    repair_states: dict[str, tuple[datetime, str]],
    written: Written,
    *,
    nightly: bool = False,
) -> tuple[int, int, int]:
    """Ledger entries for repaired orders; dead letters for permanent failures, and (on a
    nightly run) for transient ones that failed on ``reconcile_max_failed_nights`` nights.

    Returns (repaired, dead-lettered, left for a later run).
    """
    account_ids = written.ids.get(ACCOUNT, {})
    opportunity_ids = written.ids.get(OPPORTUNITY, {})
    account_of = {
        order_id: account_key
        for account_key, orders in plan.account_orders.items()
        for order_id in orders
    }
    open_letters = {letter.order_id for letter in runtime.store.dead_letters()}
    synced = []
    for order_id in written.succeeded:
        updated_at, payload_hash = repair_states[order_id]
        synced.append(
            SyncRecord(
                order_id,
                updated_at,
                payload_hash,
                account_ids.get(account_of.get(order_id, "")),
                written.contact_ids.get(order_id),
                opportunity_ids.get(order_id),
            )
        )
    runtime.store.record_syncs(synced)
    for order_id in written.succeeded:
        if order_id in open_letters:
            runtime.store.resolve_dead_letters(order_id, "reconciled")
    nights = _failed_nights(runtime, written, nightly)
    policy = BackoffPolicy.nightly(runtime.settings.reconcile_max_failed_nights)
    now = utcnow()
    dead = later = 0
    settled = list(written.succeeded)
    for failure in written.failures.values():
        # A manual run counts no nights (attempts 0): its transient failures are left for later.
        decision = dispose(failure.classified, nights.get(failure.order_id, 0), now, policy)
        if decision.kind in {"retry", "hold"}:
            later += 1
            continue
        if failure.transient:
            failure = replace(
                failure,
                message=f"failed on {nights[failure.order_id]} nightly runs, last: "
                f"{failure.message}",
            )
        _dead_letter(runtime, failure)
        dead += 1
        settled.append(failure.order_id)
    runtime.store.clear_failed_nights(settled)
    return len(written.succeeded), dead, later


def _failed_nights(runtime: Runtime, written: Written, nightly: bool) -> dict[str, int]:
    """On a nightly run, count one more failed night per transient failure (else nothing)."""
    if not nightly:
        return {}
    transient = [
        FailedRepair(f.order_id, f.stage, f.code, f.message)
        for f in written.failures.values()
        if f.transient
    ]
    return runtime.store.count_failed_night(transient) if transient else {}


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def write_csv(table: pd.DataFrame, directory: Path, run_id: int) -> Path:
    """The full discrepancy table as CSV in ``<data_dir>/reports``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"reconcile-{run_id}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.csv"
    table.to_csv(path, index=False)
    return path


class Progress:
    """A Prefect progress artifact, moved forward step by step (best effort)."""

    def __init__(self, key: str) -> None:
        try:
            # sync_compatible: a UUID when called from synchronous code, as here
            self.id: UUID | None = create_progress_artifact(  # type: ignore[assignment]
                0.0, key=key, description="reconcile progress"
            )
        except Exception:  # pragma: no cover - artifacts are reporting, never a failure
            self.id = None

    def set(self, value: float) -> None:
        """Move to ``value`` percent."""
        if self.id is not None:
            try:
                update_progress_artifact(self.id, value)
            except Exception:  # pragma: no cover
                self.id = None


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def _flow_run_id() -> str | None:
    try:
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    except Exception:
        return None


@task(name="read-api-usage", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def read_api_usage(gateway: SalesforceGateway) -> int:
    """The org's API usage just before this one ``/limits`` call.

    The gateway reads ``Sforce-Limit-Info`` from REST responses only (simple-salesforce's Bulk 2.0
    client does not record it), so after bulk calls the usage must be asked for.
    """
    gateway.limits()
    return (_api_used(gateway) or 1) - 1


def _fresh_usage(runtime: Runtime) -> int | None:
    """Usage for the run's bookkeeping; unknown (None) rather than a failed run if unreadable."""
    try:
        return with_retries(read_api_usage, runtime.settings)(runtime.salesforce)
    except RetryableError:
        return None


@task(name="read-shop", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def read_shop(shopify: ShopifyClient) -> ShopInfo:
    """The shop's scopes and timezone."""
    return shopify.shop_info()


@task(name="read-org", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def read_org(runtime: Runtime) -> SyncContext:
    """The sync context: the org schema (describe, cached) and the shop timezone."""
    return runtime.sync_context()


def _minus(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def _api_used(gateway: SalesforceGateway) -> int | None:
    usage = gateway.api_usage
    return None if usage is None else usage.used


def _all_accounted(run: Run, written: Written | None) -> bool:
    """Every order of the window is in Salesforce or dead-lettered (nightly cursor rule)."""
    if run.dry_run or run.status not in {"ok", "repaired_with_failures"}:
        return False
    stopped = written is not None and written.stopped is not None
    return not (run.retry_later or stopped)


SCOPE_MESSAGE = (
    "The window starts more than 60 days ago and the app lacks the read_all_orders scope: "
    "Shopify hides those orders, so they cannot be listed or reported as missing. Grant "
    "read_all_orders (or reconcile the last 60 days only)."
)


UNREADABLE_MESSAGE = (
    "{count} orders updated in this window were created more than {days} days ago and the app "
    "lacks the read_all_orders scope: Shopify hides them, so this run could not check them "
    "(they are listed in the report as 'unreadable'). Grant read_all_orders."
)


@dataclass
class Comparison:
    """What the comparison phase produced."""

    result: DiffResult
    orphans: pd.DataFrame
    invalid: dict[str, InvalidOrder]


def compare(runtime: Runtime, run: Run, ctx: SyncContext, spool: Path) -> Comparison:
    """List Shopify, read Salesforce back, diff, confirm orphans."""
    settings, gateway = runtime.settings, runtime.salesforce
    listed = with_retries(list_shopify_window, settings)(
        runtime.shopify, run.window_start, run.window_end, spool
    )
    run.shopify_orders, run.listing = listed.orders, listed.method
    report_progress("listing", listed.orders, listed.orders)
    expected = build_expected(spool, ctx)
    run.skipped, run.invalid = expected.skipped, len(expected.invalid)
    close_dates = close_date_range(
        run.window_start, run.window_end, ctx.shop_timezone, ctx.mapping.close_date_offset_days
    )
    expected_orders = len(expected.frame)
    report_progress("diff", 0, expected_orders)
    actual, run.read_path = with_retries(read_salesforce, settings)(
        gateway, ctx, expected.frame["order_id"].tolist(), close_dates
    )
    accounts, contacts = customer_keys(expected.frame, actual)
    customers = with_retries(read_customers, settings)(gateway, ctx, accounts, contacts)
    run.customers_read = customers.counts()
    result = diff(
        expected.frame,
        actual,
        compare_currency=ctx.org.multi_currency,
        accounts=customers.accounts,
        contacts=customers.contacts,
    )
    run.drifted_records = result.drifted_records()
    del actual  # both frames are done with: free them before the repair
    expected.frame = expected.frame.iloc[0:0]
    run.counts = result.counts()
    orphans: pd.DataFrame = with_retries(confirm_orphan_candidates, settings)(
        runtime.shopify, result.candidates
    )
    run.orphans = len(orphans)
    report_progress("diff", expected_orders, expected_orders)
    return Comparison(result, orphans, expected.invalid)


def plan_chunk(runtime: Runtime, run: Run, ctx: SyncContext, chunk: list[RepairItem]) -> Repair:
    """Re-check the chunk against the ledger, look up its e-mails' Contacts, plan it."""
    ledger = runtime.store.ledger_many(records.order_key for _, records, _, _ in chunk)
    chunk, superseded = recheck(chunk, ledger, run.started_at)
    run.superseded += superseded
    emails = adoption_emails(chunk)
    contacts = None
    if emails:
        key_field = ctx.mapping.key_field(CONTACT)
        contacts = with_retries(find_contacts, runtime.settings)(
            runtime.salesforce, key_field, emails
        )
    return build_repair(chunk, ctx, contacts)


def recheck_plan(
    runtime: Runtime, run: Run, ctx: SyncContext, fix: Repair, plan: RepairPlan
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
        action = still_due(planned, fix.states[order_id][0], ledger.get(order_id), run.started_at)
        if action is None:
            continue
        if action != planned:
            body = opportunity_update(fix.records[order_id], ctx.mapping, relink=True)
        bodies.append(body)
        actions[order_id] = action
    dropped = len(plan.opportunities) - len(bodies)
    return replace(plan, opportunities=bodies, actions=actions), dropped


def written_ids(plan: RepairPlan, written: Written) -> dict[str, dict[str, str]]:
    """Order id → the Salesforce ids its repair wrote or linked (Opportunity; Account and
    Contact when this write knew them), for every order whose Opportunity was written."""
    accounts = written.ids.get(ACCOUNT, {})
    opportunities = written.ids.get(OPPORTUNITY, {})
    account_of = {o: key for key, orders in plan.account_orders.items() for o in orders}
    found: dict[str, dict[str, str]] = {}
    for order_id in written.succeeded:
        ids = {
            OPPORTUNITY: opportunities.get(order_id),
            ACCOUNT: accounts.get(account_of.get(order_id, "")),
            CONTACT: written.contact_ids.get(order_id),
        }
        found[order_id] = {sobject: sf_id for sobject, sf_id in ids.items() if sf_id}
    return found


def order_names(result: DiffResult, order_ids: Iterable[str]) -> dict[str, str]:
    """The names (``#1301``) of these orders, as the listing had them."""
    wanted = set(order_ids)
    orders = result.orders[result.orders["order_id"].isin(wanted)]
    return {
        str(order_id): str(name)
        for order_id, name in zip(orders["order_id"], orders["order_name"], strict=True)
        if name and name != order_id
    }


def repair_window(
    runtime: Runtime, run: Run, ctx: SyncContext, spool: Path, found: Comparison
) -> tuple[dict[str, Failure], Written | None]:
    """Plan (and unless dry-run, write) the repair chunk by chunk; dead-letter what fails."""
    failures: dict[str, Failure] = {}
    written: Written | None = None
    recorded: list[FieldWarning] = []
    if not run.dry_run:
        _dead_letter_invalid(runtime, found.invalid)
        run.dead_lettered += len(found.invalid)
    writing = not run.dry_run and bool(run.counts["missing"] or run.counts["drifted"])
    before = _fresh_usage(runtime) if writing else None
    before_writes = None if before is None else before + 1
    todo, done = run.counts["missing"] + run.counts["drifted"], 0
    report_progress("repair", 0, todo)
    for chunk in chunks(repair_items(spool, ctx, found.result), REPAIR_CHUNK):
        warnings = chunk_field_warnings(chunk, found.result, ctx)
        fix = plan_chunk(runtime, run, ctx, chunk)
        done += len(chunk)
        del chunk
        _add(run.plan, fix.plan.counts())
        if run.dry_run or not len(fix.plan):
            report_progress("repair", done, todo)
            continue
        written = repair(
            runtime,
            ctx,
            fix.plan,
            lambda plan, fix=fix: recheck_plan(runtime, run, ctx, fix, plan),  # type: ignore[misc]
        )
        failures.update(written.failures)
        repaired, dead, later = settle(
            runtime, fix.plan, fix.states, written, nightly=run.mode == "nightly"
        )
        run.superseded += written.superseded
        run.written_ids.update(written_ids(fix.plan, written))
        recorded += record_field_warnings(runtime, warnings, written)
        run.field_warnings = len(recorded)
        run.repaired += repaired
        run.dead_lettered += dead
        run.retry_later += later
        report_progress("repair", done, todo)
        if written.stopped is not None:
            run.message = f"writes stopped: {written.stopped}"
            break
    publish_field_warnings(recorded, key=f"reconcile-{run.mode}-field-warnings")
    if not run.dry_run and (run.dead_lettered or run.repaired):
        runtime.store.name_dead_letters(order_names(found.result, failures))
        publish_board(runtime.store)
    if writing:
        run.write_calls = _minus(_fresh_usage(runtime), before_writes)
    elif run.read_path == "bulk":
        _fresh_usage(runtime)  # bulk reads leave the gateway's usage figure stale
    return failures, written


def report(
    runtime: Runtime,
    run: Run,
    found: Comparison,
    failures: dict[str, Failure],
    *,
    stopped: bool = False,
) -> None:
    """The full CSV in ``<data_dir>/reports``, published as a table artifact (failed rows
    first, capped at ``TABLE_ROWS``) and a link artifact to the file."""
    table = discrepancy_rows(
        found.result,
        found.orphans,
        failures,
        dry_run=run.dry_run,
        written=run.written_ids,
        stopped=stopped,
    )
    extra = [invalid_rows(found.invalid, dry_run=run.dry_run), unreadable_rows(run.unreadable)]
    frames = [frame for frame in (table, *extra) if not frame.empty]
    if frames:
        table = failed_first(pd.concat(frames, ignore_index=True))
    assert run.run_id is not None
    csv_path = write_csv(table, runtime.settings.data_dir / "reports", run.run_id)
    run.report_csv, run.report_rows = str(csv_path), len(table)
    publish_report(table, csv_path, run.mode)


def publish_report(table: pd.DataFrame, csv_path: Path, mode: str) -> None:
    """The discrepancy table and a link to its CSV as Prefect artifacts (best effort)."""
    rows = table_rows(table, TABLE_ROWS)
    try:
        if rows:
            create_table_artifact(
                rows,
                key=f"reconcile-discrepancies-{mode}",
                description=table_description(len(table), len(rows), str(csv_path)),
            )
        create_link_artifact(
            str(csv_link(str(csv_path))),
            link_text=f"{csv_path.name} ({len(table)} rows)",
            key=f"reconcile-report-csv-{mode}",
            description=f"The full discrepancy CSV, failed rows first, on {this_host()}: "
            f"`{csv_path}` (the link opens on that machine).",
        )
    except Exception:  # pragma: no cover - reporting never fails the run
        get_run_logger().warning("could not publish the reconcile discrepancy artifacts")


def invalid_rows(invalid: Mapping[str, InvalidOrder], *, dry_run: bool) -> pd.DataFrame:
    """Report rows for the orders that cannot be mapped (a real run dead-letters them)."""
    return pd.DataFrame(
        {
            "order_id": list(invalid),
            "status": ["invalid"] * len(invalid),
            "outcome": ["would fail: cannot be mapped" if dry_run else "failed"] * len(invalid),
            "error": [f"map: {exc}" for exc in invalid.values()],
        },
        columns=list(REPORT_COLUMNS),
    ).astype(object)


def unreadable_rows(unreadable: Mapping[str, datetime]) -> pd.DataFrame:
    """Report rows for the orders of the window Shopify hides from this app."""
    return pd.DataFrame(
        {
            "order_id": list(unreadable),
            "status": ["unreadable"] * len(unreadable),
            "outcome": ["not checked: Shopify hides it from this app"] * len(unreadable),
            "detail": [
                f"updated in the window but created {created:%Y-%m-%d}, more than "
                f"{READ_ALL_ORDERS_DAYS} days ago: Shopify hides it without read_all_orders"
                for created in unreadable.values()
            ],
        },
        columns=list(REPORT_COLUMNS),
    ).astype(object)


def execute(runtime: Runtime, run: Run, *, advance: bool) -> dict[str, Any]:
    """One reconcile run over ``[run.window_start, run.window_end)``."""
    shop = with_retries(read_shop, runtime.settings)(runtime.shopify)
    run.timezone = run.timezone or runtime.settings.shop_timezone or shop.timezone
    shopify_before = runtime.shopify.calls - 1
    recover_abandoned_runs(runtime.store, runtime.settings.data_dir / "reconcile", utcnow())
    run.run_id = runtime.store.start_run(
        run.mode,
        run.window_start,
        run.window_end,
        dry_run=run.dry_run,
        flow_run_id=_flow_run_id(),
        host=this_host(),
        pid=os.getpid(),
    )
    progress = Progress(f"reconcile-progress-{run.mode}")
    try:
        if needs_read_all_orders(run.window_start, utcnow(), shop.scopes):
            run.status, run.message = "incomplete_scope", SCOPE_MESSAGE
            return _finish(runtime, run, None, shopify_before, progress)
        if "read_all_orders" not in shop.scopes:
            cutoff = utcnow() - timedelta(days=READ_ALL_ORDERS_DAYS)
            bodies = runtime.store.order_bodies_received_since(run.window_start, ORDER_TOPICS)
            run.unreadable = created_before_window(bodies, run.window_start, run.window_end, cutoff)
        baseline = _fresh_usage(runtime)
        ctx = with_retries(read_org, runtime.settings)(runtime)
        spool = runtime.settings.data_dir / "reconcile" / f"run-{run.run_id}.jsonl"
        try:
            found = compare(runtime, run, ctx, spool)
            progress.set(50)
            failures, written = repair_window(runtime, run, ctx, spool, found)
            progress.set(90)
        finally:
            spool.unlink(missing_ok=True)
        report(runtime, run, found, failures, stopped=_stopped(written))
        run.status = _status(run, written)
        if run.unreadable:
            note = UNREADABLE_MESSAGE.format(count=len(run.unreadable), days=READ_ALL_ORDERS_DAYS)
            run.message = f"{run.message}; {note}" if run.message else note
        run.api_calls = _minus(_api_used(runtime.salesforce), baseline)
        if advance and _all_accounted(run, written):
            runtime.store.advance_cursor(CURSOR, run.window_end)
            run.cursor_advanced_to = run.window_end.isoformat()
        return _finish(runtime, run, None, shopify_before, progress)
    except Exception as exc:
        run.status = "failed"
        _finish(runtime, run, exc, shopify_before, progress)
        raise


def _stopped(written: Written | None) -> bool:
    return written is not None and written.stopped is not None


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value


def _status(run: Run, written: Written | None) -> str:
    if written is not None and written.stopped is not None:
        return "stopped"
    if run.dead_lettered or run.retry_later:
        return "repaired_with_failures"
    return "ok"


def _finish(
    runtime: Runtime,
    run: Run,
    error: BaseException | None,
    shopify_before: int,
    progress: Progress,
) -> dict[str, Any]:
    run.shopify_calls = runtime.shopify.calls - shopify_before
    summary = run.summary()
    get_run_logger().info("%s", summary_line(summary))
    if run.run_id is not None:
        runtime.store.finish_run(
            run.run_id, run.status, summary, error=None if error is None else str(error)
        )
    progress.set(100)
    try:
        create_markdown_artifact(
            markdown_report(summary),
            key=f"reconcile-{run.mode}",
            description="Reconcile run summary",
        )
    except Exception:  # pragma: no cover - reporting never fails the run
        get_run_logger().warning("could not create the reconcile report artifact")
    return summary
