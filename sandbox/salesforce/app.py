"""The Starlette app: OAuth, the REST/Bulk data API with accounting and faults, control API."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .control import control_routes
from .core import Core
from .errors import SfError
from .faults import Fault
from .oauth import OAuthError
from .rest import Call, Reply, dispatch, endpoint_of, kind_of
from .schema import OrgProfile

MAX_URI = 16_384
VERSIONS = [f"{v}.0" for v in range(31, 63)]
SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
LIMIT_EXCEEDED = [{"message": "TotalRequests Limit exceeded.",
                   "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


class _App(Starlette):
    """Starlette plus two raw-ASGI duties: the 414 URI check and remembering ``send``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode()
            uri = len(raw) + 1 + len(scope.get("query_string", b""))
            headers = sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))
            if uri > MAX_URI or uri + headers > MAX_URI:
                status, code = (414, "URI_TOO_LONG") if uri > MAX_URI else (
                    431, "REQUEST_HEADER_FIELDS_TOO_LARGE")
                response = JSONResponse([{"message": code, "errorCode": code}], status)
                await response(scope, receive, send)
                return
            scope["sandbox.send"] = send
        await super().__call__(scope, receive, send)


def base_url(request: Request) -> str:
    """The sandbox's own base URL as the client addressed it."""
    return f"{request.url.scheme}://{request.url.netloc}"


