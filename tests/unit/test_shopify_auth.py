"""Shopify tokens (issue 13.3): the cached client-credentials token, the grant's classification,
and doctor's pure checks of the auth mode and of redacted customer data."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import SecretStr

from tasks.checks.doctor import auth_checks, auth_failure, looks_redacted, redaction_check
from tasks.core.errors import AuthError, RateLimited, RetryableError
from tasks.shopify.auth import ClientCredentialsToken, Grant, StaticToken, renewal_margin
from tasks.shopify.client import classify_grant


class Endpoint:
    """A stand-in for the token endpoint: numbered tokens with a fixed lifetime."""

    def __init__(self, expires_in: float | None = 86399.0):
        self.expires_in = expires_in
        self.grants = 0

    def __call__(self) -> Grant:
        self.grants += 1
        return Grant(SecretStr(f"shpat_{self.grants}"), self.expires_in, "read_orders")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_token_is_cached_until_shortly_before_it_expires() -> None:
    endpoint, clock = Endpoint(expires_in=3600.0), Clock()
    tokens = ClientCredentialsToken(endpoint, clock=clock)
    assert tokens.token() == "shpat_1"
    clock.now += 3600.0 - renewal_margin(3600.0) - 1
    assert tokens.token() == "shpat_1"
    assert endpoint.grants == 1
    clock.now += 1
    assert tokens.token() == "shpat_2"
    assert (endpoint.grants, tokens.renewals) == (2, 0)


def test_the_renewal_margin_is_five_minutes_or_a_tenth_of_a_short_lifetime() -> None:
    assert renewal_margin(86399.0) == 300.0
    assert renewal_margin(60.0) == 6.0


def test_a_rejected_token_is_renewed_once_even_when_many_threads_saw_the_401() -> None:
    endpoint = Endpoint()
    tokens = ClientCredentialsToken(endpoint, clock=Clock())
    rejected = tokens.token()
    results: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(tokens.renew(rejected))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["shpat_2"] * 8
    assert (endpoint.grants, tokens.renewals) == (2, 1)


def test_a_token_without_expires_in_is_kept_until_shopify_rejects_it() -> None:
    endpoint, clock = Endpoint(expires_in=None), Clock()
    tokens = ClientCredentialsToken(endpoint, clock=clock)
    tokens.token()
    clock.now += 10 * 86400
    assert tokens.token() == "shpat_1"
    assert tokens.renew("shpat_1") == "shpat_2"


def test_a_failed_grant_raises_and_the_next_call_asks_again() -> None:
    calls = []

    def refuse() -> Grant:
        calls.append(1)
        raise AuthError("refused", code="invalid_client")

    tokens = ClientCredentialsToken(refuse, clock=Clock())
    for _ in range(2):
        with pytest.raises(AuthError):
            tokens.token()
    assert len(calls) == 2


def test_a_static_token_is_never_renewed() -> None:
    tokens = StaticToken(SecretStr("shpat_static"))
    assert tokens.token() == "shpat_static"
    assert tokens.renew("shpat_static") is None
    assert StaticToken(None).token() == ""


def test_a_grant_keeps_the_token_secret() -> None:
    grant = classify_grant(
        200, {}, {"access_token": "shpat_abc", "scope": "read_orders", "expires_in": 86399}
    )
    assert isinstance(grant, Grant)
    assert grant.expires_in == 86399.0
    assert grant.access_token.get_secret_value() == "shpat_abc"
    assert "shpat_abc" not in repr(grant)
    assert "shpat_abc" not in str(grant)


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (400, {"error": "invalid_client", "error_description": "bad"}, AuthError, "invalid_client"),
        (400, {"error": "unauthorized_client"}, AuthError, "unauthorized_client"),
        (200, {"scope": "read_orders"}, AuthError, "HTTP_200"),
        (404, "Not Found", AuthError, "HTTP_404"),
        (503, {}, RetryableError, "HTTP_503"),
        (429, {}, RateLimited, None),
    ],
)
def test_grant_refusals_are_classified(status: int, body: Any, kind: type, code: str) -> None:
    error = classify_grant(status, {"retry-after": "3"}, body)
    assert type(error) is kind
    assert error.code == code
    if kind is AuthError:
        assert "SHOPIFY_API_KEY" in str(error)


def test_doctor_names_the_mode_and_the_token_lifetime() -> None:
    [check] = auth_checks("client_credentials", 86399.0)
    assert check.ok
    assert "client credentials (Dev Dashboard app" in check.detail
    assert "token obtained (lifetime 24.0 h)" in check.detail
    [check] = auth_checks("static_token", None)
    assert "static token (legacy custom app" in check.detail


def test_a_refused_login_gets_the_fix_of_its_mode() -> None:
    refused = AuthError("Shopify rejected the access token (401)", code="HTTP_401")
    static = auth_failure("static_token", refused)
    assert not static.ok
    assert "Dev Dashboard app" in static.fix
    assert "2026-01-01" in static.fix
    grant = auth_failure("client_credentials", AuthError("refused", code="invalid_client"))
    assert "SHOPIFY_API_SECRET_KEY" in grant.fix
    assert "installed on" in grant.fix


def _node(**personal: Any) -> dict[str, Any]:
    node = {
        "legacyResourceId": "1001",
        "email": None,
        "phone": None,
        "customer": {
            "legacyResourceId": "7",
            "firstName": None,
            "lastName": None,
            "defaultEmailAddress": None,
        },
        "billingAddress": {"firstName": None, "lastName": None, "address1": None},
    }
    node.update(personal)
    return node


def test_an_order_whose_buyer_is_all_null_looks_redacted() -> None:
    assert looks_redacted(_node()) is True
    assert looks_redacted(_node(email="a@example.com")) is False
    assert looks_redacted(_node(customer=None, billingAddress=None)) is None


def test_redaction_is_reported_with_its_fix_only_when_no_recent_order_shows_a_name() -> None:
    check = redaction_check([_node(customer=None, billingAddress=None), _node()])
    assert not check.ok
    assert check.severity == "warning"
    assert "redacted: recent order 1001" in check.detail
    assert "Protected customer data" in check.fix
    assert redaction_check([_node(), _node(email="a@example.com")]).ok
    assert redaction_check([]).severity == "info"
