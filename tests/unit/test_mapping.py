"""Order → Salesforce records: every mapping rule, the org schema, and a property test."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tasks.core.errors import ConfigError, InvalidOrder
from tasks.core.mapping import (
    ACCOUNT,
    CONTACT,
    OPPORTUNITY,
    STANDARD_FIELD_LENGTHS,
    MappingConfig,
    OrgSchema,
    SalesforceRecords,
    Truncation,
    create_body,
    dumps_json,
    guest_account_key,
    jsonable,
    map_order,
    owned_fields,
    skip_reason,
    split_key,
    update_body,
)
from tasks.core.orders import Order, parse_graphql_order, parse_rest_order

Build = Callable[..., dict[str, Any]]

CONFIG = MappingConfig()
ORG = OrgSchema()
NY = "America/New_York"


def _map(
    payload: dict[str, Any],
    config: MappingConfig = CONFIG,
    org: OrgSchema = ORG,
    tz: str = NY,
) -> SalesforceRecords:
    return map_order(parse_rest_order(payload), config, org, tz)


def _describe(**fields: int | None) -> dict[str, Any]:
    """A minimal describe body: each keyword is a field; an int is a string field's length."""
    return {
        "fields": [
            {"name": name, "type": "string" if length else "currency", "length": length or 0}
            for name, length in fields.items()
        ]
    }


# --------------------------------------------------------------------------------------------
# The repository's fixture payloads and the default shape
# --------------------------------------------------------------------------------------------


# order id → (Account.Name, customer id, Contact.LastName, Opportunity.Name, CloseDate)
FIXTURE_EXPECTATIONS = {
    "5630193847261": (
        "Maren Okafor", "7029384756102", "Okafor", "Shopify Order #1001 (Maren Okafor)",
        "2026-03-16",  # 2026-02-14 in New York + 30 days
    ),
    "5630194913357": (
        "Tomás Lindqvist", "7029385120774", "Lindqvist", "Shopify Order #1002 (Tomás Lindqvist)",
        "2026-04-01",  # 2026-03-02 in New York + 30 days
    ),
    "123456789": (  # the blueprint's sample: no ``name``, so "#" + order_number
        "Acme Corp", "987654321", "Doe", "Shopify Order #1001 (John Doe)",
        "2023-11-25",  # 2023-10-26 in New York + 30 days
    ),
}


def test_every_fixture_order_maps(fixture_order: dict[str, Any]) -> None:
    records = _map(fixture_order)
    account, customer, last_name, opportunity, close_date = FIXTURE_EXPECTATIONS[
        records.order_key
    ]
    assert records.account["Name"] == account
    assert records.account["External_Shopify_Account_ID__c"] == f"shop_cust_{customer}"
    assert records.contact is not None
    assert records.contact["LastName"] == last_name
    assert records.contact["External_Shopify_ID__c"] == customer
    assert records.opportunity["Name"] == opportunity
    assert records.opportunity["StageName"] == "New Order"
    assert records.opportunity["CloseDate"] == close_date
    assert isinstance(records.opportunity["Amount"], Decimal)
    assert records.truncations == []
    assert "CurrencyIsoCode" not in records.opportunity


def test_default_shape(rest_order: Build) -> None:
    records = _map(rest_order())
    assert records.account == {
        "Name": "Jon Snow",
        "BillingStreet": "123 Winterfell Rd\nApt 1",
        "BillingCity": "Ottawa",
        "BillingState": "Ontario",
        "BillingPostalCode": "K2P 1L4",
        "BillingCountry": "Canada",
        "Phone": "555-0100",
        "External_Shopify_Account_ID__c": "shop_cust_115310627314723954",
    }
    assert records.contact == {
        "FirstName": "Jon",
        "LastName": "Snow",
        "Email": "jon@example.com",
        "Phone": "+16135550100",
        "External_Shopify_ID__c": "115310627314723954",
    }
    assert records.opportunity == {
        "Name": "Shopify Order #9999 (Jon Snow)",
        "StageName": "New Order",
        "CloseDate": "2026-03-30",
        "Amount": Decimal("199.65"),
        "External_Shopify_Order_ID__c": "820982911946154508",
    }
    assert records.account_key == "shop_cust_115310627314723954"
    assert records.contact_key == "115310627314723954"
    assert records.order_key == "820982911946154508"
    assert records.contact_lookup_email == "jon@example.com"


