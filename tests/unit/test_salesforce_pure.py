"""Pure Salesforce code: error classification, the composite request, token requests."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tasks.core.errors import (
    AuthError,
    ConfigError,
    InvalidOrder,
    PermanentError,
    RateLimited,
    RecordError,
    RetryableError,
    StaleReference,
)
from tasks.runtime import salesforce_config
from tasks.salesforce import RecordResult
from tasks.salesforce.auth import JWT_GRANT, token_request
from tasks.salesforce.composite import (
    ContactWrite,
    OrderWrite,
    build_composite,
    dumps,
    parse_composite,
)
from tasks.salesforce.config import SalesforceConfig
from tasks.salesforce.errors import (
    cause_of,
    classify,
    classify_record,
    knock_on,
    refused_by_validation_rule,
    refused_create_only_field,
    required_fields_missing,
    schema_outdated,
)
from tasks.salesforce.results import parse_bulk_error
from tasks.settings import Settings


def err(code: str, message: str = "m", fields: list[str] | None = None) -> list[dict]:
    return [{"errorCode": code, "message": message, "fields": fields or []}]


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (401, err("INVALID_SESSION_ID"), AuthError, "INVALID_SESSION_ID"),
        (400, err("REQUIRED_FIELD_MISSING"), InvalidOrder, "REQUIRED_FIELD_MISSING"),
        (400, err("STRING_TOO_LONG"), InvalidOrder, "STRING_TOO_LONG"),
        (400, err("INVALID_EMAIL_ADDRESS"), InvalidOrder, "INVALID_EMAIL_ADDRESS"),
        (400, err("FIELD_CUSTOM_VALIDATION_EXCEPTION"), InvalidOrder, None),
        (400, err("DUPLICATES_DETECTED"), InvalidOrder, "DUPLICATES_DETECTED"),
        (403, err("REQUEST_LIMIT_EXCEEDED"), RateLimited, "REQUEST_LIMIT_EXCEEDED"),
        (429, "Too Many Requests", RateLimited, "HTTP_429"),
        (500, err("UNKNOWN_EXCEPTION"), RetryableError, "UNKNOWN_EXCEPTION"),
        (503, err("SERVER_UNAVAILABLE"), RetryableError, "SERVER_UNAVAILABLE"),
        (400, err("UNABLE_TO_LOCK_ROW"), RetryableError, "UNABLE_TO_LOCK_ROW"),
        (400, err("DUPLICATE_VALUE"), RetryableError, "DUPLICATE_VALUE"),
        (404, err("NOT_FOUND"), ConfigError, "NOT_FOUND"),
        (400, err("INVALID_FIELD"), ConfigError, "INVALID_FIELD"),
        (300, ["/services/data/v62.0/sobjects/Opportunity/006A"], PermanentError, None),
    ],
)
def test_the_error_table_of_design_section_3(status, body, kind, code) -> None:
    error = classify(status, body)
    assert type(error) is kind or isinstance(error, kind)
    if code:
        assert error.code == code
    assert not (isinstance(error, RateLimited) and kind is RetryableError)


def test_rate_limited_is_retryable_but_permanent_is_not() -> None:
    assert isinstance(classify(403, err("REQUEST_LIMIT_EXCEEDED")), RetryableError)
    assert not isinstance(classify(400, err("STRING_TOO_LONG")), RetryableError)


def test_collections_status_code_is_read_like_error_code() -> None:
    body = {"success": False, "errors": [{"statusCode": "STRING_TOO_LONG", "message": "x"}]}
    assert classify(400, body).code == "STRING_TOO_LONG"


def test_knock_on_errors_never_hide_the_real_cause() -> None:
    body = err("PROCESSING_HALTED") + err("INVALID_EMAIL_ADDRESS", "bad email", ["Email"])
    error = classify(400, body)
    assert (error.code, error.fields) == ("INVALID_EMAIL_ADDRESS", ["Email"])


def test_bulk_error_text_is_split_into_code_message_fields() -> None:
    parsed = parse_bulk_error("STRING_TOO_LONG:Name: data value too large:Name")
    assert (parsed.code, parsed.message, parsed.fields) == (
        "STRING_TOO_LONG",
        "Name: data value too large",
        ["Name"],
    )
    assert parse_bulk_error("ENTITY_IS_DELETED:entity is deleted:--").fields == []


def order_write(**changes) -> OrderWrite:
    base = {
        "account_field": "External_Shopify_Account_ID__c",
        "account_key": "shop_cust_42",
        "account": {"Name": "Acme", "External_Shopify_Account_ID__c": "shop_cust_42"},
        "opportunity_field": "External_Shopify_Order_ID__c",
        "order_key": "1001",
        "opportunity": {"Name": "Shopify Order #1001 (Ann Lee)", "Amount": Decimal("409.94")},
        "contact": {"LastName": "Lee", "Email": "ann@example.com"},
        "contact_field": "External_Shopify_ID__c",
        "contact_key": "42",
    }
    base.update(changes)
    return OrderWrite(**base)


def test_composite_upserts_three_records_in_order_with_references() -> None:
    body = build_composite(order_write(), "62.0")
    assert body["allOrNone"] is True
    assert body["collateSubrequests"] is False
    subs = body["compositeRequest"]
    assert [s["url"] for s in subs] == [
        "/services/data/v62.0/sobjects/Account/External_Shopify_Account_ID__c/shop_cust_42",
        "/services/data/v62.0/sobjects/Contact/External_Shopify_ID__c/42",
        "/services/data/v62.0/sobjects/Opportunity/External_Shopify_Order_ID__c/1001",
    ]
    assert "External_Shopify_Account_ID__c" not in subs[0]["body"]
    assert subs[1]["body"]["AccountId"] == "@{refAccount.id}"
    assert subs[2]["body"]["AccountId"] == "@{refAccount.id}"
    assert subs[2]["body"]["ContactId"] == "@{refContact.id}"


def test_update_of_an_existing_opportunity_never_sends_contact_id() -> None:
    body = build_composite(order_write(link_contact_to_opportunity=False), "62.0")
    assert "ContactId" not in body["compositeRequest"][2]["body"]


def test_adopting_a_contact_patches_it_by_id_and_stamps_the_key() -> None:
    write = order_write(contact_write=ContactWrite.UPDATE_BY_ID, contact_id="003000000000001AAA")
    sub = build_composite(write, "62.0")["compositeRequest"][1]
    assert (sub["method"], sub["url"]) == (
        "PATCH",
        "/services/data/v62.0/sobjects/Contact/003000000000001AAA",
    )
    assert sub["body"]["External_Shopify_ID__c"] == "42"


def test_an_existing_contact_keeps_its_account() -> None:
    write = order_write(
        contact_write=ContactWrite.UPDATE_BY_ID,
        contact_id="003000000000001AAA",
        contact_account=False,
    )
    subs = build_composite(write, "62.0")["compositeRequest"]
    assert "AccountId" not in subs[1]["body"]
    assert subs[2]["body"]["AccountId"] == "@{refAccount.id}"  # the order's Account


def test_a_known_account_is_patched_by_id_stamps_the_key_and_is_referred_to_by_id() -> None:
    write = order_write(account_id="001000000000001AAA")
    subs = build_composite(write, "62.0")["compositeRequest"]
    assert (subs[0]["method"], subs[0]["url"]) == (
        "PATCH",
        "/services/data/v62.0/sobjects/Account/001000000000001AAA",
    )
    assert subs[0]["body"]["External_Shopify_Account_ID__c"] == "shop_cust_42"
    assert subs[1]["body"]["AccountId"] == "001000000000001AAA"
    assert subs[2]["body"]["AccountId"] == "001000000000001AAA"
    response = {
        "compositeResponse": [
            sub("refAccount", 204, None),
            sub("refContact", 200, {"id": "003A", "success": True, "created": False}),
            sub("refOpportunity", 201, {"id": "006A", "success": True, "created": True}),
        ]
    }
    result = parse_composite(response, write)
    assert (result.account_id, result.created["account"]) == ("001000000000001AAA", False)


def test_a_deleted_record_is_a_stale_reference_not_a_configuration_problem() -> None:
    body = [{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]
    for status in (404, 400):
        error = classify(status, body)
        assert isinstance(error, StaleReference)
        assert error.code == "ENTITY_IS_DELETED"


def test_a_new_guest_contact_is_created() -> None:
    write = order_write(contact_write=ContactWrite.CREATE, contact_key=None)
    sub = build_composite(write, "62.0")["compositeRequest"][1]
    assert (sub["method"], sub["url"]) == ("POST", "/services/data/v62.0/sobjects/Contact")


def test_keys_are_escaped_in_url_paths() -> None:
    body = build_composite(order_write(account_key="a/b#c"), "62.0")
    assert body["compositeRequest"][0]["url"].endswith("/a%2Fb%23c")


def test_money_is_an_exact_json_number() -> None:
    text = dumps(build_composite(order_write(), "62.0"))
    assert '"Amount":409.94' in text
    assert json.loads(text)["compositeRequest"][2]["body"]["Amount"] == 409.94


def sub(ref: str, status: int, body) -> dict:
    return {"referenceId": ref, "httpStatusCode": status, "body": body, "httpHeaders": {}}


def test_parse_composite_success_returns_ids_and_created_flags() -> None:
    response = {
        "compositeResponse": [
            sub("refAccount", 200, {"id": "001A", "success": True, "created": False}),
            sub("refContact", 201, {"id": "003A", "success": True, "created": True}),
            sub("refOpportunity", 201, {"id": "006A", "success": True, "created": True}),
        ]
    }
    result = parse_composite(response, order_write())
    assert (result.account_id, result.contact_id, result.opportunity_id) == ("001A", "003A", "006A")
    assert result.created == {"account": False, "contact": True, "opportunity": True}


def test_parse_composite_failure_names_the_stage_and_the_real_cause() -> None:
    halted = err("PROCESSING_HALTED", "The transaction was rolled back")
    response = {
        "compositeResponse": [
            sub("refAccount", 400, halted),
            sub("refContact", 400, err("INVALID_EMAIL_ADDRESS", "Email: invalid", ["Email"])),
            sub("refOpportunity", 400, halted),
        ]
    }
    with pytest.raises(InvalidOrder) as caught:
        parse_composite(response, order_write())
    assert (caught.value.stage, caught.value.code) == ("contact", "INVALID_EMAIL_ADDRESS")


def settings(**values) -> SalesforceConfig:
    """The adapter's config, built from settings the way the runtime builds it."""
    return salesforce_config(Settings(**values))


