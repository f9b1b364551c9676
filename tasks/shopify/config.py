"""What the Shopify adapter needs from the configuration, and nothing more.

Built from ``Settings`` in one place (``tasks.runtime.shopify_config``); the adapter takes this,
never the whole ``Settings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

ShopifyAuthMode = Literal["static_token", "client_credentials"]


@dataclass(frozen=True, slots=True)
class ShopifyConfig:
    """Where the shop's Admin API is and how to get a token for it."""

    base_url: str  # https://{shop}.myshopify.com (or a local sandbox)
    api_version: str = "2026-10"
    auth_mode: ShopifyAuthMode = "static_token"
    access_token: SecretStr | None = None  # static_token mode: the custom app's shpat_ token
    api_key: SecretStr | None = None  # client_credentials mode: the app's client id …
    api_secret_key: SecretStr | None = None  # … and secret
    timeout_seconds: float = 30.0
    bulk_download_timeout_seconds: float = 300.0

    @property
    def api_url(self) -> str:
        """The versioned Admin API root."""
        return f"{self.base_url}/admin/api/{self.api_version}"
