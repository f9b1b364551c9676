"""``POST /admin/api/{version}/graphql.json``: execution, resolvers, cost and throttling
(research §2 GraphQL Admin API, §2 GraphQL cost and throttling, §3 scopes)."""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, Any

from graphql import (
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    validate,
)

from . import cost as costs
from .config import MAX_SINGLE_QUERY_COST, PLAN_DISPLAY_NAMES
from .cursors import CursorError, decode, decode_sort_key, encode, encode_sort_key
from .render import gid, gql_line_item, gql_order
from .schema import build_admin_schema
from .search import SearchError, parse_search
from .store import SORT_KEYS, rec_matches, rec_sort_key

if TYPE_CHECKING:
    from .shop import Shop

MAX_PAGE = 250
DOCS = "https://shopify.dev/api/usage/rate-limits"


def access_denied(field: str, scope: str) -> GraphQLError:
    """Shopify's ACCESS_DENIED error for a missing scope."""
    return GraphQLError(
        f"Access denied for {field} field. Required access: `{scope}` access scope.",
        extensions={"code": "ACCESS_DENIED",
                    "documentation": "https://shopify.dev/api/usage/access-scopes",
                    "requiredAccess": f"`{scope}` access scope."},
    )


def _shop(info: Any) -> Shop:
    return info.context["shop"]


def _page_size(first: int | None, last: int | None) -> int:
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    if first is not None and last is not None:
        raise GraphQLError("providing both first and last is not supported")
    size = first if first is not None else last
    assert size is not None
    if size < 0 or size > MAX_PAGE:
        raise GraphQLError(
            f"The {'first' if first is not None else 'last'} argument must be between 0 and "
            f"{MAX_PAGE}.", extensions={"code": "BAD_REQUEST"})
    return size


def parse_gid(value: str, kind: str | None = None) -> tuple[str, int] | None:
    """``gid://shopify/Order/123`` → ("Order", 123); None if malformed or of another kind."""
    parts = value.split("/")
    if len(parts) != 5 or parts[:3] != ["gid:", "", "shopify"] or not parts[4].isdigit():
        raise GraphQLError(f"Invalid global id '{value}'",
                           extensions={"code": "argumentLiteralsIncompatible"})
    if kind is not None and parts[3] != kind:
        return None
    return parts[3], int(parts[4])


# -- order views ------------------------------------------------------------------------
def order_view(rec: dict[str, Any]) -> dict[str, Any]:
    """GraphQL view of one order, with the paginated ``lineItems`` connection."""
    items = rec["line_items"]

    def line_items(info: Any, first: int | None = None, after: str | None = None,
                   last: int | None = None, before: str | None = None,
                   reverse: bool = False) -> dict[str, Any]:
        if info is None:  # bulk operation: every item, no cursors needed
            return {"nodes": [gql_line_item(rec, li) for li in items]}
        views = [(k, gql_line_item(rec, li)) for k, li in enumerate(items)]
        size = _page_size(first, last)
        if reverse:
            views.reverse()
        start = decode(after)["i"] + 1 if after else 0
        end = decode(before)["i"] if before else len(views)
        if first is not None:
            return _list_connection(views, start, min(end, start + size), has_prev=start > 0,
                                    has_next=start + size < end)
        lo = max(start, end - size)
        return _list_connection(views, lo, end, has_prev=lo > start, has_next=end < len(views))

    return gql_order(rec, line_items)


def _list_connection(views: list[tuple[int, dict[str, Any]]], lo: int, hi: int,
                     has_prev: bool, has_next: bool = False) -> dict[str, Any]:
    chosen = views[lo:hi]
    edges = [{"cursor": encode({"i": lo + n}), "node": v} for n, (_, v) in enumerate(chosen)]
    return _connection(edges, has_next, has_prev)


