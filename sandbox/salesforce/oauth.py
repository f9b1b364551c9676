"""OAuth 2.0 token endpoint and session tokens (research §6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .schema import OrgProfile

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class OAuthError(Exception):
    """An OAuth failure: ``{"error", "error_description"}`` with HTTP 400."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        """The JSON body Salesforce returns."""
        return {"error": self.error, "error_description": self.description}


@dataclass
class Session:
    """An issued access token; expires ``ttl`` seconds after its last use (inactivity)."""

    token: str
    expires: float
    grant: str


class TokenBook:
    """Issues, checks and expires access and refresh tokens."""

    def __init__(self, ttl: float, client_id: str | None, client_secret: str | None) -> None:
        self.ttl = ttl
        self.client_id = client_id
        self.client_secret = client_secret
        self.sessions: dict[str, Session] = {}
        self.refresh_tokens: set[str] = set()
        self.issued = 0
        self.revoked = False  # the app's access was revoked: every grant is refused
        self.requests: Counter[str] = Counter()  # token requests by outcome: issued | <error>
        self._lock = threading.Lock()

    def issue(self, grant: str = "sandbox") -> str:
        """A new access token (also usable by tests directly)."""
        token = "00DHs0000000001!" + secrets.token_urlsafe(48)
        with self._lock:
            self.sessions[token] = Session(token, time.monotonic() + self.ttl, grant)
            self.issued += 1
        return token

    def issue_refresh(self) -> str:
        """A new refresh token (as the web-server flow would return)."""
        token = "5Aep" + secrets.token_urlsafe(60)
        self.refresh_tokens.add(token)
        return token

    def check(self, token: str | None) -> bool:
        """True (and the session extended) when ``token`` is live."""
        with self._lock:
            sess = self.sessions.get(token or "")
            now = time.monotonic()
            if sess is None or sess.expires <= now:
                self.sessions.pop(token or "", None)
                return False
            sess.expires = now + self.ttl
            return True

    def count_request(self, outcome: str) -> None:
        """Count one token request, issued or refused (a login storm must be visible)."""
        with self._lock:
            self.requests[outcome] += 1

    def request_stats(self) -> dict[str, Any]:
        """``{"total", "issued", "refused", "by_error": {error: n}}`` for the stats API."""
        with self._lock:
            refused = {k: v for k, v in self.requests.items() if k != "issued"}
            return {
                "total": sum(self.requests.values()),
                "issued": self.requests["issued"],
                "refused": sum(refused.values()),
                "by_error": refused,
            }

    def revoke(self, revoked: bool = True) -> None:
        """Revoke (or restore) the app's access: live tokens die, new grants are refused."""
        self.revoked = revoked
        if revoked:
            self.expire_all()

    def expire_all(self) -> int:
        """Invalidate every access token; returns how many were live."""
        with self._lock:
            count = len(self.sessions)
            self.sessions.clear()
            return count

    # -- grant handling --------------------------------------------------------------------
    def grant(
        self, form: dict[str, str], basic: tuple[str, str] | None, org: OrgProfile,
        base_url: str,
    ) -> dict[str, Any]:
        """Handle one token request; raises ``OAuthError``."""
        grant_type = form.get("grant_type", "")
        refresh: str | None = None
        if self.revoked:
            self._refuse_revoked(grant_type)
        if grant_type == "client_credentials":
            self._client(form, basic, required=True)
        elif grant_type == JWT_GRANT:
            self._jwt(form.get("assertion", ""), org, base_url)
        elif grant_type == "refresh_token":
            self._client(form, basic, required=False)
            if form.get("refresh_token") not in self.refresh_tokens:
                raise OAuthError("invalid_grant", "expired access/refresh token")
        elif grant_type == "password":
            self._password(form, basic, org)
        elif grant_type == "authorization_code":
            self._client(form, basic, required=True)
            if not form.get("code"):
                raise OAuthError("invalid_grant", "invalid authorization code")
            refresh = self.issue_refresh()
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        return self._answer(grant_type, org, base_url, refresh)

    def _refuse_revoked(self, grant_type: str) -> None:
        # A rotated secret fails the client checks; a revoked token or user approval fails
        # the grant itself (research §6: invalid_client / invalid_grant answers).
        if grant_type in ("refresh_token", JWT_GRANT):
            raise OAuthError("invalid_grant", "expired access/refresh token")
        raise OAuthError("invalid_client", "invalid client credentials")

    def _client(
        self, form: dict[str, str], basic: tuple[str, str] | None, required: bool
    ) -> None:
        cid, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if self.client_id is None:
            if required and not cid:
                raise OAuthError("invalid_client_id", "client identifier invalid")
            return
        if cid != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if (required or secret) and self.client_secret is not None and not hmac.compare_digest(
            secret, self.client_secret
        ):
            raise OAuthError("invalid_client", "invalid client credentials")

    def _password(
        self, form: dict[str, str], basic: tuple[str, str] | None, org: OrgProfile
    ) -> None:
        if not org.password_flow:
            raise OAuthError(
                "invalid_grant", "the username-password flow is blocked in this org"
            )
        self._client(form, basic, required=True)
        if not form.get("username") or not form.get("password"):
            raise OAuthError("invalid_grant", "authentication failure")

    def _jwt(self, assertion: str, org: OrgProfile, base_url: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if org.jwt_certificate:
            if header.get("alg") != "RS256":
                raise OAuthError("invalid_grant", "invalid assertion")
            try:
                jwt.decode(
                    assertion, _public_key(org.jwt_certificate), algorithms=["RS256"],
                    options={"verify_aud": False, "verify_exp": False},
                )
            except jwt.PyJWTError:
                raise OAuthError("invalid_grant", "invalid assertion") from None
        if not claims.get("iss") or (self.client_id and claims["iss"] != self.client_id):
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not claims.get("sub"):
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        allowed = {*org.jwt_audiences, base_url}
        if not any(a in allowed for a in audiences):
            raise OAuthError("invalid_grant", "audience is invalid")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= time.time():
            raise OAuthError("invalid_grant", "expired authorization code")

    def _answer(
        self, grant: str, org: OrgProfile, base_url: str, refresh: str | None
    ) -> dict[str, Any]:
        token = self.issue(grant)
        issued_at = str(int(time.time() * 1000))
        body: dict[str, Any] = {
            "access_token": token,
            "instance_url": base_url,
            "id": f"{base_url}/id/{org.org_id}/{org.user_id}",
            "token_type": "Bearer",
            "issued_at": issued_at,
            "scope": "api",
        }
        key = (self.client_secret or "sandbox").encode()
        digest = hmac.new(key, (body["id"] + issued_at).encode(), hashlib.sha256).digest()
        body["signature"] = base64.b64encode(digest).decode()
        if refresh:
            body["refresh_token"] = refresh
        return body


def _public_key(pem: str) -> Any:
    data = pem.encode()
    if b"BEGIN CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)
