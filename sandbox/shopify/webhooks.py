"""The webhook sender: signs, delivers, retries, duplicates and reorders like Shopify
(research §1 Webhooks: headers, HMAC, 5 s timeout, 8 retries over 4 h, duplicates, ordering)."""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

ORDER_TOPICS = ("orders/create", "orders/updated", "orders/paid", "orders/cancelled",
                "refunds/create", "orders/delete")
TOPICS = (*ORDER_TOPICS, "orders/edited", "orders/fulfilled", "orders/partially_fulfilled",
          "customers/update", "bulk_operations/finish")


def sign(secret: str, body: bytes) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class WebhookConfig:
    """Delivery behaviour.  ``time_scale`` compresses the retry schedule (4 h × 0.001 ≈ 14 s);
    ``out_of_order_delay`` (seconds, not scaled) is how long held-back deliveries wait."""

    duplicate_rate: float = 0.0
    out_of_order_rate: float = 0.0
    out_of_order_delay: float = 0.3
    time_scale: float = 0.001
    timeout: float = 5.0
    max_retries: int = 8
    retry_window_seconds: float = 4 * 3600
    remove_subscription_after_failures: bool = True
    seed: int = 0
    workers: int = 4

    def retry_delays(self) -> list[float]:
        """Unscaled exponential delays: ``max_retries`` of them summing to the window."""
        n = self.max_retries
        base = self.retry_window_seconds / (2**n - 1) if n else 0.0
        return [base * 2**k for k in range(n)]


@dataclass
class Subscription:
    """A webhook subscription (shop-specific, created through the Admin API or control API)."""

    id: str
    topic: str
    url: str
    created_at: str
    source: str = "api"


@dataclass
class Delivery:
    """One delivery (retries and duplicates keep its webhook id, body and triggered-at)."""

    webhook_id: str
    event_id: str
    topic: str
    url: str
    body: bytes
    order_id: int | None
    triggered_at: str
    subscription_id: str
    secret: str = ""
    attempt: int = 0
    duplicate: bool = False
    held_back: bool = False


@dataclass
class Attempt:
    """A delivery-log entry."""

    webhook_id: str
    event_id: str
    topic: str
    order_id: int | None
    url: str
    attempt: int
    status_code: int | None
    error: str | None
    ok: bool
    duplicate: bool
    held_back: bool
    at: str
    triggered_at: str
    elapsed_ms: float = 0.0


@dataclass
class _Queue:
    heap: list[tuple[float, int, Delivery]] = field(default_factory=list)
    in_flight: int = 0


