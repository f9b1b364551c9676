"""What the Salesforce adapter needs from the configuration, and nothing more.

Built from ``Settings`` in one place (``tasks.runtime.salesforce_config``); the adapter and its
login take this, never the whole ``Settings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

AuthMode = Literal["jwt", "client_credentials", "refresh_token", "password"]


@dataclass(frozen=True, slots=True)
class SalesforceConfig:
    """Login, API version, timeouts and the API budget of one Salesforce org."""

    login_url: str = "https://login.salesforce.com"
    auth_mode: AuthMode = "client_credentials"
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    jwt_private_key_path: Path | None = None
    refresh_token: SecretStr | None = None
    api_version: str = "62.0"
    timeout_seconds: float = 30.0
    # Writes stop once the org's 24-hour API usage reaches this share of its limit (DESIGN §3).
    api_reserve_percent: float = 80.0
    # Send ``Sforce-Duplicate-Rule-Header: allowSave=true`` with every write.
    duplicate_rule_allow_save: bool = True
