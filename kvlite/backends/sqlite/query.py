"""Queries pushed down to SQLite: a query plan's filters and orders as SQL over one table.

The query front-end (:mod:`kvlite.query`) parses and plans; this module runs
the plan on an :class:`~kvlite.backends.sqlite.table.SQLiteTable`: for JSON
collections, filters on plain field paths narrow the rows in SQL first
(``json_extract``, expression indexes), rows come from one cursor on one read
snapshot and are decoded one at a time, and Python re-checks every row SQL lets
through, so push-down can only make a query faster, never change its answer.
"""

from __future__ import annotations

import binascii
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

import apsw
import orjson

from ...keys import decode as decode_key
from ...keys import view as view_key
from ...query import jsonpath as _jp
from ...query import objectpath as _op
from ...query import facets, python_source
from ...query import rfc9535 as _rfc
from ...query.fields import order_direction, plain_field
from ...query.matches import Tracker, key_candidates, owner
from . import rfc9535_sql
from .errors import DB_ERRORS, translate_error

if TYPE_CHECKING:
    from .table import SQLiteTable

__all__ = ["find", "explain", "create_index", "drop_index", "indexes"]


# -- ordering ------------------------------------------------------------------------------

#: ``json_extract`` gives an integer beyond 64 bits as a rounded REAL (2**64-2, 2**64-1 and the
#: float 2**64 all as 18446744073709551616.0), so SQL ties numbers that differ.  Every other number
#: it gives exactly (an INTEGER, or the float the JSON text stands for), and SQLite compares
#: INTEGER with REAL exactly; so only a number at least this large may be tied wrongly.
_ROUNDED = float(1 << 63)


_NUMBERS = (int, float)
_INT_MIN = -(1 << 63)  # an INTEGER that SQL finds equal to a REAL that may be rounded


def _may_be_rounded(value: Any) -> bool:
    """Whether ``value``, as ``json_extract`` gave it, may stand for several different numbers
    (or tie with one that does: ``-2**63``)."""
    return value.__class__ in _NUMBERS and not -_ROUNDED < value < _ROUNDED


class _Order(NamedTuple):
    """A query's document order: ``forward`` and its exact reverse ``backward``, as ORDER BY clauses.

    With ``order_by``, ``column`` is the SQL value they sort on (each ordered row carries it as
    its last column) and ``key`` the exact order of a ``(key, document)`` entry, the one every
    other engine sorts by (:func:`kvlite.query.python_source.order_key`): SQL's order is
    exact except within a run of rows tied on a REAL that may be rounded (see
    :func:`_may_be_rounded`), which is re-sorted in Python by ``key``.
    """

    forward: str
    backward: str
    column: str | None = None
    key: Callable[[tuple[Any, Any]], Any] | None = None
    desc: bool = False
    missing_last: bool = False

    def descending(self, backward: bool) -> bool:
        """Whether the clause (``backward`` or not) sorts the values from the largest."""
        return self.desc != backward

    def missing_first(self, backward: bool) -> bool:
        """Whether the clause (``backward`` or not) puts the rows without a value (missing or
        ``null``: SQL NULL) first."""
        return backward if self.missing_last else not self.descending(backward)


def _order_sql(table: SQLiteTable, order_by: str | None, desc: bool, missing_last: bool = False) -> _Order:
    """The collection's document order for ``order_by`` (``None``: insertion order)."""
    if order_by is None:
        return _Order("id", "id DESC")
    order_by, desc = order_direction(order_by, desc)
    field = plain_field(table, order_by, "order_by")
    expr = f"json_extract(value, '{field}')"
    key = python_source.order_key(field, desc, missing_last)
    # Ties keep insertion order; the second clause is the exact reverse of the first
    # (ties reversed too), which negative slices read from.
    last = f"{expr} IS NULL, " if missing_last else ""  # rows without a value after the others
    first = f"{expr} IS NULL DESC, " if missing_last else ""
    if desc:
        return _Order(f"{last}{expr} DESC, id", f"{first}{expr}, id DESC", expr, key, True, missing_last)
    return _Order(f"{last}{expr}, id", f"{first}{expr} DESC, id DESC", expr, key, False, missing_last)


# -- row sources ------------------------------------------------------------------------------