class SalesforceSandbox:
    """One emulated Salesforce org: ``.app`` (ASGI), ``.store`` (records), ``.stats``."""

    def __init__(
        self,
        org: OrgProfile | None = None,
        api_limit: int = 100_000,
        token_ttl: float = 7200,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> None:
        self.core = Core(org or OrgProfile(), api_limit, token_ttl, client_id, client_secret)
        routes = [
            Route("/services/oauth2/token", self._token, methods=["POST"]),
            Route("/services/data", self._versions, methods=["GET"]),
            Route("/services/data/", self._versions, methods=["GET"]),
            Route("/services/data/{rest:path}", self._data,
                  methods=["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"]),
            *control_routes(self.core),
        ]
        self.app = _App(routes=routes)

    # -- convenience for tests ------------------------------------------------------------
    @property
    def store(self) -> Any:
        """The in-memory ``Store`` (``store.records["Account"][id]`` …)."""
        return self.core.store

    @property
    def stats(self) -> dict[str, Any]:
        """The same JSON as ``GET /__sandbox/stats``."""
        return self.core.stats_json()

    @property
    def org(self) -> OrgProfile:
        """The current org profile."""
        return self.core.org

    def issue_token(self) -> str:
        """Mint a valid access token without an OAuth round trip."""
        return self.core.tokens.issue()

    def reset(self) -> None:
        """Same as ``POST /__sandbox/reset``."""
        self.core.reset()

    # -- endpoints --------------------------------------------------------------------------
    async def _versions(self, request: Request) -> Response:
        return JSONResponse([
            {"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in VERSIONS
        ])

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        form.update({k: v for k, v in request.query_params.items() if k not in form})
        basic = _basic_auth(request.headers.get("authorization", ""))
        tokens = self.core.tokens
        try:
            body = tokens.grant(form, basic, self.core.org, base_url(request))
        except OAuthError as exc:
            tokens.count_request(exc.error)
            return JSONResponse(exc.body(), status_code=exc.status)
        tokens.count_request("issued")
        return JSONResponse(body)

    async def _data(self, request: Request) -> Response:
        core = self.core
        path = request.scope.get("raw_path", b"").decode("latin-1").split("?")[0]
        segments = [unquote(s) for s in path.split("/")[3:] if s]
        if not segments or not segments[0].startswith("v"):
            return JSONResponse([{"errorCode": "NOT_FOUND",
                                  "message": "The requested resource does not exist"}], 404)
        version, segments = segments[0][1:], segments[1:]
        token = request.headers.get("authorization", "")
        token = token[7:] if token.lower().startswith("bearer ") else token
        if not core.tokens.check(token.strip()):
            core.stats.rejected["401"] += 1
            return self._json(SESSION_EXPIRED, 401)
        raw = await request.body()
        fault = core.faults.pick(request.method, path, raw.decode("utf-8", "replace"))
        if fault is not None:
            core.stats.faults_fired[fault.kind] += 1
            early = await self._fault(request, fault)
            if early is not None:
                return early
        with core.lock:
            if core.api_used >= core.api_limit:
                core.stats.rejected["403"] += 1
                return self._json(LIMIT_EXCEEDED, 403)
            self._count(request.method, segments)
            call = Call(request.method, segments, version, dict(request.query_params), None,
                        raw, {k.lower(): v for k, v in request.headers.items()})
            reply = dispatch(core, call)
        return self._reply(reply)

    def _count(self, method: str, segments: list[str]) -> None:
        core = self.core
        core.api_used += 1
        core.stats.api_calls += 1
        core.stats.by_kind[kind_of(segments)] += 1
        core.stats.by_endpoint[endpoint_of(method, segments)] += 1

    async def _fault(self, request: Request, fault: Fault) -> Response | None:
        core = self.core
        if fault.latency:
            await asyncio.sleep(fault.latency)
        if fault.kind == "latency":
            return None
        if fault.kind == "drop":
            return await _drop(request)
        if fault.kind == "401":
            core.tokens.expire_all()
            return self._json(SESSION_EXPIRED, 401)
        if fault.kind == "revoke":  # the app's access is revoked mid-run: re-login fails too
            core.tokens.revoke()
            return self._json(SESSION_EXPIRED, 401)
        if fault.kind == "403":
            return self._json(LIMIT_EXCEEDED, 403)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
        bodies: dict[str, tuple[int, list[dict[str, Any]]]] = {
            "429": (429, [{"message": "Too many requests", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
            "500": (500, [{"message": "An unexpected error occurred. Please include this ErrorId "
                           "if you contact support: 1-2 (-3)", "errorCode": "UNKNOWN_EXCEPTION"}]),
            "503": (503, [{"message": "Server is unavailable",
                           "errorCode": "SERVER_UNAVAILABLE"}]),
            "lock": (400, [{"message": "unable to obtain exclusive access to this record or 1 "
                            "records", "errorCode": "UNABLE_TO_LOCK_ROW", "fields": []}]),
        }
        status, body = bodies[fault.kind]
        if fault.kind in ("500", "503", "lock"):
            with core.lock:
                self._count(request.method, ["fault"])
        return self._json(body, status, headers)

    def _json(self, body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
        merged = {"Sforce-Limit-Info": self.core.limit_info(), **(headers or {})}
        return JSONResponse(body, status_code=status, headers=merged)

    def _reply(self, reply: Reply) -> Response:
        headers = {"Sforce-Limit-Info": self.core.limit_info(), **reply.headers}
        if reply.content is not None:
            if isinstance(reply.content, bytes):
                return Response(reply.content, reply.status, headers, reply.media_type)
            return StreamingResponse(_iterate(reply.content), reply.status, headers,
                                     reply.media_type)
        if reply.body is None:
            return Response(status_code=reply.status, headers=headers)
        return Response(json.dumps(reply.body).encode(), reply.status, headers,
                        "application/json;charset=UTF-8")


def _iterate(chunks: Iterable[bytes]) -> Iterable[bytes]:
    yield from chunks


def _basic_auth(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        cid, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return unquote(cid), unquote(secret)


async def _drop(request: Request) -> Response:
    """Close the client's socket without answering (uvicorn then discards our response)."""
    send = request.scope.get("sandbox.send")
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise SfError("UNKNOWN_EXCEPTION", "cannot drop the connection on this server", status=500)
    transport.close()
    await asyncio.sleep(0.05)
    return Response(status_code=500)
