"""``/composite`` and sObject Collections ``/composite/sobjects`` (research §2)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .core import Core
from .errors import ErrorItem, SfError
from .records import MultipleMatches
from .rest import Call, Reply, dispatch, method_not_allowed

MAX_SUBREQUESTS = 25
MAX_HEAVY = 5
MAX_RECORDS = 200
_REF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_REF = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])+)\}")
_URL = re.compile(r"^/services/data/v(\d+\.\d+)/(.*)$")
_METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}
_FORBIDDEN_HEADERS = {"accept", "authorization", "content-type"}
HALTED = "The transaction was rolled back since another operation in the same transaction failed."
ROLLED_BACK = (
    "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header"
)


def handle(core: Core, call: Call) -> Reply:
    """Entry for ``composite[/sobjects[/{Object}/{Field}]]``."""
    seg = call.segments
    if len(seg) == 1:
        if call.method != "POST":
            raise method_not_allowed(call, "POST")
        core.stats.composite += 1
        return _composite(core, call)
    if seg[1] == "sobjects":
        core.stats.collections += 1
        return _collections(core, call, seg[2:])
    raise SfError("NOT_FOUND", "The requested resource does not exist", status=404)


# -- /composite ---------------------------------------------------------------------------------
def _composite(core: Core, call: Call) -> Reply:
    body = call.json()
    subs = body.get("compositeRequest") if isinstance(body, dict) else None
    _validate_composite(subs)
    assert isinstance(subs, list)
    all_or_none = bool(body.get("allOrNone", False))
    collate = bool(body.get("collateSubrequests", call.vnum >= 49))
    order = _execution_order(subs) if collate and core.org.collate_reorders else subs
    results: dict[str, Any] = {}
    done: dict[str, dict[str, Any]] = {}
    with core.store.savepoint() as rollback:
        failed = False
        for sub in order:
            if failed and all_or_none:
                done[sub["referenceId"]] = _halted(sub["referenceId"])
                continue
            reply = _run_sub(core, call, sub, results)
            core.stats.composite_subrequests += 1
            done[sub["referenceId"]] = _sub_response(sub["referenceId"], reply)
            if reply.status >= 300:
                failed = True
        out = [done[s["referenceId"]] for s in subs]
        if failed and all_or_none:
            rollback()
            out = [o if o["httpStatusCode"] >= 300 else _halted(o["referenceId"]) for o in out]
    return Reply(200, {"compositeResponse": out})


def _execution_order(subs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Collated execution (OrgProfile.collate_reorders): no order guarantee except explicit
    ``@{ref}`` dependencies (research §2) — emulated as reverse order, dependencies first."""
    by_ref = {s["referenceId"]: s for s in subs}
    placed: list[dict[str, Any]] = []
    seen: set[str] = set()

    def place(sub: dict[str, Any]) -> None:
        if sub["referenceId"] in seen:
            return
        seen.add(sub["referenceId"])
        text = json.dumps([sub.get("url"), sub.get("body")])
        for ref in _REF.findall(text):
            if ref[0] in by_ref:
                place(by_ref[ref[0]])
        placed.append(sub)

    for sub in reversed(subs):
        place(sub)
    return placed


def _validate_composite(subs: Any) -> None:
    if not isinstance(subs, list) or not subs:
        raise SfError("INVALID_INPUT", "compositeRequest is required and can't be empty")
    if len(subs) > MAX_SUBREQUESTS:
        raise SfError("LIMIT_EXCEEDED",
                      f"Composite request can't have more than {MAX_SUBREQUESTS} subrequests")
    seen: set[str] = set()
    heavy = 0
    for sub in subs:
        ref = sub.get("referenceId") if isinstance(sub, dict) else None
        if not isinstance(ref, str) or not _REF_ID.match(ref) or ref in seen:
            raise SfError("INVALID_INPUT", f"Invalid or duplicate referenceId: {ref}")
        seen.add(ref)
        if sub.get("method") not in _METHODS:
            raise SfError("INVALID_INPUT", f"Invalid HTTP method: {sub.get('method')}")
        url = str(sub.get("url", ""))
        if not _URL.match(url):
            raise SfError("INVALID_INPUT", f"The url must start with /services/data/vXX.X/: {url}")
        headers = {k.lower() for k in (sub.get("httpHeaders") or {})}
        if headers & _FORBIDDEN_HEADERS:
            raise SfError("INVALID_INPUT", "Accept, Authorization and Content-Type headers are "
                          "not allowed in subrequests")
        path = _URL.match(url).group(2)  # type: ignore[union-attr]
        if path.startswith(("query", "queryAll", "composite/sobjects")):
            heavy += 1
        if path.startswith("composite") and not path.startswith("composite/sobjects"):
            raise SfError("INVALID_INPUT", "composite requests can't be nested")
    if heavy > MAX_HEAVY:
        raise SfError("LIMIT_EXCEEDED", "Up to 5 subrequests can be sObject Collections or queries")