_NOW: Any = object()  # a parameter filled with the store's clock when the statement runs
_LAST_ID: Any = object()  # ... and with the largest row id when the query started
_PLACEHOLDERS = (_NOW, _LAST_ID)
#: The largest LIMIT/OFFSET SQLite takes (64-bit); a position beyond it is beyond any row.
_SQL_MAX = (1 << 63) - 1


def _select(table: SQLiteTable, where: list[Any], order: _Order, *, backward: bool = False,
            limit: int | None = None, offset: int = 0, sure: bool = False) -> tuple[str, list[Any]]:
    """SQL for the live rows meeting ``where``, in ``order`` (its ``backward`` clause with
    ``backward``).  With ``sure``, a fourth column says whether every condition's ``sure`` part
    holds (the Python re-check can be skipped); with ``order_by``, the last column is the value
    ordered on (:func:`_rows` groups the rows it may have tied wrongly)."""
    # The filter first: it rejects most rows of a selective query, before the liveness test.
    # "+id": a filter only, never a reason for the planner to walk the table by rowid.
    clauses = [f"({c.sql})" for c in where] + [table.live_sql, "+id <= ?"]
    columns = f"key, key_type, {table.value_sql}"
    params: list[Any] = []
    if sure:
        columns += ", " + " AND ".join(f"({c.sure})" for c in where)
        params += [p for c in where for p in c.sure_params]
    if order.column is not None:
        columns += f", {order.column}"
    params += [p for c in where for p in c.params] + [_NOW, _LAST_ID]
    sql = (f"SELECT {columns} FROM {table.sql_name} WHERE {' AND '.join(clauses)} "
           f"ORDER BY {order.backward if backward else order.forward}")
    if limit is not None or offset:
        sql += " LIMIT ? OFFSET ?"
        params += [-1 if limit is None else min(limit, _SQL_MAX), min(offset, _SQL_MAX)]
    return sql, params


def _bind(table: SQLiteTable, params: list[Any], tracker: Tracker | None) -> list[Any]:
    """``params`` with the placeholders filled in."""
    now = table.engine.clock()
    last = (1 << 63) - 1 if tracker is None else tracker.last_id
    return [now if p is _NOW else last if p is _LAST_ID else p for p in params]


def _runs(rows: Iterator[Any]) -> Iterator[list[Any]]:
    """``rows`` (ordered on their last column) in runs: each run of rows tied on a value that
    may be rounded (see :func:`_may_be_rounded`) as one list, every other row alone."""
    tied: list[Any] = []
    for row in rows:
        if tied:
            if row[-1] == tied[0][-1]:
                tied.append(row)
                continue
            yield tied
            tied = []
        if _may_be_rounded(row[-1]):
            tied.append(row)
        else:
            yield [row]
    if tied:
        yield tied


def _exactly(table: SQLiteTable, order: _Order, backward: bool, run: list[Any]) -> list[tuple[Any, Any]]:
    """``(row, document or None)`` for a run of :func:`_runs`, in the exact order (stable: equal
    values keep their SQL order, the insertion order or its reverse)."""
    if len(run) < 2:
        return [(row, None) for row in run]
    key = order.key
    assert key is not None
    decode = table.decode_raw
    held = [(row, decode(row[2])) for row in run]
    held.sort(key=lambda item: key((None, item[1])), reverse=order.descending(backward))
    return held


def _reader(table: SQLiteTable, tracker: Tracker | None, ordered: bool) -> Callable[[Any], Any]:
    """``one(row, document=None)``: ``(key, document)`` of a row of :func:`_select` (``(key,
    document, sure)`` when it has the ``sure`` column; ``ordered``: it ends with the order
    column); the document is decoded unless given."""
    decode = table.decode_raw  # documents as plain data: the engines walk dicts and lists
    flagged = 5 if ordered else 4  # the width of a row with the `sure` column

    def one(row: Any, doc: Any = None) -> Any:
        if doc is None:
            doc = decode(row[2])
        if tracker is not None:
            tracker.current = doc
        if len(row) == flagged:
            return decode_key(row[0], row[1]), doc, bool(row[3])
        return decode_key(row[0], row[1]), doc

    return one


