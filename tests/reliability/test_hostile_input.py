"""Hostile input (issue 10) beyond ``tests/unit/test_receiver.py`` (which fuzzes the app
in-process): the receiver *process* over real HTTP on loopback, hostile-but-signed payloads
through the drain, SOQL metacharacters through a full sync, and the loopback-only bind rule."""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.salesforce.soql import parse as parse_soql
from sandbox.server import free_port
from state import StateStore
from tasks.core.topics import HANDLED_TOPICS
from tasks.salesforce.gateway import SimpleSalesforceGateway
from tasks.settings import Settings, get_settings
from tests.integration.conftest import SHOP, WEBHOOK_SECRET
from tests.reliability.support import (
    CLI,
    KEY_FIELDS,
    DrainLog,
    Receiver,
    assert_invariants,
    duplicates,
    record,
    running_receiver,
    send_creates,
    settle,
    subscribe,
)
from webhooks.deliveries import sign
from webhooks.serve import check_bind

LIMIT = 16_384
STATUSES: Counter[str] = Counter()  # answers seen by the HTTP fuzz, for the record
SECRET = WEBHOOK_SECRET.encode()
PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)


# -- the receiver process over HTTP --------------------------------------------------------------


@pytest.fixture
def receiver_process(product: Settings, tmp_path: Path) -> Iterator[Receiver]:
    """``shopsync webhooks serve`` with a 16 KiB body limit and no Prefect nudge target."""
    receiver = Receiver(free_port(), tmp_path / "receiver.log")
    receiver.start(extra_env={"SHOPSYNC_WEBHOOK_MAX_BODY_BYTES": str(LIMIT)})
    yield receiver
    receiver.stop()


def _sized(n: int) -> bytes:
    """A JSON order body of exactly ``n`` bytes."""
    head, tail = b'{"id": 4501, "note": "', b'"}'
    return head + b"x" * max(0, n - len(head) - len(tail)) + tail


def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"id": 4502, "a": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)

bodies = st.one_of(
    st.integers(LIMIT - 4, LIMIT + 4).map(_sized),
    st.integers(0, 3 * LIMIT).map(_sized),
    st.tuples(st.integers(1, 8000), st.sampled_from(["list", "dict"])).map(lambda t: _nested(*t)),
    st.tuples(
        json_values, st.sampled_from(["utf-8", "utf-16", "utf-32", "utf-8-sig", "latin-1"])
    ).map(
        lambda t: json.dumps({"id": 4503, "v": t[0]}, ensure_ascii=False).encode(t[1], "replace")
    ),
    st.binary(max_size=2048),
    st.just(b""),
)

# h11 (the client) refuses values with surrounding whitespace, so values are stripped.
header_values = st.one_of(
    st.text(PRINTABLE, max_size=120), st.just(""), st.text(PRINTABLE, min_size=101, max_size=300)
).map(str.strip)
_ABSENT = object()  # a header left out


