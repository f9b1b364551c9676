"""Serve one webhook receiver on 127.0.0.1 with uvicorn, as ``shopsync serve`` does.

    python -m bench.serve_receiver product --port P        # as in serve: + the warm drain's poke
    python -m bench.serve_receiver product-nudge --port P  # as webhooks serve: + the nudger
    python -m bench.serve_receiver floor --port P          # bench.baselines.floor

Settings (secret, shop, data directory) come from the environment (``bench.common.product_env``).
"""

from __future__ import annotations

import argparse
import threading
from typing import Any


def build_app(kind: str) -> Any:
    """The ASGI app of one receiver kind."""
    from tasks.settings import get_settings

    settings = get_settings()
    if kind == "floor":
        from bench.baselines.floor import create_floor_app

        secret = settings.shopify_webhook_secret[0].get_secret_value().encode()
        return create_floor_app(secret, settings.data_dir / "floor.db")
    from webhooks.serve import build_receiver

    if kind == "product-nudge":
        return build_receiver(settings, notify_prefect=True)
    poked = threading.Event()  # what the warm drain's poke does on the request path
    return build_receiver(settings, on_stored=lambda _delivery: poked.set())


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until SIGINT/SIGTERM."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.serve_receiver")
    parser.add_argument("kind", choices=["product", "product-nudge", "floor"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = build_app(args.kind)
    if args.kind != "floor":
        from webhooks.serve import freeze_startup_heap

        freeze_startup_heap()  # as shopsync serve and shopsync webhooks serve do
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
