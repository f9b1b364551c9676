"""Reconcile, step 1 (list): the window's orders from Shopify into a spool file (GraphQL pages,
or a bulk operation for large windows), each mapped to what Salesforce should hold (the expected
frame, :class:`tasks.core.diff_columns.ExpectedColumns`). The spool is read a second time by the
repair (:func:`mapped_orders`), so a large window is never held in memory as orders.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.reconcile_run import Request, Started
from state.models import utcnow
from tasks.core.diff_columns import ExpectedColumns
from tasks.core.errors import InvalidOrder
from tasks.core.mapping import SalesforceRecords, map_order, skip_reason
from tasks.core.orders import Order, parse_graphql_order
from tasks.core.reconcile_window import READ_ALL_ORDERS_DAYS, created_before_window
from tasks.core.topics import ORDER_TOPICS
from tasks.reporting.progress import report as report_progress
from tasks.runtime import Runtime
from tasks.shopify.bulk import SpoolResult, read_spool, spool_window
from tasks.shopify.client import page_size_for
from tasks.shopify.port import ShopifyPort
from tasks.shopify.queries import ORDER_FIELDS
from tasks.steps import retry_if_transient, with_retries
from tasks.sync import SyncContext

BULK_AFTER_PAGES = 10  # a window longer than this many GraphQL pages becomes a bulk operation


@dataclass(frozen=True)
class Listing:
    """What the listing found: orders listed and how, orders skipped by the mapping's rules, and
    the orders that cannot be mapped (order id → why)."""

    orders: int = 0
    method: str = ""
    skipped: int = 0
    invalid: Mapping[str, InvalidOrder] = field(default_factory=dict)


@dataclass(frozen=True)
class Listed:
    """The listing and the expected frame (one row per mapped order)."""

    listing: Listing
    expected: pd.DataFrame


def list_orders(runtime: Runtime, request: Request, ctx: SyncContext, spool: Path) -> Listed:
    """Spool the window's orders from Shopify and map them to the expected frame."""
    listed = with_retries(list_shopify_window, runtime.settings)(
        runtime.shopify, request.window_start, request.window_end, spool
    )
    report_progress("listing", listed.orders, listed.orders)
    expected = build_expected(spool, ctx)
    listing = Listing(listed.orders, listed.method, expected.skipped, expected.invalid)
    return Listed(listing, expected.frame)


@task(name="list-shopify-window", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def list_shopify_window(
    shopify: ShopifyPort, start: datetime, end: datetime, path: Path
) -> SpoolResult:
    """Spool the window's orders (pages, or a bulk operation when large) to ``path``."""
    return spool_window(
        shopify,
        start,
        end,
        path,
        bulk_after_pages=BULK_AFTER_PAGES,
        bulk_over=BULK_AFTER_PAGES * page_size_for(ORDER_FIELDS),
    )


@dataclass(frozen=True)
class Expected:
    """The expected frame plus what could not be expected."""

    frame: pd.DataFrame
    skipped: int
    invalid: dict[str, InvalidOrder]


def _orders(path: Path) -> Iterator[tuple[str, Order | InvalidOrder]]:
    for node in read_spool(path):
        try:
            order = parse_graphql_order(node)
        except InvalidOrder as exc:
            yield str(node.get("legacyResourceId") or node.get("id") or "?"), exc
            continue
        yield order.id, order


def mapped_orders(
    path: Path, ctx: SyncContext
) -> Iterator[tuple[str, Order | None, SalesforceRecords | InvalidOrder | None]]:
    """Every spooled order mapped (None for a skipped order, the error for an invalid one)."""
    for order_id, order in _orders(path):
        if isinstance(order, InvalidOrder):
            yield order_id, None, order
            continue
        if skip_reason(order, ctx.mapping) is not None:
            yield order_id, order, None
            continue
        try:
            yield order_id, order, map_order(order, ctx.mapping, ctx.org, ctx.shop_timezone)
        except InvalidOrder as exc:
            yield order_id, order, exc


@task(name="build-expected", cache_policy=NO_CACHE)
def build_expected(path: Path, ctx: SyncContext) -> Expected:
    """Map every spooled order to what Salesforce should hold."""
    columns = ExpectedColumns(ctx.mapping, multi_currency=ctx.org.multi_currency, org=ctx.org)
    skipped = 0
    invalid: dict[str, InvalidOrder] = {}
    for order_id, order, records in mapped_orders(path, ctx):
        if records is None:
            skipped += 1
        elif isinstance(records, InvalidOrder):
            invalid[order_id] = records
        else:
            columns.add(order.name if order else None, records, order.updated_at if order else None)
    return Expected(columns.frame(), skipped, invalid)


def hidden_orders(runtime: Runtime, run: Started) -> dict[str, datetime]:
    """The orders (id → ``created_at``) the listing cannot show: updated in the window, by their
    webhooks, but created before Shopify's 60 days when the app lacks ``read_all_orders``."""
    if run.full_access:
        return {}
    request = run.request
    cutoff = utcnow() - timedelta(days=READ_ALL_ORDERS_DAYS)
    bodies = runtime.store.order_bodies_received_since(request.window_start, ORDER_TOPICS)
    return created_before_window(bodies, request.window_start, request.window_end, cutoff)


def spool_path(runtime: Runtime, run: Started) -> Path:
    """Where this run spools the window's orders (removed when the run ends, or by the next
    run's recovery if it is killed: ``flows.reconcile_recovery``)."""
    return runtime.settings.data_dir / "reconcile" / f"run-{run.run_id}.jsonl"
