"""OAuth token endpoint and session expiry (research §6, §4)."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce.exceptions import SalesforceExpiredSession

from sandbox.salesforce import OrgProfile, SalesforceSandbox
from sandbox.salesforce.client import simple_salesforce
from sandbox.server import BackgroundServer

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _token(url: str, **form: str) -> httpx.Response:
    return httpx.post(f"{url}/services/oauth2/token", data=form)


def test_client_credentials_answers_like_salesforce(url: str) -> None:
    """research/salesforce.md §6: client credentials → access_token, instance_url, Bearer."""
    resp = _token(url, grant_type="client_credentials", client_id="any", client_secret="x")
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == url
    assert {"access_token", "issued_at", "id", "signature"} <= set(body)


def test_token_requests_are_not_api_calls(url: str, control) -> None:
    """research/salesforce.md §4: OAuth token requests don't count toward API usage."""
    _token(url, grant_type="client_credentials", client_id="a", client_secret="b")
    assert control.calls() == 0


def test_configured_client_rejects_wrong_secret() -> None:
    """research/salesforce.md §6: wrong client secret → 400 invalid_client (OAuth error shape)."""
    sb = SalesforceSandbox(client_id="cid", client_secret="sec")
    with BackgroundServer(sb.app) as srv:
        bad = _token(srv.url, grant_type="client_credentials", client_id="cid",
                     client_secret="nope")
        assert bad.status_code == 400
        assert bad.json()["error"] == "invalid_client"
        assert "error_description" in bad.json()
        other = _token(srv.url, grant_type="client_credentials", client_id="zzz",
                       client_secret="sec")
        assert other.json()["error"] == "invalid_client_id"
        basic = httpx.post(f"{srv.url}/services/oauth2/token", auth=("cid", "sec"),
                           data={"grant_type": "client_credentials"})
        assert basic.status_code == 200


def _keys() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


def test_jwt_bearer_checks_claims_and_signature() -> None:
    """research/salesforce.md §6: JWT bearer — iss/sub/aud/exp checked, RS256 signature."""
    private, public = _keys()
    other_private, _ = _keys()
    sb = SalesforceSandbox(org=OrgProfile(jwt_certificate=public), client_id="ck")
    claims = {"iss": "ck", "sub": "int@example.com", "aud": "https://login.salesforce.com",
              "exp": int(time.time()) + 180}
    with BackgroundServer(sb.app) as srv:
        ok = _token(srv.url, grant_type=JWT_GRANT,
                    assertion=jwt.encode(claims, private, algorithm="RS256"))
        assert ok.status_code == 200, ok.text
        assert "refresh_token" not in ok.json()
        cases = [
            ({**claims, "exp": int(time.time()) - 5}, private, "invalid_grant"),
            ({**claims, "aud": "https://evil.example"}, private, "invalid_grant"),
            ({**claims, "iss": "other"}, private, "invalid_client_id"),
            ({**claims, "sub": ""}, private, "invalid_grant"),
            (claims, other_private, "invalid_grant"),
        ]
        for bad_claims, key, error in cases:
            resp = _token(srv.url, grant_type=JWT_GRANT,
                          assertion=jwt.encode(bad_claims, key, algorithm="RS256"))
            assert resp.status_code == 400
            assert resp.json()["error"] == error


def test_refresh_and_password_grants(url: str, control) -> None:
    """research/salesforce.md §6: refresh_token (issued tokens only) and password flows."""
    refresh = control.post("tokens", {"refresh": True})["refresh_token"]
    ok = _token(url, grant_type="refresh_token", refresh_token=refresh, client_id="x")
    assert ok.status_code == 200
    bad = _token(url, grant_type="refresh_token", refresh_token="nope", client_id="x")
    assert bad.json()["error"] == "invalid_grant"
    pw = _token(url, grant_type="password", client_id="a", client_secret="b",
                username="u@example.com", password="pwTOKEN")
    assert pw.status_code == 200
    control.post("org", {"password_flow": False})
    blocked = _token(url, grant_type="password", client_id="a", client_secret="b",
                     username="u@example.com", password="pwTOKEN")
    assert blocked.json()["error"] == "invalid_grant"
    assert _token(url, grant_type="nope").json()["error"] == "unsupported_grant_type"


