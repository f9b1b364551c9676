"""API versions, request formats, the command line, and replaying the store as webhooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from .conftest import Receiver


def test_api_version_header_and_fall_forward(client: httpx.Client) -> None:
    """research/shopify.md §2 API versions: the response names the version used; unsupported
    versions fall forward to the oldest supported one."""
    ok = client.post("/admin/api/2026-07/graphql.json", json={"query": "{ shop { name } }"})
    assert ok.headers["X-Shopify-API-Version"] == "2026-07"
    old = client.post("/admin/api/2019-04/graphql.json", json={"query": "{ shop { name } }"})
    assert old.status_code == 200
    assert old.headers["X-Shopify-API-Version"] == "2025-10"
    rest = client.get("/admin/api/2026-10/orders.json", params={"limit": 1})
    assert rest.headers["X-Shopify-API-Version"] == "2026-10"


def test_application_graphql_body(client: httpx.Client) -> None:
    """research/shopify.md §2 GraphQL Admin API: POST graphql.json (raw query body accepted)."""
    resp = client.post("/admin/api/2026-10/graphql.json", content=b"{ shop { name } }",
                       headers={"Content-Type": "application/graphql"})
    assert resp.json()["data"]["shop"]["name"] == "contract-shop"


def test_replay_through_control_api(client: httpx.Client, receiver: Receiver) -> None:
    """research/shopify.md §1 Topics: orders/create webhooks for generated orders (load tests)."""
    client.post("/__sandbox/webhooks/subscriptions",
                json={"topic": "orders/create", "url": receiver.url})
    resp = client.post("/__sandbox/webhooks/replay", json={"start": 0, "count": 15})
    assert resp.json() == {"queued": 15}
    assert client.post("/__sandbox/webhooks/flush", json={"timeout": 15}).json()["idle"]
    assert len(receiver.requests) == 15
    assert {r.headers["x-shopify-topic"] for r in receiver.requests} == {"orders/create"}


def test_command_line_run_prints_url_and_token() -> None:
    """research/shopify.md §3 Authentication: `shopsync sandbox shopify` prints the shop URL
    and the access token to use, then serves until interrupted."""
    repo = Path(__file__).resolve().parents[3]
    code = ("from sandbox.shopify import run; run(host='127.0.0.1', port=0, "
            "shop='cli-shop.myshopify.com', access_token='shpat_cli', "
            "scopes=['read_orders'], orders=1_000_000, seed=5, plan='advanced', "
            "webhook_secret='s')")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        banner = "".join(proc.stdout.readline() for _ in range(4))
        assert "shpat_cli" in banner
        url = banner.split(" at ", 1)[1].split()[0]
        resp = httpx.post(f"{url}/admin/api/2026-10/graphql.json",
                          json={"query": "{ shop { myshopifyDomain plan { displayName } } }"},
                          headers={"X-Shopify-Access-Token": "shpat_cli"}, timeout=10)
        assert json.loads(resp.text)["data"]["shop"] == {
            "myshopifyDomain": "cli-shop.myshopify.com", "plan": {"displayName": "Advanced"}}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
