"""The reconcile run: Prefect tasks and the steps the ``reconcile`` flow orchestrates.

The steps: list the window from Shopify into a spool file (GraphQL pages, or a bulk operation
for large windows); map it to the expected frame; read the Opportunities back (SOQL ``IN``
chunks, or a Bulk 2.0 query for large windows); diff; confirm orphans with Shopify; build the
repair plan; write it (Accounts, Contacts, then Opportunities; sObject Collections up to
``COLLECTION_MAX`` records per object, Bulk 2.0 above); dead-letter what Salesforce rejected;
record ledger entries, the run, a CSV and Prefect artifacts. ``dry_run`` stops before writing.
The pure diff lives in ``tasks.reconcile``; DESIGN.md §6.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from simple_salesforce import format_soql

from state import FieldWarning, SyncRecord
from state.models import utcnow
from tasks.errors import (
    AuthError,
    BudgetExhausted,
    InvalidOrder,
    RateLimited,
    RetryableError,
    SyncError,
)
from tasks.field_warnings import field_warnings
from tasks.mapping import (
    ACCOUNT,
    CONTACT,
    OPPORTUNITY,
    SalesforceRecords,
    map_order,
    skip_reason,
)
from tasks.orders import Order, parse_graphql_order
from tasks.reconcile import (
    ActualColumns,
    DiffResult,
    ExpectedColumns,
    Failure,
    RepairPlan,
    confirm_orphans,
    diff,
    discrepancy_rows,
    failures_by_order,
    flatten_for_bulk,
    opportunity_fields,
    plan_repair,
)
from tasks.runtime import Runtime
from tasks.salesforce import RecordResult, SalesforceGateway
from tasks.salesforce.errors import TRANSIENT_CODES
from tasks.shopify import ShopifyClient, ShopInfo
from tasks.shopify_bulk import SpoolResult, existing_order_ids, read_spool, spool_window
from tasks.steps import dead_letter, retry_if_transient, with_retries
from tasks.sync import SyncContext

CURSOR = "nightly"  # the name `shopsync status` reads
SOQL_IN_MAX = 2_000  # above this many orders, read Salesforce back with one Bulk 2.0 query
COLLECTION_MAX = 2_000  # above this many records of one object, write with Bulk 2.0 ingest
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
    api_calls: int | None = None
    write_calls: int | None = 0
    shopify_calls: int = 0
    report_csv: str | None = None
    cursor_advanced_to: str | None = None
    run_id: int | None = None
    field_warnings: int = 0  # values the repair wrote cut short or left out

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
            "field_warnings": self.field_warnings,
            "salesforce_api_calls": self.api_calls,
            "salesforce_write_calls": self.write_calls,
            "shopify_calls": self.shopify_calls,
            "duration_seconds": round(time.monotonic() - self.started, 3),
            "report_csv": self.report_csv,
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
    return spool_window(shopify, start, end, path, bulk_after_pages=BULK_AFTER_PAGES)


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
    columns = ExpectedColumns(ctx.mapping, multi_currency=ctx.org.multi_currency)
    skipped = 0
    invalid: dict[str, InvalidOrder] = {}
    for order_id, order, records in _mapped(path, ctx):
        if records is None:
            skipped += 1
        elif isinstance(records, InvalidOrder):
            invalid[order_id] = records
        else:
            columns.add(order.name if order else None, records)
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
    select = ", ".join(fields)
    columns = ActualColumns(ctx.mapping)
    first, last = close_dates
    if len(order_ids) <= SOQL_IN_MAX:
        columns.extend(gateway.records_by_keys(OPPORTUNITY, key, list(order_ids), fields))
        soql = format_soql(
            f"SELECT {select} FROM Opportunity WHERE {{:literal}} != null "  # noqa: S608
            "AND CloseDate >= {:literal} AND CloseDate <= {:literal}",
            key,
            first.isoformat(),
            last.isoformat(),
        )
        columns.extend(gateway.query(soql))
        return columns.frame(), "soql"
    wanted = set(order_ids)
    lo, hi = first.isoformat(), last.isoformat()
    soql = f"SELECT {select} FROM Opportunity WHERE {key} != null"  # noqa: S608
    for row in gateway.bulk_query(OPPORTUNITY, soql):
        close = row.get("CloseDate") or ""
        if row.get(key) in wanted or lo <= close <= hi:
            columns.add(row)
    return columns.frame(), "bulk"


@task(name="confirm-orphans", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def confirm_orphan_candidates(shopify: ShopifyClient, candidates: pd.DataFrame) -> pd.DataFrame:
    """Keep the candidate Opportunities whose order Shopify does not have."""
    if candidates.empty:
        return candidates
    known = existing_order_ids(shopify, candidates["order_id"].dropna().tolist())
    return confirm_orphans(candidates, known)


@dataclass
class Repair:
    """One chunk's repair plan and the order state each repaired order's ledger entry needs."""

    plan: RepairPlan
    states: dict[str, tuple[datetime, str]]


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


def build_repair(chunk: list[RepairItem], ctx: SyncContext) -> Repair:
    """The repair plan of one chunk of orders."""
    plan = plan_repair(((s, r, d) for s, r, d, _ in chunk), ctx.mapping)
    return Repair(plan, {records.order_key: state for _, records, _, state in chunk})


@task(name="write-salesforce", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def write_records(
    gateway: SalesforceGateway, sobject: str, key_field: str, records: list[dict[str, Any]]
) -> list[RecordResult]:
    """Upsert one object's records: sObject Collections for small sets, Bulk 2.0 above."""
    if not records:
        return []
    if len(records) <= COLLECTION_MAX:
        return gateway.upsert_collection(sobject, key_field, records)
    rows = [flatten_for_bulk(r) for r in records]
    return gateway.bulk_upsert(sobject, key_field, rows)


