"""The ``sync-pending-orders`` flow: drain the webhook inbox into Salesforce.

Claims due deliveries under a lease, coalesces each order's deliveries into one sync of its newest
state, syncs orders concurrently (bounded), and settles every claimed row: done, dead (with a dead
letter), or pending again with a backoff. It keeps going until the inbox is drained or its time
budget is spent. Started by a debounced event trigger and an every-minute safety-net schedule.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prefect import Task, flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from flows.outcome import RunOutcome, final_state, judge
from state import ClaimedOrder
from state.models import utcnow
from state.store import FieldWarning, claim_owner
from tasks.artifacts import current_flow_run_id, field_warnings_markdown, publish_field_warnings
from tasks.dead_letter_board import payload_order_name, publish_board
from tasks.drain_report import OrderNote, drain_markdown, publish_drain_report
from tasks.errors import AuthError, BudgetExhausted, RateLimited, RetryableError, SyncError
from tasks.heartbeat import lease_heartbeat
from tasks.inbox import SyncPlan, next_attempt, plan_claim, waves
from tasks.runtime import Runtime, build_runtime
from tasks.settings import get_settings
from tasks.steps import park_order, sync_claimed_order, with_retries
from tasks.sync import SyncContext, SyncOutcome, customer_of, with_batch_lookups

HOLD_AFTER_AUTH = timedelta(minutes=5)
HOLD_WHEN_RATE_LIMITED = timedelta(seconds=60)  # when Salesforce sends no Retry-After


@dataclass
class DrainReport:
    """What one drain run did."""

    outcomes: Counter[str] = field(default_factory=Counter)
    stopped_because: str | None = None
    # A refused login or Salesforce's request limit: the rest of the run's orders are held at
    # once (and, being held, the run ends Failed: flows/outcome.py).
    halted_by: SyncError | None = None
    errors: Counter[str] = field(default_factory=Counter)  # dead letters by error code
    letters_resolved: int = 0
    dead_lettered: list[OrderNote] = field(default_factory=list)
    run_id: str | None = None
    # (order, object, field, kind) → the warning: an order synced twice in a run counts once.
    warned: dict[tuple[str, str, str, str], FieldWarning] = field(default_factory=dict)

    @property
    def field_warnings(self) -> list[FieldWarning]:
        """The values this run cut or left out, one per order and field."""
        return list(self.warned.values())

    def note(self, warnings: list[FieldWarning]) -> None:
        """Count warnings of a synced order."""
        for w in warnings:
            self.warned[(w.order_id, w.object, w.field, w.kind)] = w

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcomes": dict(self.outcomes),
            "stopped_because": self.stopped_because,
            "field_warnings": len(self.warned),
            "orders_with_field_warnings": len({key[0] for key in self.warned}),
        }

    def outcome(self) -> RunOutcome:
        """The counts the run's final state is judged by."""
        return RunOutcome(
            kind="drain",
            total=sum(self.outcomes.values()),
            done={k: v for k, v in self.outcomes.items() if k not in {"dead_letter", "held"}},
            failed=dict(self.errors),
            held=self.stopped_because,
            dead_lettered=self.outcomes["dead_letter"],
        )

    def markdown(self) -> str:
        """The run's report for the Prefect UI."""
        report = drain_markdown(
            judge(self.outcome()).message,
            dict(self.outcomes),
            self.stopped_because,
            self.dead_lettered,
        )
        if not self.warned:
            return report
        return f"{report}\n\n{field_warnings_markdown(self.field_warnings)}"


@flow(name="sync-pending-orders", flow_run_name="drain")
def sync_pending_orders(
    max_seconds: float = 240.0, batch_size: int = 50, lease_seconds: float | None = None
) -> dict[str, Any]:
    """Sync every pending webhook delivery into Salesforce.

    Args:
        max_seconds: Stop claiming new work after this long (the next run continues).
        batch_size: Orders claimed at a time.
        lease_seconds: How long a claim outlives its drain (renewed while the drain runs): a
            killed drain's orders are taken over after this long (default:
            ``SHOPSYNC_INBOX_LEASE_SECONDS``).
    """
    settings = get_settings()
    lease = timedelta(seconds=lease_seconds or settings.inbox_lease_seconds)
    runtime = build_runtime(settings)
    report = DrainReport(run_id=current_flow_run_id())
    try:
        _drain(runtime, report, max_seconds, batch_size, lease)
        if report.outcomes["dead_letter"] or report.letters_resolved:
            publish_board(runtime.store)
    finally:
        runtime.close()
        publish_field_warnings(report.field_warnings, key="drain-field-warnings")
    get_run_logger().info("drain finished: %s", report.as_dict())
    publish_drain_report(report.markdown(), judge(report.outcome()).message)
    return final_state(report.outcome(), report.as_dict())


def _drain(
    runtime: Runtime, report: DrainReport, max_seconds: float, batch: int, lease: timedelta
) -> None:
    deadline = time.monotonic() + max_seconds
    ctx: SyncContext | None = None
    owner = claim_owner()  # host:pid:random: a claimed row shows which drain process holds it
    with lease_heartbeat(runtime.store, owner, lease):  # a short lease, renewed while we work
        while time.monotonic() < deadline and report.stopped_because is None:
            claims = runtime.store.claim(max_orders=batch, lease=lease, owner=owner)
            if not claims:
                return
            if ctx is None:
                ctx = _context_or_hold(runtime, claims, report)
                if ctx is None:
                    return
            _sync_batch(runtime, ctx, claims, report)


