"""The webhook sender: subscriptions, headers, HMAC, retries, timeouts, duplicates, ordering."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox.shopify import ShopifySandbox, WebhookConfig, sign
from tests.conftest import shopify_fixture

from .conftest import SECRET, SHOP, VERSION, Receiver

Gql = Callable[..., dict[str, Any]]
HEADERS = ("X-Shopify-Topic", "X-Shopify-Hmac-Sha256", "X-Shopify-Shop-Domain",
           "X-Shopify-API-Version", "X-Shopify-Webhook-Id", "X-Shopify-Event-Id",
           "X-Shopify-Triggered-At")


def subscribe(client: httpx.Client, topic: str, url: str) -> dict[str, Any]:
    resp = client.post("/__sandbox/webhooks/subscriptions", json={"topic": topic, "url": url})
    assert resp.status_code == 201, resp.text
    return resp.json()["subscription"]


def flush(client: httpx.Client) -> None:
    assert client.post("/__sandbox/webhooks/flush", json={"timeout": 15}).json()["idle"]


def log(client: httpx.Client) -> list[dict[str, Any]]:
    return client.get("/__sandbox/webhooks/deliveries").json()["deliveries"]


def test_subscriptions_through_graphql(gql: Gql) -> None:
    """research/shopify.md §1 Topics and §2: webhookSubscriptionCreate / webhookSubscriptions /
    webhookSubscriptionDelete with userErrors."""
    create = """mutation($t: WebhookSubscriptionTopic!, $u: URL!) {
      webhookSubscriptionCreate(topic: $t, webhookSubscription: {callbackUrl: $u, format: JSON}) {
        webhookSubscription { id topic format callbackUrl } userErrors { field message } } }"""
    made = gql(create, {"t": "ORDERS_CREATE", "u": "https://example.com/hooks"})
    sub = made["data"]["webhookSubscriptionCreate"]["webhookSubscription"]
    assert sub["topic"] == "ORDERS_CREATE"
    assert sub["id"].startswith("gid://shopify/WebhookSubscription/")
    gql(create, {"t": "REFUNDS_CREATE", "u": "https://example.com/hooks"})
    dup = gql(create, {"t": "ORDERS_CREATE", "u": "https://example.com/hooks"})
    assert dup["data"]["webhookSubscriptionCreate"]["userErrors"]
    bad = gql(create, {"t": "ORDERS_UPDATED", "u": "not a url"})
    assert bad["data"]["webhookSubscriptionCreate"]["webhookSubscription"] is None
    assert bad["data"]["webhookSubscriptionCreate"]["userErrors"][0]["message"]
    listed = gql("""{ webhookSubscriptions(first: 10, topics: [ORDERS_CREATE]) {
      nodes { id topic callbackUrl endpoint { ... on WebhookHttpEndpoint { callbackUrl } } } } }""")
    nodes = listed["data"]["webhookSubscriptions"]["nodes"]
    assert [n["id"] for n in nodes] == [sub["id"]]
    assert nodes[0]["endpoint"] == {"callbackUrl": "https://example.com/hooks"}
    gone = gql('mutation($id: ID!) { webhookSubscriptionDelete(id: $id) {'
               ' deletedWebhookSubscriptionId userErrors { message } } }', {"id": sub["id"]})
    assert gone["data"]["webhookSubscriptionDelete"]["deletedWebhookSubscriptionId"] == sub["id"]


def test_delivery_headers_and_hmac_verified_by_openssl(client: httpx.Client,
                                                       receiver: Receiver) -> None:
    """research/shopify.md §1 Headers and HMAC verification: every header, base64 HMAC-SHA256 of
    the raw body with the secret, checked with openssl (independent of the sandbox)."""
    subscribe(client, "orders/create", receiver.url)
    order = client.post("/__sandbox/orders", json={"email": "new@example.com"}).json()["order"]
    got = receiver.wait_for(1)
    flush(client)
    assert len(got) == 1
    req = got[0]
    for name in HEADERS:
        assert req.headers.get(name.lower()), name
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-shopify-topic"] == "orders/create"
    assert req.headers["x-shopify-shop-domain"] == SHOP
    assert req.headers["x-shopify-api-version"] == VERSION
    digest = subprocess.run(
        ["sh", "-c", f"openssl dgst -sha256 -hmac '{SECRET}' -binary | base64"],
        input=req.body, capture_output=True, check=True).stdout.decode().strip()
    assert digest == req.headers["x-shopify-hmac-sha256"]
    body = json.loads(req.body)
    assert body["id"] == order["id"]
    assert body["admin_graphql_api_id"] == f"gid://shopify/Order/{order['id']}"
    assert body["email"] == "new@example.com"


def test_retries_keep_webhook_id_and_original_payload(client: httpx.Client,
                                                      receiver: Receiver) -> None:
    """research/shopify.md §1 Retries: failed deliveries are retried with the original payload;
    X-Shopify-Webhook-Id is the per-delivery dedup key; 3xx counts as failure."""
    subscribe(client, "orders/updated", receiver.url)
    oid = client.get("/__sandbox/shop").json()["first_order_id"]
    receiver.statuses.extend([500, 503, 301])
    client.post(f"/__sandbox/orders/{oid}/update", json={"email": "first@example.com"})
    got = receiver.wait_for(4)
    flush(client)
    client.post(f"/__sandbox/orders/{oid}/update", json={"email": "second@example.com"})
    flush(client)
    assert len({r.headers["x-shopify-webhook-id"] for r in got[:4]}) == 1
    assert len({r.body for r in got[:4]}) == 1
    assert len({r.headers["x-shopify-triggered-at"] for r in got[:4]}) == 1
    assert json.loads(got[0].body)["email"] == "first@example.com"
    entries = [e for e in log(client) if e["webhook_id"] == got[0].headers["x-shopify-webhook-id"]]
    assert [(e["attempt"], e["status_code"], e["ok"]) for e in entries] == [
        (1, 500, False), (2, 503, False), (3, 301, False), (4, 200, True)]


def test_retry_schedule_is_eight_retries_over_four_hours() -> None:
    """research/shopify.md §1 Retries: 8 retries over 4 hours, exponential backoff."""
    delays = WebhookConfig().retry_delays()
    assert len(delays) == 8
    assert sum(delays) == pytest.approx(4 * 3600)
    assert all(b == pytest.approx(2 * a) for a, b in itertools.pairwise(delays))


def test_timeout_counts_as_failure(client: httpx.Client, receiver: Receiver) -> None:
    """research/shopify.md §1 Response time: no 2xx within the timeout (5 s, configurable)
    is a failed delivery."""
    client.post("/__sandbox/webhooks/config", json={"timeout": 0.2})
    subscribe(client, "orders/create", receiver.url)
    receiver.delays.append(1.0)
    client.post("/__sandbox/orders", json={})
    flush(client)
    entries = log(client)
    assert entries[0]["error"] == "timeout"
    assert entries[0]["ok"] is False
    assert entries[1]["ok"] is True
    assert entries[1]["attempt"] == 2


def test_exhausted_retries_remove_subscription(client: httpx.Client, receiver: Receiver) -> None:
    """research/shopify.md §1 Retries and subscription removal: after the 8 retries fail the
    Admin-API subscription is deleted."""
    subscribe(client, "orders/create", receiver.url)
    receiver.statuses.extend([500] * 9)
    client.post("/__sandbox/orders", json={})
    flush(client)
    attempts = [e["attempt"] for e in log(client)]
    assert attempts == list(range(1, 10))
    assert client.get("/__sandbox/webhooks/subscriptions").json()["subscriptions"] == []


def test_duplicates_share_the_webhook_id(client: httpx.Client, receiver: Receiver) -> None:
    """research/shopify.md §1 Duplicates: the same delivery may arrive twice (same webhook id)."""
    client.post("/__sandbox/webhooks/config", json={"duplicate_rate": 1.0})
    subscribe(client, "orders/create", receiver.url)
    client.post("/__sandbox/orders", json={})
    got = receiver.wait_for(2)
    flush(client)
    assert len(got) == 2
    assert got[0].headers["x-shopify-webhook-id"] == got[1].headers["x-shopify-webhook-id"]
    assert got[0].body == got[1].body
    assert [e["duplicate"] for e in log(client)] == [False, True]


def test_out_of_order_delivery(client: httpx.Client, receiver: Receiver) -> None:
    """research/shopify.md §1 Ordering: no ordering guarantee; an older update can arrive after
    a newer one."""
    subscribe(client, "orders/updated", receiver.url)
    oid = client.get("/__sandbox/shop").json()["first_order_id"]
    client.post("/__sandbox/webhooks/config", json={"out_of_order_rate": 1.0,
                                                    "out_of_order_delay": 1.5})
    client.post(f"/__sandbox/orders/{oid}/update", json={"email": "older@example.com"})
    client.post("/__sandbox/webhooks/config", json={"out_of_order_rate": 0.0})
    client.post(f"/__sandbox/orders/{oid}/update", json={"email": "newer@example.com"})
    got = receiver.wait_for(2)
    flush(client)
    bodies = [json.loads(r.body) for r in got]
    assert [b["email"] for b in bodies] == ["newer@example.com", "older@example.com"]
    assert bodies[0]["updated_at"] > bodies[1]["updated_at"]


def test_merchant_actions_emit_topics(client: httpx.Client, receiver: Receiver) -> None:
    """research/shopify.md §1 Topics and §4 Cancelled orders: create → orders/create + orders/paid;
    cancel → orders/cancelled + orders/updated (one event id); refund → refunds/create (refund
    shape) + orders/updated; delete → orders/delete with the id."""
    for topic in ("orders/create", "orders/paid", "orders/updated", "orders/cancelled",
                  "refunds/create", "orders/delete"):
        subscribe(client, topic, receiver.url)
    order = client.post("/__sandbox/orders", json={"financial_status": "paid",
                                                   "total_price": "100.00"}).json()["order"]
    oid = order["id"]
    refund = client.post(f"/__sandbox/orders/{oid}/refund", json={"amount": "30.00"}).json()
    assert refund["order"]["current_total_price"] == "70.00"
    assert refund["order"]["financial_status"] == "partially_refunded"
    client.post(f"/__sandbox/orders/{oid}/cancel", json={"reason": "fraud"})
    client.request("DELETE", f"/__sandbox/orders/{oid}")
    flush(client)
    got = receiver.requests
    topics = [r.headers["x-shopify-topic"] for r in got]
    assert sorted(topics) == sorted(["orders/create", "orders/paid", "refunds/create",
                                     "orders/updated", "orders/cancelled", "orders/updated",
                                     "orders/delete"])
    by_topic: dict[str, list[Any]] = {}
    for r in got:
        by_topic.setdefault(r.headers["x-shopify-topic"], []).append(r)
    fx = shopify_fixture("refund.json")["refund"]
    refund_body = json.loads(by_topic["refunds/create"][0].body)
    assert set(fx) <= set(refund_body)
    assert refund_body["order_id"] == oid
    assert refund_body["transactions"][0]["amount"] == "30.00"
    cancelled = by_topic["orders/cancelled"][0]
    same_event = [r for r in by_topic["orders/updated"]
                  if r.headers["x-shopify-event-id"] == cancelled.headers["x-shopify-event-id"]]
    assert len(same_event) == 1
    assert json.loads(cancelled.body)["cancel_reason"] == "fraud"
    assert json.loads(by_topic["orders/delete"][0].body) == {
        "id": oid, "admin_graphql_api_id": f"gid://shopify/Order/{oid}"}


def test_send_order_events_replays_the_store(sandbox: ShopifySandbox, receiver: Receiver,
                                             client: httpx.Client) -> None:
    """research/shopify.md §1 Payloads: orders/create bodies are the REST order resource."""
    shop = sandbox.shop()
    shop.webhooks.subscribe("orders/create", receiver.url)
    assert shop.send_order_events("orders/create", start=10, count=20) == 20
    assert shop.webhooks.flush(15)
    ids = sorted(json.loads(r.body)["id"] for r in receiver.requests)
    assert ids == [shop.generator.order_id(i) for i in range(10, 30)]
    rest = client.get(f"/admin/api/{VERSION}/orders/{ids[0]}.json").json()["order"]
    first = next(json.loads(r.body) for r in receiver.requests
                 if json.loads(r.body)["id"] == ids[0])
    assert first == rest


def test_bulk_finish_webhook(gql: Gql, client: httpx.Client, receiver: Receiver) -> None:
    """research/shopify.md §2 Bulk operations: bulk_operations/finish is sent on completion."""
    subscribe(client, "bulk_operations/finish", receiver.url)
    op = gql('mutation { bulkOperationRunQuery(query: "{ orders { edges { node { id } } } }")'
             ' { bulkOperation { id } } }')["data"]["bulkOperationRunQuery"]["bulkOperation"]
    got = receiver.wait_for(1)
    body = json.loads(got[0].body)
    assert body["admin_graphql_api_id"] == op["id"]
    assert body["status"] == "completed"


def test_secret_rotation_grace_period(client: httpx.Client, receiver: Receiver) -> None:
    """research/shopify.md §1 HMAC verification: after rotating the secret, deliveries may be
    signed with the old one for a while (up to an hour on Shopify)."""
    subscribe(client, "orders/create", receiver.url)
    client.post("/__sandbox/webhooks/rotate", json={"secret": "new-secret",
                                                    "old_secret_for_seconds": 60})
    client.post("/__sandbox/orders", json={})
    client.post("/__sandbox/webhooks/rotate", json={"secret": "newer-secret"})
    client.post("/__sandbox/orders", json={})
    got = receiver.wait_for(2)
    flush(client)
    by_id = {json.loads(r.body)["id"]: r for r in got}
    first, second = (by_id[k] for k in sorted(by_id))
    assert first.headers["x-shopify-hmac-sha256"] == sign(SECRET, first.body)
    assert second.headers["x-shopify-hmac-sha256"] == sign("newer-secret", second.body)
