"""The ``replay-dead-letters`` flow: sync dead-lettered orders again from Shopify."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.outcome import RunOutcome, final_state
from state import DeadLetterRecord
from state.models import utcnow
from tasks.core.disposition import AFTER_TASK_RETRIES, dispose
from tasks.core.errors import SyncError
from tasks.core.inbox import sync_plan
from tasks.core.prepared import PreparedOrder
from tasks.reporting.artifacts import current_flow_run_id
from tasks.reporting.dead_letter_board import choose, order_name, publish_board
from tasks.runtime import Runtime, build_runtime
from tasks.settings import Settings, get_settings
from tasks.steps import fetch_order, park_order, sync_one_order, with_retries
from tasks.sync import with_opportunities_checked


def _run_name() -> str:
    chosen = flow_run.parameters.get("orders") or []
    return f"replay {', '.join(map(str, chosen))}" if chosen else "replay all open"


@flow(name="replay-dead-letters", flow_run_name=_run_name)
def replay_dead_letters(orders: list[str] | None = None) -> Any:
    """Replay open dead letters: fetch each order from Shopify and sync it again.

    Args:
        orders: Which dead letters, as the shopsync-dead-letters table shows them: order names
            (#1301), order ids or dead-letter ids. Empty means every open dead letter.
    """
    settings = get_settings()
    runtime = build_runtime(settings)
    logger = get_run_logger()
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    held: str | None = None
    try:
        letters = choose(runtime.store.dead_letters(), orders)
        if letters:
            held = _replay(runtime, settings, letters, outcomes, errors)
            publish_board(runtime.store)
    finally:
        runtime.close()
    logger.info("replay finished: %s", dict(outcomes))
    result = {
        "replayed": sum(v for k, v in outcomes.items() if k.startswith("replayed")),
        "still_failing": outcomes["still_failing"],
        "outcomes": dict(outcomes),
    }
    done = {
        k.replace("replayed_", "replayed, "): v for k, v in outcomes.items() if k != "still_failing"
    }
    total = sum(outcomes.values())
    return final_state(
        RunOutcome("replay", total, done, dict(errors), "still failing", held), result
    )


def _replay(
    runtime: Runtime,
    settings: Settings,
    letters: list[DeadLetterRecord],
    outcomes: Counter[str],
    errors: Counter[str],
) -> str | None:
    """Fetch and prepare every letter's order, ask Salesforce once which of the unchanged ones
    still have their Opportunity, then sync each; returns why the replay stopped, if it did."""
    ctx = runtime.sync_context()
    fetch = with_retries(fetch_order, settings)
    sync = with_retries(sync_one_order, settings)
    ready: list[tuple[DeadLetterRecord, PreparedOrder]] = []
    for letter in letters:
        try:
            ready.append((letter, ctx.preparer()(fetch(runtime.shopify, letter.order_id))))
        except SyncError as exc:
            if _failed(runtime, letter, exc, outcomes, errors):
                return str(exc)
    if ready:
        ctx = with_opportunities_checked((p for _, p in ready), ctx)
    for letter, prepared in ready:
        try:
            outcome = sync(sync_plan(prepared), ctx, runtime.shopify)
        except SyncError as exc:
            if _failed(runtime, letter, exc, outcomes, errors):
                return str(exc)
            continue
        runtime.store.resolve_dead_letters(letter.order_id, "replayed")
        runtime.store.record_field_warnings(
            outcome.field_warnings, path="manual", run_id=current_flow_run_id()
        )
        outcomes[f"replayed_{outcome.action}"] += 1
    return None


def _failed(
    runtime: Runtime,
    letter: DeadLetterRecord,
    exc: SyncError,
    outcomes: Counter[str],
    errors: Counter[str],
) -> bool:
    """A letter that failed again: parked once more; True when the replay must stop (a hold:
    the rest stay dead-lettered, untouched; replay again later)."""
    if dispose(exc, 1, utcnow(), AFTER_TASK_RETRIES).kind == "hold":
        return True
    runtime.note_failure(exc)
    park_order(
        runtime.store,
        letter.order_id,
        order_name(letter) or letter.order_id,
        exc,
        source=letter.source,
        payload=None,
        return_state=True,
    )
    outcomes["still_failing"] += 1
    errors[exc.code or type(exc).__name__] += 1
    return False