def test_graphql_and_rest_map_alike(rest_order: Build) -> None:
    rest = parse_rest_order(rest_order(current_total_price="150.00"))
    node = {
        "id": "gid://shopify/Order/820982911946154508",
        "legacyResourceId": "820982911946154508",
        "name": "#9999",
        "email": "jon@example.com",
        "phone": None,
        "createdAt": "2026-02-28T22:00:00-05:00",
        "updatedAt": "2026-03-01T03:05:00Z",
        "processedAt": "2026-03-01T03:00:00Z",
        "cancelledAt": None,
        "cancelReason": None,
        "displayFinancialStatus": "PAID",
        "test": False,
        "currencyCode": "USD",
        "presentmentCurrencyCode": "USD",
        "totalPriceSet": {"shopMoney": {"amount": "199.65", "currencyCode": "USD"}},
        "currentTotalPriceSet": {"shopMoney": {"amount": "150.0", "currencyCode": "USD"}},
        "customer": {
            "id": "gid://shopify/Customer/115310627314723954",
            "legacyResourceId": "115310627314723954",
            "firstName": "Jon",
            "lastName": "Snow",
            "email": None,
            "defaultEmailAddress": {"emailAddress": "jon@example.com"},
            "phone": "+16135550100",
            "defaultAddress": {
                "firstName": "Jon",
                "lastName": "Snow",
                "address1": "123 Winterfell Rd",
                "address2": "Apt 1",
                "city": "Ottawa",
                "province": "Ontario",
                "provinceCode": "ON",
                "zip": "K2P 1L4",
                "country": "Canada",
                "countryCodeV2": "CA",
                "phone": "555-0100",
            },
        },
        "billingAddress": {
            "firstName": "Steve",
            "lastName": "Shipper",
            "company": "Shipping Company",
            "address1": "123 Shipping Street",
            "city": "Shippington",
            "province": "Kentucky",
            "provinceCode": "KY",
            "zip": "40003",
            "country": "United States",
            "countryCodeV2": "US",
            "phone": "555-555-SHIP",
        },
    }
    gql = parse_graphql_order(node)
    assert map_order(gql, CONFIG, ORG, NY) == map_order(rest, CONFIG, ORG, NY)


# --------------------------------------------------------------------------------------------
# Account naming
# --------------------------------------------------------------------------------------------


def test_account_name_prefers_company(rest_order: Build) -> None:
    assert _map(rest_order(address__company="Night's Watch")).account["Name"] == "Night's Watch"


def test_account_name_falls_back_to_full_name_then_email(rest_order: Build) -> None:
    assert _map(rest_order(customer__last_name=None)).account["Name"] == "Jon"
    no_names = rest_order(
        customer__first_name=None,
        customer__last_name=None,
        address__first_name=None,
        address__last_name=None,
        billing__first_name=None,
        billing__last_name=None,
    )
    assert _map(no_names).account["Name"] == "jon@example.com"


def test_account_name_last_resort_is_customer_id(rest_order: Build) -> None:
    payload = rest_order(
        email=None,
        customer__email=None,
        customer__first_name=None,
        customer__last_name=None,
        address__first_name=None,
        address__last_name=None,
        billing_address=None,
    )
    assert _map(payload).account["Name"] == "Shopify customer 115310627314723954"


def test_account_name_uses_address_names_when_customer_has_none(rest_order: Build) -> None:
    payload = rest_order(
        customer__first_name=None,
        customer__last_name=None,
        address__first_name="Aegon",
        address__last_name="Targaryen",
    )
    records = _map(payload)
    assert records.account["Name"] == "Aegon Targaryen"
    assert records.contact is not None
    assert records.contact["LastName"] == "Targaryen"


def test_account_name_sources_are_configurable(rest_order: Build) -> None:
    config = MappingConfig(account_name_sources=["email", "company"])
    payload = rest_order(address__company="Night's Watch")
    assert _map(payload, config).account["Name"] == "jon@example.com"


# --------------------------------------------------------------------------------------------
# Contact
# --------------------------------------------------------------------------------------------


