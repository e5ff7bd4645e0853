"""RFC 9535 filters as PostgreSQL conditions: the push-down of the default JSONPath.

:func:`conditions` turns a filter on the collection's documents
(``$[?@.age > 30 && @.city == 'Oslo']``) into conditions over the ``doc``
jsonb column that every document the filter selects meets: each comparison
of a plain field chain (``@.a.b``) with a literal becomes a
``jsonb_path_exists`` call in PostgreSQL's SQL/JSON path language, with its
literals in the ``vars`` parameter (never in SQL or path text).  They are
supersets, never exact: PostgreSQL's lax mode looks inside arrays on the way,
and numbers are compared within bounds widened outwards
(:func:`~kvlite.backends.postgres.pushdown.numeric_bounds`), so Python
re-checks every row PostgreSQL lets through.

Pushed: ``==``, ``<``, ``<=``, ``>``, ``>=`` with a number (``@.type() ==
"number"``: no coercion from strings or booleans), a string (equality; order
by code point on PostgreSQL 13+), ``true``/``false``/``null`` (equality);
existence tests; ``&&`` (either side alone when only one is pushable) and
``||`` (when both are).  Left to Python: ``!=``, ``!``, functions, and
comparisons between two queries.
"""

from __future__ import annotations

import math
import re
from typing import Any

from jsonpath_rfc9535.filter_expressions import (
    BooleanLiteral,
    ComparisonExpression,
    FilterExpression,
    FloatLiteral,
    IntegerLiteral,
    LogicalExpression,
    NullLiteral,
    RelativeFilterQuery,
    StringLiteral,
)

from ...query.rfc9535 import field_path
from .pushdown import (
    BELOW_NUMBERS as _BELOW_NUMBERS,
    PgCondition,
    index_expr,
    json_number,
    json_string,
    jsonpath_string,
    numeric_bounds,
)

__all__ = ["conditions"]

