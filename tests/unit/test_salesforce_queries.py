"""The SOQL builders: exact text, escaped values, and names that cannot change a query."""

from __future__ import annotations

from datetime import date

import pytest

from tasks.core.errors import ConfigError
from tasks.salesforce import queries

KEY = "Shopify_Order_Id__c"


def test_records_by_keys_selects_the_key_once_and_escapes_the_keys() -> None:
    soql = queries.records_by_keys("Opportunity", KEY, ["1", "o'hare"], ["Id", KEY, "Name"])
    assert soql == (
        f"SELECT {KEY}, Id, Name FROM Opportunity WHERE {KEY} IN ('1','o\\'hare')"  # noqa: S608
    )


def test_contacts_by_emails_escapes_the_address() -> None:
    soql = queries.contacts_by_emails(["o'brien@example.com"], "Shopify_Customer_Id__c")
    assert soql == (
        "SELECT Id, AccountId, Email, Shopify_Customer_Id__c FROM Contact "
        "WHERE Email IN ('o\\'brien@example.com') ORDER BY CreatedDate ASC"
    )


def test_emails_and_keys_are_chunked_to_stay_inside_a_get_url() -> None:
    emails = [f"{n}@x.io" for n in range(queries.EMAIL_CHUNK + 1)]
    keys = [str(n) for n in range(2 * queries.SOQL_IN_CHUNK + 1)]
    assert len(queries.contacts_by_emails_chunked(emails, "Key__c")) == 2
    chunks = queries.records_by_keys_chunked("Opportunity", KEY, keys, ["Id"])
    assert len(chunks) == 3
    assert chunks[-1].endswith(f"IN ('{keys[-1]}')")


def test_contacts_by_emails_is_one_in_list() -> None:
    soql = queries.contacts_by_emails(["a@x.io", "b\\c@x.io"], "Key__c")
    assert soql == (
        "SELECT Id, AccountId, Email, Key__c FROM Contact "
        "WHERE Email IN ('a@x.io','b\\\\c@x.io') ORDER BY CreatedDate ASC"
    )


def test_merged_into_reads_master_record_id() -> None:
    assert queries.merged_into("Account", "001'x") == (
        "SELECT Id, MasterRecordId FROM Account WHERE Id = '001\\'x'"
    )


def test_reconcile_read_back_queries() -> None:
    fields = ["Id", KEY, "Name", "Amount", "CloseDate", "Account.Shopify_Customer_Key__c"]
    select = ", ".join(fields)
    assert queries.keyed_closing_between(
        "Opportunity", KEY, fields, date(2026, 11, 30), date(2026, 12, 1)
    ) == (
        f"SELECT {select} FROM Opportunity WHERE {KEY} != null "  # noqa: S608
        "AND CloseDate >= 2026-11-30 AND CloseDate <= 2026-12-01"
    )
    assert queries.keyed_records("Opportunity", KEY, fields) == (
        f"SELECT {select} FROM Opportunity WHERE {KEY} != null"  # noqa: S608
    )
    assert queries.contacts_with_email("Key__c") == (
        "SELECT Id, AccountId, Email, CreatedDate, Key__c FROM Contact WHERE Email != null"
    )


def test_fixed_queries_name_what_they_read() -> None:
    assert "FROM RecordType" in queries.PERSON_RECORD_TYPES
    assert "IsPersonType = true" in queries.PERSON_RECORD_TYPES
    assert "FROM DuplicateRule WHERE IsActive = true" in queries.ACTIVE_DUPLICATE_RULES


@pytest.mark.parametrize(
    "bad",
    ["Name FROM User --", "Key__c)", "1Field", "", "Name, Id", "Account..Key__c", "Key__c'"],
)
def test_a_name_that_is_not_an_api_name_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        queries.records_by_keys("Opportunity", bad, ["1"], ["Id"])
    with pytest.raises(ConfigError):
        queries.keyed_records(bad, KEY, ["Id"])
    with pytest.raises(ConfigError):
        queries.contacts_with_email(bad)


@pytest.mark.parametrize("good", ["Name", "ns__Key__c", "Account.Shopify_Key__c", "X1_y"])
def test_api_names_pass(good: str) -> None:
    assert queries.api_name(good) == good