def _rows(table: SQLiteTable, sql: str, params: list[Any], tracker: Tracker | None = None,
          order: _Order | None = None, backward: bool = False) -> Iterator[Any]:
    """``(key, document)`` (and the ``sure`` flag, when ``sql`` has it) for each row of ``sql``,
    read from a cursor and decoded one at a time (on the query's connection, ``tracker.conn``).
    With an ``order`` by ``order_by`` (``sql`` from :func:`_select` with it), in its exact
    order: only a run of rows tied on a rounded REAL is held, to be re-sorted (:func:`_runs`)."""
    exact = order is not None and order.column is not None
    one = _reader(table, tracker, exact)
    decode = table.decode_raw
    flagged = 5 if exact else 4
    params = _bind(table, params, tracker)
    conn = tracker.conn if tracker is not None and tracker.conn is not None else table.engine.connection()
    cursor = conn.cursor()
    tied: list[Any] = []  # with `exact`: the run of rows tied on a rounded REAL read so far
    try:
        try:
            cursor.execute(sql, params)
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc
        while True:
            try:
                row = next(cursor, None)
            except DB_ERRORS as exc:  # a damaged file can hold text that is not UTF-8
                raise translate_error(exc) from exc
            if exact:  # the same as _runs(), in this loop: one generator less per row
                if tied:
                    if row is not None and row[-1] == tied[0][-1]:
                        tied.append(row)
                        continue
                    for held, doc in _exactly(table, order, backward, tied):  # type: ignore[arg-type]
                        yield one(held, doc)
                    tied = []
                if row is not None:
                    value = row[-1]  # _may_be_rounded(value), inline: floats first, the common case is cheap
                    if (value.__class__ is float and not -_ROUNDED < value < _ROUNDED) or value == _INT_MIN:
                        tied.append(row)
                        continue
            if row is None:
                return
            doc = decode(row[2])  # one(row), inline: this loop is every query's hot path
            if tracker is not None:
                tracker.current = doc
            if len(row) == flagged:
                yield decode_key(row[0], row[1]), doc, bool(row[3])
            else:
                yield decode_key(row[0], row[1]), doc
    finally:
        cursor.close(True)


# -- running a plan ----------------------------------------------------------------------------


def _run_step(table: SQLiteTable, step: _jp.Step, order: _Order,
              tracker: Tracker) -> Iterator[tuple[Any, Any]]:
    """One streaming step of a jsonpath-ng plan (:func:`kvlite.query.jsonpath.plan`); the
    dialect's filters are checked in Python, on every document (no SQL push-down)."""
    context = None
    if step.kind in ("scan", "descend"):
        sql, params = _select(table, [], order)
        for key, doc in _rows(table, sql, params, tracker, order):
            values = _jp.descend(step, doc, context) if step.kind == "descend" else _jp.apply_rest(step, doc, context)
            for value in values:
                yield key, value
    elif step.kind == "keys":
        for name in step.names:
            found = None
            candidates = key_candidates(name)
            marks = ", ".join("?" for _ in candidates)
            sql = (f"SELECT key, key_type, {table.value_sql} FROM {table.sql_name} "
                   f"WHERE {table.live_sql} AND key IN ({marks}) ORDER BY id")
            for key, doc in _rows(table, sql, [_NOW] + candidates, tracker):
                if view_key(key) == name:
                    found = (key, doc)  # as in a dict built in order: the last value wins
            if found is not None:
                tracker.current = found[1]
                for value in _jp.apply_rest(step, found[1], context):
                    yield found[0], value
    else:  # pragma: no cover - fallback is handled by the caller
        raise AssertionError(step.kind)


def _load(table: SQLiteTable, order: _Order,
          tracker: Tracker) -> tuple[dict[str, Any], dict[str, Any]]:
    sql, params = _select(table, [], order)
    rows = _rows(table, sql, params, tracker, order)
    return python_source.mapping_of(rows, view_key, tracker)


