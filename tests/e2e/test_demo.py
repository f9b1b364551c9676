"""``shopsync demo`` (what ``make demo`` runs) exits 0 with a summary showing webhooks synced,
gaps found and repaired, and a clean second reconcile (issue 8)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_the_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SHOPSYNC_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    result = subprocess.run(
        [sys.executable, "-m", "deployments.cli", "demo", "--orders", "120"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"drain flow: \d+ created", output), output
    assert re.search(r"\(dry run\): \d+ in sync, \d+ missing", output), output
    assert "second reconcile: 120 in sync, 0 missing, 0 drifted" in output
    assert "0 write calls" in output.split("second reconcile:")[1]
    assert "demo passed" in output
    # no raw dicts, and no link to the demo's Prefect server once it has stopped (issue 14)
    assert "{'" not in output, output
    ui = re.search(r"Prefect UI \(while the demo runs\): (http://127\.0\.0\.1:\d+)", output)
    assert ui, output
    after = result.stdout.split("5. summary", 1)[1]
    assert ui.group(1) not in after, after
    assert (
        result.stdout.strip()
        .splitlines()[-1]
        .startswith(
            "The demo's Prefect server has stopped. To browse its runs again: PREFECT_HOME="
        )
    ), result.stdout
    # progress off a terminal: plain lines on stderr, one when a stage starts and ends
    assert "starting a local Prefect server: done" in result.stderr, result.stderr
    assert "Shopify sending order webhooks: 120 of 120 done" in result.stderr, result.stderr
