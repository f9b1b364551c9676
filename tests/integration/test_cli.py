"""The ``shopsync`` commands that run flows, against both sandboxes and the Prefect harness."""

from __future__ import annotations

import json
import re

import pytest

from flows.outcome import run_flow
from flows.sync_order import sync_order
from tests.integration.conftest import order_ids

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_dlq_replay_after_the_cause_is_removed_syncs_and_resolves(cli, shopify, salesforce) -> None:
    salesforce.rule(object="Opportunity", field="Name", contains="Shopify", message="Blocked")
    ids = order_ids(shopify, 3)
    for order_id in ids:
        assert run_flow(sync_order, order_id=order_id)[1]["action"] == "dead_letter"
    listed = cli("dlq", "list")
    assert listed.exit_code == 0
    assert listed.output.count("FIELD_CUSTOM_VALIDATION_EXCEPTION") == 3
    for order_id in ids:  # a sync-order dead letter knows its order's name
        assert re.search(rf"order #\d+ \({order_id}\)", listed.output), listed.output
    shown = cli("dlq", "show", listed.output.split()[0].lstrip("#"))
    assert json.loads(shown.output)["message"].endswith("Blocked")

    still = cli("dlq", "replay")
    assert still.exit_code == 1  # the rule is still there
    salesforce.clear_rules()
    replay = cli("dlq", "replay")
    assert replay.exit_code == 0, replay.output
    assert json.loads(replay.output)["replayed"] == 3
    assert cli("dlq", "list").output.strip() == "no dead letters"
    synced = {r["External_Shopify_Order_ID__c"] for r in salesforce.records("Opportunity")}
    assert synced == set(ids)


def test_dlq_resolve_closes_by_hand(cli, shopify, salesforce) -> None:
    salesforce.rule(object="Opportunity", field="Name", contains="Shopify", message="Blocked")
    run_flow(sync_order, order_id=order_ids(shopify, 1)[0])
    letter_id = cli("dlq", "list").output.split()[0].lstrip("#")
    assert cli("dlq", "resolve", letter_id).exit_code == 0
    assert cli("dlq", "list").output.strip() == "no dead letters"


def test_sync_order_command(cli, shopify) -> None:
    result = cli("sync-order", order_ids(shopify, 1)[0], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["action"] == "created"


def test_sync_order_command_refuses_a_gid(cli) -> None:
    result = cli("sync-order", "gid://shopify/Order/1")
    assert result.exit_code == 2
    assert "numeric Shopify order id" in result.output


def test_status_shows_the_inbox_dead_letters_and_api_usage(cli, shopify) -> None:
    sync_order(order_ids(shopify, 1)[0])
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert "dead letters open: 0" in result.output
    assert "orders in the ledger: 1" in result.output
    assert "salesforce api usage:" in result.output


def test_reconcile_command_rejects_half_a_window(cli) -> None:
    result = cli("reconcile", "--start", "2026-01-01")
    assert result.exit_code == 2
    assert "give both --start and --end" in result.output


def test_sync_order_of_a_dead_lettered_order_is_one_line_and_exit_1(cli, shopify, salesforce):
    salesforce.rule(object="Opportunity", field="Name", contains="Shopify", message="Blocked")
    result = cli("sync-order", order_ids(shopify, 1)[0])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if not line.startswith("Prefect UI")]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("sync-order: 1 of 1 orders dead-lettered: FIELD_CUSTOM_VALIDATION")
    assert "is dead letter" in lines[0]
    assert "Traceback" not in result.output