def find(table: SQLiteTable, language: str, parsed: Any, order_by: str | None, desc: bool,
         tracker: Tracker, missing_last: bool = False) -> Iterator[tuple[Any, Any]] | None:
    """The matches of a parsed query (``language`` ``"jsonpath"`` or ``"objectpath"``), in one
    read snapshot; see :meth:`kvlite.Collection.find`."""
    order = _order_sql(table, order_by, desc, missing_last)
    if language == "jsonpath":
        return _in_snapshot(table, tracker, lambda: _find_rfc9535(table, parsed, order, tracker))
    if language == "jsonpath-ng":
        return _in_snapshot(table, tracker, lambda: _find_jsonpath(table, parsed, order, tracker))
    if language == "objectpath":
        return _in_snapshot(table, tracker, lambda: _find_objectpath(table, parsed, order, tracker))
    if language == "jmespath":
        return _in_snapshot(table, tracker, lambda: _find_jmespath(table, parsed, order, tracker))
    return None


def _in_snapshot(table: SQLiteTable, tracker: Tracker,
                 run: Any) -> Iterator[tuple[Any, Any]]:
    """``run()``'s matches, every statement of them read from one snapshot (from the first
    match on, until the iterator ends or is closed)."""
    with table.engine.query_snapshot() as conn:
        tracker.conn = conn
        try:
            row = conn.execute(f"SELECT max(id) FROM {table.sql_name}").fetchone()
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc
        tracker.last_id = -1 if row[0] is None else row[0]
        yield from run()


def _rfc_conditions(table: SQLiteTable, step: _rfc.Step) -> tuple[list[rfc9535_sql.Condition], bool]:
    """The SQL conditions of an RFC 9535 scan step, and whether they decide it exactly."""
    if step.filter is None or not table.serializer.json:
        return [], False
    return rfc9535_sql.conditions(step.filter, table.sql_name)


def _rfc_select(table: SQLiteTable, where: list[rfc9535_sql.Condition], order: _Order) -> tuple[str, list[Any]]:
    if order.forward == "id" and where and {c.path for c in where} & set(table.indexes()):
        order = order._replace(forward="+id")  # narrow through the index, sort the few hits
    return _select(table, where, order)  # type: ignore[arg-type]


def _lookup(table: SQLiteTable, name: str, tracker: Tracker) -> tuple[Any, Any] | None:
    """The live ``(key, document)`` whose key reads as ``name`` (several: the newest, as in a dict)."""
    found = None
    candidates = key_candidates(name)
    marks = ", ".join("?" for _ in candidates)
    sql = (f"SELECT key, key_type, {table.value_sql} FROM {table.sql_name} "
           f"WHERE {table.live_sql} AND +id <= ? AND key IN ({marks}) ORDER BY id")
    for key, doc in _rows(table, sql, [_NOW, _LAST_ID] + candidates, tracker):
        if view_key(key) == name:
            found = (key, doc)
    return found


def _find_rfc9535(table: SQLiteTable, query: Any, order: _Order, tracker: Tracker) -> Iterator[tuple[Any, Any]]:
    def scan(step: _rfc.Step) -> Iterator[tuple[Any, str, Any, bool]]:
        where, exact = _rfc_conditions(table, step)
        sql, params = _rfc_select(table, where, order)
        for key, doc in _rows(table, sql, params, tracker, order):
            yield key, (key if key.__class__ is str else view_key(key)), doc, exact

    return _rfc.run(_rfc.plan(query).steps, scan=scan, lookup=lambda name: _lookup(table, name, tracker),
                    load=lambda: _load(table, order, tracker), tracker=tracker)


def count_matches(table: SQLiteTable, language: str, parsed: Any) -> int | None:
    """The number of matches of an RFC 9535 query ``$[?filter]`` whose filter SQL decides
    exactly: one ``SELECT count(*)``, no document read; else ``None``."""
    if language != "jsonpath":
        return None
    steps = _rfc.plan(parsed).steps
    if len(steps) != 1 or steps[0].kind != "scan" or steps[0].rest or steps[0].filter is None:
        return None
    where, exact = _rfc_conditions(table, steps[0])
    if not exact:
        return None
    sql = (f"SELECT count(*) FROM {table.sql_name} WHERE {table.live_sql} AND "
           + " AND ".join(f"({c.sql})" for c in where))
    params = [table.engine.clock()] + [p for c in where for p in c.params]
    try:
        return int(table.engine.connection().execute(sql, params).fetchone()[0])
    except DB_ERRORS as exc:
        raise translate_error(exc) from exc


