"""The ``replay-dead-letters`` flow: sync dead-lettered orders again from Shopify."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.outcome import RunOutcome, final_state
from state.models import utcnow
from tasks.core.disposition import AFTER_TASK_RETRIES, dispose
from tasks.core.errors import SyncError
from tasks.reporting.artifacts import current_flow_run_id
from tasks.reporting.dead_letter_board import choose, order_name, publish_board
from tasks.runtime import build_runtime
from tasks.settings import get_settings
from tasks.steps import fetch_order, park_order, sync_order_step, with_retries


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
        ctx = runtime.sync_context() if letters else None
        fetch = with_retries(fetch_order, settings)
        sync = with_retries(sync_order_step, settings)
        for letter in letters:
            ref = order_name(letter) or letter.order_id
            try:
                order = fetch(runtime.shopify, letter.order_id)
                outcome = sync(order, ctx)  # type: ignore[arg-type]  # set: there are letters
            except SyncError as exc:
                if dispose(exc, 1, utcnow(), AFTER_TASK_RETRIES).kind == "hold":
                    held = str(exc)  # the rest stay dead-lettered, untouched; replay again later
                    break
                runtime.note_failure(exc)
                park_order(
                    runtime.store,
                    letter.order_id,
                    ref,
                    exc,
                    source=letter.source,
                    payload=None,
                    return_state=True,
                )
                outcomes["still_failing"] += 1
                errors[exc.code or type(exc).__name__] += 1
                continue
            runtime.store.resolve_dead_letters(letter.order_id, "replayed")
            runtime.store.record_field_warnings(
                outcome.field_warnings, path="manual", run_id=current_flow_run_id()
            )
            outcomes[f"replayed_{outcome.action}"] += 1
        if letters:
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