def test_client_credentials_token_request() -> None:
    request = token_request(
        settings(
            salesforce_login_url="https://acme.my.salesforce.com",
            salesforce_client_id="cid",
            salesforce_client_secret="sec",
        )
    )
    assert request.url == "https://acme.my.salesforce.com/services/oauth2/token"
    assert request.form == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": "sec",
    }


def test_password_token_request_appends_the_security_token() -> None:
    request = token_request(
        settings(
            salesforce_auth_mode="password",
            salesforce_client_id="cid",
            salesforce_client_secret="sec",
            salesforce_username="u@acme.com",
            salesforce_password="pw",
            salesforce_security_token="TOK",
        )
    )
    assert request.form["password"] == "pwTOK"


def test_jwt_assertion_carries_the_documented_claims(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    request = token_request(
        settings(
            salesforce_auth_mode="jwt",
            salesforce_client_id="consumer-key",
            salesforce_username="integration@acme.com",
            salesforce_jwt_private_key_path=str(pem),
        ),
        now=1_800_000_000,
    )
    assert request.form["grant_type"] == JWT_GRANT
    claims = jwt.decode(
        request.form["assertion"],
        key.public_key(),
        algorithms=["RS256"],
        audience="https://login.salesforce.com",
        options={"verify_exp": False},
    )
    assert claims == {
        "iss": "consumer-key",
        "sub": "integration@acme.com",
        "aud": "https://login.salesforce.com",
        "exp": 1_800_000_180,
    }


@pytest.mark.parametrize(
    ("errors", "kind", "code"),
    [
        ([RecordError("UNABLE_TO_LOCK_ROW", "locked")], RetryableError, "UNABLE_TO_LOCK_ROW"),
        ([RecordError("STRING_TOO_LONG", "long", ["Name"])], InvalidOrder, "STRING_TOO_LONG"),
        ([RecordError("INVALID_FIELD", "no field")], ConfigError, "INVALID_FIELD"),
        ([RecordError("ENTITY_IS_DELETED", "gone")], StaleReference, "ENTITY_IS_DELETED"),
        ([RecordError("REQUEST_LIMIT_EXCEEDED", "limit")], RateLimited, "REQUEST_LIMIT_EXCEEDED"),
        ([], InvalidOrder, "UNKNOWN_ERROR"),
        (
            [RecordError("PROCESSING_HALTED", "halted"), RecordError("INVALID_EMAIL_ADDRESS", "x")],
            InvalidOrder,
            "INVALID_EMAIL_ADDRESS",
        ),
    ],
)
def test_collections_and_bulk_record_errors_use_the_same_table(errors, kind, code) -> None:
    error = classify_record(errors)
    assert isinstance(error, kind)
    assert error.code == code
    assert [e.code for e in error.errors] == ([e.code for e in errors] or ["UNKNOWN_ERROR"])
    # A Bulk 2.0 failed row reads the same way as a collections item.
    if errors and len(errors) == 1:
        bulk = parse_bulk_error(f"{errors[0].code}:{errors[0].message}:")
        assert type(classify_record([bulk])) is type(error)


def test_record_result_error_is_classified_only_when_it_failed() -> None:
    assert RecordResult("k", True, "001").error is None
    failed = RecordResult("k", False, errors=(RecordError("UNABLE_TO_LOCK_ROW", "x"),))
    assert isinstance(failed.error, RetryableError)


def test_code_predicates_of_the_classifier() -> None:
    contact_refused = InvalidOrder(
        "m", code="INVALID_FIELD_FOR_INSERT_UPDATE", fields=["ContactId"]
    )
    assert refused_create_only_field(contact_refused, "ContactId")
    assert refused_create_only_field(
        InvalidOrder("m", code="INVALID_FIELD_FOR_INSERT_UPDATE"), "ContactId"
    )
    assert not refused_create_only_field(contact_refused, "AccountId")
    assert not refused_create_only_field(InvalidOrder("m", code="STRING_TOO_LONG"), "ContactId")
    assert required_fields_missing(InvalidOrder("m", code="REQUIRED_FIELD_MISSING", fields=["X"]))
    assert not required_fields_missing(InvalidOrder("m", code="STRING_TOO_LONG"))
    assert refused_by_validation_rule(InvalidOrder("m", code="FIELD_CUSTOM_VALIDATION_EXCEPTION"))
    assert not refused_by_validation_rule(ValueError("x"))
    for code in ("INVALID_FIELD", "STRING_TOO_LONG", "INVALID_FIELD_FOR_INSERT_UPDATE"):
        assert schema_outdated(InvalidOrder("m", code=code))
    assert not schema_outdated(InvalidOrder("m", code="FIELD_CUSTOM_VALIDATION_EXCEPTION"))


def test_causes_and_knock_ons_are_the_classifiers_to_tell() -> None:
    assert cause_of("FIELD_CUSTOM_VALIDATION_EXCEPTION") == "validation_rule"
    assert cause_of("REQUIRED_FIELD_MISSING") == "required_field"
    assert cause_of("STRING_TOO_LONG") == "too_long"
    assert cause_of("ORDER_NOT_FOUND") is None
    assert cause_of(None) is None
    assert knock_on("PROCESSING_HALTED")
    assert knock_on("ALL_OR_NONE_OPERATION_ROLLED_BACK")
    assert not knock_on("UNABLE_TO_LOCK_ROW")