def _find_jsonpath(table: SQLiteTable, tree: Any, order: _Order,
                   tracker: Tracker) -> Iterator[tuple[Any, Any]]:
    plan = _jp.plan(tree)
    for step in plan.steps:
        if step.kind == "fallback":
            mapping, originals = _load(table, order, tracker)
            for match in _jp.matches(step.tree, mapping):
                yield owner(match, mapping, originals), match.value
        else:
            yield from _run_step(table, step, order, tracker)


def _find_objectpath(table: SQLiteTable, parsed: _op.Parsed, order: _Order,
                     tracker: Tracker) -> Iterator[tuple[Any, Any]]:
    if parsed.rowwise:
        sql, params = _select(table, [], order)
        for key, doc in _rows(table, sql, params, tracker, order):
            for value in _op.rowwise(parsed, doc):
                yield key, value
        return
    mapping, originals = _load(table, order, tracker)
    owner_of = _op.owners(parsed, mapping, originals)
    for value in _op.evaluate(parsed, mapping):
        yield owner_of(value), value


def _find_jmespath(table: SQLiteTable, parsed: Any, order: _Order,
                   tracker: Tracker) -> Iterator[tuple[Any, Any]]:
    """A row-wise JMESPath query (:mod:`kvlite.query.jmespath`) one document at a time, its
    filter narrowed in SQL (:mod:`.jmespath_sql`; rows SQL proves skip the re-check); any
    other on the collection loaded in memory."""
    from ...query import jmespath as _jm
    from . import jmespath_sql

    if not parsed.rowwise:
        mapping, originals = _load(table, order, tracker)
        yield from _jm.whole(parsed, mapping, originals)
        return
    where, _ = jmespath_sql.where(table, parsed)
    if order.forward == "id" and jmespath_sql.indexed(table, where):
        order = order._replace(forward="+id")  # narrow through the index, sort the few hits
    sql, params = _select(table, where, order, sure=bool(where))  # type: ignore[arg-type]
    if where:
        for key, doc, sure in _rows(table, sql, params, tracker, order):
            for value in _jm.rowwise(parsed, doc, sure):
                yield key, value
    else:
        for key, doc in _rows(table, sql, params, tracker, order):
            for value in _jm.rowwise(parsed, doc):
                yield key, value


def _explain_jmespath(table: SQLiteTable, parsed: Any, order: _Order) -> list[dict[str, Any]]:
    from . import jmespath_sql

    if not parsed.rowwise:
        sql, params = _select(table, [], order)
        info: dict[str, Any] = {"kind": "fallback", "pushdown": [],
                                "python": "jmespath on the whole collection loaded in memory"}
    else:
        where, exact = jmespath_sql.where(table, parsed)
        used = jmespath_sql.indexed(table, where)
        if order.forward == "id" and used:
            order = order._replace(forward="+id")
        sql, params = _select(table, where, order, sure=bool(where))  # type: ignore[arg-type]
        info = {"kind": "scan", "pushdown": [c.text for c in where]}
        if parsed.condition is None:
            info["python"] = "jmespath on each document"
        elif exact:
            info["python"] = "nothing for the filter: SQL decides it exactly; jmespath on each document it keeps"
        elif where and where[0].sure != "0":
            info["python"] = ("the filter re-checked on each row SQL does not prove (where jmespath may "
                              "raise); jmespath on each document it keeps")
        else:
            info["python"] = "the filter re-checked on each row SQL lets through; jmespath on each document it keeps"
        if used:
            info["indexes"] = used
    info["sql"] = sql
    info["params"] = [p for p in params if p not in _PLACEHOLDERS]
    info["query_plan"] = _query_plan(table, sql, params)
    return [info]


