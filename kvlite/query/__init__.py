"""Queries over stored values: JSONPath and ObjectPath, streaming, with SQL push-down.

The promise: a query's answer is exactly what the engine returns on the
collection loaded into a plain ``dict`` (``{view_key(key): document}`` in
insertion order, with the adapter fixes described in
:mod:`kvlite.query.jsonpath` and :mod:`kvlite.query.objectpath`), computed
without loading it: rows come from one SQLite cursor and are decoded one at a
time; for JSON collections, filters on plain field paths narrow the rows in
SQL first (``json_extract``, expression indexes), and Python re-checks every
row that SQL lets through, so push-down can only make a query faster.

Keys as the engines see them (:func:`view_key`): a ``str`` key as it is;
``int``/``float``/``bool`` keys as ``str(key)`` (``1`` -> ``"1"``); ``bytes``
keys decoded as UTF-8 (invalid bytes as ``\\xNN`` escapes).  ``find`` still
yields the real key.
"""

from __future__ import annotations

import binascii
import itertools
import re
import sys
from typing import TYPE_CHECKING, Any, Iterator

import apsw

from ..errors import InvalidKey, KvliteError, QuerySyntaxError
from ..keys import encode as encode_key
from ..store import DB_ERRORS, translate_error
from . import jsonpath as _jp
from . import objectpath as _op
from . import python_source

if TYPE_CHECKING:
    from ..collection import Collection

__all__ = ["find", "explain", "view_key", "create_index", "drop_index", "indexes", "ENGINES"]

ENGINES = ("jsonpath", "objectpath")


def view_key(key: Any) -> str:
    """How a key appears to the path engines (the root mapping's keys are text)."""
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "backslashreplace")
    return str(key)


def _key_candidates(name: str) -> list[Any]:
    """Stored keys whose :func:`view_key` may be ``name``."""
    raw = name.encode("utf-8", "surrogateescape")
    out: list[Any] = [name, raw]
    # A bytes key that is not UTF-8 shows each bad byte as \xNN (view_key), and a key may also
    # hold those four characters as text: each \xNN is either (up to 2**10 combinations).
    escapes = list(re.finditer(rb"\\x([89a-f][0-9a-f])", raw))[:10]
    for mask in range(1, 1 << len(escapes)):
        parts, at = [], 0
        for bit, match in enumerate(escapes):
            if mask >> bit & 1:
                parts += [raw[at:match.start()], bytes([int(match[1], 16)])]
                at = match.end()
        out.append(b"".join(parts) + raw[at:])
    for convert in (int, float):
        try:
            out.append(encode_key(convert(name))[0])  # as stored (an int beyond 64 bits is a REAL)
        except (ValueError, OverflowError, InvalidKey):
            pass
    if name in ("True", "False"):
        out.append(int(name == "True"))
    return out


# -- ordering ------------------------------------------------------------------------------


def _order_sql(coll: Collection, order_by: str | None, desc: bool) -> tuple[str, str]:
    """``(ascending, descending)`` ORDER BY clauses for the collection's document order."""
    if order_by is None:
        return "id", "id DESC"
    order_by, desc = _jp.order_direction(order_by, desc)
    expr = f"json_extract(value, '{_jp.plain_field(coll, order_by, 'order_by')}')"
    # Ties keep insertion order; the second clause is the exact reverse of the first
    # (ties reversed too), which "$[-1]" and negative slices read from.
    if desc:
        return f"{expr} DESC, id", f"{expr}, id DESC"
    return f"{expr}, id", f"{expr} DESC, id DESC"


class _Tracker:
    """Which decoded documents are alive in this query, to tell whole-document matches apart."""

    __slots__ = ("current", "loaded", "conn", "last_id")

    def __init__(self) -> None:
        self.current: Any = None
        self.loaded: set[int] = set()
        #: The connection the query reads (see :meth:`kvlite.Store._query_snapshot`), and the
        #: largest row id when it started: rows added later are never read, even through a
        #: connection that sees them (the thread's own, inside a transaction block).
        self.conn: Any = None
        self.last_id: int = (1 << 63) - 1

    def is_document(self, value: Any) -> bool:
        return value is self.current or id(value) in self.loaded


