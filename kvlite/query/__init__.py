"""Queries over stored values: JSONPath and ObjectPath, streaming; the front-end of every engine.

The promise: a query's answer is exactly what the language returns on the
collection loaded into a plain ``dict`` (``{view_key(key): document}`` in
insertion order, with the adapter fixes described in
:mod:`kvlite.query.jsonpath` and :mod:`kvlite.query.objectpath`), computed
without loading it.  This module checks the arguments and parses the query,
then asks the collection's engine to run it (:meth:`Table.find
<kvlite.backends.base.Table.find>`: SQLite and PostgreSQL narrow rows in SQL,
see ``kvlite/backends/sqlite/query.py``, and re-check every row in Python);
an engine that declines gets the query evaluated here, in Python, over its
streamed entries (:mod:`kvlite.query.python_source`).

Keys as the engines see them (:func:`view_key`): a ``str`` key as it is;
``int``/``float``/``bool`` keys as ``str(key)`` (``1`` -> ``"1"``); ``bytes``
keys decoded as UTF-8 (invalid bytes as ``\\xNN`` escapes).  ``find`` still
yields the real key.
"""

from __future__ import annotations

import itertools
import sys
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..errors import QuerySyntaxError
from ..keys import view as view_key
from . import jmespath as _jm
from . import jsonpath as _jp
from . import objectpath as _op
from . import facets, python_source
from . import rfc9535 as _rfc
from .failures import engine_failure, evaluation_error
from .matches import Tracker, owner

if TYPE_CHECKING:
    from ..collection import Collection

__all__ = ["find", "count", "count_by", "documents_query", "explain", "parse", "ENGINES"]

#: The query languages: RFC 9535 JSONPath (the default), jsonpath-ng's dialect, ObjectPath, JMESPath.
ENGINES = ("jsonpath", "jsonpath-ng", "objectpath", "jmespath")


