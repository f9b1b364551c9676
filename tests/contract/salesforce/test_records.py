"""sObject rows and upsert by external id (research §1, §5)."""

from __future__ import annotations

import httpx
import pytest
from simple_salesforce import format_soql
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

ACC = "External_Shopify_Account_ID__c"
CON = "External_Shopify_ID__c"
OPP = "External_Shopify_Order_ID__c"


def test_create_returns_201_with_salesforce_id(sf, http) -> None:
    """research/salesforce.md §1/§4: create → 201 {id, success, errors}; 18-char 001 id."""
    resp = http.post("/sobjects/Account", json={"Name": "Acme"})
    assert resp.status_code == 201
    body = resp.json()
    assert body["success"] is True
    assert body["errors"] == []
    assert len(body["id"]) == 18
    assert body["id"].startswith("001")
    contact = sf.Contact.create({"LastName": "Smith"})
    assert contact["id"].startswith("003")
    opp = sf.Opportunity.create({"Name": "O", "StageName": "New Order", "CloseDate": "2026-01-01"})
    assert opp["id"].startswith("006")


def test_get_update_delete_by_id(sf, http) -> None:
    """research/salesforce.md §1: GET by Id (?fields=), PATCH 204, DELETE 204, then 404."""
    rid = sf.Account.create({"Name": "Acme", "BillingCity": "Kyiv"})["id"]
    rec = sf.Account.get(rid)
    assert rec["Name"] == "Acme"
    assert rec["attributes"]["type"] == "Account"
    part = http.get(f"/sobjects/Account/{rid}", params={"fields": "Name"}).json()
    assert set(part) == {"attributes", "Name"}
    assert sf.Account.update(rid, {"Name": "Acme 2"}) == 204
    assert sf.Account.get(rid)["Name"] == "Acme 2"
    assert sf.Account.get(rid[:15])["Id"] == rid
    assert sf.Account.delete(rid) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(rid)


def test_upsert_creates_201_then_updates_200(sf) -> None:
    """research/salesforce.md §1: created → 201 created:true; matched → 200 created:false (v46+)."""
    contact = sf.Contact
    assert contact.upsert(f"{CON}/123", {"LastName": "Smith"}) == 201
    assert contact.upsert(f"{CON}/123", {"LastName": "Smyth"}) == 200
    resp = contact.upsert(f"{CON}/123", {"FirstName": "A"}, raw_response=True)
    assert resp.json() == {"id": resp.json()["id"], "success": True, "errors": [], "created": False}
    assert sf.Contact.get_by_custom_id(CON, "123")["LastName"] == "Smyth"


def test_upsert_v45_returns_204(http, url, token) -> None:
    """research/salesforce.md §1: in API v45.0 and earlier an update is 204 with no body."""
    import httpx

    hdr = {"Authorization": f"Bearer {token}"}
    base = f"{url}/services/data/v45.0/sobjects/Account/{ACC}/k1"
    first = httpx.patch(base, json={"Name": "A"}, headers=hdr)
    assert first.status_code == 201
    assert "created" not in first.json()
    second = httpx.patch(base, json={"Name": "B"}, headers=hdr)
    assert second.status_code == 204
    assert second.content == b""


def test_upsert_update_only(http) -> None:
    """research/salesforce.md §1: ?updateOnly=true never creates (404 when no match)."""
    resp = http.patch(
        f"/sobjects/Account/{ACC}/nope", params={"updateOnly": "true"}, json={"Name": "A"}
    )
    assert resp.status_code == 404


def test_upsert_300_when_several_records_match(sf, control) -> None:
    """research/salesforce.md §1: 300 when several records match (non-unique external id)."""
    control.post("org", {"external_id_unique": False})
    sf.Contact.create({"LastName": "A", CON: "dup"})
    sf.Contact.create({"LastName": "B", CON: "dup"})
    with pytest.raises(SalesforceMoreThanOneRecord) as err:
        sf.Contact.upsert(f"{CON}/dup", {"LastName": "C"})
    assert err.value.status == 300
    assert len(err.value.content) == 2
    assert "/sobjects/Contact/003" in err.value.content[0]
    with pytest.raises(SalesforceMoreThanOneRecord):
        sf.Contact.get_by_custom_id(CON, "dup")
    assert {r["LastName"] for r in control.get("dump", object="Contact")["records"]} == {"A", "B"}


def test_upsert_on_non_external_id_field_is_404(sf) -> None:
    """research/salesforce.md §1: a field that is not an external id → 404 NOT_FOUND."""
    with pytest.raises(SalesforceResourceNotFound) as err:
        sf.Account.upsert("BillingCity/Kyiv", {"Name": "A"})
    assert err.value.content[0]["errorCode"] == "NOT_FOUND"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.upsert("Nope__c/1", {"Name": "A"})


def test_upsert_rejects_key_or_id_in_body(sf) -> None:
    """research/salesforce.md §1: do not specify Id or the external id field in the body."""
    with pytest.raises(SalesforceMalformedRequest):
        sf.Contact.upsert(f"{CON}/1", {"LastName": "A", CON: "1"})
    with pytest.raises(SalesforceMalformedRequest):
        sf.Contact.upsert(f"{CON}/1", {"LastName": "A", "Id": "003000000000001AAA"})


