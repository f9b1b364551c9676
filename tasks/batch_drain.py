"""The batch drain's calls: a claimed batch written with sObject Collections (issue 16).

:func:`write_batch` takes the orders of one claimed batch and writes them with a handful of
Salesforce calls: one e-mail adoption query, one Opportunity existence query and (for orders
whose Account or Contact carries a placeholder of redacted buyer data, unknown to the customer
cache) one Account / Contact existence query for the whole batch, bundled in one call; then
Collections upserts by external id, Accounts first, then Contacts, then Opportunities, 200
records a call, up to ``SHOPSYNC_SALESFORCE_CONCURRENCY`` calls in flight.
Each call is one Prefect task run (``upsert 200 Opportunity``), retried by Prefect when it failed
transiently. The decisions are ``tasks.core.batch_plan``'s (pure); the semantics are the per-order
path's (``tasks.sync``).

An order the batch cannot finish the per-order way is handed back (``BatchResult.per_order``):
a cached Account or Contact a user deleted or merged (ENTITY_IS_DELETED), an Opportunity a user
deleted (recreated whole) or one Salesforce already had. The per-order path knows how to
recover each; they are rare.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from state import SyncRecord
from tasks.core.batch_plan import (
    Chunk,
    PlannedOrder,
    StagedOrder,
    Written,
    account_chunks,
    contact_chunks,
    contact_id_of,
    customers_written,
    lookups_needed,
    note_parents,
    opportunity_chunks,
    record_outcomes,
    stage_order,
)
from tasks.core.disposition import stops_run
from tasks.core.errors import StaleReference, SyncError
from tasks.core.mapping import CONTACT, OPPORTUNITY, placeholder_parents
from tasks.core.prepared import PreparedOrder
from tasks.reporting.field_warnings import field_warnings
from tasks.salesforce.port import IdsByKey, KeyLookup, RecordResult, SalesforcePort, WriteKind
from tasks.settings import Settings
from tasks.steps import retry_if_transient, with_retries
from tasks.sync import (
    SyncContext,
    SyncOutcome,
    opportunity_already_existed,
    opportunity_was_deleted,
    parent_lookups,
    plan_write_for,
)

Result = SyncOutcome | SyncError


@dataclass
class BatchResult:
    """Every order's outcome, or its handing back to the per-order path."""

    outcomes: dict[str, Result] = field(default_factory=dict)  # order id → outcome
    per_order: list[str] = field(default_factory=list)  # order ids
    calls: int = 0  # Salesforce calls made (chunks and lookups), for the run's log


@dataclass(frozen=True, slots=True)
class Lookups:
    """What one query each told about the whole batch."""

    contacts_by_email: dict[str, list[dict[str, Any]]]
    opportunity_ids: dict[str, str | None]
    parents: IdsByKey = field(default_factory=dict)  # placeholders' Accounts and Contacts


@task(
    name="batch-lookups",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_if_transient,
    task_run_name="look up {count} orders",
)
def look_up(
    gateway: SalesforcePort,
    count: int,
    emails: list[str],
    contact_field: str,
    order_keys: list[str],
    opportunity_field: str,
    parents: list[KeyLookup] | None = None,
) -> Lookups:
    """The Contacts with the batch's new e-mails, which of its unknown Opportunities
    Salesforce has and (``parents``) which Accounts and Contacts whose bodies carry a
    placeholder it has: every query bundled, five to a ``/composite`` call."""
    contacts, ids, found = gateway.lookups_for(
        emails, contact_field, OPPORTUNITY, opportunity_field, order_keys, parents=parents or ()
    )
    return Lookups(contacts, ids, found)


@task(
    name="salesforce-collection",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_if_transient,
    task_run_name="{chunk.name}",
)
def write_chunk(gateway: SalesforcePort, chunk: Chunk, contact_field: str) -> list[RecordResult]:
    """One sObject Collections call; results in the chunk's record order."""
    if chunk.operation == "insert":
        return _insert_once(gateway, chunk, contact_field)
    kind: WriteKind = "update" if chunk.operation == "update" else "upsert"
    return gateway.save_many(chunk.sobject, chunk.key_field, chunk.records, kind=kind)


