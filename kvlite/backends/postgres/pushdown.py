"""JSONPath filters as PostgreSQL conditions: jsonb SQL that keeps every row Python would match.

:func:`compile_expression` turns one jsonpath-ng filter expression
(``@.age > 30``) into a :class:`PgCondition` over the ``doc`` jsonb column: a
``jsonb_path_exists`` call in PostgreSQL's SQL/JSON path language, with every
literal passed in its ``vars`` parameter (never in the SQL or path text), and,
on a path with an index, the same superset as ranges of ``doc #> '{a,b}'``
that its btree index answers.  The condition may let extra rows through
(Python re-checks every one) but never stops a row Python would match; numeric
bounds are exact decimals widened outwards (:func:`numeric_bounds`).
"""

from __future__ import annotations

import decimal
import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ...query import jsonpath as _jp
from ...query.jsonpath import field_chain

__all__ = ["PgCondition", "compile_expression", "numeric_bounds", "index_expr", "jsonpath_string", "json_number",
           "json_string", "BELOW_NUMBERS"]


@dataclass
class PgCondition:
    """A SQL condition over a row (``doc``) that every document Python would match satisfies."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    text: str = ""


#: Widening of numeric bounds: a float's JSON text may differ from its binary value by half an ulp
#: (2**-53 of it; for subnormals up to ~2.5e-324 absolute): 2**-40 relative plus 1e-300 is far outside.
_DECIMALS = decimal.Context(prec=4000, Emax=100000, Emin=-100000)
_WIDEN = _DECIMALS.power(Decimal(2), -40)
_WIDEN_ABS = Decimal("1e-300")
_FLOOR = decimal.Context(prec=24, rounding=decimal.ROUND_FLOOR, Emax=100000, Emin=-100000)
_CEILING = decimal.Context(prec=24, rounding=decimal.ROUND_CEILING, Emax=100000, Emin=-100000)
BELOW_NUMBERS = "'-1e309'::jsonb"  # every string sorts below it; no JSON number orjson writes does


def jsonpath_string(text: str) -> str | None:
    """``text`` as a SQL/JSON path string literal (``None`` if it holds NUL, which jsonpath cannot)."""
    if "\x00" in text:
        return None
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_number(value: Decimal) -> str:
    """A JSON number for a finite decimal (plain digits when short, else exponent form)."""
    return format(value, "f") if abs(value.adjusted()) < 30 else format(value, "e")


def json_string(text: str) -> str | None:
    if "\x00" in text:
        return None  # jsonb cannot hold \u0000
    return json.dumps(text, ensure_ascii=False)


def index_expr(sql_path: str) -> str:
    """The indexed SQL expression for a plain field path (``$.a.b`` -> ``(doc #> '{a,b}'::text[])``).

    ``sql_path`` holds only ``[A-Za-z0-9_.$]`` (see :func:`kvlite.query.jsonpath.sql_path`)."""
    return "(doc #> '{" + ",".join(sql_path[2:].split(".")) + "}'::text[])"


def _py_true(op: str, literal: Any, value: Any) -> bool:
    """jsonpath-ng's comparison of one stored ``value`` (int() first for an int literal)."""
    from jsonpath_ng.ext.filter import OPERATOR_MAP  # type: ignore[import-untyped]

    try:
        if type(literal) is int:
            value = int(value)
        return bool(OPERATOR_MAP[op](value, literal))
    except (TypeError, ValueError):
        return False


def compile_expression(expr: Any, n: int, indexed: set[str], string_order: bool = True) -> PgCondition | None:
    """A superset PostgreSQL condition for one jsonpath-ng filter expression, or ``None``.

    The rules follow :func:`kvlite.query.jsonpath.compile_expression` (Python
    re-checks every row, so the condition may let extra rows through but must
    never stop a row Python would match):

    * the target must be a chain of single field names (``@.a.b``); it becomes
      the SQL/JSON path ``$."a"."b"`` (lax mode: arrays on the way are
      unwrapped, which only adds rows);
    * no operator, ``!=`` and ``=~``: "the field exists";
    * int literal ``L``: the engine compares ``int(value)``, so every string
      passes, numbers pass in the range widened by 1 (``int()`` truncates),
      and ``true``/``false`` pass when ``int()`` of them compares true;
    * float / bool literal: numbers in the range, ``true``/``false`` as 1/0;
    * str literal: ``==`` is string equality; ordering compares code points
      (PostgreSQL 13+; before that only "is a string");
    * numeric bounds are exact decimals widened by 2**-40 of their size, so a
      float whose JSON text is off its binary value by half an ulp still passes.

    Literals travel in the ``vars`` jsonb parameter (``$lo0``, ``$s0``), never
    inside SQL or path text.  Documents stored without ``doc`` (their JSON
    holds ``\\u0000``) always pass.  When ``indexed`` holds the path, the same
    superset is also written as ranges of ``doc #> '{a,b}'`` that its btree
    index can answer.
    """
    fields = field_chain(expr.target)
    if fields is None:
        return None
    quoted = [jsonpath_string(name) for name in fields]
    if any(q is None for q in quoted):
        return None
    path = "$" + "".join("." + q for q in quoted)  # type: ignore[operator]
    op, literal = expr.op, expr.value
    variables: dict[str, str] = {}
    arms: list[str] = []  # index ranges over X = doc #> '{a,b}', OR'ed
    preds: list[str] = []  # SQL/JSON path predicates on @, OR'ed
    shown = ".".join(fields)
    if op is None or op in ("!=", "=~"):
        preds, arms, text = [], ["X IS NOT NULL"], f"{shown} exists"
    elif type(literal) is str:
        encoded = json_string(literal)
        text = f"{shown} {op} {literal!r}"
        if op in ("=", "==") and encoded is not None:
            variables[f"s{n}"] = encoded
            preds, arms = [f"@ == $s{n}"], [f"X = %(ix_s{n})s::jsonb"]
        elif encoded is not None and string_order:
            variables[f"s{n}"] = encoded
            preds, arms = [f"@ {op} $s{n}"], [f"(X >= '\"\"'::jsonb AND X < {BELOW_NUMBERS})"]
        else:
            preds, arms = ['@.type() == "string"'], [f"(X >= '\"\"'::jsonb AND X < {BELOW_NUMBERS})"]
    elif type(literal) in (int, float, bool):
        if type(literal) is float and not math.isfinite(literal):
            return None
        bounds = numeric_bounds(op, literal)
        if bounds is None:
            return None
        lo, hi = bounds
        text = f"{'int(' + shown + ')' if type(literal) is int else shown} {op} {literal!r}"
        numeric = []
        if lo is not None:
            variables[f"lo{n}"] = json_number(lo)
            numeric.append(f"@ >= $lo{n}")
        if hi is not None:
            variables[f"hi{n}"] = json_number(hi)
            numeric.append(f"@ <= $hi{n}")
        preds.append("(" + " && ".join(numeric) + ")")
        if lo is not None and hi is not None:
            arms.append(f"(X >= %(ix_lo{n})s::jsonb AND X <= %(ix_hi{n})s::jsonb)")
        elif lo is not None:
            arms.append(f"X >= %(ix_lo{n})s::jsonb")
        else:
            arms.append(f"X <= %(ix_hi{n})s::jsonb")
        if type(literal) is int:
            preds.append('@.type() == "string"')  # int(" 42 ") == 42: every string may match
            arms.append(f"(X >= '\"\"'::jsonb AND X < {BELOW_NUMBERS})")
        for flag in (True, False):
            if _py_true(op, literal, flag):
                preds.append(f"@ == {'true' if flag else 'false'}")
                arms.append(f"X = '{'true' if flag else 'false'}'::jsonb")
    else:
        return None
    if preds:
        path = f"{path} ? ({' || '.join(preds)})"
    params: dict[str, Any] = {f"path{n}": path, f"vars{n}": "{" + ", ".join(
        f'"{name}": {value}' for name, value in variables.items()) + "}"}
    sql = f"coalesce(jsonb_path_exists(doc, %(path{n})s::jsonpath, %(vars{n})s::jsonb, true), true)"
    sql_path = _jp.sql_path(expr.target)
    if sql_path is not None and sql_path in indexed:
        x = index_expr(sql_path)
        for name, value in variables.items():
            params[f"ix_{name}"] = value
        sql = f"(({' OR '.join(arm.replace('X', x) for arm in arms)}) AND {sql})"
        text += " (index)"
    return PgCondition(f"(doc IS NULL OR {sql})", params, text)


def numeric_bounds(op: str, literal: Any) -> tuple[Decimal | None, Decimal | None] | None:
    """Widened inclusive ``(low, high)`` bounds (``None``: open) holding every number that can match."""
    if op not in ("=", "==", "<", "<=", ">", ">="):
        return None
    lo: Decimal | None
    hi: Decimal | None
    if type(literal) is int:
        centre = Decimal(literal)
        lo, hi = centre - 1, centre + 1  # int() truncates towards zero
        if op in ("<", "<="):
            lo = None
        elif op in (">", ">="):
            hi = None
    else:
        centre = Decimal(float(literal)) if type(literal) is float else Decimal(int(literal))
        lo = hi = centre
        if op in ("<", "<="):
            lo = None
        elif op in (">", ">="):
            hi = None
    with decimal.localcontext(_DECIMALS):
        if lo is not None:
            lo = _FLOOR.plus(lo - abs(lo) * _WIDEN - _WIDEN_ABS)  # rounded outwards: still a superset
        if hi is not None:
            hi = _CEILING.plus(hi + abs(hi) * _WIDEN + _WIDEN_ABS)
    return lo, hi
