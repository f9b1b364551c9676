"""``shopsync status`` prints tables (inbox by status, open dead letters with their order names,
recent runs with outcome and message) and ``shopsync reconcile`` ends with one human line, or
JSON with ``--json`` (issue 14). Subprocesses, as a user types them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx

from sandbox.salesforce import SalesforceSandbox
from state import StateStore
from state.db import sqlite_url
from tests.e2e import test_cli_traps as traps
from tests.e2e.test_cli_traps import User

# The CLI traps' fixtures: a fresh directory whose .env is .env.example filled in for the sandboxes.
org_sandbox, org, fresh_user, user = traps.org_sandbox, traps.org, traps.fresh_user, traps.user


def test_status_tables_and_the_reconcile_line(
    user: User, shopify, org_sandbox: tuple[SalesforceSandbox, str]
) -> None:
    url = org_sandbox[1]
    httpx.post(
        f"{url}/__sandbox/validation-rules",
        json={"object": "Opportunity", "field": "Name", "regex": ".*", "message": "closed books"},
    ).raise_for_status()
    order_id = traps.order_id(shopify)
    try:
        refused = user.run("sync-order", order_id)
    finally:
        httpx.delete(f"{url}/__sandbox/validation-rules").raise_for_status()
    assert refused.returncode == 1, refused.stdout + refused.stderr
    # the run ended Failed, and the command says so in one line (stdout: only where the UI is)
    why = [line for line in refused.stderr.splitlines() if line.startswith("sync-order: ")]
    assert len(why) == 1, refused.stderr
    why = why[0]
    assert why.startswith("sync-order: 1 of 1 orders dead-lettered: FIELD_CUSTOM_VALIDATION"), why
    assert "Traceback" not in refused.stderr, refused.stderr
    assert [line for line in refused.stdout.splitlines() if not line.startswith("Prefect UI")] == []

    today = str(datetime.now(UTC).date())
    window = ("--start", today, "--end", today, "--dry-run")
    run = user.run("reconcile", *window)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith("Prefect UI: "), lines
    assert len(lines) == 2, lines
    line = lines[1]
    assert re.match(
        rf"reconcile run #1 manual {today} … {today} \([A-Za-z_/]+\): ok \(dry run: nothing "
        r"written\) — ",
        line,
    ), line
    assert "Shopify orders" in line
    # off a terminal the progress is plain lines on stderr, and nothing prints a raw dict
    assert "listing Shopify orders …" in run.stderr, run.stderr
    assert "comparing with Salesforce: " in run.stderr, run.stderr
    assert "{'" not in run.stdout + run.stderr, run.stderr
    scripted = user.run("reconcile", *window, "--json")
    assert json.loads(scripted.stdout)["run_id"] == 2

    # A webhook's dead letter keeps the payload, and with it the order's name.
    store = StateStore.open(sqlite_url(user.home / "data"))
    try:
        store.add_dead_letter(
            "820982911946154508",
            source="webhook",
            stage="account",
            message="Name: required field missing",
            error_code="REQUIRED_FIELD_MISSING",
            payload=json.dumps({"id": 820982911946154508, "name": "#9999"}).encode(),
        )
    finally:
        store.close()

    status = user.run("status", "--no-salesforce")
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert "open dead letters" in out
    letter = [row for row in out.splitlines() if order_id in row]
    assert len(letter) == 1, out
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in letter[0]
    shop = shopify.shop
    name = shop.rest(shop.store.get(int(order_id)))["name"]
    assert letter[0].split()[1:3] == [name, order_id], letter[0]  # sync-order knew its name
    [named] = [row for row in out.splitlines() if "820982911946154508" in row]
    assert named.split()[1:3] == ["#9999", "820982911946154508"], named
    assert "recent reconcile runs" in out
    runs = [row.split() for row in out.splitlines() if re.match(r"\s*#[12] ", row)]
    assert [row[0] for row in runs] == ["#2", "#1"], out
    assert all("ok" in row for row in runs), out
