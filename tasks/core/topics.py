"""The one table of Shopify webhook topics (research/shopify.md §1, "Topics and payloads").

Every other list is derived from :data:`TOPICS`: what the receiver stores (``webhooks/app.py``),
how the planner reads a delivery (``tasks/core/inbox.py``), what ``shopsync webhooks register``
subscribes and what ``shopsync doctor`` checks (``tasks/checks/doctor.py``). README's
"Webhook topics" table is checked against it by ``tests/unit/test_topics.py``. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

DeleteAction = Literal["ignore", "flag"]


class Handling(StrEnum):
    """How the planner reads a delivery of the topic."""

    ORDER = "order"  # the body is the REST order: its newest state is synced
    REFUND = "refund"  # the body is a refund: the order is synced once a payload reflects it
    DELETE = "delete"  # the body is the id only: SHOPSYNC_ORDER_DELETE_ACTION decides


class Subscribe(StrEnum):
    """When ``shopsync webhooks register`` subscribes the topic (and doctor looks for it)."""

    ALWAYS = "always"
    WHEN_FLAGGING_DELETES = "when SHOPSYNC_ORDER_DELETE_ACTION=flag"
    NEVER = "never"


Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Topic:
    """One webhook topic: how it is handled, when it is subscribed, how doctor rates its absence."""

    name: str
    handling: Handling
    subscribe: Subscribe
    missing: Severity  # doctor's verdict when a subscribed topic has no subscription

    def subscribed(self, delete_action: DeleteAction) -> bool:
        """Whether ``webhooks register`` subscribes it (and doctor checks it) with this setting."""
        if self.subscribe is Subscribe.WHEN_FLAGGING_DELETES:
            return delete_action == "flag"
        return self.subscribe is Subscribe.ALWAYS


TOPICS: tuple[Topic, ...] = (
    Topic("orders/create", Handling.ORDER, Subscribe.ALWAYS, "error"),
    Topic("orders/updated", Handling.ORDER, Subscribe.ALWAYS, "error"),
    Topic("orders/paid", Handling.ORDER, Subscribe.ALWAYS, "error"),
    Topic("orders/cancelled", Handling.ORDER, Subscribe.ALWAYS, "error"),
    # Accepted when a shop sends it; orders/updated already carries every edit.
    Topic("orders/edited", Handling.ORDER, Subscribe.NEVER, "warning"),
    # Shopify also sends orders/updated with every refund: a missing one is a slower path only.
    Topic("refunds/create", Handling.REFUND, Subscribe.ALWAYS, "warning"),
    Topic("orders/delete", Handling.DELETE, Subscribe.WHEN_FLAGGING_DELETES, "warning"),
)


def topics_handled_as(handling: Handling) -> frozenset[str]:
    """The names of the topics handled this way."""
    return frozenset(t.name for t in TOPICS if t.handling is handling)


def registered_topics(delete_action: DeleteAction = "ignore") -> tuple[Topic, ...]:
    """The topics ``webhooks register`` subscribes and doctor checks, in table order."""
    return tuple(t for t in TOPICS if t.subscribed(delete_action))


ORDER_TOPICS = topics_handled_as(Handling.ORDER)
(REFUND_TOPIC,) = topics_handled_as(Handling.REFUND)
(DELETE_TOPIC,) = topics_handled_as(Handling.DELETE)
HANDLED_TOPICS = frozenset(t.name for t in TOPICS)
# What `shopsync webhooks register` subscribes with the default SHOPSYNC_ORDER_DELETE_ACTION.
REGISTERED_TOPICS = tuple(t.name for t in registered_topics())
