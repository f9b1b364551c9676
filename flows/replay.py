"""The ``replay-dead-letters`` flow: sync dead-lettered orders again from Shopify."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prefect import flow, get_run_logger

from state import DeadLetterRecord
from tasks.artifacts import current_flow_run_id
from tasks.errors import AuthError, BudgetExhausted, RateLimited, SyncError
from tasks.runtime import build_runtime
from tasks.settings import get_settings
from tasks.steps import dead_letter, fetch_order, sync_order_step, with_retries


@flow(name="replay-dead-letters")
def replay_dead_letters(ids: list[int] | None = None) -> dict[str, Any]:
    """Replay open dead letters: fetch each order from Shopify and sync it again.

    Args:
        ids: Dead-letter ids to replay; empty means every open dead letter.
    """
    settings = get_settings()
    runtime = build_runtime(settings)
    logger = get_run_logger()
    outcomes: Counter[str] = Counter()
    try:
        letters = _chosen(runtime.store.dead_letters(), ids)
        ctx = runtime.sync_context() if letters else None
        fetch = with_retries(fetch_order, settings)
        sync = with_retries(sync_order_step, settings)
        for letter in letters:
            try:
                order = fetch(runtime.shopify, letter.order_id)
                outcome = sync(order, ctx)
            except (AuthError, BudgetExhausted, RateLimited):
                raise  # the rest stay dead-lettered, untouched; replay again later
            except SyncError as exc:
                runtime.note_failure(exc)
                dead_letter(runtime.store, letter.order_id, exc, source=letter.source, payload=None)
                outcomes["still_failing"] += 1
                logger.warning("order %s still fails: %s", letter.order_id, exc)
                continue
            runtime.store.resolve_dead_letters(letter.order_id, "replayed")
            runtime.store.record_field_warnings(
                outcome.field_warnings, path="manual", run_id=current_flow_run_id()
            )
            outcomes[f"replayed_{outcome.action}"] += 1
    finally:
        runtime.close()
    logger.info("replay finished: %s", dict(outcomes))
    return {
        "replayed": sum(v for k, v in outcomes.items() if k.startswith("replayed")),
        "still_failing": outcomes["still_failing"],
        "outcomes": dict(outcomes),
    }


def _chosen(letters: list[DeadLetterRecord], ids: list[int] | None) -> list[DeadLetterRecord]:
    if not ids:
        return letters
    wanted = set(ids)
    return [letter for letter in letters if letter.id in wanted]