def test_last_name_falls_back_to_email_local_part(rest_order: Build) -> None:
    payload = rest_order(
        customer__last_name=None, customer__email="jon.snow+shop@example.com", email=None
    )
    records = _map(payload)
    assert records.contact is not None
    assert records.contact["FirstName"] == "Jon"
    assert records.contact["LastName"] == "jon.snow+shop"


def test_last_name_last_resort_is_unknown(rest_order: Build) -> None:
    payload = rest_order(customer__last_name=None, customer__email=None, email=None)
    records = _map(payload)
    assert records.contact is not None
    assert records.contact["LastName"] == "Unknown"
    assert "Email" not in records.contact
    assert records.contact_lookup_email is None


def test_invalid_email_is_dropped_and_reported(rest_order: Build) -> None:
    records = _map(rest_order(customer__email="not an address", email=None))
    assert records.contact is not None
    assert "Email" not in records.contact
    assert "Contact.Email" in records.dropped_fields


# --------------------------------------------------------------------------------------------
# Guest checkout
# --------------------------------------------------------------------------------------------


def test_guest_checkout(rest_order: Build) -> None:
    records = _map(rest_order(customer=None, email="  Guest@Example.COM "))
    digest = hashlib.sha256(b"guest@example.com").hexdigest()[:24]
    assert records.account_key == f"shop_guest_{digest}"
    assert records.account["External_Shopify_Account_ID__c"] == records.account_key
    assert records.account["Name"] == "Shipping Company"  # from the billing address
    assert records.account["BillingStreet"] == "123 Shipping Street"
    assert records.account["Phone"] == "555-555-SHIP"
    assert records.contact_key is None
    assert records.contact_lookup_email == "guest@example.com"
    assert records.contact == {
        "FirstName": "Steve",
        "LastName": "Shipper",
        "Email": "Guest@Example.COM",
        "Phone": "555-555-SHIP",
    }
    assert records.opportunity["Name"] == "Shopify Order #9999 (Steve Shipper)"


def test_guest_key_is_stable_across_case_and_orders(rest_order: Build) -> None:
    a = _map(rest_order(customer=None, email="guest@example.com", id=1))
    b = _map(rest_order(customer=None, email="GUEST@example.com ", id=2))
    assert a.account_key == b.account_key
    assert a.order_key != b.order_key


def test_guest_without_email_uses_phone_then_order(rest_order: Build) -> None:
    by_phone = parse_rest_order(rest_order(customer=None, email=None, phone="+1 (613) 555-0100"))
    key = guest_account_key(by_phone, CONFIG)
    assert key == "shop_guest_tel_" + hashlib.sha256(b"16135550100").hexdigest()[:24]
    records = map_order(by_phone, CONFIG, ORG, NY)
    assert records.contact is None  # nothing to match a Contact on
    assert records.contact_key is None
    assert records.contact_lookup_email is None
    anonymous = rest_order(customer=None, email=None, billing__phone="555-SHIP")
    records = _map(anonymous)
    assert records.account_key == "shop_guest_order_820982911946154508"
    assert records.account["Name"] == "Shipping Company"
    nameless = rest_order(customer=None, email=None, billing_address=None)
    assert _map(nameless).account["Name"] == "Shopify guest #9999"


def test_guest_with_contact_email_only(rest_order: Build) -> None:
    records = _map(rest_order(customer=None, email=None, contact_email="c@example.com"))
    assert records.contact_lookup_email == "c@example.com"


# --------------------------------------------------------------------------------------------
# Opportunity
# --------------------------------------------------------------------------------------------


def test_cancelled_order_gets_cancelled_stage(rest_order: Build) -> None:
    records = _map(rest_order(cancelled_at="2026-03-02T10:00:00Z", financial_status="voided"))
    assert records.cancelled
    assert records.opportunity["StageName"] == "Closed Lost"
    assert owned_fields(records, CONFIG)[OPPORTUNITY]["StageName"] == "Closed Lost"


def test_cancellation_need_not_update_the_stage(rest_order: Build) -> None:
    config = MappingConfig(cancellation_updates_stage=False, stage_when_cancelled="Cancelled")
    records = _map(rest_order(cancelled_at="2026-03-02T10:00:00Z"), config)
    assert records.opportunity["StageName"] == "Cancelled"  # on create: the fact at that time
    assert "StageName" not in owned_fields(records, config)[OPPORTUNITY]