# --------------------------------------------------------------------------------------------
# Repair orchestration
# --------------------------------------------------------------------------------------------


@dataclass
class Written:
    """Outcome of the writes."""

    failures: dict[str, Failure] = field(default_factory=dict)
    ids: dict[str, dict[str, str]] = field(default_factory=dict)  # object → key → Salesforce id
    succeeded: list[str] = field(default_factory=list)
    stopped: SyncError | None = None


def _results_ids(results: list[RecordResult]) -> dict[str, str]:
    return {r.key: r.id for r in results if r.success and r.id}


def _write_step(
    gateway: SalesforceGateway,
    sobject: str,
    key_field: str,
    records: list[dict[str, Any]],
    retries: Any,
) -> list[RecordResult]:
    step = with_retries(write_records, retries).with_options(task_run_name=f"write {sobject}")
    return step(gateway, sobject, key_field, records)


def repair(runtime: Runtime, ctx: SyncContext, plan: RepairPlan) -> Written:
    """Write the plan in order; parents' failures keep their children from being written."""
    gateway, mapping, settings = runtime.salesforce, ctx.mapping, runtime.settings
    written = Written()
    try:
        for sobject, records, orders_of in (
            (ACCOUNT, plan.accounts, plan.account_orders),
            (CONTACT, plan.contacts, plan.contact_orders),
        ):
            results = _write_step(gateway, sobject, mapping.key_field(sobject), records, settings)
            written.ids[sobject] = _results_ids(results)
            lost = failures_by_order(results, orders_of, sobject.lower(), TRANSIENT_CODES)
            for order_id, failure in lost.items():
                written.failures.setdefault(order_id, failure)
        remaining = plan.without_orders(written.failures, mapping)
        key = mapping.key_field(OPPORTUNITY)
        results = _write_step(gateway, OPPORTUNITY, key, remaining.opportunities, settings)
        written.ids[OPPORTUNITY] = _results_ids(results)
        lost = failures_by_order(results, None, "opportunity", TRANSIENT_CODES)
        written.failures.update(lost)
        written.succeeded = [r.key for r in results if r.success]
    except (AuthError, BudgetExhausted, RateLimited) as exc:
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


def record_field_warnings(runtime: Runtime, warnings: list[FieldWarning], written: Written) -> int:
    """Record the field warnings of the orders the repair wrote; returns how many there were."""
    succeeded = set(written.succeeded)
    kept = [w for w in warnings if w.order_id in succeeded]
    runtime.store.record_field_warnings(kept, path=SOURCE, run_id=_flow_run_id())
    return len(kept)


def _dead_letter(runtime: Runtime, failure: Failure) -> None:
    runtime.store.add_dead_letter(
        failure.order_id,
        source=SOURCE,
        stage=failure.stage,
        error_code=failure.code,
        message=failure.message,
        fields=list(failure.fields),
    )


def _dead_letter_invalid(runtime: Runtime, invalid: dict[str, InvalidOrder]) -> None:
    for order_id, exc in invalid.items():
        dead_letter(runtime.store, order_id, exc, source=SOURCE, payload=None, stage="map")


