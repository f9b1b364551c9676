"""``shopsync serve --sandbox`` registers the five deployments (issue 8), checked through
Prefect's REST API."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.serving import EXPECTED, serve_sandbox, wait_for_deployments


def test_serve_sandbox_registers_five_deployments_with_forms_and_the_nightly_schedule(
    tmp_path: Path,
) -> None:
    with serve_sandbox(tmp_path) as served:
        found = {d["full_name"]: d for d in wait_for_deployments(served)}
        for name in EXPECTED:
            schema = found[name]["parameter_openapi_schema"]
            assert schema["type"] == "object", name
            assert found[name]["description"], name
        backfill_form = found["reconcile/backfill"]["parameter_openapi_schema"]
        backfill = backfill_form["properties"]
        assert {"start", "end", "dry_run"} <= set(backfill)
        assert set(backfill_form["required"]) == {"start", "end"}  # no dateless backfill
        assert backfill["dry_run"]["default"] is True
        assert "America/New_York" in backfill["start"]["description"]
        assert found["reconcile/backfill"]["parameters"] == {}
        assert "order_id" in found["sync-order/manual"]["parameter_openapi_schema"]["properties"]
        [nightly] = found["reconcile/nightly"]["schedules"]
        assert nightly["schedule"]["cron"] == "30 3 * * *"
        assert nightly["schedule"]["timezone"] == "America/New_York"
        assert "03:30 America/New_York every day" in found["reconcile/nightly"]["description"]
        # the safety net is the due-work watcher plus an hourly schedule, not a run a minute
        assert found["sync-pending-orders/webhook"]["schedules"][0]["schedule"]["interval"] == 3600
        sandbox_env = (tmp_path / ".env.sandbox").read_text()
        for key in ("SHOPIFY_WEBHOOK_SECRET=", "SALESFORCE_CLIENT_SECRET=", "SHOPIFY_ADMIN_URL="):
            assert key in sandbox_env, sandbox_env
        receiver = httpx.get(f"http://127.0.0.1:{served.webhook_port}/healthz")
        assert receiver.json()["status"] == "ok"
