"""Field validation as Salesforce applies it (research §4, §5)."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

CON = "External_Shopify_ID__c"
OPP = "External_Shopify_Order_ID__c"
ACC = "External_Shopify_Account_ID__c"


def _err(call) -> dict:
    with pytest.raises(SalesforceMalformedRequest) as err:
        call()
    return err.value.content[0]


def _opp(**extra) -> dict:
    return {"Name": "O", "StageName": "New Order", "CloseDate": "2026-03-01", **extra}


def test_required_fields_missing(sf) -> None:
    """research/salesforce.md §5: LastName / Name, StageName, CloseDate required →
    REQUIRED_FIELD_MISSING."""
    item = _err(lambda: sf.Contact.create({"FirstName": "A"}))
    assert item["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert item["fields"] == ["LastName"]
    item = _err(lambda: sf.Opportunity.create({"Name": "O"}))
    assert set(item["fields"]) == {"StageName", "CloseDate"}
    rid = sf.Contact.create({"LastName": "A"})["id"]
    item = _err(lambda: sf.Contact.update(rid, {"LastName": None}))
    assert item["errorCode"] == "REQUIRED_FIELD_MISSING"


@pytest.mark.parametrize(
    ("obj", "field", "limit"),
    [("Account", "Name", 255), ("Account", "BillingCity", 40), ("Account", "BillingState", 80),
     ("Account", "BillingPostalCode", 20), ("Account", "BillingCountry", 80),
     ("Account", "Phone", 40), ("Account", "BillingStreet", 255), ("Contact", "FirstName", 40),
     ("Contact", "LastName", 80), ("Contact", "Phone", 40), ("Opportunity", "Name", 120)],
)
def test_string_too_long_never_truncates(sf, http, obj, field, limit) -> None:
    """research/salesforce.md §4/§5: over-long strings fail with STRING_TOO_LONG (no truncation)."""
    base = {"Account": {"Name": "A"}, "Contact": {"LastName": "L"}, "Opportunity": _opp()}[obj]
    ok = http.post(f"/sobjects/{obj}", json={**base, field: "x" * limit})
    assert ok.status_code == 201
    bad = http.post(f"/sobjects/{obj}", json={**base, field: "x" * (limit + 1)})
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "STRING_TOO_LONG"
    assert bad.json()[0]["fields"] == [field]


def test_email_too_long_and_invalid(sf) -> None:
    """research/salesforce.md §5: Email is email-type, 80 chars → INVALID_EMAIL_ADDRESS /
    STRING_TOO_LONG."""
    assert _err(lambda: sf.Contact.create({"LastName": "L", "Email": "a@b"}))["errorCode"] == (
        "INVALID_EMAIL_ADDRESS")
    long_email = "a" * 75 + "@b.com"
    assert _err(lambda: sf.Contact.create({"LastName": "L", "Email": long_email}))[
        "errorCode"] == "STRING_TOO_LONG"


def test_restricted_picklists(sf, control) -> None:
    """research/salesforce.md §5: StageName / CurrencyIsoCode restricted →
    INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST."""
    item = _err(lambda: sf.Opportunity.create(_opp(StageName="Paid")))
    assert item["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    control.post("org", {"multi_currency": True})
    assert sf.Opportunity.create(_opp(CurrencyIsoCode="UAH"))["success"]
    item = _err(lambda: sf.Opportunity.create(_opp(CurrencyIsoCode="XXX")))
    assert item["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    control.post("org", {"stage_names": ["Open", "Done"]})
    assert _err(lambda: sf.Opportunity.create(_opp()))["fields"] == ["StageName"]


def test_unknown_field_and_single_currency(sf) -> None:
    """research/salesforce.md §4/§5: unknown field (e.g. CurrencyIsoCode in a single-currency org)
    → INVALID_FIELD."""
    item = _err(lambda: sf.Opportunity.create(_opp(CurrencyIsoCode="USD")))
    assert item["errorCode"] == "INVALID_FIELD"
    assert item["message"] == "No such column 'CurrencyIsoCode' on sobject of type Opportunity"


def test_missing_fields_org_variant(sf, control) -> None:
    """research/salesforce.md §5: an org without a field (missing_fields) → INVALID_FIELD."""
    control.post("org", {"missing_fields": ["Contact.External_Shopify_ID__c"]})
    assert _err(lambda: sf.Contact.create({"LastName": "L", CON: "1"}))["errorCode"] == (
        "INVALID_FIELD")


def test_contact_id_is_create_only(sf) -> None:
    """research/salesforce.md §5: Opportunity.ContactId createable, not updateable →
    INVALID_FIELD_FOR_INSERT_UPDATE."""
    cid = sf.Contact.create({"LastName": "L"})["id"]
    assert sf.Opportunity.upsert(f"{OPP}/1", _opp(ContactId=cid)) == 201
    item = _err(lambda: sf.Opportunity.upsert(f"{OPP}/1", _opp(ContactId=cid)))
    assert item["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert item["fields"] == ["ContactId"]


def test_unique_external_id_duplicate_value(sf) -> None:
    """research/salesforce.md §1: unique external id → DUPLICATE_VALUE, documented message."""
    first = sf.Account.create({"Name": "A", ACC: "k"})["id"]
    item = _err(lambda: sf.Account.create({"Name": "B", ACC: "k"}))
    assert item["errorCode"] == "DUPLICATE_VALUE"
    assert item["message"] == (
        f"duplicate value found: {ACC} duplicates value on record with id: {first}")


def test_injected_validation_rule(sf, control) -> None:
    """research/salesforce.md §4: validation rules fail with FIELD_CUSTOM_VALIDATION_EXCEPTION."""
    control.post("validation-rules", {"object": "Account", "field": "Name", "contains": "Test",
                                      "message": "No test accounts", "error_field": "Name"})
    item = _err(lambda: sf.Account.create({"Name": "A Test"}))
    assert item == {"message": "No test accounts", "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    "fields": ["Name"]}
    control.post("validation-rules", {"object": "Contact", "field": "Email",
                                      "regex": r"@blocked\.example$", "message": "blocked"})
    assert _err(lambda: sf.Contact.create({"LastName": "L", "Email": "x@blocked.example"}))[
        "errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    control.delete("validation-rules")
    assert sf.Account.create({"Name": "A Test"})["success"]


def test_dates_and_amounts(sf) -> None:
    """research/salesforce.md §5: CloseDate is a date (YYYY-MM-DD); Amount is numeric."""
    assert _err(lambda: sf.Opportunity.create(_opp(CloseDate="01/02/2026")))["fields"] == [
        "CloseDate"]
    assert _err(lambda: sf.Opportunity.create(_opp(CloseDate="2026-02-30")))["fields"] == [
        "CloseDate"]
    assert _err(lambda: sf.Opportunity.create(_opp(Amount="ten")))["fields"] == ["Amount"]
    rid = sf.Opportunity.create(_opp(Amount="12.345"))["id"]
    assert sf.Opportunity.get(rid)["Amount"] == 12.35


def test_malformed_reference_id(sf) -> None:
    """research/salesforce.md §4: a bad lookup id → MALFORMED_ID; unknown one →
    INVALID_CROSS_REFERENCE_KEY."""
    assert _err(lambda: sf.Contact.create({"LastName": "L", "AccountId": "bad"}))[
        "errorCode"] == "MALFORMED_ID"
    assert _err(lambda: sf.Contact.create({"LastName": "L",
                                           "AccountId": "001Hs0000000zzzAAA"}))[
        "errorCode"] in ("INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID")


def test_person_accounts(sf, control) -> None:
    """research/salesforce.md §5: person accounts — FirstName/LastName/PersonEmail, Name derived,
    __pc field."""
    control.post("org", {"person_accounts": True})
    rts = sf.query(
        "SELECT Id FROM RecordType WHERE SobjectType = 'Account' AND IsPersonType = true")
    rt = rts["records"][0]["Id"]
    sf.Account.upsert("External_Shopify_ID__pc/77", {"RecordTypeId": rt, "FirstName": "Ada",
                                                     "LastName": "Lovelace",
                                                     "PersonEmail": "ada@example.com"})
    rec = sf.Account.get_by_custom_id("External_Shopify_ID__pc", "77")
    assert rec["IsPersonAccount"] is True
    assert rec["Name"] == "Ada Lovelace"
    assert _err(lambda: sf.Account.create({"RecordTypeId": rt, "FirstName": "X"}))[
        "errorCode"] == "REQUIRED_FIELD_MISSING"
    assert _err(lambda: sf.Contact.create({"LastName": "C", "AccountId": rec["Id"]}))[
        "errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    fields = {f["name"] for f in sf.Account.describe()["fields"]}
    assert {"IsPersonAccount", "PersonEmail", "External_Shopify_ID__pc"} <= fields


def test_every_failing_validation_rule_is_reported(sf, control) -> None:
    """research §4: the REST error body is an array; each failing rule is one element."""
    control.post("validation-rules", {"object": "Account", "field": "Name", "contains": "Test",
                                      "message": "no test accounts", "error_field": "Name"})
    control.post("validation-rules", {"object": "Account", "field": "Name", "regex": "[0-9]",
                                      "message": "no digits in names"})
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Account.create({"Name": "Test 1"})
    assert [(e["errorCode"], e["message"]) for e in err.value.content] == [
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "no test accounts"),
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "no digits in names"),
    ]