def test_upsert_validation_error_is_400_array(sf) -> None:
    """research/salesforce.md §1: validation failure → 400 error array (message, errorCode,
    fields)."""
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Contact.upsert(f"{CON}/1", {"LastName": "A", "Email": "not-an-email"})
    assert err.value.content == [
        {
            "message": "Email: invalid email address: not-an-email",
            "errorCode": "INVALID_EMAIL_ADDRESS",
            "fields": ["Email"],
        }
    ]


def test_parent_by_external_id_in_body(sf, sandbox) -> None:
    """research/salesforce.md §1: {"Account": {ext: v}} sets AccountId via the parent's key."""
    acc = sf.Account.create({"Name": "P", ACC: "shop_cust_1"})["id"]
    sf.Contact.upsert(f"{CON}/1", {"LastName": "A", "Account": {ACC: "shop_cust_1"}})
    rec = sf.Contact.get_by_custom_id(CON, "1")
    assert rec["AccountId"] == acc
    sf.Opportunity.upsert(
        f"{OPP}/9",
        {
            "Name": "O",
            "StageName": "New Order",
            "CloseDate": "2026-02-01",
            "Account": {ACC: "shop_cust_1"},
            "Contact": {CON: "1"},
        },
    )
    assert sf.Opportunity.get_by_custom_id(OPP, "9")["ContactId"] == rec["Id"]


def test_parent_by_external_id_missing_parent_fails(sf) -> None:
    """research/salesforce.md §1: the parent must exist → INVALID_FIELD Foreign key external ID."""
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Contact.upsert(f"{CON}/1", {"LastName": "A", "Account": {ACC: "ghost"}})
    item = err.value.content[0]
    assert item["errorCode"] == "INVALID_FIELD"
    assert item["message"] == (
        f"Foreign key external ID: ghost not found for field {ACC} in entity Account"
    )


def test_external_id_matching_is_case_sensitive_by_default(sf, control) -> None:
    """research/salesforce.md §1: matching is case-insensitive only with the 'ABC = abc' option."""
    sf.Account.upsert(f"{ACC}/AbC", {"Name": "A"})
    assert sf.Account.upsert(f"{ACC}/abc", {"Name": "B"}) == 201
    control.post("reset")
    control.post("org", {"external_id_case_sensitive": False})
    sf.Account.upsert(f"{ACC}/AbC", {"Name": "A"})
    assert sf.Account.upsert(f"{ACC}/abc", {"Name": "B"}) == 200


def test_post_to_id_creates(http) -> None:
    """research/salesforce.md §1: POST /sobjects/{Object}/Id creates a record (v37+)."""
    resp = http.post("/sobjects/Account/Id", json={"Name": "A"})
    assert resp.status_code == 201
    assert resp.json()["created"] is True


def test_records_written_are_counted(sf, control, sandbox) -> None:
    """research/salesforce.md §4 (DESIGN §7): records created/updated are counted per object."""
    sf.Account.upsert(f"{ACC}/1", {"Name": "A"})
    sf.Account.upsert(f"{ACC}/1", {"Name": "B"})
    stats = control.get("stats")
    assert stats["records"]["Account"] == {"created": 1, "updated": 1}
    assert sandbox.stats["records"]["Account"]["created"] == 1
    assert len(sandbox.store.records["Account"]) == 1


def test_key_with_encoded_slash(http) -> None:
    """research/salesforce.md §1: a URL-encoded key (%2F) is decoded as one path segment."""
    resp = http.patch(
        f"/sobjects/Account/{ACC}/gid%3A%2F%2Fshopify%2FCustomer%2F1", json={"Name": "A"}
    )
    assert resp.status_code == 201
    got = http.get(f"/sobjects/Account/{ACC}/gid%3A%2F%2Fshopify%2FCustomer%2F1").json()
    assert got[ACC] == "gid://shopify/Customer/1"


def test_describe_global_lists_objects(sf) -> None:
    """research/salesforce.md §5: describe global: objects and key prefixes."""
    objs = {o["name"]: o["keyPrefix"] for o in sf.describe()["sobjects"]}
    assert objs == {
        "Account": "001",
        "Contact": "003",
        "Opportunity": "006",
        "DuplicateRule": "0Bm",  # Object Reference: describeSObjects(), query()
    }


def test_email_with_inc_tld_in_path_is_404(http) -> None:
    """research/salesforce.md §1: an email-like key ending in a TLD such as .inc → 404."""
    resp = http.patch("/sobjects/Contact/External_Shopify_ID__c/a@acme.inc", json={"LastName": "L"})
    assert resp.status_code == 404


