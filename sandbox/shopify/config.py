"""Configuration of a sandbox shop: the generated store's mix and the plan's limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class StoreMix:
    """Fractions (0..1) of generated orders that exercise each edge case (research §4)."""

    repeat_customers: float = 0.3
    guest_checkouts: float = 0.1
    with_company: float = 0.15
    cancelled: float = 0.05
    refunded: float = 0.08
    fully_refunded_share: float = 0.4
    edited: float = 0.2
    test_orders: float = 0.02
    non_ascii_names: float = 0.1
    long_names: float = 0.02
    long_name_length: int = 300
    presentment_currency_differs: float = 0.1
    closed: float = 0.6
    default_address_without_names: float = 0.1
    missing_default_address: float = 0.05
    max_edit_delay_seconds: int = 3 * 24 * 3600


@dataclass(frozen=True)
class PlanLimits:
    """Throttling of one plan: GraphQL leaky bucket (points) and REST leaky bucket (calls)."""

    graphql_bucket: float
    graphql_restore_rate: float
    rest_bucket: int
    rest_leak_rate: float


PLANS: dict[str, PlanLimits] = {
    "basic": PlanLimits(2000.0, 100.0, 40, 2.0),
    "advanced": PlanLimits(4000.0, 200.0, 40, 4.0),
    "plus": PlanLimits(20000.0, 1000.0, 400, 20.0),
    "enterprise": PlanLimits(40000.0, 2000.0, 800, 40.0),
}

PLAN_DISPLAY_NAMES = {
    "basic": "Basic",
    "advanced": "Advanced",
    "plus": "Shopify Plus",
    "enterprise": "Commerce Components",
}

MAX_SINGLE_QUERY_COST = 1000
READ_ALL_ORDERS_WINDOW = timedelta(days=60)


def _default_end() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class ShopConfig:
    """One sandbox shop.

    ``start``/``end`` bound the generated orders' ``created_at`` (defaults: the last 180 days up
    to construction time). ``limits`` overrides the plan's throttling (see :data:`PLANS`).
    With ``client_id``/``client_secret`` set, ``POST /admin/oauth/access_token`` issues tokens by
    the client credentials grant (research §3) that expire after ``token_ttl_seconds`` of shop
    time; ``access_token`` stays valid too.  ``redact_customer_data`` serves names, emails,
    phones and street addresses as null everywhere, as for an app without protected customer
    data (Level 2) approval (research §3).
    """

    domain: str = "sandbox-shop.myshopify.com"
    access_token: str = "shpat_sandbox"
    scopes: list[str] = field(
        default_factory=lambda: ["read_orders", "read_customers", "read_all_orders"]
    )
    orders: int = 1000
    seed: int = 1
    plan: str = "basic"
    webhook_secret: str = "sandbox-webhook-secret"
    timezone: str = "America/New_York"
    currency: str = "USD"
    start: datetime | None = None
    end: datetime | None = None
    mix: StoreMix = field(default_factory=StoreMix)
    name: str | None = None
    api_version: str = "2026-10"
    limits: PlanLimits | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_ttl_seconds: int = 86399
    redact_customer_data: bool = False

    def resolved_window(self) -> tuple[datetime, datetime]:
        """The (start, end) of generated ``created_at`` values, both timezone-aware."""
        end = self.end or _default_end()
        start = self.start or end - timedelta(days=180)
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("ShopConfig.start and .end must be timezone-aware")
        if end <= start:
            raise ValueError("ShopConfig.end must be after .start")
        return start, end

    def plan_limits(self) -> PlanLimits:
        """The throttling limits in force for this shop."""
        if self.limits is not None:
            return self.limits
        try:
            return PLANS[self.plan]
        except KeyError as exc:
            raise ValueError(f"unknown plan {self.plan!r}; one of {sorted(PLANS)}") from exc
