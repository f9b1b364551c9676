"""/composite and sObject Collections (research §2)."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

ACC = "External_Shopify_Account_ID__c"
CON = "External_Shopify_ID__c"
OPP = "External_Shopify_Order_ID__c"
V = "/services/data/v59.0"


def _order(n: int, email: str = "a@example.com", stage: str = "New Order") -> dict:
    return {
        "allOrNone": True,
        "collateSubrequests": False,
        "compositeRequest": [
            {"method": "PATCH", "url": f"{V}/sobjects/Account/{ACC}/shop_cust_{n}",
             "referenceId": "refAccount", "body": {"Name": f"Customer {n}"}},
            {"method": "PATCH", "url": f"{V}/sobjects/Contact/{CON}/{n}",
             "referenceId": "refContact",
             "body": {"LastName": "Smith", "Email": email, "AccountId": "@{refAccount.id}"}},
            {"method": "PATCH", "url": f"{V}/sobjects/Opportunity/{OPP}/{n}00",
             "referenceId": "refOpp",
             "body": {"Name": f"Shopify Order #{n}", "StageName": stage,
                      "CloseDate": "2026-04-01", "AccountId": "@{refAccount.id}"}},
        ],
    }


def test_three_dependent_upserts_are_one_api_call(sf, control, sandbox) -> None:
    """research/salesforce.md §2: a composite counts as ONE API call; references @{ref.id}."""
    before = control.calls()
    resp = sf.restful("composite", method="POST", json=_order(1))
    assert control.calls() - before == 1
    codes = [r["httpStatusCode"] for r in resp["compositeResponse"]]
    assert codes == [201, 201, 201]
    acc_id = resp["compositeResponse"][0]["body"]["id"]
    opp = sf.Opportunity.get_by_custom_id(OPP, "100")
    assert opp["AccountId"] == acc_id
    again = sf.restful("composite", method="POST", json=_order(1))
    assert [r["httpStatusCode"] for r in again["compositeResponse"]] == [200, 200, 200]
    assert [r["referenceId"] for r in again["compositeResponse"]] == [
        "refAccount", "refContact", "refOpp"]
    assert control.get("stats")["composite"]["requests"] == 2


def test_all_or_none_rolls_back_and_halts_others(sf, control) -> None:
    """research/salesforce.md §2: allOrNone → rollback, failed one's error, others 400
    PROCESSING_HALTED, HTTP 200."""
    resp = sf.restful("composite", method="POST", json=_order(2, email="bad"))
    out = resp["compositeResponse"]
    assert out[1]["httpStatusCode"] == 400
    assert out[1]["body"][0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    assert out[0]["httpStatusCode"] == 400
    assert out[2]["httpStatusCode"] == 400
    assert out[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert out[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert control.get("dump")["objects"]["Account"] == []


def test_not_all_or_none_keeps_independent_successes(sf, control) -> None:
    """research/salesforce.md §2: allOrNone false → independent subrequests still run."""
    body = _order(3, email="bad")
    body["allOrNone"] = False
    out = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert [o["httpStatusCode"] for o in out] == [201, 400, 201]
    assert len(control.get("dump", object="Account")["records"]) == 1


def test_dependent_of_failed_subrequest_fails(sf) -> None:
    """research/salesforce.md §2: a reference to a failed subrequest can't resolve."""
    body = _order(4)
    body["allOrNone"] = False
    body["compositeRequest"][0]["body"] = {"Name": "x" * 300}
    out = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert out[0]["body"][0]["errorCode"] == "STRING_TOO_LONG"
    assert out[1]["httpStatusCode"] == 400
    assert out[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"


def test_query_subrequest_and_records_reference(sf) -> None:
    """research/salesforce.md §2: query subrequests; @{ref.records[0].Id} in url and body."""
    sf.Account.create({"Name": "Acme", ACC: "q1"})
    body = {"allOrNone": True, "compositeRequest": [
        {"method": "GET", "referenceId": "acc",
         "url": f"{V}/query?q=SELECT+Id,Name+FROM+Account+WHERE+{ACC}='q1'"},
        {"method": "PATCH", "referenceId": "upd",
         "url": f"{V}/sobjects/Account/@{{acc.records[0].Id}}", "body": {"Name": "Acme 2"}},
        {"method": "POST", "referenceId": "con", "url": f"{V}/sobjects/Contact",
         "body": {"LastName": "L", "AccountId": "@{acc.records[0].Id}"}},
    ]}
    out = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert [o["httpStatusCode"] for o in out] == [200, 204, 201]
    assert out[0]["body"]["totalSize"] == 1
    assert sf.query("SELECT Name FROM Account")["records"][0]["Name"] == "Acme 2"


def test_composite_limits(sf) -> None:
    """research/salesforce.md §2: at most 25 subrequests; invalid referenceId → 400."""
    subs = [{"method": "GET", "url": f"{V}/limits", "referenceId": f"r{i}"} for i in range(26)]
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json={"compositeRequest": subs})
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json={"compositeRequest": [
            {"method": "GET", "url": f"{V}/limits", "referenceId": "bad-ref"}]})
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json={"compositeRequest": [
            {"method": "GET", "url": f"{V}/limits", "referenceId": "a",
             "httpHeaders": {"Authorization": "x"}}]})


