"""Control API under /__sandbox/ (DESIGN §7) and the Python interface."""

from __future__ import annotations

import httpx

from sandbox.salesforce import OrgProfile, SalesforceSandbox

ACC = "External_Shopify_Account_ID__c"


def test_seed_dump_reset(control, sandbox) -> None:
    """DESIGN §7 / research §1: seed records (indexed for upsert), dump, reset."""
    ids = control.post("seed", {"records": {"Account": [{"Name": "A", ACC: "s1"}]}})["ids"]
    assert ids["Account"][0].startswith("001")
    dumped = control.get("dump", object="Account")["records"]
    assert dumped[0][ACC] == "s1"
    assert sandbox.store.find("Account", ACC, "s1", True) == ids["Account"]
    control.post("reset")
    assert control.get("dump")["objects"]["Account"] == []


def test_seed_with_validation(url) -> None:
    """DESIGN §7: seeding with validate=true goes through the normal create path."""
    resp = httpx.post(f"{url}/__sandbox/seed",
                      json={"records": {"Contact": [{"FirstName": "x"}]}, "validate": True})
    assert resp.status_code == 400
    assert resp.json()["error"] == "REQUIRED_FIELD_MISSING"


def test_stats_reset(sf, control) -> None:
    """DESIGN §7: POST stats/reset zeroes counters and usage."""
    sf.query("SELECT Id FROM Account")
    after = control.post("stats/reset")
    assert after["api_calls"]["total"] == 0
    assert after["api_usage"]["used"] == 0


def test_org_endpoint_round_trip(control) -> None:
    """DESIGN §7: POST org changes the variant; reset restores the constructed one."""
    org = control.post("org", {"multi_currency": True, "stage_names": ["A", "B"]})
    assert org["multi_currency"]
    assert org["stage_names"] == ["A", "B"]
    control.post("reset")
    assert control.get("org")["multi_currency"] is False


def test_bad_control_input_is_400(url) -> None:
    """DESIGN §7: malformed control requests are 400 with an error message."""
    assert httpx.post(f"{url}/__sandbox/faults", json={"kind": "nope"}).status_code == 400
    assert httpx.post(f"{url}/__sandbox/org", json={"nope": 1}).status_code == 400


def test_python_interface() -> None:
    """DESIGN §7: SalesforceSandbox(org=OrgProfile(...)) exposes app, store, stats."""
    sb = SalesforceSandbox(org=OrgProfile(multi_currency=True, external_id_unique=False),
                           api_limit=10, token_ttl=60)
    assert sb.app is not None
    assert all(not recs for recs in sb.store.records.values())
    assert sb.stats["api_usage"] == {"used": 0, "limit": 10}
    assert "CurrencyIsoCode" in sb.store.schema["Opportunity"].fields
    assert sb.store.schema["Account"].fields[ACC].unique is False
    assert sb.issue_token()


def test_run_prints_instance_url_and_serves() -> None:
    """DESIGN §7: ``shopsync sandbox salesforce`` → run() prints the URL and serves until killed."""
    import subprocess
    import sys

    from sandbox.server import free_port

    port = free_port()
    code = f"from sandbox.salesforce import run; run(port={port})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"Salesforce sandbox: http://127.0.0.1:{port}"
        token = httpx.post(f"http://127.0.0.1:{port}/services/oauth2/token",
                           data={"grant_type": "client_credentials", "client_id": "a"})
        assert token.json()["instance_url"] == f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
