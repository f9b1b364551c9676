"""Bulk API 2.0 ingest and query jobs (research §3, §0 wire shapes)."""

from __future__ import annotations

import csv
import io

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

ACC = "External_Shopify_Account_ID__c"
CON = "External_Shopify_ID__c"


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_bulk2_upsert_with_simple_salesforce(sf, control) -> None:
    """research/salesforce.md §3: create → PUT batches (201) → UploadComplete → poll → results."""
    sf.Account.create({"Name": "P", ACC: "p1"})
    records = [{CON: str(i), "LastName": f"L{i}", "Account.External_Shopify_Account_ID__c": "p1"}
               for i in range(50)]
    records.append({CON: "bad", "LastName": "L", "Email": "nope",
                    "Account.External_Shopify_Account_ID__c": "p1"})
    records.append({CON: "orphan", "LastName": "L",
                    "Account.External_Shopify_Account_ID__c": "ghost"})
    res = sf.bulk2.Contact.upsert(records=records, external_id_field=CON, wait=0)
    assert res[0]["numberRecordsProcessed"] == 52
    assert res[0]["numberRecordsFailed"] == 2
    job = res[0]["job_id"]
    ok = _rows(sf.bulk2.Contact.get_successful_records(job))
    assert len(ok) == 50
    assert ok[0]["sf__Created"] == "true"
    assert ok[0]["sf__Id"].startswith("003")
    assert [r[CON] for r in ok] != [str(i) for i in range(50)]  # deliberately not in input order
    failed = {r[CON]: r["sf__Error"] for r in _rows(sf.bulk2.Contact.get_failed_records(job))}
    assert failed["bad"].startswith("INVALID_EMAIL_ADDRESS:")
    assert failed["orphan"].startswith("INVALID_FIELD:Foreign key external ID: ghost")
    assert sf.bulk2.Contact.get_unprocessed_records(job).strip() != ""  # header only
    again = sf.bulk2.Contact.upsert(records=records[:3], external_id_field=CON, wait=0)
    ok2 = _rows(sf.bulk2.Contact.get_successful_records(again[0]["job_id"]))
    assert {r["sf__Created"] for r in ok2} == {"false"}
    counts = control.get("stats")["records"]["Contact"]
    assert counts == {"created": 50, "updated": 3}


def test_bulk2_duplicate_keys_null_and_calls(sf, control) -> None:
    """research/salesforce.md §3/§1: duplicate keys → DUPLICATE_EXTERNAL_ID; #N/A nulls; each HTTP
    request = 1 call."""
    sf.Contact.upsert(f"{CON}/n1", {"LastName": "L", "FirstName": "Keep"})
    data = f"{CON},LastName,FirstName\nn1,L,#N/A\nd,A,\nd,B,\n"
    before = control.calls()
    res = sf.bulk2.Contact.upsert(csv_file=_write(data), external_id_field=CON, wait=0)
    calls = control.calls() - before
    assert calls >= 5  # create, PUT, PATCH, ≥1 poll, final GET
    assert res[0]["numberRecordsFailed"] == 2
    failed = _rows(sf.bulk2.Contact.get_failed_records(res[0]["job_id"]))
    assert {r["sf__Error"].split(":")[0] for r in failed} == {"DUPLICATE_EXTERNAL_ID"}
    assert sf.Contact.get_by_custom_id(CON, "n1")["FirstName"] is None


def _write(text: str) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as handle:
        handle.write(text)
    return handle.name


def test_ingest_lifecycle_raw(http) -> None:
    """research/salesforce.md §3: Open → UploadComplete → InProgress on first poll → JobComplete;
    one upload only."""
    job = http.post("/jobs/ingest", json={"object": "Account", "operation": "insert",
                                          "contentType": "CSV", "lineEnding": "LF",
                                          "columnDelimiter": "COMMA"}).json()
    assert job["state"] == "Open"
    put = http.put(f"/jobs/ingest/{job['id']}/batches", content=b"Name,BillingCity\nA,Kyiv\n",
                   headers={"Content-Type": "text/csv"})
    assert put.status_code == 201
    second = http.put(f"/jobs/ingest/{job['id']}/batches", content=b"Name\nB\n",
                      headers={"Content-Type": "text/csv"})
    assert second.status_code == 400
    closed = http.patch(f"/jobs/ingest/{job['id']}", json={"state": "UploadComplete"}).json()
    assert closed["state"] == "UploadComplete"
    assert http.get(f"/jobs/ingest/{job['id']}").json()["state"] == "InProgress"
    info = http.get(f"/jobs/ingest/{job['id']}").json()
    assert info["state"] == "JobComplete"
    assert info["numberRecordsProcessed"] == 1
    for path in ("unprocessedrecords", "unprocessedRecords"):
        assert http.get(f"/jobs/ingest/{job['id']}/{path}").status_code == 200


