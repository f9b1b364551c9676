"""Reconcile's bookkeeping after one chunk's writes: ledger entries for the repaired orders, and
what becomes of each failure — the disposition of :mod:`tasks.core.disposition` decides between
leaving it for a later run and dead-lettering it (a transient failure only after
``reconcile_max_failed_nights`` nightly runs). Also the field warnings of what was written and
the ids the report names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from flows.reconcile_run import flow_run_id
from flows.reconcile_write import Written
from state import FailedRepair, FieldWarning, SyncRecord
from state.models import utcnow
from tasks.core.diff import DiffResult
from tasks.core.diff_report import Failure
from tasks.core.disposition import BackoffPolicy, dispose
from tasks.core.errors import InvalidOrder
from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY, SalesforceRecords
from tasks.core.repair_plan import RepairPlan
from tasks.reporting.field_warnings import field_warnings
from tasks.runtime import Runtime
from tasks.steps import dead_letter
from tasks.sync import SyncContext

SOURCE = "reconcile"


def settle(
    runtime: Runtime,
    plan: RepairPlan,
    repair_states: Mapping[str, tuple[datetime, str]],
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


def dead_letter_invalid(runtime: Runtime, invalid: Mapping[str, InvalidOrder]) -> None:
    """Dead-letter the orders that cannot be mapped."""
    for order_id, exc in invalid.items():
        dead_letter(runtime.store, order_id, exc, source=SOURCE, payload=None, stage="map")


def chunk_field_warnings(
    records: Iterable[SalesforceRecords], result: DiffResult, ctx: SyncContext
) -> list[FieldWarning]:
    """The values of a repair chunk's orders that are cut or left out in what it writes."""
    records = list(records)
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
    runtime.store.record_field_warnings(kept, path=SOURCE, run_id=flow_run_id())
    return kept


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
