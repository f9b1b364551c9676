"""Org-level Salesforce behaviour (issue 13, point 4): Person Account record types, full error
lists in dead letters, stopping at once on a failed re-login or REQUEST_LIMIT_EXCEEDED,
Retry-After, duplicate rules, and the budget governor at the start of a run. Each test runs the
product against the Salesforce sandbox over loopback."""

from __future__ import annotations

import json

import pytest
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from deployments.cli import app
from flows.sync_order import sync_order

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def cli(product, monkeypatch):
    """Run commands against the session's Prefect harness instead of starting a server."""
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())

    def run(*args: str):
        return CliRunner().invoke(app, list(args))

    return run


def order_ids(shopify, n: int) -> list[str]:
    return [str(shopify.shop.generator.order_id(i)) for i in range(n)]


# -- 13: the full error list -------------------------------------------------------------------


def test_a_dead_letter_keeps_every_error_salesforce_reported(cli, shopify, salesforce) -> None:
    salesforce.rule(object="Opportunity", field="Name", contains="Shopify", message="No shop deals")
    salesforce.rule(
        object="Opportunity", field="Name", regex="[0-9]", message="No digits", error_field="Name"
    )
    assert sync_order(order_ids(shopify, 1)[0])["action"] == "dead_letter"
    letter_id = cli("dlq", "list").output.split()[0].lstrip("#")
    shown = json.loads(cli("dlq", "show", letter_id).output)
    assert shown["error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert shown["errors"] == [
        {
            "code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "No shop deals",
            "fields": [],
            "stage": "opportunity",
        },
        {
            "code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "No digits",
            "fields": ["Name"],
            "stage": "opportunity",
        },
    ]
