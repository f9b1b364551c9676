"""Salesforce OAuth: our own token management for the four grant types.

simple-salesforce can only log in against ``*.salesforce.com`` hosts and has no refresh-token
flow (research/salesforce.md §0, §6), so the product obtains the access token itself and hands
simple-salesforce a ``session_id`` + ``instance_url``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import jwt
import requests
from pydantic import SecretStr

from tasks.core.errors import AuthError, ConfigError, RetryableError
from tasks.salesforce.config import SalesforceConfig

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A Salesforce access token and the instance it is valid for."""

    access_token: SecretStr
    instance_url: str
    issued_at: float


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """The form a token request posts; built from the config, no I/O."""

    url: str
    form: dict[str, str]


def token_request(config: SalesforceConfig, *, now: float | None = None) -> TokenRequest:
    """Build the OAuth token request for the configured grant."""
    mode = config.auth_mode
    url = f"{config.login_url}/services/oauth2/token"
    client_id = _secret(config.client_id)
    if mode == "client_credentials":
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": _secret(config.client_secret),
        }
    elif mode == "jwt":
        form = {"grant_type": JWT_GRANT, "assertion": jwt_assertion(config, now=now)}
    elif mode == "refresh_token":
        form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "refresh_token": _secret(config.refresh_token),
        }
        if config.client_secret is not None:
            form["client_secret"] = _secret(config.client_secret)
    else:
        form = {
            "grant_type": "password",
            "client_id": client_id,
            "client_secret": _secret(config.client_secret),
            "username": config.username or "",
            # The password flow wants the security token appended to the password.
            "password": _secret(config.password) + _secret(config.security_token),
        }
    return TokenRequest(url=url, form=form)


def jwt_assertion(config: SalesforceConfig, *, now: float | None = None) -> str:
    """An RS256 JWT bearer assertion: iss = consumer key, sub = user, aud = login host."""
    path = config.jwt_private_key_path
    if path is None or not path.is_file():
        raise ConfigError(f"SALESFORCE_JWT_PRIVATE_KEY_PATH {path} is not a readable file")
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": _secret(config.client_id),
        "sub": config.username,
        "aud": _audience(config.login_url),
        "exp": issued + 180,  # Salesforce wants exp within three minutes
    }
    return jwt.encode(claims, path.read_bytes(), algorithm="RS256")


def _audience(login_url: str) -> str:
    host = urlparse(login_url).hostname or ""
    if host.endswith("test.salesforce.com") or ".sandbox.my.salesforce.com" in host:
        return "https://test.salesforce.com"
    if host.endswith(".salesforce.com"):
        return "https://login.salesforce.com"
    return login_url  # an Experience Cloud site, or the local sandbox


def fetch_token(config: SalesforceConfig, session: requests.Session) -> AccessToken:
    """Obtain an access token; classify failures (bad credentials are not retryable)."""
    request = token_request(config)
    try:
        response = session.post(request.url, data=request.form, timeout=config.timeout_seconds)
    except requests.RequestException as exc:
        raise RetryableError(
            f"could not reach {request.url}: {exc}", code="CONNECTION_ERROR"
        ) from exc
    body = _json(response)
    if response.status_code >= 500:
        raise RetryableError(f"token endpoint answered {response.status_code}", code="HTTP_5XX")
    if response.status_code != 200 or "access_token" not in body:
        error = body.get("error", f"HTTP_{response.status_code}")
        description = body.get("error_description", "token request refused")
        raise AuthError(
            f"Salesforce refused the {config.auth_mode} login: {description}",
            code=str(error),
        )
    return AccessToken(
        access_token=SecretStr(str(body["access_token"])),
        instance_url=str(body["instance_url"]).rstrip("/"),
        issued_at=time.time(),
    )


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""