def _connection(edges: list[dict[str, Any]], has_next: bool, has_prev: bool) -> dict[str, Any]:
    return {
        "edges": edges,
        "nodes": [e["node"] for e in edges],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_prev,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


# -- Query resolvers --------------------------------------------------------------------
def resolve_orders(_: Any, info: Any, first: int | None = None, after: str | None = None,
                   last: int | None = None, before: str | None = None, reverse: bool = False,
                   sortKey: str = "ID", query: str | None = None,
                   savedSearchId: str | None = None) -> dict[str, Any]:
    """``orders``: filtered, sorted, cursor-paginated over the lazy store."""
    shop = _shop(info)
    if not shop.has_scope("read_orders"):
        raise access_denied("orders", "read_orders")
    size = _page_size(first, last)
    if sortKey not in SORT_KEYS:
        raise GraphQLError(f"Unsupported sortKey {sortKey}")
    try:
        f = parse_search(query, shop.tz)
        backwards = last is not None
        cursor = decode_sort_key(before if backwards else after)
    except (SearchError, CursorError) as exc:
        raise GraphQLError(str(exc)) from exc
    f.visible_from = shop.visible_from()
    desc = (not reverse) if backwards else reverse
    shop.stats.add("order_pages")
    rows = list(islice(shop.store.iterate(f, sortKey, desc, cursor), size + 1))
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    edges = [{"cursor": encode_sort_key(sk), "node": order_view(shop.present(rec))}
             for sk, rec in rows]
    if backwards:
        beyond = cursor is not None and _exists(shop, f, sortKey, reverse, cursor)
        return _connection(edges, has_next=beyond, has_prev=more)
    behind = cursor is not None and _exists(shop, f, sortKey, not reverse, cursor)
    return _connection(edges, has_next=more, has_prev=behind)


def resolve_orders_count(_: Any, info: Any, query: str | None = None,
                         savedSearchId: str | None = None, limit: int | None = 10000
                         ) -> dict[str, Any]:
    """``ordersCount`` (Admin API 2024-07+): orders matching ``query``, counted up to ``limit``
    (default 10,000; ``null`` uncapped, 2025-07+); ``AT_LEAST`` when the limit was reached."""
    shop = _shop(info)
    if not shop.has_scope("read_orders"):
        raise access_denied("ordersCount", "read_orders")
    try:
        f = parse_search(query, shop.tz)
    except SearchError as exc:
        raise GraphQLError(str(exc)) from exc
    f.visible_from = shop.visible_from()
    rows = shop.store.iterate(f, "ID", False, None)
    count = sum(1 for _ in (rows if limit is None else islice(rows, limit)))
    reached = limit is not None and count >= limit
    return {"count": count, "precision": "AT_LEAST" if reached else "EXACT"}


def _exists(shop: Shop, f: Any, key: str, desc: bool, after: tuple[int, int]) -> bool:
    """Is there any matching order after ``after`` in the given direction?  (Cheap when the
    order at ``after`` — normally the cursor's — still matches: it is the answer.)"""
    rec = shop.store.get(after[1])
    if rec is not None and rec_matches(rec, f) and rec_sort_key(rec, key) == tuple(after):
        return True
    return next(iter(shop.store.iterate(f, key, desc, after)), None) is not None


def _visible_order(shop: Shop, ident: int) -> dict[str, Any] | None:
    rec = shop.visible_order(ident)
    return order_view(shop.present(rec)) if rec is not None else None


def resolve_order(_: Any, info: Any, id: str) -> dict[str, Any] | None:
    """``order(id:)``; null if missing or hidden by the 60-day rule."""
    shop = _shop(info)
    if not shop.has_scope("read_orders"):
        raise access_denied("order", "read_orders")
    parsed = parse_gid(id, "Order")
    return _visible_order(shop, parsed[1]) if parsed else None


def resolve_node(_: Any, info: Any, id: str) -> dict[str, Any] | None:
    """``node(id:)`` (Orders and webhook subscriptions)."""
    shop = _shop(info)
    kind, ident = parse_gid(id) or ("", 0)
    if kind == "Order":
        if not shop.has_scope("read_orders"):
            raise access_denied("node", "read_orders")
        return _visible_order(shop, ident)
    if kind == "WebhookSubscription":
        sub = shop.webhooks.get_subscription(id)
        return subscription_view(sub) if sub else None
    return None


def resolve_nodes(_: Any, info: Any, ids: list[str]) -> list[dict[str, Any] | None]:
    """``nodes(ids:)``."""
    return [resolve_node(_, info, i) for i in ids]


def resolve_shop(_: Any, info: Any) -> dict[str, Any]:
    """``shop``."""
    shop = _shop(info)
    cfg = shop.cfg
    return {
        "__typename": "Shop",
        "id": gid("Shop", shop.shop_id),
        "name": cfg.name or cfg.domain.split(".")[0],
        "email": f"owner@{cfg.domain}",
        "myshopifyDomain": cfg.domain,
        "ianaTimezone": cfg.timezone,
        "currencyCode": cfg.currency,
        "plan": {"displayName": PLAN_DISPLAY_NAMES.get(cfg.plan, cfg.plan),
                 "partnerDevelopment": False, "shopifyPlus": cfg.plan in ("plus", "enterprise")},
    }


def resolve_installation(_: Any, info: Any) -> dict[str, Any]:
    """``currentAppInstallation``."""
    shop = _shop(info)
    return {"id": gid("AppInstallation", shop.shop_id),
            "accessScopes": [{"handle": s, "description": s} for s in shop.cfg.scopes]}


def subscription_view(sub: Any) -> dict[str, Any]:
    """GraphQL view of a webhook subscription."""
    return {
        "__typename": "WebhookSubscription",
        "id": sub.id,
        "topic": sub.topic.upper().replace("/", "_"),
        "format": "JSON",
        "callbackUrl": sub.url,
        "uri": sub.url,
        "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": sub.url},
        "includeFields": [],
        "createdAt": sub.created_at,
        "updatedAt": sub.created_at,
    }


