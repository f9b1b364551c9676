"""No secret value in any log of a full run (issue 10; DESIGN.md non-negotiable: secrets never
logged).

One run goes through everything that logs: the receiver (in-process and as a CLI subprocess),
webhooks, the drain with a 401 mid-run (re-authentication) and a validation rule (dead letters),
a replay, the ``sync-order`` flow, and the CLI commands that print settings, dead letters
and ``doctor``. Captured: every Python log record at DEBUG (root and Prefect's own
loggers), the logs Prefect stored for the flow and task runs, and the stdout/stderr of every
subprocess. Searched for: the Salesforce client secret, every access token the Salesforce
sandbox issued, the Shopify token and the webhook secret (also base64- and URL-encoded).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL

from flows.sync_order import sync_order
from sandbox.server import free_port
from state import StateStore
from tasks.settings import Settings
from tests.integration.conftest import SHOP_TOKEN, WEBHOOK_SECRET
from tests.reliability.support import (
    CLI,
    DrainLog,
    Receiver,
    assert_invariants,
    replay_and_settle,
    running_receiver,
    send_creates,
    settle,
    subscribe,
    syncable,
)

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

SALESFORCE_CLIENT_SECRET = "integration-secret"


class Capture(logging.Handler):
    """Keeps every formatted record, exceptions and stack included."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception as exc:  # a record that cannot format is still evidence
            self.lines.append(f"{record.name} unformattable: {exc!r} {record.args!r}")


@pytest.fixture
def capture() -> Iterator[Capture]:
    """DEBUG logging on the root logger and on every logger that does not propagate."""
    handler = Capture()
    touched: list[tuple[logging.Logger, int]] = []
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in [*loggers, logging.getLogger("prefect")]:
        touched.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    yield handler
    for logger, level in touched:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _variants(secret: str) -> set[str]:
    return {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        base64.b64encode(secret.encode()).decode().rstrip("="),
    }


async def _prefect_logs() -> list[str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        logs = await client.read_logs(limit=200)
        found = [f"{log.name} {log.message}" for log in logs]
        offset = len(logs)
        while len(logs) == 200 and offset < 20_000:
            logs = await client.read_logs(limit=200, offset=offset)
            found += [f"{log.name} {log.message}" for log in logs]
            offset += len(logs)
    return found


def _cli(*args: str) -> str:
    done = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=180, env=_cli_env()
    )
    return f"$ shopsync {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"


def _cli_env() -> dict[str, str]:
    import os

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}


def test_a_full_run_logs_no_secret_anywhere(
    product: Settings,
    store: StateStore,
    salesforce: Any,
    shopify: Any,
    capture: Capture,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issued: list[str] = []
    book = salesforce.sandbox.core.tokens
    original_issue = book.issue

    def issue(*args: Any, **kwargs: Any) -> str:
        token = original_issue(*args, **kwargs)
        issued.append(token)
        return token

    monkeypatch.setattr(book, "issue", issue)
    shop = shopify.shop
    outputs: list[str] = []

    salesforce.rule(object="Opportunity", field="Name", regex=r"#\d*[05] ", message="Review")
    salesforce.fault(kind="401", count=1, path="/composite", after=0.5)
    with running_receiver(product, store, shop):
        ids = send_creates(shop, 0, 10)
    drains = DrainLog()
    settle(store, drains)
    expected = syncable(shop, ids)
    verdict = assert_invariants(store, salesforce, expected)
    assert verdict.dead, "the validation rule should have dead-lettered some orders"
    outputs.append(_cli("dlq", "list"))
    outputs.append(_cli("config", "check"))
    outputs.append(_cli("doctor"))
    salesforce.clear_rules()
    replay_and_settle(store, drains)
    assert sync_order(ids[0])["action"] in {"unchanged", "updated", "created", "skipped"}
    outputs.append(_cli("sync-order", ids[1]))

    receiver = Receiver(free_port(), tmp_path / "receiver.log")
    receiver.start()
    try:
        for subscription in shop.webhooks.list_subscriptions():
            shop.webhooks.unsubscribe(subscription.id)
        subscribe(shop, f"{receiver.url}/webhooks/shopify")
        assert shop.send_order_events("orders/create", 10, 3) == 3
        assert shop.webhooks.flush(timeout=60)
    finally:
        receiver.stop()
    outputs.append(receiver.log.read_text())

    prefect_logs = asyncio.run(_prefect_logs())
    assert prefect_logs, "Prefect stored no run logs"
    captured = capfd.readouterr()
    assert issued, "the sandbox issued no token"
    assert len(issued) >= 2, "the 401 mid-run should have forced a re-authentication"
    haystacks = {
        "python logging": "\n".join(capture.lines),
        "prefect run logs": "\n".join(prefect_logs),
        "cli subprocesses": "\n".join(outputs),
        "test stdout/stderr": captured.out + captured.err,
    }
    # Positive controls: each haystack really holds what the run logged.
    assert "/services/oauth2/token" in haystacks["python logging"]  # DEBUG HTTP lines
    assert "drain finished" in haystacks["prefect run logs"]
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in haystacks["cli subprocesses"]
    secrets = {
        "Salesforce client secret": SALESFORCE_CLIENT_SECRET,
        "Shopify token": SHOP_TOKEN,
        "webhook secret": WEBHOOK_SECRET,
        **{f"Salesforce access token #{n}": token for n, token in enumerate(issued)},
    }
    leaks = [
        f"{what} in {where}"
        for what, secret in secrets.items()
        for variant in _variants(secret)
        for where, text in haystacks.items()
        if variant in text
    ]
    assert leaks == []
