"""The client credentials grant with expiring tokens, and a shop without protected customer data
approval (issue 13.3), against research/shopify.md §3."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from sandbox.cli import app as sandbox_cli
from sandbox.server import BackgroundServer
from sandbox.shopify import ShopConfig, ShopifySandbox

from .conftest import VERSION, Receiver

GRANT = {
    "grant_type": "client_credentials",
    "client_id": "contract-client",
    "client_secret": "contract-secret",
}
QUERY = {"query": "{ shop { name } }"}


def _grant(server: BackgroundServer, **form: str) -> httpx.Response:
    return httpx.post(f"{server.url}/admin/oauth/access_token", data={**GRANT, **form})


def _shop_call(server: BackgroundServer, token: str) -> int:
    url = f"{server.url}/admin/api/{VERSION}/graphql.json"
    return httpx.post(url, json=QUERY, headers={"X-Shopify-Access-Token": token}).status_code


def _stats(client: httpx.Client) -> dict[str, Any]:
    return client.get("/__sandbox/stats").json()


def test_the_token_lifetime_is_a_control_knob_and_expiry_gives_401(
    server: BackgroundServer, client: httpx.Client
) -> None:
    """§3 Authentication: the answer's ``expires_in`` says how long the token lives; an expired
    token is refused like any invalid one (401)."""
    knob = client.post("/__sandbox/auth", json={"token_ttl_seconds": 60}).json()
    assert knob["token_ttl_seconds"] == 60
    grant = _grant(server).json()
    assert grant["expires_in"] == 60
    assert _shop_call(server, grant["access_token"]) == 200
    client.post("/__sandbox/clock", json={"advance_seconds": 59})
    assert _shop_call(server, grant["access_token"]) == 200
    client.post("/__sandbox/clock", json={"advance_seconds": 1})
    assert _shop_call(server, grant["access_token"]) == 401
    fresh = _grant(server).json()["access_token"]
    assert fresh != grant["access_token"]
    assert _shop_call(server, fresh) == 200
    stats = _stats(client)
    assert (stats["tokens_issued"], stats["expired_token"], stats["unauthorized"]) == (2, 1, 1)


def test_grants_are_counted_and_bad_secrets_refused(
    server: BackgroundServer, client: httpx.Client
) -> None:
    """§3: only the app's own client id and secret get a token (400 invalid_client)."""
    refused = _grant(server, client_secret="wrong")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client"
    assert _grant(server, grant_type="authorization_code").status_code == 400
    assert _grant(server).status_code == 200
    stats = _stats(client)
    assert (stats["tokens_issued"], stats["token_refused"]) == (1, 1)


def test_every_token_can_be_expired_at_once_and_reset_restores_the_config(
    server: BackgroundServer, client: httpx.Client
) -> None:
    token = _grant(server).json()["access_token"]
    state = client.post("/__sandbox/auth", json={"expire_tokens": True}).json()
    assert state["tokens_live"] == 0
    assert _shop_call(server, token) == 401
    client.post("/__sandbox/auth", json={"client_secret": "rotated", "token_ttl_seconds": 5})
    assert _grant(server).status_code == 400
    assert _grant(server, client_secret="rotated").json()["expires_in"] == 5
    client.post("/__sandbox/reset")
    assert _grant(server).json()["expires_in"] == 86399


def test_a_non_positive_lifetime_is_refused(client: httpx.Client) -> None:
    response = client.post("/__sandbox/auth", json={"token_ttl_seconds": 0})
    assert response.status_code == 400


def test_a_redacted_shop_sends_webhooks_without_personal_data(
    client: httpx.Client, receiver: Receiver
) -> None:
    """§3 Protected customer data: without Level 2 approval webhooks carry null names, e-mails,
    phones and addresses too; ids, money and the country stay."""
    client.post("/__sandbox/protected-data", json={"redacted": True})
    client.post(
        "/__sandbox/webhooks/subscriptions", json={"topic": "orders/create", "url": receiver.url}
    )
    client.post("/__sandbox/orders", json={"email": "ned@example.com"})
    [delivery] = receiver.wait_for(1)
    client.post("/__sandbox/webhooks/flush", json={"timeout": 5})
    order = json.loads(delivery.body)
    assert order["email"] is None
    assert order["phone"] is None
    assert order["id"]
    assert order["total_price"]
    billing = order["billing_address"]
    assert billing is None or (billing["first_name"], billing["address1"]) == (None, None)
    customer = order["customer"]
    if customer is not None:
        assert (customer["first_name"], customer["last_name"], customer["email"]) == (
            None,
            None,
            None,
        )
        assert customer["id"]


def test_a_shop_configured_redacted_and_with_a_short_ttl() -> None:
    """The ShopConfig knobs behind ``--redacted`` and ``--token-ttl``."""
    sb = ShopifySandbox(
        shops=[
            ShopConfig(
                orders=5,
                client_id="cid",
                client_secret="csecret",
                token_ttl_seconds=30,
                redact_customer_data=True,
            )
        ]
    )
    try:
        with BackgroundServer(sb.app) as srv:
            grant = httpx.post(
                f"{srv.url}/admin/oauth/access_token",
                data={**GRANT, "client_id": "cid", "client_secret": "csecret"},
            ).json()
            assert grant["expires_in"] == 30
            body = httpx.post(
                f"{srv.url}/admin/api/{VERSION}/graphql.json",
                json={"query": "{ orders(first: 5) { nodes { email customer { firstName } } } }"},
                headers={"X-Shopify-Access-Token": grant["access_token"]},
            ).json()
            nodes = body["data"]["orders"]["nodes"]
            assert nodes
            assert all(n["email"] is None for n in nodes)
            assert all(n["customer"] is None or n["customer"]["firstName"] is None for n in nodes)
    finally:
        sb.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--client-id", "cid"], "--client-id and --client-secret go together"),
        (["--token-ttl", "0"], "--token-ttl must be positive"),
    ],
)
def test_the_cli_refuses_inconsistent_auth_options(args: list[str], message: str) -> None:
    result = CliRunner().invoke(sandbox_cli, ["shopify", "--port", "0", *args])
    assert result.exit_code != 0
    assert message in str(result.exception)
