"""A drain that works longer than its (short) lease keeps its orders: the heartbeat renews the
claims, so no second drain ever works on one of them (issue 14, crash recovery)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from deployments.cli import app
from state import StateStore
from tests.e2e.test_webhook_path import opportunities

pytestmark = pytest.mark.usefixtures("prefect_harness")

SLOW_DRAIN = textwrap.dedent(
    """
    from flows.sync_pending import sync_pending_orders
    sync_pending_orders(max_seconds=300, batch_size=100, lease_seconds=2)
    """
)


def test_a_drain_longer_than_its_lease_keeps_its_claims(
    receiver: str, shopify, salesforce, store: StateStore
) -> None:
    shop = shopify.shop
    shop.send_order_events("orders/create", 0, 16)
    assert shop.webhooks.flush(timeout=60)
    # 16 orders, 4 at a time, 1.5 s each: the batch outlasts its 2 s lease several times over.
    salesforce.fault(kind="latency", latency=1.5, path="/composite")
    # The session's Prefect server, not an ephemeral one the child would start (slow on a busy
    # machine: it timed out once).
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_DRAIN], env=env)
    taken_over = []
    try:
        deadline = time.monotonic() + 120
        while store.counts().inbox.get("claimed", 0) < 16 and time.monotonic() < deadline:
            time.sleep(0.05)  # the drain claims all 16 in one batch
        while proc.poll() is None:
            # A second drain asks for work all along; it must never get an order the first holds.
            taken_over += store.claim(max_orders=100, lease=timedelta(seconds=60), owner="other")
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        salesforce.clear_faults()
    assert proc.returncode == 0
    assert [c.order_id for c in taken_over] == []
    synced = opportunities(salesforce)
    assert len(synced) == 16
    assert all(len(records) == 1 for records in synced.values())
    assert store.counts().inbox == {"done": 16}


def test_shopsync_drain_runs_the_drain_once_in_the_foreground(
    receiver: str, shopify, salesforce, store: StateStore, monkeypatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    shop = shopify.shop
    shop.send_order_events("orders/create", 0, 5)
    assert shop.webhooks.flush(timeout=60)
    result = CliRunner().invoke(app, ["drain"])
    assert result.exit_code == 0, result.output
    assert "drain finished: 5 created" in result.output
    assert store.counts().inbox == {"done": 5}