def test_unknown_token_is_401_invalid_session(url: str) -> None:
    """research/salesforce.md §4: invalid token → 401 INVALID_SESSION_ID error array."""
    resp = httpx.get(f"{url}/services/data/v59.0/limits",
                     headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert resp.json() == [{"message": "Session expired or invalid",
                            "errorCode": "INVALID_SESSION_ID"}]


def test_token_expires_after_ttl() -> None:
    """research/salesforce.md §4/§6: sessions expire (token_ttl) → SalesforceExpiredSession."""
    sb = SalesforceSandbox(token_ttl=0.3)
    with BackgroundServer(sb.app) as srv:
        sf = simple_salesforce(srv.url)
        sf.query("SELECT Id FROM Account")
        time.sleep(0.5)
        with pytest.raises(SalesforceExpiredSession):
            sf.query("SELECT Id FROM Account")


def test_control_expires_all_tokens(sf, control) -> None:
    """research/salesforce.md §4: POST /__sandbox/tokens/expire invalidates every session."""
    sf.query("SELECT Id FROM Account")
    assert control.post("tokens/expire")["expired"] >= 1
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account")


def test_jwt_without_certificate_skips_signature(url) -> None:
    """research/salesforce.md §6: without a configured certificate only the claims are checked."""
    claims = {"iss": "ck", "sub": "u@example.com", "aud": url, "exp": int(time.time()) + 60}
    ok = _token(url, grant_type=JWT_GRANT, assertion=jwt.encode(claims, "k" * 32,
                                                                algorithm="HS256"))
    assert ok.status_code == 200
    assert _token(url, grant_type=JWT_GRANT, assertion="garbage").json()["error"] == (
        "invalid_grant")


def test_every_token_request_is_counted_refused_ones_included(url: str, control) -> None:
    """A login storm must be visible: issued and refused grants both count (not as API calls)."""
    _token(url, grant_type="client_credentials", client_id="a", client_secret="b")
    _token(url, grant_type="bogus")
    _token(url, grant_type="refresh_token", client_id="a", refresh_token="never-issued")
    counted = control.get("stats")["token_requests"]
    assert counted == {
        "total": 3,
        "issued": 1,
        "refused": 2,
        "by_error": {"unsupported_grant_type": 1, "invalid_grant": 1},
    }
    assert control.calls() == 0
    control.post("stats/reset")
    assert control.get("stats")["token_requests"]["total"] == 0


def test_revoked_credentials_kill_sessions_and_refuse_every_grant(url: str, control) -> None:
    """research §6: a rotated secret → invalid_client; a revoked grant → invalid_grant."""
    token = _token(url, grant_type="client_credentials", client_id="a", client_secret="b")
    live = token.json()["access_token"]
    assert control.post("credentials", {"revoked": True}) == {"revoked": True}
    answer = httpx.get(
        f"{url}/services/data/v59.0/limits", headers={"Authorization": f"Bearer {live}"}
    )
    assert answer.status_code == 401
    assert answer.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    refused = _token(url, grant_type="client_credentials", client_id="a", client_secret="b")
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_client")
    control.post("credentials", {"revoked": False})
    again = _token(url, grant_type="client_credentials", client_id="a", client_secret="b")
    assert again.status_code == 200


def test_a_revoke_fault_answers_401_and_revokes_the_app(url: str, control, http) -> None:
    control.post("faults", {"kind": "revoke", "count": 1, "path": "/limits"})
    assert http.get("/services/data/v59.0/limits").status_code == 401
    refused = _token(url, grant_type="client_credentials", client_id="a", client_secret="b")
    assert refused.status_code == 400
    assert control.get("credentials") == {"revoked": True}