# -- row sources ------------------------------------------------------------------------------


_NOW: Any = object()  # a parameter filled with the store's clock when the statement runs
_LAST_ID: Any = object()  # ... and with the largest row id when the query started
_PLACEHOLDERS = (_NOW, _LAST_ID)
#: The largest LIMIT/OFFSET SQLite takes (64-bit); a position beyond it is beyond any row.
_SQL_MAX = (1 << 63) - 1


def _select(coll: Collection, where: list[_jp.Condition], order: str,
            limit: int | None = None, offset: int = 0, sure: bool = False) -> tuple[str, list[Any]]:
    """SQL for the live rows meeting ``where``, in ``order``.  With ``sure``, a fourth column
    says whether every condition's ``sure`` part holds (the Python re-check can be skipped)."""
    # "+id": a filter only, never a reason for the planner to walk the table by rowid.
    clauses = [coll._live, "+id <= ?"] + [f"({c.sql})" for c in where]
    columns = f"key, key_type, {coll._value_sql}"
    params: list[Any] = []
    if sure:
        columns += ", " + " AND ".join(f"({c.sure})" for c in where)
        params += [p for c in where for p in c.sure_params]
    params += [_NOW, _LAST_ID] + [p for c in where for p in c.params]
    sql = f"SELECT {columns} FROM {coll._table} WHERE {' AND '.join(clauses)} ORDER BY {order}"
    if limit is not None or offset:
        sql += " LIMIT ? OFFSET ?"
        params += [-1 if limit is None else min(limit, _SQL_MAX), min(offset, _SQL_MAX)]
    return sql, params


def _bind(coll: Collection, params: list[Any], tracker: _Tracker | None) -> list[Any]:
    """``params`` with the placeholders filled in."""
    now = coll.store.now()
    last = (1 << 63) - 1 if tracker is None else tracker.last_id
    return [now if p is _NOW else last if p is _LAST_ID else p for p in params]


def _rows(coll: Collection, sql: str, params: list[Any],
          tracker: _Tracker | None = None) -> Iterator[tuple[Any, Any]]:
    """``(key, document)`` for each row of ``sql``, read from a cursor one at a time
    (on the query's connection, ``tracker.conn``)."""
    from ..keys import decode as decode_key

    params = _bind(coll, params, tracker)
    conn = tracker.conn if tracker is not None and tracker.conn is not None else coll.store._conn()
    cursor = conn.cursor()
    try:
        try:
            cursor.execute(sql, params)
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc
        decode = coll._decode_raw  # documents as plain data: the engines walk dicts and lists
        while True:
            try:
                row = next(cursor, None)
            except DB_ERRORS as exc:  # a damaged file can hold text that is not UTF-8
                raise translate_error(exc) from exc
            if row is None:
                return
            doc = decode(row[2])
            if tracker is not None:
                tracker.current = doc
            if len(row) == 4:
                yield decode_key(row[0], row[1]), doc, bool(row[3])
            else:
                yield decode_key(row[0], row[1]), doc
    finally:
        cursor.close(True)


# -- running a plan ----------------------------------------------------------------------------


def _json_where(coll: Collection, step: _jp.Step) -> list[_jp.Condition]:
    return step.where if coll.serializer.json else []


def _scan_sql(coll: Collection, step: _jp.Step, order: tuple[str, str]) -> tuple[str, list[Any], bool]:
    """The statement of a scan step, and whether it carries the ``sure`` column."""
    where = _json_where(coll, step)
    first = order[0]
    if first == "id" and where and {c.path for c in where} & set(coll.indexes()):
        # "+id": let SQLite narrow through the expression index and sort the
        # (few) hits, instead of walking the whole table in id order.
        first = "+id"
    flagged = (bool(where) and step.checkable and step.filter is not None
               and len(where) == len(step.filter.expressions))
    sql, params = _select(coll, where, first, sure=flagged)
    return sql, params, flagged