class WebhookSender:
    """Per-shop sender with background worker threads."""

    def __init__(self, domain: str, secret: str, api_version: str,
                 config: WebhookConfig | None = None) -> None:
        self.domain = domain
        self.secret = secret
        self.api_version = api_version
        self.config = config or WebhookConfig()
        self._subs: dict[str, Subscription] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        self._q = _Queue()
        self._cv = threading.Condition()
        self._log: deque[Attempt] = deque(maxlen=500_000)
        self._rng = random.Random(self.config.seed)
        self._threads: list[threading.Thread] = []
        self._client: httpx.Client | None = None
        self._closed = False
        self._generation = 0
        self._old_secret: str | None = None
        self._old_secret_until = 0.0

    # -- subscriptions ------------------------------------------------------------------
    def subscribe(self, topic: str, url: str, source: str = "api"
                  ) -> tuple[Subscription | None, str | None]:
        """Create a subscription; (None, message) on a user error, as Shopify reports it."""
        if topic not in TOPICS:
            return None, f"Topic {topic!r} is not supported"
        if not url.startswith(("http://", "https://")):
            return None, "Address is invalid"
        with self._cv:
            if any(s.topic == topic and s.url == url for s in self._subs.values()):
                return None, "Address for this topic has already been taken"
            sid = f"gid://shopify/WebhookSubscription/{next(self._ids)}"
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            sub = Subscription(sid, topic, url, now, source)
            self._subs[sid] = sub
        return sub, None

    def unsubscribe(self, sub_id: str) -> bool:
        """Delete a subscription by its GID."""
        with self._cv:
            return self._subs.pop(sub_id, None) is not None

    def list_subscriptions(self) -> list[Subscription]:
        """All subscriptions, oldest first."""
        with self._cv:
            return list(self._subs.values())

    def get_subscription(self, sub_id: str) -> Subscription | None:
        """One subscription by GID."""
        with self._cv:
            return self._subs.get(sub_id)

    def rotate_secret(self, new_secret: str, old_secret_for_seconds: float = 0.0) -> None:
        """Switch to ``new_secret``; deliveries triggered in the next ``old_secret_for_seconds``
        are still signed with the old one (research §1: up to an hour after a rotation)."""
        with self._cv:
            self._old_secret = self.secret
            self._old_secret_until = time.monotonic() + old_secret_for_seconds
            self.secret = new_secret

    def _signing_secret(self) -> str:
        if self._old_secret is not None and time.monotonic() < self._old_secret_until:
            return self._old_secret
        return self.secret

    def configure(self, **changes: Any) -> WebhookConfig:
        """Change delivery behaviour (fields of :class:`WebhookConfig`)."""
        with self._cv:
            for key, value in changes.items():
                if not hasattr(self.config, key):
                    raise ValueError(f"unknown webhook setting {key!r}")
                setattr(self.config, key, type(getattr(self.config, key))(value))
            if "seed" in changes:
                self._rng = random.Random(self.config.seed)
            if "timeout" in changes and self._client is not None:
                self._client.close()
                self._client = None
        return self.config

    # -- emitting -----------------------------------------------------------------------
    def emit(self, topic: str, payload: dict[str, Any], order_id: int | None = None,
             event_id: str | None = None) -> list[str]:
        """Queue one delivery per subscription to ``topic``; returns their webhook ids."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return self.emit_raw(topic, body, order_id, event_id)

    def emit_raw(self, topic: str, body: bytes, order_id: int | None = None,
                 event_id: str | None = None) -> list[str]:
        """Like :meth:`emit` with an already serialized body."""
        event_id = event_id or str(uuid.uuid4())
        triggered = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        ids = []
        with self._cv:
            for sub in self._subs.values():
                if sub.topic != topic:
                    continue
                d = Delivery(str(uuid.uuid4()), event_id, topic, sub.url, body, order_id,
                             triggered, sub.id, self._signing_secret())
                delay = 0.0
                if self._rng.random() < self.config.out_of_order_rate:
                    d.held_back = True
                    delay = self.config.out_of_order_delay
                self._push(d, delay)
                ids.append(d.webhook_id)
            self._ensure_workers()
        return ids

    def _push(self, d: Delivery, delay: float) -> None:
        heapq.heappush(self._q.heap, (time.monotonic() + delay, next(self._seq), d))
        self._cv.notify()

    # -- workers ------------------------------------------------------------------------
    def _ensure_workers(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self.config.workers:
            t = threading.Thread(target=self._work, name=f"webhooks:{self.domain}", daemon=True)
            t.start()
            self._threads.append(t)

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=httpx.Timeout(self.config.timeout))
        return self._client

    def _next(self) -> Delivery | None:
        with self._cv:
            while not self._closed:
                if self._q.heap:
                    due = self._q.heap[0][0]
                    now = time.monotonic()
                    if due <= now:
                        d = heapq.heappop(self._q.heap)[2]
                        self._q.in_flight += 1
                        return d
                    self._cv.wait(due - now)
                else:
                    self._cv.wait(0.5)
            return None

    def _work(self) -> None:
        while True:
            d = self._next()
            if d is None:
                return
            try:
                self._attempt(d)
            finally:
                with self._cv:
                    self._q.in_flight -= 1
                    self._cv.notify_all()

    def headers(self, d: Delivery) -> dict[str, str]:
        """Every header Shopify sends with a delivery."""
        return {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": d.topic,
            "X-Shopify-Hmac-Sha256": sign(d.secret or self.secret, d.body),
            "X-Shopify-Shop-Domain": self.domain,
            "X-Shopify-API-Version": self.api_version,
            "X-Shopify-Webhook-Id": d.webhook_id,
            "X-Shopify-Event-Id": d.event_id,
            "X-Shopify-Triggered-At": d.triggered_at,
        }

    def _attempt(self, d: Delivery) -> None:
        generation = self._generation
        d.attempt += 1
        status, error = None, None
        start = time.monotonic()
        try:
            resp = self._http().post(d.url, content=d.body, headers=self.headers(d))
            status = resp.status_code
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        self._record(d, status, error, ok, (time.monotonic() - start) * 1000)
        with self._cv:
            if generation != self._generation:
                return
            if ok:
                if not d.duplicate and self._rng.random() < self.config.duplicate_rate:
                    dup = Delivery(**{**asdict(d), "attempt": 0, "duplicate": True})
                    self._push(dup, 0.0)
            elif d.attempt <= self.config.max_retries:
                delay = self.config.retry_delays()[d.attempt - 1] * self.config.time_scale
                self._push(d, delay)
            elif self.config.remove_subscription_after_failures:
                self._subs.pop(d.subscription_id, None)

    def _record(self, d: Delivery, status: int | None, error: str | None, ok: bool,
                elapsed_ms: float) -> None:
        self._log.append(Attempt(
            d.webhook_id, d.event_id, d.topic, d.order_id, d.url, d.attempt, status, error, ok,
            d.duplicate, d.held_back, datetime.now(UTC).isoformat(), d.triggered_at,
            round(elapsed_ms, 2)))

    # -- inspection ---------------------------------------------------------------------
    def deliveries(self) -> list[dict[str, Any]]:
        """The delivery log: one entry per attempt, oldest first."""
        return [asdict(a) for a in list(self._log)]

    def pending(self) -> int:
        """Deliveries queued or in flight."""
        with self._cv:
            return len(self._q.heap) + self._q.in_flight

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or in flight (retries included); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._q.heap or self._q.in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
        return True

    wait_idle = flush

    def reset(self) -> None:
        """Drop subscriptions, queued deliveries and the log; restore the default config."""
        with self._cv:
            self._generation += 1
            self._subs.clear()
            self._q.heap.clear()
            self._log.clear()
            self.config = WebhookConfig(workers=self.config.workers)
            self._rng = random.Random(self.config.seed)
            self._cv.notify_all()

    def close(self) -> None:
        """Stop the workers (queued deliveries are dropped)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=2)
        if self._client is not None:
            self._client.close()
