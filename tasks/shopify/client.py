"""The Shopify adapter: the GraphQL Admin API over one pooled httpx client, with cost-based
pacing. It implements :class:`tasks.shopify.port.ShopifyPort`.

Facts from research/shopify.md §2: a single query may not cost more than 1,000 points;
connections are priced by page size. Failures are classified in ``tasks.shopify.errors``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tasks.core.errors import PermanentError, RetryableError, SyncError
from tasks.shopify import bulk, queries
from tasks.shopify.auth import ClientCredentialsToken, Grant, StaticToken, TokenSource
from tasks.shopify.config import ShopifyConfig
from tasks.shopify.errors import ThrottleStatus, classify_grant, classify_response, throttle_status
from tasks.shopify.port import Node, ShopInfo
from tasks.shopify.queries import ORDER_FIELDS, order_gid, window_query

MAX_QUERY_COST = 1000
MAX_PAGE = 250
MAX_PACING_WAIT = 30.0
NODES_CHUNK = 250

__all__ = [
    "ShopInfo",
    "ShopifyClient",
    "classify_grant",
    "classify_response",
    "node_cost",
    "order_gid",
    "page_size_for",
    "throttle_status",
    "token_source_for",
    "window_query",
]


def node_cost(selection: str) -> int:
    """Requested cost of one object with this selection: 1, plus 1 per nested object."""
    return 1 + selection.count("{")


def page_size_for(selection: str, limit: int = MAX_QUERY_COST) -> int:
    """The largest page whose requested cost stays under Shopify's per-query maximum."""
    return max(1, min(MAX_PAGE, (limit - 2) // node_cost(selection)))


def request_client_credentials(
    config: ShopifyConfig, *, transport: httpx.BaseTransport | None = None
) -> Grant:
    """One client credentials grant (research/shopify.md §3); raises the classified error.

    The form carries the client secret, and the answer the token: neither is ever logged
    (httpx logs only the request line). Grants are rare (one a day per process), so each uses
    its own short-lived connection.
    """
    key, secret = config.api_key, config.api_secret_key
    form = {
        "grant_type": "client_credentials",
        "client_id": key.get_secret_value() if key else "",
        "client_secret": secret.get_secret_value() if secret else "",
    }
    url = f"{config.base_url}/admin/oauth/access_token"
    try:
        with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0), transport=transport) as http:
            response = http.post(url, data=form, headers={"Accept": "application/json"})
    except httpx.TimeoutException as exc:
        raise RetryableError("Shopify token endpoint did not answer", code="TIMEOUT") from exc
    except httpx.TransportError as exc:
        raise RetryableError(
            f"could not reach the Shopify token endpoint: {type(exc).__name__}",
            code="CONNECTION_ERROR",
        ) from exc
    answer = classify_grant(response.status_code, response.headers, _json(response))
    if isinstance(answer, SyncError):
        raise answer
    return answer


_SHARED_TOKENS: dict[tuple[str, str, str], ClientCredentialsToken] = {}
_SHARED_LOCK = threading.Lock()


def token_source_for(
    config: ShopifyConfig, *, transport: httpx.BaseTransport | None = None
) -> TokenSource:
    """The token source the config asks for (``ShopifyConfig.auth_mode``).

    A client-credentials source is shared by every client of the process with the same shop and
    app, so that each flow run does not make its own grant.
    """
    if config.auth_mode != "client_credentials":
        return StaticToken(config.access_token)
    key, secret = config.api_key, config.api_secret_key
    identity = (
        config.base_url,
        key.get_secret_value() if key else "",
        secret.get_secret_value() if secret else "",
    )
    with _SHARED_LOCK:
        source = _SHARED_TOKENS.get(identity)
        if source is None:
            source = ClientCredentialsToken(
                lambda: request_client_credentials(config, transport=transport)
            )
            _SHARED_TOKENS[identity] = source
        return source


