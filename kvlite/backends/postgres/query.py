"""Queries pushed down to PostgreSQL, and the collection's indexes.

The query front-end (:mod:`kvlite.query`) parses; :func:`find` runs the plan
on a :class:`~kvlite.backends.postgres.table.PostgresTable`.  On a JSON
collection, an RFC 9535 JSONPath (the default language) without ``order_by``
pushes the filter of each scan step down (:mod:`kvlite.backends.postgres.rfc9535_sql`):
PostgreSQL narrows the rows, read in pages by ``id`` as every iteration is, and
Python re-checks every row it lets through, so the answer is the one Python
evaluation gives.  Steps with nothing to push down run in Python over the
streamed rows (:mod:`kvlite.query.python_source`); everything else
(``order_by``, jsonpath-ng's dialect, ObjectPath, other serializers, a path
without a filter to push down) is left to the front-end's Python evaluation
(:func:`find` returns ``None``).

Indexes: :func:`create_index` makes a btree index on ``doc #> '{a,b}'`` for a
plain field path, named after a hash of the path, the path itself kept in the
index's comment (:func:`indexes` reads it back).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Iterator

from ...errors import NotSupported
from ...keys import view as view_key
from ...query import python_source
from ...query import rfc9535 as _rfc
from ...query.fields import plain_field
from ...query.matches import Tracker
from . import rfc9535_sql
from .pushdown import PgCondition, index_expr
from .text import quote_ident, quote_literal

if TYPE_CHECKING:
    from .table import PostgresTable

__all__ = ["find", "explain", "create_index", "drop_index", "indexes", "index_name"]

_NOTE = ("filters on plain field paths run in PostgreSQL (jsonb_path_exists); "
         "Python re-checks every row and runs the rest of the path")


# -- running a plan --------------------------------------------------------------------------


class _PlainDocuments:
    """What :mod:`kvlite.query.python_source` reads of a collection, over a table: its entries
    as plain data (``_raw_items``), point lookups (``_table.entry``) and the clock (``store.now``)."""

    def __init__(self, table: PostgresTable) -> None:
        self._table = table
        self.store = self

    def now(self) -> float:
        return self._table.engine.clock()

    def _decode_raw(self, data: Any) -> Any:
        return self._table.decode_raw(data)

    def _raw_items(self, *, reverse: bool = False) -> Iterator[tuple[Any, Any]]:
        return self._table.items(reverse, None)


def _select(table: PostgresTable, where: list[PgCondition]) -> tuple[str, dict[str, Any]]:
    """A keyset page query (see :meth:`PostgresTable.pages`) over the live rows that pass every
    condition of ``where``, and the conditions' parameters."""
    params: dict[str, Any] = {}
    for cond in where:
        params.update(cond.params)
    conds = " AND ".join(cond.sql for cond in where)
    sql = (f"SELECT id, key_text, {table.value_columns} FROM {table.sql_name} WHERE id > %(after)s "
           f"AND id <= %(newest)s AND {table.live_sql} AND {conds} ORDER BY id LIMIT %(page)s")
    return sql, params


def find(table: PostgresTable, language: str, parsed: Any, order_by: str | None, desc: bool,
         tracker: Tracker) -> Iterator[tuple[Any, Any]] | None:
    """The matches of a parsed JSONPath whose filters PostgreSQL narrows, else ``None`` (the
    front-end evaluates it in Python: the same answer)."""
    if order_by is not None or not table.json:
        return None
    if language == "jsonpath":
        rfc_steps = _rfc.plan(parsed).steps
        if not any(_rfc_where(table, step) for step in rfc_steps):
            return None
        return _run_rfc9535(table, rfc_steps, tracker)
    return None  # jsonpath-ng's dialect is not pushed down (kvlite.query.jsonpath); the rest: no SQL form


def _rfc_where(table: PostgresTable, step: _rfc.Step) -> list[PgCondition]:
    """The pushed-down conditions of an RFC 9535 scan step (empty: none)."""
    if step.kind != "scan" or step.filter is None:
        return []
    return rfc9535_sql.conditions(step.filter, table.engine.server_version >= 130000, set(table.indexes()))


def _run_rfc9535(table: PostgresTable, steps: list[_rfc.Step], tracker: Tracker) -> Iterator[tuple[Any, Any]]:
    documents = _PlainDocuments(table)

    def scan(step: _rfc.Step) -> Iterator[tuple[Any, str, Any, bool]]:
        where = _rfc_where(table, step)
        rows = table.entries(*_select(table, where), False) if where else table.items(False, None)
        for key, data in rows:
            doc = table.decode_raw(data) if where else data
            tracker.current = doc
            yield key, view_key(key), doc, False

    def lookup(name: str) -> tuple[Any, Any] | None:
        return python_source.lookup(documents, name, lambda reverse: table.items(reverse, None), view_key)

    def load() -> tuple[dict[str, Any], dict[str, Any]]:
        return python_source.mapping_of(table.items(False, None), view_key, tracker)

    return _rfc.run(steps, scan=scan, lookup=lookup, load=load, tracker=tracker)


