"""``shopsync smoke`` as a user types it, against the sandboxes (issue 14): every step is one
line, the marked test records are written with the real field set and are gone afterwards, and a
refused write is one clear line with its fix, exit 1, and nothing left behind."""

from __future__ import annotations

import subprocess

import httpx

from sandbox.salesforce import SalesforceSandbox
from tests.e2e import test_cli_traps as traps
from tests.e2e.test_cli_traps import User

# The CLI traps' fixtures: a fresh directory whose .env is .env.example filled in for the sandboxes.
org_sandbox, org, fresh_user, user = traps.org_sandbox, traps.org, traps.fresh_user, traps.user

STEPS = (
    "salesforce login",
    "shopify access",
    "map a test order",
    "write Account/Contact/Opportunity",
    "read back",
    "delete test records",
)


def soql(handle: tuple[SalesforceSandbox, str], query: str) -> list[dict]:
    """Rows of a SOQL query through the org's REST API."""
    sandbox, url = handle
    response = httpx.get(
        f"{url}/services/data/v62.0/query",
        params={"q": query},
        headers={"Authorization": f"Bearer {sandbox.issue_token()}"},
    )
    response.raise_for_status()
    return response.json()["records"]


def smoke_records(handle: tuple[SalesforceSandbox, str]) -> dict[str, list[dict]]:
    """Every live record a smoke run marks, by object."""
    return {
        "Account": soql(handle, "SELECT Id FROM Account WHERE Name LIKE 'shopsync smoke%'"),
        "Contact": soql(handle, "SELECT Id FROM Contact WHERE Email LIKE 'shopsync-smoke-%'"),
        "Opportunity": soql(handle, "SELECT Id FROM Opportunity WHERE Name LIKE 'shopsync smoke%'"),
    }


def lines(result: subprocess.CompletedProcess) -> list[str]:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return result.stdout.strip().splitlines()


def test_smoke_writes_reads_back_and_deletes_marked_records(
    user: User, org_sandbox: tuple[SalesforceSandbox, str]
) -> None:
    result = user.run("smoke")
    out = lines(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(":", 1)[0] for line in out[:-1]] == [f"[ok  ] {step}" for step in STEPS]
    assert "Account 001" in out[3]
    assert "Contact 003" in out[3]
    assert "Opportunity 006" in out[3]
    assert "3 record(s) deleted, none left" in out[5]
    assert out[-1] == "smoke test passed"
    assert smoke_records(org_sandbox) == {"Account": [], "Contact": [], "Opportunity": []}


def test_a_refused_write_is_one_line_with_the_fix_and_leaves_nothing(
    user: User, org_sandbox: tuple[SalesforceSandbox, str]
) -> None:
    url = org_sandbox[1]
    rule = httpx.post(
        f"{url}/__sandbox/validation-rules",
        json={
            "object": "Opportunity",
            "field": "Name",
            "contains": "smoke",
            "message": "Opportunity names may not mention smoke",
        },
    )
    rule.raise_for_status()
    try:
        result = user.run("smoke")
    finally:
        httpx.delete(f"{url}/__sandbox/validation-rules").raise_for_status()
    out = lines(result)
    assert result.returncode == 1
    failed = [line for line in out if line.startswith("[FAIL]")]
    assert len(failed) == 1, out
    assert failed[0].startswith("[FAIL] write Account/Contact/Opportunity: ")
    assert "Opportunity names may not mention smoke" in failed[0]
    assert "fix: a validation rule in the org refuses the opportunity" in failed[0]
    assert any(line.startswith("[ok  ] delete test records") for line in out), out
    assert out[-1] == "smoke test failed at: write Account/Contact/Opportunity"
    assert smoke_records(org_sandbox) == {"Account": [], "Contact": [], "Opportunity": []}