def test_ingest_abort_and_unknown_column(http) -> None:
    """research/salesforce.md §3: aborted job → rows unprocessed; unknown column → Failed."""
    job = http.post("/jobs/ingest", json={"object": "Account", "operation": "insert"}).json()
    http.put(f"/jobs/ingest/{job['id']}/batches", content=b"Name\nA\n")
    assert http.patch(f"/jobs/ingest/{job['id']}",
                      json={"state": "Aborted"}).json()["state"] == "Aborted"
    assert "A" in http.get(f"/jobs/ingest/{job['id']}/unprocessedrecords").text
    bad = http.post("/jobs/ingest", json={"object": "Account", "operation": "insert"}).json()
    http.put(f"/jobs/ingest/{bad['id']}/batches", content=b"Name,Nope__c\nA,1\n")
    http.patch(f"/jobs/ingest/{bad['id']}", json={"state": "UploadComplete"})
    info = http.get(f"/jobs/ingest/{bad['id']}").json()
    assert info["state"] == "Failed"
    assert "Nope__c" in info["errorMessage"]


def test_ingest_update_delete_and_delimiters(sf, http) -> None:
    """research/salesforce.md §3: update/delete by Id; PIPE delimiter, CRLF line ending."""
    rid = sf.Account.create({"Name": "A"})["id"]
    res = sf.bulk2.Account.update(records=[{"Id": rid, "Name": "B"}], wait=0)
    assert res[0]["numberRecordsFailed"] == 0
    assert sf.Account.get(rid)["Name"] == "B"
    job = http.post("/jobs/ingest", json={"object": "Account", "operation": "insert",
                                          "columnDelimiter": "PIPE", "lineEnding": "CRLF"}).json()
    http.put(f"/jobs/ingest/{job['id']}/batches", content=b"Name|BillingCity\r\nC|Kyiv, UA\r\n")
    http.patch(f"/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    out = http.get(f"/jobs/ingest/{job['id']}/successfulResults").text
    assert out.endswith("\r\n")
    assert "|" in out
    sf.bulk2.Account.delete(records=[{"Id": rid}], wait=0)
    assert sf.query("SELECT COUNT() FROM Account WHERE Name = 'B'")["totalSize"] == 0


def test_bulk2_query_paging(sf, control) -> None:
    """research/salesforce.md §3: query job results paged with Sforce-Locator /
    Sforce-NumberOfRecords."""
    control.post("seed", {"records": {"Account": [
        {"Name": f"A{i}", ACC: f"k{i}"} for i in range(2500)]}})
    pages = list(sf.bulk2.Account.query(f"SELECT Id, Name, {ACC} FROM Account",  # noqa: S608
                                        max_records=1000, wait=0))
    assert len(pages) == 3
    rows = [r for page in pages for r in _rows(page)]
    assert len(rows) == 2500
    assert set(rows[0]) == {"Id", "Name", ACC}


def test_bulk2_query_raw_headers(http, sf) -> None:
    """research/salesforce.md §3: Sforce-Locator is the string null on the last page."""
    sf.Account.create({"Name": "A"})
    job = http.post("/jobs/query", json={"operation": "query",
                                         "query": "SELECT Id, Name FROM Account"}).json()
    http.get(f"/jobs/query/{job['id']}")
    assert http.get(f"/jobs/query/{job['id']}").json()["state"] == "JobComplete"
    res = http.get(f"/jobs/query/{job['id']}/results", params={"maxRecords": 10})
    assert res.headers["Sforce-Locator"] == "null"
    assert res.headers["Sforce-NumberOfRecords"] == "1"


def test_bulk_bad_query_is_400(sf) -> None:
    """research/salesforce.md §3: a query job with bad SOQL is rejected at creation."""
    with pytest.raises(SalesforceMalformedRequest):
        list(sf.bulk2.Account.query("SELECT Nope__c FROM Account", wait=0))


def test_bulk_update_unknown_id_fails_row(sf) -> None:
    """research/salesforce.md §3: per-row failures are reported in failedResults, job completes."""
    res = sf.bulk2.Account.update(records=[{"Id": "001Hs0000000zzzAAA", "Name": "B"}], wait=0)
    assert res[0]["numberRecordsFailed"] == 1
    failed = _rows(sf.bulk2.Account.get_failed_records(res[0]["job_id"]))
    assert failed[0]["sf__Error"].startswith("INVALID_CROSS_REFERENCE_KEY:")
    assert failed[0]["sf__Id"] == "001Hs0000000zzzAAA"


def test_query_results_need_the_creating_version(http, url, token) -> None:
    """research/salesforce.md §3: results must be read with the job's API version (else 409)."""
    import httpx

    job = http.post("/jobs/query", json={"operation": "query",
                                         "query": "SELECT Id FROM Account"}).json()
    http.get(f"/jobs/query/{job['id']}")
    other = httpx.get(f"{url}/services/data/v60.0/jobs/query/{job['id']}/results",
                      headers={"Authorization": f"Bearer {token}"})
    assert other.status_code == 409
