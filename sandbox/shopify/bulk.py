"""Bulk query operations (research §2 Bulk operations): ``bulkOperationRunQuery`` parses the inner
query, a background thread walks the lazy store and writes JSONL (nested connection nodes on their
own lines with ``__parentId``), served without a token like a signed download URL."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from graphql import (
    FieldNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    validate,
    value_from_ast_untyped,
)

from .render import iso_utc

if TYPE_CHECKING:
    from .shop import Shop

MAX_RUNNING = 5  # API 2026-01+: five bulk queries at a time per shop


@dataclass
class BulkOperation:
    """State of one bulk query operation."""

    number: int
    query: str
    created: float
    status: str = "CREATED"
    error_code: str | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    url: str | None = None
    completed: float | None = None
    cancel_requested: bool = False

    @property
    def id(self) -> str:
        """GID of the operation."""
        return f"gid://shopify/BulkOperation/{self.number}"

    def view(self) -> dict[str, Any]:
        """GraphQL ``BulkOperation``."""
        return {
            "__typename": "BulkOperation",
            "id": self.id,
            "status": self.status,
            "errorCode": self.error_code,
            "objectCount": str(self.object_count),
            "rootObjectCount": str(self.root_object_count),
            "fileSize": str(self.file_size) if self.file_size is not None else None,
            "url": self.url if self.status == "COMPLETED" else None,
            "partialDataUrl": self.url if self.status in ("FAILED", "CANCELED") else None,
            "createdAt": iso_utc(int(self.created)),
            "completedAt": iso_utc(int(self.completed)) if self.completed else None,
            "query": self.query,
            "type": "QUERY",
        }


def _fields(sel: SelectionSetNode | None) -> list[FieldNode]:
    out: list[FieldNode] = []
    for s in sel.selections if sel else ():
        if isinstance(s, FieldNode):
            out.append(s)
        elif isinstance(s, InlineFragmentNode):
            out.extend(_fields(s.selection_set))
    return out


def node_selection(field: FieldNode) -> SelectionSetNode | None:
    """The per-node selection of a connection field (``edges { node {…} }`` or ``nodes {…}``)."""
    for f in _fields(field.selection_set):
        if f.name.value == "nodes":
            return f.selection_set
        if f.name.value == "edges":
            for g in _fields(f.selection_set):
                if g.name.value == "node":
                    return g.selection_set
    return None


def project(sel: SelectionSetNode | None, value: dict[str, Any]
            ) -> tuple[dict[str, Any], list[tuple[SelectionSetNode | None, dict[str, Any]]]]:
    """Select fields from a view; nested connections are returned separately as children."""
    obj: dict[str, Any] = {}
    children: list[tuple[SelectionSetNode | None, dict[str, Any]]] = []
    for f in _fields(sel):
        name = f.name.value
        key = f.alias.value if f.alias else name
        v = value.get(name)
        if callable(v):
            children.append((node_selection(f), v(None)))
            continue
        obj[key] = _value(f, v)
    return obj, children


def _value(f: FieldNode, v: Any) -> Any:
    if isinstance(v, dict) and f.selection_set:
        return project(f.selection_set, v)[0]
    if isinstance(v, list) and f.selection_set:
        return [project(f.selection_set, x)[0] if isinstance(x, dict) else x for x in v]
    return v


class BulkManager:
    """The bulk operations of one shop."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self._ops: dict[str, BulkOperation] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._directory: Path | None = None

    @property
    def directory(self) -> Path:
        """Temporary directory of the JSONL files (created on first use)."""
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="shopify-sandbox-bulk-"))
        return self._directory

    def path(self, number: int) -> Path:
        """Where operation ``number`` writes its JSONL."""
        return self.directory / f"{number}.jsonl"

    def close(self) -> None:
        """Delete the JSONL files."""
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def current(self) -> BulkOperation | None:
        """The most recent operation."""
        with self._lock:
            return list(self._ops.values())[-1] if self._ops else None

    def get(self, op_id: str) -> BulkOperation | None:
        """An operation by GID."""
        with self._lock:
            return self._ops.get(op_id)

    def cancel(self, op_id: str) -> BulkOperation | None:
        """Ask a running operation to stop (its partial data stays available)."""
        op = self.get(op_id)
        if op is not None and op.status in ("CREATED", "RUNNING"):
            op.cancel_requested = True
            op.status = "CANCELING"
        return op

    def wait(self, op_id: str, timeout: float = 60.0) -> BulkOperation | None:
        """Block until the operation finishes (for tests and scripts)."""
        op = self.get(op_id)
        thread = getattr(op, "_thread", None)
        if thread is not None:
            thread.join(timeout)
        return op

    def reset(self) -> None:
        """Forget all operations and their files."""
        with self._lock:
            for op in self._ops.values():
                op.cancel_requested = True
            self._ops.clear()
        self.close()

    def run_query(self, query: str, base_url: str
                  ) -> tuple[BulkOperation | None, list[dict[str, Any]]]:
        """Validate the inner query and start it; (None, userErrors) if it is rejected."""
        field, error = self._parse(query)
        if error:
            return None, [{"field": ["query"], "message": error, "code": "INVALID"}]
        assert field is not None
        with self._lock:
            running = [o for o in self._ops.values() if o.status in ("CREATED", "RUNNING")]
            if len(running) >= MAX_RUNNING:
                return None, [{"field": None, "code": "LIMIT_REACHED",
                               "message": "A bulk query operation for this app and shop is "
                                          "already in progress."}]
            op = BulkOperation(next(self._numbers), query, self.shop.clock.now())
            self._ops[op.id] = op
        url = f"{base_url.rstrip('/')}/__sandbox/bulk/{self.shop.domain}/{op.number}.jsonl"
        thread = threading.Thread(target=self._run, args=(op, field, url), daemon=True,
                                  name=f"bulk:{op.number}")
        op._thread = thread  # type: ignore[attr-defined]
        thread.start()
        return op, []

    def _parse(self, query: str) -> tuple[FieldNode | None, str | None]:
        schema = self.shop.schema
        if schema is None:
            from .graphql_api import make_schema

            schema = self.shop.schema = make_schema([self.shop.cfg.currency])
        try:
            doc = parse(query)
        except GraphQLError as exc:
            return None, f"Invalid bulk query: {exc.message}"
        errors = validate(schema, doc)
        if errors:
            return None, f"Invalid bulk query: {errors[0].message}"
        ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
        if len(ops) != 1 or ops[0].operation != OperationType.QUERY:
            return None, "Bulk queries must contain exactly one query operation."
        top = _fields(ops[0].selection_set)
        if len(top) != 1 or top[0].name.value != "orders":
            return None, "The sandbox supports bulk queries over the `orders` connection only."
        if node_selection(top[0]) is None:
            return None, "Bulk queries must contain at least one connection."
        return top[0], None

    def _run(self, op: BulkOperation, field: FieldNode, url: str) -> None:
        from .graphql_api import order_view
        from .search import parse_search

        shop = self.shop
        op.status = "RUNNING"
        args = {a.name.value: value_from_ast_untyped(a.value) for a in field.arguments or ()}
        path = self.path(op.number)
        try:
            f = parse_search(args.get("query"), shop.tz)
            f.visible_from = shop.visible_from()
            rows = shop.store.iterate(f, args.get("sortKey") or "ID", bool(args.get("reverse")))
            sel = node_selection(field)
            with path.open("w", encoding="utf-8") as fh:
                for _, rec in rows:
                    if op.cancel_requested:
                        break
                    self._write(fh, op, sel, order_view(shop.present(rec)))
            op.file_size = path.stat().st_size
            op.url = url if op.object_count else None
            op.status = "CANCELED" if op.cancel_requested else "COMPLETED"
        except Exception:
            op.status = "FAILED"
            op.error_code = "INTERNAL_SERVER_ERROR"
            op.url = url if path.exists() else None
        op.completed = shop.clock.now()
        shop.webhooks.emit("bulk_operations/finish", {
            "admin_graphql_api_id": op.id, "completed_at": iso_utc(int(op.completed)),
            "created_at": iso_utc(int(op.created)), "error_code": op.error_code,
            "status": op.status.lower(), "type": "query"})

    @staticmethod
    def _write(fh: TextIO, op: BulkOperation, sel: SelectionSetNode | None,
               view: dict[str, Any]) -> None:
        obj, children = project(sel, view)
        fh.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
        op.object_count += 1
        op.root_object_count += 1
        for child_sel, conn in children:
            for node in conn["nodes"]:
                child, _ = project(child_sel, node)
                child["__parentId"] = view["id"]
                fh.write(json.dumps(child, ensure_ascii=False, separators=(",", ":")) + "\n")
                op.object_count += 1