def test_refunded_amount_uses_current_total_price(rest_order: Build) -> None:
    payload = rest_order(
        financial_status="partially_refunded",
        total_price="199.65",
        current_total_price_set={"shop_money": {"amount": "99.65", "currency_code": "USD"}},
    )
    assert _map(payload).opportunity["Amount"] == Decimal("99.65")
    config = MappingConfig(amount_basis="total_price")
    assert _map(payload, config).opportunity["Amount"] == Decimal("199.65")


def test_amount_is_decimal_and_json_safe_without_float(rest_order: Build) -> None:
    records = _map(rest_order(total_price="0.10", current_total_price="0.30"))
    amount = records.opportunity["Amount"]
    assert type(amount) is Decimal
    assert amount == Decimal("0.30")
    body = jsonable(records.opportunity)
    assert body["Amount"] == "0.30"
    assert json.loads(json.dumps(body))["Amount"] == "0.30"
    text = dumps_json({"records": [records.opportunity]})
    assert '"Amount":0.30' in text
    assert json.loads(text, parse_float=Decimal)["records"][0] == records.opportunity


def test_dumps_json_edge_cases() -> None:
    assert (
        dumps_json({"a": Decimal("1E+2"), "b": (1, None, "ü")})
        == '{"a":100,"b":[1,null,"\\u00fc"]}'
    )
    with pytest.raises(ValueError, match="JSON number"):
        dumps_json(Decimal("NaN"))


def test_close_date_is_in_the_shop_timezone(rest_order: Build) -> None:
    payload = rest_order(created_at="2026-03-01T03:00:00Z")
    assert _map(payload, MappingConfig(close_date_offset_days=0)).opportunity["CloseDate"] == (
        "2026-02-28"
    )
    assert _map(payload).opportunity["CloseDate"] == "2026-03-30"  # Feb 28 + 30 days
    assert _map(payload, tz="UTC").opportunity["CloseDate"] == "2026-03-31"
    late = rest_order(created_at="2026-03-01T20:00:00Z")
    assert _map(late, tz="Asia/Tokyo").opportunity["CloseDate"] == "2026-04-01"  # Mar 2 + 30


def test_unknown_timezone_is_a_config_error(rest_order: Build) -> None:
    with pytest.raises(ConfigError):
        _map(rest_order(), tz="Mars/Olympus_Mons")


def test_close_date_beyond_the_calendar_is_invalid(rest_order: Build) -> None:
    with pytest.raises(InvalidOrder, match="CloseDate"):
        _map(rest_order(created_at="9999-12-31T12:00:00Z"))


def test_opportunity_name_template_is_configurable(rest_order: Build) -> None:
    config = MappingConfig(opportunity_name_template="{name} / {order_number} / {id}")
    assert _map(rest_order(), config).opportunity["Name"] == "#9999 / 9999 / 820982911946154508"


def test_bad_template_rejected() -> None:
    with pytest.raises(ValidationError):
        MappingConfig(opportunity_name_template="{name.__class__}")
    with pytest.raises(ValidationError):
        MappingConfig(opportunity_name_template="{total}")


def test_multi_currency_sets_currency_iso_code(rest_order: Build) -> None:
    payload = rest_order(currency="EUR")
    assert "CurrencyIsoCode" not in _map(payload).opportunity
    records = _map(payload, org=OrgSchema(multi_currency=True))
    assert records.opportunity["CurrencyIsoCode"] == "EUR"
    assert owned_fields(records, CONFIG)[OPPORTUNITY]["CurrencyIsoCode"] == "EUR"


# --------------------------------------------------------------------------------------------
# Lengths, text and None handling
# --------------------------------------------------------------------------------------------


def test_truncation_is_recorded(rest_order: Build) -> None:
    records = _map(rest_order(address__city="C" * 50, customer__last_name="L" * 100))
    assert records.account["BillingCity"] == "C" * 40
    assert records.contact is not None
    assert records.contact["LastName"] == "L" * 80
    assert Truncation(ACCOUNT, "BillingCity", 50, 40) in records.truncations
    assert Truncation(CONTACT, "LastName", 100, 80) in records.truncations
    assert any(t.object == OPPORTUNITY and t.field == "Name" for t in records.truncations)
    assert len(records.opportunity["Name"]) == 120


