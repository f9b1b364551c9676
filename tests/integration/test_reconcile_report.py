"""What a reconcile run publishes, read back from Prefect (issue 14): the summary names the window
as the shop dates asked for with the shop's timezone and has one ``repaired`` row; the
discrepancy table has each row's outcome (would create in a dry run; failed with the error, then
repaired with the Salesforce ids written, in a real run); the CSV is linked; and the dead letters
of the repair carry the order's name. Both sandboxes over loopback, the Prefect test harness.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flows.outcome import run_flow
from flows.reconcile import backfill, nightly
from state import StateStore
from tasks.reporting.dead_letter_board import board_rows
from tasks.settings import Settings
from tests.integration.conftest import SHOP_TIMEZONE, SalesforceHandle, ShopifyHandle
from tests.integration.test_reconcile import shop_orders, window

OPP = "External_Shopify_Order_ID__c"

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.prefect]


def published(state: Any) -> dict[str, Any]:
    """The artifacts the flow run of ``state`` published, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {artifact.key: artifact for artifact in found if artifact.key}


def repaired_lines(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| repaired")]


def live_orders(shopify: ShopifyHandle) -> list[dict[str, Any]]:
    return [o for o in shop_orders(shopify) if not o.get("cancelled_at")]


def test_a_backfill_publishes_outcomes_ids_and_the_csv_and_names_its_dead_letters(
    product: Settings, shopify: ShopifyHandle, salesforce: SalesforceHandle
) -> None:
    blocked = {str(o["id"]): str(o["name"]) for o in live_orders(shopify)[:2]}
    pattern = "|".join(f"{re.escape(name)} " for name in blocked.values())
    salesforce.rule(object="Opportunity", field="Name", regex=pattern, message="Blocked here")
    start, end = window(shopify)

    dry_state, dry = run_flow(backfill, start=start, end=end, dry_run=True)
    dry_artifacts = published(dry_state)
    summary = dry_artifacts["reconcile-manual"].data
    assert f"**Window:** {start} … {end} ({SHOP_TIMEZONE}) — dry run, nothing written" in summary
    assert repaired_lines(summary) == ["| repaired | 0 (dry run: nothing written) |"]
    planned = json.loads(dry_artifacts["reconcile-discrepancies-manual"].data)
    assert planned
    assert {row["outcome"] for row in planned} == {"would create"}  # an empty org
    assert dry["window"] == f"{start} … {end} ({SHOP_TIMEZONE})"

    state, result = run_flow(backfill, start=start, end=end, dry_run=False)
    assert state.is_failed()
    assert result["dead_lettered"] == 2
    artifacts = published(state)
    summary = artifacts["reconcile-manual"].data
    assert f"**Window:** {start} … {end} ({SHOP_TIMEZONE})" in summary
    assert repaired_lines(summary) == [f"| repaired | {result['repaired']} |"]

    rows = json.loads(artifacts["reconcile-discrepancies-manual"].data)
    failed, rest = rows[:2], rows[2:]
    assert {row["order_id"] for row in failed} == set(blocked)
    for row in failed:
        assert row["outcome"] == "failed"
        assert row["error"].startswith("opportunity: FIELD_CUSTOM_VALIDATION_EXCEPTION: ")
        assert "Blocked here" in row["error"]
        assert row["opportunity_id"] is None
    assert rest
    assert {row["outcome"] for row in rest} == {"repaired"}
    opportunities = {str(r[OPP]): r for r in salesforce.records("Opportunity")}
    for row in rest:
        written = opportunities[row["order_id"]]
        assert row["opportunity_id"] == written["Id"]
        assert row["account_id"] == written["AccountId"]
        assert row["contact_id"] == written.get("ContactId")

    link = artifacts["reconcile-report-csv-manual"].data
    assert Path(result["report_csv"]).resolve().as_uri() in link
    csv = pd.read_csv(result["report_csv"], dtype=str)
    assert len(csv) == result["report_rows"] == result["counts"]["missing"]
    assert set(csv["order_id"].head(2)) == set(blocked)
    assert (csv["outcome"].value_counts().to_dict()) == {
        "repaired": result["repaired"],
        "failed": 2,
    }

    store = StateStore.open(product.state_url)
    try:
        letters = store.dead_letters()
    finally:
        store.close()
    assert {letter.order_id: letter.order_name for letter in letters} == blocked
    assert {row["order"] for row in board_rows(letters)} == set(blocked.values())


def test_a_nightly_report_shows_its_window_in_the_shop_s_local_time(
    product: Settings, shopify: ShopifyHandle
) -> None:
    state, result = run_flow(nightly, dry_run=True)
    label = result["window"]
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d … \d{{4}}-\d\d-\d\d \d\d:\d\d \({SHOP_TIMEZONE}\)", label
    ), label
    assert f"**Window:** {label} — dry run" in published(state)["reconcile-nightly"].data
