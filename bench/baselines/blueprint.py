"""The seed blueprint's way of talking to Salesforce, as an honest baseline.

Per order: one SOQL query for the Opportunity, then three separate upserts (Account, Contact,
Opportunity) through simple-salesforce. For a repair (reconcile), one query per order, and the
three upserts for each order the query did not find. The record bodies come from the product's
own mapping, so both sides write the same data; only the way of calling Salesforce differs.
Test orders are skipped as the product skips them (no calls on either side).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from simple_salesforce import Salesforce, format_soql

from sandbox.salesforce.client import simple_salesforce
from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY, dumps_json, map_order, skip_reason
from tasks.core.orders import Order, parse_rest_order
from tasks.runtime import build_runtime
from tasks.settings import get_settings
from tasks.sync import SyncContext


class Blueprint:
    """Sync orders one at a time, four calls each."""

    def __init__(self) -> None:
        settings = get_settings()
        self.runtime = build_runtime(settings)
        self.ctx: SyncContext = self.runtime.sync_context()  # describe, before counting starts
        self.sf_url = settings.salesforce_login_url
        self.sf: Salesforce = simple_salesforce(
            self.sf_url, version=settings.salesforce_api_version
        )
        self.calls = 0
        self.orders = 0
        self.skipped = 0
        mapping = self.ctx.mapping
        self.keys = {s: mapping.key_field(s) for s in (ACCOUNT, CONTACT, OPPORTUNITY)}

    def reset_counters(self) -> None:
        """Zero the sandbox's call counters (the setup's describe calls are not the baseline's)."""
        httpx.post(f"{self.sf_url}/__sandbox/stats/reset", json={}).raise_for_status()

    def opportunity_exists(self, order_id: str) -> bool:
        """One SOQL query for the order's Opportunity."""
        soql = format_soql(
            "SELECT Id FROM Opportunity WHERE {:literal} = {}", self.keys[OPPORTUNITY], order_id
        )
        self.calls += 1
        return bool(self.sf.query(soql)["records"])

    def write(self, order: Order) -> None:
        """Upsert Account, Contact and Opportunity: three calls."""
        records = map_order(order, self.ctx.mapping, self.ctx.org, self.ctx.shop_timezone)
        account_id = self._upsert(
            "Account", self.keys[ACCOUNT], records.account_key, records.account
        )
        contact_id = None
        if records.contact is not None:
            body = {**records.contact, "AccountId": account_id}
            if records.contact_key is not None:
                contact_id = self._upsert("Contact", self.keys[CONTACT], records.contact_key, body)
            else:  # a guest: the blueprint simply creates a Contact
                self.calls += 1
                contact_id = self.sf.Contact.create(_plain(body)).get("id")
        opportunity = {**records.opportunity, "AccountId": account_id}
        if contact_id:
            opportunity["ContactId"] = contact_id
        self._upsert("Opportunity", self.keys[OPPORTUNITY], records.order_key, opportunity)

    def _upsert(self, sobject: str, field: str, key: str, body: Mapping[str, Any]) -> str | None:
        self.calls += 1
        plain = _plain({k: v for k, v in body.items() if k != field})
        response = getattr(self.sf, sobject).upsert(
            f"{field}/{quote(key, safe='')}", plain, raw_response=True
        )
        if response.content:
            return response.json().get("id")
        return None

    def sync(self, order: Order, *, check_first: bool = True) -> None:
        """The webhook path: query, then the three upserts."""
        if skip_reason(order, self.ctx.mapping) is not None:
            self.skipped += 1
            return
        self.orders += 1
        if check_first:
            self.opportunity_exists(order.id)
        self.write(order)

    def close(self) -> None:
        """Release connections."""
        self.runtime.close()


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """Decimals and dates as JSON numbers and strings, as the product sends them."""
    return json.loads(dumps_json(body))


def sync_inbox(db: str) -> dict[str, Any]:
    """Sync every order whose webhook the product's inbox at ``db`` received (newest body)."""
    connection = sqlite3.connect(db)
    rows = connection.execute(
        "SELECT order_id, body FROM inbox WHERE order_id IS NOT NULL ORDER BY received_at"
    ).fetchall()
    connection.close()
    newest = {order_id: body for order_id, body in rows}
    blueprint = Blueprint()
    blueprint.reset_counters()
    started = time.perf_counter()
    for body in newest.values():
        blueprint.sync(parse_rest_order(json.loads(body)))
    wall = time.perf_counter() - started
    blueprint.close()
    return {
        "orders": blueprint.orders,
        "skipped": blueprint.skipped,
        "calls_counted_here": blueprint.calls,
        "wall_s": round(wall, 3),
    }


def shop_orders(limit: int) -> Iterator[Order]:
    """The shop's first ``limit`` orders (any status), through the REST Admin API."""
    settings = get_settings()
    token = settings.shopify_admin_api_access_token
    headers = {"X-Shopify-Access-Token": token.get_secret_value() if token else ""}
    url: str | None = (
        f"{settings.shopify_base_url}/admin/api/{settings.shopify_api_version}/orders.json"
    )
    params: dict[str, Any] | None = {"status": "any", "limit": 250}
    seen = 0
    with httpx.Client(headers=headers, timeout=60) as client:
        while url and seen < limit:
            response = client.get(url, params=params)
            response.raise_for_status()
            for payload in response.json()["orders"]:
                if seen >= limit:
                    return
                seen += 1
                yield parse_rest_order(payload)
            url = response.links.get("next", {}).get("url")
            params = None


def repair_missing(limit: int) -> dict[str, Any]:
    """Reconcile the blueprint's way: one query per order, three upserts for each missing one."""
    blueprint = Blueprint()
    orders = list(shop_orders(limit))
    blueprint.reset_counters()
    started = time.perf_counter()
    missing = 0
    for order in orders:
        if skip_reason(order, blueprint.ctx.mapping) is not None:
            blueprint.skipped += 1
            continue
        blueprint.orders += 1
        if not blueprint.opportunity_exists(order.id):
            missing += 1
            blueprint.write(order)
    wall = time.perf_counter() - started
    blueprint.close()
    return {
        "orders": blueprint.orders,
        "missing": missing,
        "skipped": blueprint.skipped,
        "calls_counted_here": blueprint.calls,
        "wall_s": round(wall, 3),
        "pid": os.getpid(),
    }
