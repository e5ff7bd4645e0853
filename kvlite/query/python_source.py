"""Queries on collections that have no SQL engine (memory, Redis, ...): Python evaluation.

The same plans as for SQLite (:func:`kvlite.query.jsonpath.plan`) run over
the collection's streamed entries (``_raw_items``) instead of SQL cursors:
no push-down, no indexes, the same answers.  ``order_by`` sorts in Python
(which loads the collection) by :func:`order_key`, the order SQLite gives
too: SQLite's classes of ``json_extract`` values -- missing and null first,
then numbers (``true``/``false`` as 1/0), then strings, arrays and objects
together, by their UTF-8 text (arrays and objects by their JSON text, as
``json_extract`` gives them) -- with numbers by their exact value; as on
SQLite, only JSON collections can be ordered (others raise
:class:`~kvlite.errors.NotSupported`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import orjson

from .. import keys as _keys
from . import jmespath as _jm
from . import jsonpath as _jp
from . import objectpath as _op
from . import rfc9535 as _rfc
from .fields import MISSING, order_direction, plain_field, value_at

Source = Callable[[bool], Iterator[tuple[Any, Any]]]


def order_key(field: str, desc: bool = False,
              missing_last: bool = False) -> Callable[[tuple[Any, Any]], tuple[int, Any]]:
    """The sort key of a ``(key, document)`` entry for the plain field ``field`` (``$.a.b``, see
    :func:`kvlite.query.fields.plain_field`), sorted with ``reverse=desc``: ``(0, 0)`` for a
    missing field or ``null`` (with ``missing_last``, a key that sorts after every other in
    that direction), ``(1, number)`` (``true``/``false`` as 1/0) compared exactly, ``(2, UTF-8
    bytes)`` for a string and ``(2, JSON text)`` for an array or an object.  Every engine
    orders by it (SQLite in SQL, and in Python where SQL ties numbers it rounded)."""
    missing = ((-1 if desc else 3), 0) if missing_last else (0, 0)

    def key(entry: tuple[Any, Any]) -> tuple[int, Any]:
        value = value_at(entry[1], field)
        if value is MISSING or value is None:
            return missing
        if isinstance(value, bool):
            return (1, int(value))
        if isinstance(value, (int, float)):
            return (1, value)
        if isinstance(value, str):
            return (2, value.encode("utf-8"))
        return (2, orjson.dumps(value))

    return key


def source(coll: Any, order_by: str | None, desc: bool, missing_last: bool = False) -> Source:
    """A function ``(reverse) -> (key, document)`` iterator in the query's document order."""
    if order_by is None:
        return lambda reverse: coll._raw_items(reverse=reverse)
    order_by, desc = order_direction(order_by, desc)
    sort_key = order_key(plain_field(coll, order_by, "order_by"), desc, missing_last)  # as on SQLite

    def ordered(reverse: bool) -> Iterator[tuple[Any, Any]]:
        entries = list(coll._raw_items())
        # Stable (also with reverse=True): equal values keep insertion order, like "ORDER BY value, id".
        entries.sort(key=sort_key, reverse=desc)
        return iter(reversed(entries) if reverse else entries)

    return ordered


def mapping_of(entries: Iterable[tuple[Any, Any]], view_key: Callable[[Any], str],
               tracker: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The collection as the engines see it, ``{view_key(key): document}`` in order, and
    ``{view_key(key): key}``; every document in it counts as loaded for ``tracker``."""
    mapping: dict[str, Any] = {}
    originals: dict[str, Any] = {}
    for key, doc in entries:
        name = view_key(key)
        mapping[name] = doc
        originals[name] = key
    if tracker is not None:
        tracker.loaded = {id(doc) for doc in mapping.values()}
    return mapping, originals


def run(coll: Any, plan_steps: list[_jp.Step], src: Source, tracker: Any,
        view_key: Callable[[Any], str], owner: Callable[..., Any]) -> Iterator[tuple[Any, Any]]:
    """Matches of a jsonpath-ng plan, step by step, over ``src``."""
    for step in plan_steps:
        if step.kind == "fallback":
            mapping, originals = mapping_of(src(False), view_key, tracker)
            for match in _jp.matches(step.tree, mapping):
                yield owner(match, mapping, originals), match.value
            continue
        for key, doc in _documents(coll, step, src, view_key):
            tracker.current = doc
            values = _jp.descend(step, doc, None) if step.kind == "descend" else _jp.apply_rest(step, doc, None)
            for value in values:
                yield key, value


def run_rfc9535(coll: Any, steps: list[_rfc.Step], src: Source, tracker: Any,
                view_key: Callable[[Any], str]) -> Iterator[tuple[Any, Any]]:
    """Matches of an RFC 9535 plan over ``src``: every document is decoded and checked here."""

    def scan(step: _rfc.Step) -> Iterator[tuple[Any, str, Any, bool]]:
        for key, doc in src(False):
            tracker.current = doc
            yield key, view_key(key), doc, False

    def by_name(name: str) -> tuple[Any, Any] | None:
        return lookup(coll, name, src, view_key)

    return _rfc.run(steps, scan=scan, lookup=by_name, tracker=tracker,
                    load=lambda: mapping_of(src(False), view_key, tracker))


def lookup(coll: Any, name: str, src: Source, view_key: Callable[[Any], str]) -> tuple[Any, Any] | None:
    """The live ``(key, document)`` whose key reads as ``name`` (several: the newest, as in a dict)."""
    from ..errors import InvalidKey
    from .matches import key_candidates

    hits = []
    for candidate in key_candidates(name):
        try:
            entry = coll._table.entry(_keys.normalize(candidate), coll.store.now())
        except InvalidKey:
            continue
        if entry is not None and view_key(entry[0]) == name:
            hits.append(entry)
    if len(hits) == 1:
        return hits[0][0], coll._decode_raw(hits[0][1])
    found = None
    if hits:
        for key, doc in src(False):
            if view_key(key) == name:
                found = (key, doc)
    return found


def _documents(coll: Any, step: _jp.Step, src: Source,
               view_key: Callable[[Any], str]) -> Iterator[tuple[Any, Any]]:
    """The documents a streaming step reads: every one (scan, descend), or the named ones (keys)."""
    if step.kind in ("scan", "descend"):
        yield from src(False)
    elif step.kind == "keys":
        for name in step.names:
            found = lookup(coll, name, src, view_key)
            if found is not None:
                yield found
    else:  # pragma: no cover - fallback is handled by run()
        raise AssertionError(step.kind)


def run_objectpath(parsed: _op.Parsed, src: Source, tracker: Any,
                   view_key: Callable[[Any], str]) -> Iterator[tuple[Any, Any]]:
    if parsed.rowwise:
        for key, doc in src(False):
            tracker.current = doc
            for value in _op.rowwise(parsed, doc):
                yield key, value
        return
    mapping, originals = mapping_of(src(False), view_key, tracker)
    owner = _op.owners(parsed, mapping, originals)
    for value in _op.evaluate(parsed, mapping):
        yield owner(value), value


def run_jmespath(parsed: Any, src: Source, tracker: Any,
                 view_key: Callable[[Any], str]) -> Iterator[tuple[Any, Any]]:
    """Matches of a parsed JMESPath expression (:mod:`kvlite.query.jmespath`) over ``src``: a
    row-wise one evaluated on each streamed document, any other on the loaded collection."""
    if parsed.rowwise:
        for key, doc in src(False):
            tracker.current = doc
            for value in _jm.rowwise(parsed, doc):
                yield key, value
        return
    mapping, originals = mapping_of(src(False), view_key, tracker)
    yield from _jm.whole(parsed, mapping, originals)
