"""JSONPath (jsonpath-ng's extended parser) over a collection: parse, plan, push down, evaluate.

The collection is seen as the mapping ``{view_key: document}`` in insertion
order (see :func:`kvlite.query.view_key`).  kvlite's answer is, by definition,
:func:`evaluate` run on that mapping loaded in memory; the planner computes the
same answer without loading it.

Adapter fixes (jsonpath-ng 1.x misbehaves on these; kvlite applies the fixes
in :func:`evaluate` and the streaming planner alike):

* A comparison whose operands cannot be compared (``None > 3``, ``[1] < 2``,
  ``"a" > 1.5``, an infinite float against an int literal) is false for that
  document instead of raising ``TypeError`` (or ``OverflowError``) out of the
  whole query.
* ``[n]`` and slices on an object (and so on the root mapping) index its
  values in order, as the engine's own filter ``[?(...)]`` already does; the
  engine raised ``KeyError``.  So ``$[0]`` is the first document and
  ``$[-1]`` the last.  On a list, a tuple or a string ``[n]`` is the engine's
  own (an element, a character); out of range, or on a number, it matches
  nothing instead of raising.
* A filter ``[?(...)]`` on an object selects among its values without
  writing anything back: jsonpath-ng 1.8 replaced the object *in the data*
  by the list of its values, so a later part of the same path (``($.*[?(@)])
  | ($.a)``) saw altered documents and the caller's dict was changed.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Iterator

from jsonpath_ng import jsonpath as jp
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import filter as jp_filter
from jsonpath_ng.ext.parser import ExtendedJsonPathParser

from ..errors import QuerySyntaxError
from .failures import engine_failure

__all__ = ["parse", "evaluate", "plan", "Plan", "sql_path"]


# -- adapter fixes -------------------------------------------------------------------


class _SafeExpression(jp_filter.Expression):
    """A filter comparison that is false, not an error, for incomparable operands (the engine's
    own ``TypeError`` and the like; an exception of other code, such as a signal handler or a
    pickled object's ``__lt__``, passes through)."""

    def find(self, datum: Any) -> list[Any]:
        try:
            return super().find(datum)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:  # int(inf): OverflowError
            if not engine_failure(exc):
                raise
            return []


class _MappingIndex(jp.Index):
    """``[n]``: on an object, the n-th value (like the engine's filter); on a list, as before."""

    def _find_base(self, datum: Any, create: bool) -> list[Any]:
        datum = jp.DatumInContext.wrap(datum)
        value = datum.value
        if isinstance(value, dict):
            keys = list(value)
            out = []
            for index in self.indices:
                if -len(keys) <= index < len(keys):
                    key = keys[index]
                    out.append(jp.DatumInContext(value[key], path=jp.Fields(key), context=datum))
            return out
        if isinstance(value, (list, tuple, str)):  # tuples: from pickle or msgpack-free serializers
            return [jp.DatumInContext(value[index], path=jp.Index(index), context=datum)
                    for index in self.indices if -len(value) <= index < len(value)]
        return []


class _MappingSlice(jp.Slice):
    """``[a:b]`` / ``[*]``: on an object, a slice of its values (the engine wrapped it in a list)."""

    def find(self, datum: Any) -> list[Any]:
        datum = jp.DatumInContext.wrap(datum)
        value = datum.value
        if isinstance(value, dict):
            keys = list(value)[self.start:self.end:self.step]
            return [jp.DatumInContext(value[key], path=jp.Fields(key), context=datum) for key in keys]
        return super().find(datum)


class _ObjectFilter(jp_filter.Filter):
    """``[?(...)]``: the engine's filter, minus its write-back of an object's values into the data."""

    def find(self, datum: Any) -> Any:
        if not self.expressions:
            return datum
        datum = jp.DatumInContext.wrap(datum)
        value = datum.value
        if isinstance(value, dict):
            items = [(jp.Fields(key), item) for key, item in value.items()]
        elif isinstance(value, list):
            items = [(jp.Index(i), item) for i, item in enumerate(value)]
        else:
            return []
        return [jp.DatumInContext(item, path=path, context=datum) for path, item in items
                if all(expr.find(item) for expr in self.expressions)]


def _fix(node: Any) -> Any:
    """Swap the adapter classes into a freshly parsed tree (in place) and return it."""
    if isinstance(node, jp_filter.Expression) and not isinstance(node, _SafeExpression):
        node.__class__ = _SafeExpression
    elif type(node) is jp_filter.Filter:
        node.__class__ = _ObjectFilter
    elif type(node) is jp.Index:
        node.__class__ = _MappingIndex
    elif type(node) is jp.Slice:
        node.__class__ = _MappingSlice
    for attr in ("left", "right", "target"):
        child = getattr(node, attr, None)
        if isinstance(child, jp.JSONPath):
            _fix(child)
    for child in getattr(node, "expressions", None) or ():
        _fix(child)
    return node


_parse_lock = threading.Lock()  # ply's parser tables are shared; parse one path at a time
_cache: dict[str, Any] = {}
_parser: ExtendedJsonPathParser | None = None  # built once: building ply's tables costs ~30 ms


def _check_implemented(node: Any, path: str) -> None:
    """Reject, at parse time, nodes jsonpath-ng parses but cannot run (``a & b`` between paths)."""
    if isinstance(node, jp.Intersect):
        raise QuerySyntaxError("'&' between two paths (intersection) is not implemented by jsonpath-ng; "
                               "in a filter, a bare path followed by '&' is read as one, so put a "
                               "comparison first: [?(@.b > 1 & @.a)]", path=path, engine="jsonpath-ng")
    for attr in ("left", "right", "target"):
        child = getattr(node, attr, None)
        if isinstance(child, jp.JSONPath):
            _check_implemented(child, path)
    for child in getattr(node, "expressions", None) or ():
        if isinstance(child, jp.JSONPath):
            _check_implemented(child, path)


def parse(path: str) -> Any:
    """The adapter-fixed jsonpath-ng tree for ``path``; :class:`QuerySyntaxError` if it does not parse."""
    if not isinstance(path, str):
        raise QuerySyntaxError(f"a path is a str, not {type(path).__name__}", path=repr(path), engine="jsonpath-ng")
    cached = _cache.get(path)
    if cached is not None:
        return cached
    global _parser
    try:
        with _parse_lock:
            if _parser is None:
                _parser = ExtendedJsonPathParser()
            tree = _parser.parse(path)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # ply raises plain Exception too
        if not engine_failure(exc):  # not the parser's: a signal handler's, say
            raise
        raise QuerySyntaxError(str(exc), path=path, engine="jsonpath-ng", position=_position(str(exc), path)) from None
    try:
        _check_implemented(tree, path)
        tree = _fix(tree)
        plan(tree)  # the planner walks the tree too: a path it cannot walk is refused here
    except RecursionError:
        raise QuerySyntaxError("the path nests too deeply to be evaluated (Python's recursion limit)",
                               path=path, engine="jsonpath-ng") from None
    if len(_cache) > 256:
        _cache.clear()
    _cache[path] = tree
    return tree


def _position(message: str, path: str) -> int | None:
    """0-based offset in ``path`` of a jsonpath-ng error, from its ``line L, col C`` or ``at L:C``.

    jsonpath-ng counts a column from the last newline's offset (so from 0 on
    the first line); ``near the end of string`` and an unterminated string
    literal are at ``len(path)``.
    """
    match = re.search(r"line (\d+), col (\d+)", message) or re.search(r"\bat (\d+):(\d+)", message)
    if match:
        line, col = int(match.group(1)), int(match.group(2))
        newlines = [i for i, ch in enumerate(path) if ch == "\n"]
        base = newlines[line - 2] if 2 <= line <= len(newlines) + 1 else 0
        return min(base + col, len(path))
    if "end of string" in message or "Unexpected EOF" in message:
        return len(path)
    return None


def evaluate(tree: Any, mapping: dict[str, Any]) -> list[Any]:
    """The reference answer: matched values of ``tree`` on ``mapping`` (in memory)."""
    return [match.value for match in matches(tree, mapping)]


def matches(tree: Any, data: Any) -> Iterator[Any]:
    """jsonpath-ng's matches (``DatumInContext``) of ``tree`` on ``data``.

    `parent` of the root makes jsonpath-ng return ``None`` as a match; that is
    the engine's evaluation error, raised here (so it is reported as one, see
    :mod:`kvlite.query.failures`) rather than in the code reading the match."""
    for match in tree.find(data):
        if match is None:
            _above_the_root()
        yield match


def _above_the_root() -> None:
    raise ValueError("`parent` of the root: there is nothing above it")


# -- SQL push-down ---------------------------------------------------------------------

#: A field name that may be written into SQL text; checked with ``fullmatch`` (``re.match`` with a
#: trailing ``$`` also accepts the name followed by a newline, ``"x\n"``).
_SAFE_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def field_chain(node: Any) -> list[str] | None:
    """The field names of a path made only of single named fields (``@.a.b`` -> ``["a", "b"]``),
    else ``None``."""
    parts: list[str] = []

    def walk(n: Any) -> bool:
        if isinstance(n, (jp.This, jp.Root)):
            return True
        if isinstance(n, jp.Fields):
            if len(n.fields) != 1 or n.fields[0] == "*" or not isinstance(n.fields[0], str):
                return False
            parts.append(n.fields[0])
            return True
        if isinstance(n, jp.Child):
            return walk(n.left) and walk(n.right)
        return False

    if not walk(node) or not parts:
        return None
    return parts


def sql_path(node: Any) -> str | None:
    """SQLite JSON path (``$.a.b``) for a chain of single plain field names, else ``None``.

    Only names made wholly of ``[A-Za-z_][A-Za-z0-9_]*`` qualify (not one
    more character, not even a trailing newline), so the result can be
    written into SQL as a literal (which an expression index needs) and can
    never carry SQL.
    """
    parts = field_chain(node)
    if parts is None or not all(_SAFE_FIELD.fullmatch(part) for part in parts):
        return None
    return "$." + ".".join(parts)


def plain_field(coll: Any, path: str, what: str) -> str:
    """The SQLite JSON path (``$.a.b``) of ``path``, given as ``what`` (``order_by``, an index
    path); :class:`NotSupported` unless the collection stores JSON text and ``path`` is a plain
    field chain, the two things ``json_extract`` needs."""
    from ..errors import NotSupported

    if not coll.serializer.json:
        raise NotSupported(f"{what} needs a JSON collection (it reads json_extract(value, path))")
    found = sql_path(parse(path))
    if found is None:
        raise NotSupported(f"{what} must be a plain field path like '$.age' or '$.a.b', not {path!r}")
    return found


def order_direction(order_by: str, desc: bool) -> tuple[str, bool]:
    """``order_by`` without a leading ``-``, and the direction (``-`` flips ``desc``)."""
    if isinstance(order_by, str) and order_by.startswith("-"):
        return order_by[1:], not desc
    return order_by, desc


@dataclass
class Condition:
    """A SQL condition over ``value`` that every match satisfies (a superset filter)."""

    sql: str
    params: list[Any] = field(default_factory=list)
    text: str = ""
    path: str = ""  # the SQLite JSON path it reads (to know whether an index covers it)
    #: A stricter SQL condition under which the expression certainly holds in Python too
    #: (``None``: no such condition); rows where it is true skip the Python re-check.
    sure: str | None = None
    sure_params: list[Any] = field(default_factory=list)


_INT64 = (-(1 << 63) + 2, (1 << 63) - 2)

#: The most conditions of one filter that are pushed down to SQL.
MAX_PUSHDOWN = 32


def compile_expression(expr: Any) -> Condition | None:
    """A superset SQL condition for one filter expression, or ``None`` (no push-down).

    The condition is never stricter than Python: Python re-checks every row
    that passes, so the answer stays the engine's.  Details per literal type:

    * int literal: the engine compares ``int(value)``, so numbers are
      matched in a range widened by 1 (``int()`` truncates) and every text
      value passes (``int(" 42 ")`` is 42).
    * float / bool literal: compared as numbers (``true`` is 1); with a
      float, ``<``/``>`` run as ``<=``/``>=`` in SQL, since SQLite holds an
      integer above 2**63-1 as a rounded REAL.
    * str literal: ``==`` and ordering compare text (SQLite's BINARY order is
      code point order, as in Python).
    * ``!=`` and ``=~`` push down only "the field exists".
    """
    path = sql_path(expr.target)
    if path is None:
        return None
    col = f"json_extract(value, '{path}')"
    kind = f"json_type(value, '{path}')"
    # A JSON number SQLite holds exactly (an integer beyond 64 bits becomes a rounded REAL),
    # or true/false (1/0): there, SQL comparisons give Python's answer.
    exact_number = f"({kind} = 'real' OR typeof({col}) = 'integer')"
    exists = f"{kind} IS NOT NULL"
    op, lit = expr.op, expr.value
    if op is None or op in ("!=", "=~"):
        return Condition(exists, [], f"{path} exists", path, sure=exists if op is None else None)
    sql_op = "=" if op in ("=", "==") else op
    if type(lit) is int:
        if not _INT64[0] <= lit <= _INT64[1]:
            return Condition(exists, [], f"{path} exists", path)
        text = f"int({path}) {op} {lit}"
        # The engine compares int(value): int() truncates numbers, and parses text (" 42 ").
        sure = f"{exact_number} AND CAST({col} AS INTEGER) {sql_op} ?"
        if sql_op == "=":
            numeric = f"({col} > ? AND {col} < ?)"
            params: list[Any] = [lit - 1, lit + 1]
        elif sql_op in (">", ">="):
            # Text sorts after every number in SQLite, so this one range already keeps all text.
            return Condition(f"{col} > ?", [lit - 1], text, path, sure, [lit])
        else:
            numeric, params = f"{col} < ?", [lit + 1]
        return Condition(f"({numeric} OR {col} >= '')", params, text, path, sure, [lit])
    if type(lit) is bool:
        return Condition(f"{col} {sql_op} ?", [int(lit)], f"{path} {op} {lit}", path,
                         f"{exact_number} AND {col} {sql_op} ?", [int(lit)])
    if type(lit) is float:
        # An integer above 2**63-1 (JSON allows it) is a rounded REAL to SQLite: 2**64-1 < 2.0**64
        # in Python but equal in SQL.  "<=" / ">=" keep the rows such rounding lands on the literal.
        widened = {"<": "<=", ">": ">="}.get(sql_op, sql_op)
        return Condition(f"{col} {widened} ?", [lit], f"{path} {op} {lit}", path,
                         f"{exact_number} AND {col} {sql_op} ?", [lit])
    if type(lit) is str:
        # BINARY collation orders text by UTF-8 bytes, which is code point order, as in Python.
        return Condition(f"{col} {sql_op} ?", [lit], f"{path} {op} {lit!r}", path,
                         f"{kind} = 'text' AND {col} {sql_op} ?", [lit])
    return Condition(exists, [], f"{path} exists", path)


# -- planning ----------------------------------------------------------------------------


@dataclass
class Plan:
    """How a path runs: a list of steps, each one SQL row source plus Python work.

    ``kind`` of a step:

    * ``"keys"``: point lookups of the named documents, in the path's order;
    * ``"scan"``: every document in order, narrowed by ``where`` (push-down);
    * ``"position"``: documents picked by position (``LIMIT/OFFSET``);
    * ``"descend"``: every document, searched recursively (``$..x``);
    * ``"fallback"``: the whole collection loaded as a mapping, then the engine.
    """

    steps: list[Step]

    @property
    def streaming(self) -> bool:
        return all(step.kind != "fallback" for step in self.steps)


@dataclass
class Step:
    kind: str
    rest: Any = None  # JSONPath applied to each selected document (None: the document itself)
    names: tuple[str, ...] = ()
    where: list[Condition] = field(default_factory=list)
    filter: Any = None  # jsonpath-ng Filter checked in Python on each document
    #: Every filter expression has a ``sure`` SQL condition: rows that meet them all skip the check.
    checkable: bool = False
    positions: tuple[int, ...] = ()
    slice: tuple[int | None, int | None, int | None] | None = None
    tree: Any = None  # for fallback and descend


def _steps_of(node: Any) -> list[Any]:
    """Flatten a left-nested ``Child`` chain into its steps."""
    if isinstance(node, jp.Child):
        return _steps_of(node.left) + _steps_of(node.right)
    return [node]


def _contains(node: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(node, kinds):
        return True
    for attr in ("left", "right", "target"):
        child = getattr(node, attr, None)
        if isinstance(child, jp.JSONPath) and _contains(child, kinds):
            return True
    return any(_contains(e, kinds) for e in getattr(node, "expressions", None) or ())


def _chain(steps: list[Any]) -> Any:
    return reduce(jp.Child, steps) if steps else None


def plan(tree: Any) -> Plan:
    """Decide how ``tree`` runs without loading the collection (or that it must)."""
    fallback = Plan([Step("fallback", tree=tree)])
    if isinstance(tree, jp.Union):
        left, right = plan(tree.left), plan(tree.right)
        if left.streaming and right.streaming:
            return Plan(left.steps + right.steps)
        return fallback
    steps = _steps_of(tree)
    if isinstance(steps[0], jp.Root):
        steps = steps[1:]
    if not steps:
        return fallback  # "$": the whole mapping is one match
    head, rest_steps = steps[0], steps[1:]
    if any(_contains(s, (jp.Root, jp.Parent)) for s in rest_steps):
        return fallback
    rest = _chain(rest_steps)

    if isinstance(head, jp.Descendants) and isinstance(head.left, jp.Root):
        # $..x = x on the root, then x searched inside every document.
        top = plan(_chain([jp.Root(), head.right] + rest_steps))
        if not top.streaming:
            return fallback
        inside = _chain([jp.Descendants(jp.This(), head.right)] + rest_steps)
        return Plan(top.steps + [Step("descend", tree=inside)])
    if _contains(head, (jp.Root, jp.Parent)):
        return fallback
    if isinstance(head, jp.Fields):
        if head.fields == ("*",):
            return Plan([Step("scan", rest=rest)])
        if "*" in head.fields:
            return fallback
        return Plan([Step("keys", rest=rest, names=tuple(head.fields))])
    if isinstance(head, jp_filter.Filter):
        compiled = [compile_expression(e) for e in head.expressions]
        # At most MAX_PUSHDOWN conditions go to SQL (SQLite refuses expression trees deeper than
        # 1000); the rest are checked in Python, like every condition without an SQL form.
        compiled[MAX_PUSHDOWN:] = [None] * max(0, len(compiled) - MAX_PUSHDOWN)
        where = [c for c in compiled if c is not None]
        checkable = all(c is not None and c.sure is not None for c in compiled)
        return Plan([Step("scan", rest=rest, where=where, filter=head, checkable=checkable)])
    if isinstance(head, _MappingIndex):
        return Plan([Step("position", rest=rest, positions=tuple(head.indices))])
    if isinstance(head, _MappingSlice):
        return Plan([Step("position", rest=rest, slice=(head.start, head.end, head.step))])
    return fallback


def apply_rest(step: Step, document: Any, context: Any, sure: bool = False) -> Iterator[Any]:
    """Values matched in one selected ``document`` by the step's filter and rest.

    ``sure``: SQL already proved the filter holds for this document (see
    :attr:`Condition.sure`), so it is not evaluated again."""
    if step.filter is not None and not sure:
        if not all(expr.find(document) for expr in step.filter.expressions):
            return
    if step.rest is None:
        yield document
        return
    for match in step.rest.find(jp.DatumInContext(document, context=context)):
        if match is None:  # matches(), inline: this runs for every document
            _above_the_root()
        yield match.value


def descend(step: Step, document: Any, context: Any) -> Iterator[Any]:
    for match in step.tree.find(jp.DatumInContext(document, context=context)):
        if match is None:  # matches(), inline
            _above_the_root()
        yield match.value
