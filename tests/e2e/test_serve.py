"""``shopsync serve --sandbox`` registers the five deployments (issue 8), checked through
Prefect's REST API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def deployments(api: str) -> list[dict]:
    flows = {f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={}).json()}
    found = httpx.post(f"{api}/deployments/filter", json={}).json()
    for deployment in found:
        deployment["full_name"] = f"{flows.get(deployment['flow_id'])}/{deployment['name']}"
    return found


def wait_for_deployments(api: str, proc: subprocess.Popen, timeout: float = 240) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"shopsync serve exited with {proc.returncode}"
        try:
            found = deployments(api)
        except (httpx.HTTPError, ValueError):
            found = []
        if {d["full_name"] for d in found} >= EXPECTED:
            return found
        time.sleep(1)
    raise AssertionError(f"deployments never appeared: {[d['full_name'] for d in found]}")


def test_serve_sandbox_registers_five_deployments_with_forms_and_the_nightly_schedule(
    tmp_path: Path,
) -> None:
    prefect_port, webhook_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SHOPSYNC_"))}
    env.update(
        {
            "SHOPSYNC_DATA_DIR": str(tmp_path / "data"),
            "SHOPSYNC_WEBHOOK_PORT": str(webhook_port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
        }
    )
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deployments.cli",
            "serve",
            "--sandbox",
            "--prefect-port",
            str(prefect_port),
        ],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{prefect_port}/api"
    try:
        found = {d["full_name"]: d for d in wait_for_deployments(api, proc)}
        for name in EXPECTED:
            schema = found[name]["parameter_openapi_schema"]
            assert schema["type"] == "object", name
            assert found[name]["description"], name
        backfill = found["reconcile/backfill"]["parameter_openapi_schema"]["properties"]
        assert {"start", "end", "dry_run"} <= set(backfill)
        assert "order_id" in found["sync-order/manual"]["parameter_openapi_schema"]["properties"]
        [nightly] = found["reconcile/nightly"]["schedules"]
        assert nightly["schedule"]["cron"] == "30 3 * * *"
        assert nightly["schedule"]["timezone"] == "America/New_York"
        assert found["sync-pending-orders/webhook"]["schedules"][0]["schedule"]["interval"] == 60
        sandbox_env = (tmp_path / ".env.sandbox").read_text()
        for key in ("SHOPIFY_WEBHOOK_SECRET=", "SALESFORCE_CLIENT_SECRET=", "SHOPIFY_ADMIN_URL="):
            assert key in sandbox_env, sandbox_env
        receiver = httpx.get(f"http://127.0.0.1:{webhook_port}/healthz")
        assert receiver.json()["status"] == "ok"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
