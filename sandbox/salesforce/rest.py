"""REST API dispatch on ``/services/data/vXX.X/…`` (research §1, §4), shared with /composite."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import duplicates, soql
from .core import Core
from .errors import SfError, not_found
from .records import MultipleMatches, render

QUERY_PAGE = 2000
MAX_CURSORS = 200
FORMAT_LIKE_SUFFIXES = (".inc",)


@dataclass
class Call:
    """One REST request (top-level or a composite subrequest)."""

    method: str
    segments: list[str]
    version: str
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    sub: bool = False

    @property
    def vnum(self) -> float:
        """The API version as a number (59.0)."""
        try:
            return float(self.version)
        except ValueError:
            return 0.0

    def json(self) -> Any:
        """The JSON body (400 JSON_PARSER_ERROR when unparseable)."""
        if self.body is None and self.raw:
            try:
                self.body = json.loads(self.raw)
            except ValueError as exc:
                raise SfError("JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None
        return self.body if self.body is not None else {}


@dataclass
class Reply:
    """A response: JSON ``body`` or raw ``content`` (bytes or an iterator of bytes)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | Iterable[bytes] | None = None
    media_type: str = "application/json"

    @classmethod
    def error(cls, exc: SfError) -> Reply:
        """The REST error array with the error's status."""
        return cls(exc.status, exc.rest_body())


Handler = Callable[[Core, Call], Reply]


def kind_of(segments: list[str]) -> str:
    """The accounting kind of a request path (for stats)."""
    if not segments:
        return "other"
    head = segments[0]
    if head == "sobjects":
        if len(segments) >= 3 and segments[2] == "describe":
            return "describe"
        return "upsert" if len(segments) == 4 else ("sobject" if len(segments) > 1 else "describe")
    if head == "composite":
        return "collections" if len(segments) > 1 and segments[1] == "sobjects" else "composite"
    if head in ("query", "queryAll"):
        return "query"
    if head == "jobs" and len(segments) > 1:
        return "bulk_ingest" if segments[1] == "ingest" else "bulk_query"
    return head


def endpoint_of(method: str, segments: list[str]) -> str:
    """A templated endpoint name for stats, e.g. ``PATCH sobjects/{obj}/{field}/{value}``."""
    names = {
        "sobjects": ["sobjects", "{obj}", "{id}", "{value}"],
        "jobs": ["jobs", segments[1] if len(segments) > 1 else "", "{id}",
                 segments[3] if len(segments) > 3 else ""],
        "composite": ["composite", "sobjects", "{obj}", "{field}"],
        "query": ["query", "{locator}"],
        "queryAll": ["queryAll", "{locator}"],
    }.get(segments[0] if segments else "", segments)
    parts = list(names[: len(segments)])
    if segments[:1] == ["sobjects"] and len(segments) == 3 and segments[2] == "describe":
        parts[2] = "describe"
    if segments[:1] == ["sobjects"] and len(segments) == 4:
        parts[2] = "{field}"
    return f"{method} " + "/".join(p for p in parts if p)


def dispatch(core: Core, call: Call) -> Reply:
    """Route ``call`` to its handler; SfError becomes the REST error array."""
    from . import bulk, composite

    routes: dict[str, Handler] = {
        "sobjects": _sobjects,
        "query": _query,
        "queryAll": _query,
        "limits": _limits,
        "composite": composite.handle,
        "jobs": bulk.handle,
    }
    try:
        handler = routes.get(call.segments[0] if call.segments else "")
        if handler is None:
            raise not_found()
        with duplicates.request_options(call.headers):
            return handler(core, call)
    except SfError as exc:
        return Reply.error(exc)
    except MultipleMatches as exc:
        return Reply(300, [
            f"/services/data/v{call.version}/sobjects/{exc.obj}/{i}" for i in exc.ids
        ])


def method_not_allowed(call: Call, allowed: str) -> SfError:
    """405 as REST reports it."""
    return SfError(
        "METHOD_NOT_ALLOWED",
        f"HTTP Method '{call.method}' not allowed. Allowed are {allowed}",
        status=405,
    )


# -- sObjects -----------------------------------------------------------------------------------
def _sobjects(core: Core, call: Call) -> Reply:
    seg = call.segments
    if len(seg) == 1:
        return Reply(200, _describe_global(core))
    if len(seg) == 2:
        return _sobject_root(core, call, seg[1])
    if len(seg) == 3 and seg[2] == "describe":
        return Reply(200, core.engine.odef(seg[1]).describe())
    if len(seg) == 3:
        return _by_id(core, call, seg[1], seg[2])
    if len(seg) == 4:
        return _by_key(core, call, seg[1], seg[2], seg[3])
    raise not_found()


def _describe_global(core: Core) -> dict[str, Any]:
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [
            {"name": o.name, "keyPrefix": o.prefix, "queryable": True, "createable": True,
             "updateable": True, "custom": False}
            for o in core.store.schema.values()
        ],
    }


def _created(call: Call, rid: str, created: bool | None = None) -> Reply:
    body: dict[str, Any] = {"id": rid, "success": True, "errors": []}
    if created is not None:
        body["created"] = created
    odef_url = "/".join(call.segments[:2])
    return Reply(201, body, {"Location": f"/services/data/v{call.version}/{odef_url}/{rid}"})


