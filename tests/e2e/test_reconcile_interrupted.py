"""A killed ``shopsync reconcile`` (issue 14): the next run marks it interrupted in
``shopsync status`` and removes the spool file it left in ``data/reconcile/``."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e import test_cli_traps as traps
from tests.e2e.test_cli_traps import User

# The CLI traps' fixtures: a fresh directory whose .env is .env.example filled in for the sandboxes.
org_sandbox, org, fresh_user, user = traps.org_sandbox, traps.org, traps.fresh_user, traps.user


def wait_for_spool(user: User, process, timeout: float = 120) -> list:
    """The spool files of a reconcile once it is listing orders."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spools = sorted((user.home / "data" / "reconcile").glob("run-*"))
        if spools:
            return spools
        if process.poll() is not None:
            pytest.fail((user.home / "serve.log").read_text())
        time.sleep(0.2)
    pytest.fail("the reconcile never started listing")


@pytest.mark.slow
def test_a_killed_reconcile_is_marked_interrupted_and_its_spool_removed(
    user: User, shopify
) -> None:
    today = datetime.now(UTC).date()
    window = ("--start", str(today - timedelta(days=40)), "--end", str(today), "--dry-run")
    shopify.shop.faults.add({"kind": "latency", "latency_ms": 3000, "api": "graphql"})
    process = user.start("reconcile", *window)
    try:
        spools = wait_for_spool(user, process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()  # reaped, as a shell does: its pid is gone
    shopify.shop.faults.clear()

    before = user.run("status", "--no-salesforce")
    assert " running " in before.stdout, before.stdout  # what a killed run looked like

    again = user.run("reconcile", *window, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    status = user.run("status", "--no-salesforce")
    killed = [line for line in status.stdout.splitlines() if line.lstrip().startswith("#1 ")]
    assert len(killed) == 1, status.stdout
    assert " interrupted " in killed[0]
    assert all(not path.exists() for path in spools)
    assert list((user.home / "data" / "reconcile").glob("run-*")) == []
