"""The CLI as a new user meets it (issue 14): each trap is a subprocess of the installed
``shopsync`` script, run from a directory whose ``.env`` is the repository's ``.env.example``
filled in for the sandboxes, and each failure is one line, its exit code, and no traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sandbox.salesforce import SalesforceSandbox
from sandbox.server import BackgroundServer, free_port
from tests.integration.conftest import SHOP, SHOP_TOKEN, WEBHOOK_SECRET

REPO = Path(__file__).resolve().parents[2]
SHOPSYNC = str(Path(sys.executable).parent / "shopsync")
CLIENT_ID, CLIENT_SECRET = "traps-client", "traps-secret"


@dataclass
class User:
    """A shell in a fresh directory with a ``.env``; ``run`` types a ``shopsync`` command."""

    home: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [SHOPSYNC, *args],
            cwd=self.home,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        log = (self.home / "serve.log").open("wb")
        return subprocess.Popen(
            [SHOPSYNC, *args],
            cwd=self.home,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal gives it
        )


@pytest.fixture(scope="module")
def org_sandbox() -> Iterator[tuple[SalesforceSandbox, str]]:
    """A Salesforce sandbox that checks the client secret, as a real org does, and its URL."""
    sandbox = SalesforceSandbox(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with BackgroundServer(sandbox.app) as server:
        yield sandbox, server.url


@pytest.fixture
def org(org_sandbox: tuple[SalesforceSandbox, str]) -> str:
    """A fresh org's URL."""
    org_sandbox[0].reset()
    return org_sandbox[1]


