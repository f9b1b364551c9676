"""GraphQL: every document the product sends to Shopify is here, and nowhere else, including
``ORDER_FIELDS``, the order selection that :func:`tasks.core.orders.parse_graphql_order` reads.

Pure text and the search syntax that goes into it; research/shopify.md §2.
"""

from __future__ import annotations

import json
from datetime import datetime

_MAILING_ADDRESS_FIELDS = (
    "firstName lastName company address1 address2 city province provinceCode zip country "
    "countryCodeV2 phone"
)
_MONEY_BAG = "shopMoney { amount currencyCode } presentmentMoney { amount currencyCode }"

ORDER_FIELDS: str = f"""
  id
  legacyResourceId
  name
  email
  phone
  createdAt
  updatedAt
  processedAt
  cancelledAt
  cancelReason
  displayFinancialStatus
  test
  currencyCode
  presentmentCurrencyCode
  totalPriceSet {{ {_MONEY_BAG} }}
  currentTotalPriceSet {{ {_MONEY_BAG} }}
  customer {{
    id
    legacyResourceId
    firstName
    lastName
    email
    defaultEmailAddress {{ emailAddress }}
    phone
    defaultAddress {{ {_MAILING_ADDRESS_FIELDS} }}
  }}
  billingAddress {{ {_MAILING_ADDRESS_FIELDS} }}
"""
"""GraphQL selection set for one ``Order``: exactly what
:func:`~tasks.core.orders.parse_graphql_order` reads.

Use it as ``fragment OrderFields on Order { <ORDER_FIELDS> }`` or inline it in a query's ``node``.
Only standard Shopify Admin GraphQL field names are used.
"""

ORDER_QUERY = f"""
query OrderById($id: ID!) {{
  order(id: $id) {{ ...OrderFields }}
}}
fragment OrderFields on Order {{ {ORDER_FIELDS} }}
"""

ORDERS_QUERY = f"""
query OrdersPage($first: Int!, $after: String, $query: String) {{
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{ ...OrderFields }}
  }}
}}
fragment OrderFields on Order {{ {ORDER_FIELDS} }}
"""

# ordersCount (Admin API 2024-07+): a Count {count, precision}; counted up to ``limit``
# (default 10,000), ``precision`` AT_LEAST when the limit was reached.
ORDERS_COUNT_QUERY = """
query OrdersCount($query: String, $limit: Int) {
  ordersCount(query: $query, limit: $limit) { count precision }
}
"""

ORDER_BY_NAME_QUERY = """
query OrderByName($query: String!) {
  orders(first: 2, query: $query) { nodes { legacyResourceId name } }
}
"""

# The newest orders' customer fields: redacted ones show the app lacks protected customer data.
RECENT_ORDERS_QUERY = """
query RecentOrders {
  orders(first: 10, sortKey: CREATED_AT, reverse: true) {
    nodes {
      legacyResourceId email phone
      customer { legacyResourceId firstName lastName defaultEmailAddress { emailAddress } }
      billingAddress { firstName lastName address1 }
    }
  }
}
"""

NODES_QUERY = """
query OrdersExist($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Order { id legacyResourceId } }
}
"""

SUBSCRIBE_MUTATION = """
mutation Subscribe($topic: WebhookSubscriptionTopic!, $url: URL!) {
  webhookSubscriptionCreate(
    topic: $topic, webhookSubscription: {callbackUrl: $url, format: JSON}
  ) {
    webhookSubscription { id topic }
    userErrors { field message }
  }
}
"""

SUBSCRIPTIONS_QUERY = """
query Subscriptions {
  webhookSubscriptions(first: 100) {
    nodes { topic endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } }
  }
}
"""

SHOP_QUERY = """
query ShopInfo {
  shop { name myshopifyDomain ianaTimezone currencyCode }
  currentAppInstallation { accessScopes { handle } }
}
"""

BULK_RUN = """
mutation RunBulk($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message }
  }
}
"""

BULK_STATUS = """
query BulkStatus($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount url partialDataUrl }
}
"""


def bulk_orders_query(start: datetime, end: datetime) -> str:
    """The inner query of a bulk operation listing the window (fields inlined, no fragments)."""
    search = json.dumps(window_query(start, end))
    return (
        f"{{ orders(query: {search}, sortKey: UPDATED_AT) "
        f"{{ edges {{ node {{ {ORDER_FIELDS} }} }} }} }}"
    )


def order_gid(order_id: str) -> str:
    """The GraphQL id of an order from its numeric (REST) id."""
    return f"gid://shopify/Order/{order_id}"


def window_query(start: datetime, end: datetime) -> str:
    """Shopify search syntax for ``start <= updated_at < end``."""
    return f"updated_at:>='{_iso(start)}' AND updated_at:<'{_iso(end)}'"


def name_query(name: str) -> str:
    """Shopify search syntax for the order named ``name``."""
    return f'name:"{name}"'


def topic_enum(topic: str) -> str:
    """``orders/create`` → ``ORDERS_CREATE`` (the GraphQL WebhookSubscriptionTopic)."""
    return topic.replace("/", "_").upper()


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
