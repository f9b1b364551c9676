"""Injected faults surface to simple-salesforce as Salesforce's would (research §4, §6 exception
table)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

ACC = "External_Shopify_Account_ID__c"


@pytest.mark.parametrize(
    ("kind", "exc", "status", "code"),
    [
        ("401", SalesforceExpiredSession, 401, "INVALID_SESSION_ID"),
        ("403", SalesforceRefusedRequest, 403, "REQUEST_LIMIT_EXCEEDED"),
        ("429", SalesforceGeneralError, 429, None),
        ("500", SalesforceGeneralError, 500, None),
        ("503", SalesforceGeneralError, 503, "SERVER_UNAVAILABLE"),
        ("unable_to_lock_row", SalesforceMalformedRequest, 400, "UNABLE_TO_LOCK_ROW"),
    ],
)
def test_fault_kind_maps_to_exception(sf, control, url, kind, exc, status, code) -> None:
    """research/salesforce.md §6: 401 Expired, 403 Refused, 400 Malformed, else GeneralError."""
    fault = control.post("faults", {"kind": kind, "count": 1})
    with pytest.raises(exc) as err:
        sf.Account.upsert(f"{ACC}/1", {"Name": "A"})
    assert err.value.status == status
    if code:
        assert err.value.content[0]["errorCode"] == code
    assert control.get("faults")["faults"][0]["fired"] == 1
    assert fault["id"]
    if kind == "401":  # tokens were invalidated: the client must re-authenticate
        from sandbox.salesforce.client import simple_salesforce

        sf = simple_salesforce(url)
    assert sf.Account.upsert(f"{ACC}/1", {"Name": "A"}) == 201  # count exhausted


def test_dropped_connection(sf, control) -> None:
    """research/salesforce.md §4 (DESIGN §7): a dropped connection is a client connection error."""
    control.post("faults", {"kind": "drop", "count": 1})
    with pytest.raises(requests.exceptions.ConnectionError):
        sf.query("SELECT Id FROM Account")
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0


def test_latency(sf, control) -> None:
    """research/salesforce.md §4 (DESIGN §7): added latency in seconds."""
    control.post("faults", {"kind": "latency", "latency": 0.3, "count": 1})
    start = time.monotonic()
    sf.query("SELECT Id FROM Account")
    assert time.monotonic() - start >= 0.3


def test_latency_does_not_block_other_requests(url, token, control) -> None:
    """Injected latency delays each call, not the server: concurrent calls wait side by side.

    Eight calls under a latency fault on every call: all eight are being delayed at once (the
    fault has fired for each) before the first answer comes back. A blocking wait on the event
    loop would hold each call in turn, so the eighth would fire only after the others answered.
    """
    control.post("faults", {"kind": "latency", "latency": 1.0, "path": "/query"})
    query = f"{url}/services/data/v59.0/query"
    headers = {"Authorization": f"Bearer {token}"}

    def call(_: int) -> float:
        resp = httpx.get(query, params={"q": "SELECT Id FROM Account"}, headers=headers,
                         timeout=60)
        resp.raise_for_status()
        return time.monotonic()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answered = pool.map(call, range(8))
        deadline = time.monotonic() + 60
        while control.get("faults")["faults"][0]["fired"] < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        all_delayed = time.monotonic()
        first_answer = min(answered)
    assert all_delayed < first_answer


def test_rate_with_seed_is_deterministic(sf, control) -> None:
    """research/salesforce.md §4 (DESIGN §7): faults by probability are reproducible with a seed."""
    def run() -> list[bool]:
        control.post("faults", {"kind": "503", "rate": 0.5, "seed": 7})
        out = []
        for _ in range(20):
            try:
                sf.query("SELECT Id FROM Account")
                out.append(True)
            except SalesforceGeneralError:
                out.append(False)
        control.delete("faults")
        return out

    first, second = run(), run()
    assert first == second
    assert 0 < first.count(False) < 20


def test_fault_by_object_external_id_and_clear(sf, control) -> None:
    """research/salesforce.md §4: faults can target one object / external id, and be cleared."""
    control.post("faults", {"kind": "unable_to_lock_row", "object": "Contact"})
    assert sf.Account.upsert(f"{ACC}/1", {"Name": "A"}) == 201
    with pytest.raises(SalesforceMalformedRequest):
        sf.Contact.create({"LastName": "L"})
    control.delete("faults")
    control.post("faults", {"kind": "500", "external_id": "k-42"})
    with pytest.raises(SalesforceGeneralError):
        sf.Account.upsert(f"{ACC}/k-42", {"Name": "A"})
    assert sf.Account.upsert(f"{ACC}/k-43", {"Name": "A"}) == 201
    assert control.delete("faults")["deleted"] == 1
    assert sf.Account.upsert(f"{ACC}/k-42", {"Name": "A"}) == 201


def test_time_window(sf, control) -> None:
    """research/salesforce.md §4 (DESIGN §7): a fault active only for a time window."""
    control.post("faults", {"kind": "503", "duration": 0.3})
    with pytest.raises(SalesforceGeneralError):
        sf.query("SELECT Id FROM Account")
    time.sleep(0.35)
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0


def test_record_scope_lock_inside_composite(sf, control) -> None:
    """research/salesforce.md §2/§4: a record-level UNABLE_TO_LOCK_ROW fails one subrequest;
    allOrNone halts the rest."""
    control.post("faults", {"kind": "lock", "scope": "record", "object": "Contact", "count": 1})
    v = "/services/data/v59.0"
    out = sf.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{v}/sobjects/Account", "referenceId": "a",
         "body": {"Name": "A"}},
        {"method": "POST", "url": f"{v}/sobjects/Contact", "referenceId": "c",
         "body": {"LastName": "L", "AccountId": "@{a.id}"}},
    ]})["compositeResponse"]
    assert out[1]["body"][0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert out[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"


def test_race_duplicate_value_then_retry_matches(sf, control) -> None:
    """research/salesforce.md §1: racing creators → DUPLICATE_VALUE; a retry updates."""
    control.post("faults", {"kind": "race", "object": "Contact", "external_id": "r1",
                            "count": 1})
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Contact.upsert("External_Shopify_ID__c/r1", {"LastName": "Mine"})
    assert err.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    assert sf.Contact.upsert("External_Shopify_ID__c/r1", {"LastName": "Mine"}) == 200
    assert len(control.get("dump", object="Contact")["records"]) == 1


def test_race_without_unique_makes_duplicates(sf, control) -> None:
    """research/salesforce.md §1: without Unique a race leaves two records → 300."""
    from simple_salesforce.exceptions import SalesforceMoreThanOneRecord

    control.post("org", {"external_id_unique": False})
    control.post("faults", {"kind": "race", "external_id": "r2", "count": 1})
    assert sf.Contact.upsert("External_Shopify_ID__c/r2", {"LastName": "A"}) == 201
    with pytest.raises(SalesforceMoreThanOneRecord):
        sf.Contact.upsert("External_Shopify_ID__c/r2", {"LastName": "B"})