def _halted(ref: str) -> dict[str, Any]:
    return {
        "body": [{"errorCode": "PROCESSING_HALTED", "message": HALTED}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": ref,
    }


def _sub_response(ref: str, reply: Reply) -> dict[str, Any]:
    return {
        "body": reply.body,
        "httpHeaders": {k: v for k, v in reply.headers.items() if k != "Content-Length"},
        "httpStatusCode": reply.status,
        "referenceId": ref,
    }


def _run_sub(core: Core, top: Call, sub: dict[str, Any], results: dict[str, Any]) -> Reply:
    try:
        url = _substitute(sub["url"], results, url=True)
        body = sub.get("body")
        if body is not None:
            body = json.loads(_substitute(json.dumps(body), results, url=False))
    except SfError as exc:
        return Reply.error(exc)
    match = _URL.match(url)
    assert match is not None
    parts = urlsplit(match.group(2))
    call = Call(
        method=sub["method"],
        segments=[unquote(s) for s in parts.path.strip("/").split("/") if s],
        version=match.group(1),
        query=dict(parse_qsl(parts.query)),
        body=body,
        headers={k.lower(): v for k, v in (sub.get("httpHeaders") or {}).items()},
        sub=True,
    )
    reply = dispatch(core, call)
    results[sub["referenceId"]] = reply.body if reply.status < 400 else None
    return reply


def _substitute(text: str, results: dict[str, Any], url: bool) -> str:
    def repl(match: re.Match[str]) -> str:
        ref, path = match.group(1), match.group(2)
        if ref not in results or results[ref] is None:
            raise _bad_ref(ref, path)
        value = _walk(results[ref], path, ref)
        if url:
            return str(value)
        return json.dumps(value)[1:-1] if isinstance(value, str) else str(value)

    return _REF.sub(repl, text)


def _walk(value: Any, path: str, ref: str) -> Any:
    for name, index in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        try:
            value = value[name] if name else value[int(index)]
        except (KeyError, IndexError, TypeError):
            raise _bad_ref(ref, path) from None
    return value


def _bad_ref(ref: str, path: str) -> SfError:
    return SfError(
        "PROCESSING_HALTED",
        f"Invalid reference specified. No value for {ref}{path} found in {ref}. Provided "
        f"referenceId ('{ref}') must be a referenceId of a previous successful request.",
    )


# -- /composite/sobjects ---------------------------------------------------------------------
def _collections(core: Core, call: Call, rest: list[str]) -> Reply:
    if call.method == "DELETE":
        return _collection_delete(core, call)
    if call.method == "GET":
        return _collection_get(core, call, rest)
    body = call.json()
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise SfError("INVALID_INPUT", "records is required")
    if len(records) > MAX_RECORDS:
        raise SfError("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 "
                      "records into this call")
    all_or_none = bool(body.get("allOrNone", False))
    if call.method == "POST" and not rest:
        return _run_items(core, records, all_or_none, lambda r: _create_item(core, r))
    if call.method == "PATCH" and not rest:
        return _run_items(core, records, all_or_none, lambda r: _update_item(core, r))
    if call.method == "PATCH" and len(rest) == 2:
        return _upsert_collection(core, records, all_or_none, rest[0], rest[1])
    raise method_not_allowed(call, "GET, POST, PATCH, DELETE")


def _type_of(rec: Any) -> str:
    obj = rec.get("attributes", {}).get("type") if isinstance(rec, dict) else None
    if not obj:
        raise SfError("INVALID_INPUT", "Each record needs attributes.type", [])
    return str(obj)


def _create_item(core: Core, rec: dict[str, Any]) -> dict[str, Any]:
    if any(k.lower() == "id" for k in rec):
        raise SfError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
    return {"id": core.engine.create(_type_of(rec), rec), "success": True, "errors": []}


def _update_item(core: Core, rec: dict[str, Any]) -> dict[str, Any]:
    rid = next((v for k, v in rec.items() if k.lower() == "id"), None)
    if not rid:
        raise SfError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
    try:
        core.engine.update(_type_of(rec), str(rid), rec)
    except SfError as exc:
        if exc.code != "NOT_FOUND":
            raise
        raise SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []) from None
    return {"id": rid, "success": True, "errors": []}


