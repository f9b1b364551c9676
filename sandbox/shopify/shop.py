"""One sandbox shop: its store, clocks, buckets, webhook sender, bulk operations, faults, stats,
and the merchant actions (create/update/cancel/refund/delete) that emit webhooks."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from graphql import GraphQLSchema

from .bulk import BulkManager
from .clock import ShopClock, Ticker
from .config import READ_ALL_ORDERS_WINDOW, ShopConfig
from .faults import FaultInjector
from .generator import CENT, Generator, mix
from .render import gid, rest_order, rest_refund, totals
from .store import OrderStore
from .throttle import CallBucket, LeakyBucket
from .webhooks import WebhookConfig, WebhookSender


class Stats:
    """Thread-safe counters: calls by API, cost spent, throttled requests, faults."""

    def __init__(self) -> None:
        self._c: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, key: str, amount: float = 1) -> None:
        """Increment a counter."""
        with self._lock:
            self._c[key] += amount  # type: ignore[assignment]

    def snapshot(self) -> dict[str, Any]:
        """Current counters (``calls`` grouped by API)."""
        with self._lock:
            c = dict(self._c)
        calls = {k[6:]: v for k, v in c.items() if k.startswith("calls.")}
        return {
            "calls": calls,
            "cost_spent": c.get("cost_spent", 0),
            "throttled": c.get("throttled", 0),
            "rest_throttled": c.get("rest_throttled", 0),
            "max_cost_exceeded": c.get("max_cost_exceeded", 0),
            "unauthorized": c.get("unauthorized", 0),
            "expired_token": c.get("expired_token", 0),
            "tokens_issued": c.get("tokens_issued", 0),
            "token_refused": c.get("token_refused", 0),
            "faults_injected": c.get("faults_injected", 0),
        }

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._c.clear()


PII_ADDRESS_FIELDS = ("first_name", "last_name", "name", "address1", "address2", "phone",
                      "latitude", "longitude")


def _redact(address: dict[str, Any] | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {**address, **dict.fromkeys(PII_ADDRESS_FIELDS)}


class OrderNotFound(LookupError):
    """The order does not exist (or was deleted)."""


class Shop:
    """A shop served by the sandbox; see the package docstring for the public surface."""

    def __init__(self, cfg: ShopConfig, shop_id: int = 1,
                 webhook_config: WebhookConfig | None = None,
                 monotonic: Callable[[], float] | None = None,
                 wall_clock: Callable[[], float] | None = None) -> None:
        self.cfg = cfg
        self.shop_id = shop_id
        self.domain = cfg.domain
        self.tz = ZoneInfo(cfg.timezone)
        self.generator = Generator(cfg)
        self.store = OrderStore(self.generator)
        self.clock = ShopClock(wall_clock or time.time)
        self.ticker = Ticker(monotonic or time.monotonic)
        self.issued_tokens: dict[str, float] = {}
        limits = cfg.plan_limits()
        self.graphql_bucket = LeakyBucket(limits.graphql_bucket, limits.graphql_restore_rate,
                                          self.ticker)
        self.rest_bucket = CallBucket(limits.rest_bucket, limits.rest_leak_rate, self.ticker)
        self.webhooks = WebhookSender(cfg.domain, cfg.webhook_secret, cfg.api_version,
                                      webhook_config)
        self.faults = FaultInjector(cfg.seed)
        self.stats = Stats()
        self.bulk = BulkManager(self)
        self._refund_ids = 0
        self._lock = threading.RLock()
        self.schema: GraphQLSchema | None = None
        self._initial_scopes = list(cfg.scopes)
        self.redact_customer_data = cfg.redact_customer_data
        self.client_id = cfg.client_id
        self.client_secret = cfg.client_secret
        self.token_ttl_seconds = cfg.token_ttl_seconds

    # -- access -------------------------------------------------------------------------
    def token_ok(self, token: str | None) -> bool:
        """Is ``token`` the configured token or an unexpired client-credentials token?"""
        if not token:
            return False
        if token == self.cfg.access_token:
            return True
        expires = self.issued_tokens.get(token)
        if expires is not None and self.clock.now() >= expires:
            self.stats.add("expired_token")
            return False
        return expires is not None

    def issue_token(self, client_id: str, client_secret: str) -> dict[str, Any] | None:
        """Client credentials grant (research §3); None if the client is unknown.

        Each grant is a new token valid for ``token_ttl_seconds`` of shop time; earlier tokens
        stay valid until they expire. Grants are counted (``tokens_issued`` in the stats).
        """
        if not self.client_id or (client_id, client_secret) != (self.client_id,
                                                                self.client_secret):
            self.stats.add("token_refused")
            return None
        token = f"shpat_{uuid.uuid4().hex}"
        ttl = self.token_ttl_seconds
        self.issued_tokens[token] = self.clock.now() + ttl
        self.stats.add("tokens_issued")
        return {"access_token": token, "scope": ",".join(self.cfg.scopes), "expires_in": ttl}

    def configure_auth(self, body: dict[str, Any]) -> dict[str, Any]:
        """Change the client credentials / token lifetime, or expire every issued token now."""
        if "token_ttl_seconds" in body:
            ttl = int(body["token_ttl_seconds"])
            if ttl <= 0:
                raise ValueError("token_ttl_seconds must be positive")
            self.token_ttl_seconds = ttl
        if "client_id" in body:
            self.client_id = body["client_id"] or None
        if "client_secret" in body:
            self.client_secret = body["client_secret"] or None
        if body.get("expire_tokens"):
            now = self.clock.now()
            self.issued_tokens = dict.fromkeys(self.issued_tokens, now)
        now = self.clock.now()
        return {"client_id": self.client_id, "token_ttl_seconds": self.token_ttl_seconds,
                "tokens_issued": len(self.issued_tokens),
                "tokens_live": sum(1 for t in self.issued_tokens.values() if t > now)}

    def has_scope(self, scope: str) -> bool:
        """Was the token granted ``scope``? (``write_X`` implies ``read_X``.)"""
        scopes = set(self.cfg.scopes)
        return scope in scopes or scope.replace("read_", "write_", 1) in scopes

    def visible_from(self) -> int | None:
        """Oldest visible ``created_at`` without ``read_all_orders`` (60 days, research §3)."""
        if self.has_scope("read_all_orders"):
            return None
        return int(self.clock.now() - READ_ALL_ORDERS_WINDOW.total_seconds())

    def visible_order(self, order_id: int) -> dict[str, Any] | None:
        """The order if it exists and the token may see it."""
        rec = self.store.get(order_id)
        vf = self.visible_from()
        if rec is None or (vf is not None and rec["created"] < vf):
            return None
        return rec

    def rest(self, rec: dict[str, Any]) -> dict[str, Any]:
        """REST/webhook view of an order."""
        return rest_order(self.present(rec), self.tz, self.domain)

    def present(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The record as this app may see it: PII nulled when customer data is redacted."""
        if not self.redact_customer_data:
            return rec
        out = dict(rec, email=None, phone=None, billing=_redact(rec["billing"]),
                   shipping=_redact(rec["shipping"]))
        c = rec["customer"]
        if c is not None:
            out["customer"] = dict(c, first_name=None, last_name=None, email=None, phone=None,
                                   address=_redact(c["address"]),
                                   default_address=_redact(c["default_address"]))
        return out

    def reset(self) -> None:
        """Back to the generated store: no overlay, full buckets, no faults, no webhooks."""
        self.store.reset()
        self.issued_tokens.clear()
        self.client_id = self.cfg.client_id
        self.client_secret = self.cfg.client_secret
        self.token_ttl_seconds = self.cfg.token_ttl_seconds
        self.cfg.scopes = list(self._initial_scopes)
        self.redact_customer_data = self.cfg.redact_customer_data
        self.clock.reset()
        self.graphql_bucket.reset()
        self.rest_bucket.reset()
        self.faults.clear()
        self.stats.reset()
        self.webhooks.reset()
        self.webhooks.secret = self.cfg.webhook_secret
        self.bulk.reset()

    # -- merchant actions ---------------------------------------------------------------
    def _require(self, order_id: int) -> dict[str, Any]:
        rec = self.store.get(order_id)
        if rec is None:
            raise OrderNotFound(order_id)
        return copy.deepcopy(rec)

    def _touch(self, rec: dict[str, Any]) -> int:
        now = max(int(self.clock.now()), rec["updated"] + 1)
        rec["updated"] = now
        return now

    def _emit(self, rec: dict[str, Any], *topics: str) -> str:
        event_id = str(uuid.uuid4())
        payload = self.rest(rec)
        for topic in topics:
            self.webhooks.emit(topic, payload, rec["id"], event_id)
        return event_id

    def create_order(self, fields: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create an order now (optionally backdated with ``created_at``); emits orders/create
        (and orders/paid when paid)."""
        fields = dict(fields or {})
        i = self.store.new_index()
        rec = self.generator.order(i)
        now = int(self.clock.now())
        if "created_at" in fields:
            now = int(datetime.fromisoformat(str(fields.pop("created_at"))).timestamp())
        rec.update(created=now, updated=now, processed=now, cancelled=None, cancel_reason=None,
                   closed=None, fulfilled=False, refunds=[])
        self._apply(rec, fields)
        self.store.put(rec)
        topics = ["orders/create"]
        if rec["base_financial_status"] == "paid":
            topics.append("orders/paid")
        self._emit(rec, *topics)
        return rec

    def update_order(self, order_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Edit an order (email, phone, names, total_price, …); bumps updated_at; emits
        orders/updated (and orders/paid when it becomes paid)."""
        rec = self._require(order_id)
        was_paid = rec["base_financial_status"] == "paid"
        self._apply(rec, dict(fields))
        self._touch(rec)
        self.store.put(rec)
        topics = ["orders/updated"]
        if rec["base_financial_status"] == "paid" and not was_paid:
            topics.append("orders/paid")
        self._emit(rec, *topics)
        return rec

    def cancel_order(self, order_id: int, reason: str = "customer") -> dict[str, Any]:
        """Cancel (and close) an order; emits orders/cancelled and orders/updated."""
        rec = self._require(order_id)
        now = self._touch(rec)
        rec.update(cancelled=now, cancel_reason=reason, closed=now)
        self.store.put(rec)
        self._emit(rec, "orders/cancelled", "orders/updated")
        return rec

    def refund_order(self, order_id: int, amount: str | Decimal | None = None,
                     note: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Refund ``amount`` (default: what is left); emits refunds/create and orders/updated.
        Returns (order, refund REST payload)."""
        rec = self._require(order_id)
        left = totals(rec)["current_total"]
        value = Decimal(str(amount)).quantize(CENT) if amount is not None else left
        if value <= 0 or value > left:
            raise ValueError(f"refund amount must be in (0, {left}]")
        now = self._touch(rec)
        with self._lock:
            self._refund_ids += 1
            rid = 9_300_000_000_000_000 + mix(self.cfg.seed, 77) % 10**12 + self._refund_ids * 10
        refund = {"id": rid, "created": now, "note": note, "amount": value, "restock": False}
        rec["refunds"].append(refund)
        self.store.put(rec)
        event_id = str(uuid.uuid4())
        payload = rest_refund(rec, refund, self.tz)
        self.webhooks.emit("refunds/create", payload, rec["id"], event_id)
        self.webhooks.emit("orders/updated", self.rest(rec), rec["id"], event_id)
        return rec, payload

    def delete_order(self, order_id: int) -> None:
        """Delete an order; emits orders/delete with its id."""
        if not self.store.delete(order_id):
            raise OrderNotFound(order_id)
        self.webhooks.emit("orders/delete",
                           {"id": order_id, "admin_graphql_api_id": gid("Order", order_id)},
                           order_id)

    def _apply(self, rec: dict[str, Any], fields: dict[str, Any]) -> None:
        """Apply control-API fields to an order record."""
        for key in ("email", "phone", "note", "test", "presentment_currency"):
            if key in fields:
                rec[key] = fields.pop(key)
        if "total_price" in fields:
            rec["total_override"] = str(Decimal(str(fields.pop("total_price"))).quantize(CENT))
        if "financial_status" in fields:
            rec["base_financial_status"] = fields.pop("financial_status")
        if "customer" in fields and fields["customer"] is None:
            fields.pop("customer")
            rec["customer"] = None
        names = {k: fields.pop(k) for k in ("first_name", "last_name") if k in fields}
        if names:
            self._rename(rec, names)
        if rec["presentment_currency"] == rec["currency"]:
            rec["rate"] = Decimal(1)
        if fields:
            raise ValueError(f"unsupported order fields: {sorted(fields)}")

    @staticmethod
    def _rename(rec: dict[str, Any], names: dict[str, str]) -> None:
        targets = [rec["billing"], rec["shipping"]]
        if rec["customer"] is not None:
            rec["customer"] = dict(rec["customer"])
            rec["customer"].update(names)
            rec["customer"]["address"] = dict(rec["customer"]["address"])
            targets.append(rec["customer"]["address"])
            if rec["customer"]["default_address"] is not None:
                rec["customer"]["default_address"] = dict(rec["customer"]["default_address"])
                targets.append(rec["customer"]["default_address"])
        for addr in targets:
            if addr is not None:
                addr.update(names)
                addr["name"] = f"{addr['first_name'] or ''} {addr['last_name'] or ''}".strip()

    # -- load helpers -------------------------------------------------------------------
    def send_order_events(self, topic: str = "orders/create", start: int = 0,
                          count: int | None = None, rate: float | None = None,
                          max_pending: int = 2000) -> int:
        """Replay generated orders ``[start, start+count)`` as ``topic`` webhooks (to every
        subscription of that topic); returns how many events were queued.

        Payloads are built as the queue drains (at most ``max_pending`` deliveries wait), so a
        100,000-order replay does not hold 100,000 bodies; ``rate`` caps events per second.
        Blocks until everything is queued — run it in a thread to overlap with other work."""
        end = self.generator.n if count is None else min(self.generator.n, start + count)
        sent = 0
        began = time.monotonic()
        for i in range(start, end):
            rec = self.store.get(self.generator.order_id(i))
            if rec is None:
                continue
            while self.webhooks.pending() >= max_pending:
                time.sleep(0.005)
            if rate:
                delay = began + sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.webhooks.emit(topic, self.rest(rec), rec["id"])
            sent += 1
        return sent

    def send_order_events_in_background(self, **kwargs: Any) -> threading.Thread:
        """:meth:`send_order_events` in a daemon thread (started); join it to wait."""
        thread = threading.Thread(target=self.send_order_events, kwargs=kwargs, daemon=True,
                                  name=f"replay:{self.domain}")
        thread.start()
        return thread
