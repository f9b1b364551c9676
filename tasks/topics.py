"""The Shopify webhook topics shopsync handles (research/shopify.md §1, "Topics")."""

from __future__ import annotations

ORDER_TOPICS = frozenset(
    {"orders/create", "orders/updated", "orders/paid", "orders/cancelled", "orders/edited"}
)
REFUND_TOPIC = "refunds/create"
DELETE_TOPIC = "orders/delete"
HANDLED_TOPICS = ORDER_TOPICS | {REFUND_TOPIC, DELETE_TOPIC}
# What `shopsync webhooks register` subscribes (orders/delete only when it should be flagged).
REGISTERED_TOPICS = (
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/cancelled",
    "refunds/create",
)
