"""JMESPath (the ``jmespath`` package) over a collection: ``engine="jmespath"``.

The root ``@`` is the collection as the object ``{view_key(key): document}`` in
insertion order, as for the other languages; the answer is exactly what
``jmespath.search(path, that_object)`` returns, read as matches:

- a list result gives one match per item, in order;
- ``None`` (JMESPath's ``null``: a missing field, a projection over something
  that is not a list) gives *no* match -- so a ``null`` can never be a match
  by itself, only inside a list or an object;
- any other result (a number from ``length(@)``, one document from ``u1``) is
  one match.

:meth:`Collection.find` names each match's key: for a row-wise query (below)
the key of the document the item came from; for any other query the key of
the document the item *is* (the same object as a loaded document: a
``dict``, ``list`` or ``str`` document -- a number, a boolean or ``null``
cannot be told from an equal value the query computed), else ``None``.

Row-wise queries stream one document at a time: a projection over the root
object's values, each document evaluated alone --

- ``values(@)[*]``, ``values(@)[*].x...`` (a ``projection`` on ``values(@)``);
- ``values(@)[?cond]``, ``values(@)[?cond].x...`` (a ``filter_projection`` on
  ``values(@)``): a document is kept when ``cond`` is true in JMESPath's sense
  (false only for ``''``, ``[]``, ``{}``, ``null`` and ``false``; ``0`` is
  true) -- SQLite narrows the rows first (``kvlite/backends/sqlite/jmespath_sql.py``);
- ``*``, ``*.x...`` (a ``value_projection`` on the root);

and for each kept document the right-hand side's value, when it is not
``null``, is one match (that is what the projection collects).  Every other
query (``length(@)``, ``sort_by(values(@), &age)``, ``values(@)[0]``,
``values(@)[*] | [0]``, ``u1.name``) is evaluated on the collection loaded in
memory, and :meth:`Collection.explain` says so.

Every node is evaluated by jmespath's own ``TreeInterpreter`` (the one
``jmespath.search`` uses), so the answers are the package's by construction.
An error of jmespath's while evaluating (a function given a value of the wrong
type, an unknown function, ``<`` between a number and a string) is raised as
:class:`~kvlite.errors.QueryEvaluationError` when it happens, as
``jmespath.search`` raises it (see :mod:`kvlite.query.failures`); with
``limit=`` a query may stop before the document that would raise.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import jmespath as _jmespath
from jmespath import exceptions as _exceptions
from jmespath.visitor import Options, TreeInterpreter

from ..errors import QuerySyntaxError

__all__ = ["ENGINE", "Parsed", "parse", "truthy", "rowwise", "evaluate", "matches", "owners", "whole"]

ENGINE = "jmespath"

#: The interpreter ``jmespath.search`` makes for each call (default options), made once.
_INTERPRETER = TreeInterpreter(Options())
_visit = _INTERPRETER.visit
_is_false = _INTERPRETER._is_false  # JMESPath's falsiness: '', [], {}, null, false


class Parsed:
    """A parsed JMESPath expression and how kvlite runs it.

    ``expression`` is jmespath's compiled ``ParsedResult``; ``rowwise`` says whether it runs
    one document at a time (see the module), and then ``condition`` is the filter's AST node
    (``None`` without a filter) and ``right`` the AST node evaluated on each kept document."""

    __slots__ = ("source", "expression", "rowwise", "kind", "condition", "right")

    def __init__(self, source: str, expression: Any) -> None:
        self.source = source
        self.expression = expression
        self.rowwise = False
        self.kind: str | None = None
        self.condition: dict[str, Any] | None = None
        self.right: dict[str, Any] | None = None
        node = expression.parsed
        kind = node.get("type")
        children = node.get("children") or []
        if kind == "projection" and len(children) == 2 and _is_values_of_root(children[0]):
            self.rowwise, self.kind, self.right = True, kind, children[1]
        elif kind == "filter_projection" and len(children) == 3 and _is_values_of_root(children[0]):
            self.rowwise, self.kind, self.right, self.condition = True, kind, children[1], children[2]
        elif kind == "value_projection" and len(children) == 2 and children[0].get("type") == "identity":
            self.rowwise, self.kind, self.right = True, kind, children[1]

    def __repr__(self) -> str:
        return f"Parsed({self.source!r}, rowwise={self.rowwise})"


def _is_values_of_root(node: Any) -> bool:
    """Whether ``node`` is ``values(@)``: the root object's values, the documents in order."""
    if not isinstance(node, dict) or node.get("type") != "function_expression" or node.get("value") != "values":
        return False
    args = node.get("children") or []
    return len(args) == 1 and isinstance(args[0], dict) and args[0].get("type") == "current"


