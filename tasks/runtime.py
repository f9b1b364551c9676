"""Wiring: build the real adapters and the sync context from the settings, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from state import StateStore
from tasks.core.errors import SyncError
from tasks.salesforce import SalesforceGateway, SimpleSalesforceGateway
from tasks.salesforce.errors import schema_outdated
from tasks.salesforce.org import invalidate, load_org_schema
from tasks.settings import Settings
from tasks.shopify.client import ShopifyClient
from tasks.sync import SyncContext


@dataclass(frozen=True, slots=True)
class Runtime:
    """The adapters one flow run uses."""

    settings: Settings
    store: StateStore
    salesforce: SalesforceGateway
    shopify: ShopifyClient

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
        salesforce=SimpleSalesforceGateway(settings),
        shopify=ShopifyClient(settings),
    )
