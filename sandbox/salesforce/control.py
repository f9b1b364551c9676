"""The control API under ``/__sandbox/`` (no auth, JSON; not counted as API calls)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .core import Core
from .duplicates import DuplicateRule
from .errors import SfError
from .records import ValidationRule

Endpoint = Callable[[Request], Awaitable[Response]]
_rule_ids = itertools.count(1)


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _guard(func: Callable[[Request], Awaitable[Any]]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            result = await func(request)
        except SfError as exc:
            return JSONResponse({"error": exc.code, "errors": exc.rest_body()}, 400)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(result)

    return endpoint


def control_routes(core: Core) -> list[BaseRoute]:
    """All ``/__sandbox/…`` routes bound to ``core``."""

    async def reset(request: Request) -> dict[str, Any]:
        body = await _json(request)
        core.reset(keep_org=bool(body.get("keep_org", False)))
        if body.get("tokens"):
            core.tokens.expire_all()
        return {"ok": True}

    async def seed(request: Request) -> dict[str, Any]:
        body = await _json(request)
        return {"ids": seed_records(core, body.get("records", {}), bool(body.get("validate")))}

    async def merge(request: Request) -> dict[str, Any]:
        body = await _json(request)
        losers = body["losers"]
        if not isinstance(losers, list) or not losers:
            raise ValueError("losers must be a non-empty list of ids")
        with core.store.lock:
            return core.engine.merge(str(body["object"]), str(body["survivor"]), losers)

    async def dump(request: Request) -> dict[str, Any]:
        obj = request.query_params.get("object")
        deleted = request.query_params.get("deleted", "").lower() == "true"
        objects = [core.engine.odef(obj).name] if obj else list(core.store.schema)
        out = {o: core.store.all(o, include_deleted=deleted) for o in objects}
        return {"records": out[objects[0]]} if obj else {"objects": out}

    async def stats(request: Request) -> dict[str, Any]:
        return core.stats_json()

    async def stats_reset(request: Request) -> dict[str, Any]:
        body = await _json(request)
        from .core import Stats

        core.stats = Stats()
        core.tokens.requests.clear()
        core.store.written.clear()
        if body.get("api_usage", True):
            core.api_used = 0
        return core.stats_json()

    async def org(request: Request) -> dict[str, Any]:
        if request.method == "POST":
            body = await _json(request)
            with core.lock:
                if "api_limit" in body:
                    core.api_limit = int(body.pop("api_limit"))
                if "api_usage" in body:
                    core.api_used = int(body.pop("api_usage"))
                if body:
                    core.set_org(core.org.updated(body))
        return {**core.org.to_json(), "api_limit": core.api_limit, "api_usage": core.api_used}

    async def rules(request: Request) -> dict[str, Any]:
        if request.method == "DELETE":
            count = len(core.engine.rules)
            core.engine.rules.clear()
            return {"deleted": count}
        if request.method == "GET":
            return {"rules": [r.to_json() for r in core.engine.rules]}
        body = await _json(request)
        rule = ValidationRule(id=f"r{next(_rule_ids)}", **body)
        core.engine.odef(rule.object)
        core.engine.rules.append(rule)
        return rule.to_json()

    async def duplicate_rules(request: Request) -> dict[str, Any]:
        rules = core.engine.duplicate_rules
        if request.method == "DELETE":
            with core.lock:
                count = len(rules)
                for rule in rules:
                    for rid in rule.record_ids:
                        core.store.records["DuplicateRule"].pop(rid, None)
                rules.clear()
            return {"deleted": count}
        if request.method == "GET":
            return {"rules": [r.to_json() for r in rules]}
        body = await _json(request)
        with core.lock:
            rule = DuplicateRule(id=f"d{next(_rule_ids)}", **body)
            rule.object = core.engine.odef(rule.object).name
            rule.record_ids = seed_records(core, {"DuplicateRule": [rule.record()]})[
                "DuplicateRule"
            ]
            rules.append(rule)
        return rule.to_json()

    async def faults(request: Request) -> dict[str, Any]:
        if request.method == "DELETE":
            return {"deleted": core.faults.clear(request.path_params.get("fault_id"))}
        if request.method == "GET":
            return {"faults": [f.to_json() for f in core.faults.faults]}
        return core.faults.add(await _json(request)).to_json()

    async def tokens(request: Request) -> dict[str, Any]:
        body = await _json(request)
        out = {"access_token": core.tokens.issue()}
        if body.get("refresh"):
            out["refresh_token"] = core.tokens.issue_refresh()
        return out

    async def tokens_expire(request: Request) -> dict[str, Any]:
        return {"expired": core.tokens.expire_all()}

    async def credentials(request: Request) -> dict[str, Any]:
        body = await _json(request)
        if "revoked" in body:
            core.tokens.revoke(bool(body["revoked"]))
        return {"revoked": core.tokens.revoked}

    def r(path: str, func: Callable[[Request], Awaitable[Any]], *methods: str) -> Route:
        return Route(f"/__sandbox/{path}", _guard(func), methods=list(methods))

    return [
        r("reset", reset, "POST"),
        r("seed", seed, "POST"),
        r("merge", merge, "POST"),
        r("dump", dump, "GET"),
        r("stats", stats, "GET"),
        r("stats/reset", stats_reset, "POST"),
        r("org", org, "GET", "POST"),
        r("validation-rules", rules, "GET", "POST", "DELETE"),
        r("duplicate-rules", duplicate_rules, "GET", "POST", "DELETE"),
        r("faults", faults, "GET", "POST", "DELETE"),
        r("faults/{fault_id}", faults, "DELETE"),
        r("tokens", tokens, "POST"),
        r("tokens/expire", tokens_expire, "POST"),
        r("credentials", credentials, "GET", "POST"),
    ]


def seed_records(core: Core, records: dict[str, list[dict[str, Any]]],
                 validate: bool = False) -> dict[str, list[str]]:
    """Load records per object; with ``validate`` through the normal create path."""
    out: dict[str, list[str]] = {}
    store = core.store
    for obj, rows in records.items():
        odef = core.engine.odef(obj)
        ids = out.setdefault(odef.name, [])
        for row in rows:
            if validate:
                ids.append(core.engine.create(odef.name, row))
                continue
            rec = core.engine._new_record(odef, {})
            rec.update(row)
            if odef.name == "Opportunity" and "StageName" in rec:
                rec.setdefault("IsClosed", str(rec["StageName"]).startswith("Closed"))
                rec.setdefault("IsWon", rec["StageName"] == "Closed Won")
            ids.append(store.insert(odef.name, rec))
        store.written[odef.name]["created"] -= len(rows) if not validate else 0
        store.written[odef.name]["seeded"] += len(rows)
    return out

