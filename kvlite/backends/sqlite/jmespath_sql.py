"""JMESPath filters as SQLite conditions: the push-down of ``engine="jmespath"``.

:func:`conditions` turns the condition of a row-wise filter projection
(``values(@)[?age > `30` && city == 'Oslo'].name``) into a SQL condition over the
``value`` column that lets through every document on which jmespath either
accepts the condition or *raises* (so that the Python re-check raises it, as
``jmespath.search`` does).  SQL may let more rows through, never fewer.

JMESPath's semantics, as ``jmespath/visitor.py`` (1.1.0) evaluates them, and their SQL
(``kind`` is ``coalesce(json_type(value, p), 'null')``: a missing field is ``null``):

==========================  ==========================================================================
``a == 1``                  ``kind IN ('integer','real') AND json_extract = 1``: ``true``/``false``
                            never equal a number (``_equals`` tells ``1`` from ``true``)
``a == 'x'``                ``kind = 'text' AND json_extract = 'x'`` (code-point order: BINARY)
``a == `true```             ``kind = 'true'`` (``false``, ``null`` likewise; ``null`` also when missing)
``a == `[]```               ``kind = 'array'`` and no element (``{}`` likewise); other lists and objects:
                            left to Python
``a != v``                  ``NOT`` of the exact ``==``: a missing ``a`` is ``!=`` every non-null literal
``a < 1`` (and co.)         true between two numbers or two strings only; ``null`` (false) for other
                            types -- except a number against a string, where Python raises
                            ``TypeError`` (jmespath's error, which kvlite raises too): those rows
                            go through SQL to be re-checked; against ``null``/``true``/a list: ``0``
``a`` (truth)               true unless ``''``, ``[]``, ``{}``, ``null``, ``false`` or missing
                            (``0`` is true)
``&&``, ``||``, ``!``       by JMESPath's truth, evaluated left first (an error on the left is
                            raised before the right is read)
==========================  ==========================================================================

Each node is translated to two SQL predicates, ``t`` (jmespath accepts it) and ``e``
(jmespath raises on it), exact or -- for a number at least 2**63 in magnitude,
which ``json_extract`` rounds, or a node left to Python (a function call, a
comparison of two fields) -- upper bounds; the filter's condition is "``t`` or
``e``" narrowed through ``&&`` (see :func:`_passing`).  When the translation is
exact, a row where ``t`` holds is accepted without the Python re-check (the
``sure`` column), and when also no row can raise, the condition is ``exact``.

Paths are pushed when they are chains of plain names (``a.b``, ``@.a.b``,
``[A-Za-z_][A-Za-z0-9_]*``, written into the SQL text as ``$.a.b``), where an
expression index on ``json_extract(value, path)`` serves them.  Only JSON
collections (``json``, ``jsonb``) are narrowed; the caller checks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import rfc9535_sql

__all__ = ["Condition", "conditions", "where", "indexed", "MAX_DEPTH", "MAX_TEXT"]

#: How deep the SQL expression may nest (SQLite's limit is 1000 levels), and how long its text
#: may grow (``||`` repeats its left side's SQL); a larger part is left to Python.
MAX_DEPTH = 150
MAX_TEXT = 20_000

_BIG = float(1 << 63)  # from here on, json_extract's numbers may be rounded
_ORDERING = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_FLIP = {"lt": "gt", "gt": "lt", "lte": "gte", "gte": "lte", "eq": "eq", "ne": "ne"}
_SYMBOL = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
#: Nodes whose evaluation never depends on the document (their value is the same on every row).
_CONSTANT_TYPES = frozenset({"literal", "comparator", "and_expression", "or_expression", "not_expression"})


@dataclass
class Condition(rfc9535_sql.Condition):
    """An :class:`rfc9535_sql.Condition` (``sql`` lets through every document the filter
    accepts or raises on; ``exact``: exactly those it accepts, none it raises on) with ``sure``,
    SQL true for a row the filter surely accepts without raising (``"0"``: none known), and
    ``paths``, every JSON path the condition reads."""

    sure: str = "0"
    sure_params: list[Any] = field(default_factory=list)
    paths: tuple[str, ...] = ()


class _Sql(NamedTuple):
    text: str
    params: tuple[Any, ...] = ()
    depth: int = 1
    paths: tuple[str, ...] = ()


_TRUE = _Sql("1")
_FALSE = _Sql("0")


def _join(glue: str, a: _Sql, b: _Sql) -> _Sql:
    paths = a.paths + tuple(p for p in b.paths if p not in a.paths)
    return _Sql(f"({a.text}) {glue} ({b.text})", a.params + b.params, max(a.depth, b.depth) + 1, paths)


def _and(a: _Sql, b: _Sql) -> _Sql:
    if a.text == "0" or b.text == "0":
        return _FALSE
    if a.text == "1":
        return b
    if b.text == "1":
        return a
    return _join("AND", a, b)


def _or(a: _Sql, b: _Sql) -> _Sql:
    if a.text == "1" or b.text == "1":
        return _TRUE
    if a.text == "0":
        return b
    if b.text == "0":
        return a
    return _join("OR", a, b)


def _not(a: _Sql) -> _Sql:
    if a.text == "1":
        return _FALSE
    if a.text == "0":
        return _TRUE
    return _Sql(f"NOT ({a.text})", a.params, a.depth + 1, a.paths)


class _Tri(NamedTuple):
    """A node's rows: ``t`` where jmespath finds it true, ``e`` where it raises; exactly, or
    (``exact=False``) upper bounds of both.  Every SQL text here is 0 or 1, never NULL."""

    t: _Sql
    e: _Sql
    exact: bool


def _unknown(node: Any) -> _Tri:
    """A node left to Python: true or not on any row, and it may raise if it can raise at all."""
    return _Tri(_TRUE, _TRUE if _may_raise(node) else _FALSE, False)


def _may_raise(node: Any) -> bool:
    """Whether evaluating ``node`` may raise: it calls a function, compares for order (a number
    against a string), or slices (a zero step)."""
    if not isinstance(node, dict):
        return False
    kind = node.get("type")
    if kind in ("function_expression", "slice") or (kind == "comparator" and node.get("value") in _ORDERING):
        return True
    return any(_may_raise(child) for child in node.get("children") or ())


def _field_path(node: Any) -> str | None:
    """The SQLite JSON path of ``a``, ``a.b``, ``@``, ``@.a.b`` (plain names only), or ``None``."""
    kind = node.get("type") if isinstance(node, dict) else None
    if kind == "field":
        names: list[str | int] = [node.get("value")]
    elif kind == "current":
        names = []
    elif kind == "subexpression":
        children = node.get("children") or []
        names = []
        for at, child in enumerate(children):
            child_kind = child.get("type") if isinstance(child, dict) else None
            if child_kind == "current" and at == 0:
                continue
            if child_kind != "field":
                return None
            names.append(child.get("value"))
        if not names:
            return None
    else:
        return None
    if not all(isinstance(name, str) for name in names):
        return None
    return rfc9535_sql.sql_path(names)


def _kind(path: str) -> str:
    return f"coalesce(json_type(value, '{path}'), 'null')"


def _extract(path: str) -> str:
    return f"json_extract(value, '{path}')"


def _leaf(text: str, path: str, *params: Any) -> _Sql:
    return _Sql(text, tuple(params), 2, (path,))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _truth(path: str) -> _Tri:
    """``a`` as a condition: JMESPath's truth of the field's value (missing: ``null``)."""
    x = _extract(path)
    text = (f"{x} IS NOT NULL AND CASE json_type(value, '{path}') "
            "WHEN 'true' THEN 1 WHEN 'integer' THEN 1 WHEN 'real' THEN 1 "
            f"WHEN 'text' THEN {x} <> '' "
            f"WHEN 'array' THEN json_array_length(value, '{path}') > 0 "
            f"WHEN 'object' THEN {x} <> '{{}}' ELSE 0 END")  # json_extract gives an object minified
    return _Tri(_leaf(text, path), _FALSE, True)


def _numbers(path: str) -> str:
    return f"{_kind(path)} IN ('integer', 'real')"


def _texts(path: str) -> str:
    # `x >= ''` holds for every TEXT value and no number or NULL: an expression index serves it.
    return f"{_extract(path)} >= '' AND {_kind(path)} = 'text'"


def _equal(path: str, literal: Any) -> _Tri:
    """``path == literal``, by jmespath's ``_equals``."""
    if literal is None:
        return _Tri(_leaf(f"{_kind(path)} = 'null'", path), _FALSE, True)
    if isinstance(literal, bool):
        return _Tri(_leaf(f"{_kind(path)} = '{'true' if literal else 'false'}'", path), _FALSE, True)
    if isinstance(literal, str):
        return _Tri(_leaf(f"{_kind(path)} = 'text' AND {_extract(path)} = ?", path, literal), _FALSE, True)
    if _is_number(literal):
        if math.isnan(literal):
            return _Tri(_FALSE, _FALSE, True)  # NaN equals nothing
        if -_BIG < literal < _BIG:
            return _Tri(_leaf(f"{_numbers(path)} AND {_extract(path)} = ?", path, literal), _FALSE, True)
        # json_extract rounds integers beyond 64 bits: only the type is sure.
        return _Tri(_leaf(_numbers(path), path), _FALSE, False)
    if literal == [] and isinstance(literal, list):
        return _Tri(_leaf(f"{_kind(path)} = 'array' AND json_array_length(value, '{path}') = 0", path), _FALSE, True)
    if literal == {} and isinstance(literal, dict):
        return _Tri(_leaf(f"{_kind(path)} = 'object' AND {_extract(path)} = '{{}}'", path), _FALSE, True)
    # Any other list or object: Python's == on the decoded value (``[1] == [true]`` there);
    # not narrowed, never raises.
    return _Tri(_TRUE, _FALSE, False)