def test_a_deleted_record_referred_to_by_id_answers_entity_is_deleted(sf, http) -> None:
    """research §4 (ENTITY_IS_DELETED): a deleted record's Id, as a resource or as a lookup."""
    account = sf.Account.create({"Name": "Acme"})["id"]
    contact = sf.Contact.create({"LastName": "Gone", "AccountId": account})["id"]
    assert sf.Contact.delete(contact) == 204
    patched = http.patch(f"/sobjects/Contact/{contact}", json={"LastName": "Back"})
    assert patched.status_code == 404
    assert patched.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    linked = http.post(
        "/sobjects/Opportunity",
        json={
            "Name": "x",
            "StageName": "Prospecting",
            "CloseDate": "2026-01-01",
            "ContactId": contact,
        },
    )
    assert linked.status_code == 400
    assert linked.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    # Upsert by external id never matches a record in the recycle bin: it creates a new one.
    keyed = sf.Contact.create({"LastName": "Keyed", CON: "77"})["id"]
    sf.Contact.delete(keyed)
    assert sf.Contact.upsert(f"{CON}/77", {"LastName": "New"}) == 201


def test_merge_keeps_the_survivor_moves_children_and_deletes_the_loser(sf, http, control) -> None:
    """The control-API merge: survivor's own values, children re-pointed, loser deleted."""
    account = sf.Account.create({"Name": "Acme"})["id"]
    loser = sf.Contact.create(
        {"LastName": "Dup", "Email": "a@example.com", CON: "42", "AccountId": account}
    )["id"]
    survivor = sf.Contact.create({"LastName": "Main", "Email": "a@example.com"})["id"]
    opp = sf.Opportunity.create(
        {"Name": "o", "StageName": "Prospecting", "CloseDate": "2026-01-01", "ContactId": loser}
    )["id"]
    answer = control.post("merge", {"object": "Contact", "survivor": survivor, "losers": [loser]})
    assert answer == {"reparented": 1, "deleted": 1}
    kept = sf.Contact.get(survivor)
    assert (kept["LastName"], kept[CON]) == ("Main", None)  # the loser's key went with it
    assert sf.Opportunity.get(opp)["ContactId"] == survivor
    gone = http.get(f"/sobjects/Contact/{loser}")
    assert (gone.status_code, gone.json()[0]["errorCode"]) == (404, "ENTITY_IS_DELETED")
    # The loser, through queryAll, names the record that remains; a plain query omits it.
    soql = format_soql("SELECT Id, MasterRecordId FROM Contact WHERE Id = {}", loser)
    assert [r["MasterRecordId"] for r in sf.query_all(soql, include_deleted=True)["records"]] == [
        survivor
    ]
    assert sf.query_all(soql)["records"] == []
    assert sf.Contact.get(survivor)["MasterRecordId"] is None
    with pytest.raises(httpx.HTTPStatusError):
        control.post("merge", {"object": "Contact", "survivor": survivor, "losers": [survivor]})


def test_deleting_an_account_deletes_its_contacts_and_opportunities(sf, http) -> None:
    """research/salesforce.md §8: an Account's Contacts and Opportunities go to the recycle bin
    with it (ENTITY_IS_DELETED by Id, IsDeleted through queryAll); other Accounts' children and
    records without that Account stay."""
    account = sf.Account.create({"Name": "Acme"})["id"]
    other = sf.Account.create({"Name": "Other"})["id"]
    contact = sf.Contact.create({"LastName": "Child", "AccountId": account})["id"]
    opp = sf.Opportunity.create(
        {"Name": "o", "StageName": "Prospecting", "CloseDate": "2026-01-01", "AccountId": account}
    )["id"]
    kept_contact = sf.Contact.create({"LastName": "Kept", "AccountId": other})["id"]
    loose_opp = sf.Opportunity.create(
        {
            "Name": "loose",
            "StageName": "Prospecting",
            "CloseDate": "2026-01-01",
            "ContactId": kept_contact,
        }
    )["id"]
    assert sf.Account.delete(account) == 204
    for obj, rid in (("Contact", contact), ("Opportunity", opp)):
        gone = http.get(f"/sobjects/{obj}/{rid}")
        assert (gone.status_code, gone.json()[0]["errorCode"]) == (404, "ENTITY_IS_DELETED")
        soql = format_soql("SELECT Id, IsDeleted FROM {:literal} WHERE Id = {}", obj, rid)
        assert sf.query_all(soql)["records"] == []
        assert [r["IsDeleted"] for r in sf.query_all(soql, include_deleted=True)["records"]] == [
            True
        ]
    assert sf.Contact.get(kept_contact)["AccountId"] == other
    assert sf.Opportunity.get(loose_opp)["Name"] == "loose"
    assert sf.Account.get(other)["Name"] == "Other"


def test_an_account_deleted_through_collections_takes_its_children(sf, http) -> None:
    """The cascade is the delete's, whichever API deletes the Account (here sObject
    Collections, research §2)."""
    account = sf.Account.create({"Name": "Acme"})["id"]
    contact = sf.Contact.create({"LastName": "Child", "AccountId": account})["id"]
    resp = http.delete("/composite/sobjects", params={"ids": account})
    assert resp.status_code == 200
    assert resp.json()[0]["success"] is True
    gone = http.get(f"/sobjects/Contact/{contact}")
    assert (gone.status_code, gone.json()[0]["errorCode"]) == (404, "ENTITY_IS_DELETED")
