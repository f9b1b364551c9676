"""Fixtures for the unit tests: the fixture Shopify payloads, an order builder, and a state store
on a fresh SQLite file (modules that test the store itself define their own, over several
databases)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from state import StateStore
from tests.conftest import shopify_fixture


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """A state store on a fresh SQLite file; closed afterwards."""
    s = StateStore.open(f"sqlite+pysqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def _fixture_orders() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every REST-shaped order in ``tests/fixtures/shopify``, labelled by file (and index)."""
    yield "order", shopify_fixture("order.json")["order"]
    for index, order in enumerate(shopify_fixture("orders.json")["orders"]):
        yield f"orders[{index}]", order
    yield "blueprint_orders_create", shopify_fixture("blueprint_orders_create.json")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``fixture_order`` over every fixture order."""
    if "fixture_order" in metafunc.fixturenames:
        orders = list(_fixture_orders())
        metafunc.parametrize(
            "fixture_order", [order for _, order in orders], ids=[label for label, _ in orders]
        )


def _base_order() -> dict[str, Any]:
    return {
        "id": 820982911946154508,
        "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
        "name": "#9999",
        "order_number": 9999,
        "email": "jon@example.com",
        "phone": None,
        "created_at": "2026-03-01T03:00:00+00:00",
        "updated_at": "2026-03-01T03:05:00+00:00",
        "processed_at": "2026-03-01T03:00:00+00:00",
        "cancelled_at": None,
        "cancel_reason": None,
        "financial_status": "paid",
        "test": False,
        "currency": "USD",
        "presentment_currency": "USD",
        "total_price": "199.65",
        "current_total_price": "199.65",
        "customer": {
            "id": 115310627314723954,
            "email": "jon@example.com",
            "first_name": "Jon",
            "last_name": "Snow",
            "phone": "+16135550100",
            "default_address": {
                "first_name": "Jon",
                "last_name": "Snow",
                "company": None,
                "address1": "123 Winterfell Rd",
                "address2": "Apt 1",
                "city": "Ottawa",
                "province": "Ontario",
                "province_code": "ON",
                "zip": "K2P 1L4",
                "country": "Canada",
                "country_code": "CA",
                "phone": "555-0100",
            },
        },
        "billing_address": {
            "first_name": "Steve",
            "last_name": "Shipper",
            "company": "Shipping Company",
            "address1": "123 Shipping Street",
            "address2": None,
            "city": "Shippington",
            "province": "Kentucky",
            "province_code": "KY",
            "zip": "40003",
            "country": "United States",
            "country_code": "US",
            "phone": "555-555-SHIP",
        },
    }


@pytest.fixture
def rest_order() -> Callable[..., dict[str, Any]]:
    """Build a REST/webhook order payload; keyword arguments replace top-level keys.

    ``customer__<key>`` and ``billing__<key>`` replace keys inside the customer and billing address,
    and ``address__<key>`` inside the customer's default address.
    """

    def build(**overrides: Any) -> dict[str, Any]:
        order = copy.deepcopy(_base_order())
        for key, value in overrides.items():
            scope, _, name = key.partition("__")
            if not name:
                order[key] = value
            elif scope == "customer":
                order["customer"][name] = value
            elif scope == "billing":
                order["billing_address"][name] = value
            elif scope == "address":
                order["customer"]["default_address"][name] = value
            else:
                raise KeyError(key)
        return order

    return build
