"""One claimed order, prepared once: parsed, checked against the skip rules and mapped.

A :class:`PreparedOrder` is made once per order a run handles (:class:`Preparer`), and planning
(the batch's lookups, the waves of one customer's orders), grouping (Collections chunks by
Account and customer) and writing (``tasks.sync``, ``tasks.batch_drain``) all read it: nothing
after preparing maps the order again. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tasks.core.mapping import MappingConfig, OrgSchema, SalesforceRecords, map_order, skip_reason
from tasks.core.orders import Order

__all__ = ["Mapper", "PreparedOrder", "Preparer", "customer_key"]

Mapper = Callable[[Order, MappingConfig, OrgSchema, str], SalesforceRecords]
"""How an order is mapped: :func:`tasks.core.mapping.map_order` (a test may count its calls)."""


def customer_key(records: SalesforceRecords) -> str:
    """The key the customer cache uses: the Shopify customer id, or the guest Account key."""
    return records.customer_id or records.contact_key or records.account_key


@dataclass(frozen=True, slots=True)
class PreparedOrder:
    """An order and its three record bodies (``records``), or why it is not synced (``skip``)."""

    order: Order
    records: SalesforceRecords | None
    skip: str | None = None

    @property
    def order_id(self) -> str:
        """Shopify's numeric order id."""
        return self.order.id

    @property
    def customer(self) -> str | None:
        """The customer cache's key (None for a skipped order): two orders of one customer
        are never written at once."""
        return None if self.records is None else customer_key(self.records)


@dataclass(frozen=True, slots=True)
class Preparer:
    """Prepares orders under one mapping configuration, org and shop timezone."""

    mapping: MappingConfig
    org: OrgSchema
    shop_timezone: str
    mapper: Mapper = map_order

    def __call__(self, order: Order) -> PreparedOrder:
        """The order prepared; a mapping error (a key that does not fit, a CloseDate outside
        the calendar, an unknown timezone) raises, classified."""
        reason = skip_reason(order, self.mapping)
        if reason is not None:
            return PreparedOrder(order, None, reason)
        return PreparedOrder(order, self.mapper(order, self.mapping, self.org, self.shop_timezone))