def _sobject_root(core: Core, call: Call, obj: str) -> Reply:
    odef = core.engine.odef(obj)
    if call.method == "GET":
        return Reply(200, {"objectDescribe": {"name": odef.name, "keyPrefix": odef.prefix},
                           "recentItems": []})
    if call.method != "POST":
        raise method_not_allowed(call, "GET, POST")
    rid = core.engine.create(odef.name, _object_body(call))
    return _created(call, rid)


def _object_body(call: Call) -> dict[str, Any]:
    body = call.json()
    if not isinstance(body, dict):
        raise SfError("JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from array")
    return body


def _by_id(core: Core, call: Call, obj: str, rid: str) -> Reply:
    if rid == "Id" and call.method in ("POST", "PATCH"):
        rid_new, created = core.engine.upsert(obj, "Id", "", _object_body(call))
        return _created(call, rid_new, created)
    if call.method == "GET":
        odef, rec = core.engine.get(obj, rid)
        fields = [f for f in call.query.get("fields", "").split(",") if f.strip()]
        return Reply(200, render(odef, rec, call.version, [f.strip() for f in fields] or None))
    if call.method == "PATCH":
        core.engine.update(obj, rid, _object_body(call))
        return Reply(204)
    if call.method == "DELETE":
        core.engine.delete(obj, rid)
        return Reply(204)
    raise method_not_allowed(call, "GET, PATCH, DELETE")


def _by_key(core: Core, call: Call, obj: str, field_name: str, value: str) -> Reply:
    if "@" in value and value.lower().endswith(FORMAT_LIKE_SUFFIXES):
        raise not_found()  # research §1: an email ending in e.g. ".inc" in the path is a 404
    if call.method == "GET":
        odef, rec = core.engine.get_by_key(obj, field_name, value)
        fields = [f.strip() for f in call.query.get("fields", "").split(",") if f.strip()]
        return Reply(200, render(odef, rec, call.version, fields or None))
    if call.method in ("PATCH", "POST"):
        update_only = call.query.get("updateOnly", "").lower() == "true"
        rid, created = core.engine.upsert(
            obj, field_name, value, _object_body(call), update_only=update_only
        )
        if created:
            return _created(call, rid, True if call.vnum >= 46 else None)
        if call.vnum < 46:
            return Reply(204)
        return Reply(200, {"id": rid, "success": True, "errors": [], "created": False})
    if call.method == "DELETE":
        odef, rec = core.engine.get_by_key(obj, field_name, value)
        core.engine.delete(odef.name, rec["Id"])
        return Reply(204)
    raise method_not_allowed(call, "GET, PATCH, POST, DELETE")


# -- query ----------------------------------------------------------------------------------------
@dataclass
class Cursor:
    """A server-side query cursor for ``nextRecordsUrl`` paging."""

    result: soql.Result
    batch: int
    version: str
    kind: str


def _query(core: Core, call: Call) -> Reply:
    if call.method != "GET":
        raise method_not_allowed(call, "GET")
    if len(call.segments) == 2:
        return _query_more(core, call, call.segments[1])
    text = call.query.get("q")
    if not text:
        raise SfError("MALFORMED_QUERY", "A query string has to be specified")
    result = soql.execute(core.store, text, include_deleted=call.segments[0] == "queryAll")
    cursor = Cursor(result, _batch_size(call), call.version, call.segments[0])
    return Reply(200, _page(core, cursor, 0))


def _batch_size(call: Call) -> int:
    opts = call.headers.get("sforce-query-options", "")
    for part in opts.split(","):
        key, _, val = part.strip().partition("=")
        if key.strip().lower() == "batchsize" and val.strip().isdigit():
            return max(200, min(QUERY_PAGE, int(val)))
    return QUERY_PAGE


def _page(core: Core, cursor: Cursor, start: int) -> dict[str, Any]:
    rows = cursor.result.rows
    end = min(len(rows), start + cursor.batch)
    records = [soql.render_row(cursor.result, r, cursor.version) for r in rows[start:end]]
    body: dict[str, Any] = {"totalSize": cursor.result.total, "done": end >= len(rows),
                            "records": records}
    if end < len(rows):
        key = "01gHs" + secrets.token_hex(5).upper()
        core.cursors[key] = cursor
        while len(core.cursors) > MAX_CURSORS:
            core.cursors.pop(next(iter(core.cursors)))
        body["nextRecordsUrl"] = f"/services/data/v{cursor.version}/{cursor.kind}/{key}-{end}"
    return body


def _query_more(core: Core, call: Call, locator: str) -> Reply:
    key, _, offset = locator.partition("-")
    cursor = core.cursors.get(key)
    if cursor is None or not offset.isdigit():
        raise SfError("INVALID_QUERY_LOCATOR", "invalid query locator")
    return Reply(200, _page(core, cursor, int(offset)))


# -- limits -------------------------------------------------------------------------------------
def _limits(core: Core, call: Call) -> Reply:
    used_batches = core.stats.bulk_batches
    return Reply(200, {
        "DailyApiRequests": {"Max": core.api_limit,
                             "Remaining": max(0, core.api_limit - core.api_used)},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": max(0, 15000 - used_batches)},
        "DailyBulkV2QueryJobs": {"Max": 10000,
                                 "Remaining": 10000 - core.stats.bulk_query_jobs},
        "DailyBulkV2QueryFileStorageMB": {"Max": 1048576, "Remaining": 1048576},
        "ConcurrentSyncLongRunningRequests": {"Max": 25, "Remaining": 25},
    })


def batches_for(rows: int) -> int:
    """Bulk API 2.0 internal batches for ``rows`` records (one per 10,000)."""
    return max(1, math.ceil(rows / 10_000))
