"""``shopsync serve --sandbox`` in a subprocess, as a user starts it (shared by the e2e tests)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from sandbox.server import free_port

EXPECTED = {
    "reconcile/nightly",
    "reconcile/backfill",
    "sync-order/manual",
    "sync-pending-orders/webhook",
    "replay-dead-letters/manual",
}


@dataclass
class Served:
    """The running stack: Prefect API, webhook port and the process's log."""

    proc: subprocess.Popen
    api: str
    webhook_port: int
    log: Path

    @property
    def ui(self) -> str:
        return self.api.removesuffix("/api")

    def sandbox_url(self, which: str) -> str:
        """The URL the serve log printed for ``Salesforce`` or ``Shopify``."""
        found = re.search(rf"{which} sandbox:\s+(\S+)", self.log.read_text())
        assert found, f"no {which} sandbox URL in the serve log"
        return found.group(1)


def deployments(api: str) -> list[dict]:
    flows = {f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={}).json()}
    found = httpx.post(f"{api}/deployments/filter", json={}).json()
    for deployment in found:
        deployment["full_name"] = f"{flows.get(deployment['flow_id'])}/{deployment['name']}"
    return found


def wait_for_deployments(served: Served, timeout: float = 240) -> list[dict]:
    """The five deployments, once ``serve`` has registered them and is serving."""
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline:
        assert served.proc.poll() is None, f"shopsync serve exited with {served.proc.returncode}"
        try:
            found = deployments(served.api)
        except (httpx.HTTPError, ValueError):
            found = []
        if {d["full_name"] for d in found} >= EXPECTED and "being served" in served.log.read_text():
            return found
        time.sleep(1)
    raise AssertionError(f"deployments never appeared: {[d['full_name'] for d in found]}")


@contextmanager
def serve_sandbox(tmp_path: Path, *extra_env: tuple[str, str]) -> Iterator[Served]:
    """Run ``shopsync serve --sandbox`` on free ports until the block ends (then Ctrl-C it)."""
    prefect_port, webhook_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SHOPSYNC_"))}
    env.update(
        {
            "SHOPSYNC_DATA_DIR": str(tmp_path / "data"),
            "SHOPSYNC_WEBHOOK_PORT": str(webhook_port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            **dict(extra_env),
        }
    )
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    command = [sys.executable, "-m", "deployments.cli", "serve", "--sandbox"]
    proc = subprocess.Popen(
        [*command, "--prefect-port", str(prefect_port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield Served(proc, f"http://127.0.0.1:{prefect_port}/api", webhook_port, log_path)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
