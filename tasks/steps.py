"""Prefect tasks: thin shells around the pure code and one adapter call each.

Prefect owns retries: transient failures (``RetryableError``) are retried with jittered backoff,
everything else fails at once. A task takes the order's number in its run name, so the Prefect UI
shows one visible task run per order.
"""

from __future__ import annotations

from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import Failed, State

from state import StateStore
from tasks.core.disposition import retry_in_task
from tasks.core.errors import PermanentError, SyncError
from tasks.core.inbox import SyncPlan
from tasks.core.orders import Order, parse_graphql_order
from tasks.settings import Settings
from tasks.shopify.port import ShopifyPort
from tasks.sync import SyncContext, SyncOutcome, sync_order_state

JITTER = 0.5
P = ParamSpec("P")
R = TypeVar("R")


def retry_if_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what classified as transient; permanent and auth failures fail fast.

    Nor is a rate limit that stops the run (Salesforce's): the order is held in the inbox for
    Salesforce's Retry-After, instead of probing the limit again in a few seconds. The rule is
    :func:`tasks.core.disposition.retry_in_task`.
    """
    try:
        state.result()
    except Exception as exc:
        return retry_in_task(exc)
    return False


@task(name="fetch-order", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def fetch_order(shopify: ShopifyPort, order_id: str) -> Order:
    """The order's current state from Shopify's GraphQL Admin API."""
    node = shopify.order(order_id)
    if node is None:
        raise PermanentError(
            f"Shopify has no order {order_id} (deleted, or older than 60 days without the "
            "read_all_orders scope)",
            code="ORDER_NOT_FOUND",
            stage="fetch",
        )
    return parse_graphql_order(node)


@task(
    name="sync-order-state",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_if_transient,
    task_run_name="sync {order.name}",
)
def sync_order_step(order: Order, ctx: SyncContext) -> SyncOutcome:
    """Upsert Account, Contact and Opportunity for one order."""
    return sync_order_state(order, ctx)


def with_retries(step: Task[P, R], settings: Settings) -> Task[P, R]:
    """The task with the configured backoff (defaults 5 s, 15 s, 60 s, jittered)."""
    delays = settings.retry_delays_seconds
    return step.with_options(
        retries=len(delays), retry_delay_seconds=delays, retry_jitter_factor=JITTER
    )


def dead_letter(
    store: StateStore,
    order_id: str,
    error: SyncError,
    *,
    source: str,
    payload: bytes | None,
    stage: str = "sync",
    order_name: str | None = None,
) -> int:
    """Park an order with Salesforce's (or our) full reason; ``stage`` when the error has none.

    ``order_name`` (``#1301``): the order's name when known (a webhook's payload also has it)."""
    return store.add_dead_letter(
        order_id,
        source=source,
        stage=error.stage or stage,
        error_code=error.code,
        message=error.message,
        fields=error.fields,
        payload=payload,
        errors=[e.as_dict() for e in error.errors] or None,
        order_name=order_name,
    )


def next_step(label: str) -> str:
    """What the operator does about a dead-lettered order."""
    return f"fix the cause, then run replay-dead-letters/manual with '{label}'"


@task(name="dead-letter", cache_policy=NO_CACHE, task_run_name="dead-letter {label}")
def park_order(
    store: StateStore,
    order_id: str,
    label: str,
    error: SyncError,
    *,
    source: str,
    payload: bytes | None,
    stage: str = "sync",
    order_name: str | None = None,
) -> State[Any]:
    """Dead-letter an order as a visible task run that fails with the dead letter and next step.

    Call it with ``return_state=True``: the run goes on, and the Prefect UI shows a red
    ``dead-letter #1001`` task whose message says which dead letter it is and what to do.
    """
    letter_id = dead_letter(
        store, order_id, error, source=source, payload=payload, stage=stage, order_name=order_name
    )
    return Failed(
        message=f"order {label} is dead letter {letter_id}: {error}. Next: {next_step(label)}",
        data=letter_id,
    )


@task(
    name="sync-claimed-order",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_if_transient,
    task_run_name="sync {plan.label}",
)
def sync_claimed_order(plan: SyncPlan, ctx: SyncContext, shopify: ShopifyPort) -> SyncOutcome:
    """Sync one claimed order: its newest webhook payload, or its state fetched from Shopify."""
    order = plan.order
    if order is None:
        node = shopify.order(plan.order_id)
        if node is None:
            raise PermanentError(
                f"Shopify has no order {plan.order_id} any more",
                code="ORDER_NOT_FOUND",
                stage="fetch",
            )
        order = parse_graphql_order(node)
    return sync_order_state(order, ctx)
