"""Shopify Admin API sandbox: GraphQL + REST orders over a lazily generated store, cost
throttling, bulk operations, a Shopify-like webhook sender and a ``/__sandbox/`` control API.

Written from ``docs/research/shopify.md`` only; imports nothing from the product.

    from sandbox.shopify import ShopifySandbox, ShopConfig, StoreMix, run
"""

from .config import PLANS, PlanLimits, ShopConfig, StoreMix
from .sandbox import ShopifySandbox, run
from .shop import Shop
from .webhooks import WebhookConfig, sign

__all__ = ["PLANS", "PlanLimits", "Shop", "ShopConfig", "ShopifySandbox", "StoreMix",
           "WebhookConfig", "run", "sign"]
