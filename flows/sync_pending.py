"""The ``sync-pending-orders`` flow: drain the webhook inbox into Salesforce.

Claims due deliveries under a lease, coalesces each order's deliveries into one sync of its newest
state, syncs orders concurrently (bounded), and settles every claimed row: done, dead (with a dead
letter), or pending again with a backoff. It keeps going until the inbox is drained or its time
budget is spent. Started by a debounced event trigger and an every-minute safety-net schedule.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import Task, flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from flows.drain_linger import DrainClock, Linger
from flows.drain_tally import DrainReport
from flows.outcome import final_state, judge
from state import ClaimedOrder, StateStore
from state.models import utcnow
from state.store import FieldWarning, claim_owner
from tasks.batch_drain import write_batch
from tasks.core.batch_plan import COLLECTION_SIZE
from tasks.core.disposition import BackoffPolicy, Disposition, dispose, stops_run
from tasks.core.errors import RateLimited, RetryableError, SyncError
from tasks.core.inbox import SyncPlan, plan_claims, waves
from tasks.heartbeat import lease_heartbeat
from tasks.reporting.artifacts import (
    current_flow_run_id,
    publish_field_warnings,
)
from tasks.reporting.dead_letter_board import payload_order_name, publish_board
from tasks.reporting.drain_report import OrderNote, publish_drain_report
from tasks.runtime import Runtime, build_runtime
from tasks.settings import get_settings
from tasks.steps import park_order, sync_one_order, with_retries
from tasks.sync import SyncContext, SyncOutcome, with_batch_lookups

Planned = tuple[ClaimedOrder, SyncPlan | SyncError]
Settled = SyncOutcome | SyncError | None  # None: a delete, handled without Salesforce
SYNCED = frozenset({"created", "updated", "recreated"})


@flow(name="sync-pending-orders", flow_run_name="drain")
def sync_pending_orders(
    max_seconds: float = 240.0,
    batch_size: int | None = None,
    lease_seconds: float | None = None,
    linger_seconds: float = 0.0,
) -> dict[str, Any]:
    """Sync every pending webhook delivery into Salesforce.

    Args:
        max_seconds: Stop claiming new work after this long (the next run continues).
        batch_size: Orders claimed at a time (default: 200 per concurrent Salesforce request
            when the drain may write with sObject Collections, ``SHOPSYNC_DRAIN_MODE``; 50 when
            it writes order by order).
        lease_seconds: How long a claim outlives its drain (renewed while the drain runs): a
            killed drain's orders are taken over after this long (default:
            ``SHOPSYNC_INBOX_LEASE_SECONDS``).
        linger_seconds: After the inbox empties, keep looking for new work (every
            ``LINGER_POLL_SECONDS``) this long after the last work, within ``max_seconds``, so
            an order that arrives meanwhile is synced in about a second instead of waiting for
            a new flow-run process (the served deployment lingers; 0 ends at once).
    """
    settings = get_settings()
    lease = timedelta(seconds=lease_seconds or settings.inbox_lease_seconds)
    runtime = build_runtime(settings)
    report = DrainReport(run_id=current_flow_run_id())
    try:
        _drain(
            runtime,
            report,
            DrainClock(max_seconds, linger_seconds),
            claim_size(batch_size, settings.drain_mode, settings.salesforce_concurrency),
            lease,
        )
        if report.outcomes["dead_letter"] or report.letters_resolved:
            publish_board(runtime.store)
    finally:
        runtime.close()
        publish_field_warnings(report.field_warnings, key="drain-field-warnings")
    get_run_logger().info("drain finished: %s", report.as_dict())
    publish_drain_report(report.markdown(), judge(report.outcome()).message)
    return final_state(report.outcome(), report.as_dict())


def _drain(
    runtime: Runtime, report: DrainReport, clock: DrainClock, batch: int, lease: timedelta
) -> None:
    owner = claim_owner()  # host:pid:random: a claimed row shows which drain process holds it
    linger = Linger(runtime.store, owner, clock)
    with lease_heartbeat(runtime.store, owner, lease), linger:  # a short lease, renewed
        _claim_and_sync(runtime, report, clock, linger, batch, lease, owner)
    report.lingered_s = linger.lingered_s


def _claim_and_sync(
    runtime: Runtime,
    report: DrainReport,
    clock: DrainClock,
    linger: Linger,
    batch: int,
    lease: timedelta,
    owner: str,
) -> None:
    """Claim and sync until the inbox stays empty past the linger window, the time budget is
    spent, or Salesforce says stop."""
    ctx: SyncContext | None = None
    store = runtime.store
    while not clock.out_of_time() and report.stopped_because is None:
        due = linger.due()
        claims = store.claim(max_orders=batch, lease=lease, owner=owner) if due else []
        if not claims:
            if linger.idle():
                continue
            return
        report.cpu.first_claim()
        if ctx is None:
            ctx = _context_or_hold(runtime, claims, report)
            if ctx is None:
                return
        _sync_batch(runtime, ctx, claims, report)
        clock.worked()
        linger.worked()
        report.cpu.worked()


def claim_size(batch_size: int | None, mode: str, concurrency: int) -> int:
    """Orders claimed at a time: as asked; else, when the drain may write with Collections,
    one 200-record call per concurrent request (800 with the default concurrency of 4), and
    50 when it writes order by order."""
    if batch_size is not None:
        return batch_size
    return 50 if mode == "per_order" else COLLECTION_SIZE * concurrency


def uses_collections(mode: str, claimed: int, min_orders: int) -> bool:
    """Whether a claimed batch is written with sObject Collections (issue 16): always in
    ``batch`` mode, never in ``per_order``, and in ``adaptive`` from ``min_orders`` on."""
    if mode == "batch":
        return True
    return mode == "adaptive" and claimed >= min_orders


def _sync_batch(
    runtime: Runtime, ctx: SyncContext, claims: list[ClaimedOrder], report: DrainReport
) -> None:
    """Sync one claimed batch: with Collections when it is large enough, else order by order.

    Each claimed order is parsed and mapped once, here; the batch's lookups, the waves of one
    customer's orders, the Collections chunks and the writes all read that prepared value."""
    planned = plan_claims(claims, ctx.preparer())
    settings = runtime.settings
    if uses_collections(settings.drain_mode, len(claims), settings.drain_batch_min_orders):
        planned = _sync_collections(runtime, ctx, planned, report)
    if planned:
        _sync_per_order(runtime, ctx, planned, report)


