"""The ASGI app: Admin API (GraphQL + REST) behind auth, faults and rate limits, the bulk
download URLs, and the ``/__sandbox/`` control API.

Routing: a request goes to the shop whose domain equals its ``Host`` header (port ignored); any
other host (e.g. ``127.0.0.1:PORT``) goes to the first shop.  Control routes also accept a
``shop`` query parameter or JSON field.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import InvalidOperation
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import rest
from .faults import FaultRule
from .graphql_api import handle_graphql
from .shop import OrderNotFound, Shop

if TYPE_CHECKING:
    from .sandbox import ShopifySandbox

SUPPORTED_VERSIONS = ("2025-10", "2026-01", "2026-04", "2026-07", "2026-10", "2027-01",
                      "unstable")
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
FAULT_BODIES = {
    429: "Exceeded 2 calls per second for api client. Reduce request rates to resume "
         "uninterrupted service.",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class SandboxDrop(ConnectionAbortedError):
    """Raised to make uvicorn close the connection mid-response (a fault, not a bug)."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SandboxDrop))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class DroppedConnection(Response):
    """Announces a body, then closes the connection without sending it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"da', "more_body": True})
        raise SandboxDrop("sandbox fault: dropped connection")


def resolve_version(version: str) -> str:
    """Unsupported versions fall forward to the oldest supported one (research §2)."""
    return version if version in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[0]


def build_app(sb: ShopifySandbox) -> Starlette:
    """The Starlette app of a sandbox."""

    def shop_of(request: Request, body: dict[str, Any] | None = None) -> Shop:
        name = (body or {}).get("shop") or request.query_params.get("shop")
        if not name:
            name = request.headers.get("host", "").split(":")[0]
        return sb.shops.get(name) or sb.default

    async def guard(request: Request, api: str) -> tuple[Shop, Response | None, str]:
        shop = shop_of(request)
        version = resolve_version(request.path_params.get("version", ""))
        shop.stats.add(f"calls.{api}")
        rule = shop.faults.pick(api)
        if rule is not None:
            shop.stats.add("faults_injected")
            if rule.kind == "latency":
                await asyncio.sleep(rule.latency_ms / 1000)
            else:
                return shop, _fault_response(rule), version
        if not shop.token_ok(request.headers.get("x-shopify-access-token")):
            shop.stats.add("unauthorized")
            return shop, rest.error(401, INVALID_TOKEN), version
        return shop, None, version

    async def graphql(request: Request) -> Response:
        shop, refusal, version = await guard(request, "graphql")
        if refusal is not None:
            return refusal
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/graphql"):
            payload: Any = {"query": raw.decode()}
        else:
            try:
                payload = json.loads(raw or b"null")
            except ValueError:
                payload = None
        base = str(request.base_url).rstrip("/")
        result = await run_in_threadpool(handle_graphql, shop, sb.schema, payload, base)
        return JSONResponse(result, headers={"X-Shopify-API-Version": version})

    def rest_route(handler: Callable[..., Response]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            shop, refusal, version = await guard(request, "rest")
            if refusal is not None:
                return refusal
            allowed, used, wait = shop.rest_bucket.hit()
            limit_header = f"{used}/{shop.rest_bucket.size}"
            if not allowed:
                shop.stats.add("rest_throttled")
                return rest.error(429, FAULT_BODIES[429], {
                    "Retry-After": f"{wait:.1f}", "X-Shopify-Shop-Api-Call-Limit": limit_header})
            if not shop.has_scope("read_orders"):
                return rest.error(403, "[API] This action requires merchant approval for "
                                       "read_orders scope.")
            try:
                resp = await run_in_threadpool(handler, request, shop, version)
            except rest.BadRequest as exc:
                resp = rest.error(400, exc.errors)
            resp.headers["X-Shopify-Shop-Api-Call-Limit"] = limit_header
            resp.headers["X-Shopify-API-Version"] = version
            return resp
        return endpoint

    async def oauth_token(request: Request) -> Response:
        shop = shop_of(request)
        if request.headers.get("content-type", "").startswith("application/json"):
            data: dict[str, Any] = await _json(request)
        else:
            data = dict(await request.form())
        if data.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        issued = shop.issue_token(str(data.get("client_id", "")),
                                  str(data.get("client_secret", "")))
        if issued is None:
            return JSONResponse({"error": "invalid_client",
                                 "error_description": "Client credentials are invalid"},
                                status_code=400)
        return JSONResponse(issued)

    routes = [
        Route("/admin/oauth/access_token", oauth_token, methods=["POST"]),
        Route("/admin/api/{version}/graphql.json", graphql, methods=["POST"]),
        Route("/admin/api/{version}/orders.json",
              rest_route(lambda r, s, v: rest.list_orders(r, s, v)), methods=["GET"]),
        Route("/admin/api/{version}/orders/count.json",
              rest_route(lambda r, s, v: rest.count_orders(r, s)), methods=["GET"]),
        Route("/admin/api/{version}/orders/{order_id}.json",
              rest_route(lambda r, s, v: rest.get_order(r, s, r.path_params["order_id"])),
              methods=["GET"]),
        *control_routes(sb, shop_of),
    ]
    return Starlette(routes=routes)


def _fault_response(rule: FaultRule) -> Response:
    if rule.kind == "drop":
        return DroppedConnection()
    headers = {"Retry-After": f"{rule.retry_after:.1f}"} if rule.status == 429 else None
    return rest.error(rule.status, FAULT_BODIES.get(rule.status, "Error"), headers)


# ------------------------------------------------------------------------------------------
# Control API
# ------------------------------------------------------------------------------------------
def _ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def control_routes(sb: ShopifySandbox, shop_of: Callable[..., Shop]) -> list[Route]:
    """Routes under ``/__sandbox/`` (no token)."""

    def action(fn: Callable[[Request, Shop, dict[str, Any]], Any]
               ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                body = await _json(request)
                shop = shop_of(request, body)
                body.pop("shop", None)
                return await run_in_threadpool(fn, request, shop, body)
            except OrderNotFound as exc:
                return _bad(f"order {exc.args[0]} not found", 404)
            except (ValueError, TypeError, KeyError, InvalidOperation) as exc:
                return _bad(str(exc) or type(exc).__name__)
        return endpoint

    def oid(request: Request) -> int:
        return int(request.path_params["order_id"])

    def create(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        return _ok({"order": shop.rest(shop.create_order(body))}, 201)

    def get(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        rec = shop.store.get(oid(request))
        if rec is None:
            raise OrderNotFound(oid(request))
        return _ok({"order": shop.rest(rec)})

    def update(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        return _ok({"order": shop.rest(shop.update_order(oid(request), body))})

    def cancel(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        rec = shop.cancel_order(oid(request), body.get("reason", "customer"))
        return _ok({"order": shop.rest(rec)})

    def refund(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        rec, payload = shop.refund_order(oid(request), body.get("amount"), body.get("note"))
        return _ok({"order": shop.rest(rec), "refund": payload})

    def delete(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        shop.delete_order(oid(request))
        return _ok({"deleted": oid(request)})

    def reset(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        explicit = body.get("shop") or request.query_params.get("shop")
        targets = [shop] if explicit else list(sb.shops.values())
        for s in targets:
            s.reset()
        return _ok({"reset": [s.domain for s in targets]})

    def clock(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        if "now" in body:
            shop.clock.set(datetime.fromisoformat(body["now"]))
        if "advance_seconds" in body:
            shop.clock.advance(float(body["advance_seconds"]))
            shop.ticker.advance(float(body["advance_seconds"]))
        if body.get("reset"):
            shop.clock.reset()
        return _ok({"now": shop.clock.now_dt().isoformat()})

    def scopes(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        if "scopes" in body:
            shop.cfg.scopes = [str(s) for s in body["scopes"]]
        return _ok({"scopes": shop.cfg.scopes})

    def protected_data(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        if "redacted" in body:
            shop.redact_customer_data = bool(body["redacted"])
        return _ok({"redacted": shop.redact_customer_data})

    def auth(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        return _ok(shop.configure_auth(body))

    def subscribe(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        sub, err = shop.webhooks.subscribe(body["topic"], body["url"], source="control")
        if err:
            return _bad(err, 422)
        return _ok({"subscription": vars(sub)}, 201)

    def subscriptions(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        return _ok({"subscriptions": [vars(s) for s in shop.webhooks.list_subscriptions()]})

    def unsubscribe(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        sid = body.get("id") or request.query_params.get("id", "")
        return _ok({"deleted": shop.webhooks.unsubscribe(sid)})

    def webhook_config(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        return _ok({"config": vars(shop.webhooks.configure(**body))})

    def rotate(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        shop.webhooks.rotate_secret(str(body["secret"]),
                                    float(body.get("old_secret_for_seconds", 0)))
        return _ok({"rotated": True})

    def deliveries(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        q = request.query_params
        rows = shop.webhooks.deliveries()
        for name in ("topic", "webhook_id", "event_id"):
            if name in q:
                rows = [r for r in rows if r[name] == q[name]]
        if "order_id" in q:
            rows = [r for r in rows if str(r["order_id"]) == q["order_id"]]
        if "limit" in q:
            rows = rows[-int(q["limit"]):]
        return _ok({"deliveries": rows, "pending": shop.webhooks.pending()})

    def flush(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        return _ok({"idle": shop.webhooks.flush(float(body.get("timeout", 30)))})

    def replay(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        kwargs = {"topic": body.get("topic", "orders/create"), "start": int(body.get("start", 0)),
                  "count": body.get("count"), "rate": body.get("rate")}
        if body.get("background"):
            shop.send_order_events_in_background(**kwargs)
            return _ok({"queued": None, "background": True}, 202)
        return _ok({"queued": shop.send_order_events(**kwargs)})

    def add_fault(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        return _ok({"fault": shop.faults.add(body).view()}, 201)

    def list_faults(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        return _ok({"faults": [r.view() for r in shop.faults.rules()]})

    def clear_faults(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        shop.faults.clear()
        return _ok({"cleared": True})

    def stats(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        b = shop.graphql_bucket
        return _ok({**shop.stats.snapshot(), "shop": shop.domain,
                    "graphql_bucket": {"maximumAvailable": b.capacity,
                                       "currentlyAvailable": b.available(),
                                       "restoreRate": b.rate}})

    def stats_reset(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        shop.stats.reset()
        return _ok({"reset": True})

    def info(request: Request, shop: Shop, body: dict[str, Any]) -> Response:
        return _ok(sb.describe(shop))

    async def bulk_file(request: Request) -> Response:
        shop = sb.shops.get(request.path_params["domain"])
        number = request.path_params["number"]
        path = shop.bulk.path(int(number)) if shop and number.isdigit() else None
        if path is None or not path.exists():
            return _bad("not found", 404)
        return FileResponse(path, media_type="application/jsonl")

    p = "/__sandbox"
    return [
        Route(f"{p}/orders", action(create), methods=["POST"]),
        Route(f"{p}/orders/{{order_id:int}}", action(get), methods=["GET"]),
        Route(f"{p}/orders/{{order_id:int}}", action(delete), methods=["DELETE"]),
        Route(f"{p}/orders/{{order_id:int}}/update", action(update), methods=["POST"]),
        Route(f"{p}/orders/{{order_id:int}}/cancel", action(cancel), methods=["POST"]),
        Route(f"{p}/orders/{{order_id:int}}/refund", action(refund), methods=["POST"]),
        Route(f"{p}/reset", action(reset), methods=["POST"]),
        Route(f"{p}/clock", action(clock), methods=["POST"]),
        Route(f"{p}/scopes", action(scopes), methods=["POST"]),
        Route(f"{p}/protected-data", action(protected_data), methods=["POST"]),
        Route(f"{p}/auth", action(auth), methods=["POST"]),
        Route(f"{p}/shop", action(info), methods=["GET"]),
        Route(f"{p}/webhooks/subscriptions", action(subscribe), methods=["POST"]),
        Route(f"{p}/webhooks/subscriptions", action(subscriptions), methods=["GET"]),
        Route(f"{p}/webhooks/subscriptions", action(unsubscribe), methods=["DELETE"]),
        Route(f"{p}/webhooks/config", action(webhook_config), methods=["POST"]),
        Route(f"{p}/webhooks/deliveries", action(deliveries), methods=["GET"]),
        Route(f"{p}/webhooks/rotate", action(rotate), methods=["POST"]),
        Route(f"{p}/webhooks/flush", action(flush), methods=["POST"]),
        Route(f"{p}/webhooks/replay", action(replay), methods=["POST"]),
        Route(f"{p}/faults", action(add_fault), methods=["POST"]),
        Route(f"{p}/faults", action(list_faults), methods=["GET"]),
        Route(f"{p}/faults", action(clear_faults), methods=["DELETE"]),
        Route(f"{p}/stats", action(stats), methods=["GET"]),
        Route(f"{p}/stats/reset", action(stats_reset), methods=["POST"]),
        Route(f"{p}/bulk/{{domain}}/{{number}}.jsonl", bulk_file, methods=["GET"]),
    ]

