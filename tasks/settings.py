"""Configuration: one typed settings object, read from the environment and ``.env``, loaded once.

The blueprint's variable names (``SHOPIFY_*``, ``SALESFORCE_*``) are kept as they are; everything
the product adds is prefixed ``SHOPSYNC_``. Secrets are ``SecretStr`` and never printed. The rules
behind the values (parsing, validity, what each part needs) are in ``tasks/settings_checks.py``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tasks import settings_checks as checks
from tasks.core.mapping import MappingConfig
from tasks.settings_checks import AuthMode, ShopifyAuthMode

__all__ = [
    "AuthMode",
    "Settings",
    "SettingsError",
    "ShopifyAuthMode",
    "get_settings",
    "load_settings",
]


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class SettingsError(Exception):
    """Settings are missing or invalid; ``problems`` has one readable line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    """Everything shopsync reads from its environment."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        env_ignore_empty=True,  # `FOO=` in .env (as .env.example has it) means unset
        extra="ignore",
        populate_by_name=True,
    )

    # Shopify (the blueprint's names)
    shopify_api_key: SecretStr | None = Field(
        None, validation_alias=_env("SHOPIFY_API_KEY"), description="App API key (client id)."
    )
    shopify_api_secret_key: SecretStr | None = Field(
        None,
        validation_alias=_env("SHOPIFY_API_SECRET_KEY"),
        description="App API secret key (client secret).",
    )
    shopify_admin_api_access_token: SecretStr | None = Field(
        None,
        validation_alias=_env("SHOPIFY_ADMIN_API_ACCESS_TOKEN", "SHOPIFY_ACCESS_TOKEN"),
        description="Static Admin API access token (shpat_…) of a legacy custom app.",
    )
    shopify_auth_mode_setting: ShopifyAuthMode | None = Field(
        None,
        validation_alias=_env("SHOPSYNC_SHOPIFY_AUTH_MODE"),
        description=(
            "static_token or client_credentials; default: static_token when "
            "SHOPIFY_ADMIN_API_ACCESS_TOKEN is set, else client_credentials."
        ),
    )
    shopify_store_domain: str | None = Field(
        None,
        validation_alias=_env("SHOPIFY_STORE_DOMAIN"),
        description="The shop's myshopify.com domain.",
    )
    shopify_webhook_secret: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("SHOPIFY_WEBHOOK_SECRET"),
        description="Webhook signing secret(s); comma-separated during a rotation.",
    )
    shopify_api_version: str = Field(
        "2026-10", validation_alias=_env("SHOPIFY_API_VERSION"), description="Admin API version."
    )
    shopify_admin_url: str | None = Field(
        None,
        validation_alias=_env("SHOPIFY_ADMIN_URL"),
        description="Base URL of the Admin API; default https://<SHOPIFY_STORE_DOMAIN>.",
    )

    # Salesforce (the blueprint's names)
    salesforce_client_id: SecretStr | None = Field(
        None, validation_alias=_env("SALESFORCE_CLIENT_ID"), description="Consumer key."
    )
    salesforce_client_secret: SecretStr | None = Field(
        None, validation_alias=_env("SALESFORCE_CLIENT_SECRET"), description="Consumer secret."
    )
    salesforce_username: str | None = Field(
        None, validation_alias=_env("SALESFORCE_USERNAME"), description="Integration user."
    )
    salesforce_password: SecretStr | None = Field(
        None, validation_alias=_env("SALESFORCE_PASSWORD"), description="Password (password mode)."
    )
    salesforce_security_token: SecretStr | None = Field(
        None, validation_alias=_env("SALESFORCE_SECURITY_TOKEN"), description="Security token."
    )
    salesforce_login_url: str = Field(
        "https://login.salesforce.com",
        validation_alias=_env("SALESFORCE_LOGIN_URL"),
        description="Token endpoint host: login, test or your My Domain URL.",
    )
    salesforce_auth_mode: AuthMode = Field(
        "client_credentials",
        validation_alias=_env("SALESFORCE_AUTH_MODE"),
        description="jwt, client_credentials, refresh_token or password.",
    )
    salesforce_jwt_private_key_path: Path | None = Field(
        None,
        validation_alias=_env("SALESFORCE_JWT_PRIVATE_KEY_PATH"),
        description="PEM private key whose certificate is on the connected app (jwt mode).",
    )
    salesforce_refresh_token: SecretStr | None = Field(
        None,
        validation_alias=_env("SALESFORCE_REFRESH_TOKEN"),
        description="Refresh token (refresh_token mode).",
    )
    salesforce_api_version: str = Field(
        "62.0", validation_alias=_env("SALESFORCE_API_VERSION"), description="REST API version."
    )
    salesforce_api_reserve_percent: float = Field(
        80.0,
        ge=1,
        le=100,
        validation_alias=_env("SHOPSYNC_SALESFORCE_API_RESERVE_PERCENT"),
        description="Stop writing when daily API usage reaches this share of the allocation.",
    )
    salesforce_concurrency: int = Field(
        4,
        ge=1,
        le=25,
        validation_alias=_env("SHOPSYNC_SALESFORCE_CONCURRENCY"),
        description="Concurrent Salesforce requests per flow run.",
    )
    salesforce_duplicate_rule_allow_save: bool = Field(
        True,
        validation_alias=_env("SHOPSYNC_SALESFORCE_DUPLICATE_RULE_ALLOW_SAVE"),
        description=(
            "Send Sforce-Duplicate-Rule-Header: allowSave=true on writes, so the org's alert-type "
            "duplicate rules let orders through (block-type rules still reject them)."
        ),
    )
    salesforce_timeout_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("SHOPSYNC_SALESFORCE_TIMEOUT_SECONDS"),
        description="Seconds before a Salesforce request times out (and is retried).",
    )

    # The product
    shop_timezone: str | None = Field(
        None,
        validation_alias=_env("SHOPSYNC_SHOP_TIMEZONE"),
        description="IANA timezone of the shop; default: read from Shopify.",
    )
    data_dir: Path = Field(
        Path("data"),
        validation_alias=_env("SHOPSYNC_DATA_DIR"),
        description="Where the state database and reports live.",
    )
    database_url: str | None = Field(
        None,
        validation_alias=_env("SHOPSYNC_DATABASE_URL"),
        description="SQLAlchemy URL of the state store; default sqlite in the data directory.",
    )
    webhook_host: str = Field(
        "127.0.0.1",
        validation_alias=_env("SHOPSYNC_WEBHOOK_HOST"),
        description="Address the webhook receiver binds.",
    )
    webhook_port: int = Field(
        8080,
        ge=0,
        le=65535,
        validation_alias=_env("SHOPSYNC_WEBHOOK_PORT"),
        description="Port of the webhook receiver.",
    )
    webhook_max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        validation_alias=_env("SHOPSYNC_WEBHOOK_MAX_BODY_BYTES"),
        description="Larger webhook bodies get 413.",
    )
    webhook_allow_public_bind: bool = Field(
        False,
        validation_alias=_env("SHOPSYNC_WEBHOOK_ALLOW_PUBLIC_BIND"),
        description="Allow the receiver to bind a non-loopback address.",
    )
    reconcile_lookback_hours: int = Field(
        48,
        ge=0,
        validation_alias=_env("SHOPSYNC_RECONCILE_LOOKBACK_HOURS"),
        description="How far behind the cursor the nightly reconcile looks again.",
    )
    reconcile_max_failed_nights: int = Field(
        3,
        ge=1,
        validation_alias=_env("SHOPSYNC_RECONCILE_MAX_FAILED_NIGHTS"),
        description=(
            "Nightly runs an order's repair may fail transiently before it is dead-lettered "
            "with its reason, so that the nightly cursor moves on."
        ),
    )
    alerts_block: str | None = Field(
        None,
        validation_alias=_env("SHOPSYNC_ALERTS_BLOCK"),
        description="Prefect notification block for alerts, as <block-type>/<name>.",
    )
    nightly_cron: str = Field(
        "30 3 * * *",
        validation_alias=_env("SHOPSYNC_NIGHTLY_CRON"),
        description="When the nightly reconcile runs (cron, shop timezone).",
    )
    order_delete_action: Literal["ignore", "flag"] = Field(
        "ignore",
        validation_alias=_env("SHOPSYNC_ORDER_DELETE_ACTION"),
        description="orders/delete webhooks: ignore them, or flag the order in the ledger.",
    )
    webhook_allowed_shops: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("SHOPSYNC_WEBHOOK_ALLOWED_SHOPS"),
        description="Shops whose webhooks are accepted, besides SHOPIFY_STORE_DOMAIN.",
    )
    inbox_lease_seconds: float = Field(
        30.0,
        ge=3,
        validation_alias=_env("SHOPSYNC_INBOX_LEASE_SECONDS"),
        description=(
            "How long a drain's claims outlive it: renewed every third of it while the drain "
            "runs, so a drain that dies frees its orders after this long."
        ),
    )
    drain_concurrency: int = Field(
        1,
        ge=1,
        le=50,
        validation_alias=_env("SHOPSYNC_DRAIN_CONCURRENCY"),
        description=(
            "Drain flow runs at once (the webhook deployment's concurrency limit); raise it "
            "with several workers on a PostgreSQL state store."
        ),
    )
    drain_mode: Literal["adaptive", "per_order", "batch"] = Field(
        "adaptive",
        validation_alias=_env("SHOPSYNC_DRAIN_MODE"),
        description=(
            "How the drain writes a claimed batch: per_order (one /composite call per order), "
            "batch (sObject Collections: one call per object and 200 records), or adaptive "
            "(Collections once a claimed batch has SHOPSYNC_DRAIN_BATCH_MIN_ORDERS orders)."
        ),
    )
    serve_drain: Literal["warm", "runner"] = Field(
        "warm",
        validation_alias=_env("SHOPSYNC_SERVE_DRAIN"),
        description=(
            "Where `shopsync serve` runs the webhook drain: warm (in the serve process, started "
            "the moment a delivery is stored; no flow-run process to start) or runner (each "
            "drain a flow run of the webhook deployment, in a process of its own)."
        ),
    )
    drain_batch_min_orders: int = Field(
        8,
        ge=1,
        validation_alias=_env("SHOPSYNC_DRAIN_BATCH_MIN_ORDERS"),
        description="Claimed orders at or above which the adaptive drain uses Collections.",
    )
    inbox_backoff_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0],
        validation_alias=_env("SHOPSYNC_INBOX_BACKOFF_SECONDS"),
        description=(
            "When a delivery whose sync failed transiently is tried again; after the last, "
            "it is dead-lettered."
        ),
    )
    retry_delays_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 15.0, 60.0],
        validation_alias=_env("SHOPSYNC_RETRY_DELAYS_SECONDS"),
        description="Backoff before each retry of a transient failure (jittered), comma-separated.",
    )
    mapping: MappingConfig = Field(
        default_factory=MappingConfig,
        validation_alias=_env("SHOPSYNC_MAPPING"),
        description="Shopify → Salesforce mapping (SHOPSYNC_MAPPING__<FIELD>).",
    )

    @field_validator("shopify_webhook_secret", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        return checks.split_list(value)

    @field_validator("webhook_allowed_shops", mode="before")
    @classmethod
    def _split_shops(cls, value: Any) -> Any:
        return checks.split_shops(value)

    @field_validator("retry_delays_seconds", "inbox_backoff_seconds", mode="before")
    @classmethod
    def _split_delays(cls, value: Any) -> Any:
        return checks.split_delays(value)

    @field_validator("shopify_store_domain")
    @classmethod
    def _check_domain(cls, value: str | None) -> str | None:
        return checks.shop_domain(value)

    @field_validator("shopify_api_version")
    @classmethod
    def _check_shopify_version(cls, value: str) -> str:
        return checks.shopify_api_version(value)

    @field_validator("salesforce_api_version")
    @classmethod
    def _check_salesforce_version(cls, value: str) -> str:
        return checks.salesforce_api_version(value)

    @field_validator("shop_timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        return checks.timezone(value)

    @field_validator("salesforce_login_url", "shopify_admin_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return checks.url(value)

    # -- derived -------------------------------------------------------------------------------

    @property
    def shopify_base_url(self) -> str:
        """Where the Admin API lives."""
        return self.shopify_admin_url or f"https://{self.shopify_store_domain}"

    @property
    def shopify_auth_mode(self) -> ShopifyAuthMode:
        """How shopsync gets its Shopify token: the explicit setting, else inferred.

        A static token wins when one is set (existing custom apps keep working unchanged);
        otherwise the client credentials grant (a Dev Dashboard app: SHOPIFY_API_KEY and
        SHOPIFY_API_SECRET_KEY), the only way for an app created since 2026-01-01.
        """
        if self.shopify_auth_mode_setting is not None:
            return self.shopify_auth_mode_setting
        return "static_token" if self.shopify_admin_api_access_token else "client_credentials"

    @property
    def state_url(self) -> str:
        """The state store's SQLAlchemy URL."""
        from state.db import sqlite_url

        return self.database_url or sqlite_url(self.data_dir)

    def problems(self, *, need: set[str] | None = None) -> list[str]:
        """What is missing for the given parts (``shopify``, ``salesforce``, ``webhooks``)."""
        return checks.problems(self, need or {"shopify", "salesforce", "webhooks"})


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation errors into one readable line each."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [checks.describe(err, _ENV_NAMES) for err in exc.errors()]
        also = checks.missing_besides(Settings, exc, overrides, _ENV_NAMES)
        raise SettingsError(problems + also) from None


_ENV_NAMES = checks.env_names(Settings)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, loaded on first use."""
    return load_settings()
