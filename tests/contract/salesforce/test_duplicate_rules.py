"""Duplicate rules (research §4 DUPLICATES_DETECTED; REST "Duplicate Rule Header", API 52.0+;
Object Reference "DuplicateRule": query() with DeveloperName, MasterLabel, SobjectType,
IsActive)."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

ALLOW_SAVE = {"Sforce-Duplicate-Rule-Header": "allowSave=true"}


def _contact_rule(control, action: str = "allow") -> dict:
    return control.post(
        "duplicate-rules",
        {"object": "Contact", "fields": ["Email"], "action": action,
         "name": "Contacts_By_Email"},
    )


def test_an_active_rule_rejects_a_duplicate_with_its_duplicate_result(sf, control) -> None:
    _contact_rule(control)
    first = sf.Contact.create({"LastName": "A", "Email": "a@example.com"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Contact.create({"LastName": "B", "Email": "A@Example.com"})
    [item] = err.value.content
    assert item["errorCode"] == "DUPLICATES_DETECTED"
    result = item["duplicateResult"]
    assert (result["duplicateRule"], result["allowSave"]) == ("Contacts_By_Email", True)
    [match] = result["matchResults"]
    assert [r["record"]["Id"] for r in match["matchRecords"]] == [first]


def test_allow_save_header_saves_through_an_alert_rule(sf, control, http) -> None:
    _contact_rule(control)
    sf.Contact.create({"LastName": "A", "Email": "a@example.com"})
    answer = http.post("/sobjects/Contact", json={"LastName": "B", "Email": "a@example.com"},
                       headers=ALLOW_SAVE)
    assert answer.status_code == 201


def test_a_block_rule_rejects_even_with_allow_save(sf, control, http) -> None:
    _contact_rule(control, action="block")
    sf.Contact.create({"LastName": "A", "Email": "a@example.com"})
    answer = http.post("/sobjects/Contact", json={"LastName": "B", "Email": "a@example.com"},
                       headers=ALLOW_SAVE)
    assert answer.status_code == 400
    assert answer.json()[0]["duplicateResult"]["allowSave"] is False


def test_composite_reads_the_header_of_each_subrequest(sf, control, http) -> None:
    _contact_rule(control)
    sf.Contact.create({"LastName": "A", "Email": "a@example.com"})
    sub = {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact",
           "referenceId": "c", "body": {"LastName": "B", "Email": "a@example.com"}}
    top_only = http.post("/composite", json={"allOrNone": True, "compositeRequest": [sub]},
                         headers=ALLOW_SAVE)
    assert top_only.json()["compositeResponse"][0]["httpStatusCode"] == 400
    per_sub = http.post("/composite", json={"allOrNone": True, "compositeRequest": [
        {**sub, "httpHeaders": ALLOW_SAVE}]})
    assert per_sub.json()["compositeResponse"][0]["httpStatusCode"] == 201


def test_collections_report_the_duplicate_per_record(sf, control, http) -> None:
    _contact_rule(control)
    sf.Contact.create({"LastName": "A", "Email": "a@example.com"})
    body = {"allOrNone": False, "records": [
        {"attributes": {"type": "Contact"}, "LastName": "B", "Email": "a@example.com",
         "External_Shopify_ID__c": "1"}]}
    [item] = http.patch("/composite/sobjects/Contact/External_Shopify_ID__c", json=body).json()
    assert item["errors"][0]["statusCode"] == "DUPLICATES_DETECTED"
    [item] = http.patch("/composite/sobjects/Contact/External_Shopify_ID__c", json=body,
                        headers=ALLOW_SAVE).json()
    assert item["success"] is True


def test_active_rules_are_duplicate_rule_records(sf, control) -> None:
    _contact_rule(control)
    control.post("duplicate-rules", {"object": "Account", "fields": ["Name"], "active": False})
    rows = sf.query(
        "SELECT DeveloperName, MasterLabel, SobjectType FROM DuplicateRule "
        "WHERE IsActive = true AND SobjectType IN ('Account', 'Contact', 'Opportunity')"
    )["records"]
    assert [(r["DeveloperName"], r["SobjectType"]) for r in rows] == [
        ("Contacts_By_Email", "Contact")
    ]
    control.delete("duplicate-rules")
    assert sf.query("SELECT Id FROM DuplicateRule")["totalSize"] == 0
    sf.Contact.create({"LastName": "A", "Email": "a@example.com"})
    sf.Contact.create({"LastName": "B", "Email": "a@example.com"})  # no rule, no check