def explain(table: PostgresTable, language: str, parsed: Any, order_by: str | None,
            desc: bool) -> tuple[list[dict[str, Any]], list[str]] | None:
    """``(steps, notes)`` for the queries :func:`find` narrows in PostgreSQL (a step with a
    pushed-down filter shows its conditions, its SQL and PostgreSQL's plan); ``None`` for the
    rest, which the front-end explains as Python evaluation."""
    if order_by is not None or not table.json:
        return None
    if language == "jsonpath":
        return _explain_rfc9535(table, parsed)
    return None


def _explain_rfc9535(table: PostgresTable, parsed: Any) -> tuple[list[dict[str, Any]], list[str]] | None:
    steps = []
    for step in _rfc.plan(parsed).steps:
        shown: dict[str, Any] = {"kind": "fallback" if step.kind == "whole" else step.kind, "pushdown": [],
                                 "python": "the query on each document, streamed from the backend"}
        if step.kind == "whole":
            shown["python"] = "the query on the whole collection loaded in memory (a filter reads the root $)"
        where = _rfc_where(table, step)
        if where:
            sql, params = _select(table, where)
            run = {**params, "after": -(1 << 63), "newest": (1 << 63) - 1, "now": table.engine.clock(),
                   "page": table.PAGE}
            shown["pushdown"] = [cond.text for cond in where]
            shown["python"] = "the filter re-checked on each document PostgreSQL lets through"
            shown["sql"] = sql
            shown["params"] = params
            shown["query_plan"] = [row[0] for row in table.engine.fetchall("EXPLAIN " + sql, run)]
        steps.append(shown)
    return steps, [_NOTE]


# -- indexes ---------------------------------------------------------------------------------------


def _index_path(table: PostgresTable, path: str) -> str:
    """The plain field path (``$.a.b``) of ``path``; :class:`NotSupported` unless the table holds
    JSON and ``path`` is a chain of plain field names."""
    if not table.json:
        raise NotSupported("indexes need a JSON collection (they index the jsonb doc column)")
    return plain_field(table, path, "an index path")


def index_name(table: PostgresTable, sql_path: str) -> str:
    """The (unqualified) name of ``table``'s index on ``sql_path``: ``kv_<id>_ix_<hash>``."""
    digest = hashlib.sha1(sql_path.encode()).hexdigest()[:16]
    return f"kv_{table.table_id:d}_ix_{digest}"


def create_index(table: PostgresTable, path: str) -> str:
    """A btree index on ``doc #> '{a,b}'`` for the plain field path ``path`` (``"$.a.b"``).

    Filters on that path then narrow rows through the index.  Idempotent; returns the
    normalised path.
    """
    sql_path = _index_path(table, path)
    table.check_writable()
    name = index_name(table, sql_path)
    with table.engine.atomic() as conn:
        conn.execute(f"CREATE INDEX IF NOT EXISTS {quote_ident(name)} ON {table.sql_name} ({index_expr(sql_path)})")
        conn.execute(f"COMMENT ON INDEX {table.engine.index_name(name)} IS {quote_literal(sql_path)}")
    return sql_path


def drop_index(table: PostgresTable, path: str) -> bool:
    """Drop the index on ``path``; ``False`` if there was none."""
    sql_path = _index_path(table, path)
    table.check_writable()
    name = table.engine.index_name(index_name(table, sql_path))
    with table.engine.atomic() as conn:
        existed = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]  # type: ignore[index]
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    return bool(existed)


def indexes(table: PostgresTable) -> list[str]:
    """Paths of ``table``'s indexes, sorted."""
    if not table.json:
        return []
    table.check()
    rows = table.engine.fetchall(
        "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass", (table.sql_name,))
    prefix = f"kv_{table.table_id:d}_ix_"
    return sorted(comment for name, comment in rows if name.startswith(prefix) and comment)


def count_by(table: PostgresTable, path: list[str | int], query: Any | None) -> list[tuple[str, Any, int, int]] | None:
    """One ``GROUP BY doc #> path`` (jsonb equality: ``1`` and ``1.0`` one value, objects whatever
    their member order, ``true`` apart from ``1``), plus the rare rows whose ``doc`` is NULL (a
    value holding ``\\u0000``) counted in Python; ``None`` with a filter (PostgreSQL only narrows
    filters, so the front-end counts what :meth:`find` yields) or for a non-JSON collection."""
    if query is not None or not table.json:
        return None
    from ...query import facets

    table.check()
    parts = [str(part) for part in path]
    live = table.live_sql
    now = table.engine.clock()
    groups = [(facets.kind(value), value, int(count), int(first)) for value, count, first in table.engine.fetchall(
        f"SELECT doc #> %(path)s, count(*), min(id) FROM {table.sql_name} WHERE {live} AND doc IS NOT NULL "
        "AND doc #> %(path)s IS NOT NULL GROUP BY 1", {"path": parts, "now": now})]
    for row in table.engine.fetchall(f"SELECT id, {table.value_columns} FROM {table.sql_name} "
                                     f"WHERE {live} AND doc IS NULL", {"now": now}):
        for kind, value, count, _ in facets.groups([table.decode_raw(table.data(row, 1))], path):
            groups.append((kind, value, count, int(row[0])))
    return groups