def test_too_long_email_is_omitted_not_cut(rest_order: Build) -> None:
    email = "a" * 80 + "@example.com"
    records = _map(rest_order(customer__email=email, email=email))
    assert records.contact is not None
    assert "Email" not in records.contact
    assert Truncation(CONTACT, "Email", 92, 80, omitted=True) in records.truncations


def test_lengths_count_utf16_units(rest_order: Build) -> None:
    records = _map(rest_order(address__zip="😀" * 11))  # 22 UTF-16 units > 20
    assert records.account["BillingPostalCode"] == "😀" * 10
    assert Truncation(ACCOUNT, "BillingPostalCode", 22, 20) in records.truncations


def test_non_ascii_is_kept(rest_order: Build) -> None:
    records = _map(
        rest_order(
            customer__first_name="Нікіта",
            customer__last_name="Шевченко",
            address__city="Київ",
            address__company=None,
        )
    )
    assert records.account["Name"] == "Нікіта Шевченко"
    assert records.account["BillingCity"] == "Київ"
    assert records.contact is not None
    assert records.contact["LastName"] == "Шевченко"
    assert records.opportunity["Name"] == "Shopify Order #9999 (Нікіта Шевченко)"


def test_none_and_empty_values_are_omitted(rest_order: Build) -> None:
    records = _map(
        rest_order(customer__phone=None, address__phone="", address__address2=None, phone=None)
    )
    assert records.contact is not None
    assert "Phone" not in records.contact
    assert "Phone" not in records.account
    assert records.account["BillingStreet"] == "123 Winterfell Rd"
    for body in (records.account, records.contact, records.opportunity):
        assert all(value not in (None, "") for value in body.values())


def test_someone_elses_billing_address_stays_off_the_customers_records(rest_order: Build) -> None:
    """A gift or a company card: Jon's order is billed to Steve Shipper (issue 13, item 14)."""
    payload = rest_order(customer__phone=None, phone=None)
    del payload["customer"]["default_address"]
    records = _map(payload)
    assert records.account["Name"] == "Jon Snow"
    assert not {"BillingStreet", "BillingCity", "Phone"} & set(records.account)
    assert records.contact is not None
    assert "Phone" not in records.contact
    assert records.opportunity["Name"] == "Shopify Order #9999 (Jon Snow)"


def test_the_customers_own_billing_address_is_copied(rest_order: Build) -> None:
    payload = rest_order(customer__phone=None, phone=None, billing__first_name=" jon ")
    del payload["customer"]["default_address"]
    payload["billing_address"]["last_name"] = "SNOW"
    records = _map(payload)
    assert records.account["Name"] == "Shipping Company"  # the company on Jon's own address
    assert records.account["BillingCity"] == "Shippington"
    assert records.account["Phone"] == "555-555-SHIP"
    assert records.contact is not None
    assert records.contact["Phone"] == "555-555-SHIP"


def test_the_default_address_wins_over_the_billing_address(rest_order: Build) -> None:
    records = _map(rest_order(billing__first_name="Jon", billing__last_name="Snow"))
    assert records.account["BillingCity"] == "Ottawa"


def test_a_nameless_customer_takes_no_name_from_the_billing_address(rest_order: Build) -> None:
    payload = rest_order(customer__first_name=None, customer__last_name=None)
    del payload["customer"]["default_address"]
    records = _map(payload)
    assert records.contact is not None
    assert (records.contact.get("FirstName"), records.contact["LastName"]) == (None, "jon")
    assert "BillingCity" not in records.account


def test_big_ids_are_strings_everywhere(rest_order: Build) -> None:
    records = _map(rest_order(id="999999999999999999999", customer__id=18446744073709551615))
    assert records.order_key == "999999999999999999999"
    assert records.opportunity["External_Shopify_Order_ID__c"] == "999999999999999999999"
    assert records.contact_key == "18446744073709551615"
    assert records.account_key == "shop_cust_18446744073709551615"


# --------------------------------------------------------------------------------------------
# Person accounts and the org schema
# --------------------------------------------------------------------------------------------


