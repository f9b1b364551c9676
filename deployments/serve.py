"""The five Prefect deployments, and the serve entry point that runs them in one process.

Deployment names (flow/deployment), as the Prefect UI shows them:
  reconcile/nightly              cron (default 03:30) in the shop's IANA timezone
  reconcile/backfill             manual: start, end (shop dates), dry_run
  sync-order/manual              one order id
  sync-pending-orders/webhook    event trigger on the receiver's events + every-minute safety net
  replay-dead-letters/manual     all open dead letters, or chosen ids
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.schedules import Cron, Interval

from tasks.settings import Settings
from webhooks.serve import EVENT_NAME

PROCESS_LIMIT = 4  # flow-run subprocesses at once; never unbounded (prefect.md §10)


def build_deployments(settings: Settings, shop_timezone: str) -> list[Any]:
    """The deployments, with typed parameters (the UI renders them as forms)."""
    from flows.reconcile import reconcile
    from flows.replay import replay_dead_letters
    from flows.sync_order import sync_order
    from flows.sync_pending import sync_pending_orders

    return [
        reconcile.to_deployment(
            name="nightly",
            description="Nightly reconciliation from the cursor: find and repair what webhooks "
            "missed, report it, advance the cursor.",
            schedules=[Cron(settings.nightly_cron, timezone=shop_timezone, slug="nightly")],
            parameters={"dry_run": False},
            concurrency_limit=1,
            tags=["shopsync", "reconcile"],
        ),
        reconcile.to_deployment(
            name="backfill",
            description="Reconcile any date range (shop dates) by hand; dry_run only reports the "
            "repair plan. Never moves the nightly cursor.",
            tags=["shopsync", "reconcile"],
        ),
        sync_order.to_deployment(
            name="manual",
            description="Resync one Shopify order by its numeric id.",
            tags=["shopsync"],
        ),
        sync_pending_orders.to_deployment(
            name="webhook",
            description="Drain the webhook inbox into Salesforce. Started by the receiver's "
            "events (debounced) and every minute as a safety net.",
            triggers=[_webhook_trigger()],
            schedules=[Interval(timedelta(minutes=1), slug="safety-net")],
            concurrency_limit=ConcurrencyLimitConfig(
                limit=settings.drain_concurrency,
                collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW,
            ),
            tags=["shopsync", "webhooks"],
        ),
        replay_dead_letters.to_deployment(
            name="manual",
            description="Replay dead-lettered orders (all, or chosen ids) once the cause is fixed.",
            tags=["shopsync"],
        ),
    ]


def _webhook_trigger() -> DeploymentEventTrigger:
    # A burst of deliveries makes few runs: the first events start drains, and the deployment's
    # concurrency limit (SHOPSYNC_DRAIN_CONCURRENCY, default 1; cancel-new) drops the rest while
    # they run; they drain everything anyway (claims keep concurrent drains apart).
    return DeploymentEventTrigger(
        name="shopsync-webhook-received",
        expect={EVENT_NAME},
        match={"prefect.resource.id": "shopify.order.*"},
        posture="Reactive",
        threshold=1,
        within=timedelta(seconds=0),
    )


def serve_deployments(settings: Settings, shop_timezone: str, limit: int = PROCESS_LIMIT) -> None:
    """Register the deployments and run their flow runs here until interrupted."""
    from prefect import serve

    serve(
        *build_deployments(settings, shop_timezone),
        limit=limit,
        pause_on_shutdown=False,  # a restart must not pause the nightly schedule
    )
