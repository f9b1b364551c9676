"""The webhook receiver: verify, store, answer. Never calls Shopify or Salesforce.

POST /webhooks/shopify, one endpoint for every topic (the topic comes from the header):
  200 stored or duplicate · 200 ignored (validly signed topic we do not handle) ·
  401 bad or missing signature (nothing stored) · 400 missing headers or a body that is not JSON ·
  403 shop not on the allowlist · 413 body over the limit · 503 only when the inbox cannot be
  written, so that Shopify retries.
GET /healthz: the inbox answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from state import Delivery, StateStore
from state.store import AddResult
from tasks.core.topics import HANDLED_TOPICS
from webhooks.deliveries import (
    order_id_of,
    parse_triggered_at,
    shopify_header,
    signature_matches,
)

log = logging.getLogger("shopsync.webhooks")

Notify = Callable[[Delivery], None]


class InboxWriter:
    """Group commit: deliveries that arrive while a commit is under way share the next one.

    Every response still waits for its own delivery's commit (durable before 200), but one disk
    sync serves every request waiting at that moment, and only one thread writes (SQLite takes
    one writer at a time; threads queueing in its busy handler would sleep far longer).
    """

    def __init__(self, store: StateStore):
        self._store = store
        self._waiting: list[tuple[Delivery, bool, asyncio.Future[AddResult]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # One thread of its own: the writes never queue behind other thread-pool work.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-writer")

    async def add(self, delivery: Delivery, ignored: bool) -> AddResult:
        """Store one delivery (with whatever else is waiting); raises if the commit fails."""
        future: asyncio.Future[AddResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery, ignored, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            items = [(delivery, ignored) for delivery, ignored, _ in batch]
            try:
                results = await asyncio.get_running_loop().run_in_executor(
                    self._thread, self._store.add_deliveries, items
                )
            except Exception as exc:  # every waiting request answers 503; none was stored
                for *_, future in batch:
                    future.set_exception(exc)
                continue
            for (*_, future), result in zip(batch, results, strict=True):
                future.set_result(result)


class BodyTooLarge(Exception):
    """The request body passed the configured limit."""


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """What the receiver checks deliveries against."""

    secrets: tuple[bytes, ...]
    allowed_shops: frozenset[str]
    max_body_bytes: int = 1_048_576


def create_app(
    config: ReceiverConfig, store: StateStore, notify: Notify | None = None
) -> Starlette:
    """The receiver's ASGI app."""

    writer = InboxWriter(store)

    async def receive(request: Request) -> JSONResponse:
        try:
            body = await _read_body(request, config.max_body_bytes)
        except BodyTooLarge:
            return _answer(413, "body too large")
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not signature_matches(body, shopify_header(headers, "hmac-sha256"), config.secrets):
            return _answer(401, "invalid signature")
        return await _accept(body, headers, config, store, notify, writer)

    async def healthz(_: Request) -> JSONResponse:
        try:
            depth = (await run_in_threadpool(store.counts)).inbox
        except SQLAlchemyError:
            return _answer(503, "inbox unavailable")
        return JSONResponse({"status": "ok", "inbox": depth})

    return Starlette(
        routes=[
            Route("/webhooks/shopify", receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


async def _accept(
    body: bytes,
    headers: dict[str, str],
    config: ReceiverConfig,
    store: StateStore,
    notify: Notify | None,
    writer: InboxWriter,
) -> JSONResponse:
    topic = shopify_header(headers, "topic")
    shop = (shopify_header(headers, "shop-domain") or "").lower()
    webhook_id = shopify_header(headers, "webhook-id")
    if not topic or not shop or not webhook_id or len(webhook_id) > 100:
        return _answer(400, "missing X-Shopify-Topic, -Shop-Domain or -Webhook-Id")
    if config.allowed_shops and shop not in config.allowed_shops:
        return _answer(403, "shop not allowed")
    payload = _parse_json(body)
    if payload is _NOT_JSON:
        return _answer(400, "body is not JSON")
    delivery = Delivery(
        webhook_id=webhook_id,
        topic=topic[:64],
        shop_domain=shop[:255],
        body=body,
        order_id=order_id_of(topic, payload),
        event_id=(shopify_header(headers, "event-id") or "")[:100] or None,
        api_version=(shopify_header(headers, "api-version") or "")[:20] or None,
        triggered_at=parse_triggered_at(shopify_header(headers, "triggered-at")),
    )
    ignored = topic not in HANDLED_TOPICS or delivery.order_id is None
    try:
        # The commit waits for the disk (synchronous=FULL); keep the event loop free meanwhile.
        result = await writer.add(delivery, ignored)
    except SQLAlchemyError:
        log.exception("inbox write failed for webhook %s", webhook_id)
        return _answer(503, "inbox unavailable")
    if result == "stored" and notify is not None:
        _notify_quietly(notify, delivery)
    return JSONResponse({"status": result})


_NOT_JSON = object()


def _parse_json(body: bytes) -> Any:
    """The body as JSON, or ``_NOT_JSON``. orjson first (a third of the stdlib's CPU on an order
    body); what it refuses (integers past 64 bits, NaN, lone surrogates) the stdlib decides, so
    exactly the bodies ``json.loads`` rejects are rejected."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return _NOT_JSON


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _notify_quietly(notify: Notify, delivery: Delivery) -> None:
    # Best effort: the delivery is already safe in the inbox; the safety-net schedule finds it.
    try:
        notify(delivery)
    except Exception:
        log.warning("could not nudge Prefect about webhook %s", delivery.webhook_id, exc_info=True)


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message} if status >= 400 else {"status": message}, status)