def _run_items(core: Core, records: list[Any], all_or_none: bool, op: Any,
               pre: dict[int, ErrorItem] | None = None) -> Reply:
    out: list[dict[str, Any]] = []
    with core.store.savepoint() as rollback_all:
        for n, rec in enumerate(records):
            if pre and n in pre:
                out.append(_failure(pre[n]))
                continue
            with core.store.savepoint() as rollback_one:
                try:
                    out.append(op(rec))
                except SfError as exc:
                    rollback_one()
                    out.append(_failure(*exc.items))
        if all_or_none and any(not o["success"] for o in out):
            rollback_all()
            rolled = ErrorItem("ALL_OR_NONE_OPERATION_ROLLED_BACK", ROLLED_BACK, [])
            out = [o if not o["success"] else {**_failure(rolled), **(
                {"created": False} if "created" in o else {})} for o in out]
    return Reply(200, out)


def _failure(*items: ErrorItem) -> dict[str, Any]:
    return {"id": None, "success": False, "errors": [i.item() for i in items]}


def _upsert_collection(core: Core, records: list[Any], all_or_none: bool, obj: str,
                       field_name: str) -> Reply:
    odef = core.engine.odef(obj)
    fdef = core.engine.key_field(odef, field_name)
    keys: dict[int, str] = {}
    pre: dict[int, ErrorItem] = {}
    for n, rec in enumerate(records):
        if not isinstance(rec, dict) or _type_of(rec).lower() != odef.name.lower():
            pre[n] = ErrorItem("INVALID_INPUT", f"Only {odef.name} records are allowed", [])
            continue
        value = next((v for k, v in rec.items() if k.lower() == fdef.name.lower()), None)
        if any(k.lower() == "id" for k in rec) and fdef.name != "Id":
            pre[n] = ErrorItem("INVALID_FIELD", "Only external ids are supported. Don't use "
                               "record ids.", ["Id"])
        elif value in (None, ""):
            pre[n] = ErrorItem("MISSING_ARGUMENT", f"{fdef.name} not specified", [])
        else:
            keys[n] = str(value) if fdef.case_sensitive else str(value).lower()
    _mark_duplicates(keys, pre, fdef.name)

    def op(rec: dict[str, Any]) -> dict[str, Any]:
        value = next(v for k, v in rec.items() if k.lower() == fdef.name.lower())
        body = {k: v for k, v in rec.items() if k.lower() != fdef.name.lower()}
        try:
            rid, created = core.engine.upsert(odef.name, fdef.name, value, body)
        except MultipleMatches as exc:
            raise SfError("DUPLICATE_EXTERNAL_ID", "A user-specified external ID matches more "
                          f"than one record during an upsert: {', '.join(exc.ids)}",
                          [fdef.name]) from None
        return {"id": rid, "success": True, "errors": [], "created": created}

    reply = _run_items(core, records, all_or_none, op, pre)
    for item in reply.body:
        item.setdefault("created", False)
    return reply


def _mark_duplicates(keys: dict[int, str], pre: dict[int, ErrorItem], field_name: str) -> None:
    seen: dict[str, list[int]] = {}
    for n, key in keys.items():
        seen.setdefault(key, []).append(n)
    for key, rows in seen.items():
        if len(rows) > 1:
            for n in rows:
                pre[n] = ErrorItem(
                    "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {key}",
                    [field_name],
                )


def _collection_delete(core: Core, call: Call) -> Reply:
    ids = [i for i in call.query.get("ids", "").split(",") if i]
    if not ids or len(ids) > MAX_RECORDS:
        raise SfError("INVALID_INPUT", "ids must list 1 to 200 record ids")
    all_or_none = call.query.get("allOrNone", "false").lower() == "true"

    def op(rid: str) -> dict[str, Any]:
        found = core.store.lookup_any(rid)
        if found is None:
            raise SfError("ENTITY_IS_DELETED", "entity is deleted", [])
        core.engine.delete(found[0], found[1]["Id"])
        return {"id": found[1]["Id"], "success": True, "errors": []}

    return _run_items(core, ids, all_or_none, op)


def _collection_get(core: Core, call: Call, rest: list[str]) -> Reply:
    if len(rest) != 1:
        raise method_not_allowed(call, "POST, PATCH, DELETE")
    from .records import render

    ids = [i for i in call.query.get("ids", "").split(",") if i]
    fields = [f for f in call.query.get("fields", "").split(",") if f] or None
    out: list[Any] = []
    for rid in ids:
        try:
            odef, rec = core.engine.get(rest[0], rid)
            out.append(render(odef, rec, call.version, fields))
        except SfError:
            out.append(None)
    return Reply(200, out)
