"""ObjectPath (the ``objectpath`` package) over a collection.

The collection is the mapping ``{view_key: document}``, as for JSONPath, with
one adapter fix: objectpath's ``$.*`` on a mapping returns the mapping itself,
so a selector after it (``$.*[@.age > 30]``) iterates over the *keys* and
matches nothing.  kvlite reads every ``$.*`` as the list of documents, in
order: an expression whose every use of ``$`` is ``$.*`` runs on that list,
and any other one on the mapping with each ``$.*`` in it replaced by
``values($)`` (so ``[$.*[@.age > 30].name, $.u1.name]`` works too).

A second adapter fix: ``.name`` on a value that is not an object (a string,
a number, ``true``, ``null``) matches nothing.  objectpath read the Python
attribute ``name`` there (``$.u1.name.__class__``, ``$.u1.name.upper``), or
gave the value itself when it had none; a query sees JSON data only.

Results: an iterable result (list, generator) gives one match per item;
``None`` gives no match; anything else (a number from ``count(...)``, a
document from ``$.u1``) is one match.

Streaming: an expression that is a chain of field steps and boolean
selectors starting at ``$.*`` runs one document at a time; anything else
(aggregates such as ``count($.*)``, positions such as ``$.*[0]``, paths on the
mapping such as ``$.u1.name``) is evaluated on the whole collection loaded in
memory, and :meth:`Collection.explain` says so.
"""

from __future__ import annotations

import threading
from typing import Any, Iterator

from objectpath import Tree
from objectpath.core.parser import parse as _op_parse

from ..errors import QuerySyntaxError
from .failures import engine_failure, evaluation_error

__all__ = ["parse", "evaluate", "rowwise", "normalize"]

_ROOT = ("(root)", "rs")
_ALL_DOCS = (".", _ROOT, ("*",))
_VALUES = ("fn", "values", _ROOT)  # values($): objectpath's parser cannot read "$)", so built here
# The selector operators objectpath evaluates once per element with ``@`` = that element
# (its SELECTOR_OPS, minus "fn" and ":").  Any other top-level operator in ``[...]``
# (``not``, ``matches``) is evaluated once with ``@`` = the whole list, so it is not row-wise.
_BOOLEAN_OPS = {">", "<", ">=", "<=", "is", "is not", "in", "not in", "and", "or"}

_lock = threading.Lock()  # objectpath's parser keeps its state in module globals


class Parsed:
    """A parsed ObjectPath expression and how kvlite runs it."""

    def __init__(self, source: str, tree: Any) -> None:
        self.source = source
        self.tree = tree
        roots = _count(tree, _ROOT)
        self.on_documents = roots > 0 and roots == _count(tree, _ALL_DOCS)
        self.rewritten = _replace(tree, _ALL_DOCS, _ROOT if self.on_documents else _VALUES)
        self.rowwise = self.on_documents and _is_rowwise(self.rewritten)
        self.source_name = _source_name(tree)


def _source_name(node: Any) -> str | None:
    """The key ``N`` when the expression reads inside one document, ``$.N`` followed by
    field steps and selectors (``$.u1.tags[0]``); else ``None``."""
    while isinstance(node, tuple) and len(node) == 3 and node[0] in (".", "["):
        if node[1] == _ROOT:
            step = node[2]
            if node[0] == "." and isinstance(step, tuple) and len(step) == 2 and step[0] == "name":
                return step[1] if isinstance(step[1], str) else None
            return None
        node = node[1]
    return None


def parse(source: str) -> Parsed:
    """Parse ``source``; :class:`QuerySyntaxError` when objectpath cannot."""
    if not isinstance(source, str):
        raise QuerySyntaxError(f"a path is a str, not {type(source).__name__}", path=repr(source),
                               engine="objectpath")
    try:
        with _lock:
            tree = _op_parse(source)
    except Exception as exc:  # objectpath raises SyntaxError, ProgrammingError, StopIteration, ...
        if not engine_failure(exc):  # not the parser's: a signal handler's, say
            raise
        raise QuerySyntaxError(str(exc) or type(exc).__name__, path=source, engine="objectpath") from None
    if isinstance(tree, str) and tree == source and not source.strip():
        raise QuerySyntaxError("empty expression", path=source, engine="objectpath")
    return Parsed(source, tree)


def _count(node: Any, target: tuple[Any, ...]) -> int:
    if node == target:
        return 1
    if isinstance(node, (tuple, list)):
        return sum(_count(child, target) for child in node)
    return 0


def _replace(node: Any, target: tuple[Any, ...], new: tuple[Any, ...]) -> Any:
    if node == target:
        return new
    if isinstance(node, tuple):
        return tuple(_replace(child, target, new) for child in node)
    if isinstance(node, list):
        return [_replace(child, target, new) for child in node]
    return node


def _is_rowwise(node: Any) -> bool:
    """True for ``$`` followed by field steps and boolean selectors only."""
    if node == _ROOT:
        return True
    if not isinstance(node, tuple) or not node:
        return False
    op = node[0]
    if op in (".", "..") and len(node) == 3:
        return isinstance(node[2], tuple) and node[2][:1] == ("name",) and _is_rowwise(node[1])
    if op == "[" and len(node) == 3:
        selector = node[2]
        return (isinstance(selector, tuple) and selector[:1] != ("[",) and selector and selector[0] in _BOOLEAN_OPS
                and _count(selector, _ROOT) == 0 and _is_rowwise(node[1]))
    return False


