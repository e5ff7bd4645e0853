"""JSONPath in jsonpath-ng's extended dialect (``engine="jsonpath-ng"``) over a collection:
parse, plan, evaluate.

The collection is seen as the mapping ``{view_key: document}`` in insertion
order (see :func:`kvlite.query.view_key`).  kvlite's answer is, by definition,
what ``jsonpath_ng.ext.parse(path).find(mapping)`` answers on that mapping
loaded in memory, at jsonpath-ng's current release (``>=1.16``; written and
differential-tested against 1.17): :func:`evaluate`.  The planner computes the
same answer without loading the collection wherever that is provably the same
(:func:`plan`); nothing of this dialect is pushed down to SQL.

What jsonpath-ng 1.16+ answers, and kvlite with it (1.8 differed): comparisons
follow RFC 9535 (``@.age == 36`` matches neither ``36.9`` nor ``"36"``, a
number never equals a string or a boolean, incomparable values are simply
false), ``[n]`` and slices select from arrays only (``$[0]`` on the collection
is empty; ``$.*`` / ``$[*]`` are its documents), a filter never writes into the
data, ``&&`` / ``||`` / ``!`` / ``$[?@.a > 1]`` parse.

Adapter patches -- only where jsonpath-ng 1.17 raises:

* ``&`` between two paths (``$.a & $.b``; in a filter, ``[?(@.a & @.b)]``,
  two bare paths) parses as jsonpath-ng's intersection, whose ``find`` raises
  ``NotImplementedError`` as soon as it runs.  kvlite refuses it at parse time
  with :class:`~kvlite.errors.QuerySyntaxError` (so also on an empty
  collection, where jsonpath-ng would answer ``[]``).

Not patched, reported as :class:`~kvlite.errors.QueryEvaluationError` (see
:mod:`kvlite.query.failures`), as jsonpath-ng raises them: `parent` of the root
(an ``AssertionError`` in jsonpath-ng; under ``python -O`` it yields ``None``,
which :func:`matches` turns into the same error), a regular expression that
does not compile or is not a string (``=~ 5``), `sorted` over values of
mixed types, arithmetic on incompatible values.

Warnings: jsonpath-ng 1.16+ emits ``DeprecationWarning`` at parse time for
syntax it will drop in 2.0 (``&`` in a filter -- use ``&&``; ``|``; an unquoted
word as a string literal).  kvlite lets them through unchanged (they are the
caller's to see; a path is parsed once per process, then cached); only when
the warnings filter turns one into an exception does it pass through as that
warning, not as a syntax error.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import reduce
from typing import Any, Iterator

from jsonpath_ng import jsonpath as jp
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import filter as jp_filter
from jsonpath_ng.ext import iterable as jp_iterable
from jsonpath_ng.ext.parser import ExtendedJsonPathParser

from ..errors import QuerySyntaxError
from .failures import engine_failure

__all__ = ["parse", "evaluate", "plan", "Plan"]

# jsonpath-ng 1.16+ keeps its union and intersection nodes under these names (the public
# ``Union`` / ``Intersect`` warn on access: deprecated with the operators that create them).
_Union = jp._Union
_Intersect = jp._Intersect


def _children(node: Any) -> Iterator[Any]:
    """The jsonpath-ng nodes directly under ``node`` (operands, targets, compared queries, sort keys)."""
    stack = list(vars(node).values()) if hasattr(node, "__dict__") else []
    while stack:
        item = stack.pop()
        if isinstance(item, jp.JSONPath):
            yield item
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


_parse_lock = threading.Lock()  # ply's parser tables are shared; parse one path at a time
_cache: dict[str, Any] = {}
_parser: ExtendedJsonPathParser | None = None  # built once: building ply's tables costs ~30 ms


def _check_implemented(node: Any, path: str) -> None:
    """Reject, at parse time, what jsonpath-ng parses but cannot run: ``&`` between two paths."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, _Intersect):
            raise QuerySyntaxError("'&' between two paths (intersection) is not implemented by jsonpath-ng; "
                                   "in a filter, join conditions with '&&': [?(@.b > 1 && @.a)]",
                                   path=path, engine="jsonpath-ng")
        stack.extend(_children(node))


def parse(path: str) -> Any:
    """jsonpath-ng's tree for ``path`` (its extended parser, as ``jsonpath_ng.ext.parse``);
    :class:`QuerySyntaxError` if it does not parse or is an intersection (see the module)."""
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
        # Not the parser's (a signal handler's, say), or a deprecation warning made an error by
        # the warnings filter: the caller's to see as it is.
        if isinstance(exc, Warning) or not engine_failure(exc):
            raise
        raise QuerySyntaxError(str(exc), path=path, engine="jsonpath-ng", position=_position(str(exc), path)) from None
    try:
        _check_implemented(tree, path)
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
    """The reference answer: jsonpath-ng's matched values of ``tree`` on ``mapping`` (in memory)."""
    return [match.value for match in matches(tree, mapping)]


