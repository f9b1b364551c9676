"""``shopsync doctor`` against sandbox org and shop variants (issue 8)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deployments.cli import app
from tasks.core.topics import HANDLED_TOPICS


@pytest.fixture
def healthy(product, salesforce, shopify):
    """A correct setup: default org, all scopes, every webhook subscribed."""
    for topic in sorted(HANDLED_TOPICS):
        shopify.shop.webhooks.subscribe(topic, "https://shopsync.example.com/webhooks/shopify")
    return salesforce, shopify


def doctor() -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor"])
    return result.exit_code, result.output


def test_a_correct_setup_passes(healthy) -> None:
    code, output = doctor()
    assert code == 0, output
    assert "all checks passed" in output
    assert "[ok  ] Opportunity.External_Shopify_Order_ID__c: External ID, Unique" in output


def test_a_missing_external_id_field_is_reported_with_its_fix(healthy) -> None:
    salesforce, _ = healthy
    salesforce.control.post(
        "/__sandbox/org", json={"missing_fields": ["Contact.External_Shopify_ID__c"]}
    ).raise_for_status()
    code, output = doctor()
    assert code == 1
    assert "[FAIL] Contact.External_Shopify_ID__c: field is missing" in output
    assert "fix: Create Contact.External_Shopify_ID__c as Text(255), External ID, Unique" in output


def test_a_non_unique_external_id_is_reported(healthy) -> None:
    salesforce, _ = healthy
    salesforce.control.post("/__sandbox/org", json={"external_id_unique": False}).raise_for_status()
    code, output = doctor()
    assert code == 1
    assert "External ID but not Unique" in output


def test_a_missing_stage_value_is_reported(healthy) -> None:
    salesforce, _ = healthy
    stages = ["Prospecting", "Closed Won", "Closed Lost"]
    salesforce.control.post("/__sandbox/org", json={"stage_names": stages}).raise_for_status()
    code, output = doctor()
    assert code == 1
    assert "[FAIL] Opportunity stage 'New Order': missing from the picklist" in output


def test_missing_read_all_orders_is_reported(healthy) -> None:
    _, shopify = healthy
    shopify.shop.cfg.scopes = ["read_orders", "read_customers"]
    code, output = doctor()
    assert code == 1
    assert "[FAIL] Shopify scope read_all_orders: missing" in output
    assert "older than 60 days" in output


def test_missing_webhook_subscriptions_are_reported(product) -> None:
    code, output = doctor()
    assert code == 1
    assert "[FAIL] Webhook orders/create: no subscription" in output


def test_person_accounts_and_multi_currency_are_detected(healthy) -> None:
    salesforce, _ = healthy
    salesforce.control.post(
        "/__sandbox/org", json={"person_accounts": True, "multi_currency": True}
    ).raise_for_status()
    _, output = doctor()
    assert "Person Accounts: enabled" in output
    assert "Multi-currency: enabled" in output


def test_wrong_salesforce_credentials_are_a_failed_check_not_a_traceback(
    healthy, monkeypatch
) -> None:
    monkeypatch.setenv("SALESFORCE_LOGIN_URL", "http://127.0.0.1:9")  # nothing listens there
    code, output = doctor()
    assert code == 1
    assert "[FAIL] Salesforce:" in output
    assert "Traceback" not in output


def test_webhooks_register_creates_the_subscriptions_doctor_checks(product, shopify) -> None:
    url = "https://shopsync.example.com/webhooks/shopify"
    result = CliRunner().invoke(app, ["webhooks", "register", "--url", url])
    assert result.exit_code == 0, result.output
    topics = {sub.topic for sub in shopify.shop.webhooks.list_subscriptions()}
    assert {"orders/create", "orders/updated", "orders/cancelled", "refunds/create"} <= topics
    code, output = doctor()
    assert "[FAIL] Webhook" not in output, output
    assert code == 0, output


def test_webhooks_register_refuses_plain_http(product) -> None:
    result = CliRunner().invoke(app, ["webhooks", "register", "--url", "http://example.com/x"])
    assert result.exit_code == 2
    assert "must be an https:// URL" in result.output


def test_doctor_checks_every_topic_the_readme_lists(product, shopify) -> None:
    for topic in ("orders/create", "orders/updated", "orders/cancelled", "refunds/create"):
        shopify.shop.webhooks.subscribe(topic, "https://shopsync.example.com/webhooks/shopify")
    code, output = doctor()
    assert code == 1
    assert "[FAIL] Webhook orders/paid: no subscription" in output


def test_an_unreachable_shop_gets_a_shopify_fix(healthy, monkeypatch) -> None:
    monkeypatch.setenv("SHOPIFY_ADMIN_URL", "http://127.0.0.1:9")  # nothing listens there
    code, output = doctor()
    assert code == 1
    fixes = [line for line in output.splitlines() if "fix:" in line]
    assert fixes
    assert all("SALESFORCE" not in fix for fix in fixes)
