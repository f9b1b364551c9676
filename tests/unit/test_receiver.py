"""The webhook receiver in-process: every status of its contract, and the inbox it writes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from state import StateStore
from webhooks.app import ReceiverConfig, create_app
from webhooks.deliveries import order_id_of, shopify_header, sign, signature_matches

SHOP = "acme.myshopify.com"
SECRET = b"current-secret"
OLD_SECRET = b"old-secret"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every receiver test runs on both state stores (PostgreSQL: tests/conftest.py)."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite+pysqlite:///{tmp_path / 'inbox.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[StateStore]:
    s = StateStore.open(db_url)
    yield s
    s.close()


@pytest.fixture
def client(store: StateStore) -> TestClient:
    config = ReceiverConfig(
        secrets=(SECRET, OLD_SECRET), allowed_shops=frozenset({SHOP}), max_body_bytes=4096
    )
    return TestClient(create_app(config, store))


def headers(body: bytes, **overrides: str) -> dict[str, str]:
    values = {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": sign(body, SECRET),
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Triggered-At": "2026-11-28T10:00:00.123Z",
        "X-Shopify-Event-Id": "evt-1",
        "Content-Type": "application/json",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v != ""}


ORDER = json.dumps({"id": 820982911946154508, "name": "#9999"}).encode()


def test_a_signed_delivery_is_stored_with_its_headers(
    client: TestClient, store: StateStore
) -> None:
    response = client.post("/webhooks/shopify", content=ORDER, headers=headers(ORDER))
    assert (response.status_code, response.json()) == (200, {"status": "stored"})
    row = store.inbox_row("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    assert (row.topic, row.shop_domain, row.order_id, row.body) == (
        "orders/create",
        SHOP,
        "820982911946154508",
        ORDER,
    )
    assert row.triggered_at.isoformat() == "2026-11-28T10:00:00.123000+00:00"


def test_the_same_webhook_id_again_is_a_duplicate(client: TestClient, store: StateStore) -> None:
    client.post("/webhooks/shopify", content=ORDER, headers=headers(ORDER))
    again = client.post("/webhooks/shopify", content=ORDER, headers=headers(ORDER))
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert len(store.inbox_rows()) == 1


@pytest.mark.parametrize(
    "signature",
    ["", "not-base64!!", base64.b64encode(b"x" * 32).decode(), sign(ORDER, b"stale-secret")],
)
def test_forged_missing_or_stale_signatures_get_401_and_store_nothing(
    client: TestClient, store: StateStore, signature: str
) -> None:
    response = client.post(
        "/webhooks/shopify",
        content=ORDER,
        headers=headers(ORDER, **{"X-Shopify-Hmac-Sha256": signature}),
    )
    assert response.status_code == 401
    assert store.inbox_rows() == []


def test_during_a_rotation_both_secrets_are_accepted(client: TestClient) -> None:
    old = headers(ORDER, **{"X-Shopify-Hmac-Sha256": sign(ORDER, OLD_SECRET)})
    assert client.post("/webhooks/shopify", content=ORDER, headers=old).status_code == 200


def test_a_signature_over_a_different_body_is_rejected(client: TestClient) -> None:
    tampered = ORDER.replace(b"9999", b"9998")
    response = client.post("/webhooks/shopify", content=tampered, headers=headers(ORDER))
    assert response.status_code == 401


@pytest.mark.parametrize(
    "missing", ["X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id"]
)
def test_missing_required_headers_get_400(
    client: TestClient, store: StateStore, missing: str
) -> None:
    response = client.post(
        "/webhooks/shopify", content=ORDER, headers=headers(ORDER, **{missing: ""})
    )
    assert response.status_code == 400
    assert store.inbox_rows() == []


def test_a_body_that_is_not_json_gets_400(client: TestClient) -> None:
    body = b"\xff\xfe not json"
    assert client.post("/webhooks/shopify", content=body, headers=headers(body)).status_code == 400


def test_a_shop_not_on_the_allowlist_gets_403(client: TestClient, store: StateStore) -> None:
    h = headers(ORDER, **{"X-Shopify-Shop-Domain": "evil.myshopify.com"})
    assert client.post("/webhooks/shopify", content=ORDER, headers=h).status_code == 403
    assert store.inbox_rows() == []


def test_a_body_over_the_limit_gets_413(client: TestClient) -> None:
    body = json.dumps({"id": 1, "note": "x" * 5000}).encode()
    assert client.post("/webhooks/shopify", content=body, headers=headers(body)).status_code == 413


def test_an_unhandled_topic_is_recorded_as_ignored(client: TestClient, store: StateStore) -> None:
    body = b'{"id": 5}'
    h = headers(body, **{"X-Shopify-Topic": "products/create"})
    response = client.post("/webhooks/shopify", content=body, headers=h)
    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    assert store.inbox_rows()[0].status == "ignored"


def test_a_refund_is_filed_under_its_order(client: TestClient, store: StateStore) -> None:
    body = json.dumps({"id": 509562969, "order_id": 450789469}).encode()
    h = headers(body, **{"X-Shopify-Topic": "refunds/create"})
    client.post("/webhooks/shopify", content=body, headers=h)
    assert store.inbox_rows()[0].order_id == "450789469"


def test_503_when_the_inbox_cannot_be_written(store: StateStore) -> None:
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE inbox")
    config = ReceiverConfig(secrets=(SECRET,), allowed_shops=frozenset())
    client = TestClient(create_app(config, store))
    assert (
        client.post("/webhooks/shopify", content=ORDER, headers=headers(ORDER)).status_code == 503
    )


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "inbox": {}}


def test_notify_failures_never_fail_the_delivery(store: StateStore) -> None:
    def broken(_delivery) -> None:
        raise ConnectionError("prefect is down")

    config = ReceiverConfig(secrets=(SECRET,), allowed_shops=frozenset())
    client = TestClient(create_app(config, store, notify=broken))
    assert (
        client.post("/webhooks/shopify", content=ORDER, headers=headers(ORDER)).status_code == 200
    )
    assert len(store.inbox_rows()) == 1


# -- pure helpers --------------------------------------------------------------------------------


def test_signature_matches_an_independent_computation() -> None:
    expected = base64.b64encode(hmac.new(SECRET, ORDER, hashlib.sha256).digest()).decode()
    assert sign(ORDER, SECRET) == expected
    assert signature_matches(ORDER, expected, [b"other", SECRET])
    assert not signature_matches(ORDER, expected, [])


def test_headers_are_found_with_or_without_the_x_prefix() -> None:
    assert shopify_header({"shopify-topic": "orders/create"}, "topic") == "orders/create"
    assert shopify_header({"x-shopify-topic": " orders/paid "}, "topic") == "orders/paid"


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("orders/create", {"id": 820982911946154508}, "820982911946154508"),
        ("orders/create", {"id": "123"}, "123"),
        ("refunds/create", {"id": 1, "order_id": 450789469}, "450789469"),
        ("orders/create", {"id": True}, None),
        ("orders/create", {"id": "1; DROP"}, None),
        ("orders/create", [1, 2], None),
    ],
)
def test_order_id_of(topic: str, payload: object, expected: str | None) -> None:
    assert order_id_of(topic, payload) == expected


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=600),
        st.recursive(
            st.none() | st.integers() | st.text(max_size=20),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        ).map(lambda v: json.dumps(v).encode()),
        st.integers(1, 400).map(lambda depth: b"[" * depth + b"]" * depth),
    ),
    topic=header_text,
    webhook_id=header_text,
    sign_it=st.booleans(),
)
def test_the_receiver_never_answers_5xx_and_stores_only_signed_deliveries(
    client: TestClient, store: StateStore, body: bytes, topic: str, webhook_id: str, sign_it: bool
) -> None:
    before = len(store.inbox_rows())
    h = headers(
        body,
        **{
            "X-Shopify-Topic": topic,
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Hmac-Sha256": sign(body, SECRET) if sign_it else "bogus",
        },
    )
    response = client.post("/webhooks/shopify", content=body, headers=h)
    assert response.status_code < 500
    if not sign_it:
        assert response.status_code == 401
        assert len(store.inbox_rows()) == before


def test_a_drain_is_asked_for_only_when_work_waits_and_none_is_coming() -> None:
    from datetime import UTC, datetime, timedelta

    from webhooks.serve import should_nudge

    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    resend = timedelta(seconds=20)
    due = now - timedelta(seconds=1)
    assert should_nudge(due, 0, now, None, resend)  # first delivery: ask
    assert not should_nudge(None, 0, now, None, resend)  # empty inbox
    assert not should_nudge(now + timedelta(minutes=1), 0, now, None, resend)  # backoff running
    assert not should_nudge(due, 2, now, None, resend)  # a live drain will claim it
    # Asked 0.5 s after the oldest due delivery arrived: no drain has claimed since, one is coming.
    asked = due + timedelta(seconds=0.5)
    assert not should_nudge(due, 0, now, asked, resend)
    assert should_nudge(due, 0, asked + resend, asked, resend)  # unanswered that long: lost
    # Everything pending arrived after the last nudge (its drain came and went): ask again.
    assert should_nudge(now - timedelta(seconds=0.1), 0, now, now - timedelta(seconds=5), resend)
    naive = (now - timedelta(seconds=1)).replace(tzinfo=None)
    assert should_nudge(naive, 0, now, None, resend)


def test_the_nudger_asks_once_per_wave_and_again_after_the_drain_took_it(
    store: StateStore,
) -> None:
    """A burst of deliveries makes one drain request; deliveries during a drain make none; the
    first delivery after that drain settled its claims makes the next one."""
    import time
    from datetime import timedelta

    from state import Delivery
    from webhooks.serve import DrainNudger, NudgeMemory

    asked: list[int] = []
    nudger = DrainNudger(store, lambda: asked.append(1), memory=NudgeMemory())

    def arrive(n: int) -> None:
        store.add_delivery(Delivery(f"w{n}", "orders/create", SHOP, b"{}", order_id=str(n)))

    assert not nudger.check()  # empty inbox: no run
    arrive(1)
    assert nudger.check()
    arrive(2)
    assert not nudger.check()  # the first request is not answered yet: its drain takes both
    claims = store.claim(max_orders=10, lease=timedelta(minutes=1), owner="drain-1")
    arrive(3)
    assert not nudger.check()  # a live drain holds claims: its next claim takes w3
    claims += store.claim(max_orders=10, lease=timedelta(minutes=1), owner="drain-1")
    store.complete([row for claim in claims for row in claim.webhook_ids])
    time.sleep(0.01)
    arrive(4)
    assert nudger.check()  # arrived after the drain finished: a new run is needed
    assert len(asked) == 2


def test_the_nudger_thread_answers_a_poke_within_a_moment(store: StateStore) -> None:
    import threading

    from state import Delivery
    from webhooks.serve import DrainNudger, NudgeMemory

    asked = threading.Event()
    with DrainNudger(store, asked.set, every=60, memory=NudgeMemory()) as nudger:
        store.add_delivery(Delivery("w1", "orders/create", SHOP, b"{}", order_id="1"))
        nudger.poke()
        assert asked.wait(5)


def test_the_prefect_events_client_is_loaded_before_the_first_delivery(tmp_path: Path) -> None:
    """Importing Prefect's events client takes seconds; on the first delivery it would hold the
    event loop (and every request waiting on it) near Shopify's 5 s timeout."""
    import os
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from tasks.settings import get_settings\n"
        "from webhooks.serve import build_receiver\n"
        "build_receiver(get_settings(), notify_prefect=True)\n"
        "print('prefect.events' in sys.modules)\n"
    )
    env = {
        **os.environ,
        "SHOPIFY_WEBHOOK_SECRET": "s3cret",
        "SHOPSYNC_DATA_DIR": str(tmp_path),
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert done.stdout.strip().splitlines()[-1:] == ["True"], done.stderr


def test_start_up_objects_are_frozen_out_of_the_collectors_full_passes() -> None:
    import gc

    from webhooks.serve import freeze_startup_heap

    long_lived = [object() for _ in range(1000)]
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(long_lived)  # full collections no longer walk them
    finally:
        gc.unfreeze()