def settle(
    runtime: Runtime,
    plan: RepairPlan,
    repair_states: dict[str, tuple[datetime, str]],
    written: Written,
    ctx: SyncContext,
) -> tuple[int, int, int]:
    """Ledger entries for repaired orders; dead letters for permanent failures.

    Returns (repaired, dead-lettered, left for a later run).
    """
    account_ids = written.ids.get(ACCOUNT, {})
    contact_ids = written.ids.get(CONTACT, {})
    opportunity_ids = written.ids.get(OPPORTUNITY, {})
    keys = _order_keys(plan, ctx)
    open_letters = {letter.order_id for letter in runtime.store.dead_letters()}
    synced = []
    for order_id in written.succeeded:
        updated_at, payload_hash = repair_states[order_id]
        account_key, contact_key = keys.get(order_id, (None, None))
        synced.append(
            SyncRecord(
                order_id,
                updated_at,
                payload_hash,
                account_ids.get(account_key or ""),
                contact_ids.get(contact_key or ""),
                opportunity_ids.get(order_id),
            )
        )
    runtime.store.record_syncs(synced)
    for order_id in written.succeeded:
        if order_id in open_letters:
            runtime.store.resolve_dead_letters(order_id, "reconciled")
    dead = later = 0
    for failure in written.failures.values():
        if failure.transient:
            later += 1
            continue
        _dead_letter(runtime, failure)
        dead += 1
    return len(written.succeeded), dead, later


