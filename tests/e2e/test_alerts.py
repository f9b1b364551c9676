"""Issue 14: a drain that dead-letters an order ends Failed, the open dead letters are a table in
the Prefect UI naming the order, replay takes the order's name, and the alert automations deliver
a notification to a webhook (a local HTTP endpoint standing in for Slack or a generic webhook).

A real ``prefect server start`` (not the test harness) runs here: automations need its trigger
and action services.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from deployments.alerts import save_webhook_block, setup_alerts
from flows.outcome import run_flow
from flows.replay import replay_dead_letters
from flows.sync_pending import sync_pending_orders
from sandbox.server import BackgroundServer
from state import StateStore
from tasks.reporting.dead_letter_board import ARTIFACT_KEY
from tasks.reporting.drain_report import ARTIFACT_KEY as DRAIN_REPORT

RULE = {"object": "Opportunity", "field": "Name", "contains": "Shopify", "message": "Blocked"}


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A full local Prefect server (with its automation services), used by this module only."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.local import prefect_server

    # The event worker is a process-wide singleton bound to the API it first talked to: one left
    # from an earlier module (the session's harness, under xdist) would send this module's task
    # runs there. Drain it so the next event starts a worker bound to this server.
    drain_prefect_workers()
    with (
        prefect_server(tmp_path_factory.mktemp("prefect"), port=0) as url,
        temporary_settings({PREFECT_API_URL: url}),
    ):
        yield url
        drain_prefect_workers()  # while this server is up: a later harness must not wait on it


def drain_prefect_workers() -> None:
    """Flush the log and event workers that talk to this module's server (as the harness does)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(RuntimeError):  # never started
        APILogWorker.instance().drain()
    EventsWorker.drain_all()


@pytest.fixture
def alert_inbox() -> Iterator[tuple[str, list[dict]]]:
    """A local webhook endpoint that keeps every JSON body it receives."""
    received: list[dict] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(json.loads(await request.body() or b"{}"))
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with BackgroundServer(app) as server:
        yield f"{server.url}/hook", received


def dead_letter_two_orders(shopify, salesforce) -> list[str]:
    salesforce.rule(**RULE)
    shop = shopify.shop
    assert shop.send_order_events("orders/create", 0, 2) == 2
    assert shop.webhooks.flush(timeout=60)
    return [shop.rest(shop.store.get(shop.generator.order_id(i)))["name"] for i in range(2)]


def latest(api: str, key: str) -> dict:
    found = httpx.post(
        f"{api}/artifacts/latest/filter", json={"artifacts": {"key": {"any_": [key]}}}
    ).json()
    assert found, f"no {key} artifact"
    return found[0]


def board(api: str) -> dict:
    return latest(api, ARTIFACT_KEY)


def test_a_drain_that_dead_letters_fails_publishes_the_board_and_alerts_the_webhook(
    prefect_api: str,
    alert_inbox: tuple[str, list[dict]],
    receiver: str,
    shopify,
    salesforce,
    store: StateStore,
    tmp_path: Path,
) -> None:
    url, received = alert_inbox
    block = save_webhook_block(url)
    setup_alerts(block)
    setup_alerts(block)  # idempotent: updated, not doubled
    automations = httpx.post(f"{prefect_api}/automations/filter", json={}).json()
    assert sorted(a["name"] for a in automations) == [
        "shopsync: dead letters added",
        "shopsync: nightly reconcile missed",
        "shopsync: run failed",
        "shopsync: run held",
    ]
    names = dead_letter_two_orders(shopify, salesforce)

    state, result = run_flow(sync_pending_orders, max_seconds=60, batch_size=50, lease_seconds=30)

    assert result["outcomes"] == {"dead_letter": 2}
    assert state.is_failed()
    assert state.message == "2 of 2 orders dead-lettered: FIELD_CUSTOM_VALIDATION_EXCEPTION ×2"
    runs = httpx.post(f"{prefect_api}/flow_runs/filter", json={}).json()
    [drain] = [run for run in runs if run["name"] == "drain"]
    assert drain["state"]["type"] == "FAILED"
    table = json.loads(board(prefect_api)["data"])
    assert sorted(row["order"] for row in table) == sorted(names)
    assert all("Blocked" in row["error"] for row in table)
    # Task runs reach the server as events, a moment after the flow returns on a busy machine.
    wanted = {f"dead-letter {name}" for name in names}
    deadline = time.monotonic() + 60
    while True:
        tasks = httpx.post(f"{prefect_api}/task_runs/filter", json={}).json()
        parked = {t["name"]: t["state"] for t in tasks if t["name"].startswith("dead-letter ")}
        settled = all(state["type"] == "FAILED" for state in parked.values())
        if (set(parked) == wanted and settled) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(parked) == wanted
    for name in names:
        message = parked[f"dead-letter {name}"]["message"]
        assert parked[f"dead-letter {name}"]["type"] == "FAILED"
        assert f"order {name} is dead letter " in message
        assert message.endswith(f"run replay-dead-letters/manual with '{name}'")
    report = latest(prefect_api, DRAIN_REPORT)
    assert report["description"] == state.message
    assert all(f"| {name} | FIELD_CUSTOM_VALIDATION_EXCEPTION" in report["data"] for name in names)
    texts = wait_for_alerts(received, {"dead-lettered", "Failed"})
    assert any("FIELD_CUSTOM_VALIDATION_EXCEPTION" in text for text in texts), texts


def test_replay_by_order_name_resolves_the_dead_letter_and_empties_the_board(
    prefect_api: str,
    receiver: str,
    shopify,
    salesforce,
    store: StateStore,
) -> None:
    names = dead_letter_two_orders(shopify, salesforce)
    run_flow(sync_pending_orders, max_seconds=60, batch_size=50, lease_seconds=30)
    salesforce.clear_rules()

    state, result = run_flow(replay_dead_letters, orders=[names[0]])

    assert state.is_completed(), state.message
    assert result["replayed"] == 1
    assert [letter.order_id for letter in store.dead_letters()] == [
        str(shopify.shop.generator.order_id(1))
    ]
    assert [row["order"] for row in json.loads(board(prefect_api)["data"])] == [names[1]]
    state = replay_dead_letters(orders=["#no-such-order"], return_state=True)
    assert state.is_failed()
    assert "#no-such-order" in state.message


def wait_for_alerts(received: list[dict], words: set[str], timeout: float = 120) -> list[str]:
    """The alert texts once every word has appeared in one of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = [f"{body.get('subject')} {body.get('text')}" for body in received]
        if all(any(word in text for text in texts) for word in words):
            return texts
        time.sleep(1)
    raise AssertionError(f"alerts never arrived with {words}: {received}")