def _insert_once(gateway: SalesforcePort, chunk: Chunk, contact_field: str) -> list[RecordResult]:
    """Create guests' Contacts. Creating is not idempotent: a retry first takes the Contacts an
    earlier attempt may have created (found by e-mail) and creates only the others."""
    if not _retrying():
        return gateway.save_many(chunk.sobject, chunk.key_field, chunk.records, kind="insert")
    emails = [str(r.get("Email") or "").lower() for r in chunk.records]
    found = gateway.contacts_by_emails(sorted({e for e in emails if e}), contact_field)
    results: list[RecordResult | None] = [
        RecordResult(email, True, str(found[email][0]["Id"])) if found.get(email) else None
        for email in emails
    ]
    todo = [i for i, result in enumerate(results) if result is None]
    todo_records = [chunk.records[i] for i in todo]
    created = gateway.save_many(chunk.sobject, chunk.key_field, todo_records, kind="insert")
    for index, result in zip(todo, created, strict=False):
        results[index] = result
    return [r for r in results if r is not None]


def _retrying() -> bool:
    try:
        return get_run_context().task_run.run_count > 1  # type: ignore[union-attr]
    except Exception:
        return False


def write_batch(
    ctx: SyncContext, orders: Sequence[PreparedOrder], settings: Settings
) -> BatchResult:
    """Write a claimed batch's orders (each its newest state, prepared once when the batch was
    planned) with sObject Collections."""
    result = BatchResult()
    prepared = _stage(ctx, orders, result)
    if not prepared:
        return result
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(
        max_workers=settings.salesforce_concurrency
    )
    with runner:
        _Batch(ctx, settings, runner, result).run(prepared)
    return result


def _stage(
    ctx: SyncContext, orders: Sequence[PreparedOrder], result: BatchResult
) -> list[StagedOrder]:
    ledger = ctx.store.ledger_many(o.order_id for o in orders)
    staged: list[StagedOrder] = []
    for prepared in orders:
        item = stage_order(prepared, ledger.get(prepared.order_id))
        if isinstance(item, SyncOutcome):
            result.outcomes[prepared.order_id] = item
        else:
            staged.append(item)
    return staged


