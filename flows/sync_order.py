"""The ``sync-order`` flow: fetch one order from Shopify and bring Salesforce up to date."""

from __future__ import annotations

import re
from typing import Any

from prefect import flow, get_run_logger

from tasks.artifacts import current_flow_run_id
from tasks.errors import AuthError, BudgetExhausted, RateLimited, SyncError
from tasks.runtime import build_runtime
from tasks.settings import get_settings
from tasks.steps import dead_letter, fetch_order, sync_order_step, with_retries

ORDER_ID = re.compile(r"^[0-9]{1,20}$")


@flow(name="sync-order", log_prints=False)
def sync_order(order_id: str) -> dict[str, Any]:
    """Sync one Shopify order into Salesforce as Account, Contact and Opportunity.

    Args:
        order_id: The numeric Shopify order id (the REST id / legacyResourceId, not the GID).
    """
    order_id = order_id.strip()
    if not ORDER_ID.match(order_id):
        raise ValueError(f"order_id must be the numeric Shopify order id, got {order_id!r}")
    settings = get_settings()
    runtime = build_runtime(settings)
    logger = get_run_logger()
    try:
        order = with_retries(fetch_order, settings)(runtime.shopify, order_id)
        outcome = with_retries(sync_order_step, settings)(order, runtime.sync_context())
        runtime.store.resolve_dead_letters(order_id, "synced")
        runtime.store.record_field_warnings(
            outcome.field_warnings, path="manual", run_id=current_flow_run_id()
        )
    except (AuthError, BudgetExhausted, RateLimited):
        raise  # nothing is lost: the order can be synced again once this clears
    except SyncError as exc:
        runtime.note_failure(exc)
        letter = dead_letter(runtime.store, order_id, exc, source="manual", payload=None)
        logger.error("order %s dead-lettered (#%s): %s", order_id, letter, exc)
        return {"order_id": order_id, "action": "dead_letter", "error": str(exc)}
    finally:
        runtime.close()
    if outcome.truncations:
        logger.warning("order %s: truncated %s", order_id, outcome.truncations)
    logger.info("order %s: %s %s", order_id, outcome.action, outcome.reason)
    return {
        "order_id": order_id,
        "action": outcome.action,
        "reason": outcome.reason,
        "opportunity_id": outcome.opportunity_id,
        "field_warnings": len(outcome.field_warnings),
    }