def matches(tree: Any, data: Any) -> Iterator[Any]:
    """jsonpath-ng's matches (``DatumInContext``) of ``tree`` on ``data``.

    `parent` of the root fails in jsonpath-ng (an ``AssertionError``; under ``python -O``
    it returns ``None`` as a match instead): the engine's evaluation error, raised here
    for ``None`` too (so it is reported as one, see :mod:`kvlite.query.failures`) rather
    than in the code reading the match."""
    for match in tree.find(data):
        if match is None:
            _above_the_root()
        yield match


def _above_the_root() -> None:
    raise ValueError("`parent` of the root: there is nothing above it")


# -- planning ----------------------------------------------------------------------------


@dataclass
class Plan:
    """How a path runs: a list of steps, each one source of documents plus Python work.

    ``kind`` of a step:

    * ``"keys"``: point lookups of the named documents, in the path's order;
    * ``"scan"``: every document in order (a filter, if any, checked in Python);
    * ``"descend"``: every document, searched recursively (``$..x``);
    * ``"fallback"``: the whole collection loaded as a mapping, then jsonpath-ng.

    No steps: the path matches nothing on any collection (``$[0]``, ``$[1:3]``:
    jsonpath-ng indexes and slices arrays only, and the collection is an object).
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
    filter: Any = None  # jsonpath-ng Filter checked in Python on each document
    tree: Any = None  # for fallback and descend


def _steps_of(node: Any) -> list[Any]:
    """Flatten a ``Child`` chain (``(a.b).c`` finds what ``a.(b.c)`` finds) into its steps."""
    if isinstance(node, jp.Child):
        return _steps_of(node.left) + _steps_of(node.right)
    return [node]


#: Nodes whose answer depends on where a document sits in the collection (its context: `$`,
#: `parent`, `path`), which a document evaluated on its own does not have.
_CONTEXTUAL = (jp.Root, jp.Parent, jp_iterable.Path)


def _contains(node: Any, kinds: tuple[type, ...]) -> bool:
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, kinds):
            return True
        stack.extend(_children(node))
    return False


def _chain(steps: list[Any]) -> Any:
    return reduce(jp.Child, steps) if steps else None


def plan(tree: Any) -> Plan:
    """Decide how ``tree`` runs without loading the collection (or that it must).

    Each streaming plan finds exactly what jsonpath-ng 1.17 finds on the loaded mapping:

    * ``A | B`` is ``A``'s matches then ``B``'s (jsonpath-ng's union concatenates);
    * ``$.*`` / ``$[*]`` (a wildcard) are the documents in order, then the rest of the path on
      each; ``$[?(...)]`` the documents its expressions accept, each checked on its own (what
      jsonpath-ng's filter does unless an expression reads ``$``);
    * ``$.a`` / ``$['a','b']`` the named documents in that order;
    * ``$[n]`` / ``$[a:b]`` nothing: jsonpath-ng indexes and slices arrays only;
    * ``$..x`` is ``x`` on the root, then ``@..x`` inside each document in order (jsonpath-ng
      walks depth-first, in pre-order).

    Any part that reads a document's context (`$`, `parent`, `path`) after the first step makes
    the whole path run on the loaded mapping.
    """
    fallback = Plan([Step("fallback", tree=tree)])
    if isinstance(tree, _Union):
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
    if any(_contains(s, _CONTEXTUAL) for s in rest_steps):
        return fallback
    rest = _chain(rest_steps)

    if isinstance(head, jp.Descendants) and isinstance(head.left, jp.Root):
        if _contains(head.right, _CONTEXTUAL):
            return fallback
        # $..x = x on the root, then x searched inside every document.
        top = plan(_chain([jp.Root(), head.right] + rest_steps))
        if not top.streaming:
            return fallback
        inside = _chain([jp.Descendants(jp.This(), head.right)] + rest_steps)
        return Plan(top.steps + [Step("descend", tree=inside)])
    if _contains(head, _CONTEXTUAL):
        return fallback
    if type(head) is jp.Wildcard:
        return Plan([Step("scan", rest=rest)])
    if type(head) is jp.Fields and not getattr(head, "_deprecated_wildcard_use", False):
        if any(name == jp.auto_id_field for name in head.fields):
            return fallback
        return Plan([Step("keys", rest=rest, names=tuple(head.fields))])
    if type(head) is jp_filter.Filter:
        return Plan([Step("scan", rest=rest, filter=head)])
    if type(head) in (jp.Index, jp.Slice) and not getattr(head, "_deprecated_wildcard_use", False):
        return Plan([])
    return fallback


def apply_rest(step: Step, document: Any, context: Any) -> Iterator[Any]:
    """Values matched in one selected ``document`` by the step's filter and rest."""
    if step.filter is not None:
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