def explain(table: SQLiteTable, language: str, parsed: Any, order_by: str | None,
            desc: bool, missing_last: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """``(steps, notes)``: what runs in SQL and what in Python (see :meth:`kvlite.Collection.explain`)."""
    order = _order_sql(table, order_by, desc, missing_last)
    pushdown = table.serializer.json
    steps: list[dict[str, Any]] = []
    if language == "jsonpath":
        steps = _explain_rfc9535(table, parsed, order)
    elif language == "jmespath":
        steps = _explain_jmespath(table, parsed, order)
    elif language == "objectpath":
        sql, params = _select(table, [], order)
        steps.append({
            "kind": "scan" if parsed.rowwise else "fallback",
            "sql": sql,
            "python": ("objectpath on each document" if parsed.rowwise
                       else "objectpath on the whole collection loaded in memory"),
            "pushdown": [],
        })
    elif language == "jsonpath-ng":
        for step in _jp.plan(parsed).steps:  # no push-down: every filter is checked in Python
            info: dict[str, Any] = {"kind": step.kind, "pushdown": []}
            if step.kind == "fallback":
                info["python"] = "jsonpath-ng on the whole collection loaded in memory"
            elif step.kind == "keys":
                info["python"] = "point lookups of " + ", ".join(repr(n) for n in step.names)
            elif step.kind == "descend":
                info["python"] = "recursive search inside every document"
            else:
                checked = "filter checked" if step.filter is not None else "no filter"
                info["python"] = f"jsonpath-ng on each document ({checked})"
            if step.kind in ("scan", "descend", "fallback"):
                sql, params = _select(table, [], order)
                info["sql"] = sql
                info["params"] = [p for p in params if p not in _PLACEHOLDERS]
                info["query_plan"] = _query_plan(table, sql, params)
            steps.append(info)
    notes = []
    if not pushdown:
        notes.append(f"serializer {table.serializer.name!r} does not store JSON: no SQL push-down, "
                     "every document is decoded and checked in Python")
    return steps, notes


_RFC_PYTHON = {
    "keys": "point lookups of {names}",
    "descend": "the descendant segment inside every document",
    "whole": "the query on the whole collection loaded in memory (a filter reads the root $)",
}


def _explain_rfc9535(table: SQLiteTable, query: Any, order: _Order) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    indexed = set(table.indexes())
    for step in _rfc.plan(query).steps:
        where, exact = _rfc_conditions(table, step)
        info: dict[str, Any] = {"kind": "fallback" if step.kind == "whole" else step.kind,
                                "pushdown": [c.text for c in where]}
        if step.kind == "scan":
            if step.filter is None:
                info["python"] = "every document"
            elif exact:
                info["python"] = "nothing: SQL decides the filter exactly"
            else:
                info["python"] = "the filter re-checked on each row SQL lets through"
        else:
            info["python"] = _RFC_PYTHON[step.kind].format(names=", ".join(repr(n) for n in step.names))
        if step.rest:
            info["python"] += "; then " + "".join(str(segment) for segment in step.rest) + " in each document"
        if step.kind != "keys":
            sql, params = _rfc_select(table, where, order)
            info["sql"] = sql
            info["params"] = [p for p in params if p not in _PLACEHOLDERS]
            info["query_plan"] = _query_plan(table, sql, params)
            used = sorted({c.path for c in where if c.path in indexed})
            if used:
                info["indexes"] = used
                info["why"] = ("an expression index on json_extract(value, path) serves each comparison on "
                               "that path; json_extract reads true as 1 and rounds integers beyond 64 bits, so "
                               "json_type() in the same condition keeps only values of the literal's type")
        steps.append(info)
    return steps


def _query_plan(table: SQLiteTable, sql: str, params: list[Any]) -> list[str]:
    """SQLite's plan for ``sql``, with kvlite's index names shown as the paths they index."""
    params = _bind(table, params, None)
    try:
        rows = [row[3] for row in table.engine.connection().execute("EXPLAIN QUERY PLAN " + sql, params)]
    except apsw.Error as exc:
        raise translate_error(exc) from exc
    names = {_index_name(table, path): path for path in indexes(table)}
    for name, path in names.items():
        rows = [row.replace(f"INDEX {name}", f"INDEX on {path}") for row in rows]
    return rows


# -- indexes ------------------------------------------------------------------------------------------


def _index_name(table: SQLiteTable, sql_path: str) -> str:
    return f"kv_{table.table_id:d}_ix_{binascii.hexlify(sql_path.encode()).decode()}"


def _index_path(table: SQLiteTable, path: str) -> str:
    return plain_field(table, path, "an index")


def create_index(table: SQLiteTable, path: str) -> str:
    sql_path = _index_path(table, path)
    name = _index_name(table, sql_path)
    conn = table.engine.connection()
    with table.engine.write(conn):
        try:
            conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON {table.sql_name}(json_extract(value, \'{sql_path}\'))')
        except apsw.Error as exc:
            raise translate_error(exc) from exc
    return sql_path


def drop_index(table: SQLiteTable, path: str) -> bool:
    sql_path = _index_path(table, path)
    name = _index_name(table, sql_path)
    conn = table.engine.connection()
    with table.engine.write(conn):
        try:
            existed = conn.execute("SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?",
                                   (name,)).fetchone() is not None
            conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        except apsw.Error as exc:
            raise translate_error(exc) from exc
    return existed


def indexes(table: SQLiteTable) -> list[str]:
    prefix = f"kv_{table.table_id:d}_ix_"
    try:
        rows = table.engine.connection().execute(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? ORDER BY name",
            (f"kv_{table.table_id:d}",)).fetchall()
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



# -- documents changed where they are: one statement when SQL decides the filter ---------------


def _exact_where(table: SQLiteTable, query: Any) -> tuple[str, list[Any]] | None:
    """``(SQL condition, params)`` deciding exactly which live documents ``$[?filter]`` (or
    ``$[*]``) selects (its first parameter is ``now``), or ``None`` when SQL cannot decide it
    (then the Python default runs)."""
    if not table.serializer.json:
        return None
    step = _rfc.plan(query).steps[0]
    where, exact = _rfc_conditions(table, step)
    if step.filter is not None and not exact:
        return None
    sql = " AND ".join([table.live_sql] + [f"({c.sql})" for c in where])
    return sql, [p for c in where for p in c.params]


def delete_where(table: SQLiteTable, query: Any, now: float) -> int | None:
    """One ``DELETE ... WHERE <filter>``: how many rows it removed (``None``: not decidable in SQL)."""
    where = _exact_where(table, query)
    if where is None:
        return None
    sql, params = where
    conn = table.engine.connection()
    with table.engine.write(conn):
        try:
            conn.execute(f"DELETE FROM {table.sql_name} WHERE {sql}", [table.engine.clock(), *params])
            return conn.changes()
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc


def patch_where(table: SQLiteTable, query: Any, patch: str, now: float) -> int | None:
    """One ``UPDATE ... SET value = json_patch(value, ?) WHERE <filter>`` (expiries and row ids,
    so places in the order, untouched): how many rows (``None``: not decidable in SQL)."""
    where = _exact_where(table, query)
    if where is None:
        return None
    sql, params = where
    value = table.serializer.sql_in.format(f"json_patch({table.value_sql}, ?)")
    conn = table.engine.connection()
    with table.engine.write(conn):
        now = table.engine.clock()
        try:
            conn.execute(f"UPDATE {table.sql_name} SET value = {value}, updated_at = ? WHERE {sql}",
                         [patch, now, now, *params])
            return conn.changes()
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc


def count_by(table: SQLiteTable, path: list[str | int], query: Any | None) -> list[tuple[str, Any, int, int]] | None:
    """One ``GROUP BY`` over the JSON text at ``path`` (``value -> path``: exact, numbers as
    written), the filter in SQL; the groups as :meth:`Table.count_by` gives them, or ``None``
    when SQL cannot read the path or decide the filter."""
    field = rfc9535_sql.sql_path(path)
    if field is None or not table.serializer.json:
        return None
    params: list[Any] = []
    if query is None:
        sql = table.live_sql
    else:
        where = _exact_where(table, query)
        if where is None:
            return None
        sql, params = where
    # ?1 is the path; each plain ? after it takes the next number (now, then the filter's).
    statement = (f"SELECT value -> ?1, count(*), min(id) FROM {table.sql_name} "
                 f"WHERE value -> ?1 IS NOT NULL AND {sql} GROUP BY 1")
    groups = []
    try:  # row by row: only the groups are held, once
        for text, count, first in table.engine.connection().execute(statement, [field, table.engine.clock(),
                                                                                 *params]):
            value = orjson.loads(text)
            groups.append((facets.kind(value), value, int(count), int(first)))
    except DB_ERRORS as exc:
        raise translate_error(exc) from exc
    return groups