def _mostly(valid: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Usually a valid value (so the store path is reached), else hostile or absent."""
    return st.one_of(valid, valid, valid, header_values, st.just(_ABSENT))


shopify_headers = st.fixed_dictionaries(
    {
        "X-Shopify-Topic": _mostly(st.sampled_from(sorted(HANDLED_TOPICS))),
        "X-Shopify-Shop-Domain": _mostly(st.sampled_from([SHOP, SHOP.upper(), f" {SHOP}"[1:]])),
        "X-Shopify-Webhook-Id": _mostly(st.uuids().map(str)),
    },
    optional={
        "X-Shopify-API-Version": header_values,
        "X-Shopify-Triggered-At": st.one_of(st.just("2026-11-28T10:00:00Z"), header_values),
        "X-Shopify-Event-Id": header_values,
        "Content-Type": st.sampled_from(
            ["application/json", "text/plain", "application/json; charset=utf-16", ""]
        ),
        "Content-Encoding": st.sampled_from(["gzip", "identity", "br"]),
        "Shopify-Topic": st.sampled_from(sorted(HANDLED_TOPICS)),
        "X-Forwarded-For": header_values,
    },
).map(lambda h: {k: v for k, v in h.items() if v is not _ABSENT})
signatures = st.sampled_from(
    ["valid", "valid", "valid-lowercase", "missing", "wrong-secret", "garbage"]
)


def _signature_headers(body: bytes, mode: str) -> dict[str, str]:
    if mode == "valid":
        return {"X-Shopify-Hmac-Sha256": sign(body, SECRET)}
    if mode == "valid-lowercase":
        return {"x-shopify-hmac-sha256": sign(body, SECRET)}
    if mode == "wrong-secret":
        return {"X-Shopify-Hmac-Sha256": sign(body, b"not-the-secret")}
    if mode == "garbage":
        return {"X-Shopify-Hmac-Sha256": "%%%" + sign(body, SECRET)[3:]}
    return {}


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    body=bodies,
    headers=shopify_headers,
    signature=signatures,
    chunked=st.booleans(),
    path=st.sampled_from(["/webhooks/shopify"] * 4 + ["/webhooks/shopify/", "/webhooks/SHOPIFY"]),
)
def test_the_receiver_process_never_answers_5xx_and_stores_only_signed_deliveries(
    receiver_process: Receiver,
    store: StateStore,
    body: bytes,
    headers: dict[str, str],
    signature: str,
    chunked: bool,
    path: str,
) -> None:
    before = {row.webhook_id for row in store.inbox_rows(limit=100_000)}
    sent = {**headers, **_signature_headers(body, signature)}
    content: Any = (
        iter([body[i : i + 4096] for i in range(0, len(body), 4096)]) if chunked else body
    )
    response = httpx.post(
        f"{receiver_process.url}{path}", content=content, headers=sent, timeout=30
    )
    assert response.status_code < 500, response.text
    STATUSES[
        f"{response.status_code} {'signed' if signature.startswith('valid') else 'unsigned'}"
    ] += 1
    after = store.inbox_rows(limit=100_000)
    new = [row for row in after if row.webhook_id not in before]
    if signature not in ("valid", "valid-lowercase") or path != "/webhooks/shopify":
        assert new == []
    for row in new:
        assert row.body == body
        assert len(row.body) <= LIMIT


def test_the_receiver_process_is_still_up_after_the_fuzzing(
    receiver_process: Receiver, store: StateStore
) -> None:
    """Some raw protocol abuse, then /healthz must answer and a good delivery must be stored."""
    import socket

    junk = [
        b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{",
        b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GARBAGE\r\n\r\n",
        b"POST /webhooks/shopify HTTP/1.1\r\n" + b"X-A: " + b"a" * 70_000 + b"\r\n\r\n",
    ]
    for raw in junk:
        with socket.create_connection(("127.0.0.1", receiver_process.port), timeout=5) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            try:
                answer = sock.recv(200)
            except OSError:
                answer = b""
            assert not answer.startswith(b"HTTP/1.1 5"), answer
    assert receiver_process.alive()
    body = json.dumps({"id": 4504}).encode()
    ok = httpx.post(
        f"{receiver_process.url}/webhooks/shopify",
        content=body,
        headers={
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-Webhook-Id": "after-the-storm",
            "X-Shopify-Hmac-Sha256": sign(body, SECRET),
        },
    )
    assert ok.json() == {"status": "stored"}
    assert store.inbox_row("after-the-storm") is not None
    record("receiver HTTP fuzz", answers=dict(STATUSES), raw_abuse=len(junk), alive=True)


def test_without_a_prefect_api_the_receiver_acknowledges_deliveries_on_the_first_attempt(
    product: Settings, store: StateStore, shopify: Any, tmp_path: Path
) -> None:
    """Regression: ``webhooks serve`` without PREFECT_API_URL used to emit a Prefect event on the
    first stored delivery, which made Prefect start a temporary server inside the receiver and
    block its event loop for ~15 s: past Shopify's 5 s timeout, so the delivery failed and every
    other request (health included) stalled. The sandbox sender waits 5 s, like Shopify."""
    receiver = Receiver(free_port(), tmp_path / "receiver.log")
    receiver.start(extra_env={"PREFECT_HOME": str(tmp_path / "prefect-home")})
    try:
        shop = shopify.shop
        subscribe(shop, f"{receiver.url}/webhooks/shopify")
        send_creates(shop, 0, 3)
        attempts = shop.webhooks.deliveries()
        assert [(d["ok"], d["attempt"]) for d in attempts] == [(True, 1)] * 3, attempts
        assert receiver.alive()
    finally:
        receiver.stop()
    assert len(store.inbox_rows()) == 3


# -- hostile but signed payloads through the drain ----------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*prefix, index)
            yield from _paths(child, (*prefix, index))


CORE_FIELDS = ["created_at", "updated_at", "current_total_price", "total_price", "currency",
               "customer", "email", "name", "cancelled_at", "line_items"]  # fmt: skip
HOSTILE_VALUES: list[Any] = [
    None, "", "x", -1, 0, 10**30, 1.5, True, [], {}, [1], {"a": None}, "2026-13-45T99:00:00Z",
    "NaN", "1e400", "١٢٣", "\x00", "a" * 3000, "' OR Name != '", "\\", "%_",
]  # fmt: skip


@pytest.mark.usefixtures("prefect_harness")
def test_mutated_signed_orders_end_in_salesforce_or_a_dead_letter_with_a_reason(
    product: Settings, store: StateStore, salesforce: Any, shopify: Any
) -> None:
    """40 real order payloads, 1-3 fields each replaced by a hostile value, validly signed: the
    drain never crashes and every order ends in Salesforce or in the dead letters."""
    shop = shopify.shop
    rng = random.Random(10)
    expected: set[str] = set()
    with running_receiver(product, store, shop):
        for i in range(40):
            order_id = shop.generator.order_id(100 + i)
            payload = shop.rest(shop.store.get(order_id))
            paths = [p for p in _paths(payload) if p != ("id",)]
            for _ in range(rng.randint(1, 3)):
                path = rng.choice(paths) if rng.random() < 0.6 else (rng.choice(CORE_FIELDS),)
                target: Any = payload
                try:
                    for key in path[:-1]:
                        target = target[key]
                    target[path[-1]] = rng.choice(HOSTILE_VALUES)
                except (KeyError, IndexError, TypeError):
                    continue
            if not (product.mapping.skip_test_orders and payload.get("test")):
                expected.add(str(order_id))
            shop.webhooks.emit("orders/create", payload, order_id)
        assert shop.webhooks.flush(timeout=60)
    assert {str(row.order_id) for row in store.inbox_rows()} >= expected
    log = DrainLog()
    settle(store, log)
    assert log.failed_runs == []
    verdict = assert_invariants(store, salesforce, expected)
    assert verdict.synced, "no mutated order synced at all"
    assert store.counts().inbox.keys() <= {"done", "dead", "ignored"}
    record(
        "mutated signed orders",
        orders=len(expected),
        synced=len(verdict.synced),
        dead_letters=len(verdict.dead),
        reasons=sorted({why.split(": ", 1)[-1][:45] for why in verdict.dead.values()}),
    )


# -- SOQL metacharacters through a full sync ---------------------------------------------------

META = "O'Brien \\ % _ \" ; -- ) OR Name != '' /* */ \n"


@pytest.mark.usefixtures("prefect_harness")
def test_soql_metacharacters_in_every_string_sync_intact_and_no_query_is_malformed(
    product: Settings,
    store: StateStore,
    salesforce: Any,
    shopify: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queries: list[str] = []
    original = SimpleSalesforceGateway._query

    def recording(self: SimpleSalesforceGateway, soql: str) -> list[dict[str, Any]]:
        queries.append(soql)
        return original(self, soql)

    monkeypatch.setattr(SimpleSalesforceGateway, "_query", recording)
    shop = shopify.shop
    emails = [
        "o'brien+%_x@example.com",
        "a'b'c@example.com",
        "x%'--@example.com",
        "under_score@example.com",
    ]
    # Two existing Contacts without an external id: the guest and a new customer must adopt
    # them, which only happens if the escaped e-mail matched exactly.
    salesforce.control.post(
        "/__sandbox/seed",
        json={
            "records": {
                "Contact": [
                    {"LastName": "Seeded", "Email": emails[0]},
                    {"LastName": "Seeded", "Email": emails[1]},
                ]
            }
        },
    ).raise_for_status()
    payloads = []
    with running_receiver(product, store, shop):
        for n, email in enumerate(emails):
            order_id = shop.generator.order_id(200 + n)
            payload = shop.rest(shop.store.get(order_id))
            payload.update(test=False, email=email, name=f"#{n}' OR ''='{META}")
            if n == 0:
                payload["customer"] = None  # a guest: the Contact is found by e-mail
            else:
                customer = payload["customer"] = payload.get("customer") or {}
                customer.update(
                    id=9_000_000 + n, email=email, first_name=f"{META}F", last_name=f"{META}L"
                )
                address = customer["default_address"] = customer.get("default_address") or {}
                address.update(company=f"{META} Co'", first_name=f"{META}F")
            payloads.append(payload)
            shop.webhooks.emit("orders/create", payload, order_id)
        assert shop.webhooks.flush(timeout=60)
    log = DrainLog()
    settle(store, log)
    expected = {str(p["id"]) for p in payloads}
    verdict = assert_invariants(store, salesforce, expected)
    assert verdict.dead == {}, verdict.dead
    assert verdict.synced == expected

    email_queries = [q for q in queries if "Email" in q]
    assert email_queries, "no query carried an e-mail"
    for soql in queries:
        parse_soql(soql)  # raises MALFORMED_QUERY on a broken query
    by_email = {str(c.get("Email")): c for c in salesforce.records("Contact")}
    assert set(emails) <= set(by_email)
    contacts_named_seeded = [c for c in salesforce.records("Contact") if c["Email"] in emails[:2]]
    assert len(contacts_named_seeded) == 2, "an existing Contact was duplicated, not adopted"
    opportunity_names = {
        r[KEY_FIELDS["Opportunity"]]: r["Name"] for r in salesforce.records("Opportunity")
    }
    for payload in payloads:
        assert payload["name"][:40] in opportunity_names[str(payload["id"])]
    accounts = {r["Name"] for r in salesforce.records("Account")}
    assert any(META.strip()[:20] in name for name in accounts)
    assert duplicates(salesforce) == {}
    record("soql metacharacters", orders=len(expected), queries=len(queries), synced=len(expected))


# -- the loopback-only bind rule --------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_addresses_are_allowed(host: str) -> None:
    check_bind(host, allow_public=False)


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "8.8.8.8", "example.com", ""],  # noqa: S104
)
def test_other_addresses_are_refused_unless_allowed(host: str) -> None:
    with pytest.raises(SystemExit, match="refusing to bind"):
        check_bind(host, allow_public=False)
    check_bind(host, allow_public=True)


def test_the_default_bind_address_is_loopback(product: Settings) -> None:
    assert get_settings().webhook_host in {"127.0.0.1", "::1", "localhost"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])  # noqa: S104 - must be refused
def test_the_cli_refuses_a_public_bind_and_exits_non_zero(product: Settings, host: str) -> None:
    port = free_port()
    done = subprocess.run(
        [*CLI, "webhooks", "serve", "--host", host, "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "refusing to bind" in done.stderr + done.stdout
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
