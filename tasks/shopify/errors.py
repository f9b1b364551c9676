"""Shopify failures → the product's error tree. The only place that reads Shopify errors.

research/shopify.md §2: every response carries ``extensions.cost.throttleStatus``; THROTTLED
comes back as HTTP 200 with an error. §3: the token endpoint's OAuth errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from tasks.core.errors import (
    AuthError,
    ConfigError,
    PermanentError,
    RateLimited,
    RetryableError,
    SyncError,
)
from tasks.shopify.auth import Grant


@dataclass(frozen=True, slots=True)
class ThrottleStatus:
    """The shop's GraphQL cost bucket as of the last response."""

    maximum: float
    available: float
    restore_rate: float


def classify_response(status: int, headers: Mapping[str, str], body: Any) -> SyncError | None:
    """Classify a Shopify response; None means it succeeded."""
    if status == 429:
        return RateLimited("Shopify rate limit", retry_after=_float(headers.get("retry-after")))
    if status >= 500:
        return RetryableError(f"Shopify answered {status}", code=f"HTTP_{status}")
    if status == 401:
        return AuthError(
            "Shopify rejected the access token (401): check SHOPIFY_ADMIN_API_ACCESS_TOKEN, or "
            "SHOPIFY_API_KEY / SHOPIFY_API_SECRET_KEY in client-credentials mode "
            "(shopsync doctor)",
            code="HTTP_401",
        )
    if status in (402, 403, 423):
        return ConfigError(
            f"Shopify refused the request ({status}): check the app's scopes and that the "
            "shop is active",
            code=f"HTTP_{status}",
        )
    if status == 404:
        return PermanentError("Shopify resource not found", code="NOT_FOUND")
    if status >= 400:
        return PermanentError(f"Shopify rejected the request ({status})", code=f"HTTP_{status}")
    return _classify_graphql_errors(body)


def classify_grant(status: int, headers: Mapping[str, str], body: Any) -> SyncError | Grant:
    """The token endpoint's answer: a :class:`Grant`, or the classified refusal.

    Shopify answers a bad client id or secret with 400 ``invalid_client`` (an OAuth error
    body), an app that may not use the grant with 400 ``unauthorized_client``/``invalid_request``:
    both are :class:`AuthError` (stop, nothing is lost; the operator must fix the credentials).
    """
    if status == 429:
        return RateLimited(
            "Shopify token endpoint rate limit", retry_after=_float(headers.get("retry-after"))
        )
    if status >= 500:
        return RetryableError(f"Shopify token endpoint answered {status}", code=f"HTTP_{status}")
    token = body.get("access_token") if isinstance(body, Mapping) else None
    if status == 200 and isinstance(token, str) and token:
        return Grant(
            access_token=SecretStr(token),
            expires_in=_float(str(body["expires_in"])) if body.get("expires_in") else None,
            scope=str(body.get("scope") or ""),
        )
    code = str(body.get("error") or f"HTTP_{status}") if isinstance(body, Mapping) else ""
    description = body.get("error_description") if isinstance(body, Mapping) else None
    return AuthError(
        "Shopify refused the client credentials grant"
        + (f" ({description})" if description else "")
        + ": check SHOPIFY_API_KEY and SHOPIFY_API_SECRET_KEY (the Dev Dashboard app's client "
        "id and secret) and that the app is installed on SHOPIFY_STORE_DOMAIN",
        code=code or f"HTTP_{status}",
    )


def _classify_graphql_errors(body: Any) -> SyncError | None:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not errors:
        return None
    listed = isinstance(errors, list) and isinstance(errors[0], Mapping)
    first: Mapping[str, Any] = errors[0] if listed else {"message": str(errors)}
    code = str((first.get("extensions") or {}).get("code") or "GRAPHQL_ERROR")
    message = str(first.get("message", "GraphQL error"))
    if code == "THROTTLED":
        return RateLimited(message, retry_after=_refill_seconds(body), code=code)
    if code in {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"}:
        return RetryableError(message, code=code)
    if code == "UNAUTHORIZED":
        return AuthError(message, code=code)
    if code == "ACCESS_DENIED":
        return ConfigError(message, code=code)
    return PermanentError(message, code=code)


def throttle_status(body: Any) -> ThrottleStatus | None:
    """``extensions.cost.throttleStatus`` of a GraphQL response, when present."""
    try:
        status = body["extensions"]["cost"]["throttleStatus"]
        return ThrottleStatus(
            maximum=float(status["maximumAvailable"]),
            available=float(status["currentlyAvailable"]),
            restore_rate=float(status["restoreRate"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _refill_seconds(body: Any) -> float | None:
    status = throttle_status(body)
    try:
        requested = float(body["extensions"]["cost"]["requestedQueryCost"])
    except (KeyError, TypeError, ValueError):
        return None
    if status is None or status.restore_rate <= 0:
        return None
    return max(0.0, (requested - status.available) / status.restore_rate)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