def resolve_subscriptions(_: Any, info: Any, first: int | None = None, after: str | None = None,
                          last: int | None = None, before: str | None = None,
                          topics: list[str] | None = None, callbackUrl: str | None = None,
                          format: str | None = None) -> dict[str, Any]:
    """``webhookSubscriptions``."""
    _page_size(first, last)
    subs = _shop(info).webhooks.list_subscriptions()
    wanted = {t.lower().replace("_", "/", 1) for t in topics} if topics else None
    views = [subscription_view(s) for s in subs
             if (wanted is None or s.topic in wanted)
             and (callbackUrl is None or s.url == callbackUrl)]
    edges = [{"cursor": encode({"id": v["id"]}), "node": v} for v in views]
    return _connection(edges[: first or last], has_next=len(edges) > (first or last or 0),
                       has_prev=False)


def resolve_subscription(_: Any, info: Any, id: str) -> dict[str, Any] | None:
    """``webhookSubscription(id:)``."""
    sub = _shop(info).webhooks.get_subscription(id)
    return subscription_view(sub) if sub else None


def resolve_current_bulk(_: Any, info: Any, type: str = "QUERY") -> dict[str, Any] | None:
    """``currentBulkOperation``: the most recent one."""
    op = _shop(info).bulk.current()
    return op.view() if op else None


def resolve_bulk(_: Any, info: Any, id: str) -> dict[str, Any] | None:
    """``bulkOperation(id:)``."""
    op = _shop(info).bulk.get(id)
    return op.view() if op else None


# -- Mutations --------------------------------------------------------------------------
def resolve_subscription_create(_: Any, info: Any, topic: str,
                                webhookSubscription: dict[str, Any]) -> dict[str, Any]:
    """``webhookSubscriptionCreate``."""
    shop = _shop(info)
    url = webhookSubscription.get("callbackUrl") or webhookSubscription.get("uri") or ""
    name = topic.lower().replace("_", "/", 1)
    sub, error = shop.webhooks.subscribe(name, url)
    if error:
        return {"webhookSubscription": None,
                "userErrors": [{"field": ["webhookSubscription", "callbackUrl"],
                                "message": error}]}
    return {"webhookSubscription": subscription_view(sub), "userErrors": []}