def _ordered(path: str, op: str, literal: Any) -> _Tri:
    """``path op literal`` for ``<``, ``<=``, ``>``, ``>=``: true between two numbers or two
    strings, ``null`` for other types, and Python's ``TypeError`` between a number and a string."""
    sql_op = _ORDERING[op]
    if isinstance(literal, str):
        t = _leaf(f"{_kind(path)} = 'text' AND {_extract(path)} {sql_op} ?", path, literal)
        return _Tri(t, _leaf(f"{_extract(path)} < '' AND {_numbers(path)}", path), True)
    if not _is_number(literal):  # null, true, false, a list, an object: never comparable
        return _Tri(_FALSE, _FALSE, True)
    raises = _leaf(_texts(path), path)
    if math.isnan(literal):
        return _Tri(_FALSE, raises, True)  # every order with NaN is false
    if -_BIG < literal < _BIG:
        return _Tri(_leaf(f"{_numbers(path)} AND {_extract(path)} {sql_op} ?", path, literal), raises, True)
    return _Tri(_leaf(_numbers(path), path), raises, False)


def _comparator(node: dict[str, Any]) -> _Tri:
    op = node.get("value")
    children = node.get("children") or []
    if op not in _SYMBOL or len(children) != 2:
        return _unknown(node)
    left, right = children
    if isinstance(left, dict) and left.get("type") == "literal":
        left, right, op = right, left, _FLIP[op]
    if not (isinstance(right, dict) and right.get("type") == "literal"):
        return _unknown(node)
    path = _field_path(left)
    if path is None:
        return _unknown(node)
    literal = right.get("value")
    if op == "eq":
        return _equal(path, literal)
    if op == "ne":
        equal = _equal(path, literal)
        if not equal.exact:
            return _Tri(_TRUE, _FALSE, False)
        return _Tri(_not(equal.t), _FALSE, True)
    return _ordered(path, op, literal)


