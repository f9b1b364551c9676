"""The Shopify adapter: the GraphQL Admin API over httpx, with cost-based pacing.

Facts from research/shopify.md §2: every response carries ``extensions.cost.throttleStatus``;
THROTTLED comes back as HTTP 200 with an error; a single query may not cost more than 1,000 points;
connections are priced by page size. Failures are classified here and only here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from tasks.core.errors import (
    AuthError,
    ConfigError,
    PermanentError,
    RateLimited,
    RetryableError,
    SyncError,
)
from tasks.core.orders import ORDER_FIELDS
from tasks.settings import Settings
from tasks.shopify.auth import ClientCredentialsToken, Grant, StaticToken, TokenSource

MAX_QUERY_COST = 1000
MAX_PAGE = 250
MAX_PACING_WAIT = 30.0

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

SHOP_QUERY = """
query ShopInfo {
  shop { name myshopifyDomain ianaTimezone currencyCode }
  currentAppInstallation { accessScopes { handle } }
}
"""


@dataclass(frozen=True, slots=True)
class ThrottleStatus:
    """The shop's GraphQL cost bucket as of the last response."""

    maximum: float
    available: float
    restore_rate: float


@dataclass(frozen=True, slots=True)
class ShopInfo:
    """What the product needs to know about the shop."""

    domain: str
    timezone: str
    currency: str
    scopes: frozenset[str]


def node_cost(selection: str) -> int:
    """Requested cost of one object with this selection: 1, plus 1 per nested object."""
    return 1 + selection.count("{")


