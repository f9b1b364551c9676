"""The ``sync-order`` flow: fetch one order from Shopify and bring Salesforce up to date."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.outcome import RunOutcome, final_state
from state.models import utcnow
from tasks.core.disposition import AFTER_TASK_RETRIES, dispose
from tasks.core.errors import SyncError
from tasks.core.orders import ORDER_NAME, order_reference
from tasks.reporting.artifacts import current_flow_run_id
from tasks.reporting.dead_letter_board import publish_board
from tasks.runtime import build_runtime
from tasks.settings import get_settings
from tasks.shopify.port import ShopifyPort
from tasks.steps import fetch_order, park_order, sync_order_step, with_retries


@flow(name="sync-order", log_prints=False, flow_run_name="sync-order {order_id}")
def sync_order(order_id: str) -> Any:
    """Sync one Shopify order into Salesforce as Account, Contact and Opportunity.

    Args:
        order_id: The order's name as customers see it (#1001), or its numeric Shopify id (the
            REST id / legacyResourceId, not the GID).
    """
    order_id = order_reference(order_id)
    settings = get_settings()
    runtime = build_runtime(settings)
    logger = get_run_logger()
    label = order_id
    name = order_id if ORDER_NAME.match(order_id) else None
    try:
        if ORDER_NAME.match(order_id):
            order_id = _id_of_name(runtime.shopify, order_id)
        order = with_retries(fetch_order, settings)(runtime.shopify, order_id)
        name = order.name or name
        outcome = with_retries(sync_order_step, settings)(order, runtime.sync_context())
        if runtime.store.resolve_dead_letters(order_id, "synced"):
            publish_board(runtime.store)
        runtime.store.record_field_warnings(
            outcome.field_warnings, path="manual", run_id=current_flow_run_id()
        )
    except SyncError as exc:
        if dispose(exc, 1, utcnow(), AFTER_TASK_RETRIES).kind == "hold":
            raise  # nothing is lost: the order can be synced again once this clears
        runtime.note_failure(exc)
        parked = park_order(
            runtime.store,
            order_id,
            label,
            exc,
            source="manual",
            payload=None,
            order_name=name,
            return_state=True,
        )
        publish_board(runtime.store)
        result: dict[str, Any] = {
            "order_id": order_id,
            "order_name": name,
            "action": "dead_letter",
            "error": str(exc),
        }
        failed = {exc.code or "ERROR": 1}
        failure = RunOutcome("sync-order", 1, failed=failed, note=parked.message, dead_lettered=1)
        return final_state(failure, result)
    finally:
        runtime.close()
    if outcome.truncations:
        logger.warning("order %s: truncated %s", order_id, outcome.truncations)
    logger.info("order %s: %s %s", order_id, outcome.action, outcome.reason)
    result = {
        "order_id": order_id,
        "order_name": name,
        "action": outcome.action,
        "reason": outcome.reason,
        "opportunity_id": outcome.opportunity_id,
        "field_warnings": len(outcome.field_warnings),
    }
    return final_state(RunOutcome("sync-order", 1, done={outcome.action: 1}), result)


def _id_of_name(shopify: ShopifyPort, name: str) -> str:
    """The id of the one order named ``name`` (Shopify's ``name:`` search)."""
    found = shopify.orders_named(name)
    if len(found) != 1:
        raise ValueError(
            f"Shopify has no order named {name}"
            if not found
            else f"several orders are named {name} ({', '.join(found)}): give the numeric id"
        )
    get_run_logger().info("order %s is id %s", name, found[0])
    return found[0]
