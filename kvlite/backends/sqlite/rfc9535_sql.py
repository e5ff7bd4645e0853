"""RFC 9535 filters as SQLite conditions: the push-down of the default JSONPath.

:func:`conditions` turns a filter on the collection's documents
(``$[?@.age > 30 && @.city == 'Oslo']``) into SQL conditions over the
``value`` column that every document the filter selects meets.  SQL may let
more rows through than the filter selects, never fewer; a condition is
*exact* when it holds for precisely the documents the filter selects, and
only when all of a filter's conditions are exact does the engine skip the
Python re-check of each row.

The standard compares without coercion, and ``json_extract`` alone does not:
it gives JSON ``true`` as ``1`` and an integer beyond 64 bits as a rounded
REAL.  So every comparison is guarded by ``json_type``:

========================  ============================================================
``@.a == 1``              ``json_type(value,'$.a') IN ('integer','real') AND json_extract(value,'$.a') = 1``
``@.a == 'x'``            ``json_type(...) = 'text' AND json_extract(...) = 'x'`` (code-point order: BINARY)
``@.a == true``           ``json_type(...) = 'true'`` (``null``, ``false`` likewise)
``@.a != v``              ``NOT`` of the exact ``==``: a missing ``a`` is ``!=`` everything
``@.a < v`` (and co.)     numbers with numbers, strings with strings; never true of other types
``@.a`` (existence)       ``json_type(...) IS NOT NULL``
``length(@.a) op n``      characters of text, ``json_array_length``, members of ``json_each``
``match/search(@.a, r)``  the standard's function itself, registered in SQLite (:func:`register`):
                          the text is read from the row, the document is never decoded
``&&``, ``||``, ``!``     ``AND``, ``OR`` (both sides needed), ``NOT`` (of an exact condition)
========================  ============================================================

A number at least 2**63 in magnitude (as a literal, or stored and read as a
rounded REAL) is compared with a widened operator (``<`` as ``<=``) and is
never exact.  Paths are pushed when they are chains of plain names
(``[A-Za-z_][A-Za-z0-9_]*``) and indexes, so they can be written into the SQL
text, where an expression index on ``json_extract(value, path)``
(:meth:`Collection.create_index <kvlite.Collection.create_index>`) serves
them.  Everything else is left to Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import apsw
from jsonpath_rfc9535.filter_expressions import (
    BooleanLiteral,
    ComparisonExpression,
    FilterExpression,
    FloatLiteral,
    FunctionExtension,
    IntegerLiteral,
    LogicalExpression,
    NullLiteral,
    PrefixExpression,
    RelativeFilterQuery,
    StringLiteral,
)
from jsonpath_rfc9535.function_extensions.match import Match
from jsonpath_rfc9535.function_extensions.search import Search

from ...query.rfc9535 import field_path

__all__ = ["Condition", "conditions", "sql_path", "register", "MAX_CONDITIONS", "MAX_DEPTH"]

#: SQLite's limit on the depth of an expression tree is 1000; a filter with more conditions
#: than this is narrowed by its first ones only, and a part of it nested deeper than
#: ``MAX_DEPTH`` ``&&``/``||``/``!`` is left to Python.
MAX_CONDITIONS = 64
MAX_DEPTH = 200

_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BIG = float(1 << 63)  # from here on, json_extract's numbers may be rounded
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "==", "!=": "!="}
_WIDEN = {"<": "<=", ">": ">=", "<=": "<=", ">=": ">=", "==": "="}
_SQL_OP = {"<": "<", ">": ">", "<=": "<=", ">=": ">=", "==": "="}


@dataclass
class Condition:
    """A SQL condition over ``value`` that every selected document meets (see the module);
    ``path`` is the first JSON path it reads (to tell whether an index serves it)."""

    sql: str
    params: list[Any] = field(default_factory=list)
    text: str = ""
    path: str = ""
    exact: bool = False


def sql_path(parts: list[str | int] | None) -> str | None:
    """The SQLite JSON path of a field chain (``["a", 0]`` -> ``$.a[0]``), or ``None`` when a
    name is not plain (it could not be written into SQL as it is)."""
    if parts is None:
        return None
    out = "$"
    for part in parts:
        if isinstance(part, str):
            if not _SAFE_NAME.fullmatch(part):
                return None
            out += "." + part
        else:
            out += f"[{part}]" if part >= 0 else f"[#{part}]"
    return out


def conditions(expression: FilterExpression, table: str) -> tuple[list[Condition], bool]:
    """The SQL conditions of a filter on the documents of ``table`` (its SQL name; its top-level
    ``&&`` terms each one, ANDed) and whether they are exact together (no Python re-check)."""
    terms: list[Any] = []
    _conjuncts(expression.expression, terms)
    out: list[Condition] = []
    exact = True
    for term in terms:
        found = _condition(term, table)
        if found is None:
            exact = False
            continue
        if len(out) == MAX_CONDITIONS:
            exact = False
            break
        found.text = _text(term)
        out.append(found)
        exact = exact and found.exact
    return out, exact and bool(out)


def _text(term: Any) -> str:
    return FilterExpression(token=None, expression=term).__str__()  # type: ignore[arg-type]


def _conjuncts(expr: Any, into: list[Any]) -> None:
    if isinstance(expr, LogicalExpression) and expr.operator == "&&":
        _conjuncts(expr.left, into)
        _conjuncts(expr.right, into)
    else:
        into.append(expr)


def _path_of(expr: Any) -> str | None:
    """The SQL path of a singular relative query (``@.a.b``, or ``value(@.a.b)``)."""
    if isinstance(expr, FunctionExtension) and expr.name == "value" and len(expr.args) == 1:
        expr = expr.args[0]
    if isinstance(expr, RelativeFilterQuery):
        return sql_path(field_path(expr.query))
    return None


def _literal(expr: Any) -> tuple[bool, Any]:
    if isinstance(expr, (BooleanLiteral, StringLiteral, IntegerLiteral, FloatLiteral, NullLiteral)):
        return True, expr.value
    return False, None


def _both(left: Condition, right: Condition, glue: str) -> Condition:
    return Condition(f"({left.sql}) {glue} ({right.sql})", left.params + right.params,
                     path=left.path or right.path, exact=left.exact and right.exact)


def _condition(expr: Any, table: str, depth: int = 0) -> Condition | None:
    """An SQL condition for one filter expression, or ``None`` (not narrowed in SQL)."""
    if depth > MAX_DEPTH:
        return None  # left to Python: SQLite refuses expressions nested 1000 deep
    if isinstance(expr, LogicalExpression):
        left, right = _condition(expr.left, table, depth + 1), _condition(expr.right, table, depth + 1)
        if expr.operator == "&&":
            if left is None or right is None:
                found = left or right
                if found is not None:
                    found.exact = False
                return found
            return _both(left, right, "AND")
        if left is None or right is None:
            return None
        return _both(left, right, "OR")
    if isinstance(expr, PrefixExpression) and expr.operator == "!":
        inner = _condition(expr.right, table, depth + 1)
        if inner is None or not inner.exact:
            return None
        # NOT of a condition that may be NULL (a missing field) must be true there.
        return Condition(f"NOT coalesce(({inner.sql}), 0)", inner.params, path=inner.path, exact=True)
    if isinstance(expr, RelativeFilterQuery):  # an existence test
        if not expr.query.segments:
            return Condition("1", exact=True)
        path = _path_of(expr)
        if path is None:
            return None
        return Condition(f"json_type(value, '{path}') IS NOT NULL", path=path, exact=True)
    if isinstance(expr, FunctionExtension) and expr.name in ("match", "search") and len(expr.args) == 2:
        path = _path_of(expr.args[0])
        is_literal, pattern = _literal(expr.args[1])
        if path is None or not is_literal or not isinstance(pattern, str):
            return None
        return Condition(f"json_type(value, '{path}') = 'text' AND "
                         f"kvlite_rfc9535_{expr.name}(json_extract(value, '{path}'), ?)", [pattern],
                         path=path, exact=True)
    if isinstance(expr, ComparisonExpression):
        return _comparison(expr, table)
    return None


def _comparison(expr: ComparisonExpression, table: str) -> Condition | None:
    left, op, right = expr.left, expr.operator, expr.right
    is_literal, value = _literal(right)
    if not is_literal:
        is_literal, value = _literal(left)
        left, op = right, _FLIP[op]
    if not is_literal:
        return None
    if isinstance(left, FunctionExtension) and left.name == "length" and len(left.args) == 1:
        return _length(left, op, value, table)
    path = _path_of(left)
    if path is None:
        return None
    if op == "!=":
        equal = _comparison_with(path, "==", value)
        if equal is None or not equal.exact:
            return None
        return Condition(f"NOT coalesce(({equal.sql}), 0)", equal.params, path=path, exact=True)
    return _comparison_with(path, op, value)


def _comparison_with(path: str, op: str, value: Any) -> Condition | None:
    """``@.path op value`` for a literal ``value`` and ``op`` other than ``!=``."""
    kind = f"json_type(value, '{path}')"
    extract = f"json_extract(value, '{path}')"
    if value is None or isinstance(value, bool):
        # null, true and false equal only themselves and are ordered against nothing.
        if op in ("<", ">"):
            return Condition("0", path=path, exact=True)
        name = "null" if value is None else ("true" if value else "false")
        return Condition(f"{kind} = '{name}'", path=path, exact=True)
    if isinstance(value, str):
        return Condition(f"{kind} = 'text' AND {extract} {_SQL_OP[op]} ?", [value], path=path, exact=True)
    if isinstance(value, (int, float)):
        if value != value:  # pragma: no cover - the standard has no NaN literal
            return None
        guard = f"{kind} IN ('integer', 'real')"
        if -_BIG < value < _BIG:
            return Condition(f"{guard} AND {extract} {_SQL_OP[op]} ?", [value], path=path, exact=True)
        # Both sides may be rounded to the same REAL: widen, and let Python decide.
        return Condition(f"{guard} AND {extract} {_WIDEN[op]} ?", [float(value)], path=path, exact=False)
    return None


def _length(function: FunctionExtension, op: str, value: Any, table: str) -> Condition | None:
    """``length(@.path) op n``: the length of a string, an array or an object; ``Nothing``
    (compared with a number: only ``!=`` holds) for anything else.  (A string's length is
    counted by :func:`register`'s function: SQLite's ``length()`` stops at a NUL character.
    Inside the subquery, a bare ``value`` would be ``json_each``'s own column: the table's
    is named in full.)"""
    path = _path_of(function.args[0])
    if path is None or isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) >= _BIG:
        return None
    length = (f"CASE json_type(value, '{path}') WHEN 'text' THEN kvlite_rfc9535_length(json_extract(value, '{path}')) "
              f"WHEN 'array' THEN json_array_length(value, '{path}') "
              f"WHEN 'object' THEN (SELECT count(*) FROM json_each({table}.value, '{path}')) END")
    if op == "!=":
        return Condition(f"{length} IS NOT ?", [value], path=path, exact=True)
    if op == "==":
        return Condition(f"{length} IS ?", [value], path=path, exact=True)
    return Condition(f"{length} {_SQL_OP[op]} ?", [value], path=path, exact=True)


_MATCH, _SEARCH = Match(), Search()


def register(conn: apsw.Connection) -> None:
    """Register the standard's ``match`` and ``search`` (the reference implementation's own,
    I-Regexp checks included), and the length of a string in characters (NUL included), as
    SQLite functions on ``conn``."""

    # (apsw calls a scalar function with the SQL arguments as positional values.)
    def match(*args: Any) -> int:
        text, pattern = args
        return int(isinstance(text, str) and _MATCH(text, pattern))

    def search(*args: Any) -> int:
        text, pattern = args
        return int(isinstance(text, str) and _SEARCH(text, pattern))

    def length(*args: Any) -> int | None:
        (text,) = args
        return len(text) if isinstance(text, str) else None

    conn.create_scalar_function("kvlite_rfc9535_length", length, 1, deterministic=True)
    conn.create_scalar_function("kvlite_rfc9535_match", match, 2, deterministic=True)
    conn.create_scalar_function("kvlite_rfc9535_search", search, 2, deterministic=True)