_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "==", "!=": "!="}


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Builder:
    """Conditions of one filter, numbering their parameters apart."""

    def __init__(self, string_order: bool, indexed: set[str]) -> None:
        self.string_order = string_order
        self.indexed = indexed
        self.n = 0

    def path(self, expr: Any) -> tuple[str, str, str | None] | None:
        """The SQL/JSON path (``$."a"."b"``) of a singular relative query of names, its text, and
        the indexed expression on it (``doc #> '{a,b}'``) when an index covers it."""
        if not isinstance(expr, RelativeFilterQuery):
            return None
        parts = field_path(expr.query)
        if not parts or not all(isinstance(part, str) for part in parts):
            return None
        quoted = [jsonpath_string(part) for part in parts]  # type: ignore[arg-type]
        if any(q is None for q in quoted):
            return None
        plain = "$." + ".".join(parts) if all(_PLAIN.fullmatch(p) for p in parts) else None  # type: ignore[arg-type]
        index = index_expr(plain) if plain is not None and plain in self.indexed else None
        return "$" + "".join("." + q for q in quoted), str(expr), index  # type: ignore[operator]

    def exists(self, path: str, predicate: str | None, variables: dict[str, str], text: str,
               index: str | None = None, arm: str | None = None) -> PgCondition:
        """``path ? (predicate)`` holds; with an index on the path, also ``arm`` (a condition on
        ``X``, the indexed expression, that the same documents meet) so the index can serve it."""
        n = self.n
        self.n += 1
        full = path if predicate is None else f"{path} ? ({predicate})"
        params: dict[str, Any] = {
            f"rpath{n}": full,
            f"rvars{n}": "{" + ", ".join(f'"{name}": {value}' for name, value in variables.items()) + "}"}
        sql = f"coalesce(jsonb_path_exists(doc, %(rpath{n})s::jsonpath, %(rvars{n})s::jsonb, true), true)"
        if index is not None and arm is not None:
            for name, value in variables.items():
                params[f"rix_{name}"] = value
            sql = f"({arm.replace('X', index)} AND {sql})"
            text += " (index)"
        return PgCondition(f"(doc IS NULL OR {sql})", params, text)

    def condition(self, expr: Any) -> PgCondition | None:
        if isinstance(expr, LogicalExpression):
            left, right = self.condition(expr.left), self.condition(expr.right)
            if expr.operator == "&&":
                if left is None or right is None:
                    return left or right
                glue = "AND"
            elif left is None or right is None:
                return None
            else:
                glue = "OR"
            return PgCondition(f"({left.sql} {glue} {right.sql})", {**left.params, **right.params},
                               f"({left.text} {expr.operator} {right.text})")
        if isinstance(expr, RelativeFilterQuery):
            found = self.path(expr)
            if found is None:
                return None
            return self.exists(found[0], None, {}, f"{found[1]} exists", found[2], "X IS NOT NULL")
        if isinstance(expr, ComparisonExpression):
            return self.comparison(expr)
        return None

    def comparison(self, expr: ComparisonExpression) -> PgCondition | None:
        literals = (BooleanLiteral, StringLiteral, IntegerLiteral, FloatLiteral, NullLiteral)
        target, op, literal = expr.left, expr.operator, expr.right
        if not isinstance(literal, literals):
            target, op, literal = expr.right, _FLIP[op], expr.left
        if not isinstance(literal, literals) or op == "!=":
            return None
        found = self.path(target)
        if found is None:
            return None
        path, shown, index = found
        value, n, text = literal.value, self.n, f"{shown} {op} {literal}"
        if value is None or isinstance(value, bool):
            if op in ("<", ">"):
                return PgCondition("false", {}, text)
            word = "null" if value is None else str(value).lower()
            return self.exists(path, f"@ == {word}", {}, text, index, f"X = '{word}'::jsonb")
        if isinstance(value, str):
            encoded = json_string(value)
            if encoded is None:
                return None
            strings = f"(X >= '\"\"'::jsonb AND X < {_BELOW_NUMBERS})"  # jsonb orders strings before numbers
            if op == "==":
                return self.exists(path, f"@ == $s{n}", {f"s{n}": encoded}, text, index,
                                   f"X = %(rix_s{n})s::jsonb")
            if self.string_order:
                return self.exists(path, f"@ {op} $s{n}", {f"s{n}": encoded}, text, index, strings)
            return self.exists(path, '@.type() == "string"', {}, text, index, strings)
        if isinstance(value, float) and not math.isfinite(value):
            return None
        # Widened around the literal (as a float, so no int() truncation), numbers only.
        bounds = numeric_bounds(op, float(value) if abs(value) < 2**53 else value)
        if bounds is None:
            return None
        lo, hi = bounds
        tests, variables, arms = ['@.type() == "number"'], {}, []
        if lo is not None:
            variables[f"lo{n}"] = json_number(lo)
            tests.append(f"@ >= $lo{n}")
            arms.append(f"X >= %(rix_lo{n})s::jsonb")
        if hi is not None:
            variables[f"hi{n}"] = json_number(hi)
            tests.append(f"@ <= $hi{n}")
            arms.append(f"X <= %(rix_hi{n})s::jsonb")
        # jsonb orders every number between the strings and the booleans: a range on X holds
        # numbers only (one bound alone: bound it by the other side of the numbers too).
        if hi is None:
            arms.append("X < 'false'::jsonb")
        if lo is None:
            arms.append(f"X >= {_BELOW_NUMBERS}")
        return self.exists(path, " && ".join(tests), variables, text, index, "(" + " AND ".join(arms) + ")")


def conditions(expression: FilterExpression, string_order: bool, indexed: set[str]) -> list[PgCondition]:
    """Superset conditions for an RFC 9535 filter on the documents (empty: nothing to push);
    comparisons on a path in ``indexed`` (plain field paths) are also written for its index."""
    found = _Builder(string_order, indexed).condition(expression.expression)
    return [] if found is None else [found]