def test_person_account_shape(rest_order: Build) -> None:
    records = _map(rest_order(), org=OrgSchema(person_accounts=True))
    assert records.contact is None
    assert records.contact_key is None
    assert "Name" not in records.account
    assert records.account["FirstName"] == "Jon"
    assert records.account["LastName"] == "Snow"
    assert records.account["PersonEmail"] == "jon@example.com"
    assert records.account["External_Shopify_ID__pc"] == "115310627314723954"
    assert records.account["External_Shopify_Account_ID__c"] == "shop_cust_115310627314723954"
    assert set(owned_fields(records, CONFIG)) == {ACCOUNT, OPPORTUNITY}


def test_person_account_guest_needs_a_last_name(rest_order: Build) -> None:
    payload = rest_order(customer=None, billing_address=None, email="solo@example.com")
    records = _map(payload, org=OrgSchema(person_accounts=True))
    assert records.account["LastName"] == "solo"
    assert "External_Shopify_ID__pc" not in records.account


def test_org_schema_from_describe(rest_order: Build) -> None:
    org = OrgSchema.from_describe(
        {
            ACCOUNT: _describe(
                Name=255,
                IsPersonAccount=None,
                FirstName=40,
                LastName=80,
                PersonEmail=80,
                BillingStreet=255,
                BillingCity=10,
                External_Shopify_Account_ID__c=255,
                External_Shopify_ID__pc=255,
            ),
            CONTACT: _describe(FirstName=40, LastName=80, Email=80, External_Shopify_ID__c=255),
            OPPORTUNITY: _describe(
                Name=120,
                StageName=255,
                CloseDate=None,
                Amount=None,
                CurrencyIsoCode=3,
                External_Shopify_Order_ID__c=255,
            ),
        }
    )
    assert org.person_accounts
    assert org.multi_currency
    assert org.length(ACCOUNT, "BillingCity") == 10
    assert org.length(OPPORTUNITY, "Amount") is None
    records = map_order(parse_rest_order(rest_order()), CONFIG, org, NY)
    assert records.account["BillingCity"] == "Ottawa"
    assert "Phone" not in records.account  # the described Account has no Phone
    assert "Account.Phone" in records.dropped_fields
    assert "BillingState" not in records.account
    assert records.opportunity["CurrencyIsoCode"] == "USD"


def test_describe_without_person_accounts_or_currency() -> None:
    org = OrgSchema.from_describe({ACCOUNT: _describe(Name=80)})
    assert not org.person_accounts
    assert not org.multi_currency
    assert org.length(ACCOUNT, "Name") == 80
    assert org.length(CONTACT, "LastName") == 80  # not described: standard length


def test_missing_external_id_field_is_a_config_error(rest_order: Build) -> None:
    org = OrgSchema.from_describe({OPPORTUNITY: _describe(Name=120, StageName=40)})
    with pytest.raises(ConfigError, match="External_Shopify_Order_ID__c"):
        map_order(parse_rest_order(rest_order()), CONFIG, org, NY)


def test_external_id_is_never_truncated(rest_order: Build) -> None:
    org = OrgSchema(lengths={ACCOUNT: {"External_Shopify_Account_ID__c": 10}})
    with pytest.raises(ConfigError):
        map_order(parse_rest_order(rest_order()), CONFIG, org, NY)


# --------------------------------------------------------------------------------------------
# Create vs update
# --------------------------------------------------------------------------------------------


def test_update_body_keeps_only_owned_fields(rest_order: Build) -> None:
    records = _map(rest_order())
    with_refs = create_body(
        OPPORTUNITY, records.opportunity, {"ContactId": "003xx", "AccountId": "001xx", "X": None}
    )
    assert with_refs["ContactId"] == "003xx"
    assert "X" not in with_refs
    update = update_body(OPPORTUNITY, {**with_refs, "OwnerId": "005xx"}, CONFIG)
    assert update == {
        "Name": "Shopify Order #9999 (Jon Snow)",
        "Amount": Decimal("199.65"),
        "External_Shopify_Order_ID__c": "820982911946154508",
    }
    cancelled = update_body(OPPORTUNITY, with_refs, CONFIG, cancelled=True)
    assert "ContactId" not in cancelled
    assert "CloseDate" not in cancelled


def test_contact_id_is_never_sent_on_update() -> None:
    config = MappingConfig(owned_fields={OPPORTUNITY: ["Name", "ContactId"]}, create_only_fields={})
    assert update_body(OPPORTUNITY, {"Name": "n", "ContactId": "003xx"}, config) == {"Name": "n"}