def resolve_subscription_delete(_: Any, info: Any, id: str) -> dict[str, Any]:
    """``webhookSubscriptionDelete``."""
    if _shop(info).webhooks.unsubscribe(id):
        return {"deletedWebhookSubscriptionId": id, "userErrors": []}
    return {"deletedWebhookSubscriptionId": None,
            "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}]}


def resolve_bulk_run(_: Any, info: Any, query: str,
                     groupObjects: bool | None = None) -> dict[str, Any]:
    """``bulkOperationRunQuery``."""
    op, errors = _shop(info).bulk.run_query(query, info.context["base_url"])
    return {"bulkOperation": op.view() if op else None, "userErrors": errors}


def resolve_bulk_cancel(_: Any, info: Any, id: str) -> dict[str, Any]:
    """``bulkOperationCancel``."""
    op = _shop(info).bulk.cancel(id)
    if op is None:
        return {"bulkOperation": None,
                "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}]}
    return {"bulkOperation": op.view(), "userErrors": []}


def resolve_customer(order: dict[str, Any], info: Any) -> dict[str, Any] | None:
    """``Order.customer`` needs ``read_customers``."""
    if not _shop(info).has_scope("read_customers"):
        raise access_denied("customer", "read_customers")
    return order.get("customer")


QUERY_RESOLVERS = {
    "orders": resolve_orders, "ordersCount": resolve_orders_count, "order": resolve_order,
    "node": resolve_node,
    "nodes": resolve_nodes, "shop": resolve_shop, "currentAppInstallation": resolve_installation,
    "webhookSubscriptions": resolve_subscriptions, "webhookSubscription": resolve_subscription,
    "currentBulkOperation": resolve_current_bulk, "bulkOperation": resolve_bulk,
}
MUTATION_RESOLVERS = {
    "webhookSubscriptionCreate": resolve_subscription_create,
    "webhookSubscriptionDelete": resolve_subscription_delete,
    "bulkOperationRunQuery": resolve_bulk_run,
    "bulkOperationCancel": resolve_bulk_cancel,
}


def make_schema(currencies: list[str]) -> GraphQLSchema:
    """The executable schema: SDL plus the resolvers above."""
    schema = build_admin_schema(currencies)
    assert schema.query_type is not None
    assert schema.mutation_type is not None
    for name, fn in QUERY_RESOLVERS.items():
        schema.query_type.fields[name].resolve = fn
    for name, fn in MUTATION_RESOLVERS.items():
        schema.mutation_type.fields[name].resolve = fn
    schema.type_map["Order"].fields["customer"].resolve = resolve_customer  # type: ignore[union-attr]
    return schema


# -- request handling -------------------------------------------------------------------
def _format(err: GraphQLError) -> dict[str, Any]:
    out = err.formatted
    if err.message.startswith("Cannot query field") and "extensions" not in out:
        out = {**out, "extensions": {"code": "undefinedField"}}
    return out


def _cost_ext(shop: Shop, requested: int, actual: int | None) -> dict[str, Any]:
    b = shop.graphql_bucket
    return {"cost": {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": {"maximumAvailable": b.capacity,
                           "currentlyAvailable": int(b.available()),
                           "restoreRate": b.rate},
    }}


def handle_graphql(shop: Shop, schema: GraphQLSchema, payload: Any, base_url: str
                   ) -> dict[str, Any]:
    """Run one GraphQL request against ``shop``; the HTTP status is always 200."""
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return {"errors": [{"message": "Parameter Missing or Invalid",
                            "extensions": {"code": "BAD_REQUEST"}}]}
    variables = payload.get("variables") or {}
    op_name = payload.get("operationName")
    try:
        doc = parse(payload["query"])
    except GraphQLError as exc:
        return {"errors": [_format(exc)]}
    errors = validate(schema, doc)
    if errors:
        return {"errors": [_format(e) for e in errors]}
    op = get_operation_ast(doc, op_name)
    if op is None:
        return {"errors": [{"message": "An operation name is required"}]}
    frags = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    requested = costs.operation_cost(op, schema, frags, variables)
    if requested > MAX_SINGLE_QUERY_COST:
        shop.stats.add("max_cost_exceeded")
        return {"errors": [{
            "message": f"Query cost is {requested}, which exceeds the single query max cost "
                       f"limit ({MAX_SINGLE_QUERY_COST}).",
            "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested,
                           "maxCost": MAX_SINGLE_QUERY_COST, "documentation": DOCS}}],
            "extensions": _cost_ext(shop, requested, None)}
    if not shop.graphql_bucket.try_take(requested):
        shop.stats.add("throttled")
        return {"errors": [{"message": "Throttled",
                            "extensions": {"code": "THROTTLED", "documentation": DOCS}}],
                "extensions": _cost_ext(shop, requested, None)}
    result = execute(schema, doc, variable_values=variables, operation_name=op_name,
                     context_value={"shop": shop, "base_url": base_url})
    if op.operation == OperationType.MUTATION:
        actual = requested
    else:
        actual = costs.actual_cost(op.selection_set, schema.query_type, result.data, schema, frags)
        actual = min(actual, requested)
    shop.graphql_bucket.give_back(requested - actual)
    shop.stats.add("cost_spent", actual)
    out: dict[str, Any] = {}
    if result.errors:
        out["errors"] = [_format(e) for e in result.errors]
    out["data"] = result.data
    out["extensions"] = _cost_ext(shop, requested, actual)
    return out
