"""A hand-written parser and evaluator for the SOQL subset the product uses (research §4).

Supported: ``SELECT f1, Parent.f2 | COUNT() FROM Obj [WHERE …] [ORDER BY f [ASC|DESC]
[NULLS FIRST|LAST], …] [LIMIT n] [OFFSET n]``; conditions with ``= != <> < <= > >= IN, NOT IN,
LIKE``, ``AND``/``OR``/``NOT`` and parentheses (mixing AND and OR without parentheses is a
MALFORMED_QUERY, as in Salesforce); literals: 'strings' with backslash escapes, numbers,
null, true/false, dates, datetimes, TODAY/YESTERDAY/TOMORROW/LAST_N_DAYS:n/NEXT_N_DAYS:n.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import SfError
from .ids import to18
from .schema import FieldDef, ObjectDef
from .store import Record, Store

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*(?::\d+)?)
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}
_DATE_LITERALS = {"TODAY", "YESTERDAY", "TOMORROW", "LAST_N_DAYS", "NEXT_N_DAYS"}
_KEYWORDS = {"SELECT", "FROM", "WHERE", "ORDER", "BY", "LIMIT", "OFFSET", "AND", "OR", "NOT",
             "IN", "LIKE", "ASC", "DESC", "NULLS", "FIRST", "LAST", "NULL", "TRUE", "FALSE"}


def malformed(message: str) -> SfError:
    """400 MALFORMED_QUERY."""
    return SfError("MALFORMED_QUERY", message)


@dataclass
class Tok:
    """A lexical token."""

    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        """The token text upper-cased (keywords are case-insensitive)."""
        return self.text.upper()


@dataclass
class Literal:
    """A literal in a condition: ``kind`` is string/number/date/datetime/null/bool/range."""

    kind: str
    value: Any
    like: re.Pattern[str] | None = None


@dataclass
class Query:
    """A parsed SELECT."""

    obj: str
    fields: list[str]
    count: bool
    where: Any
    order: list[tuple[str, bool, bool]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0


def tokenize(text: str) -> list[Tok]:
    """Split ``text`` into tokens; MALFORMED_QUERY on anything else."""
    out: list[Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise malformed(f"unexpected token: '{text[pos:pos + 20]}' at column {pos + 1}")
        if match.lastgroup != "ws":
            out.append(Tok(match.lastgroup or "", match.group(), pos))
        pos = match.end()
    return out


def _unescape(body: str) -> tuple[str, str]:
    """Decode a string body; returns (value, LIKE regex source)."""
    value, pattern, i = [], [], 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "%_":
                value.append(nxt)
                pattern.append(re.escape(nxt))
            elif nxt in _ESCAPES:
                value.append(_ESCAPES[nxt])
                pattern.append(re.escape(_ESCAPES[nxt]))
            else:
                raise malformed(f"Invalid string literal escape sequence: \\{nxt}")
            i += 2
            continue
        value.append(char)
        pattern.append({"%": ".*", "_": "."}.get(char, re.escape(char)))
        i += 1
    return "".join(value), "".join(pattern)


class Parser:
    """Recursive-descent parser producing a ``Query``."""

    def __init__(self, text: str) -> None:
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> Tok | None:
        """The token ``ahead`` positions on, or None at the end."""
        j = self.i + ahead
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> Tok:
        """Consume a token (MALFORMED_QUERY at the end)."""
        tok = self.peek()
        if tok is None:
            raise malformed("unexpected end of query")
        self.i += 1
        return tok

    def accept(self, *words: str) -> bool:
        """Consume the keyword sequence ``words`` if next."""
        for n, word in enumerate(words):
            tok = self.peek(n)
            if tok is None or tok.upper != word:
                return False
        self.i += len(words)
        return True

    def expect(self, word: str) -> None:
        """Consume ``word`` or fail."""
        tok = self.peek()
        if not self.accept(word):
            got = tok.text if tok else "end of query"
            raise malformed(f"unexpected token: '{got}' (expecting {word})")

    def parse(self) -> Query:
        """Parse the whole statement."""
        self.expect("SELECT")
        fields, count = self._select_list()
        self.expect("FROM")
        obj = self._ident()
        where = self._or() if self.accept("WHERE") else None
        order = self._order() if self.accept("ORDER", "BY") else []
        limit = self._int() if self.accept("LIMIT") else None
        offset = self._int() if self.accept("OFFSET") else 0
        if self.peek() is not None:
            raise malformed(f"unexpected token: '{self.peek().text}'")  # type: ignore[union-attr]
        return Query(obj, fields, count, where, order, limit, offset)

    def _ident(self) -> str:
        tok = self.take()
        if tok.kind != "ident" or tok.upper in _KEYWORDS:
            raise malformed(f"unexpected token: '{tok.text}'")
        return tok.text

    def _int(self) -> int:
        tok = self.take()
        if tok.kind != "number" or "." in tok.text or tok.text.startswith("-"):
            raise malformed(f"unexpected token: '{tok.text}'")
        return int(tok.text)

    def _select_list(self) -> tuple[list[str], bool]:
        tok = self.peek()
        if tok and tok.upper == "COUNT" and self.peek(1) and self.peek(1).text == "(":  # type: ignore[union-attr]
            self.i += 2
            if self.take().text != ")":
                raise malformed("only COUNT() is supported by the sandbox")
            return [], True
        fields = [self._ident()]
        while self.peek() and self.peek().text == ",":  # type: ignore[union-attr]
            self.i += 1
            fields.append(self._ident())
        return fields, False

    def _order(self) -> list[tuple[str, bool, bool]]:
        out = []
        while True:
            name = self._ident()
            desc = self.accept("DESC")
            if not desc:
                self.accept("ASC")
            nulls_first = not desc
            if self.accept("NULLS", "FIRST"):
                nulls_first = True
            elif self.accept("NULLS", "LAST"):
                nulls_first = False
            out.append((name, desc, nulls_first))
            if not (self.peek() and self.peek().text == ","):  # type: ignore[union-attr]
                return out
            self.i += 1

    def _or(self) -> Any:
        left = self._and()
        parts = [left]
        while self.accept("OR"):
            parts.append(self._and())
        if len(parts) > 1 and any(p[0] == "and" for p in parts):
            raise malformed("unexpected token: 'AND' (use parentheses to mix AND and OR)")
        return ("or", parts) if len(parts) > 1 else left

    def _and(self) -> Any:
        parts = [self._not()]
        while self.accept("AND"):
            parts.append(self._not())
            nxt = self.peek()
            if nxt is not None and nxt.upper == "OR":
                raise malformed("unexpected token: 'OR' (use parentheses to mix AND and OR)")
        return ("and", parts) if len(parts) > 1 else parts[0]

    def _not(self) -> Any:
        if self.accept("NOT"):
            return ("not", self._not())
        tok = self.peek()
        if tok is not None and tok.text == "(":
            self.i += 1
            inner = self._or()
            if self.take().text != ")":
                raise malformed("expecting ')'")
            return ("paren", inner)
        return self._comparison()

    def _comparison(self) -> Any:
        name = self._ident()
        if self.accept("NOT", "IN"):
            return ("in", name, self._list(), True)
        if self.accept("IN"):
            return ("in", name, self._list(), False)
        if self.accept("LIKE"):
            lit = self._literal()
            if lit.kind != "string":
                raise malformed("LIKE needs a string literal")
            return ("cmp", name, "like", lit)
        tok = self.take()
        if tok.kind != "op":
            raise malformed(f"unexpected token: '{tok.text}'")
        op = "!=" if tok.text == "<>" else tok.text
        return ("cmp", name, op, self._literal())

    def _list(self) -> list[Literal]:
        if self.take().text != "(":
            raise malformed("expecting '('")
        items = [self._literal()]
        while True:
            tok = self.take()
            if tok.text == ")":
                return items
            if tok.text != ",":
                raise malformed(f"unexpected token: '{tok.text}'")
            items.append(self._literal())

    def _literal(self) -> Literal:
        tok = self.take()
        if tok.kind == "string":
            value, pattern = _unescape(tok.text[1:-1])
            if len(value) > 4000:
                raise malformed("string literals in a filter are limited to 4,000 characters")
            return Literal("string", value, re.compile(f"^{pattern}$", re.IGNORECASE | re.DOTALL))
        if tok.kind == "number":
            return Literal("number", float(tok.text))
        if tok.kind == "date":
            return Literal("date", tok.text)
        if tok.kind == "datetime":
            return Literal("datetime", _parse_dt(tok.text))
        word = tok.upper.split(":")[0]
        if word == "NULL":
            return Literal("null", None)
        if word in ("TRUE", "FALSE"):
            return Literal("bool", word == "TRUE")
        if word in _DATE_LITERALS:
            return Literal("range", _date_range(tok.upper))
        raise malformed(f"unexpected token: '{tok.text}'")


def _parse_dt(text: str) -> dt.datetime:
    text = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _date_range(literal: str) -> tuple[dt.datetime, dt.datetime]:
    word, _, num = literal.partition(":")
    midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = dt.timedelta(days=1)
    if word in ("LAST_N_DAYS", "NEXT_N_DAYS") and not num.isdigit():
        raise malformed(f"{word} needs :n")
    n = int(num or 0)
    ranges = {
        "TODAY": (midnight, midnight + day),
        "YESTERDAY": (midnight - day, midnight),
        "TOMORROW": (midnight + day, midnight + 2 * day),
        "LAST_N_DAYS": (midnight - n * day, midnight + day),
        "NEXT_N_DAYS": (midnight, midnight + (n + 1) * day),
    }
    return ranges[word]


def parse(text: str) -> Query:
    """Parse SOQL ``text`` (MALFORMED_QUERY on unsupported syntax)."""
    if len(text) > 100_000:
        raise malformed("query is longer than 100,000 characters")
    return Parser(text).parse()


# -- evaluation -----------------------------------------------------------------------------

Getter = Callable[[Record], Any]


class Compiler:
    """Binds a parsed ``Query`` to the schema: field getters and a predicate."""

    def __init__(self, store: Store, query: Query) -> None:
        self.store = store
        self.query = query
        self.odef = self._object(query.obj)

    def _object(self, name: str) -> ObjectDef:
        for obj, odef in self.store.schema.items():
            if obj.lower() == name.lower():
                return odef
        raise SfError("INVALID_TYPE", f"sObject type '{name}' is not supported.")

    def resolve(self, path: str) -> tuple[list[FieldDef], FieldDef, ObjectDef]:
        """``Account.Name`` → ([AccountId def], Name def, Account def)."""
        parts = path.split(".")
        if len(parts) > 1 and parts[0].lower() == self.odef.name.lower():
            parts = parts[1:]
        odef, hops = self.odef, []
        for rel in parts[:-1]:
            ref = odef.relationship(rel)
            if ref is None:
                raise self._no_column(path)
            hops.append(ref)
            if ref.reference_to[0] not in self.store.schema:
                raise self._no_column(path)
            odef = self._object(ref.reference_to[0])
        fdef = odef.field(parts[-1])
        if fdef is None:
            raise self._no_column(path)
        return hops, fdef, odef

    def _no_column(self, path: str) -> SfError:
        return SfError(
            "INVALID_FIELD",
            f"No such column '{path}' on entity '{self.odef.name}'. If you are attempting to "
            "use a custom field, be sure to append the '__c' after the custom field name. "
            "Please reference your WSDL or the describe call for the appropriate names.",
        )

    def getter(self, path: str) -> tuple[Getter, FieldDef]:
        """A function reading ``path`` from a record (following parent lookups)."""
        hops, fdef, _ = self.resolve(path)
        store, name = self.store, fdef.name
        if not hops:
            return (lambda rec: rec.get(name)), fdef

        def get(rec: Record) -> Any:
            cur: Record | None = rec
            for ref in hops:
                pid = cur.get(ref.name) if cur else None
                cur = store.get(ref.reference_to[0], pid) if pid else None
            return cur.get(name) if cur else None

        return get, fdef

    def predicate(self) -> Callable[[Record], bool]:
        """The compiled WHERE clause (always-true when absent)."""
        if self.query.where is None:
            return lambda rec: True
        return self._node(self.query.where)

    def _node(self, node: Any) -> Callable[[Record], bool]:
        kind = node[0]
        if kind == "paren":
            return self._node(node[1])
        if kind == "and":
            parts = [self._node(n) for n in node[1]]
            return lambda rec: all(p(rec) for p in parts)
        if kind == "or":
            parts = [self._node(n) for n in node[1]]
            return lambda rec: any(p(rec) for p in parts)
        if kind == "not":
            inner = self._node(node[1])
            return lambda rec: not inner(rec)
        if kind == "in":
            return self._in(node[1], node[2], node[3])
        return self._cmp(node[1], node[2], node[3])

    def _in(self, path: str, items: list[Literal], negate: bool) -> Callable[[Record], bool]:
        get, fdef = self.getter(path)
        norm = _normaliser(fdef)
        wanted = {norm(self._check(fdef, lit)) for lit in items if lit.kind != "null"}
        has_null = any(lit.kind == "null" for lit in items)

        def test(rec: Record) -> bool:
            value = get(rec)
            hit = has_null if value is None else norm(value) in wanted
            return hit != negate

        return test

    def _cmp(self, path: str, op: str, lit: Literal) -> Callable[[Record], bool]:
        get, fdef = self.getter(path)
        if lit.kind == "null":
            if op not in ("=", "!="):
                raise malformed("null can only be compared with = or !=")
            return (lambda rec: get(rec) is None) if op == "=" else (
                lambda rec: get(rec) is not None)
        if op == "like":
            pattern = lit.like
            assert pattern is not None
            return lambda rec: get(rec) is not None and bool(pattern.match(str(get(rec))))
        if lit.kind == "range":
            return self._range(get, fdef, op, lit.value)
        norm = _normaliser(fdef)
        target = norm(self._check(fdef, lit))
        compare = _OPS[op]
        return lambda rec: (v := get(rec)) is not None and compare(norm(v), target)

    def _range(self, get: Getter, fdef: FieldDef, op: str, bounds: Any) -> Callable[[Record], bool]:
        if fdef.type not in ("date", "datetime"):
            raise SfError("INVALID_QUERY_FILTER_OPERATOR",
                          f"value of filter criterion for field '{fdef.name}' must be a date")
        norm = _normaliser(fdef)
        start, end = bounds
        if fdef.type == "date":
            start, end = start.date().isoformat(), end.date().isoformat()
        tests = {
            "=": lambda v: start <= v < end,
            "!=": lambda v: not start <= v < end,
            "<": lambda v: v < start,
            "<=": lambda v: v < end,
            ">": lambda v: v >= end,
            ">=": lambda v: v >= start,
        }
        test = tests[op]
        return lambda rec: (v := get(rec)) is not None and test(norm(v))

    def _check(self, fdef: FieldDef, lit: Literal) -> Any:
        """Type-check a literal against the field as SOQL does."""
        expected = {
            "date": "date", "datetime": "datetime", "boolean": "bool",
            "currency": "number", "double": "number", "int": "number", "percent": "number",
        }.get(fdef.type, "string")
        if lit.kind != expected:
            quoted = " and should not be enclosed in quotes" if lit.kind == "string" else ""
            raise SfError(
                "INVALID_QUERY_FILTER_OPERATOR",
                f"value of filter criterion for field '{fdef.name}' must be of type "
                f"{expected}{quoted}",
            )
        return lit.value

    def candidates(self, include_deleted: bool) -> Iterable[Record]:
        """Records worth testing: an index hit for ``Field = 'x'``/``IN`` on indexed fields."""
        where = self.query.where
        conj = where[1] if where is not None and where[0] == "and" else [where]
        for node in conj:
            ids = self._index_ids(node) if node is not None and not include_deleted else None
            if ids is not None:
                recs = self.store.records.get(self.odef.name, {})
                return [recs[i] for i in dict.fromkeys(ids) if i in recs]
        return self.store.all(self.odef.name, include_deleted)

    def _index_ids(self, node: Any) -> list[str] | None:
        if node[0] == "cmp" and node[2] == "=" and node[3].kind == "string":
            path, values = node[1], [node[3].value]
        elif node[0] == "in" and not node[3] and all(i.kind == "string" for i in node[2]):
            path, values = node[1], [i.value for i in node[2]]
        else:
            return None
        fdef = self.odef.field(path)
        if fdef is None:
            return None
        if fdef.name == "Id":
            out = []
            for value in values:
                try:
                    out.append(to18(value))
                except ValueError:
                    continue
            return out
        if not self.store.indexed(self.odef.name, fdef.name):
            return None
        out = []
        for value in values:
            out += self.store.find(self.odef.name, fdef.name, value, case_sensitive=False)
        return out


def _normaliser(fdef: FieldDef) -> Callable[[Any], Any]:
    if fdef.type in ("id", "reference"):
        def norm_id(v: Any) -> Any:
            try:
                return to18(str(v))
            except ValueError:
                return str(v)
        return norm_id
    if fdef.type == "datetime":
        return lambda v: v if isinstance(v, dt.datetime) else _parse_dt(str(v))
    if fdef.type in ("currency", "double", "int", "percent"):
        return float
    if fdef.type in ("boolean", "date"):
        return lambda v: v
    return lambda v: str(v).lower()


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass
class Result:
    """An executed query: matching records in order, plus how to render each one."""

    compiler: Compiler
    rows: list[Record]
    total: int

    @property
    def odef(self) -> ObjectDef:
        """The FROM object."""
        return self.compiler.odef


def execute(store: Store, text: str, include_deleted: bool = False) -> Result:
    """Parse and run ``text``; rows are raw records (render with ``render_row``)."""
    query = parse(text)
    comp = Compiler(store, query)
    for name in query.fields:
        comp.resolve(name)
    pred = comp.predicate()
    with store.lock:
        rows = [r for r in comp.candidates(include_deleted) if pred(r)]
    rows = _sort(comp, rows, query.order)
    rows = rows[query.offset:]
    if query.limit is not None:
        rows = rows[: query.limit]
    return Result(comp, [] if query.count else rows, len(rows))


def _sort(comp: Compiler, rows: list[Record], order: list[tuple[str, bool, bool]]) -> list[Record]:
    for path, desc, nulls_first in reversed(order):
        get, fdef = comp.getter(path)
        norm = _normaliser(fdef)
        nulls = [r for r in rows if get(r) is None]
        values = [r for r in rows if get(r) is not None]
        values.sort(key=lambda r, g=get, n=norm: n(g(r)), reverse=desc)
        rows = nulls + values if nulls_first else values + nulls
    return rows


def render_row(result: Result, rec: Record, version: str) -> Record:
    """A query record as REST returns it: attributes, fields, nested parent objects."""
    comp = result.compiler
    out: Record = {"attributes": _attrs(comp.odef, rec, version)}
    for path in comp.query.fields:
        hops, fdef, _ = comp.resolve(path)
        if not hops:
            out[fdef.name] = rec.get(fdef.name)
            continue
        _nest(comp, out, rec, hops, fdef, version)
    return out


def _attrs(odef: ObjectDef, rec: Record, version: str) -> dict[str, str]:
    return {"type": odef.name, "url": f"/services/data/v{version}/sobjects/{odef.name}/{rec['Id']}"}


def _nest(comp: Compiler, out: Record, rec: Record, hops: list[FieldDef], fdef: FieldDef,
          version: str) -> None:
    cur, holder = rec, out
    for ref in hops:
        rel = ref.relationship_name or ref.name
        pid = cur.get(ref.name)
        parent = comp.store.get(ref.reference_to[0], pid) if pid else None
        if parent is None:
            holder.setdefault(rel, None)
            return
        pdef = comp.store.schema[ref.reference_to[0]]
        if not isinstance(holder.get(rel), dict):
            holder[rel] = {"attributes": _attrs(pdef, parent, version)}
        holder, cur = holder[rel], parent
    holder[fdef.name] = cur.get(fdef.name)


def flat_row(result: Result, rec: Record) -> list[Any]:
    """A query record as a flat list in SELECT order (Bulk API 2.0 CSV)."""
    out = []
    for path in result.compiler.query.fields:
        get, _ = result.compiler.getter(path)
        out.append(get(rec))
    return out