def test_owned_fields_for_every_object(rest_order: Build) -> None:
    owned = owned_fields(_map(rest_order()), CONFIG)
    assert set(owned) == {ACCOUNT, CONTACT, OPPORTUNITY}
    assert owned[CONTACT]["External_Shopify_ID__c"] == "115310627314723954"
    assert owned[ACCOUNT]["Name"] == "Jon Snow"
    assert "StageName" not in owned[OPPORTUNITY]
    assert "CloseDate" not in owned[OPPORTUNITY]


def test_split_key(rest_order: Build) -> None:
    records = _map(rest_order())
    field, value, body = split_key(OPPORTUNITY, records.opportunity, CONFIG)
    assert (field, value) == ("External_Shopify_Order_ID__c", "820982911946154508")
    assert field not in body
    assert split_key(CONTACT, {"LastName": "x"}, CONFIG)[1] is None


def test_config_rejects_overlapping_ownership() -> None:
    with pytest.raises(ValidationError):
        MappingConfig(owned_fields={OPPORTUNITY: ["StageName"]})


def test_config_embeds_in_settings() -> None:
    class Settings(BaseModel):
        mapping: MappingConfig = MappingConfig()

    settings_ = Settings.model_validate({"mapping": {"close_date_offset_days": 7}})
    assert settings_.mapping.close_date_offset_days == 7
    assert settings_.mapping.stage_on_create == "New Order"
    schema = Settings.model_json_schema()
    assert "MappingConfig" in json.dumps(schema)
    assert MappingConfig.model_validate_json(CONFIG.model_dump_json()) == CONFIG


def test_skip_reason(rest_order: Build) -> None:
    order = parse_rest_order(rest_order(test=True))
    assert skip_reason(order, CONFIG) is None
    assert skip_reason(order, MappingConfig(skip_test_orders=True)) is not None


# --------------------------------------------------------------------------------------------
# Property: any parseable order maps to valid records
# --------------------------------------------------------------------------------------------

_text = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=20),
    st.text(min_size=100, max_size=400),
    st.sampled_from(["Нікіта", "Шевченко", "😀" * 70, "  ", "Zoë O'Brien-Łukasiewicz"]),
)
_LETTERS = "abcdefghijklmnopqrstuvwxyz.ABCXYZ0123456789"
_email = st.one_of(
    _text,
    st.emails().map(str),
    st.builds(lambda local: f"{local}@example.com", st.text(min_size=1, max_size=90)),
    st.builds(lambda local: f"{local}@example.com", st.text(_LETTERS, min_size=60, max_size=90)),
)
_id = st.integers(min_value=1, max_value=2**64 - 1).flatmap(
    lambda n: st.sampled_from([n, str(n), f"gid://shopify/Customer/{n}"])
)
_amount = st.decimals(
    min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False
).flatmap(lambda d: st.sampled_from([str(d), d, int(d)]))
_timestamp = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.just(UTC) | st.timezones(),
).map(lambda d: d.isoformat())


def _address() -> st.SearchStrategy[Any]:
    keys = ["first_name", "last_name", "company", "address1", "address2", "city", "province"]
    keys += ["zip", "country", "phone"]
    return st.one_of(st.none(), st.fixed_dictionaries({}, optional=dict.fromkeys(keys, _text)))


_customer = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"id": _id},
        optional={
            "email": _email,
            "first_name": _text,
            "last_name": _text,
            "phone": _text,
            "default_address": _address(),
        },
    ),
)
_payload = st.fixed_dictionaries(
    {"id": _id, "created_at": _timestamp, "total_price": _amount},
    optional={
        "name": _text,
        "email": _email,
        "contact_email": _email,
        "phone": _text,
        "current_total_price": _amount,
        "cancelled_at": st.one_of(st.none(), _timestamp),
        "currency": st.sampled_from(["USD", "EUR", "UAH", None]),
        "test": st.booleans(),
        "customer": _customer,
        "billing_address": _address(),
    },
)
_lengths = st.one_of(
    st.just(STANDARD_FIELD_LENGTHS),
    st.fixed_dictionaries(
        {
            sobject: st.fixed_dictionaries(dict.fromkeys(fields, st.integers(2, 300)))
            for sobject, fields in STANDARD_FIELD_LENGTHS.items()
        }
    ),
)
_org = st.builds(
    OrgSchema, lengths=_lengths, person_accounts=st.booleans(), multi_currency=st.booleans()
)


