"""SOQL via /query and /queryAll (research §4)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from simple_salesforce import format_soql
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceMalformedRequest

ACC = "External_Shopify_Account_ID__c"
OPP = "External_Shopify_Order_ID__c"


@pytest.fixture
def data(control) -> dict:
    """Three accounts and five opportunities, seeded through the control API."""
    accs = control.post("seed", {"records": {"Account": [
        {"Name": "Acme", ACC: "a1", "BillingCity": "Kyiv"},
        {"Name": "Beta O'Brien", ACC: "a2"},
        {"Name": "gamma_%", ACC: "a3", "BillingCity": "Lviv"},
    ]}})["ids"]["Account"]
    today = dt.datetime.now(dt.UTC).date()
    opps = [{"Name": f"O{i}", "StageName": "New Order", OPP: str(i), "Amount": 10.0 * i,
             "CloseDate": (today - dt.timedelta(days=i * 10)).isoformat(),
             "AccountId": accs[i % 3]} for i in range(5)]
    control.post("seed", {"records": {"Opportunity": opps}})
    return {"accounts": accs}


def test_select_where_order_limit(sf, data) -> None:
    """research/salesforce.md §4: SELECT … WHERE … ORDER BY … LIMIT, attributes in records."""
    res = sf.query("SELECT Id, Name, Amount FROM Opportunity WHERE Amount >= 20 "
                   "ORDER BY Amount DESC LIMIT 2")
    assert res["totalSize"] == 2
    assert res["done"] is True
    assert [r["Name"] for r in res["records"]] == ["O4", "O3"]
    assert res["records"][0]["attributes"]["type"] == "Opportunity"


def test_parent_fields_and_count(sf, data) -> None:
    """research/salesforce.md §4: parent fields (Account.Name) nested; COUNT()."""
    res = sf.query(f"SELECT Name, Account.Name, Account.{ACC} FROM Opportunity "  # noqa: S608
                   f"WHERE Account.{ACC} = 'a2'")
    assert [r["Account"]["Name"] for r in res["records"]] == ["Beta O'Brien", "Beta O'Brien"]
    assert res["records"][0]["Account"][ACC] == "a2"
    count = sf.query("SELECT COUNT() FROM Opportunity WHERE StageName = 'New Order'")
    assert count["totalSize"] == 5
    assert count["records"] == []


def test_boolean_logic_in_like_null(sf, data) -> None:
    """research/salesforce.md §4: IN, NOT IN, LIKE, AND/OR/NOT with parentheses, null."""
    q = sf.query
    assert q(f"SELECT Id FROM Account WHERE {ACC} IN ('a1','a3')")["totalSize"] == 2  # noqa: S608
    assert q(f"SELECT Id FROM Account WHERE {ACC} NOT IN ('a1')")["totalSize"] == 2  # noqa: S608
    assert q("SELECT Id FROM Account WHERE Name LIKE 'ac%'")["totalSize"] == 1
    assert q("SELECT Id FROM Account WHERE BillingCity = null")["totalSize"] == 1
    assert q("SELECT Id FROM Account WHERE BillingCity != null")["totalSize"] == 2
    assert q("SELECT Id FROM Account WHERE (Name = 'Acme' OR BillingCity = 'Lviv') "
             "AND NOT Name LIKE 'g%'")["totalSize"] == 1
    with pytest.raises(SalesforceMalformedRequest):
        q("SELECT Id FROM Account WHERE Name = 'Acme' OR Name = 'x' AND BillingCity = 'y'")


def test_format_soql_escapes(sf, data) -> None:
    """research/salesforce.md §4 / DESIGN §3: values escaped by format_soql (\\' and LIKE
    wildcards)."""
    res = sf.query(format_soql("SELECT Name FROM Account WHERE Name = {}", "Beta O'Brien"))
    assert res["totalSize"] == 1
    like = format_soql("SELECT Name FROM Account WHERE Name LIKE '{:like}%'", "gamma_%")
    assert sf.query(like)["totalSize"] == 1
    assert sf.query(format_soql("SELECT Name FROM Account WHERE Name LIKE '{:like}'",
                                "gammaX%"))["totalSize"] == 0


def test_dates_and_date_literals(sf, data) -> None:
    """research/salesforce.md §4: date literals, TODAY, LAST_N_DAYS:n, datetimes."""
    q = sf.query
    assert q("SELECT Id FROM Opportunity WHERE CloseDate = TODAY")["totalSize"] == 1
    assert q("SELECT Id FROM Opportunity WHERE CloseDate = LAST_N_DAYS:15")["totalSize"] == 2
    assert q("SELECT Id FROM Opportunity WHERE CloseDate < 2000-01-01")["totalSize"] == 0
    assert q("SELECT Id FROM Opportunity WHERE CreatedDate > 2000-01-01T00:00:00Z")[
        "totalSize"] == 5
    with pytest.raises(SalesforceMalformedRequest):
        q("SELECT Id FROM Opportunity WHERE CloseDate = '2026-01-01'")


def test_order_by_nulls(sf, data) -> None:
    """research/salesforce.md §4: ORDER BY … NULLS FIRST/LAST."""
    names = [r["Name"] for r in sf.query(
        "SELECT Name FROM Account ORDER BY BillingCity ASC NULLS LAST")["records"]]
    assert names == ["Acme", "gamma_%", "Beta O'Brien"]
    names = [r["Name"] for r in sf.query(
        "SELECT Name FROM Account ORDER BY BillingCity DESC NULLS FIRST")["records"]]
    assert names == ["Beta O'Brien", "gamma_%", "Acme"]


def test_paging_query_all_and_batch_size(sf, http, control) -> None:
    """research/salesforce.md §4: 2,000-row pages, nextRecordsUrl, batchSize, query_all."""
    control.post("seed", {"records": {"Account": [
        {"Name": f"A{i}", ACC: f"k{i}"} for i in range(4500)]}})
    first = sf.query("SELECT Id FROM Account")
    assert first["done"] is False
    assert len(first["records"]) == 2000
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/")
    assert len(sf.query_all("SELECT Id, Name FROM Account")["records"]) == 4500
    small = http.get("/query", params={"q": "SELECT Id FROM Account"},
                     headers={"Sforce-Query-Options": "batchSize=500"}).json()
    assert len(small["records"]) == 500
    nxt = http.get(small["nextRecordsUrl"].replace("/services/data/v59.0", "")).json()
    assert len(nxt["records"]) == 500


def test_query_all_sees_deleted(sf) -> None:
    """research/salesforce.md §4: queryAll includes deleted records (IsDeleted)."""
    rid = sf.Account.create({"Name": "Gone"})["id"]
    sf.Account.delete(rid)
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0
    res = sf.query_all("SELECT Id, IsDeleted FROM Account", include_deleted=True)
    assert res["records"][0]["IsDeleted"] is True


def test_malformed_and_unknown(sf) -> None:
    """research/salesforce.md §4: MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE are 400."""
    for soql, code in [("SELECT FROM Account", "MALFORMED_QUERY"),
                       ("SELECT Id FROM Account GROUP BY Name", "MALFORMED_QUERY"),
                       ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
                       ("SELECT Id FROM Nope", "INVALID_TYPE")]:
        with pytest.raises(SalesforceMalformedRequest) as err:
            sf.query(soql)
        assert err.value.content[0]["errorCode"] == code


def test_uri_over_16384_bytes_is_414(sf, url, token) -> None:
    """research/salesforce.md §4: request URI over 16,384 bytes → 414 (chunk IN lists)."""
    values = ",".join(f"'{i:018d}'" for i in range(700))
    with pytest.raises(SalesforceGeneralError) as err:
        sf.query(f"SELECT Id FROM Account WHERE {ACC} IN ({values})")  # noqa: S608
    assert err.value.status == 414
    ok_values = ",".join(f"'{i:018d}'" for i in range(300))
    soql = f"SELECT Id FROM Account WHERE {ACC} IN ({ok_values})"  # noqa: S608
    assert sf.query(soql)["totalSize"] == 0
    resp = httpx.get(f"{url}/services/data/v59.0/query", params={"q": "x" * 16400},
                     headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 414


def test_uri_plus_headers_over_16384_is_431(url, token) -> None:
    """research/salesforce.md §4: URI + headers over 16,384 bytes → 431."""
    resp = httpx.get(f"{url}/services/data/v59.0/limits",
                     headers={"Authorization": f"Bearer {token}", "X-Big": "y" * 16400})
    assert resp.status_code == 431


def test_long_string_literal_is_malformed(sf) -> None:
    """research/salesforce.md §4: strings inside WHERE are limited to 4,000 characters."""
    with pytest.raises(SalesforceMalformedRequest):
        sf.query(f"SELECT Id FROM Account WHERE Name = '{'x' * 4001}'")  # noqa: S608
