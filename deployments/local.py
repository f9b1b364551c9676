"""Local stacks for ``shopsync serve --sandbox``, ``shopsync sandbox`` and ``shopsync demo``:
both sandboxes wired together, and a Prefect server when none is configured."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from sandbox.salesforce import SalesforceSandbox
from sandbox.server import BackgroundServer, free_port
from sandbox.shopify import ShopConfig, ShopifySandbox, StoreMix

SANDBOX_SHOP = "sandbox-shop.myshopify.com"
SANDBOX_TOKEN = "shpat_sandbox"  # noqa: S105 - the local sandbox's, not a real secret
SANDBOX_WEBHOOK_SECRET = "sandbox-webhook-secret"  # noqa: S105 - sandbox only
SANDBOX_TIMEZONE = "America/New_York"
DEMO_MIX = StoreMix(
    repeat_customers=0.3,
    guest_checkouts=0.1,
    with_company=0.2,
    cancelled=0.05,
    refunded=0.08,
    non_ascii_names=0.1,
    long_names=0.02,
)


@dataclass
class SandboxStack:
    """Both sandboxes, serving on loopback."""

    salesforce: SalesforceSandbox
    shopify: ShopifySandbox
    salesforce_url: str
    shopify_url: str

    def product_env(self) -> dict[str, str]:
        """The settings that point the product at these sandboxes."""
        return {
            "SALESFORCE_LOGIN_URL": self.salesforce_url,
            "SALESFORCE_AUTH_MODE": "client_credentials",
            "SALESFORCE_CLIENT_ID": "sandbox-client",
            "SALESFORCE_CLIENT_SECRET": "sandbox-secret",
            "SHOPIFY_ADMIN_URL": self.shopify_url,
            "SHOPIFY_STORE_DOMAIN": SANDBOX_SHOP,
            "SHOPIFY_ADMIN_API_ACCESS_TOKEN": SANDBOX_TOKEN,
            "SHOPIFY_WEBHOOK_SECRET": SANDBOX_WEBHOOK_SECRET,
        }


@contextmanager
def sandbox_stack(
    *, orders: int = 300, days: int = 30, salesforce_port: int = 0, shopify_port: int = 0
) -> Iterator[SandboxStack]:
    """Serve a Salesforce org and a generated shop on loopback until the block ends."""
    end = datetime.now(UTC) - timedelta(hours=1)
    shop = ShopConfig(
        domain=SANDBOX_SHOP,
        access_token=SANDBOX_TOKEN,
        orders=orders,
        seed=2026,
        plan="plus",
        webhook_secret=SANDBOX_WEBHOOK_SECRET,
        timezone=SANDBOX_TIMEZONE,
        start=end - timedelta(days=days),
        end=end,
        mix=DEMO_MIX,
    )
    salesforce = SalesforceSandbox()
    shopify = ShopifySandbox(shops=[shop])
    with (
        BackgroundServer(salesforce.app, port=salesforce_port) as sf_server,
        BackgroundServer(shopify.app, port=shopify_port) as shop_server,
    ):
        yield SandboxStack(salesforce, shopify, sf_server.url, shop_server.url)
    shopify.close()


@contextmanager
def prefect_server(
    home: Path, port: int = 4200, database_url: str | None = None
) -> Iterator[str]:
    """Start ``prefect server start`` on loopback; yield its API URL; stop it afterwards.

    ``database_url``: the server's database (e.g. ``postgresql+asyncpg://…``); default SQLite in
    ``home``.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # the UI in the browser calls this API: without it the UI asks port 4200 whatever --port
        "PREFECT_UI_API_URL": url,
    }
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    env.pop("PREFECT_API_URL", None)
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "server.log").open("ab")
    command = [
        sys.executable,
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        _wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the Prefect server at {url} did not become healthy in {timeout:.0f} s")
