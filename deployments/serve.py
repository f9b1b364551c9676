"""The five Prefect deployments, and the serve entry point that runs them in one process.

Deployment names (flow/deployment), as the Prefect UI shows them:
  reconcile/nightly              cron (default 03:30) in the shop's IANA timezone
  reconcile/backfill             manual: start, end (shop dates, required), dry_run (default on)
  sync-order/manual              one order: #1001 or its numeric id
  sync-pending-orders/webhook    event trigger on the receiver's events + hourly safety net
  replay-dead-letters/manual     all open dead letters, or chosen order names / ids

Under ``shopsync serve`` the drain itself runs warm, in the serve process, started the moment the
receiver stores a delivery (``deployments/warm_drain.py``; ``SHOPSYNC_SERVE_DRAIN=runner`` turns
that off). The deployment serves a receiver that runs on its own, manual runs and the safety net:
a receiver's nudger (``webhooks.serve.DrainNudger``) emits the trigger's
event when a delivery is stored and no drain is at work or on its way, and looks at the inbox
every few seconds, so retries that come due are drained without a run per minute; the runner
polls for runs every second (``RUNNER_POLL_SECONDS``). The hourly schedule remains as the last
resort (e.g. a receiver on another machine), so the run history holds about 24 empty runs a day
instead of 1,440.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.events.schemas.automations import Posture
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.schedules import Cron, Interval

from tasks.settings import Settings
from webhooks.serve import EVENT_NAME

PROCESS_LIMIT = 4  # flow-run subprocesses at once; never unbounded (prefect.md §10)
# How often the runner asks the Prefect API for runs to start. Prefect's default (10 s,
# PREFECT_RUNNER_POLL_FREQUENCY) put 0-10 s between a webhook's event and its drain run; one
# small query a second against our own server is cheap. Passed as ``Runner(query_seconds=…)``.
RUNNER_POLL_SECONDS = 1.0
SAFETY_NET = timedelta(hours=1)  # last resort; the due-work watcher covers retries every minute
# A served drain stays this long after its last batch, looking for new work every 0.25 s, so an
# order that arrives meanwhile is synced at once instead of after a new flow-run process starts
# (seconds of imports; flows/drain_linger.py). One drain run covers a trickle of orders.
DRAIN_LINGER_SECONDS = 20.0


def build_deployments(settings: Settings, shop_timezone: str) -> list[Any]:
    """The deployments, with typed parameters (the UI renders them as forms)."""
    from flows.reconcile import backfill, nightly
    from flows.replay import replay_dead_letters
    from flows.sync_order import sync_order
    from flows.sync_pending import sync_pending_orders

    return [
        nightly.to_deployment(
            name="nightly",
            description=f"Runs {cron_in_words(settings.nightly_cron, shop_timezone)} (the UI "
            "shows times in your own timezone). Nightly reconciliation from the cursor: find and "
            "repair what webhooks missed, report it, advance the cursor. Fails when any order "
            "could not be repaired.",
            schedules=[Cron(settings.nightly_cron, timezone=shop_timezone, slug="nightly")],
            parameters={"dry_run": False},
            concurrency_limit=1,
            tags=["shopsync", "reconcile"],
        ),
        _with_shop_dates(
            backfill.to_deployment(
                name="backfill",
                description=f"Reconcile a date range by hand: start and end are dates in the "
                f"shop's timezone ({shop_timezone}). dry_run is on by default and only reports "
                "the repair plan; turn it off to write the repairs. Never moves the nightly "
                "cursor.",
                tags=["shopsync", "reconcile"],
            ),
            shop_timezone,
        ),
        sync_order.to_deployment(
            name="manual",
            description="Resync one Shopify order: its name as customers see it (#1001) or its "
            "numeric id.",
            tags=["shopsync"],
        ),
        sync_pending_orders.to_deployment(
            name="webhook",
            description="Drain the webhook inbox into Salesforce. Under `shopsync serve` the "
            "drain runs warm inside the serve process (runs tagged warm); this deployment is "
            "started by a separate receiver's nudges (when work waits and no drain is at work "
            "or on its way; retries that come due too), by hand, and hourly as "
            "a last-resort safety net. Stays linger_seconds after the inbox empties, so the "
            "next orders need no new run. Fails when it dead-lettered an order or was held.",
            triggers=[_webhook_trigger()],
            schedules=[Interval(SAFETY_NET, slug="safety-net")],
            parameters={"linger_seconds": DRAIN_LINGER_SECONDS},
            concurrency_limit=ConcurrencyLimitConfig(
                limit=settings.drain_concurrency,
                collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW,
            ),
            tags=["shopsync", "webhooks"],
        ),
        replay_dead_letters.to_deployment(
            name="manual",
            description="Replay dead-lettered orders once the cause is fixed: order names (#1301), "
            "order ids or dead-letter ids from the shopsync-dead-letters artifact; empty = all.",
            tags=["shopsync"],
        ),
    ]


def cron_in_words(cron: str, timezone: str) -> str:
    """``30 3 * * *`` in ``America/New_York`` → ``03:30 America/New_York every day``.

    The common daily form is put in words; anything else is shown as the cron expression.
    """
    parts = cron.split()
    if (
        len(parts) == 5
        and parts[0].isdigit()
        and parts[1].isdigit()
        and parts[2:] == ["*", "*", "*"]
    ):
        return f"{int(parts[1]):02d}:{int(parts[0]):02d} {timezone} every day"
    return f"on the cron schedule '{cron}' in {timezone}"


def _with_shop_dates(deployment: Any, shop_timezone: str) -> Any:
    """Name the shop's timezone on the backfill form's date fields."""
    properties = deployment._parameter_openapi_schema.properties
    properties["start"]["description"] = f"First day, in the shop's timezone ({shop_timezone})."
    properties["end"]["description"] = (
        f"Last day, inclusive, in the shop's timezone ({shop_timezone})."
    )
    return deployment


def _webhook_trigger() -> DeploymentEventTrigger:
    # A burst of deliveries makes few runs: the first events start drains, and the deployment's
    # concurrency limit (SHOPSYNC_DRAIN_CONCURRENCY, default 1; cancel-new) drops the rest while
    # they run; they drain everything anyway (claims keep concurrent drains apart).
    return DeploymentEventTrigger(
        name="shopsync-webhook-received",
        expect={EVENT_NAME},
        match={"prefect.resource.id": "shopify.order.*"},
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(seconds=0),
    )


def serve_deployments(settings: Settings, shop_timezone: str, limit: int = PROCESS_LIMIT) -> None:
    """Register the deployments and run their flow runs here until interrupted."""
    from prefect import serve

    with stop_on_ctrl_c():
        serve(
            *build_deployments(settings, shop_timezone),
            limit=limit,
            pause_on_shutdown=False,  # a restart must not pause the nightly schedule
            query_seconds=RUNNER_POLL_SECONDS,
        )


@contextmanager
def stop_on_ctrl_c() -> Iterator[None]:
    """Make Ctrl-C stop ``serve`` the way SIGTERM does.

    Prefect's runner shuts down gracefully on SIGTERM only; on SIGINT, asyncio cancels it midway
    and it hangs on its websocket. So SIGINT is turned into SIGTERM once the runner handles it
    (before that, it is a plain KeyboardInterrupt).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: FrameType | None) -> None:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt
        signal.raise_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, forward)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