def _constant(node: Any) -> bool:
    """Whether ``node`` reads nothing of the document: literals and operators on literals."""
    if not isinstance(node, dict) or node.get("type") not in _CONSTANT_TYPES:
        return False
    return all(_constant(child) for child in node.get("children") or ())


def _evaluated(node: dict[str, Any]) -> _Tri:
    """A node that reads nothing of the document, evaluated once by jmespath itself."""
    from ...query.jmespath import _visit, truthy

    try:
        value = _visit(node, None)
    except Exception:  # jmespath raises it on every row; the Python re-check raises it
        return _Tri(_FALSE, _TRUE, True)
    return _Tri(_TRUE if truthy(value) else _FALSE, _FALSE, True)


def _tri(node: Any, memo: dict[int, _Tri]) -> _Tri:
    """The rows of one condition node (see the module); ``memo`` holds the nodes translated."""
    found = memo.get(id(node))
    if found is None:
        found = memo[id(node)] = _translate(node, memo)
    return found


def _translate(node: Any, memo: dict[int, _Tri]) -> _Tri:
    if not isinstance(node, dict):
        return _unknown(node)
    kind = node.get("type")
    children = node.get("children") or []
    if _constant(node):
        return _evaluated(node)
    if kind == "comparator":
        found = _comparator(node)
    elif kind in ("and_expression", "or_expression") and len(children) == 2:
        x, y = _tri(children[0], memo), _tri(children[1], memo)
        if kind == "and_expression":
            # X && Y: false where X is; the right side is read only where X is true.
            found = _Tri(_and(x.t, y.t), _or(x.e, _and(x.t, y.e)), x.exact and y.exact)
        elif x.exact:
            # X || Y: true where X is; the right side is read only where X is false.
            found = _Tri(_or(x.t, _and(_not(x.e), y.t)), _or(x.e, _and(_not(x.t), y.e)), y.exact)
        else:
            found = _Tri(_or(x.t, y.t), _or(x.e, y.e), False)
    elif kind == "not_expression" and len(children) == 1:
        x = _tri(children[0], memo)
        found = _Tri(_and(_not(x.t), _not(x.e)), x.e, True) if x.exact else _Tri(_TRUE, x.e, False)
    else:
        path = _field_path(node)
        found = _truth(path) if path is not None else _unknown(node)
    if max(found.t.depth, found.e.depth) > MAX_DEPTH or len(found.t.text) + len(found.e.text) > MAX_TEXT:
        return _unknown(node)
    return found