def normalize(result: Any) -> list[Any]:
    """objectpath's result as a list of matches (a match that objectpath left as a lazy
    generator or chain, as ``$.*[...][...]`` does, becomes a list)."""
    if result is None:
        return []
    if isinstance(result, (str, bytes, int, float, bool, dict)):
        return [result]
    try:
        items = iter(result)
    except TypeError:  # not iterable: one match (an error while iterating is objectpath's error)
        return [result]
    return [_materialize(item) for item in items]


def _materialize(value: Any) -> Any:
    """``value`` with every lazy iterator in it (objectpath's generators, chains) made a list."""
    if isinstance(value, list):
        return [_materialize(item) for item in value]
    if isinstance(value, Iterator):
        return [_materialize(item) for item in value]
    return value


def _no_attribute(value: Any, name: Any) -> None:
    """objectpath's ``object_getter``: what ``.name`` (or ``['name']``) gives on a value that is
    not an object (a string, a number, ``true``, ``null``, a tuple): nothing, no match.

    objectpath's default getter returns the value's *Python attribute* ``name``
    (``$.u1.name.__class__`` gave ``<class 'str'>``, ``$.u1.name.upper`` a bound
    method) and, when there is none, the value itself (``$.u1.name.x`` gave the
    name).  A query sees JSON data only.
    """
    return None


class _ParsedTree(Tree):  # type: ignore[misc]
    """A ``Tree`` that runs an already parsed (or rewritten) expression, on JSON data only.

    objectpath 0.6.1's ``Tree.execute`` fails on a parsed tuple
    (``UnboundLocalError``), so the parsed tree comes in through ``compile``;
    ``.name`` reads a field of an object and nothing else (:func:`_no_attribute`).
    """

    def __init__(self, data: Any, tree: Any) -> None:
        super().__init__(data, {"object_getter": _no_attribute})
        self._parsed = tree

    def compile(self, expr: str) -> Any:
        return self._parsed


def _execute(data: Any, tree: Any, source: str) -> list[Any]:
    """The matches of ``tree`` on ``data``; objectpath's own error while evaluating is a
    :class:`~kvlite.errors.QueryEvaluationError`, any other passes through
    (see :mod:`kvlite.query.failures`)."""
    try:
        return normalize(_ParsedTree(data, tree).execute("kvlite-parsed"))
    except Exception as exc:
        if not engine_failure(exc):
            raise
        raise evaluation_error("objectpath", source, exc) from exc


def evaluate(parsed: Parsed, mapping: dict[str, Any]) -> list[Any]:
    """The reference answer on ``mapping`` loaded in memory."""
    if parsed.on_documents:
        return _execute(list(mapping.values()), parsed.rewritten, parsed.source)
    return _execute(mapping, parsed.rewritten, parsed.source)


def owners(parsed: Parsed, mapping: dict[str, Any], originals: dict[str, Any]) -> Any:
    """``owner(value)``: the collection key of the document an evaluated match came from, or
    ``None`` (an aggregate, a list built from several documents).

    A match is a document itself, or a value inside one document (``$..email`` returns the
    very objects stored in the loaded documents): it is found by identity.  A value that is
    the same object in several documents, or one Python shares between unrelated values
    (``true``, ``null``, small numbers: see :func:`_identifiable`), belongs to none: ``None``."""
    by_identity = {id(doc): originals.get(name) for name, doc in mapping.items()}
    named = originals.get(parsed.source_name) if parsed.source_name is not None else None
    inside: dict[int, Any] = {}

    def owner(value: Any) -> Any:
        found = by_identity.get(id(value), _NOBODY)
        if found is not _NOBODY:
            return found
        if named is not None:
            return named
        if not _identifiable(value):
            return None
        if not inside:
            inside.update(_values_inside(mapping, originals))
        found = inside.get(id(value))
        return None if found is _SHARED else found

    return owner


_NOBODY, _SHARED = object(), object()


def _identifiable(value: Any) -> bool:
    """Whether ``value``'s identity can tell where it came from: not an object CPython shares
    between unrelated values (``None``, booleans, small ints, empty and one-character strings),
    which an aggregate (``count(...)``) may return without reading any document."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -5 <= value <= 256
    if isinstance(value, str):
        return len(value) > 1
    return True


def _values_inside(mapping: dict[str, Any], originals: dict[str, Any]) -> dict[int, Any]:
    """``{id(value): key}`` for every value nested in the documents (``_SHARED`` when the same
    object is in several documents); the documents are alive while the query runs, so ids
    are not reused."""
    out: dict[int, Any] = {}
    for name, doc in mapping.items():
        key = originals.get(name)
        stack = list(doc.values()) if isinstance(doc, dict) else list(doc) if isinstance(doc, list) else []
        while stack:
            value = stack.pop()
            seen = out.get(id(value), _NOBODY)
            out[id(value)] = key if seen is _NOBODY or seen == key else _SHARED
            if isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
    return out


def rowwise(parsed: Parsed, document: Any) -> list[Any]:
    """Matches of a row-wise expression in one document."""
    return _execute([document], parsed.rewritten, parsed.source)
