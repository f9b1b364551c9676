"""Pure pieces of the org-level Salesforce handling: Retry-After, Sforce-Limit-Info, the person
record type choice, duplicate-rule details and checks, the full error list of a composite."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks.checks.doctor import duplicate_rule_checks
from tasks.core.errors import RateLimited, SyncError
from tasks.core.mapping import MappingConfig
from tasks.salesforce.composite import OrderWrite, build_composite, parse_composite
from tasks.salesforce.errors import classify, record_errors, retry_after_seconds
from tasks.salesforce.http import parse_limit_info
from tasks.salesforce.org import choose_person_record_type
from tasks.salesforce.port import ApiUsage

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Wed, 02 Dec 2026 06:02:00 GMT", 120.0),
        ("Wed, 02 Dec 2026 05:00:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value, seconds) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


def test_a_rate_limit_carries_retry_after() -> None:
    error = classify(429, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "slow"}],
                     retry_after=30)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 30


@pytest.mark.parametrize(
    ("header", "usage"),
    [
        ("api-usage=18/5000", ApiUsage(18, 5000)),
        ("api-usage=10018/100000; api-bursts=1/750", ApiUsage(10018, 100000)),
        ("per-app-api-usage=17/250(appName=x)", None),
        (None, None),
    ],
)
def test_limit_info_header(header, usage) -> None:
    assert parse_limit_info(header) == usage


TYPES = [
    {"Id": "012000000000001AAA", "DeveloperName": "Shop_Buyer"},
    {"Id": "012000000000002AAA", "DeveloperName": "PersonAccount"},
]


@pytest.mark.parametrize(
    ("configured", "chosen"),
    [
        (None, "012000000000002AAA"),  # PersonAccount first
        ("Shop_Buyer", "012000000000001AAA"),
        ("012000000000001AAA", "012000000000001AAA"),
        ("012000000000001", "012000000000001AAA"),  # a 15-character id
        ("Nope", None),
    ],
)
def test_person_record_type_choice(configured, chosen) -> None:
    assert choose_person_record_type(TYPES, configured) == chosen


def test_no_person_record_type_without_any() -> None:
    assert choose_person_record_type([], None) is None
    assert choose_person_record_type(TYPES[:1], None) == "012000000000001AAA"


def test_duplicates_detected_names_the_rule_and_the_matches() -> None:
    [error] = record_errors([{
        "errorCode": "DUPLICATES_DETECTED", "message": "You're creating a duplicate record.",
        "fields": [],
        "duplicateResult": {"allowSave": False, "duplicateRule": "Contacts_By_Email",
                            "matchResults": [{"matchRecords": [
                                {"record": {"Id": "003A"}}, {"record": {"Id": "003B"}}]}]},
    }])
    assert error.message.endswith("(duplicate rule Contacts_By_Email (block); matches 003A, 003B)")


def test_duplicate_rule_checks() -> None:
    [none] = duplicate_rule_checks([], allow_save=True)
    assert none.ok
    rules = [{"SobjectType": "Contact", "DeveloperName": "By_Email"}]
    [some] = duplicate_rule_checks(rules, allow_save=True)
    assert (some.ok, some.severity) == (False, "warning")
    assert "Contact: By_Email" in some.detail
    [off] = duplicate_rule_checks(rules, allow_save=False)
    assert "ALLOW_SAVE=false" in off.detail


def _write() -> OrderWrite:
    return OrderWrite(
        account_field="A__c", account_key="a", account={"Name": "N"},
        opportunity_field="O__c", order_key="1", opportunity={"Name": "O"},
    )


def test_composite_subrequests_carry_the_headers() -> None:
    body = build_composite(_write(), "62.0", {"Sforce-Duplicate-Rule-Header": "allowSave=true"})
    assert all(
        sub["httpHeaders"] == {"Sforce-Duplicate-Rule-Header": "allowSave=true"}
        for sub in body["compositeRequest"]
    )
    assert "httpHeaders" not in build_composite(_write(), "62.0")["compositeRequest"][0]


def test_a_failed_composite_keeps_every_error_with_its_record() -> None:
    halted = [{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back"}]
    response = {"compositeResponse": [
        {"referenceId": "refAccount", "httpStatusCode": 400, "body": halted},
        {"referenceId": "refOpportunity", "httpStatusCode": 400, "body": [
            {"errorCode": "STRING_TOO_LONG", "message": "Name too long", "fields": ["Name"]},
            {"errorCode": "REQUIRED_FIELD_MISSING", "message": "CloseDate",
             "fields": ["CloseDate"]},
        ]},
    ]}
    with pytest.raises(SyncError) as caught:
        parse_composite(response, _write())
    error = caught.value
    assert (error.code, error.stage) == ("STRING_TOO_LONG", "opportunity")
    assert [(e.code, e.stage) for e in error.errors] == [
        ("STRING_TOO_LONG", "opportunity"),
        ("REQUIRED_FIELD_MISSING", "opportunity"),
    ]


def test_mapping_config_takes_a_person_record_type() -> None:
    assert MappingConfig(person_account_record_type="Shop_Buyer").person_account_record_type