def clean_environment(home: Path) -> dict[str, str]:
    prefixes = ("PREFECT_", "SHOPSYNC_", "SHOPIFY_", "SALESFORCE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        {"PREFECT_HOME": str(home / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    )
    return env


@pytest.fixture
def fresh_user(tmp_path: Path) -> User:
    """`cp .env.example .env`, nothing else."""
    (tmp_path / ".env").write_text((REPO / ".env.example").read_text())
    return User(tmp_path, clean_environment(tmp_path))


@pytest.fixture
def user(fresh_user: User, org: str, shopify) -> User:
    """`.env.example` with the sandboxes' values filled in; empty values left as they are."""
    filled = {
        "SHOPIFY_STORE_DOMAIN": SHOP,
        "SHOPIFY_ADMIN_API_ACCESS_TOKEN": SHOP_TOKEN,
        "SHOPIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SALESFORCE_LOGIN_URL": org,
        "SALESFORCE_CLIENT_ID": CLIENT_ID,
        "SALESFORCE_CLIENT_SECRET": CLIENT_SECRET,
        "SHOPSYNC_WEBHOOK_PORT": str(free_port()),
    }
    lines = []
    for line in (fresh_user.home / ".env").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={filled.pop(key)}" if key in filled else line)
    lines += [f"{key}={value}" for key, value in filled.items()]
    lines.append(f"SHOPIFY_ADMIN_URL={shopify.url}")
    (fresh_user.home / ".env").write_text("\n".join(lines) + "\n")
    return fresh_user


def one_line(result: subprocess.CompletedProcess) -> str:
    """The whole output, which must be a single line without a traceback."""
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    assert len(output.splitlines()) == 1, output
    return output


def order_id(shopify) -> str:
    return str(shopify.shop.generator.order_id(0))


# -- .env.example -----------------------------------------------------------------------------


def test_env_example_as_copied_names_only_what_is_missing(fresh_user: User) -> None:
    result = fresh_user.run("config", "check")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "SHOPSYNC_SHOP_TIMEZONE" not in result.stderr  # empty means unset: read from Shopify
    assert "SALESFORCE_CLIENT_SECRET: missing" in result.stderr


def test_config_check_shows_an_empty_secret_as_not_set(user: User) -> None:
    result = user.run("config", "check")
    assert result.returncode == 0, result.stderr
    assert "shopify_api_key = (not set)" in result.stdout  # SHOPIFY_API_KEY= in .env.example
    assert "salesforce_client_secret = ******** (set)" in result.stdout


# -- credentials and connections --------------------------------------------------------------


def test_a_wrong_salesforce_secret_is_one_line_with_the_fix(user: User, shopify) -> None:
    result = user.run("sync-order", order_id(shopify), SALESFORCE_CLIENT_SECRET="wrong")
    assert result.returncode == 1
    line = one_line(result)
    assert "invalid_client" in line
    assert "SALESFORCE_" in line


def test_an_unreachable_salesforce_is_one_line_at_once(user: User) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = user.run("reconcile", SALESFORCE_LOGIN_URL=nowhere, timeout=60)
    assert result.returncode == 1
    line = one_line(result)
    assert "CONNECTION_ERROR" in line
    assert "reachable" in line


def test_an_unreachable_shop_is_one_line_at_once(user: User) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = user.run("dlq", "replay", SHOPIFY_ADMIN_URL=nowhere, timeout=60)
    assert result.returncode == 1
    assert "Shopify" in one_line(result)


def test_sync_order_with_a_non_numeric_id_is_one_line(user: User) -> None:
    result = user.run("sync-order", "abc", timeout=60)
    assert result.returncode == 2
    assert "numeric Shopify order id" in one_line(result)


# -- busy ports -------------------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def other_prefect() -> Iterator[int]:
    """Something answering like a Prefect server (its health endpoint), on its own port."""

    async def health(request):
        return PlainTextResponse("true")

    app = Starlette(routes=[Route("/api/health", health)])
    with BackgroundServer(app) as server:
        yield int(server.url.rsplit(":", 1)[1])


def test_serve_on_a_busy_webhook_port_is_one_line(user: User, busy_port: int) -> None:
    result = user.run("serve", SHOPSYNC_WEBHOOK_PORT=str(busy_port), timeout=60)
    assert result.returncode == 2
    line = one_line(result)
    assert f"port {busy_port}" in line
    assert "SHOPSYNC_WEBHOOK_PORT" in line


def test_serve_does_not_silently_use_another_prefect_server(user: User, other_prefect) -> None:
    result = user.run("serve", "--prefect-port", str(other_prefect), timeout=60)
    assert result.returncode == 2
    line = one_line(result)
    assert "another Prefect server" in line
    assert f"PREFECT_API_URL=http://127.0.0.1:{other_prefect}/api" in line


def test_serve_on_a_port_held_by_another_program_is_one_line(user: User, busy_port) -> None:
    result = user.run("serve", "--prefect-port", str(busy_port), timeout=60)
    assert result.returncode == 2
    assert "--prefect-port" in one_line(result)


# -- serve: other commands report to it; Ctrl-C stops it --------------------------------------


def wait_for_deployment(api: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"shopsync serve exited with {proc.returncode}"
        try:
            if httpx.post(f"{api}/deployments/filter", json={}).json():
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    raise AssertionError("shopsync serve never registered its deployments")


def flow_runs(api: str, flow_name: str) -> list[dict]:
    body = {"flows": {"name": {"any_": [flow_name]}}}
    return httpx.post(f"{api}/flow_runs/filter", json=body).json()


def test_a_command_reports_to_the_running_serve_and_ctrl_c_stops_serve(user: User, shopify) -> None:
    prefect_port = free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    proc = user.start("serve", "--prefect-port", str(prefect_port))
    try:
        wait_for_deployment(api, proc)
        result = user.run("sync-order", order_id(shopify), timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Prefect UI: http://127.0.0.1:{prefect_port} (the running shopsync serve)" in (
            result.stdout
        )
        [run] = [r for r in flow_runs(api, "sync-order") if r["state_type"] == "COMPLETED"]
        assert run["parameters"]["order_id"] == order_id(shopify)

        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/health", timeout=2)  # its Prefect server stopped with it


# -- serve killed (as by a reboot) and started again ------------------------------------------


def wait_for(condition, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_serve_restarted_after_a_kill_crashes_the_dead_run_and_drains_at_once(
    user: User, org: str, org_sandbox, shopify
) -> None:
    prefect_port = free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    env_file = (user.home / ".env").read_text()
    webhook_port = next(
        line.split("=")[1]
        for line in env_file.splitlines()
        if line.startswith("SHOPSYNC_WEBHOOK") and "PORT" in line
    )
    first = user.start("serve", "--prefect-port", str(prefect_port))
    second = None
    try:
        wait_for_deployment(api, first)
        httpx.post(
            f"{org}/__sandbox/faults",
            json={"kind": "latency", "latency": 600, "path": "/composite"},
        ).raise_for_status()
        shop = shopify.shop
        shop.webhooks.subscribe(
            "orders/create", f"http://127.0.0.1:{webhook_port}/webhooks/shopify"
        )
        shop.send_order_events("orders/create", 0, 3)
        assert shop.webhooks.flush(timeout=60)

        def running() -> list[dict]:
            return [
                r for r in flow_runs(api, "sync-pending-orders") if r["state_type"] == "RUNNING"
            ]

        wait_for(running, "a drain stuck in Salesforce")
        [stuck] = running()
        os.killpg(first.pid, signal.SIGKILL)  # the machine goes down
        first.wait()
        wait_for(lambda: not _answers(api), "the dead serve's Prefect server to go")
        httpx.delete(f"{org}/__sandbox/faults").raise_for_status()

        second = user.start("serve", "--prefect-port", str(prefect_port))

        def state_of_stuck() -> str:
            return httpx.get(f"{api}/flow_runs/{stuck['id']}").json()["state_type"]

        wait_for(lambda: state_of_stuck() != "RUNNING", "the restarted serve to settle the run")
        assert state_of_stuck() == "CRASHED"
        opportunities = org_sandbox[0].store.records["Opportunity"]
        wait_for(lambda: len(opportunities) == 3, "the 3 orders in Salesforce")
        assert len({r["External_Shopify_Order_ID__c"] for r in opportunities.values()}) == 3
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _answers(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