def _sync_collections(
    runtime: Runtime, ctx: SyncContext, planned: list[Planned], report: DrainReport
) -> list[Planned]:
    """Write the batch's order payloads with Collections and settle them; returns what the
    per-order path does instead (deletes, orders to fetch first, and what the batch hands
    back: see ``tasks.batch_drain``)."""
    batchable = {
        claim.order_id: (claim, plan)
        for claim, plan in planned
        if isinstance(plan, SyncPlan) and plan.kind == "sync" and plan.prepared is not None
    }
    if not batchable or report.halted_by is not None:
        return planned
    orders = [plan.prepared for _, plan in batchable.values() if plan.prepared is not None]
    result = write_batch(ctx, orders, runtime.settings)
    report.batch_calls += result.calls
    settled: list[tuple[ClaimedOrder, str, Settled]] = [
        (claim, _label(claim, plan), result.outcomes[order_id])
        for order_id, (claim, plan) in batchable.items()
        if order_id in result.outcomes
    ]
    _settle_many(runtime, settled, report)
    handed_back = set(result.per_order)
    return [
        (claim, plan)
        for claim, plan in planned
        if claim.order_id not in batchable or claim.order_id in handed_back
    ]


def _sync_per_order(
    runtime: Runtime, ctx: SyncContext, planned: list[Planned], report: DrainReport
) -> None:
    """One Prefect task and one composite call per order; e-mails looked up together, each
    customer's orders in turn."""
    batch_ctx = _with_hints(planned, ctx)
    step = with_retries(sync_one_order, runtime.settings)
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(
        max_workers=runtime.settings.salesforce_concurrency
    )
    with runner:
        # Two orders of one customer never run at once: a new guest's Contact is created once.
        for wave in waves(planned, key=lambda item: _customer(item[1])):
            if report.halted_by is not None:  # Salesforce said stop: the rest stays pending
                _settle_many(
                    runtime,
                    [(claim, _label(claim, plan), report.halted_by) for claim, plan in wave],
                    report,
                )
                continue
            pending = [
                (claim, plan, _submit(runner, step, plan, batch_ctx, runtime))
                for claim, plan in wave
            ]
            for claim, plan, submitted in pending:
                _settle_many(runtime, [(claim, _label(claim, plan), _result(submitted))], report)


