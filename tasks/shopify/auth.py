"""Where the Shopify adapter gets its access token: a static token, or the client credentials
grant with a cached, expiring token.

research/shopify.md §3: since 2026-01-01 a new own-store integration is a Dev Dashboard app that
obtains its token with ``POST https://{shop}/admin/oauth/access_token``
(``grant_type=client_credentials``); the answer has ``access_token``, ``scope`` and
``expires_in`` (about 24 h, but trust the number). Legacy custom apps keep their static
``shpat_`` token, which never expires.

Both sources are small and free of HTTP: :class:`ClientCredentialsToken` is handed a function
that performs the grant (the adapter in ``tasks.shopify.client`` owns the request and classifies its
failures) and a clock. It keeps the token until shortly before ``expires_in`` runs out, and
renews it at most once per rejected token, so that threads that saw the same 401 at once cause
a single grant. Tokens are ``SecretStr``: nothing here ever logs or prints one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

MAX_RENEWAL_MARGIN = 300.0
"""Renew at most this many seconds before the token expires (5 minutes of a 24-hour token)."""
RENEWAL_MARGIN_SHARE = 0.1
"""…and at most this share of its lifetime (short-lived tokens are renewed in time too)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One answer of the token endpoint."""

    access_token: SecretStr
    expires_in: float | None
    scope: str = ""


class TokenSource(Protocol):
    """What the Shopify adapter asks for its ``X-Shopify-Access-Token`` header."""

    mode: str

    def token(self) -> str:
        """A token believed valid now (may perform the grant)."""
        ...

    def renew(self, rejected: str) -> str | None:
        """A new token after Shopify answered 401 to ``rejected``; ``None`` when none can be had."""
        ...


class StaticToken:
    """A legacy custom app's ``shpat_`` token: used as it is, never renewed."""

    mode = "static_token"

    def __init__(self, token: SecretStr | None):
        self._token = token

    def token(self) -> str:
        """The configured token (empty when none is configured: Shopify then answers 401)."""
        return self._token.get_secret_value() if self._token else ""

    def renew(self, rejected: str) -> str | None:
        """A static token cannot be renewed: the 401 stands."""
        return None


def renewal_margin(expires_in: float) -> float:
    """Seconds before expiry at which a token is renewed rather than used."""
    return min(MAX_RENEWAL_MARGIN, expires_in * RENEWAL_MARGIN_SHARE)


class ClientCredentialsToken:
    """A client-credentials token, cached until shortly before it expires.

    ``request_grant`` performs one grant (and raises the classified error when it fails);
    ``clock`` is a monotonic clock in seconds. ``grants`` counts the grants made, ``renewals``
    those made because Shopify rejected a token.
    """

    mode = "client_credentials"

    def __init__(
        self,
        request_grant: Callable[[], Grant],
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._request_grant = request_grant
        self._clock = clock
        self._lock = threading.Lock()
        self._current: SecretStr | None = None
        self._renew_at = 0.0
        self.expires_in: float | None = None
        self.grants = 0
        self.renewals = 0

    def token(self) -> str:
        """The cached token while it is fresh, else a new one."""
        with self._lock:
            current = self._current
            if current is None or self._clock() >= self._renew_at:
                current = self._grant()
            return current.get_secret_value()

    def renew(self, rejected: str) -> str | None:
        """A new token, unless another caller already replaced ``rejected``: then that one."""
        with self._lock:
            current = self._current
            if current is None or current.get_secret_value() == rejected:
                current = self._grant()
                self.renewals += 1
            return current.get_secret_value()

    def _grant(self) -> SecretStr:
        asked = self._clock()
        grant = self._request_grant()
        self.grants += 1
        self._current = grant.access_token
        self.expires_in = grant.expires_in
        if grant.expires_in is None:
            self._renew_at = float("inf")  # a token without expiry: renewed only on 401
        else:
            self._renew_at = asked + grant.expires_in - renewal_margin(grant.expires_in)
        return grant.access_token
