"""Launch a sandbox in its own process for the benchmarks.

    python -m bench.sandboxes salesforce --port P
    python -m bench.sandboxes shopify --port P --orders N [--days D] [--seed S]

The Shopify shop is on the Plus plan with the default store mix (30 % repeat customers), its
orders created between ``now - 1 h - D days`` and ``now - 1 h`` in America/New_York, and it signs
webhooks with :data:`bench.common.WEBHOOK_SECRET`. Both serve on 127.0.0.1 until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import UTC, datetime, timedelta


def _terminate_on_sigterm() -> None:
    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def serve_salesforce(port: int) -> None:
    """Serve a fresh Salesforce org (100 million API calls a day: the limit never bites)."""
    from sandbox.salesforce import run

    run(host="127.0.0.1", port=port, api_limit=100_000_000)


def serve_shopify(port: int, orders: int, days: int, seed: int) -> None:
    """Serve one generated Plus shop."""
    from bench.common import SHOP, SHOP_TIMEZONE, SHOP_TOKEN, WEBHOOK_SECRET
    from sandbox.server import serve_forever
    from sandbox.shopify import ShopConfig, ShopifySandbox, StoreMix

    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    config = ShopConfig(
        domain=SHOP,
        access_token=SHOP_TOKEN,
        orders=orders,
        seed=seed,
        plan="plus",
        webhook_secret=WEBHOOK_SECRET,
        timezone=SHOP_TIMEZONE,
        start=end - timedelta(days=days),
        end=end,
        mix=StoreMix(repeat_customers=0.3),
    )
    sandbox = ShopifySandbox(shops=[config])
    try:
        serve_forever(sandbox.app, "127.0.0.1", port, f"Shopify sandbox on {port}")
    finally:
        sandbox.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(prog="python -m bench.sandboxes")
    sub = parser.add_subparsers(dest="kind", required=True)
    sf = sub.add_parser("salesforce")
    sf.add_argument("--port", type=int, required=True)
    shop = sub.add_parser("shopify")
    shop.add_argument("--port", type=int, required=True)
    shop.add_argument("--orders", type=int, default=1000)
    shop.add_argument("--days", type=int, default=20)
    shop.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    _terminate_on_sigterm()
    try:
        if args.kind == "salesforce":
            serve_salesforce(args.port)
        else:
            serve_shopify(args.port, args.orders, args.days, args.seed)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