def _customer(plan: SyncPlan | SyncError) -> str | None:
    return None if isinstance(plan, SyncError) else plan.customer


def _with_hints(planned: list[Planned], ctx: SyncContext) -> SyncContext:
    prepared = [p.prepared for _, p in planned if isinstance(p, SyncPlan) and p.prepared]
    try:
        return with_batch_lookups(prepared, ctx)
    except SyncError:
        return ctx  # each order then looks its customer up itself (and retries as usual)


def _context_or_hold(
    runtime: Runtime, claims: list[ClaimedOrder], report: DrainReport
) -> SyncContext | None:
    """The sync context; if Salesforce or Shopify cannot give it, put the claims back."""
    try:
        return runtime.sync_context()
    except SyncError as exc:
        if stops_run(exc):
            _settle_many(runtime, [(c, _order_label(c), exc) for c in claims], report)
            return None
        wait = timedelta(seconds=runtime.settings.inbox_backoff_seconds[0])
        for claim in claims:
            runtime.store.hold(claim.webhook_ids, until=utcnow() + wait, reason=str(exc))
        report.outcomes["held"] += len(claims)
        report.stopped_because = f"{exc.code}: {exc.message}"
        if not isinstance(exc, RetryableError):
            raise
        return None


def _submit(
    runner: ThreadPoolTaskRunner,
    step: Task[..., SyncOutcome],
    plan: SyncPlan | SyncError,
    ctx: SyncContext,
    runtime: Runtime,
) -> PrefectFuture[SyncOutcome] | SyncError | None:
    if isinstance(plan, SyncError):
        return plan
    if plan.kind == "deleted":
        return _deleted(runtime, plan)
    return runner.submit(step, parameters={"plan": plan, "ctx": ctx, "shopify": runtime.shopify})


def _deleted(runtime: Runtime, plan: SyncPlan) -> SyncError | None:
    if runtime.settings.order_delete_action == "flag":
        runtime.store.flag_deleted(plan.order_id, utcnow())
    return None


def _result(submitted: PrefectFuture | SyncError | None) -> Settled:
    """A submitted order's outcome: what its task returned, or the error it raised."""
    if not isinstance(submitted, PrefectFuture):
        return submitted
    try:
        return submitted.result()
    except SyncError as exc:
        return exc