@dataclass
class _Batch:
    """One batch's run through the three stages."""

    ctx: SyncContext
    settings: Settings
    runner: ThreadPoolTaskRunner
    result: BatchResult
    written: Written = field(default_factory=Written)

    def run(self, prepared: list[StagedOrder]) -> None:
        planned = self._plan(prepared)
        if not planned:
            return
        stopped = self._parents(account_chunks(planned), "account") or self._parents(
            contact_chunks(planned, self.written), "contact"
        )
        if stopped is not None:
            self._fail_all(planned, stopped)
            return
        chunks, blocked = opportunity_chunks(planned, self.written)
        outcomes = self._run_chunks(chunks, "opportunity")
        self._settle(planned, outcomes, blocked)

    def _plan(self, prepared: list[StagedOrder]) -> list[PlannedOrder]:
        """Each order's write, decided by the per-order rules over the batch's lookups."""
        cached = self.ctx.store.customers(p.customer for p in prepared)
        emails, keys = lookups_needed(prepared, cached)
        parents = parent_lookups(
            (
                p
                for item in prepared
                for p in placeholder_parents(item.records, cached[item.customer])
            ),
            self.ctx.mapping,
        )
        ctx = self.ctx
        if emails or keys or parents:
            try:
                found = self._look_up(emails, keys, parents, len(prepared))
            except SyncError as exc:
                self._fail_all_prepared(prepared, exc)
                return []
            ctx = replace(
                ctx,
                contacts_by_email=found.contacts_by_email,
                opportunity_ids=found.opportunity_ids,
                parents=found.parents,
            )
        planned: list[PlannedOrder] = []
        for item in prepared:
            exists = _exists(item, ctx)
            try:
                write = plan_write_for(
                    item.records, ctx, cached[item.customer], opportunity_exists=exists
                )
            except SyncError as exc:
                self.result.outcomes[item.order_id] = exc
                continue
            planned.append(PlannedOrder(item, write))
        return planned

    def _look_up(
        self, emails: list[str], keys: list[str], parents: list[KeyLookup], count: int
    ) -> Lookups:
        step = with_retries(look_up, self.settings)
        mapping = self.ctx.mapping
        queries = -(-len(emails) // 100) + -(-len(keys) // 300)
        queries += sum(-(-len(lookup.keys) // 300) for lookup in parents)
        self.result.calls += -(-queries // 5)
        return step(
            self.ctx.gateway,
            count,
            emails,
            mapping.key_field(CONTACT),
            keys,
            mapping.key_field(OPPORTUNITY),
            parents,
        )

    def _parents(self, chunks: list[Chunk], stage: str) -> SyncError | None:
        """Write Accounts or Contacts; the error that stops the run, if one did."""
        outcomes = self._run_chunks(chunks, stage)
        for chunk in chunks:
            note_parents(chunk, {o: outcomes[o] for o in chunk.owners}, self.written)
        return next(
            (o for o in outcomes.values() if isinstance(o, SyncError) and stops_run(o)), None
        )

    def _run_chunks(self, chunks: list[Chunk], stage: str) -> dict[str, RecordResult | SyncError]:
        """Every chunk of one stage, up to the configured concurrency at once."""
        step: Task[..., list[RecordResult]] = with_retries(write_chunk, self.settings)
        contact_field = self.ctx.mapping.key_field(CONTACT)
        submitted: list[tuple[Chunk, PrefectFuture[list[RecordResult]]]] = []
        for chunk in chunks:
            future: PrefectFuture[list[RecordResult]] = self.runner.submit(
                step.with_options(task_run_name=chunk.name),
                parameters={
                    "gateway": self.ctx.gateway,
                    "chunk": chunk,
                    "contact_field": contact_field,
                },
            )
            submitted.append((chunk, future))
        self.result.calls += len(chunks)
        outcomes: dict[str, RecordResult | SyncError] = {}
        for chunk, future in submitted:
            try:
                results: list[RecordResult] | SyncError = future.result()
            except SyncError as exc:
                results = exc
            outcomes.update(record_outcomes(chunk, results, stage))
        return outcomes

    def _settle(
        self,
        planned: list[PlannedOrder],
        outcomes: dict[str, RecordResult | SyncError],
        blocked: dict[str, SyncError],
    ) -> None:
        """Each order's outcome; the ledger and the customer cache in one transaction."""
        syncs: list[SyncRecord] = []
        for item in planned:
            outcome = blocked.get(item.order_id) or outcomes.get(item.order_id)
            if isinstance(outcome, RecordResult):
                done = self._synced(item, outcome)
                self.result.outcomes[item.order_id] = done
                syncs.append(_sync_record(item, done))
            elif outcome is not None and _per_order(outcome, item):
                self.result.per_order.append(item.order_id)
            elif outcome is not None:
                self.result.outcomes[item.order_id] = outcome
        self.ctx.store.record_batch(syncs, customers_written(planned, self.written))

    def _synced(self, item: PlannedOrder, result: RecordResult) -> SyncOutcome:
        records, order = item.prepared.records, item.prepared.order
        contact = contact_id_of(item, self.written) if item.write.contact is not None else None
        return SyncOutcome(
            order.id,
            "created" if result.created else "updated",
            account_id=self.written.account_ids.get(item.write.account_key),
            contact_id=contact,
            opportunity_id=result.id,
            truncations=list(records.truncations),
            field_warnings=field_warnings(order.id, order.name, records, self.ctx.org),
        )

    def _fail_all(self, planned: Iterable[PlannedOrder], error: SyncError) -> None:
        """Salesforce said stop: no order of the batch is written further (all are held; a
        later run upserts by the same keys, so what was written is not duplicated)."""
        self._fail_all_prepared((p.prepared for p in planned), error)

    def _fail_all_prepared(self, prepared: Iterable[StagedOrder], error: SyncError) -> None:
        for item in prepared:
            self.result.outcomes[item.order_id] = error


def _exists(item: StagedOrder, ctx: SyncContext) -> bool:
    """Whether the Opportunity exists: the ledger knows it, or the batch's query found it."""
    if item.ledger is not None and item.ledger.opportunity_id is not None:
        return True
    known = ctx.opportunity_ids or {}
    return known.get(item.records.order_key) is not None


def _per_order(error: SyncError, item: PlannedOrder) -> bool:
    """A failure the per-order path recovers from (stale cache, deleted or existing
    Opportunity); it then writes the order itself."""
    if isinstance(error, StaleReference):
        return True
    created = item.write.link_contact_to_opportunity  # a create body was sent
    if created:
        return opportunity_already_existed(error)
    return opportunity_was_deleted(error, item.prepared.records)


def _sync_record(item: PlannedOrder, done: SyncOutcome) -> SyncRecord:
    order = item.prepared.order
    return SyncRecord(
        order.id,
        order.updated_at,
        order.payload_hash(),
        done.account_id,
        done.contact_id,
        done.opportunity_id,
    )