def parse(path: str) -> Parsed:
    """``path`` compiled by jmespath.

    :raises TypeError: ``path`` is not a ``str``.
    :raises QuerySyntaxError: jmespath cannot parse it; ``position`` is where its lexer or
        parser stopped, when it says."""
    if not isinstance(path, str):
        raise TypeError(f"a JMESPath expression is a str, not {type(path).__name__}")
    try:
        expression = _jmespath.compile(path)
    except _exceptions.JMESPathError as exc:
        position = getattr(exc, "lex_position", None)
        if getattr(exc, "expression", None) is None:
            try:
                exc.expression = path  # type: ignore[attr-defined]  # jmespath's messages quote it
            except AttributeError:  # pragma: no cover - every JMESPathError takes attributes
                pass
        message = _message(exc)
        raise QuerySyntaxError(message, path=path, engine=ENGINE,
                               position=position if isinstance(position, int) else None) from None
    except RecursionError:
        raise QuerySyntaxError("the expression nests too deeply", path=path, engine=ENGINE) from None
    return Parsed(path, expression)


def _message(exc: BaseException) -> str:
    """jmespath's message on one line (its own spans three: message, expression, caret)."""
    try:
        text = str(exc)
    except Exception:  # pragma: no cover - a message that cannot be formatted
        text = ""
    first = text.splitlines()[0].rstrip(":") if text.strip() else type(exc).__name__
    return first


def truthy(value: Any) -> bool:
    """JMESPath's truth: false only for ``''``, ``[]``, ``{}``, ``null`` and ``false``."""
    return not _is_false(value)


def rowwise(parsed: Parsed, document: Any, accepted: bool = False) -> tuple[Any, ...]:
    """The matches of a row-wise query in one document (none or one): the right-hand side's
    value when the filter (if any) is true of ``document`` -- ``accepted``: the engine already
    proved it is -- and that value is not ``null``."""
    condition = parsed.condition
    if condition is not None and not accepted and _is_false(_visit(condition, document)):
        return ()
    value = _visit(parsed.right, document)
    return () if value is None else (value,)


def evaluate(parsed: Parsed, mapping: dict[str, Any]) -> Any:
    """``jmespath.search(path, mapping)``: the reference answer on the loaded collection."""
    return parsed.expression.search(mapping)


def matches(result: Any) -> list[Any]:
    """A JMESPath result as matches: a list's items, nothing for ``None``, else the value."""
    if result is None:
        return []
    if isinstance(result, list):
        return result
    return [result]


#: Documents whose identity means nothing: equal values of these types may be one object.
_SHARED = (bool, int, float, type(None))


def owners(mapping: dict[str, Any], originals: dict[str, Any]) -> Callable[[Any], Any]:
    """``owner(value)``: the key of the loaded document that ``value`` is (``dict``, ``list``
    or ``str`` documents, by identity), else ``None``."""
    by_identity = {id(doc): originals[name] for name, doc in mapping.items() if not isinstance(doc, _SHARED)}
    if not by_identity:
        return lambda value: None
    return lambda value: None if isinstance(value, _SHARED) else by_identity.get(id(value))


def whole(parsed: Parsed, mapping: dict[str, Any], originals: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """``(key or None, value)`` for each match of a query on the whole collection, loaded as
    ``mapping`` (``{view_key: document}``) with ``originals`` (``{view_key: key}``)."""
    owner = owners(mapping, originals)
    for value in matches(evaluate(parsed, mapping)):
        yield owner(value), value
