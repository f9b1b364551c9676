"""Run the receiver: wiring from the settings, the loopback rule, and the Prefect nudge."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.applications import Starlette

from state import Delivery, StateStore
from tasks.settings import Settings
from webhooks.app import ReceiverConfig, create_app

log = logging.getLogger("shopsync.webhooks")

EVENT_NAME = "shopsync.webhook.received"


def receiver_config(settings: Settings) -> ReceiverConfig:
    """What the receiver checks, from the settings."""
    shops = set(settings.webhook_allowed_shops)
    if settings.shopify_store_domain:
        shops.add(settings.shopify_store_domain)
    return ReceiverConfig(
        secrets=tuple(s.get_secret_value().encode() for s in settings.shopify_webhook_secret),
        allowed_shops=frozenset(shops),
        max_body_bytes=settings.webhook_max_body_bytes,
    )


def prefect_notify(delivery: Delivery) -> None:
    """Emit a Prefect event for the drain deployment's trigger (queued, not awaited)."""
    from prefect.events import emit_event

    emit_event(
        event=EVENT_NAME,
        resource={"prefect.resource.id": f"shopify.order.{delivery.order_id}"},
        payload={"topic": delivery.topic, "order_id": delivery.order_id},
    )


class Debounced:
    """Pass on at most one notification per ``interval`` seconds, always including the last.

    A burst of deliveries needs one nudge, not one each: the drain it starts syncs every pending
    delivery. The trailing call guarantees a delivery that arrives just after a nudge is nudged too.
    """

    def __init__(self, notify: Callable[[Delivery], None], interval: float = 1.0):
        self._notify = notify
        self._interval = interval
        self._lock = threading.Lock()
        self._last = 0.0
        self._trailing: Delivery | None = None
        self._timer: threading.Timer | None = None

    def __call__(self, delivery: Delivery) -> None:
        with self._lock:
            wait = self._last + self._interval - time.monotonic()
            if wait <= 0:
                self._last = time.monotonic()
            else:
                self._trailing = delivery
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._flush)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self._notify(delivery)

    def _flush(self) -> None:
        with self._lock:
            delivery, self._trailing, self._timer = self._trailing, None, None
            self._last = time.monotonic()
        if delivery is not None:
            try:
                self._notify(delivery)
            except Exception:
                log.warning("could not nudge Prefect", exc_info=True)


def due_work_waiting(next_due: datetime | None, claimed: int, now: datetime) -> bool:
    """Whether to start a drain: a pending delivery is due and no drain is holding claims."""
    if next_due is None or claimed:
        return False
    if next_due.tzinfo is None:
        next_due = next_due.replace(tzinfo=UTC)
    return next_due <= now


def nudge_due_work() -> None:
    """Emit the drain trigger's event for deliveries whose retry came due."""
    from prefect.events import emit_event

    emit_event(
        event=EVENT_NAME,
        resource={"prefect.resource.id": "shopify.order.due"},
        payload={"topic": "retry-due"},
    )


class DueWorkWatcher:
    """The drain's safety net without a run a minute: look at the inbox once a minute and start
    a drain only when a pending delivery is due (a retry whose backoff passed, or a delivery whose
    event was lost) or a dead drain's lease ran out, and no live drain is at work. An empty inbox
    costs one query, not a flow run."""

    def __init__(
        self, store: StateStore, notify: Callable[[], None] = nudge_due_work, every: float = 60.0
    ):
        self._store = store
        self._notify = notify
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="due-work-watcher", daemon=True)

    def __enter__(self) -> DueWorkWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self) -> bool:
        """One look; True when it started a drain."""
        now = datetime.now(UTC)
        next_due, live_claims = self._store.drain_outlook(now)
        if not due_work_waiting(next_due, live_claims, now):
            return False
        self._notify()
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.check()
            except Exception:
                log.warning("the due-work watcher could not check the inbox", exc_info=True)


def build_receiver(settings: Settings, *, notify_prefect: bool = True) -> Starlette:
    """The receiver app for these settings (refuses to start without a webhook secret)."""
    problems = settings.problems(need={"webhooks"})
    if problems:
        raise SystemExit("\n".join(problems))
    store = StateStore.open(settings.state_url)
    notify = None
    if notify_prefect:
        # Import Prefect's events client now (seconds), not on the first delivery, where it would
        # hold the event loop and every request waiting on it.
        import prefect.events  # noqa: F401

        notify = Debounced(prefect_notify)
    return create_app(receiver_config(settings), store, notify)


def check_bind(host: str, *, allow_public: bool) -> None:
    """Refuse a non-loopback address unless the operator said so (Non-negotiable 5)."""
    if allow_public or _is_loopback(host):
        return
    raise SystemExit(
        f"refusing to bind the webhook receiver to {host}: it is not a loopback address. Put a "
        "TLS proxy in front and set SHOPSYNC_WEBHOOK_ALLOW_PUBLIC_BIND=true to allow it."
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _prefect_api_configured() -> bool:
    """Whether a Prefect API is configured. Without one there is no trigger to nudge, and an
    event would make Prefect start a temporary server inside the receiver on the first delivery,
    blocking every request for seconds (past Shopify's 5 s timeout)."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return True
    log.warning(
        "PREFECT_API_URL is not set: deliveries are stored but Prefect is not nudged; the "
        "drain's safety-net schedule picks them up"
    )
    return False


def serve_receiver(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the receiver in the foreground until interrupted."""
    import uvicorn

    host = host or settings.webhook_host
    port = settings.webhook_port if port is None else port
    check_bind(host, allow_public=settings.webhook_allow_public_bind)
    prefect = _prefect_api_configured()
    app = build_receiver(settings, notify_prefect=prefect)
    log.info("webhook receiver on http://%s:%s/webhooks/shopify", host, port)
    if not prefect:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        return
    with DueWorkWatcher(StateStore.open(settings.state_url)):
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
