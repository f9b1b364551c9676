"""The Prefect UI, in a real browser, shows an operator the failure (issue 14).

``shopsync serve --sandbox`` runs; a Salesforce validation rule makes the webhook drain
dead-letter an order. Chromium (Debian's package, driven by Playwright) then checks that the run
list shows that drain as Failed, that the ``shopsync-dead-letters`` artifact names the order, and
that the backfill form has ``dry_run`` on by default. Screenshots go to ``test-artifacts/ui/``.

Without chromium or the playwright package the test is skipped with the reason, except in CI
(``.ci/run`` sets SHOPSYNC_REQUIRE_BROWSER=1), where it fails.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tasks.reporting.dead_letter_board import ARTIFACT_KEY
from tests.e2e.serving import Served, serve_sandbox, wait_for_deployments

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
RULE = {"object": "Opportunity", "field": "Name", "contains": "Shopify", "message": "Blocked"}


def require_browser() -> None:
    """Skip (locally) or fail (in CI) when the browser cannot run."""
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright package is missing: pip install -e '.[dev]'"
    if reason is None and not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium (Debian's package)"
    if reason is None:
        return
    if os.environ.get("SHOPSYNC_REQUIRE_BROWSER") or os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def dead_letter_one_order(served: Served) -> None:
    """A rule that rejects every Opportunity, and one order created in the shop."""
    salesforce, shopify = served.sandbox_url("Salesforce"), served.sandbox_url("Shopify")
    httpx.post(f"{salesforce}/__sandbox/validation-rules", json=RULE).raise_for_status()
    replay = {"topic": "orders/create", "start": 0, "count": 1}
    httpx.post(f"{shopify}/__sandbox/webhooks/replay", json=replay).raise_for_status()


def wait_for_failed_drain(api: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = httpx.post(f"{api}/flow_runs/filter", json={}).json()
        failed = [r for r in runs if r["name"] == "drain" and r["state"]["type"] == "FAILED"]
        if failed:
            return failed[0]
        time.sleep(1)
    raise AssertionError(f"no failed drain run: {[(r['name'], r['state_type']) for r in runs]}")


def latest_board(api: str) -> dict[str, Any]:
    found = httpx.post(
        f"{api}/artifacts/latest/filter", json={"artifacts": {"key": {"any_": [ARTIFACT_KEY]}}}
    ).json()
    assert found, "no shopsync-dead-letters artifact"
    return found[0]


@pytest.mark.slow
def test_the_ui_shows_the_failed_drain_the_dead_letter_and_a_safe_backfill_form(
    tmp_path: Path,
) -> None:
    require_browser()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with serve_sandbox(tmp_path) as served:
        deployments = {d["full_name"]: d for d in wait_for_deployments(served)}
        dead_letter_one_order(served)
        drain = wait_for_failed_drain(served.api)
        assert drain["state"]["message"].endswith(
            "dead-lettered: FIELD_CUSTOM_VALIDATION_EXCEPTION ×1"
        )
        board = latest_board(served.api)
        [row] = json.loads(board["data"])
        order = row["order"]
        assert order.startswith("#")
        backfill = deployments["reconcile/backfill"]["id"]

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            try:
                page.goto(f"{served.ui}/runs")
                failed_row = page.locator(".state-list-item", has_text="drain").filter(
                    has=page.locator(".state--failed")
                )
                failed_row.first.wait_for(timeout=60_000)
                page.screenshot(path=SCREENSHOTS / "runs.png", full_page=True)
                assert "Failed" in failed_row.first.inner_text()

                page.goto(f"{served.ui}/artifacts/artifact/{board['latest_id']}")
                page.get_by_text(order, exact=True).first.wait_for(timeout=60_000)
                page.screenshot(path=SCREENSHOTS / "dead-letters.png", full_page=True)
                body = page.inner_text("body")
                assert "FIELD_CUSTOM_VALIDATION_EXCEPTION: Blocked" in body
                assert f"replay-dead-letters/manual with '{order}'" in body

                page.goto(f"{served.ui}/deployments/deployment/{backfill}/run")
                dry_run = page.locator(".schema-form-property", has_text="dry_run").locator(
                    "[role=switch]"
                )
                dry_run.wait_for(timeout=60_000)
                page.screenshot(path=SCREENSHOTS / "backfill-form.png", full_page=True)
                assert dry_run.get_attribute("aria-checked") == "true"
                assert "America/New_York" in page.inner_text("body")
            finally:
                browser.close()
