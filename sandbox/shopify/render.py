"""Render an internal order record as Shopify serializes it: REST/webhook (snake_case, shop UTC
offset) and GraphQL (camelCase, UTC).  Both views come from the same record, so they agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .generator import CENT, order_refunded, order_subtotal, order_tax, order_total


def iso_local(ts: int | None, tz: ZoneInfo) -> str | None:
    """Epoch seconds as ISO 8601 with the shop's UTC offset (REST style)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz).isoformat()


def iso_utc(ts: int | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC with ``Z`` (GraphQL ``DateTime`` style)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def money(amount: Decimal) -> str:
    """A money amount as Shopify's REST API writes it: a string with two decimals."""
    return str(Decimal(amount).quantize(CENT))


def financial_status(rec: dict[str, Any]) -> str:
    """REST ``financial_status`` derived from refunds and cancellation."""
    refunded = order_refunded(rec)
    if refunded > 0:
        return "refunded" if refunded >= order_total(rec) else "partially_refunded"
    if rec["cancelled"] is not None:
        return "voided"
    return str(rec["base_financial_status"])


def _pres(rec: dict[str, Any], amount: Decimal) -> Decimal:
    return (Decimal(amount) * rec["rate"]).quantize(CENT)


def money_set(rec: dict[str, Any], amount: Decimal) -> dict[str, Any]:
    """REST ``*_set`` twin: shop and presentment money."""
    return {
        "shop_money": {"amount": money(amount), "currency_code": rec["currency"]},
        "presentment_money": {
            "amount": money(_pres(rec, amount)),
            "currency_code": rec["presentment_currency"],
        },
    }


def totals(rec: dict[str, Any]) -> dict[str, Decimal]:
    """The order's amounts in shop currency."""
    total = order_total(rec)
    refunded = order_refunded(rec)
    return {
        "subtotal": order_subtotal(rec),
        "tax": order_tax(rec),
        "shipping": rec["shipping_price"],
        "total": total,
        "refunded": refunded,
        "current_total": max(Decimal("0.00"), total - refunded),
    }


def gid(kind: str, ident: int) -> str:
    """A Shopify global id, ``gid://shopify/Kind/123``."""
    return f"gid://shopify/{kind}/{ident}"


# --------------------------------------------------------------------------------------
# REST / webhook shape
# --------------------------------------------------------------------------------------
def rest_order(rec: dict[str, Any], tz: ZoneInfo, domain: str) -> dict[str, Any]:
    """The REST ``Order`` resource (also the orders/* webhook body)."""
    t = totals(rec)
    created = iso_local(rec["created"], tz)
    zero = money_set(rec, Decimal(0))
    customer = rest_customer(rec, tz)
    return {
        "id": rec["id"],
        "admin_graphql_api_id": gid("Order", rec["id"]),
        "app_id": 580111,
        "browser_ip": "203.0.113.7",
        "buyer_accepts_marketing": False,
        "cancel_reason": rec["cancel_reason"],
        "cancelled_at": iso_local(rec["cancelled"], tz),
        "cart_token": None,
        "checkout_id": rec["id"] + 3,
        "checkout_token": rec["token"][:32],
        "client_details": {
            "accept_language": None, "browser_height": None, "browser_ip": "203.0.113.7",
            "browser_width": None, "session_hash": None, "user_agent": None,
        },
        "closed_at": iso_local(rec["closed"], tz),
        "company": None,
        "confirmed": True,
        "contact_email": rec["email"],
        "created_at": created,
        "currency": rec["currency"],
        "current_subtotal_price": money(t["subtotal"]),
        "current_subtotal_price_set": money_set(rec, t["subtotal"]),
        "current_total_duties_set": None,
        "current_total_price": money(t["current_total"]),
        "current_total_price_set": money_set(rec, t["current_total"]),
        "current_total_tax": money(t["tax"]),
        "current_total_tax_set": money_set(rec, t["tax"]),
        "customer": customer,
        "customer_locale": "en",
        "device_id": None,
        "discount_applications": [],
        "discount_codes": [],
        "email": rec["email"],
        "financial_status": financial_status(rec),
        "fulfillment_status": "fulfilled" if rec["fulfilled"] else None,
        "fulfillments": [],
        "gateway": "bogus",
        "landing_site": None,
        "landing_site_ref": None,
        "line_items": [rest_line_item(rec, li) for li in rec["line_items"]],
        "location_id": None,
        "name": f"#{rec['order_number']}",
        "note": rec["note"],
        "note_attributes": [],
        "number": rec["number"],
        "order_number": rec["order_number"],
        "order_status_url": f"https://{domain}/orders/{rec['token']}/authenticate",
        "original_total_duties_set": None,
        "payment_details": None,
        "payment_gateway_names": ["bogus"],
        "phone": rec["phone"],
        "presentment_currency": rec["presentment_currency"],
        "processed_at": iso_local(rec["processed"], tz),
        "processing_method": "direct",
        "reference": None,
        "referring_site": None,
        "refunds": [rest_refund(rec, r, tz) for r in rec["refunds"]],
        "shipping_address": dict(rec["shipping"]) if rec["shipping"] else None,
        "billing_address": dict(rec["billing"]) if rec["billing"] else None,
        "shipping_lines": [],
        "source": None,
        "source_identifier": None,
        "source_name": "web",
        "source_url": None,
        "subtotal_price": money(t["subtotal"]),
        "subtotal_price_set": money_set(rec, t["subtotal"]),
        "tags": "",
        "tax_lines": [{
            "price": money(t["tax"]), "rate": float(rec["tax_rate"]), "title": "Sales Tax",
            "price_set": money_set(rec, t["tax"]),
        }],
        "taxes_included": False,
        "test": rec["test"],
        "token": rec["token"],
        "total_discounts": "0.00",
        "total_discounts_set": zero,
        "total_line_items_price": money(t["subtotal"]),
        "total_line_items_price_set": money_set(rec, t["subtotal"]),
        "total_outstanding": "0.00",
        "total_price": money(t["total"]),
        "total_price_set": money_set(rec, t["total"]),
        "total_price_usd": money(t["total"]),
        "total_shipping_price_set": money_set(rec, t["shipping"]),
        "total_tax": money(t["tax"]),
        "total_tax_set": money_set(rec, t["tax"]),
        "total_tip_received": "0.00",
        "total_weight": 0,
        "updated_at": iso_local(rec["updated"], tz),
        "user_id": None,
    }


def rest_customer(rec: dict[str, Any], tz: ZoneInfo) -> dict[str, Any] | None:
    """The embedded REST customer (None for a guest checkout)."""
    c = rec["customer"]
    if c is None:
        return None
    created = iso_local(c["created"], tz)
    address = None
    if c["default_address"] is not None:
        address = dict(c["default_address"])
        address.update({
            "id": c["id"] + 1, "customer_id": c["id"], "country_name": address["country"],
            "default": True,
        })
        address.pop("latitude", None)
        address.pop("longitude", None)
    return {
        "id": c["id"],
        "email": c["email"],
        "accepts_marketing": False,
        "created_at": created,
        "updated_at": created,
        "first_name": c["first_name"],
        "last_name": c["last_name"],
        "orders_count": 1,
        "state": "disabled",
        "total_spent": "0.00",
        "last_order_id": rec["id"],
        "note": None,
        "verified_email": True,
        "multipass_identifier": None,
        "tax_exempt": False,
        "phone": c["phone"],
        "tags": "",
        "last_order_name": f"#{rec['order_number']}",
        "currency": rec["currency"],
        "accepts_marketing_updated_at": created,
        "marketing_opt_in_level": None,
        "tax_exemptions": [],
        "admin_graphql_api_id": gid("Customer", c["id"]),
        "default_address": address,
    }


def rest_line_item(rec: dict[str, Any], li: dict[str, Any]) -> dict[str, Any]:
    """A REST line item."""
    tax = (li["price"] * li["quantity"] * rec["tax_rate"]).quantize(CENT)
    return {
        "id": li["id"],
        "admin_graphql_api_id": gid("LineItem", li["id"]),
        "variant_id": li["variant_id"],
        "title": li["title"],
        "quantity": li["quantity"],
        "sku": li["sku"],
        "variant_title": li["variant_title"],
        "vendor": None,
        "fulfillment_service": "manual",
        "product_id": li["product_id"],
        "requires_shipping": True,
        "taxable": True,
        "gift_card": False,
        "name": li["name"],
        "variant_inventory_management": "shopify" if li["product_id"] else None,
        "properties": [],
        "product_exists": li["product_id"] is not None,
        "fulfillable_quantity": 0 if rec["fulfilled"] else li["quantity"],
        "grams": 200,
        "price": money(li["price"]),
        "total_discount": "0.00",
        "fulfillment_status": "fulfilled" if rec["fulfilled"] else None,
        "price_set": money_set(rec, li["price"]),
        "total_discount_set": money_set(rec, Decimal(0)),
        "discount_allocations": [],
        "duties": [],
        "tax_lines": [{
            "title": "Sales Tax", "price": money(tax), "rate": float(rec["tax_rate"]),
            "price_set": money_set(rec, tax),
        }],
    }


def rest_refund(rec: dict[str, Any], r: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """A REST Refund (also the refunds/create webhook body)."""
    created = iso_local(r["created"], tz)
    return {
        "id": r["id"],
        "order_id": rec["id"],
        "created_at": created,
        "note": r["note"],
        "user_id": None,
        "processed_at": created,
        "restock": r["restock"],
        "duties": [],
        "total_duties_set": money_set(rec, Decimal(0)),
        "admin_graphql_api_id": gid("Refund", r["id"]),
        "refund_line_items": [],
        "transactions": [{
            "id": r["id"] + 1,
            "order_id": rec["id"],
            "kind": "refund",
            "gateway": "bogus",
            "status": "success",
            "message": None,
            "created_at": created,
            "test": rec["test"],
            "authorization": None,
            "location_id": None,
            "user_id": None,
            "parent_id": None,
            "processed_at": created,
            "device_id": None,
            "error_code": None,
            "source_name": "web",
            "receipt": {},
            "amount": money(r["amount"]),
            "currency": rec["currency"],
            "admin_graphql_api_id": gid("OrderTransaction", r["id"] + 1),
        }],
        "order_adjustments": [],
    }


# --------------------------------------------------------------------------------------
# GraphQL shape (plain dicts; connection fields are callables taking (info, **args))
# --------------------------------------------------------------------------------------
def gql_money(rec: dict[str, Any], amount: Decimal) -> dict[str, Any]:
    """A ``MoneyBag``."""
    return {
        "shopMoney": {"amount": money(amount), "currencyCode": rec["currency"]},
        "presentmentMoney": {
            "amount": money(_pres(rec, amount)), "currencyCode": rec["presentment_currency"],
        },
    }


def gql_address(a: dict[str, Any] | None) -> dict[str, Any] | None:
    """A ``MailingAddress``."""
    if a is None:
        return None
    return {
        "firstName": a["first_name"], "lastName": a["last_name"], "company": a["company"],
        "address1": a["address1"], "address2": a["address2"], "city": a["city"],
        "province": a["province"], "provinceCode": a["province_code"], "zip": a["zip"],
        "country": a["country"], "countryCodeV2": a["country_code"], "phone": a["phone"],
        "name": a["name"],
    }


def gql_order(
    rec: dict[str, Any], line_items: Callable[..., Any]
) -> dict[str, Any]:
    """A GraphQL ``Order``; ``line_items`` resolves the ``lineItems`` connection."""
    t = totals(rec)
    c = rec["customer"]
    fin = financial_status(rec)
    return {
        "__typename": "Order",
        "id": gid("Order", rec["id"]),
        "legacyResourceId": str(rec["id"]),
        "name": f"#{rec['order_number']}",
        "email": rec["email"],
        "phone": rec["phone"],
        "createdAt": iso_utc(rec["created"]),
        "updatedAt": iso_utc(rec["updated"]),
        "processedAt": iso_utc(rec["processed"]),
        "cancelledAt": iso_utc(rec["cancelled"]),
        "cancelReason": rec["cancel_reason"].upper() if rec["cancel_reason"] else None,
        "closed": rec["closed"] is not None,
        "closedAt": iso_utc(rec["closed"]),
        "displayFinancialStatus": fin.upper(),
        "displayFulfillmentStatus": "FULFILLED" if rec["fulfilled"] else "UNFULFILLED",
        "test": rec["test"],
        "currencyCode": rec["currency"],
        "presentmentCurrencyCode": rec["presentment_currency"],
        "totalPriceSet": gql_money(rec, t["total"]),
        "currentTotalPriceSet": gql_money(rec, t["current_total"]),
        "subtotalPriceSet": gql_money(rec, t["subtotal"]),
        "totalTaxSet": gql_money(rec, t["tax"]),
        "totalRefundedSet": gql_money(rec, t["refunded"]),
        "customer": gql_customer(c) if c else None,
        "billingAddress": gql_address(rec["billing"]),
        "shippingAddress": gql_address(rec["shipping"]),
        "lineItems": line_items,
        "refunds": [{
            "id": gid("Refund", r["id"]),
            "createdAt": iso_utc(r["created"]),
            "note": r["note"],
            "totalRefundedSet": gql_money(rec, r["amount"]),
        } for r in rec["refunds"]],
    }


def gql_customer(c: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL ``Customer``."""
    return {
        "id": gid("Customer", c["id"]),
        "legacyResourceId": str(c["id"]),
        "firstName": c["first_name"],
        "lastName": c["last_name"],
        "email": c["email"],
        "defaultEmailAddress": {"emailAddress": c["email"]} if c["email"] else None,
        "phone": c["phone"],
        "defaultPhoneNumber": {"phoneNumber": c["phone"]} if c["phone"] else None,
        "displayName": f"{c['first_name'] or ''} {c['last_name'] or ''}".strip()
        or (c["email"] or ""),
        "defaultAddress": gql_address(c["default_address"]),
    }


def gql_line_item(rec: dict[str, Any], li: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL ``LineItem``."""
    return {
        "__typename": "LineItem",
        "id": gid("LineItem", li["id"]),
        "title": li["title"],
        "name": li["name"],
        "quantity": li["quantity"],
        "sku": li["sku"],
        "variantTitle": li["variant_title"],
        "originalUnitPriceSet": gql_money(rec, li["price"]),
    }