def _passing(node: Any, memo: dict[int, _Tri]) -> _Sql:
    """The rows on which jmespath accepts ``node`` or raises (an upper bound), as a conjunction
    where it can be: ``X && Y`` passes where X passes and (X raises or Y passes)."""
    if isinstance(node, dict) and not _constant(node):
        kind = node.get("type")
        children = node.get("children") or []
        if kind == "and_expression" and len(children) == 2:
            left, right = _passing(children[0], memo), _passing(children[1], memo)
            found = _and(left, _or(_tri(children[0], memo).e, right))
        elif kind == "or_expression" and len(children) == 2:
            found = _or(_passing(children[0], memo), _passing(children[1], memo))
        else:
            found = None
        if found is not None and found.depth <= MAX_DEPTH and len(found.text) <= MAX_TEXT:
            return found
    tri = _tri(node, memo)
    return _or(tri.t, tri.e)


def text(node: Any) -> str:
    """``node`` written back in JMESPath (a part that is not pushed down as ``...``)."""
    if not isinstance(node, dict):
        return "..."
    kind = node.get("type")
    children = node.get("children") or []
    path = _field_path(node)
    if path is not None:
        return "@" if path == "$" else path[2:]
    if kind == "literal":
        value = node.get("value")
        if isinstance(value, str):
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        try:
            return f"`{json.dumps(value, allow_nan=True)}`"
        except (TypeError, ValueError):  # pragma: no cover - a literal came from JSON
            return "`...`"
    if kind == "comparator" and len(children) == 2:
        return f"{text(children[0])} {_SYMBOL.get(str(node.get('value')), '?')} {text(children[1])}"
    if kind == "and_expression" and len(children) == 2:
        return f"({text(children[0])} && {text(children[1])})"
    if kind == "or_expression" and len(children) == 2:
        return f"({text(children[0])} || {text(children[1])})"
    if kind == "not_expression" and len(children) == 1:
        return f"!{text(children[0])}"
    return "..."


def conditions(node: Any) -> tuple[list[Condition], bool]:
    """The SQL conditions of a filter projection's condition ``node`` (jmespath's AST), ANDed,
    and whether they decide it exactly (then no row needs the Python re-check).  No
    condition: SQL cannot narrow the filter."""
    memo: dict[int, _Tri] = {}
    try:
        passing = _passing(node, memo)
        found = _tri(node, memo)
    except RecursionError:  # a condition nested deeper than Python's stack
        return [], False
    if passing.text == "1" or passing.depth > MAX_DEPTH or len(passing.text) > MAX_TEXT:
        return [], False
    exact = found.exact and found.e.text == "0"
    sure = found.t if found.exact else _FALSE
    condition = Condition(passing.text, list(passing.params), text=text(node),
                          path=passing.paths[0] if passing.paths else "", exact=exact,
                          sure=sure.text, sure_params=list(sure.params), paths=passing.paths)
    return [condition], exact


def where(table: Any, parsed: Any) -> tuple[list[Condition], bool]:
    """The SQL conditions of a parsed JMESPath query (:class:`kvlite.query.jmespath.Parsed`) on
    ``table``: its filter's, for a row-wise filter projection on a JSON collection; else none."""
    if not table.serializer.json or not parsed.rowwise or parsed.condition is None:
        return [], False
    return conditions(parsed.condition)


def indexed(table: Any, found: list[Condition]) -> list[str]:
    """The paths of ``table``'s expression indexes that the conditions ``found`` read."""
    if not found:
        return []
    paths = {path for condition in found for path in condition.paths}
    return sorted(paths & set(table.indexes()))
