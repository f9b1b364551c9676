"""Run the receiver: wiring from the settings, the loopback rule, and the Prefect nudge."""

from __future__ import annotations

import gc
import ipaddress
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from starlette.applications import Starlette

from state import Delivery, StateStore
from state.drain_marks import drain_live_until
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


def due_work_waiting(next_due: datetime | None, claimed: int, now: datetime) -> bool:
    """Whether to start a drain: a pending delivery is due and no drain is holding claims."""
    if next_due is None or claimed:
        return False
    return _aware(next_due) <= now


def drain_outlook(store: StateStore, now: datetime) -> tuple[datetime | None, int]:
    """When the inbox next has work for a new drain, and how many claims live drains hold; a
    drain lingering with its "alive until" mark (``state.drain_marks``) counts as holding one:
    it claims due work within a moment (``flows/drain_linger.py``)."""
    next_due, live_claims = store.drain_outlook(now)
    if due_work_waiting(next_due, live_claims, now) and drain_live_until(store, now):
        live_claims = 1
    return next_due, live_claims


def should_nudge(
    next_due: datetime | None,
    live_claims: int,
    now: datetime,
    last_nudge: datetime | None,
    resend_after: timedelta,
) -> bool:
    """Whether to ask Prefect for a drain run now.

    Only when due work waits and no live drain holds claims (a live drain's next claim takes
    everything already committed). And not again while the last nudge is unanswered: when the
    oldest due delivery is older than the last nudge, no drain has claimed since, so a run is on
    its way (event → automation → runner → flow-run process); another nudge would only add a run
    that the deployment's concurrency limit cancels. After ``resend_after`` an unanswered nudge is
    taken as lost and sent again.
    """
    if not due_work_waiting(next_due, live_claims, now):
        return False
    if last_nudge is None or next_due is None:
        return True
    answered = _aware(next_due) > last_nudge
    return answered or now - last_nudge >= resend_after


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def nudge_drain() -> None:
    """Emit the drain trigger's event (queued to Prefect's events client, not awaited)."""
    from prefect.events import emit_event

    emit_event(
        event=EVENT_NAME,
        resource={"prefect.resource.id": "shopify.order.inbox"},
        payload={"topic": "inbox"},
    )


@dataclass
class NudgeMemory:
    """When this process last asked for a drain (shared by its nudgers)."""

    last_nudge: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


PROCESS_NUDGES = NudgeMemory()


class DrainNudger:
    """Asks Prefect for a drain run when, and only when, one is needed.

    The receiver pokes it after each stored delivery (an ``Event.set``: nothing on the request
    path waits for Prefect or the database); a thread then looks at the inbox (one query) and
    emits the drain trigger's event per :func:`should_nudge`. It also looks every ``every``
    seconds, so a retry whose backoff ended, a delivery whose event was lost or a dead drain's
    expired claims get a drain within seconds, without a run per minute: an empty inbox costs one
    query, not a flow run (the run history holds drains that had work). A drain that lingers
    after emptying the inbox holds no claims but keeps an "alive until" mark
    (``state.drain_marks``): while it lasts the drain is live, and no run is asked for.
    """

    def __init__(
        self,
        store: StateStore,
        notify: Callable[[], None] = nudge_drain,
        every: float = 2.0,
        resend_after: float = 60.0,
        min_gap: float = 0.2,
        memory: NudgeMemory | None = None,
    ):
        self._store = store
        self._notify = notify
        self._every = every
        self._resend_after = timedelta(seconds=resend_after)
        self._min_gap = min_gap
        self._memory = memory or PROCESS_NUDGES
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> DrainNudger:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the thread (idempotent)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="drain-nudger", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def poke(self, _delivery: Delivery | None = None) -> None:
        """A delivery was stored: look at the inbox soon (never blocks)."""
        self._wake.set()
        if self._thread is None:
            self.start()

    def check(self, now: datetime | None = None) -> bool:
        """One look at the inbox; True when it asked for a drain."""
        now = now or datetime.now(UTC)
        next_due, live_claims = drain_outlook(self._store, now)
        with self._memory.lock:
            last = self._memory.last_nudge
            if not should_nudge(next_due, live_claims, now, last, self._resend_after):
                return False
            self._memory.last_nudge = now
        self._notify()
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._every)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception:
                log.warning("could not check the inbox or nudge Prefect", exc_info=True)
            self._stop.wait(self._min_gap)  # a burst of pokes makes a few looks, not one each


class DueWorkWatcher(DrainNudger):
    """The nudger's periodic looks alone (``shopsync serve`` and ``shopsync webhooks serve`` run
    it beside the receiver, whose own nudger is poked by deliveries)."""

    def __init__(
        self, store: StateStore, notify: Callable[[], None] = nudge_drain, every: float = 60.0
    ):
        super().__init__(store, notify, every=every)


def build_receiver(
    settings: Settings,
    *,
    notify_prefect: bool = True,
    on_stored: Callable[[Delivery], None] | None = None,
) -> Starlette:
    """The receiver app for these settings (refuses to start without a webhook secret).

    After each stored delivery it calls ``on_stored`` when given (``shopsync serve``'s warm
    drain), else pokes a :class:`DrainNudger` that asks Prefect for a drain run (unless
    ``notify_prefect`` is off).
    """
    problems = settings.problems(need={"webhooks"})
    if problems:
        raise SystemExit("\n".join(problems))
    store = StateStore.open(settings.state_url)
    notify = on_stored
    if notify is None and notify_prefect:
        # Import Prefect's events client now (seconds), not on the first delivery, where it would
        # hold the nudger's first look (and the drain it asks for).
        import prefect.events  # noqa: F401

        nudger = DrainNudger(store)
        nudger.start()
        notify = nudger.poke
    return create_app(receiver_config(settings), store, notify)


def freeze_startup_heap() -> None:
    """Put every object alive after start-up out of the garbage collector's way (``gc.freeze``).

    Start-up leaves 90,000 (the receiver) to 190,000 (``shopsync serve``, with Prefect) long-lived
    objects: modules, settings, pydantic models. Each full collection walks them all, 90-200 ms
    in which no request is answered: that was the receiver's p99. Frozen, they are skipped;
    what requests allocate afterwards is collected as before. Called once, when the server is
    built and about to serve.
    """
    gc.collect()
    gc.freeze()


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
    freeze_startup_heap()
    if not prefect:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        return
    with DueWorkWatcher(StateStore.open(settings.state_url)):
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
