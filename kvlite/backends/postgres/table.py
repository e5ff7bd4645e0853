"""One collection's table in PostgreSQL: its statements, reads and writes.

Layout of the table ``kv_<id>`` (made by :meth:`PostgresEngine._table_ddl
<kvlite.backends.postgres.engine.PostgresEngine._table_ddl>`)::

    id          bigint PRIMARY KEY DEFAULT nextval('kv_<id>_id_seq')  -- insertion order
    key_canon   text NOT NULL UNIQUE  -- equal keys, equal text (1, 1.0, True -> 'n:1')
    key_text    text NOT NULL         -- the stored key with its type ('s:a', 'B:1', ...)
    value       text NOT NULL         -- JSON collections: the serializer's text, exactly
    doc         jsonb GENERATED ALWAYS AS (value::jsonb) STORED   -- JSON only, for queries
    value       bytea NOT NULL        -- other serializers (value_is_text: it was a str)
    created_at, updated_at timestamptz
    expires_at  timestamptz NULL      -- NULL = never; partial index WHERE NOT NULL

Every read passes the store's clock as ``now`` and sees only live rows
(``expires_at IS NULL OR expires_at > now``).  Inside a ``transaction()``
block, reads lock the rows they return (``FOR SHARE``; see
:meth:`PostgresEngine.transaction <kvlite.backends.postgres.engine.PostgresEngine.transaction>`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ... import keys as _keys
from ... import serializers as _serializers
from ...errors import SerializationError, StoreLocked
from ..base import KEEP, MISSING, Table
from .errors import executemany, translated
from .text import canon, epoch, key_back, key_text, quote_literal

if TYPE_CHECKING:
    from ...query.matches import Tracker
    from .engine import PostgresEngine

__all__ = ["PostgresTable", "PAGE"]

#: Rows per page of an iteration (keyset pagination by ``id``).
PAGE = 1000
_FIRST_ID = -(1 << 63)
#: "kvlk": the first key of the advisory lock :meth:`PostgresTable.modify` takes on one entry.
_ENTRY_LOCK_CLASS = 0x6B766C6B


class PostgresTable(Table):
    """The table ``kv_<table_id>`` of a :class:`~kvlite.backends.postgres.engine.PostgresEngine`.

    ``value_type`` is the collection's as registered (``"json"``: text with a
    jsonb ``doc``; ``"bytea"``): it decides the columns, whatever ``serializer``
    is (a stand-in, for statistics, has no ``json`` flag).
    """

    #: Rows read per page when iterating (also what explain() reports).
    PAGE = PAGE

    engine: PostgresEngine

    def __init__(self, engine: PostgresEngine, name: str, table_id: int, value_type: str,
                 serializer: _serializers.Serializer) -> None:
        super().__init__(engine, name, serializer)
        #: The registry id: the table is ``kv_<table_id>``.
        self.table_id = table_id
        #: Whether values are JSON text (with the jsonb ``doc`` column queries read).
        self.json = value_type == "json"
        # A JSON collection stores text; a JSON serializer whose dumps() gives bytes (UTF-8, as
        # orjson.dumps does) gets bytes back from loads(), as on every other engine.  Which one
        # it gives is asked once, for None.
        self._json_bytes = False
        if self.json:
            with contextlib.suppress(Exception):
                self._json_bytes = isinstance(serializer.dumps(None), bytes)
        self._build_statements()

    def _build_statements(self) -> None:
        """Every statement on this table (built from its integer id only)."""
        t = self.sql_name = self.engine.table_name(self.table_id)
        seq = quote_literal(self.engine.seq_name(self.table_id))
        now = "to_timestamp(%(now)s::float8)"
        live = self.live_sql = f"(expires_at IS NULL OR expires_at > {now})"
        extra_col, extra_val, extra_set = ("", "", "") if self.json else (
            ", value_is_text", ", %(is_text)s", ", value_is_text = excluded.value_is_text")
        values = self.value_columns = "value" if self.json else "value, value_is_text"
        expired = "e.expires_at <= excluded.created_at"
        insert = (f"INSERT INTO {t} AS e (key_canon, key_text, value{extra_col}, created_at, updated_at, expires_at) "
                  f"VALUES (%(canon)s, %(text)s, %(value)s{extra_val}, {now}, {now}, "
                  f"to_timestamp(%(expires)s::float8)) ON CONFLICT (key_canon) DO UPDATE SET ")
        # A live row keeps its id (its place) and its first key; an expired one counts as new.
        self._sql_put = insert + (
            f"id = CASE WHEN {expired} THEN nextval({seq}::regclass) ELSE e.id END, "
            f"key_text = CASE WHEN {expired} THEN excluded.key_text ELSE e.key_text END, "
            f"created_at = CASE WHEN {expired} THEN excluded.created_at ELSE e.created_at END, "
            f"value = excluded.value{extra_set}, updated_at = excluded.updated_at, expires_at = excluded.expires_at")
        # setdefault: insert, or replace only an expired row (then the live row stays locked).
        self._sql_insert_or_revive = insert + (
            f"id = nextval({seq}::regclass), key_text = excluded.key_text, created_at = excluded.created_at, "
            f"value = excluded.value{extra_set}, updated_at = excluded.updated_at, "
            f"expires_at = excluded.expires_at WHERE {expired} RETURNING 1")
        self._sql_value = f"SELECT {values} FROM {t} WHERE key_canon = %(canon)s AND {live}"
        self._sql_entry = f"SELECT {values}, key_text FROM {t} WHERE key_canon = %(canon)s AND {live}"
        # (an expiry stored as infinity by an older kvlite reads as the cap, see epoch())
        self._sql_expiry = (f"SELECT extract(epoch FROM expires_at)::float8 FROM {t} "
                            f"WHERE key_canon = %(canon)s AND {live}")
        self._sql_value_many = (f"SELECT key_canon, {values} FROM {t} "
                                f"WHERE key_canon = ANY(%(canons)s::text[]) AND {live}")
        self._sql_expiry_many = (f"SELECT key_canon, extract(epoch FROM expires_at)::float8 FROM {t} "
                                 f"WHERE key_canon = ANY(%(canons)s::text[]) AND {live}")
        self._sql_count = f"SELECT count(*) FROM {t} WHERE {live}"
        # Inside a transaction() block reads lock what they read (see PostgresEngine.transaction).
        self._sql_count_locked = f"SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {live} FOR SHARE) AS live"
        self._sql_delete = f"DELETE FROM {t} WHERE key_canon = %(canon)s RETURNING {live}"
        self._sql_pop = f"DELETE FROM {t} WHERE key_canon = %(canon)s RETURNING {values}, {live}"
        self._sql_delete_many = (f"WITH gone AS (DELETE FROM {t} WHERE key_canon = ANY(%(canons)s::text[]) "
                                 f"RETURNING expires_at) SELECT count(*) FROM gone WHERE {live}")
        self._sql_popitem = (f"DELETE FROM {t} WHERE id = (SELECT id FROM {t} WHERE {live} "
                             f"ORDER BY id DESC LIMIT 1 FOR UPDATE) RETURNING key_text, {values}")
        self._sql_any_live = f"SELECT EXISTS (SELECT 1 FROM {t} WHERE {live})"
        self._sql_newest = f"SELECT coalesce(max(id), 0) FROM {t}"
        forward = f"id > %(after)s AND id <= %(newest)s AND {live} ORDER BY id LIMIT %(page)s"
        backward = f"id < %(after)s AND {live} ORDER BY id DESC LIMIT %(page)s"
        self._sql_page = f"SELECT id, key_text, {values} FROM {t} WHERE {forward}"
        self._sql_page_rev = f"SELECT id, key_text, {values} FROM {t} WHERE {backward}"
        self._sql_keys_page = f"SELECT id, key_text FROM {t} WHERE {forward}"
        self._sql_keys_page_rev = f"SELECT id, key_text FROM {t} WHERE {backward}"
        self._sql_purge = f"DELETE FROM {t} WHERE expires_at <= {now}"
        self._sql_clear = f"DELETE FROM {t}"
        self._sql_sizes = (f"SELECT count(*) FILTER (WHERE {live}), coalesce(sum(octet_length(value)), 0), "
                           f"count(*) FILTER (WHERE expires_at <= {now}) FROM {t}")

    # -- values -----------------------------------------------------------------------------------

    def _params(self, key: Any, data: Any, now: float, expires: float | None) -> dict[str, Any]:
        """The parameters of :attr:`_sql_put` for one entry (:class:`SerializationError` for data
        PostgreSQL cannot store in this table: NUL in text, JSON bytes that are not UTF-8)."""
        params: dict[str, Any] = {"canon": canon(key), "text": key_text(key), "now": now, "expires": epoch(expires)}
        if self.json:
            if isinstance(data, bytes):
                try:
                    data = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise SerializationError("a JSON serializer returned bytes that are not UTF-8") from None
            if "\x00" in data:
                raise SerializationError("PostgreSQL text cannot hold a NUL character; "
                                         "a JSON serializer must escape it as \\u0000")
            params["value"] = data
        elif isinstance(data, str):
            params["value"], params["is_text"] = data.encode("utf-8", "surrogatepass"), True
        else:
            params["value"], params["is_text"] = data, False
        return params

    def data(self, row: Any, at: int) -> Any:
        """The serializer data stored in ``row[at]`` (and ``row[at + 1]`` for bytea tables)."""
        if self.json:
            return row[at].encode("utf-8") if self._json_bytes else row[at]
        value = bytes(row[at])
        return value.decode("utf-8", "surrogatepass") if row[at + 1] else value

    @property
    def _width(self) -> int:
        """How many columns :attr:`value_columns` are."""
        return 1 if self.json else 2

    def decode_raw(self, data: Any) -> Any:
        """A stored value as plain data (what queries walk)."""
        return _serializers.decode(self.serializer, data)

    def _locked(self, sql: str) -> str:
        """``sql`` locking the rows it reads when this thread is inside a ``transaction()`` block."""
        return sql + " FOR SHARE" if self.engine.in_block() else sql

    # -- single keys ------------------------------------------------------------------------------

    def get(self, key: Any) -> Any:
        if type(key) is str:
            _keys.check_text(key)
        self.check()
        row = self.engine.fetchone(self._locked(self._sql_value), {"canon": canon(key), "now": self.engine.clock()})
        return MISSING if row is None else self.data(row, 0)

    def entry(self, key: Any, now: float) -> tuple[Any, Any] | None:
        self.check()
        row = self.engine.fetchone(self._locked(self._sql_entry), {"canon": canon(key), "now": now})
        return None if row is None else (key_back(row[self._width]), self.data(row, 0))

    def expiry(self, key: Any, now: float) -> Any:
        if type(key) is str:
            _keys.check_text(key)
        self.check()
        row = self.engine.fetchone(self._locked(self._sql_expiry), {"canon": canon(key), "now": now})
        return MISSING if row is None else epoch(row[0])

    def put(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        if type(key) is str:
            _keys.check_text(key)
        self.check_writable()
        params = self._params(key, data, now, expires)
        with self.engine.connection() as conn, translated():
            conn.execute(self._sql_put, params)

    def delete(self, key: Any, now: float) -> bool:
        self.check_writable()
        row = self.engine.fetchone(self._sql_delete, {"canon": canon(key), "now": now})
        return bool(row and row[0])

    def pop(self, key: Any, now: float, decode: Callable[[Any], Any]) -> Any:
        self.check_writable()
        with self.engine.atomic() as conn:  # decoded before the commit: a value it refuses stays
            row = conn.execute(self._sql_pop, {"canon": canon(key), "now": now}).fetchone()
            if row is None or not row[self._width]:
                return MISSING
            return decode(self.data(row, 0))

    def popitem(self, now: float, decode: Callable[[Any], Any]) -> tuple[Any, Any] | None:
        self.check_writable()
        for _ in range(100):
            with self.engine.atomic() as conn:  # decoded before the commit, as in pop()
                # Lock the newest live row, delete it, return it.
                row = conn.execute(self._sql_popitem, {"now": now}).fetchone()
                if row is not None:
                    return key_back(row[0]), decode(self.data(row, 1))
                if not conn.execute(self._sql_any_live, {"now": now}).fetchone()[0]:  # type: ignore[index]
                    return None
            # The newest row went away under us (another client popped it): look again.
        raise StoreLocked("popitem() kept losing the race for the newest entry to other clients")

    def setdefault(self, key: Any, default: Callable[[], Any], now: float, expires: float | None,
                   decode: Callable[[Any], Any]) -> Any:
        self.check_writable()
        # The default is encoded only for a key that is missing: read first; the statements
        # below still decide atomically (a key written meanwhile wins, and its value is returned).
        entry = self.entry(key, now)
        if entry is not None:
            return decode(entry[1])
        params = self._params(key, default(), now, expires)
        for _ in range(100):
            with self.engine.atomic() as conn:
                if conn.execute(self._sql_insert_or_revive, params).fetchone() is not None:
                    return MISSING
                # A live row exists, and ON CONFLICT locked it: read it in the same transaction.
                row = conn.execute(self._sql_value, params).fetchone()
                if row is not None:
                    return decode(self.data(row, 0))
        raise StoreLocked("setdefault() kept losing races with other clients")

    def modify(self, key: Any, change: Callable[[Any], tuple[Any, Any]], now: float,
               expires: Any = KEEP) -> Any:
        """Read, ``change`` and write in one transaction (a savepoint inside a ``transaction()``
        block) that first takes a transaction advisory lock on the entry
        (``pg_advisory_xact_lock``, so a missing key is locked too) and reads the row ``FOR
        UPDATE``: no other client writes the entry in between (see :meth:`Table.modify`)."""
        if type(key) is str:
            _keys.check_text(key)
        self.check_writable()
        key_canon = canon(key)
        params = {"canon": key_canon, "now": now}
        with self.engine.atomic() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                         (_ENTRY_LOCK_CLASS, f"{self.sql_name}/{key_canon}"))
            row = conn.execute(f"SELECT {self.value_columns}, extract(epoch FROM expires_at)::float8 "
                               f"FROM {self.sql_name} WHERE key_canon = %(canon)s AND {self.live_sql} FOR UPDATE",
                               params).fetchone()
            new, result = change(MISSING if row is None else self.data(row, 0))
            if new is MISSING:
                return result
            if expires is KEEP:
                expires = None if row is None else epoch(row[self._width])
            conn.execute(self._sql_put, self._params(key, new, now, expires))
            return result

    # -- many keys --------------------------------------------------------------------------------

    def get_many(self, keys: list[Any], now: float) -> list[Any]:
        """One query, one snapshot."""
        self.check()
        canons = [canon(key) for key in keys]
        found: dict[str, Any] = {}
        if canons:
            for row in self.engine.fetchall(self._locked(self._sql_value_many), {"canons": canons, "now": now}):
                found[row[0]] = self.data(row, 1)
        return [found.get(c, MISSING) for c in canons]

    def expiry_many(self, keys: list[Any], now: float) -> list[Any]:
        """One query, one snapshot."""
        self.check()
        canons = [canon(key) for key in keys]
        found: dict[str, Any] = {}
        if canons:
            for row in self.engine.fetchall(self._locked(self._sql_expiry_many), {"canons": canons, "now": now}):
                found[row[0]] = epoch(row[1])
        return [found.get(c, MISSING) for c in canons]

    def put_many(self, pairs: Iterable[Any], encode: Callable[[Any], Any], now: float,
                 expires: float | None) -> int:
        """Every pair is checked and encoded first; then one transaction writes them all."""
        entries = [(_keys.normalize(key), encode(value)) for key, value in pairs]
        self.check_writable()
        if not entries:
            return 0
        rows = [self._params(key, data, now, expires) for key, data in entries]
        with self.engine.atomic() as conn:
            executemany(conn, self._sql_put, rows)
        return len(entries)

    def delete_many(self, keys: list[Any], now: float) -> int:
        """One statement."""
        self.check_writable()
        if not keys:
            return 0
        row = self.engine.fetchone(self._sql_delete_many, {"canons": [canon(k) for k in keys], "now": now})
        return int(row[0])

    # -- the whole collection ---------------------------------------------------------------------

    def pages(self, sql: str, params: dict[str, Any], reverse: bool) -> Iterator[list[Any]]:
        """The rows of ``sql`` (its first column the ``id``) in pages, by ``id`` (keyset pagination).

        ``sql`` takes ``after``, ``newest``, ``now`` and ``page`` besides ``params``.  Each page
        is its own short query, so a slow consumer holds no connection and no snapshot.  Only
        the rows there when the iteration began are read (an entry added meanwhile gets a larger
        ``id``), so adding keys in the loop cannot make it endless; an entry changed or deleted
        before the iteration reaches it is read as it is then.
        """
        self.check()
        engine = self.engine
        newest = int(engine.fetchone(self._sql_newest)[0])
        after = newest + 1 if reverse else _FIRST_ID
        sql = self._locked(sql)
        while True:
            rows = engine.fetchall(sql, {**params, "after": after, "newest": newest, "now": engine.clock(),
                                         "page": PAGE})
            if rows:
                yield rows
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def entries(self, sql: str, params: dict[str, Any], reverse: bool) -> Iterator[tuple[Any, Any]]:
        """``(key, data)`` of the rows of ``sql`` (``id, key_text, value columns``), by :meth:`pages`."""
        for rows in self.pages(sql, params, reverse):
            for row in rows:
                yield key_back(row[1]), self.data(row, 2)

    def keys(self, reverse: bool) -> Iterator[Any]:
        for rows in self.pages(self._sql_keys_page_rev if reverse else self._sql_keys_page, {}, reverse):
            for row in rows:
                yield key_back(row[1])

    def items(self, reverse: bool, decode: Callable[[Any], Any] | None) -> Iterator[tuple[Any, Any]]:
        if decode is None:
            decode = self.decode_raw
        for key, data in self.entries(self._sql_page_rev if reverse else self._sql_page, {}, reverse):
            yield key, decode(data)

    def count(self, now: float) -> int:
        self.check()
        sql = self._sql_count_locked if self.engine.in_block() else self._sql_count
        return int(self.engine.fetchone(sql, {"now": now})[0])

    def clear(self) -> None:
        self.check_writable()
        self.engine.rowcount(self._sql_clear)

    def purge(self, now: float) -> int:
        self.check_writable()
        purged = self.engine.rowcount(self._sql_purge, {"now": now})
        self.expirations += purged
        return purged

    def sizes(self, now: float) -> tuple[int, int, int]:
        self.check()
        row = self.engine.fetchone(self._sql_sizes, {"now": now})
        return int(row[0]), int(row[1]), int(row[2])

    # -- queries and indexes: push-down to SQL/JSON path (query.py) ------------------------------

    def count_by(self, path: list[str | int], query: Any | None) -> list[tuple[str, Any, int, int]] | None:
        from . import query as _query

        return _query.count_by(self, path, query)

    def find(self, language: str, parsed: Any, order_by: str | None, desc: bool,
             tracker: Tracker, missing_last: bool = False) -> Iterator[tuple[Any, Any]] | None:
        from . import query

        return query.find(self, language, parsed, order_by, desc, tracker)  # order_by: Python sorts

    def explain(self, language: str, parsed: Any, order_by: str | None,
                desc: bool, missing_last: bool = False) -> tuple[list[dict[str, Any]], list[str]] | None:
        from . import query

        return query.explain(self, language, parsed, order_by, desc)  # order_by: Python sorts

    def create_index(self, path: str) -> str:
        from . import query

        return query.create_index(self, path)

    def drop_index(self, path: str) -> bool:
        from . import query

        return query.drop_index(self, path)

    def indexes(self) -> list[str]:
        from . import query

        return query.indexes(self)

    def index_name(self, sql_path: str) -> str:
        """The (unqualified) name of this table's index on the plain field path ``sql_path``."""
        from . import query

        return query.index_name(self, sql_path)