def _sync_batch(
    runtime: Runtime, ctx: SyncContext, claims: list[ClaimedOrder], report: DrainReport
) -> None:
    """Sync one claimed batch: e-mails looked up together, each customer's orders in turn."""
    planned = [(claim, _plan(claim)) for claim in claims]
    batch_ctx = _with_hints(planned, ctx)
    step = with_retries(sync_claimed_order, runtime.settings)
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(
        max_workers=runtime.settings.salesforce_concurrency
    )
    with runner:
        # Two orders of one customer never run at once: a new guest's Contact is created once.
        for wave in waves(planned, key=lambda item: _customer(item[1], ctx)):
            if report.halted_by is not None:  # Salesforce said stop: the rest stays pending
                for claim, _ in wave:
                    _hold(runtime, claim, report.halted_by, report)
                continue
            pending = [
                (claim, _submit(runner, step, plan, batch_ctx, runtime)) for claim, plan in wave
            ]
            for claim, submitted in pending:
                _settle(runtime, claim, submitted, report)


def _plan(claim: ClaimedOrder) -> SyncPlan | SyncError:
    try:
        return plan_claim(claim)
    except SyncError as exc:
        return exc


def _customer(plan: SyncPlan | SyncError, ctx: SyncContext) -> str | None:
    if isinstance(plan, SyncError) or plan.order is None:
        return None
    try:
        return customer_of(plan.order, ctx)
    except SyncError:
        return None  # it fails again in its task, and is dead-lettered there


def _with_hints(
    planned: list[tuple[ClaimedOrder, SyncPlan | SyncError]], ctx: SyncContext
) -> SyncContext:
    orders = [p.order for _, p in planned if isinstance(p, SyncPlan) and p.order is not None]
    try:
        return with_batch_lookups(orders, ctx)
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
            for claim in claims:
                _hold(runtime, claim, exc, report)
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


def _settle(
    runtime: Runtime,
    claim: ClaimedOrder,
    submitted: PrefectFuture | SyncError | None,
    report: DrainReport,
) -> None:
    store = runtime.store
    ids = claim.webhook_ids
    try:
        outcome = submitted.result() if isinstance(submitted, PrefectFuture) else submitted
        if isinstance(outcome, SyncError):
            raise outcome
    except (AuthError, BudgetExhausted, RateLimited) as exc:
        _hold(runtime, claim, exc, report)
        return
    except SyncError as exc:
        _failed(runtime, claim, exc, report)
        return
    action = outcome.action if isinstance(outcome, SyncOutcome) else "deleted"
    if isinstance(outcome, SyncOutcome) and outcome.field_warnings:
        store.record_field_warnings(outcome.field_warnings, path="webhook", run_id=report.run_id)
        report.note(outcome.field_warnings)
    store.complete(ids)
    if action in {"created", "updated", "recreated"}:
        report.letters_resolved += store.resolve_dead_letters(claim.order_id, "synced")
    report.outcomes[action] += 1


def _hold(runtime: Runtime, claim: ClaimedOrder, exc: SyncError, report: DrainReport) -> None:
    """Leave an order pending: after a refused login or the API reserve, and for as long as
    Retry-After says when rate limited. A refused login and Salesforce's request limit stop
    the run and fail it."""
    if isinstance(exc, RateLimited):
        wait = timedelta(seconds=exc.retry_after) if exc.retry_after else HOLD_WHEN_RATE_LIMITED
        report.outcomes["rate_limited"] += 1
    else:
        wait = HOLD_AFTER_AUTH
        report.outcomes["held"] += 1
    # A hold, not a failed attempt: nothing was wrong with this order.
    runtime.store.hold(claim.webhook_ids, until=utcnow() + wait, reason=str(exc))
    if isinstance(exc, RateLimited) and not exc.stop_run:
        return  # one throttled call (Shopify's): the drain goes on
    if report.stopped_because is None:
        report.stopped_because = f"{exc.code}: {exc.message}"
    if stops_run(exc) and report.halted_by is None:
        report.halted_by = exc


def stops_run(exc: SyncError) -> bool:
    """A refused login, or a rate limit of the whole org: stop at once, fail the run."""
    return isinstance(exc, AuthError) or (isinstance(exc, RateLimited) and exc.stop_run)


def _failed(runtime: Runtime, claim: ClaimedOrder, exc: SyncError, report: DrainReport) -> None:
    store = runtime.store
    ids = claim.webhook_ids
    attempts = max(d.attempts for d in claim.deliveries)
    backoff = runtime.settings.inbox_backoff_seconds
    retry_at = (
        next_attempt(attempts, utcnow(), backoff) if isinstance(exc, RetryableError) else None
    )
    if retry_at is not None:
        store.retry_later(ids, at=retry_at, error=str(exc))
        report.outcomes["retry_later"] += 1
        return
    runtime.note_failure(exc)
    newest = claim.deliveries[-1].body
    park_order(
        store,
        claim.order_id,
        _order_label(claim),
        exc,
        source="webhook",
        payload=newest,
        return_state=True,
    )
    store.dead(ids, str(exc))
    report.outcomes["dead_letter"] += 1
    report.errors[exc.code or type(exc).__name__] += 1
    report.dead_lettered.append(OrderNote(_order_label(claim), str(exc)))


def _order_label(claim: ClaimedOrder) -> str:
    """``#1001`` from the newest payload, else the order id."""
    return payload_order_name(claim.deliveries[-1].body) or claim.order_id
