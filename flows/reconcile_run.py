"""A reconcile run's frame: what was asked (:class:`Request`), the run as recorded
(:class:`Started`: its row in the state store, after abandoned runs are recovered), and the
small tasks and figures every step shares (the shop, the org context, API usage, progress).

The steps themselves: ``flows.reconcile_list`` (list), ``flows.reconcile_read`` (read, diff),
``flows.reconcile_repair`` (repair), ``flows.reconcile_publish`` (report) and
``flows.reconcile_finish`` (the outcome and the summary); the flow in ``flows.reconcile`` runs
them in turn. DESIGN.md §6.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from uuid import UUID

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context

from flows.reconcile_recovery import recover_abandoned_runs, this_host
from state.models import utcnow
from tasks.core.errors import RetryableError
from tasks.core.reconcile_window import needs_read_all_orders
from tasks.runtime import Runtime
from tasks.salesforce import SalesforcePort
from tasks.shopify.port import ShopifyPort, ShopInfo
from tasks.steps import retry_if_transient, with_retries
from tasks.sync import SyncContext

CURSOR = "nightly"  # the name `shopsync status` reads


@dataclass(frozen=True)
class Request:
    """What a run was asked to do: its mode (``nightly`` / ``manual``), the window
    ``[window_start, window_end)`` in UTC, whether it is a dry run, and — for a backfill — the
    shop dates asked for and the shop's timezone. ``started_at`` is when it was asked (the
    repair never overwrites what the webhook path wrote after it)."""

    mode: str
    window_start: datetime
    window_end: datetime
    dry_run: bool
    timezone: str | None = None
    dates: tuple[date, date] | None = None
    started: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=utcnow)


class Progress:
    """A Prefect progress artifact, moved forward step by step (best effort)."""

    def __init__(self, key: str | None) -> None:
        self.id: UUID | None = None
        if key is None:
            return
        try:
            # sync_compatible: a UUID when called from synchronous code, as here
            self.id = create_progress_artifact(  # type: ignore[assignment]
                0.0, key=key, description="reconcile progress"
            )
        except Exception:  # pragma: no cover - artifacts are reporting, never a failure
            self.id = None

    def set(self, value: float) -> None:
        """Move to ``value`` percent."""
        if self.id is not None:
            try:
                update_progress_artifact(self.id, value)
            except Exception:  # pragma: no cover
                self.id = None


@dataclass(frozen=True)
class Started:
    """A run recorded in the state store: its id, the shop's timezone (the report shows the
    window in it), the Shopify calls made before it, its progress artifact, and whether the
    window reaches where Shopify hides orders from this app (``blocked``) or the app lacks
    ``read_all_orders`` (``full_access`` False)."""

    request: Request
    run_id: int
    timezone: str | None
    shopify_before: int = 0
    progress: Progress = field(default_factory=lambda: Progress(None), compare=False)
    blocked: bool = False
    full_access: bool = True


def start(runtime: Runtime, request: Request) -> Started:
    """Read the shop, recover abandoned runs, and record this run as running."""
    shop = with_retries(read_shop, runtime.settings)(runtime.shopify)
    timezone = request.timezone or runtime.settings.shop_timezone or shop.timezone
    shopify_before = runtime.shopify.calls - 1
    recover_abandoned_runs(runtime.store, runtime.settings.data_dir / "reconcile", utcnow())
    run_id = runtime.store.start_run(
        request.mode,
        request.window_start,
        request.window_end,
        dry_run=request.dry_run,
        flow_run_id=flow_run_id(),
        host=this_host(),
        pid=os.getpid(),
    )
    return Started(
        request,
        run_id,
        timezone,
        shopify_before,
        Progress(f"reconcile-progress-{request.mode}"),
        blocked=needs_read_all_orders(request.window_start, utcnow(), shop.scopes),
        full_access="read_all_orders" in shop.scopes,
    )


def flow_run_id() -> str | None:
    """The id of the flow run this runs in (None outside one)."""
    try:
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    except Exception:
        return None


@task(name="read-shop", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def read_shop(shopify: ShopifyPort) -> ShopInfo:
    """The shop's scopes and timezone."""
    return shopify.shop_info()


@task(name="read-org", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def read_org(runtime: Runtime) -> SyncContext:
    """The sync context: the org schema (describe, cached) and the shop timezone."""
    return runtime.sync_context()


def sync_context(runtime: Runtime) -> SyncContext:
    """:func:`read_org` with the configured retries."""
    return with_retries(read_org, runtime.settings)(runtime)


@task(name="read-api-usage", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def read_api_usage(gateway: SalesforcePort) -> int:
    """The org's API usage just before this one ``/limits`` call.

    The gateway reads ``Sforce-Limit-Info`` from REST responses only (simple-salesforce's Bulk 2.0
    client does not record it), so after bulk calls the usage must be asked for.
    """
    usage = gateway.usage(refresh=True)
    return (usage.used if usage is not None else 1) - 1


def fresh_usage(runtime: Runtime) -> int | None:
    """Usage for the run's bookkeeping; unknown (None) rather than a failed run if unreadable."""
    try:
        return with_retries(read_api_usage, runtime.settings)(runtime.salesforce)
    except RetryableError:
        return None


def api_used(gateway: SalesforcePort) -> int | None:
    """The org's API usage as the gateway last saw it (None: not known)."""
    usage = gateway.usage()
    return None if usage is None else usage.used


def minus(after: int | None, before: int | None) -> int | None:
    """``after − before``, unknown when either is."""
    return None if after is None or before is None else after - before