def _settle_many(
    runtime: Runtime, items: list[tuple[ClaimedOrder, str, Settled]], report: DrainReport
) -> None:
    """Settle orders (``(claim, label, outcome or error)``) as ``dispose()`` decides: the done
    ones completed, their field warnings recorded and their dead letters resolved together."""
    store = runtime.store
    policy = BackoffPolicy(retry_seconds=tuple(runtime.settings.inbox_backoff_seconds))
    now = utcnow()
    done: list[str] = []
    synced: list[str] = []
    warnings: list[FieldWarning] = []
    for claim, label, outcome in items:
        error = outcome if isinstance(outcome, SyncError) else None
        attempts = max(d.attempts for d in claim.deliveries)
        decision = dispose(error, attempts, now, policy)
        if decision.kind != "done":
            _undone(runtime, claim, label, decision, report)
            continue
        action = outcome.action if isinstance(outcome, SyncOutcome) else "deleted"
        if isinstance(outcome, SyncOutcome) and outcome.field_warnings:
            warnings.extend(outcome.field_warnings)
            report.note(outcome.field_warnings)
        done.extend(claim.webhook_ids)
        if action in SYNCED:
            synced.append(claim.order_id)
        report.outcomes[action] += 1
        report.order_note(label, action, outcome.reason if isinstance(outcome, SyncOutcome) else "")
    if warnings:
        store.record_field_warnings(warnings, path="webhook", run_id=report.run_id)
    if done:
        store.complete(done)
    report.letters_resolved += _resolve_letters(store, synced)


def _resolve_letters(store: StateStore, order_ids: list[str]) -> int:
    """Resolve the open dead letters of orders that synced (one query for many orders)."""
    if len(order_ids) > 1:
        open_letters = {letter.order_id for letter in store.dead_letters()}
        order_ids = [o for o in order_ids if o in open_letters]
    return sum(store.resolve_dead_letters(o, "synced") for o in order_ids)


def _undone(
    runtime: Runtime, claim: ClaimedOrder, label: str, decision: Disposition, report: DrainReport
) -> None:
    """An order that did not sync: held, tried again later, or dead-lettered."""
    error = decision.error
    assert error is not None
    if decision.kind == "hold":
        _hold(runtime, claim, label, decision, report)
        return
    store = runtime.store
    if decision.kind == "retry":
        store.retry_later(claim.webhook_ids, at=decision.at or utcnow(), error=decision.reason)
        report.outcomes["retry_later"] += 1
        report.order_note(label, "retry_later", decision.reason)
        return
    runtime.note_failure(error)
    park_order(
        store,
        claim.order_id,
        label,
        error,
        source="webhook",
        payload=claim.deliveries[-1].body,
        return_state=True,
    )
    store.dead(claim.webhook_ids, decision.reason)
    report.outcomes["dead_letter"] += 1
    report.errors[error.code or type(error).__name__] += 1
    report.dead_lettered.append(OrderNote(label, decision.reason))
    report.order_note(label, "dead_letter", decision.reason)


def _hold(
    runtime: Runtime, claim: ClaimedOrder, label: str, decision: Disposition, report: DrainReport
) -> None:
    """Leave an order pending, without counting an attempt: after a refused login or the API
    reserve, and for as long as Retry-After says when rate limited. A refused login and
    Salesforce's request limit stop the run and fail it."""
    exc = decision.error
    assert exc is not None
    kind = "rate_limited" if isinstance(exc, RateLimited) else "held"
    report.outcomes[kind] += 1
    report.order_note(label, kind, decision.reason)
    # A hold, not a failed attempt: nothing was wrong with this order.
    runtime.store.hold(claim.webhook_ids, until=decision.at or utcnow(), reason=decision.reason)
    if not decision.stop_run:
        return  # one throttled call (Shopify's): the drain goes on
    if report.stopped_because is None:
        report.stopped_because = f"{exc.code}: {exc.message}"
    if report.halted_by is None:
        report.halted_by = exc


def _label(claim: ClaimedOrder, plan: SyncPlan | SyncError) -> str:
    """``#1001`` from the parsed payload when there is one, else from the newest payload."""
    if isinstance(plan, SyncPlan) and plan.order is not None and plan.order.name:
        return plan.order.name
    return _order_label(claim)


def _order_label(claim: ClaimedOrder) -> str:
    """``#1001`` from the newest payload, else the order id."""
    return payload_order_name(claim.deliveries[-1].body) or claim.order_id
