"""Listing a reconcile window's orders from Shopify into a JSONL spool file, and asking Shopify
which order ids it still has.

Small windows are paged through the GraphQL ``orders`` connection (``ShopifyClient``); once a
window turns out to be larger than ``bulk_after_pages`` pages, the listing switches to a GraphQL
bulk operation (research/shopify.md §2: ``bulkOperationRunQuery``, poll, download JSONL; child
connection nodes come on their own lines with ``__parentId``, after their parent). Either way the
orders land one JSON object per line in a spool file, so memory stays flat however large the
window, and the reconcile can read the file twice (once to diff, once to build repair bodies).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tasks.core.errors import PermanentError, RetryableError
from tasks.reporting.progress import report as report_progress
from tasks.shopify.port import ShopifyPort
from tasks.shopify.queries import BULK_RUN, BULK_STATUS, bulk_orders_query

if TYPE_CHECKING:
    from tasks.shopify.client import ShopifyClient

PROGRESS_EVERY = 1_000  # orders downloaded between two progress reports
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})


@dataclass(frozen=True, slots=True)
class SpoolResult:
    """How a window was listed."""

    path: Path
    orders: int
    method: str  # "pages" or "bulk"
    shopify_calls: int


def stitch(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Top-level objects from bulk JSONL, each child line attached under ``__children``.

    A child (a line with ``__parentId``) always follows its parent in Shopify's output.
    """
    current: dict[str, Any] | None = None
    for line in lines:
        if not line.strip():
            continue
        item = json.loads(line)
        parent = item.pop("__parentId", None)
        if parent is None:
            if current is not None:
                yield current
            current = item
        elif current is not None and current.get("id") == parent:
            current.setdefault("__children", []).append(item)
    if current is not None:
        yield current


def spool_pages(
    shopify: ShopifyPort, start: datetime, end: datetime, path: Path, bulk_after_pages: int
) -> int | None:
    """Write the window's orders page by page; ``None`` when the window is too large for pages."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for number, page in enumerate(shopify.order_pages(start, end), start=1):
            for node in page:
                out.write(json.dumps(node, separators=(",", ":")) + "\n")
                count += 1
            report_progress("listing", count)
            if number >= bulk_after_pages:
                return None
    return count


def start_bulk(shopify: ShopifyClient, start: datetime, end: datetime) -> str:
    """Start a bulk operation over the window; returns its id."""
    data = shopify.graphql(BULK_RUN, {"query": bulk_orders_query(start, end)})
    answer = data.get("bulkOperationRunQuery") or {}
    errors = answer.get("userErrors") or []
    if errors:
        message = "; ".join(str(e.get("message")) for e in errors)
        if any("in progress" in str(e.get("message", "")).lower() for e in errors):
            raise RetryableError(message, code="BULK_IN_PROGRESS")
        raise PermanentError(message, code="BULK_REJECTED")
    return str((answer.get("bulkOperation") or {})["id"])


def wait_bulk(
    shopify: ShopifyClient,
    operation_id: str,
    *,
    timeout: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll until the operation finishes; returns the download URL (empty for no results)."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        data = shopify.graphql(BULK_STATUS, {"id": operation_id})
        operation = data.get("bulkOperation") or {}
        status = str(operation.get("status") or "")
        if status == "COMPLETED":
            return str(operation.get("url") or "")
        if status in TERMINAL:
            raise RetryableError(
                f"Shopify bulk operation {operation_id} ended {status} "
                f"({operation.get('errorCode')})",
                code=f"BULK_{status}",
            )
        if time.monotonic() > deadline:
            raise RetryableError(f"bulk operation {operation_id} still {status}", code="TIMEOUT")
        sleep(delay)
        delay = min(delay * 1.5, 5.0)


def download_bulk(shopify: ShopifyClient, url: str, path: Path) -> int:
    """Stream the JSONL result to ``path`` (stitched: one order per line) through the client's
    connection pool; returns the count."""
    count = 0
    if not url:
        path.write_text("", encoding="utf-8")
        return 0
    try:
        with (
            shopify.stream(url) as response,
            path.open("w", encoding="utf-8") as out,
        ):
            if response.status_code != 200:
                raise RetryableError(
                    f"bulk result download answered {response.status_code}",
                    code=f"HTTP_{response.status_code}",
                )
            for item in stitch(response.iter_lines()):
                out.write(json.dumps(item, separators=(",", ":")) + "\n")
                count += 1
                if count % PROGRESS_EVERY == 0:
                    report_progress("listing", count)
    except httpx.TransportError as exc:
        raise RetryableError(f"bulk result download failed: {exc}", code="DOWNLOAD") from exc
    return count


def wants_bulk(shopify: ShopifyPort, start: datetime, end: datetime, bulk_over: int | None) -> bool:
    """Whether the window holds more than ``bulk_over`` orders (counted only that far)."""
    if bulk_over is None:
        return False
    return shopify.count_orders(start, end, limit=bulk_over + 1) > bulk_over


def spool_window(
    shopify: ShopifyPort,
    start: datetime,
    end: datetime,
    path: Path,
    *,
    bulk_after_pages: int = 10,
    bulk_over: int | None = None,
) -> SpoolResult:
    """List ``[start, end)`` (by ``updated_at``) into ``path``: pages, or a bulk operation.

    With ``bulk_over``, one cheap ``ordersCount`` decides up front: a window of more orders goes
    straight to a bulk operation, without first spending pages (and cost-limit waits) on it.
    """
    calls = shopify.calls
    path.parent.mkdir(parents=True, exist_ok=True)
    count = None
    if not wants_bulk(shopify, start, end, bulk_over) and bulk_after_pages:
        count = spool_pages(shopify, start, end, path, bulk_after_pages)
    if count is not None:
        return SpoolResult(path, count, "pages", shopify.calls - calls)
    count = shopify.bulk_orders(start, end, path)
    return SpoolResult(path, count, "bulk", shopify.calls - calls)


def read_spool(path: Path) -> Iterator[dict[str, Any]]:
    """The order nodes of a spool file, in listing order."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)
