"""Local stacks for ``shopsync serve --sandbox``, ``shopsync sandbox`` and ``shopsync demo``:
both sandboxes wired together, and a Prefect server when none is configured."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from deployments.background import LOOPBACK, BackgroundServer, free_port
from deployments.sandbox_access import require_sandbox

if TYPE_CHECKING:  # the sandbox is imported when a stack starts (not in the wheel)
    from sandbox.salesforce import SalesforceSandbox
    from sandbox.shopify import ShopifySandbox

SANDBOX_SHOP = "sandbox-shop.myshopify.com"
SANDBOX_TOKEN = "shpat_sandbox"  # noqa: S105 - the local sandbox's, not a real secret
SANDBOX_WEBHOOK_SECRET = "sandbox-webhook-secret"  # noqa: S105 - sandbox only
SANDBOX_TIMEZONE = "America/New_York"
SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - sandbox only
DEMO_MIX: dict[str, Any] = {  # the generated shop's StoreMix
    "repeat_customers": 0.3,
    "guest_checkouts": 0.1,
    "with_company": 0.2,
    "cancelled": 0.05,
    "refunded": 0.08,
    "non_ascii_names": 0.1,
    "long_names": 0.02,
}


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
            "SALESFORCE_CLIENT_ID": SANDBOX_CLIENT_ID,
            "SALESFORCE_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
            "SHOPIFY_ADMIN_URL": self.shopify_url,
            "SHOPIFY_STORE_DOMAIN": SANDBOX_SHOP,
            "SHOPIFY_ADMIN_API_ACCESS_TOKEN": SANDBOX_TOKEN,
            "SHOPIFY_WEBHOOK_SECRET": SANDBOX_WEBHOOK_SECRET,
        }


@contextmanager
def sandbox_stack(
    *, orders: int = 300, days: int = 30, salesforce_port: int = 0, shopify_port: int = 0
) -> Iterator[SandboxStack]:
    """Serve a Salesforce org and a generated shop on loopback until the block ends.

    Raises ``SandboxUnavailable`` (one line naming the fix) outside a clone of the repository.
    """
    require_sandbox("shopsync")
    from sandbox.salesforce import SalesforceSandbox
    from sandbox.shopify import ShopConfig, ShopifySandbox, StoreMix

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
        mix=StoreMix(**DEMO_MIX),
    )
    salesforce = SalesforceSandbox(client_id=SANDBOX_CLIENT_ID, client_secret=SANDBOX_CLIENT_SECRET)
    shopify = ShopifySandbox(shops=[shop])
    with (
        BackgroundServer(salesforce.app, port=salesforce_port) as sf_server,
        BackgroundServer(shopify.app, port=shopify_port) as shop_server,
    ):
        yield SandboxStack(salesforce, shopify, sf_server.url, shop_server.url)
    shopify.close()


@contextmanager
def prefect_server(home: Path, port: int = 4200, database_url: str | None = None) -> Iterator[str]:
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
    process = subprocess.Popen(  # noqa: S603
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Ctrl-C reaches the whole foreground group: the server must outlive the runs that still
        # report to it, so it gets its own session and is stopped last, by us (finally below).
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    try:
        _wait_healthy(url, process, home / "server.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, even by SIGKILL (Linux), so no Prefect
    server outlives a killed ``shopsync`` command."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class PrefectServerFailed(Exception):
    """The local Prefect server exited or never became healthy (the message names its log)."""


def _wait_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 240
) -> None:
    # A few seconds on an idle machine; 80-100 s (its database migrations) were measured on a
    # 2-core machine at load 12. A server that dies is reported at once, not after the wait.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PrefectServerFailed(
                f"the local Prefect server exited with {process.returncode}; its log: {log}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise PrefectServerFailed(
        f"the local Prefect server at {url} did not become healthy in {timeout:.0f} s (its log: "
        f"{log}); on a busy machine retry, or set PREFECT_API_URL to a running Prefect server"
    )


class PortBusy(Exception):
    """A port shopsync wants to listen on is taken; the message says by what and what to do."""


def port_is_free(host: str, port: int) -> bool:
    """Can a server bind ``host:port`` right now?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def is_prefect_server(url: str) -> bool:
    """Does a Prefect server answer at this API URL?"""
    try:
        response = httpx.get(f"{url}/health", timeout=2)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text.strip() == "true"


def check_prefect_port(port: int) -> None:
    """Raise ``PortBusy`` when the local Prefect server's port is taken (by Prefect or not)."""
    if not port or port_is_free(LOOPBACK, port):
        return
    url = f"http://{LOOPBACK}:{port}/api"
    if is_prefect_server(url):
        raise PortBusy(
            f"port {port} is taken by another Prefect server; to use it, set "
            f"PREFECT_API_URL={url}; to start a separate one, pass --prefect-port <free port>"
        )
    raise PortBusy(
        f"port {port} (Prefect server) is in use by another program; "
        "pass --prefect-port <free port>"
    )


def check_webhook_port(host: str, port: int) -> None:
    """Raise ``PortBusy`` when the webhook receiver's port is taken."""
    if port and not port_is_free(host, port):
        raise PortBusy(
            f"port {port} (webhook receiver) is in use by another program, perhaps another "
            "`shopsync serve`; stop it or set SHOPSYNC_WEBHOOK_PORT to a free port"
        )
