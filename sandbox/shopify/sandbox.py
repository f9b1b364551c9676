"""``ShopifySandbox``: one or more shops behind one ASGI app, and ``run`` for the CLI."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .app import build_app
from .config import ShopConfig
from .graphql_api import make_schema
from .render import iso_local
from .shop import Shop
from .webhooks import WebhookConfig


class ShopifySandbox:
    """A Shopify Admin API sandbox serving ``shops`` (the first is the default shop)."""

    def __init__(self, shops: list[ShopConfig] | None = None,
                 webhook_config: WebhookConfig | None = None,
                 monotonic: Callable[[], float] | None = None,
                 wall_clock: Callable[[], float] | None = None) -> None:
        """``monotonic`` drives the leaky buckets and ``wall_clock`` (epoch seconds) the shop
        clocks; both default to the real clocks (tests can also ``advance`` them)."""
        configs = shops or [ShopConfig()]
        self.shops: dict[str, Shop] = {}
        for n, cfg in enumerate(configs, start=1):
            if cfg.domain in self.shops:
                raise ValueError(f"duplicate shop domain {cfg.domain}")
            self.shops[cfg.domain] = Shop(cfg, shop_id=n,
                                          webhook_config=copy.deepcopy(webhook_config),
                                          monotonic=monotonic, wall_clock=wall_clock)
        self.default = next(iter(self.shops.values()))
        self.schema = make_schema([c.currency for c in configs])
        for shop in self.shops.values():
            shop.schema = self.schema
        self.app = build_app(self)

    def shop(self, domain: str | None = None) -> Shop:
        """The shop with ``domain`` (default: the first shop)."""
        if domain is None:
            return self.default
        return self.shops[domain]

    def reset(self) -> None:
        """Reset every shop (see :meth:`Shop.reset`)."""
        for shop in self.shops.values():
            shop.reset()

    def close(self) -> None:
        """Stop webhook workers and delete bulk-operation files."""
        for shop in self.shops.values():
            shop.webhooks.close()
            shop.bulk.close()

    def describe(self, shop: Shop) -> dict[str, Any]:
        """What a client needs to know about a shop (``GET /__sandbox/shop``)."""
        g = shop.generator
        return {
            "domain": shop.domain,
            "access_token": shop.cfg.access_token,
            "client_credentials": shop.client_id is not None,
            "token_ttl_seconds": shop.token_ttl_seconds,
            "redacted": shop.redact_customer_data,
            "scopes": shop.cfg.scopes,
            "plan": shop.cfg.plan,
            "api_version": shop.cfg.api_version,
            "timezone": shop.cfg.timezone,
            "currency": shop.cfg.currency,
            "orders": g.n,
            "seed": g.seed,
            "start": iso_local(g.start_ts, shop.tz),
            "end": iso_local(g.end_ts, shop.tz),
            "first_order_id": g.order_id(0) if g.n else None,
            "last_order_id": g.order_id(g.n - 1) if g.n else None,
            "now": shop.clock.now_dt().isoformat(),
        }


def run(host: str, port: int, shop: str, access_token: str, scopes: list[str], orders: int,
        seed: int, plan: str, webhook_secret: str, client_id: str | None = None,
        client_secret: str | None = None, token_ttl: int = 86399,
        redacted: bool = False) -> None:
    """Serve one sandbox shop in the foreground until interrupted (``shopsync sandbox shopify``)."""
    from sandbox.server import free_port, serve_forever

    if (client_id is None) != (client_secret is None):
        raise ValueError("--client-id and --client-secret go together")
    if token_ttl <= 0:
        raise ValueError("--token-ttl must be positive")
    cfg = ShopConfig(domain=shop, access_token=access_token, scopes=scopes, orders=orders,
                     seed=seed, plan=plan, webhook_secret=webhook_secret, client_id=client_id,
                     client_secret=client_secret, token_ttl_seconds=token_ttl,
                     redact_customer_data=redacted)
    sb = ShopifySandbox(shops=[cfg])
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    banner = (
        f"Shopify sandbox for {shop} at {url}\n"
        f"  shop URL:      {url}  (GraphQL: POST {url}/admin/api/{cfg.api_version}/graphql.json)\n"
        f"  access token:  {access_token}  (scopes: {','.join(scopes)})\n"
        f"  webhook secret: {webhook_secret}; control API: {url}/__sandbox/"
    )
    if client_id:
        banner += (f"\n  client credentials: POST {url}/admin/oauth/access_token "
                   f"(client id {client_id}, tokens live {token_ttl} s)")
    if redacted:
        banner += "\n  protected customer data: redacted (names, e-mails, phones, addresses null)"
    try:
        serve_forever(sb.app, host, port, banner)
    finally:
        sb.close()