def _order_keys(plan: RepairPlan, ctx: SyncContext) -> dict[str, tuple[str | None, str | None]]:
    keys: dict[str, tuple[str | None, str | None]] = {}
    for account_key, orders in plan.account_orders.items():
        for order_id in orders:
            keys[order_id] = (account_key, None)
    for contact_key, orders in plan.contact_orders.items():
        for order_id in orders:
            keys[order_id] = (keys.get(order_id, (None, None))[0], contact_key)
    return keys


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def write_csv(table: pd.DataFrame, directory: Path, run_id: int) -> Path:
    """The full discrepancy table as CSV in ``<data_dir>/reports``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"reconcile-{run_id}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.csv"
    table.to_csv(path, index=False)
    return path


def markdown_report(summary: dict[str, Any]) -> str:
    """The run summary as the markdown artifact."""
    counts = summary["counts"]
    plan = summary.get("plan") or {}
    lines = [
        f"# Reconcile {summary['mode']} — {summary['status']}",
        "",
        f"Window `{summary['window_start']}` → `{summary['window_end']}`"
        f"{' (dry run)' if summary['dry_run'] else ''}",
        "",
    ]
    if summary["message"]:
        lines += [f"> {summary['message']}", ""]
    lines += [
        "| measure | value |",
        "|---|---|",
        f"| Shopify orders in window | {summary['shopify_orders']} ({summary['listing']}) |",
        *(f"| {name} | {value} |" for name, value in counts.items()),
        f"| skipped / invalid | {summary['skipped']} / {summary['invalid']} |",
        f"| planned writes (Account / Contact / Opportunity) | {plan.get('accounts', 0)} / "
        f"{plan.get('contacts', 0)} / {plan.get('opportunities', 0)} |",
        f"| repaired | {summary['repaired']} |",
        f"| dead-lettered | {summary['dead_lettered']} |",
        f"| left for next run | {summary['retry_later']} |",
        f"| values cut or left out (`shopsync warnings`) | {summary.get('field_warnings', 0)} |",
        f"| Salesforce API calls | {summary['salesforce_api_calls']} |",
        f"| Shopify calls | {summary['shopify_calls']} |",
        f"| duration (s) | {summary['duration_seconds']} |",
    ]
    if summary.get("report_csv"):
        lines += ["", f"Full discrepancy list: `{summary['report_csv']}`"]
    if summary.get("cursor_advanced_to"):
        lines += ["", f"Nightly cursor advanced to `{summary['cursor_advanced_to']}`."]
    return "\n".join(lines)


def _artifact_table(table: pd.DataFrame) -> list[dict[str, Any]]:
    head = table.head(TABLE_ROWS).astype(object).where(table.head(TABLE_ROWS).notna(), None)
    return head.to_dict(orient="records")


class Progress:
    """A Prefect progress artifact, moved forward step by step (best effort)."""

    def __init__(self, key: str) -> None:
        try:
            self.id = create_progress_artifact(0.0, key=key, description="reconcile progress")
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
    expected = build_expected(spool, ctx)
    run.skipped, run.invalid = expected.skipped, len(expected.invalid)
    close_dates = close_date_range(
        run.window_start, run.window_end, ctx.shop_timezone, ctx.mapping.close_date_offset_days
    )
    actual, run.read_path = with_retries(read_salesforce, settings)(
        gateway, ctx, expected.frame["order_id"].tolist(), close_dates
    )
    result = diff(expected.frame, actual, compare_currency=ctx.org.multi_currency)
    del actual  # both frames are done with: free them before the repair
    expected.frame = expected.frame.iloc[0:0]
    run.counts = result.counts()
    orphans = with_retries(confirm_orphan_candidates, settings)(runtime.shopify, result.candidates)
    run.orphans = len(orphans)
    return Comparison(result, orphans, expected.invalid)


def repair_window(
    runtime: Runtime, run: Run, ctx: SyncContext, spool: Path, found: Comparison
) -> tuple[dict[str, Failure], Written | None]:
    """Plan (and unless dry-run, write) the repair chunk by chunk; dead-letter what fails."""
    failures: dict[str, Failure] = {}
    written: Written | None = None
    if not run.dry_run:
        _dead_letter_invalid(runtime, found.invalid)
        run.dead_lettered += len(found.invalid)
    writing = not run.dry_run and bool(run.counts["missing"] or run.counts["drifted"])
    before = _fresh_usage(runtime) if writing else None
    before_writes = None if before is None else before + 1
    for chunk in chunks(repair_items(spool, ctx, found.result), REPAIR_CHUNK):
        fix = build_repair(chunk, ctx)
        warnings = chunk_field_warnings(chunk, found.result, ctx)
        del chunk
        _add(run.plan, fix.plan.counts())
        if run.dry_run or not len(fix.plan):
            continue
        written = repair(runtime, ctx, fix.plan)
        failures.update(written.failures)
        repaired, dead, later = settle(runtime, fix.plan, fix.states, written, ctx)
        run.field_warnings += record_field_warnings(runtime, warnings, written)
        run.repaired += repaired
        run.dead_lettered += dead
        run.retry_later += later
        if written.stopped is not None:
            run.message = f"writes stopped: {written.stopped}"
            break
    if writing:
        run.write_calls = _minus(_fresh_usage(runtime), before_writes)
    elif run.read_path == "bulk":
        _fresh_usage(runtime)  # bulk reads leave the gateway's usage figure stale
    return failures, written


def report(runtime: Runtime, run: Run, found: Comparison, failures: dict[str, Failure]) -> None:
    """The full CSV in ``<data_dir>/reports`` and a capped table artifact."""
    table = discrepancy_rows(found.result, found.orphans, failures)
    assert run.run_id is not None
    csv_path = write_csv(table, runtime.settings.data_dir / "reports", run.run_id)
    run.report_csv = str(csv_path)
    if not table.empty:
        create_table_artifact(
            _artifact_table(table),
            key=f"reconcile-discrepancies-{run.mode}",
            description=f"First {TABLE_ROWS} of {len(table)} discrepancies; full CSV: {csv_path}",
        )


def execute(runtime: Runtime, run: Run, *, advance: bool) -> dict[str, Any]:
    """One reconcile run over ``[run.window_start, run.window_end)``."""
    shop = with_retries(read_shop, runtime.settings)(runtime.shopify)
    shopify_before = runtime.shopify.calls - 1
    run.run_id = runtime.store.start_run(
        run.mode,
        run.window_start,
        run.window_end,
        dry_run=run.dry_run,
        flow_run_id=_flow_run_id(),
    )
    progress = Progress(f"reconcile-progress-{run.mode}")
    try:
        if needs_read_all_orders(run.window_start, utcnow(), shop.scopes):
            run.status, run.message = "incomplete_scope", SCOPE_MESSAGE
            return _finish(runtime, run, None, shopify_before, progress)
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
        report(runtime, run, found, failures)
        run.status = _status(run, written)
        run.api_calls = _minus(_api_used(runtime.salesforce), baseline)
        if advance and _all_accounted(run, written):
            runtime.store.advance_cursor(CURSOR, run.window_end)
            run.cursor_advanced_to = run.window_end.isoformat()
        return _finish(runtime, run, None, shopify_before, progress)
    except Exception as exc:
        run.status = "failed"
        _finish(runtime, run, exc, shopify_before, progress)
        raise


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
    get_run_logger().info("reconcile %s: %s", run.mode, summary)
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
