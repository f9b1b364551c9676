"""Wiring: build the real adapters and the sync context from the settings, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from state import StateStore
from tasks.core.errors import SyncError
from tasks.salesforce import SalesforcePort
from tasks.salesforce.config import SalesforceConfig
from tasks.salesforce.errors import schema_outdated
from tasks.salesforce.gateway import SimpleSalesforceGateway
from tasks.salesforce.org import invalidate, load_org_schema
from tasks.settings import Settings
from tasks.shopify.client import ShopifyClient
from tasks.shopify.config import ShopifyConfig
from tasks.shopify.port import ShopifyPort
from tasks.sync import SyncContext


@dataclass(frozen=True, slots=True)
class Runtime:
    """The adapters one flow run uses."""

    settings: Settings
    store: StateStore
    # The interfaces, not the adapters: tests pass the in-memory fakes of tests/fakes.py.
    salesforce: SalesforcePort
    shopify: ShopifyPort

    def sync_context(self) -> SyncContext:
        """The context for syncing orders: org schema from describe (cached), shop timezone."""
        org = load_org_schema(
            self.salesforce,
            self.org_schema_cache,
            person_record_type=self.settings.mapping.person_account_record_type,
        )
        return SyncContext(
            gateway=self.salesforce,
            store=self.store,
            mapping=self.settings.mapping,
            org=org,
            shop_timezone=self.shop_timezone(),
        )

    @property
    def org_schema_cache(self) -> Path:
        """Where describe results are cached between runs."""
        return self.settings.data_dir / "org_schema.json"

    def note_failure(self, error: SyncError) -> None:
        """Forget the cached org schema when Salesforce says it no longer fits the org."""
        if schema_outdated(error):
            invalidate(self.org_schema_cache)

    def shop_timezone(self) -> str:
        """The configured shop timezone, else the one Shopify reports."""
        zone = self.settings.shop_timezone or self.shopify.shop_info().timezone
        ZoneInfo(zone)  # fail early on a zone this machine's tzdata does not know
        return zone

    def close(self) -> None:
        """Release connections."""
        self.shopify.close()
        self.store.close()


def build_runtime(settings: Settings) -> Runtime:
    """The real adapters for these settings."""
    return Runtime(
        settings=settings,
        store=StateStore.open(settings.state_url),
        salesforce=salesforce_adapter(settings),
        shopify=shopify_adapter(settings),
    )


def salesforce_config(settings: Settings) -> SalesforceConfig:
    """The part of the settings the Salesforce adapter uses."""
    return SalesforceConfig(
        login_url=settings.salesforce_login_url,
        auth_mode=settings.salesforce_auth_mode,
        client_id=settings.salesforce_client_id,
        client_secret=settings.salesforce_client_secret,
        username=settings.salesforce_username,
        password=settings.salesforce_password,
        security_token=settings.salesforce_security_token,
        jwt_private_key_path=settings.salesforce_jwt_private_key_path,
        refresh_token=settings.salesforce_refresh_token,
        api_version=settings.salesforce_api_version,
        timeout_seconds=settings.salesforce_timeout_seconds,
        api_reserve_percent=settings.salesforce_api_reserve_percent,
        duplicate_rule_allow_save=settings.salesforce_duplicate_rule_allow_save,
    )


def shopify_config(settings: Settings) -> ShopifyConfig:
    """The part of the settings the Shopify adapter uses."""
    return ShopifyConfig(
        base_url=settings.shopify_base_url,
        api_version=settings.shopify_api_version,
        auth_mode=settings.shopify_auth_mode,
        access_token=settings.shopify_admin_api_access_token,
        api_key=settings.shopify_api_key,
        api_secret_key=settings.shopify_api_secret_key,
    )


def salesforce_adapter(settings: Settings) -> SimpleSalesforceGateway:
    """The real Salesforce adapter for these settings."""
    return SimpleSalesforceGateway(salesforce_config(settings))


def shopify_adapter(settings: Settings) -> ShopifyClient:
    """The real Shopify adapter for these settings."""
    return ShopifyClient(shopify_config(settings))
