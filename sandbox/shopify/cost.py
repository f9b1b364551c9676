"""Query cost as Shopify calculates it (research §2 GraphQL cost and throttling).

Scalars and enums cost 0, objects 1, a connection 2 plus ``first``/``last`` × the cost of one node
(the node object itself counting 1), ``nodes(ids:)`` one per id, and a mutation 10.  The actual cost
is computed the same way from the data returned, so short pages refund the difference.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)

MUTATION_COST = 10

Fragments = dict[str, FragmentDefinitionNode]


def _is_connection(t: Any) -> bool:
    return getattr(t, "name", "").endswith("Connection")


def _arg(field: FieldNode, name: str, variables: dict[str, Any]) -> Any:
    for a in field.arguments or ():
        if a.name.value == name:
            return value_from_ast_untyped(a.value, variables)
    return None


def _fields(
    sel: SelectionSetNode | None, parent: Any, schema: GraphQLSchema, frags: Fragments
) -> list[tuple[FieldNode, Any]]:
    """Flatten fragments: (field node, parent type the field belongs to)."""
    out: list[tuple[FieldNode, Any]] = []
    for s in sel.selections if sel else ():
        if isinstance(s, FieldNode):
            out.append((s, parent))
        elif isinstance(s, InlineFragmentNode):
            t = schema.get_type(s.type_condition.name.value) if s.type_condition else parent
            out.extend(_fields(s.selection_set, t, schema, frags))
        elif isinstance(s, FragmentSpreadNode) and s.name.value in frags:
            fd = frags[s.name.value]
            out.extend(_fields(fd.selection_set, schema.get_type(fd.type_condition.name.value),
                               schema, frags))
    return out


def _node_selection(
    field: FieldNode, conn: Any, schema: GraphQLSchema, frags: Fragments
) -> list[tuple[SelectionSetNode | None, Any]]:
    """The selection sets applied to each node of a connection (edges.node and nodes)."""
    found = []
    for f, _ in _fields(field.selection_set, conn, schema, frags):
        name = f.name.value
        if name == "nodes":
            found.append((f.selection_set, get_named_type(conn.fields["nodes"].type)))
        elif name == "edges":
            edge = get_named_type(conn.fields["edges"].type)
            for g, _ in _fields(f.selection_set, edge, schema, frags):
                if g.name.value == "node":
                    found.append((g.selection_set, get_named_type(edge.fields["node"].type)))
    return found


def selection_cost(
    sel: SelectionSetNode | None, parent: Any, schema: GraphQLSchema, frags: Fragments,
    variables: dict[str, Any],
) -> int:
    """Requested cost of a selection set."""
    total = 0
    for field, owner in _fields(sel, parent, schema, frags):
        name = field.name.value
        fields = getattr(owner, "fields", None)
        if name.startswith("__") or not fields or name not in fields:
            continue
        ftype = get_named_type(fields[name].type)
        if is_leaf_type(ftype):
            continue
        if _is_connection(ftype):
            size = _arg(field, "first", variables) or _arg(field, "last", variables) or 0
            per = max([1 + selection_cost(s, t, schema, frags, variables)
                       for s, t in _node_selection(field, ftype, schema, frags)] or [1])
            total += 2 + int(size) * per
        elif name == "nodes" and _arg(field, "ids", variables) is not None:
            ids = _arg(field, "ids", variables) or []
            total += len(ids) * (1 + selection_cost(field.selection_set, ftype, schema, frags,
                                                    variables))
        else:
            total += 1 + selection_cost(field.selection_set, ftype, schema, frags, variables)
    return total


def operation_cost(
    op: OperationDefinitionNode, schema: GraphQLSchema, frags: Fragments,
    variables: dict[str, Any],
) -> int:
    """Requested cost of an operation."""
    if op.operation == OperationType.MUTATION:
        return MUTATION_COST * len(op.selection_set.selections)
    return selection_cost(op.selection_set, schema.query_type, schema, frags, variables)


def actual_cost(
    sel: SelectionSetNode | None, parent: Any, data: Any, schema: GraphQLSchema,
    frags: Fragments,
) -> int:
    """Cost of what was actually returned (``data`` is the response's ``data`` subtree)."""
    if not isinstance(data, dict):
        return 0
    total = 0
    for field, owner in _fields(sel, parent, schema, frags):
        name = field.name.value
        fields = getattr(owner, "fields", None)
        key = field.alias.value if field.alias else name
        if name.startswith("__") or not fields or name not in fields or key not in data:
            continue
        ftype = get_named_type(fields[name].type)
        value = data[key]
        if is_leaf_type(ftype) or value is None:
            continue
        if _is_connection(ftype):
            total += 2 + _connection_actual(field, ftype, value, schema, frags)
        elif isinstance(value, list):
            total += sum(1 + actual_cost(field.selection_set, _concrete(ftype, v, schema), v,
                                         schema, frags) for v in value if v is not None)
        else:
            total += 1 + actual_cost(field.selection_set, _concrete(ftype, value, schema), value,
                                     schema, frags)
    return total


def _concrete(t: Any, value: Any, schema: GraphQLSchema) -> Any:
    if isinstance(t, GraphQLObjectType) or not isinstance(value, dict):
        return t
    name = value.get("__typename")
    return schema.get_type(name) if name else t


def _connection_actual(
    field: FieldNode, conn: Any, value: dict[str, Any], schema: GraphQLSchema, frags: Fragments
) -> int:
    best = 0
    for f, _ in _fields(field.selection_set, conn, schema, frags):
        key = f.alias.value if f.alias else f.name.value
        items = value.get(key)
        if not isinstance(items, list):
            continue
        node_t = get_named_type(conn.fields["nodes"].type)
        if f.name.value == "nodes":
            cost = sum(1 + actual_cost(f.selection_set, node_t, n, schema, frags) for n in items)
        elif f.name.value == "edges":
            edge_t = get_named_type(conn.fields["edges"].type)
            cost = 0
            for e in items:
                for g, _ in _fields(f.selection_set, edge_t, schema, frags):
                    nkey = g.alias.value if g.alias else g.name.value
                    if g.name.value == "node" and isinstance(e, dict):
                        cost += 1 + actual_cost(g.selection_set, node_t, e.get(nkey), schema,
                                                frags)
        else:
            continue
        best = max(best, cost)
    return best