class ShopifyClient:
    """GraphQL Admin API client. Paces itself by the cost bucket; never retries (Prefect does).

    The one exception is authentication: when Shopify answers 401 and the token can be renewed
    (client credentials), the request is sent once more with a new token, as the Salesforce
    adapter re-authenticates once on INVALID_SESSION_ID.
    """

    def __init__(
        self,
        config: ShopifyConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        tokens: TokenSource | None = None,
    ):
        self.config = config
        self._http = httpx.Client(
            base_url=config.api_url,
            headers={"Accept": "application/json"},  # json= / data= set the Content-Type
            timeout=httpx.Timeout(config.timeout_seconds, connect=5.0),
            transport=transport,
        )
        self.tokens = tokens or token_source_for(config, transport=transport)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._bucket: ThrottleStatus | None = None
        self._bucket_seen = time.monotonic()
        self.calls = 0
        self.cost_spent = 0.0

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run one query; return ``data`` or raise the classified error (adapter-internal:
        callers use the intent methods)."""
        self._pace(_estimated_cost(query, variables))
        payload = {"query": query, "variables": dict(variables or {})}
        token = self.tokens.token()
        response = self._post(payload, token)
        if response.status_code == 401:
            renewed = self.tokens.renew(token)
            if renewed is not None:
                response = self._post(payload, renewed)
        body = _json(response)
        self._note(body)
        error = classify_response(response.status_code, response.headers, body)
        if error is not None:
            raise error
        return dict(body.get("data") or {})

    def stream(self, url: str) -> AbstractContextManager[httpx.Response]:
        """GET an absolute URL (a bulk result) through the pooled client, streamed."""
        return self._http.stream("GET", url, timeout=self.config.bulk_download_timeout_seconds)

    def _post(self, payload: dict[str, Any], token: str) -> httpx.Response:
        try:
            return self._http.post(
                "/graphql.json", json=payload, headers={"X-Shopify-Access-Token": token}
            )
        except httpx.TimeoutException as exc:
            raise RetryableError(f"Shopify did not answer in time: {exc}", code="TIMEOUT") from exc
        except httpx.TransportError as exc:
            raise RetryableError(
                f"could not reach Shopify: {exc}", code="CONNECTION_ERROR"
            ) from exc

    def _note(self, body: Any) -> None:
        self.calls += 1
        status = throttle_status(body)
        cost = body.get("extensions", {}).get("cost", {}) if isinstance(body, dict) else {}
        self.cost_spent += float(cost.get("actualQueryCost") or 0)
        if status is not None:
            with self._lock:
                self._bucket = status
                self._bucket_seen = time.monotonic()

    def _pace(self, cost: int) -> None:
        """Wait until the bucket can hold ``cost``: pacing, not retrying."""
        with self._lock:
            bucket, seen = self._bucket, self._bucket_seen
        if bucket is None or bucket.restore_rate <= 0:
            return
        available = min(
            bucket.maximum, bucket.available + (time.monotonic() - seen) * bucket.restore_rate
        )
        if available < cost:
            self._sleep(min(MAX_PACING_WAIT, (cost - available) / bucket.restore_rate))

    # -- the intent methods (ShopifyPort) ------------------------------------------------------

    def order(self, order_id: str) -> Node | None:
        """One order's GraphQL node, or None when Shopify has no such order (or hides it)."""
        data = self.graphql(queries.ORDER_QUERY, {"id": order_gid(order_id)})
        return data.get("order")

    def orders_named(self, name: str) -> list[str]:
        """Ids of the orders whose name is ``name`` (``#1001``), via the ``name:`` search filter."""
        wanted = name if name.startswith("#") else f"#{name}"
        data = self.graphql(queries.ORDER_BY_NAME_QUERY, {"query": queries.name_query(wanted)})
        nodes = (data.get("orders") or {}).get("nodes") or []
        return [str(node["legacyResourceId"]) for node in nodes if node.get("name") == wanted]

    def count_orders(self, start: datetime, end: datetime, limit: int) -> int:
        """How many orders were updated in ``[start, end)``, counted up to ``limit``."""
        variables = {"query": window_query(start, end), "limit": limit}
        data = self.graphql(queries.ORDERS_COUNT_QUERY, variables)
        return int((data.get("ordersCount") or {}).get("count") or 0)

    def order_pages(self, start: datetime, end: datetime) -> Iterator[list[Node]]:
        """Pages of order nodes updated in ``[start, end)``, oldest update first."""
        after: str | None = None
        first = page_size_for(ORDER_FIELDS)
        while True:
            variables = {"first": first, "after": after, "query": window_query(start, end)}
            orders = self.graphql(queries.ORDERS_QUERY, variables).get("orders") or {}
            yield list(orders.get("nodes") or [])
            page = orders.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return
            after = page.get("endCursor")

    def bulk_orders(self, start: datetime, end: datetime, path: Path) -> int:
        """One bulk operation over the window: start, poll, download (through this client's
        pool) stitched into ``path``; returns how many orders."""
        url = bulk.wait_bulk(self, bulk.start_bulk(self, start, end))
        return bulk.download_bulk(self, url, path)

    def existing_order_ids(self, order_ids: Iterable[str]) -> set[str]:
        """Which of these numeric order ids Shopify still has (and this app may see)."""
        ids = [i for i in dict.fromkeys(order_ids) if i.isdigit()]
        found: set[str] = set()
        for start in range(0, len(ids), NODES_CHUNK):
            chunk = [order_gid(i) for i in ids[start : start + NODES_CHUNK]]
            data = self.graphql(queries.NODES_QUERY, {"ids": chunk})
            for node in data.get("nodes") or []:
                if isinstance(node, dict) and node.get("legacyResourceId"):
                    found.add(str(node["legacyResourceId"]))
        return found

    def recent_orders(self) -> list[Node]:
        """The ten newest orders with their customer fields."""
        data = self.graphql(queries.RECENT_ORDERS_QUERY)
        return list((data.get("orders") or {}).get("nodes") or [])

    def webhook_subscriptions(self) -> list[Node]:
        """The shop's webhook subscriptions (the first 100)."""
        data = self.graphql(queries.SUBSCRIPTIONS_QUERY)
        return list((data.get("webhookSubscriptions") or {}).get("nodes") or [])

    def subscribe_webhook(self, topic: str, url: str) -> str:
        """Create a webhook subscription; returns its id, or raises with Shopify's user error."""
        variables = {"topic": queries.topic_enum(topic), "url": url}
        payload = (
            self.graphql(queries.SUBSCRIBE_MUTATION, variables).get("webhookSubscriptionCreate")
            or {}
        )
        errors = payload.get("userErrors") or []
        if errors:
            message = "; ".join(str(e.get("message")) for e in errors)
            raise PermanentError(f"Shopify refused the {topic} subscription: {message}")
        return str((payload.get("webhookSubscription") or {}).get("id", ""))

    def shop_info(self) -> ShopInfo:
        """The shop's domain, timezone, currency and this app's access scopes."""
        data = self.graphql(queries.SHOP_QUERY)
        shop = data.get("shop") or {}
        scopes = (data.get("currentAppInstallation") or {}).get("accessScopes") or []
        return ShopInfo(
            domain=str(shop.get("myshopifyDomain", "")),
            timezone=str(shop.get("ianaTimezone") or "UTC"),
            currency=str(shop.get("currencyCode") or ""),
            scopes=frozenset(str(s.get("handle")) for s in scopes),
        )


def _estimated_cost(query: str, variables: Mapping[str, Any] | None) -> int:
    first = int((variables or {}).get("first") or 1)
    return min(MAX_QUERY_COST, 2 + first * node_cost(ORDER_FIELDS)) if "orders(" in query else 20


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}