def _assert_valid(records: SalesforceRecords, org: OrgSchema) -> None:
    bodies = {ACCOUNT: records.account, OPPORTUNITY: records.opportunity}
    if records.contact is not None:
        bodies[CONTACT] = records.contact
    for sobject, body in bodies.items():
        for name, value in body.items():
            assert value not in (None, ""), (sobject, name)
            limit = org.length(sobject, name)
            if isinstance(value, str) and limit is not None:
                assert len(value.encode("utf-16-le")) // 2 <= limit, (sobject, name, value)
    if org.person_accounts:
        assert records.contact is None
        assert records.account["LastName"]
        assert "Name" not in records.account
    else:
        assert records.account["Name"]
    if records.contact is not None:
        assert records.contact["LastName"]
        assert records.contact_key or records.contact_lookup_email
    for name in ("Name", "StageName", "CloseDate"):
        assert records.opportunity[name]
    assert type(records.opportunity["Amount"]) is Decimal
    assert ("CurrencyIsoCode" in records.opportunity) <= org.multi_currency
    assert records.account_key
    assert records.order_key.isdigit()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=_payload,
    org=_org,
    tz=st.sampled_from(["America/New_York", "Pacific/Kiritimati", "UTC"]),
)
def test_any_parseable_order_maps_within_limits(
    payload: dict[str, Any], org: OrgSchema, tz: str
) -> None:
    try:
        order = parse_rest_order(payload)
    except InvalidOrder:
        return
    assert isinstance(order, Order)
    records = map_order(order, CONFIG, org, tz)
    _assert_valid(records, org)
    json.dumps([jsonable(records.account), jsonable(records.opportunity)])
    assert json.loads(dumps_json(records.opportunity), parse_float=Decimal) == (records.opportunity)
    assert update_body(OPPORTUNITY, records.opportunity, CONFIG).keys() <= {
        "Name",
        "Amount",
        "CurrencyIsoCode",
        "StageName",
        "External_Shopify_Order_ID__c",
    }


# --------------------------------------------------------------------------------------------
# Protected customer data redacted (issue 13.3): names, e-mails, phones and addresses are null
# --------------------------------------------------------------------------------------------

_PERSONAL = ("first_name", "last_name", "name", "address1", "address2", "phone")


def _redacted(rest_order: Build, **overrides: Any) -> dict[str, Any]:
    payload = rest_order(email=None, phone=None, contact_email=None, **overrides)
    if payload.get("customer"):
        payload["customer"].update(first_name=None, last_name=None, email=None, phone=None)
        for key in _PERSONAL:
            payload["customer"]["default_address"][key] = None
    for address in ("billing_address", "shipping_address"):
        if payload.get(address):
            payload[address].update(dict.fromkeys(_PERSONAL))
    return payload


def test_a_redacted_customer_order_has_no_contact_and_no_none_names(rest_order: Build) -> None:
    records = _map(_redacted(rest_order))
    assert records.account["Name"] == "Shopify customer 115310627314723954"
    assert records.account_key == "shop_cust_115310627314723954"
    assert records.contact is None
    assert records.contact_key is None
    assert records.contact_lookup_email is None
    assert records.opportunity["Name"] == "Shopify Order #9999 (customer 115310627314723954)"
    text = json.dumps(jsonable(records.account)) + json.dumps(jsonable(records.opportunity))
    assert "None" not in text


def test_a_redacted_guest_order_gets_its_own_account_and_no_contact(rest_order: Build) -> None:
    records = _map(_redacted(rest_order, customer=None, billing__company=None))
    assert records.account_key == f"shop_guest_order_{records.order_key}"
    assert records.account["Name"] == "Shopify guest #9999"
    assert records.contact is None
    assert records.opportunity["Name"] == "Shopify Order #9999 (guest)"


def test_a_customer_known_only_by_phone_keeps_a_contact(rest_order: Build) -> None:
    payload = _redacted(rest_order)
    payload["customer"]["phone"] = "+1 613 555 0100"
    records = _map(payload)
    assert records.contact is not None
    assert records.contact["Phone"] == "+1 613 555 0100"