def _run_step(coll: Collection, step: _jp.Step, order: tuple[str, str],
              tracker: _Tracker) -> Iterator[tuple[Any, Any]]:
    context = None
    if step.kind == "scan":
        sql, params, flagged = _scan_sql(coll, step, order)
        if flagged and step.rest is None:  # `$[?(...)]`: the documents themselves, the hot case
            expressions = step.filter.expressions
            for key, doc, sure in _rows(coll, sql, params, tracker):
                if sure or all(expr.find(doc) for expr in expressions):
                    yield key, doc
        elif flagged:
            for key, doc, sure in _rows(coll, sql, params, tracker):
                for value in _jp.apply_rest(step, doc, context, sure):
                    yield key, value
        else:
            for key, doc in _rows(coll, sql, params, tracker):
                for value in _jp.apply_rest(step, doc, context):
                    yield key, value
    elif step.kind == "descend":
        sql, params = _select(coll, [], order[0])
        for key, doc in _rows(coll, sql, params, tracker):
            for value in _jp.descend(step, doc, context):
                yield key, value
    elif step.kind == "keys":
        for name in step.names:
            found = None
            candidates = _key_candidates(name)
            marks = ", ".join("?" for _ in candidates)
            sql = (f"SELECT key, key_type, {coll._value_sql} FROM {coll._table} "
                   f"WHERE {coll._live} AND key IN ({marks}) ORDER BY id")
            for key, doc in _rows(coll, sql, [_NOW] + candidates, tracker):
                if view_key(key) == name:
                    found = (key, doc)  # as in a dict built in order: the last value wins
            if found is not None:
                tracker.current = found[1]
                for value in _jp.apply_rest(step, found[1], context):
                    yield found[0], value
    elif step.kind == "position":
        for key, doc in _positions(coll, step, order, tracker):
            for value in _jp.apply_rest(step, doc, context):
                yield key, value
    else:  # pragma: no cover - fallback is handled by the caller
        raise AssertionError(step.kind)


def _positions(coll: Collection, step: _jp.Step, order: tuple[str, str],
               tracker: _Tracker) -> Iterator[tuple[Any, Any]]:
    if step.slice is None:
        for index in step.positions:
            if index >= 0:
                sql, params = _select(coll, [], order[0], 1, index)
            else:
                sql, params = _select(coll, [], order[1], 1, -index - 1)
            yield from _rows(coll, sql, params, tracker)
        return
    start, end, stride = step.slice
    if stride == 0:
        raise QuerySyntaxError("slice step cannot be zero", engine="jsonpath")
    if (start is None or start >= 0) and (end is not None and end >= 0) and stride in (None, 1):
        begin = start or 0
        sql, params = _select(coll, [], order[0], max(0, end - begin), begin)
        yield from _rows(coll, sql, params, tracker)
        return
    count = _count(coll, tracker)
    picked = range(count)[start:end:stride]
    if not picked:
        return
    if picked.step > 0:
        sql, params = _select(coll, [], order[0], None, picked.start)
    else:
        sql, params = _select(coll, [], order[1], None, count - 1 - picked.start)
    every = abs(picked.step)
    rows = _rows(coll, sql, params, tracker)
    for i, row in enumerate(rows):
        if i // every >= len(picked):
            rows.close()
            return
        if i % every == 0:
            yield row


def _count(coll: Collection, tracker: _Tracker) -> int:
    """The documents the query sees (live, and there when it started)."""
    sql = f"SELECT count(*) FROM {coll._table} WHERE {coll._live} AND +id <= ?"
    try:
        return int(tracker.conn.execute(sql, _bind(coll, [_NOW, _LAST_ID], tracker)).fetchone()[0])
    except DB_ERRORS as exc:
        raise translate_error(exc) from exc