def _records(n: int, start: int = 0) -> list[dict]:
    return [{"attributes": {"type": "Account"}, "Name": f"A{i}", ACC: f"k{i}"}
            for i in range(start, start + n)]


def test_collections_upsert_200_records_is_one_call(sf, control) -> None:
    """research/salesforce.md §2: 200-record collections upsert = one API call, results in order."""
    before = control.calls()
    out = sf.restful(f"composite/sobjects/Account/{ACC}", method="PATCH",
                     json={"allOrNone": False, "records": _records(200)})
    assert control.calls() - before == 1
    assert len(out) == 200
    assert all(o["success"] and o["created"] for o in out)
    ids = [o["id"] for o in out]
    names = {r["Id"]: r["Name"] for r in control.get("dump", object="Account")["records"]}
    assert [names[i] for i in ids] == [f"A{i}" for i in range(200)]
    again = sf.restful(f"composite/sobjects/Account/{ACC}", method="PATCH",
                       json={"records": _records(2)})
    assert [o["created"] for o in again] == [False, False]


def test_collections_partial_failure_is_http_200(sf) -> None:
    """research/salesforce.md §2: well-formed request → HTTP 200, per-record errors with
    statusCode."""
    recs = _records(3)
    recs[1]["Name"] = "x" * 256
    out = sf.restful(f"composite/sobjects/Account/{ACC}", method="PATCH",
                     json={"records": recs})
    assert [o["success"] for o in out] == [True, False, True]
    assert out[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert out[1]["errors"][0]["fields"] == ["Name"]


def test_collections_all_or_none_rolls_back(sf, control) -> None:
    """research/salesforce.md §2: allOrNone → good rows get ALL_OR_NONE_OPERATION_ROLLED_BACK."""
    recs = _records(3)
    recs[2]["Name"] = None
    out = sf.restful(f"composite/sobjects/Account/{ACC}", method="PATCH",
                     json={"allOrNone": True, "records": recs})
    assert out[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert out[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert control.get("dump", object="Account")["records"] == []


def test_collections_duplicate_key_in_batch(sf, control) -> None:
    """research/salesforce.md §1: same key twice in one collection → DUPLICATE_EXTERNAL_ID for
    both."""
    recs = _records(3)
    recs[2][ACC] = "k0"
    out = sf.restful(f"composite/sobjects/Account/{ACC}", method="PATCH", json={"records": recs})
    assert [o["success"] for o in out] == [False, True, False]
    assert out[0]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
    assert len(control.get("dump", object="Account")["records"]) == 1


def test_collections_more_than_200_is_400(sf) -> None:
    """research/salesforce.md §2: up to 200 records per collection request."""
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful(f"composite/sobjects/Account/{ACC}", method="PATCH",
                   json={"records": _records(201)})


def test_collections_create_update_and_parent_key(sf) -> None:
    """research/salesforce.md §2: POST create / PATCH update collections; nested parent external
    id."""
    sf.Account.create({"Name": "P", ACC: "p1"})
    created = sf.restful("composite/sobjects", method="POST", json={"records": [
        {"attributes": {"type": "Contact"}, "LastName": "A", "Account": {ACC: "p1"}},
        {"attributes": {"type": "Contact"}, "LastName": "B", "Account": {ACC: "ghost"}},
    ]})
    assert created[0]["success"]
    assert not created[1]["success"]
    assert created[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    updated = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Contact"}, "id": created[0]["id"], "FirstName": "Z"}]})
    assert updated == [{"id": created[0]["id"], "success": True, "errors": []}]
    assert sf.Contact.get(created[0]["id"])["FirstName"] == "Z"


def test_collated_implicit_dependency_can_fail(sf, control) -> None:
    """research/salesforce.md §2: collated subrequests have no order guarantee without @{ref}."""
    control.post("org", {"collate_reorders": True})
    body = _order(7)
    body["collateSubrequests"] = True
    body["compositeRequest"][1]["body"] = {"LastName": "S", "Account": {ACC: "shop_cust_7"}}
    del body["compositeRequest"][2]
    out = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert out[1]["body"][0]["errorCode"] == "INVALID_FIELD"  # ran before its parent existed
    safe = sf.restful("composite", method="POST", json=_order(8))["compositeResponse"]
    assert [o["httpStatusCode"] for o in safe] == [201, 201, 201]


def test_collections_get_and_delete(sf, http) -> None:
    """research/salesforce.md §2: collections get (ids, fields) and delete (ids)."""
    ids = [sf.Account.create({"Name": f"A{i}"})["id"] for i in range(3)]
    got = http.get("/composite/sobjects/Account",
                   params={"ids": ",".join(ids), "fields": "Name"}).json()
    assert [g["Name"] for g in got] == ["A0", "A1", "A2"]
    deleted = http.delete("/composite/sobjects", params={"ids": ",".join(ids[:2])}).json()
    assert [d["success"] for d in deleted] == [True, True]
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 1
    missing = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Account"}, "id": ids[0], "Name": "x"}]})
    assert missing[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