def page_size_for(selection: str, limit: int = MAX_QUERY_COST) -> int:
    """The largest page whose requested cost stays under Shopify's per-query maximum."""
    return max(1, min(MAX_PAGE, (limit - 2) // node_cost(selection)))


def order_gid(order_id: str) -> str:
    """The GraphQL id of an order from its numeric (REST) id."""
    return f"gid://shopify/Order/{order_id}"


def window_query(start: datetime, end: datetime) -> str:
    """Shopify search syntax for ``start <= updated_at < end``."""
    return f"updated_at:>='{_iso(start)}' AND updated_at:<'{_iso(end)}'"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# -- classification ---------------------------------------------------------------------------


def classify_response(status: int, headers: Mapping[str, str], body: Any) -> SyncError | None:
    """Classify a Shopify response; None means it succeeded."""
    if status == 429:
        return RateLimited("Shopify rate limit", retry_after=_float(headers.get("retry-after")))
    if status >= 500:
        return RetryableError(f"Shopify answered {status}", code=f"HTTP_{status}")
    if status == 401:
        return AuthError(
            "Shopify rejected the access token (401): check SHOPIFY_ADMIN_API_ACCESS_TOKEN, or "
            "SHOPIFY_API_KEY / SHOPIFY_API_SECRET_KEY in client-credentials mode "
            "(shopsync doctor)",
            code="HTTP_401",
        )
    if status in (402, 403, 423):
        return ConfigError(
            f"Shopify refused the request ({status}): check the app's scopes and that the "
            "shop is active",
            code=f"HTTP_{status}",
        )
    if status == 404:
        return PermanentError("Shopify resource not found", code="NOT_FOUND")
    if status >= 400:
        return PermanentError(f"Shopify rejected the request ({status})", code=f"HTTP_{status}")
    return _classify_graphql_errors(body)


def classify_grant(status: int, headers: Mapping[str, str], body: Any) -> SyncError | Grant:
    """The token endpoint's answer: a :class:`Grant`, or the classified refusal.

    Shopify answers a bad client id or secret with 400 ``invalid_client`` (an OAuth error
    body), an app that may not use the grant with 400 ``unauthorized_client``/``invalid_request``:
    both are :class:`AuthError` (stop, nothing is lost; the operator must fix the credentials).
    """
    if status == 429:
        return RateLimited(
            "Shopify token endpoint rate limit", retry_after=_float(headers.get("retry-after"))
        )
    if status >= 500:
        return RetryableError(f"Shopify token endpoint answered {status}", code=f"HTTP_{status}")
    token = body.get("access_token") if isinstance(body, Mapping) else None
    if status == 200 and isinstance(token, str) and token:
        return Grant(
            access_token=SecretStr(token),
            expires_in=_float(str(body["expires_in"])) if body.get("expires_in") else None,
            scope=str(body.get("scope") or ""),
        )
    code = str(body.get("error") or f"HTTP_{status}") if isinstance(body, Mapping) else ""
    description = body.get("error_description") if isinstance(body, Mapping) else None
    return AuthError(
        "Shopify refused the client credentials grant"
        + (f" ({description})" if description else "")
        + ": check SHOPIFY_API_KEY and SHOPIFY_API_SECRET_KEY (the Dev Dashboard app's client "
        "id and secret) and that the app is installed on SHOPIFY_STORE_DOMAIN",
        code=code or f"HTTP_{status}",
    )


def _classify_graphql_errors(body: Any) -> SyncError | None:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not errors:
        return None
    listed = isinstance(errors, list) and isinstance(errors[0], Mapping)
    first: Mapping[str, Any] = errors[0] if listed else {"message": str(errors)}
    code = str((first.get("extensions") or {}).get("code") or "GRAPHQL_ERROR")
    message = str(first.get("message", "GraphQL error"))
    if code == "THROTTLED":
        return RateLimited(message, retry_after=_refill_seconds(body), code=code)
    if code in {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"}:
        return RetryableError(message, code=code)
    if code == "UNAUTHORIZED":
        return AuthError(message, code=code)
    if code == "ACCESS_DENIED":
        return ConfigError(message, code=code)
    return PermanentError(message, code=code)


def throttle_status(body: Any) -> ThrottleStatus | None:
    """``extensions.cost.throttleStatus`` of a GraphQL response, when present."""
    try:
        status = body["extensions"]["cost"]["throttleStatus"]
        return ThrottleStatus(
            maximum=float(status["maximumAvailable"]),
            available=float(status["currentlyAvailable"]),
            restore_rate=float(status["restoreRate"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _refill_seconds(body: Any) -> float | None:
    status = throttle_status(body)
    try:
        requested = float(body["extensions"]["cost"]["requestedQueryCost"])
    except (KeyError, TypeError, ValueError):
        return None
    if status is None or status.restore_rate <= 0:
        return None
    return max(0.0, (requested - status.available) / status.restore_rate)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# -- the client -------------------------------------------------------------------------------


def request_client_credentials(
    settings: Settings, *, transport: httpx.BaseTransport | None = None
) -> Grant:
    """One client credentials grant (research/shopify.md §3); raises the classified error.

    The form carries the client secret, and the answer the token: neither is ever logged
    (httpx logs only the request line). Grants are rare (one a day per process), so each uses
    its own short-lived connection.
    """
    key, secret = settings.shopify_api_key, settings.shopify_api_secret_key
    form = {
        "grant_type": "client_credentials",
        "client_id": key.get_secret_value() if key else "",
        "client_secret": secret.get_secret_value() if secret else "",
    }
    url = f"{settings.shopify_base_url}/admin/oauth/access_token"
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
    settings: Settings, *, transport: httpx.BaseTransport | None = None
) -> TokenSource:
    """The token source the settings ask for (``Settings.shopify_auth_mode``).

    A client-credentials source is shared by every client of the process with the same shop and
    app, so that each flow run does not make its own grant.
    """
    if settings.shopify_auth_mode != "client_credentials":
        return StaticToken(settings.shopify_admin_api_access_token)
    key, secret = settings.shopify_api_key, settings.shopify_api_secret_key
    identity = (
        settings.shopify_base_url,
        key.get_secret_value() if key else "",
        secret.get_secret_value() if secret else "",
    )
    with _SHARED_LOCK:
        source = _SHARED_TOKENS.get(identity)
        if source is None:
            source = ClientCredentialsToken(
                lambda: request_client_credentials(settings, transport=transport)
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
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        tokens: TokenSource | None = None,
    ):
        self._http = httpx.Client(
            base_url=f"{settings.shopify_base_url}/admin/api/{settings.shopify_api_version}",
            headers={"Accept": "application/json"},  # json= / data= set the Content-Type
            timeout=httpx.Timeout(30.0, connect=5.0),
            transport=transport,
        )
        self.tokens = tokens or token_source_for(settings, transport=transport)
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
        """Run one query; return ``data`` or raise the classified error."""
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

    # -- queries ---------------------------------------------------------------------------------

    def fetch_order(self, order_id: str) -> dict[str, Any] | None:
        """One order's GraphQL node, or None when Shopify has no such order (or hides it)."""
        data = self.graphql(ORDER_QUERY, {"id": order_gid(order_id)})
        return data.get("order")

    def order_ids_named(self, name: str) -> list[str]:
        """Ids of the orders whose name is ``name`` (``#1001``), via the ``name:`` search filter."""
        wanted = name if name.startswith("#") else f"#{name}"
        data = self.graphql(ORDER_BY_NAME_QUERY, {"query": f'name:"{wanted}"'})
        nodes = (data.get("orders") or {}).get("nodes") or []
        return [str(node["legacyResourceId"]) for node in nodes if node.get("name") == wanted]

    def count_orders(self, start: datetime, end: datetime, limit: int) -> int:
        """How many orders were updated in ``[start, end)``, counted up to ``limit``."""
        data = self.graphql(ORDERS_COUNT_QUERY, {"query": window_query(start, end), "limit": limit})
        return int((data.get("ordersCount") or {}).get("count") or 0)

    def iter_order_pages(self, start: datetime, end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Pages of order nodes updated in ``[start, end)``, oldest update first."""
        after: str | None = None
        first = page_size_for(ORDER_FIELDS)
        while True:
            data = self.graphql(
                ORDERS_QUERY, {"first": first, "after": after, "query": window_query(start, end)}
            )
            orders = data.get("orders") or {}
            yield list(orders.get("nodes") or [])
            page = orders.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return
            after = page.get("endCursor")

    def subscribe_webhook(self, topic: str, url: str) -> str:
        """Create a webhook subscription; returns its id, or raises with Shopify's user error."""
        data = self.graphql(SUBSCRIBE_MUTATION, {"topic": topic_enum(topic), "url": url})
        payload = data.get("webhookSubscriptionCreate") or {}
        errors = payload.get("userErrors") or []
        if errors:
            message = "; ".join(str(e.get("message")) for e in errors)
            raise PermanentError(f"Shopify refused the {topic} subscription: {message}")
        return str((payload.get("webhookSubscription") or {}).get("id", ""))

    def shop_info(self) -> ShopInfo:
        """The shop's domain, timezone, currency and this app's access scopes."""
        data = self.graphql(SHOP_QUERY)
        shop = data.get("shop") or {}
        scopes = (data.get("currentAppInstallation") or {}).get("accessScopes") or []
        return ShopInfo(
            domain=str(shop.get("myshopifyDomain", "")),
            timezone=str(shop.get("ianaTimezone") or "UTC"),
            currency=str(shop.get("currencyCode") or ""),
            scopes=frozenset(str(s.get("handle")) for s in scopes),
        )


def topic_enum(topic: str) -> str:
    """``orders/create`` → ``ORDERS_CREATE`` (the GraphQL WebhookSubscriptionTopic)."""
    return topic.replace("/", "_").upper()


def _estimated_cost(query: str, variables: Mapping[str, Any] | None) -> int:
    first = int((variables or {}).get("first") or 1)
    return min(MAX_QUERY_COST, 2 + first * node_cost(ORDER_FIELDS)) if "orders(" in query else 20


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}
