"""Versions, describe, /limits, Sforce-Limit-Info and the daily allocation (research §4, §5)."""

from __future__ import annotations

import httpx
import pytest
from simple_salesforce.exceptions import SalesforceRefusedRequest

ACC = "External_Shopify_Account_ID__c"


def test_versions_list_has_no_limit_header(url) -> None:
    """research/salesforce.md §4: Sforce-Limit-Info on every response except the versions URI."""
    resp = httpx.get(f"{url}/services/data/")
    assert resp.status_code == 200
    assert any(v["version"] == "59.0" for v in resp.json())
    assert "sforce-limit-info" not in resp.headers


def test_limit_info_header_on_every_response(http, sf) -> None:
    """research/salesforce.md §4: api-usage=N/M header, parsed by simple-salesforce."""
    resp = http.get("/limits")
    assert resp.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    err = http.get("/sobjects/Account/001000000000000AAA")
    assert err.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    sf.query("SELECT Id FROM Account")
    assert sf.api_usage["api-usage"].used == 3


def test_describe_external_id_fields(sf) -> None:
    """research/salesforce.md §1/§5: describe shows externalId, unique, caseSensitive, lengths."""
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    ext = fields[ACC]
    assert (ext["externalId"], ext["unique"], ext["caseSensitive"], ext["length"]) == (
        True, True, True, 255)
    assert fields["BillingCity"]["length"] == 40
    assert "CurrencyIsoCode" not in fields
    opp = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert opp["ContactId"]["createable"]
    assert not opp["ContactId"]["updateable"]
    assert opp["ContactId"]["referenceTo"] == ["Contact"]
    assert opp["ContactId"]["relationshipName"] == "Contact"
    assert {"value": "New Order", "label": "New Order", "active": True,
            "defaultValue": False} in opp["StageName"]["picklistValues"]
    assert not opp["Name"]["nillable"]
    con = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert con["Email"]["type"] == "email"
    assert con["Email"]["idLookup"]


def test_describe_multi_currency(sf, control) -> None:
    """research/salesforce.md §5: multi-currency orgs have CurrencyIsoCode (restricted picklist)."""
    control.post("org", {"multi_currency": True})
    fields = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    values = [p["value"] for p in fields["CurrencyIsoCode"]["picklistValues"]]
    assert {"USD", "EUR", "GBP", "CAD", "UAH"} <= set(values)
    assert fields["CurrencyIsoCode"]["restrictedPicklist"]


def test_limits_resource(sf, control) -> None:
    """research/salesforce.md §4: /limits → DailyApiRequests Max/Remaining, bulk limits."""
    control.post("org", {"api_limit": 500, "api_usage": 100})
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 500, "Remaining": 399}
    assert {"DailyBulkV2QueryJobs", "DailyBulkApiBatches"} <= set(limits)


def test_request_limit_exceeded(sf, control) -> None:
    """research/salesforce.md §4: past the allocation → 403 REQUEST_LIMIT_EXCEEDED 'TotalRequests
    Limit exceeded.'."""
    control.post("org", {"api_limit": 2})
    sf.query("SELECT Id FROM Account")
    sf.query("SELECT Id FROM Account")
    with pytest.raises(SalesforceRefusedRequest) as err:
        sf.query("SELECT Id FROM Account")
    assert err.value.content == [{"message": "TotalRequests Limit exceeded.",
                                  "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert control.calls() == 2


def test_calls_counted_by_kind(sf, control) -> None:
    """research/salesforce.md §4: every REST request is one API call; control calls are not."""
    sf.Account.create({"Name": "A"})
    sf.query("SELECT Id FROM Account")
    control.get("dump")
    stats = control.get("stats")
    assert stats["api_calls"]["total"] == 2
    assert stats["api_calls"]["by_kind"] == {"sobject": 1, "query": 1}
    assert stats["api_usage"] == {"used": 2, "limit": 100000}
