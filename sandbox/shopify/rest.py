"""REST Admin API order endpoints (research §2 REST, REST cursor pagination, REST rate limits)."""

from __future__ import annotations

import math
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse

from .cursors import CursorError, decode, encode
from .search import SearchError, parse_time
from .store import OrderFilter

if TYPE_CHECKING:
    from .shop import Shop

DEFAULT_LIMIT = 50
MAX_LIMIT = 250
PAGE_INFO_ALLOWED = {"limit", "fields", "page_info"}
FILTER_PARAMS = {
    "created_at_min": ("created", "min"), "created_at_max": ("created", "max"),
    "updated_at_min": ("updated", "min"), "updated_at_max": ("updated", "max"),
    "processed_at_min": ("created", "min"), "processed_at_max": ("created", "max"),
}
STATUSES = ("open", "closed", "cancelled", "any")
ORDERINGS = {"id asc": ("ID", False), "id desc": ("ID", True),
             "created_at asc": ("CREATED_AT", False), "created_at desc": ("CREATED_AT", True),
             "updated_at asc": ("UPDATED_AT", False), "updated_at desc": ("UPDATED_AT", True),
             "processed_at asc": ("PROCESSED_AT", False),
             "processed_at desc": ("PROCESSED_AT", True)}


class BadRequest(ValueError):
    """A 400 with Shopify's ``{"errors": …}`` body."""

    def __init__(self, errors: Any) -> None:
        super().__init__(str(errors))
        self.errors = errors


def error(status: int, errors: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    """A Shopify REST error response."""
    return JSONResponse({"errors": errors}, status_code=status, headers=headers)


def _filter(params: dict[str, str], shop: Shop) -> OrderFilter:
    status = params.get("status", "open")
    if status not in STATUSES:
        raise BadRequest({"status": [f"must be one of {', '.join(STATUSES)}"]})
    f = OrderFilter(status=status)
    for name, (prefix, side) in FILTER_PARAMS.items():
        if name not in params:
            continue
        try:
            ts = parse_time(params[name], shop.tz)
        except SearchError as exc:
            raise BadRequest({name: [str(exc)]}) from exc
        attr = f"{prefix}_{'lo' if side == 'min' else 'hi'}"
        value = math.ceil(ts) if side == "min" else math.floor(ts) + 1
        current = getattr(f, attr)
        if current is None or (value > current if side == "min" else value < current):
            setattr(f, attr, value)
    if "since_id" in params:
        f.since_id = _int(params["since_id"], "since_id")
    if "ids" in params:
        f.ids = [_int(x.strip(), "ids") for x in params["ids"].split(",") if x.strip()]
    return f


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise BadRequest({name: ["expected Integer"]}) from exc


def _limit(params: dict[str, str]) -> int:
    limit = _int(params.get("limit", str(DEFAULT_LIMIT)), "limit")
    if limit < 1 or limit > MAX_LIMIT:
        raise BadRequest({"limit": [f"must be between 1 and {MAX_LIMIT}"]})
    return limit


def _fields(doc: dict[str, Any], fields: str | None) -> dict[str, Any]:
    if not fields:
        return doc
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return {k: doc[k] for k in wanted if k in doc}


def _filter_state(f: OrderFilter) -> dict[str, Any]:
    return {k: v for k, v in vars(f).items() if v is not None}


def list_orders(request: Request, shop: Shop, version: str) -> JSONResponse:
    """``GET orders.json`` with filters, ``fields``, ``since_id`` and ``page_info`` paging."""
    params = dict(request.query_params)
    if "page_info" in params:
        extra = sorted(set(params) - PAGE_INFO_ALLOWED)
        if extra:
            raise BadRequest({"page_info": [
                "page_info cannot be combined with other parameters except limit and fields "
                f"(got {', '.join(extra)})"]})
        try:
            state = decode(params["page_info"])
            f = OrderFilter(**state["f"])
            key, desc, after, backwards = state["k"], state["d"], tuple(state["a"]), state["b"]
        except (CursorError, KeyError, TypeError) as exc:
            raise BadRequest({"page_info": ["Invalid value."]}) from exc
    else:
        f = _filter(params, shop)
        ordering = params.get("order", "id asc").lower()
        if ordering not in ORDERINGS:
            raise BadRequest({"order": [f"must be one of {', '.join(ORDERINGS)}"]})
        key, desc = ORDERINGS[ordering]
        after, backwards = None, False
    limit = _limit(params)
    vis = f
    vis.visible_from = shop.visible_from()
    scan_desc = (not desc) if backwards else desc
    rows = list(islice(shop.store.iterate(vis, key, scan_desc, after), limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    has_next = more if not backwards else True
    has_prev = more if backwards else after is not None
    state = _filter_state(f)
    state.pop("visible_from", None)
    links = []
    base = f"{str(request.base_url).rstrip('/')}/admin/api/{version}/orders.json"
    for rel, ok, sk, back in (("previous", has_prev, rows[0][0] if rows else None, True),
                              ("next", has_next, rows[-1][0] if rows else None, False)):
        if ok and sk is not None:
            token = encode({"f": state, "k": key, "d": desc, "a": list(sk), "b": back})
            q = {"limit": limit, **({"fields": params["fields"]} if "fields" in params else {}),
                 "page_info": token}
            links.append(f'<{base}?{urlencode(q)}>; rel="{rel}"')
    body = {"orders": [_fields(shop.rest(rec), params.get("fields")) for _, rec in rows]}
    headers = {"Link": ", ".join(links)} if links else None
    return JSONResponse(body, headers=headers)


def count_orders(request: Request, shop: Shop) -> JSONResponse:
    """``GET orders/count.json`` (status defaults to open, like the list)."""
    f = _filter(dict(request.query_params), shop)
    f.visible_from = shop.visible_from()
    return JSONResponse({"count": shop.store.count(f)})


def get_order(request: Request, shop: Shop, order_id: str) -> JSONResponse:
    """``GET orders/{id}.json``; 404 when missing or older than 60 days without
    ``read_all_orders``."""
    rec = shop.visible_order(int(order_id)) if order_id.isdigit() else None
    if rec is None:
        return error(404, "Not Found")
    return JSONResponse({"order": _fields(shop.rest(rec), request.query_params.get("fields"))})