def parse(engine: str, path: str) -> Any:
    """``path`` parsed by ``engine``'s language (:class:`QuerySyntaxError` if it does not parse)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if engine == "jsonpath":
        return _rfc.parse(path)
    if engine == "jsonpath-ng":
        return _jp.parse(path)
    if engine == "objectpath":
        return _op.parse(path)
    return _jm.parse(path)


def find(coll: Collection, path: str, *, engine: str = "jsonpath", limit: int | None = None,
         offset: int = 0, order_by: str | None = None, desc: bool = False,
         missing_last: bool = False) -> Iterator[tuple[Any, Any]]:
    """``(key, matched value)`` for every match of ``path``; see :meth:`Collection.find`."""
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError("limit must be an int >= 0 or None")
    if not isinstance(offset, int) or offset < 0:
        raise ValueError("offset must be an int >= 0")
    _check_order(order_by, desc, missing_last)
    parsed = parse(engine, path)
    tracker = Tracker()
    found = coll._table.find(engine, parsed, order_by, desc, tracker, missing_last)
    if found is not None:
        matches = found
    else:  # the engine does not narrow queries: Python evaluation over its streamed entries
        src = python_source.source(coll, order_by, desc, missing_last)
        if engine == "jsonpath":
            matches = python_source.run_rfc9535(coll, _rfc.plan(parsed).steps, src, tracker, view_key)
        elif engine == "jsonpath-ng":
            matches = python_source.run(coll, _jp.plan(parsed).steps, src, tracker, view_key, owner)
        elif engine == "objectpath":
            matches = python_source.run_objectpath(parsed, src, tracker, view_key)
        else:
            matches = python_source.run_jmespath(parsed, src, tracker, view_key)
    if coll._model is not None:
        matches = _as_models(coll, matches, tracker)
    # islice takes at most sys.maxsize; no collection has that many matches.
    stop = None if limit is None or offset + limit > sys.maxsize else offset + limit
    return _guarded(matches, path, engine, min(offset, sys.maxsize), stop)


def _check_order(order_by: str | None, desc: bool, missing_last: bool) -> None:
    if desc and order_by is None:
        raise ValueError("desc=True orders by order_by: give order_by too")
    if missing_last and order_by is None:
        raise ValueError("missing_last=True orders by order_by: give order_by too")


def count(coll: Collection, path: str, *, engine: str = "jsonpath") -> int:
    """The number of matches of ``path`` (see :meth:`Collection.count`): one SQL ``COUNT`` when
    the engine decides the whole query in SQL, else the matches :func:`find` yields, counted."""
    parsed = parse(engine, path)
    counted = coll._table.count_matches(engine, parsed)
    if counted is not None:
        return counted
    return sum(1 for _ in find(coll, path, engine=engine))


def documents_query(path: str, what: str) -> Any:
    """``path`` parsed as an RFC 9535 query that selects whole documents of the collection:
    ``$[?filter]`` (or ``$[*]`` / ``$.*``: all of them) -- what ``patch_where``, ``delete_where``
    and ``count_by`` take (``what`` names the caller in the error).

    :raises QuerySyntaxError: it does not parse, or selects something else."""
    parsed = _rfc.parse(path)
    steps = _rfc.plan(parsed).steps
    if len(steps) == 1 and steps[0].kind == "scan" and not steps[0].rest:
        return parsed
    if len(steps) == 1 and steps[0].kind == "whole":
        why = "its filter reads the root $ (the whole collection), which the call itself changes"
    elif any(step.rest for step in steps):
        why = "it selects values inside the documents, not documents"
    else:
        why = "it does not select documents by one filter"
    raise QuerySyntaxError(f"{what}() takes a filter that selects whole documents, such as "
                           f"$[?@.status == 'new'] (or $[*] for all of them); {why}",
                           path=path, engine=_rfc.ENGINE)


def count_by(coll: Collection, path: str, query: str | None = None) -> list[tuple[Any, int]]:
    """See :meth:`Collection.count_by`."""
    fields = _rfc.field_path(_rfc.parse(path))
    if fields is None:
        raise QuerySyntaxError("count_by() counts the value at a singular query, such as $.status or "
                               "$.address.city (no wildcards, filters, slices or descendants)",
                               path=path, engine=_rfc.ENGINE)
    parsed = None if query is None else documents_query(query, "count_by")
    found: Iterable[tuple[str, Any, int, int]] | None = coll._table.count_by(fields, parsed)
    if found is None:  # counted here, streaming the documents as stored (a typed collection's too)
        matches = coll._raw_items() if parsed is None else coll._table.matching(parsed)
        documents = (document for _, document in matches)
        found = facets.groups(documents, fields)
    return facets.merged(found)


def _guarded(matches: Iterator[tuple[Any, Any]], path: str, engine: str, offset: int,
             stop: int | None) -> Iterator[tuple[Any, Any]]:
    """``matches[offset:stop]``, as a generator whose ``close()`` (or leaving a ``for`` loop
    early and dropping it) closes the SQLite cursor and ends its read snapshot at once.

    An engine's own error while evaluating (jsonpath-ng's `parent` of the root, `sorted` over
    mixed types, a bad regex in ``=~``, ...) is raised as :class:`QuerySyntaxError` (see
    :mod:`kvlite.query.failures`); every other exception -- kvlite's, SQLite's, the caller's
    (a signal handler, an exception thrown in by the consumer) -- passes through unchanged."""
    try:
        if offset or stop is not None:
            yield from itertools.islice(matches, offset, stop)
        else:
            yield from matches
    except Exception as exc:
        if not engine_failure(exc):
            raise
        raise evaluation_error(engine, path, exc) from exc
    finally:
        close = getattr(matches, "close", None)
        if close is not None:
            close()


def _as_models(coll: Collection, matches: Iterator[tuple[Any, Any]],
               tracker: Tracker) -> Iterator[tuple[Any, Any]]:
    """For a typed collection: a match that is a whole document comes back as a model instance."""
    adapter = coll._model
    assert adapter is not None
    for key, value in matches:
        yield key, (adapter.load(value) if tracker.is_document(value) else value)


# -- explain --------------------------------------------------------------------------------------


def explain(coll: Collection, path: str, *, engine: str = "jsonpath", order_by: str | None = None,
            desc: bool = False, missing_last: bool = False) -> dict[str, Any]:
    """What the engine narrows and what runs in Python for ``path`` (see :meth:`Collection.explain`)."""
    _check_order(order_by, desc, missing_last)
    parsed = parse(engine, path)
    planned = coll._table.explain(engine, parsed, order_by, desc, missing_last)
    if planned is None:
        return _explain_python(coll, parsed, path, engine, order_by)
    steps, notes = planned
    streaming = all(s["kind"] != "fallback" for s in steps)
    return {"collection": coll.name, "engine": engine, "path": path, "streaming": streaming, "steps": steps,
            "notes": notes}


def _explain_python(coll: Collection, parsed: Any, path: str, engine: str, order_by: str | None) -> dict[str, Any]:
    if engine == "objectpath":
        kinds = ["scan" if parsed.rowwise else "fallback"]
    elif engine == "jsonpath":
        kinds = ["fallback" if step.kind == "whole" else step.kind for step in _rfc.plan(parsed).steps]
    elif engine == "jmespath":
        kinds = ["scan" if parsed.rowwise else "fallback"]
    else:
        kinds = [step.kind for step in _jp.plan(parsed).steps]
    steps: list[dict[str, Any]] = [{"kind": kind, "pushdown": [],
              "python": ("the engine on the whole collection loaded in memory" if kind == "fallback"
                         else "the engine on each document, streamed from the backend")} for kind in kinds]
    notes = [f"{type(coll.store.engine).__name__} has no query engine: every document is decoded and checked in Python"]
    if order_by is not None:
        notes.append("order_by sorts in Python, which loads the collection")
    return {"collection": coll.name, "engine": engine, "path": path,
            "streaming": "fallback" not in kinds and order_by is None,
            "steps": steps, "notes": notes}
