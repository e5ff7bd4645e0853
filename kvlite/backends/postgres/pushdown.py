"""JSONPath filters as PostgreSQL conditions: the jsonb helpers RFC 9535's push-down builds on.

:mod:`kvlite.backends.postgres.rfc9535_sql` turns the default language's
filters into conditions over the ``doc`` jsonb column with these helpers:
:class:`PgCondition`, literals as SQL/JSON path strings and JSON numbers
(:func:`jsonpath_string`, :func:`json_number`, :func:`json_string`), the indexed
expression of a plain field path (:func:`index_expr`), and numeric bounds that
are exact decimals widened outwards (:func:`numeric_bounds`).  A condition may
let extra rows through (Python re-checks every one) but never stops a row
Python would match.  jsonpath-ng's dialect is not pushed down (its filters run
in Python: :mod:`kvlite.query.jsonpath`)."""

from __future__ import annotations

import decimal
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["PgCondition", "numeric_bounds", "index_expr", "jsonpath_string", "json_number",
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

    ``sql_path`` holds only ``[A-Za-z0-9_.$]`` (see :func:`kvlite.query.fields.plain_field`)."""
    return "(doc #> '{" + ",".join(sql_path[2:].split(".")) + "}'::text[])"


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