def _load(coll: Collection, order: tuple[str, str],
          tracker: _Tracker) -> tuple[dict[str, Any], dict[str, Any]]:
    sql, params = _select(coll, [], order[0])
    rows = _rows(coll, sql, params, tracker)
    return python_source.mapping_of(rows, view_key, tracker)


def _owner(match: Any, mapping: dict[str, Any], originals: dict[str, Any]) -> Any:
    """The collection key of the document a jsonpath-ng match came from (``None``: the root)."""
    from jsonpath_ng import jsonpath as jp

    datum = match
    while datum.context is not None and datum.context.context is not None:
        datum = datum.context
    if datum.context is None:
        return None
    path = datum.path
    if isinstance(path, jp.Fields) and len(path.fields) == 1:
        return originals.get(path.fields[0])
    if isinstance(path, jp.Index) and len(path.indices) == 1:
        names = list(mapping)
        index = path.indices[0]
        if -len(names) <= index < len(names):
            return originals.get(names[index])
    return None


def find(coll: Collection, path: str, *, engine: str = "jsonpath", limit: int | None = None,
         offset: int = 0, order_by: str | None = None, desc: bool = False) -> Iterator[tuple[Any, Any]]:
    """``(key, matched value)`` for every match of ``path``; see :meth:`Collection.find`."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError("limit must be an int >= 0 or None")
    if not isinstance(offset, int) or offset < 0:
        raise ValueError("offset must be an int >= 0")
    if desc and order_by is None:
        raise ValueError("desc=True orders by order_by: give order_by too")
    tracker = _Tracker()
    if not hasattr(coll, "_table"):  # no SQL engine behind it: Python evaluation over streamed entries
        src = python_source.source(coll, order_by, desc)
        if engine == "jsonpath":
            matches = python_source.run(coll, _jp.plan(_jp.parse(path)).steps, src, tracker, view_key,
                                        _key_candidates, _owner)
        else:
            matches = python_source.run_objectpath(_op.parse(path), src, tracker, view_key)
    else:
        matches = _find_sql(coll, path, engine, order_by, desc, tracker)
    if coll._model is not None:
        matches = _as_models(coll, matches, tracker)
    # islice takes at most sys.maxsize; no collection has that many matches.
    stop = None if limit is None or offset + limit > sys.maxsize else offset + limit
    return _guarded(matches, path, engine, min(offset, sys.maxsize), stop)


def _guarded(matches: Iterator[tuple[Any, Any]], path: str, engine: str, offset: int,
             stop: int | None) -> Iterator[tuple[Any, Any]]:
    """``matches[offset:stop]``, as a generator whose ``close()`` (or leaving a ``for`` loop
    early and dropping it) closes the SQLite cursor and ends its read snapshot at once.

    An engine's own error while evaluating (jsonpath-ng's `parent` of the root, `sorted` over
    mixed types, a bad regex in ``=~``, ...) is raised as :class:`QuerySyntaxError`; kvlite's
    errors (and SQLite's) pass through unchanged."""
    try:
        if offset or stop is not None:
            yield from itertools.islice(matches, offset, stop)
        else:
            yield from matches
    except (KvliteError, apsw.Error):
        raise
    except Exception as exc:
        raise QuerySyntaxError(f"{engine} could not evaluate it: {type(exc).__name__}: {exc}",
                               path=path, engine=engine) from exc
    finally:
        close = getattr(matches, "close", None)
        if close is not None:
            close()


def _find_sql(coll: Collection, path: str, engine: str, order_by: str | None, desc: bool,
              tracker: _Tracker) -> Iterator[tuple[Any, Any]]:
    order = _order_sql(coll, order_by, desc)
    if engine == "jsonpath":
        tree = _jp.parse(path)
        return _in_snapshot(coll, tracker, lambda: _find_jsonpath(coll, tree, order, tracker))
    parsed = _op.parse(path)
    return _in_snapshot(coll, tracker, lambda: _find_objectpath(coll, parsed, order, tracker))


def _in_snapshot(coll: Collection, tracker: _Tracker,
                 run: Any) -> Iterator[tuple[Any, Any]]:
    """``run()``'s matches, every statement of them read from one snapshot (from the first
    match on, until the iterator ends or is closed)."""
    with coll.store._query_snapshot() as conn:
        tracker.conn = conn
        try:
            row = conn.execute(f"SELECT max(id) FROM {coll._table}").fetchone()
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc
        tracker.last_id = -1 if row[0] is None else row[0]
        yield from run()


def _as_models(coll: Collection, matches: Iterator[tuple[Any, Any]],
               tracker: _Tracker) -> Iterator[tuple[Any, Any]]:
    """For a typed collection: a match that is a whole document comes back as a model instance."""
    adapter = coll._model
    assert adapter is not None
    for key, value in matches:
        yield key, (adapter.load(value) if tracker.is_document(value) else value)


def _find_jsonpath(coll: Collection, tree: Any, order: tuple[str, str],
                   tracker: _Tracker) -> Iterator[tuple[Any, Any]]:
    plan = _jp.plan(tree)
    for step in plan.steps:
        if step.kind == "fallback":
            mapping, originals = _load(coll, order, tracker)
            for match in step.tree.find(mapping):
                yield _owner(match, mapping, originals), match.value
        else:
            yield from _run_step(coll, step, order, tracker)


def _find_objectpath(coll: Collection, parsed: _op.Parsed, order: tuple[str, str],
                     tracker: _Tracker) -> Iterator[tuple[Any, Any]]:
    if parsed.rowwise:
        sql, params = _select(coll, [], order[0])
        for key, doc in _rows(coll, sql, params, tracker):
            for value in _op.rowwise(parsed, doc):
                yield key, value
        return
    mapping, originals = _load(coll, order, tracker)
    owner = _op.owners(parsed, mapping, originals)
    for value in _op.evaluate(parsed, mapping):
        yield owner(value), value


# -- explain --------------------------------------------------------------------------------------


def explain(coll: Collection, path: str, *, engine: str = "jsonpath", order_by: str | None = None,
            desc: bool = False) -> dict[str, Any]:
    """What runs in SQL and what in Python for ``path`` (see :meth:`Collection.explain`)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if desc and order_by is None:
        raise ValueError("desc=True orders by order_by: give order_by too")
    if not hasattr(coll, "_table"):
        return _explain_python(coll, path, engine, order_by)
    order = _order_sql(coll, order_by, desc)
    pushdown = coll.serializer.json
    steps: list[dict[str, Any]] = []
    if engine == "objectpath":
        parsed = _op.parse(path)
        sql, params = _select(coll, [], order[0])
        steps.append({
            "kind": "scan" if parsed.rowwise else "fallback",
            "sql": sql,
            "python": ("objectpath on each document" if parsed.rowwise
                       else "objectpath on the whole collection loaded in memory"),
            "pushdown": [],
        })
    else:
        for step in _jp.plan(_jp.parse(path)).steps:
            where = step.where if pushdown else []
            info: dict[str, Any] = {"kind": step.kind, "pushdown": [c.text for c in where]}
            if step.kind == "fallback":
                info["python"] = "jsonpath-ng on the whole collection loaded in memory"
            elif step.kind == "keys":
                info["python"] = "point lookups of " + ", ".join(repr(n) for n in step.names)
            elif step.kind == "position":
                info["python"] = "documents by position (LIMIT/OFFSET)"
            elif step.kind == "descend":
                info["python"] = "recursive search inside every document"
            else:
                checked = "filter re-checked" if step.filter is not None else "no filter"
                info["python"] = f"jsonpath-ng on each document ({checked})"
            if step.kind == "scan":
                sql, params, flagged = _scan_sql(coll, step, order)
                if flagged:
                    info["python"] += "; skipped where SQL already proved the match"
            if step.kind in ("descend", "fallback"):
                sql, params = _select(coll, [], order[0])
            if step.kind in ("scan", "descend", "fallback"):
                info["sql"] = sql
                info["params"] = [p for p in params if p not in _PLACEHOLDERS]
                info["query_plan"] = _query_plan(coll, sql, params)
            steps.append(info)
    streaming = all(s["kind"] != "fallback" for s in steps)
    notes = []
    if not pushdown:
        notes.append(f"serializer {coll.serializer.name!r} does not store JSON: no SQL push-down, "
                     "every document is decoded and checked in Python")
    return {"engine": engine, "path": path, "streaming": streaming, "steps": steps, "notes": notes}


def _explain_python(coll: Any, path: str, engine: str, order_by: str | None) -> dict[str, Any]:
    if engine == "objectpath":
        parsed = _op.parse(path)
        kinds = ["scan" if parsed.rowwise else "fallback"]
    else:
        # A slice of the documents is taken from a list of them all (python_source.run).
        kinds = ["fallback" if step.kind == "position" and step.slice is not None else step.kind
                 for step in _jp.plan(_jp.parse(path)).steps]
    steps = [{"kind": kind, "pushdown": [],
              "python": ("the engine on the whole collection loaded in memory" if kind == "fallback"
                         else "the engine on each document, streamed from the backend")} for kind in kinds]
    notes = [f"{type(coll.store).__name__} has no query engine: every document is decoded and checked in Python"]
    if order_by is not None:
        notes.append("order_by sorts in Python, which loads the collection")
    return {"engine": engine, "path": path, "streaming": "fallback" not in kinds and order_by is None,
            "steps": steps, "notes": notes}


def _query_plan(coll: Collection, sql: str, params: list[Any]) -> list[str]:
    params = _bind(coll, params, None)
    try:
        return [row[3] for row in coll.store._conn().execute("EXPLAIN QUERY PLAN " + sql, params)]
    except apsw.Error as exc:
        raise translate_error(exc) from exc


# -- indexes ------------------------------------------------------------------------------------------


def _index_name(coll: Collection, sql_path: str) -> str:
    return f"kv_{coll._table_id:d}_ix_{binascii.hexlify(sql_path.encode()).decode()}"


def _index_path(coll: Collection, path: str) -> str:
    return _jp.plain_field(coll, path, "an index")


def create_index(coll: Collection, path: str) -> str:
    sql_path = _index_path(coll, path)
    name = _index_name(coll, sql_path)
    conn = coll.store._conn()
    with coll.store._write(conn):
        try:
            conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON {coll._table}(json_extract(value, \'{sql_path}\'))')
        except apsw.Error as exc:
            raise translate_error(exc) from exc
    return sql_path


def drop_index(coll: Collection, path: str) -> bool:
    sql_path = _index_path(coll, path)
    name = _index_name(coll, sql_path)
    conn = coll.store._conn()
    with coll.store._write(conn):
        try:
            existed = conn.execute("SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?",
                                   (name,)).fetchone() is not None
            conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        except apsw.Error as exc:
            raise translate_error(exc) from exc
    return existed


def indexes(coll: Collection) -> list[str]:
    prefix = f"kv_{coll._table_id:d}_ix_"
    try:
        rows = coll.store._conn().execute(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? ORDER BY name",
            (f"kv_{coll._table_id:d}",)).fetchall()
    except apsw.Error as exc:
        raise translate_error(exc) from exc
    out = []
    for (name,) in rows:
        if name.startswith(prefix):
            try:
                out.append(binascii.unhexlify(name[len(prefix):]).decode())
            except (binascii.Error, UnicodeDecodeError):
                continue
    return out
