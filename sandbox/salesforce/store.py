"""In-memory records with external-id indexes, an undo journal (rollback) and counters."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .ids import IdFactory, to18
from .schema import ObjectDef

Record = dict[str, Any]


class Store:
    """Records by object and id, indexed by every external-id / idLookup field.

    Indexes map the *lower-cased* value to the ids holding it; case-sensitive matching
    filters those candidates by exact value, so one index serves both kinds of field and
    SOQL's case-insensitive ``=``/``IN``.
    """

    def __init__(self, schema: dict[str, ObjectDef]) -> None:
        self.lock = threading.RLock()
        self.ids = IdFactory()
        self.schema = schema
        self.records: dict[str, dict[str, Record]] = defaultdict(dict)
        self.deleted: dict[str, dict[str, Record]] = defaultdict(dict)
        self.indexes: dict[tuple[str, str], dict[str, list[str]]] = {}
        self.written: dict[str, Counter[str]] = defaultdict(Counter)
        self._journal: list[Callable[[], None]] | None = None
        self._depth = 0
        self.set_schema(schema)

    # -- schema / indexes ------------------------------------------------------------------
    def set_schema(self, schema: dict[str, ObjectDef]) -> None:
        """Switch to a new schema (org change) and rebuild the indexes."""
        with self.lock:
            self.schema = schema
            self.indexes = {}
            for obj, odef in schema.items():
                for fdef in odef.fields.values():
                    if fdef.external_id or (fdef.id_lookup and fdef.name != "Id"):
                        idx: dict[str, list[str]] = defaultdict(list)
                        for rid, rec in self.records.get(obj, {}).items():
                            value = rec.get(fdef.name)
                            if value is not None:
                                idx[str(value).lower()].append(rid)
                        self.indexes[(obj, fdef.name)] = idx

    def indexed(self, obj: str, field: str) -> bool:
        """True when ``obj.field`` has an index (external id or idLookup)."""
        return (obj, field) in self.indexes

    def find(self, obj: str, field: str, value: Any, case_sensitive: bool) -> list[str]:
        """Ids of live ``obj`` records whose ``field`` equals ``value``."""
        if value is None:
            return []
        text = str(value)
        ids = self.indexes.get((obj, field), {}).get(text.lower(), [])
        if not case_sensitive:
            return list(ids)
        return [i for i in ids if str(self.records[obj][i].get(field)) == text]

    def _index_add(self, obj: str, rec: Record) -> None:
        for (o, field), idx in self.indexes.items():
            if o == obj and rec.get(field) is not None:
                idx[str(rec[field]).lower()].append(rec["Id"])

    def _index_remove(self, obj: str, rec: Record) -> None:
        for (o, field), idx in self.indexes.items():
            if o == obj and rec.get(field) is not None:
                key = str(rec[field]).lower()
                bucket = idx.get(key, [])
                if rec["Id"] in bucket:
                    bucket.remove(rec["Id"])
                if not bucket:
                    idx.pop(key, None)

    # -- journal -----------------------------------------------------------------------------
    @contextmanager
    def savepoint(self) -> Iterator[Callable[[], None]]:
        """Journal writes; yields ``rollback()`` which undoes everything since entering."""
        with self.lock:
            if self._journal is None:
                self._journal = []
            start = len(self._journal)
            self._depth += 1

            def rollback() -> None:
                assert self._journal is not None
                while len(self._journal) > start:
                    self._journal.pop()()

            try:
                yield rollback
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._journal = None

    @contextmanager
    def untracked(self) -> Iterator[None]:
        """Writes inside are not journalled (survive a rollback): another transaction's."""
        with self.lock:
            journal, self._journal = self._journal, None
            try:
                yield
            finally:
                self._journal = journal

    def _undo(self, action: Callable[[], None]) -> None:
        if self._journal is not None:
            self._journal.append(action)

    # -- writes ------------------------------------------------------------------------------
    def insert(self, obj: str, rec: Record) -> str:
        """Add ``rec`` (must carry ``Id``) and count it as created."""
        with self.lock:
            self.records[obj][rec["Id"]] = rec
            self._index_add(obj, rec)
            self.written[obj]["created"] += 1

            def undo() -> None:
                self._index_remove(obj, rec)
                self.records[obj].pop(rec["Id"], None)
                self.written[obj]["created"] -= 1

            self._undo(undo)
            return rec["Id"]

    def update(self, obj: str, rid: str, changes: Record) -> None:
        """Apply ``changes`` to the record ``rid`` and count it as updated."""
        with self.lock:
            rec = self.records[obj][rid]
            before = dict(rec)
            self._index_remove(obj, rec)
            rec.update(changes)
            self._index_add(obj, rec)
            self.written[obj]["updated"] += 1

            def undo() -> None:
                self._index_remove(obj, rec)
                rec.clear()
                rec.update(before)
                self._index_add(obj, rec)
                self.written[obj]["updated"] -= 1

            self._undo(undo)

    def delete(self, obj: str, rid: str) -> None:
        """Move the record to the recycle bin (still visible to queryAll)."""
        with self.lock:
            rec = self.records[obj].pop(rid)
            self._index_remove(obj, rec)
            rec["IsDeleted"] = True
            self.deleted[obj][rid] = rec
            self.written[obj]["deleted"] += 1

            def undo() -> None:
                self.deleted[obj].pop(rid, None)
                rec["IsDeleted"] = False
                self.records[obj][rid] = rec
                self._index_add(obj, rec)
                self.written[obj]["deleted"] -= 1

            self._undo(undo)

    # -- reads -------------------------------------------------------------------------------
    def get(self, obj: str, rid: str) -> Record | None:
        """The live record ``rid`` of ``obj`` or None."""
        return self.records.get(obj, {}).get(rid)

    def lookup_any(self, rid: str) -> tuple[str, Record] | None:
        """Find a live record by id in any object (by key prefix)."""
        try:
            rid = to18(rid)
        except ValueError:
            return None
        for obj, odef in self.schema.items():
            if rid.startswith(odef.prefix) and rid in self.records.get(obj, {}):
                return obj, self.records[obj][rid]
        return None

    def in_recycle_bin(self, rid: str) -> bool:
        """Whether ``rid`` names a deleted record of any object (ENTITY_IS_DELETED when used)."""
        try:
            rid = to18(rid)
        except ValueError:
            return False
        return any(rid in bin_ for bin_ in self.deleted.values())

    def all(self, obj: str, include_deleted: bool = False) -> list[Record]:
        """Live records of ``obj`` (plus deleted ones for queryAll)."""
        rows = list(self.records.get(obj, {}).values())
        if include_deleted:
            rows += list(self.deleted.get(obj, {}).values())
        return rows

    def clear(self) -> None:
        """Drop every record and counter."""
        with self.lock:
            self.records.clear()
            self.deleted.clear()
            self.written.clear()
            self.set_schema(self.schema)

    def counts(self) -> dict[str, dict[str, int]]:
        """Records created/updated/deleted per object, e.g. ``{"Account": {"created": 2}}``."""
        return {obj: dict(c) for obj, c in self.written.items()}
