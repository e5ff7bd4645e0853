"""One collection's table in an SQLite file: its statements, reads and writes.

Table layout (one per collection, named ``kv_<id>`` after its registry row, so
no user text ever reaches SQL)::

    id          INTEGER PRIMARY KEY  -- insertion order, as in dict
    key         ANY NOT NULL UNIQUE  -- str/bytes/int/float, kept as given (kvlite.keys.encode)
    key_type    INTEGER              -- 1 when the key is a bool, 2 for an int beyond 64 bits
    value       ANY NOT NULL         -- serializer output (TEXT for JSON)
    created_at, updated_at REAL
    expires_at  REAL NULL            -- NULL = never expires

Expired rows are deleted when their key is written again, by ``purge``, and
every 1024 writes through a table object.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import apsw

from ... import keys as _keys
from ...errors import KvliteError
from ...serializers import Serializer, decode, decode_error
from ..base import KEEP, MISSING, Table
from . import changes as _changes
from .errors import DB_ERRORS, ROLLED_BACK_TABLE, STATEMENT_ERRORS, translate_error

if TYPE_CHECKING:
    from .engine import SQLiteEngine

__all__ = ["SQLiteTable", "table_sql_name", "create_table_sql"]

_PURGE_EVERY = 1024
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1
_MAX_KEY = _keys.MAX_KEY_LENGTH
_PAGE = 1000


def table_sql_name(table_id: int) -> str:
    """The quoted SQL name of a collection's table (built from an integer only)."""
    return f'"kv_{int(table_id):d}"'


def create_table_sql(table_id: int) -> str:
    table = table_sql_name(table_id)
    index = f'"kv_{int(table_id):d}_expires"'
    return f"""
        CREATE TABLE {table} (
            id         INTEGER PRIMARY KEY,
            key        ANY NOT NULL UNIQUE,
            key_type   INTEGER NOT NULL DEFAULT 0,
            value      ANY NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            expires_at REAL
        ) STRICT;
        CREATE INDEX {index} ON {table}(expires_at) WHERE expires_at IS NOT NULL;
    """


def _stored(key: Any) -> Any:
    """The stored form of a normalised key: a ``str`` or a 64-bit ``int`` is its own (no call to
    :func:`kvlite.keys.encode`, which the Collection's normalisation already ran)."""
    kind = type(key)
    return key if kind is str or (kind is int and _INT_MIN <= key <= _INT_MAX) else _keys.encode(key)[0]


class SQLiteTable(Table):
    """The table ``kv_<table_id>`` of an :class:`~kvlite.backends.sqlite.engine.SQLiteEngine`."""

    engine: SQLiteEngine

    def __init__(self, engine: SQLiteEngine, name: str, table_id: int, serializer: Serializer) -> None:
        super().__init__(engine, name, serializer)
        self.table_id = table_id
        self._writes = 0
        self._clock = engine.clock
        self._loads = serializer.loads
        self._use_table(table_sql_name(table_id))

    def _use_table(self, t: str) -> None:
        """Build every statement on table ``t`` (its quoted SQL name)."""
        self.sql_name = t
        serializer = self.serializer
        live = "(expires_at IS NULL OR expires_at > ?)"
        #: The SQL condition "this row is live" (one parameter: now); the query push-down uses it.
        self.live_sql = live
        # The stored value as the serializer reads it, and the stored form of a bound ?3
        # (both just the value unless the serializer converts in SQL, as jsonb does).
        value = self.value_sql = serializer.sql_out.format("value")
        stored = serializer.sql_in.format("?3")
        self._sql_get = f"SELECT {value} FROM {t} WHERE key = ? AND {live}"
        # get() reads the expiry with the value and checks it in Python: most entries never
        # expire, and then the clock is not even read (~3% of a point read, measured).
        self._sql_get_expiring = f"SELECT {value}, expires_at FROM {t} WHERE key = ?"
        self._sql_ttl = f"SELECT expires_at FROM {t} WHERE key = ? AND {live}"
        # Insert, or update a *live* row in place (it keeps its id: its place in the order).
        # An expired row is left alone (no change): the caller then deletes it and inserts
        # anew, so a key that had expired counts as new and moves to the end.  Keeping
        # this statement free of updates to `key` and `id` keeps it a cheap in-place write.
        self._sql_put = f"""
            INSERT INTO {t} (key, key_type, value, created_at, updated_at, expires_at)
            VALUES (?1, ?2, {stored}, ?4, ?4, ?5)
            ON CONFLICT (key) DO UPDATE SET
                value      = excluded.value,
                updated_at = excluded.updated_at,
                expires_at = excluded.expires_at
            WHERE expires_at IS NULL OR expires_at > ?4"""
        # put_many tries this first: a plain insert costs ~10% less than the upsert above.
        self._sql_insert = (f"INSERT INTO {t} (key, key_type, value, created_at, updated_at, expires_at) "
                            f"VALUES (?1, ?2, {stored}, ?4, ?4, ?5)")
        self._sql_delete_expired_key = f"DELETE FROM {t} WHERE key = ? AND expires_at <= ?"
        self._sql_delete = f"DELETE FROM {t} WHERE key = ?1 RETURNING (expires_at IS NULL OR expires_at > ?2)"
        self._sql_pop = f"DELETE FROM {t} WHERE key = ?1 RETURNING {value}, (expires_at IS NULL OR expires_at > ?2)"
        self._sql_popitem = (
            f"DELETE FROM {t} WHERE id = (SELECT id FROM {t} WHERE {live} ORDER BY id DESC LIMIT 1) "
            f"RETURNING key, key_type, {value}"
        )
        self._sql_count = f"SELECT count(*) FROM {t} WHERE {live}"
        self._sql_page = f"SELECT id, key, key_type, {value} FROM {t} WHERE id > ? AND {live} ORDER BY id LIMIT ?"
        self._sql_page_rev = (
            f"SELECT id, key, key_type, {value} FROM {t} WHERE id < ? AND {live} ORDER BY id DESC LIMIT ?"
        )
        self._sql_keys_page = f"SELECT id, key, key_type FROM {t} WHERE id > ? AND {live} ORDER BY id LIMIT ?"
        self._sql_keys_page_rev = (
            f"SELECT id, key, key_type FROM {t} WHERE id < ? AND {live} ORDER BY id DESC LIMIT ?"
        )
        # patch(): ?2 is now (the liveness test and updated_at), so the statement reads no clock.
        self._sql_patch = (f"UPDATE {t} SET value = {serializer.sql_in.format(f'json_patch({value}, ?1)')}, "
                           f"updated_at = ?2 WHERE key = ?3 AND (expires_at IS NULL OR expires_at > ?2) "
                           f"RETURNING {value}")
        self._sql_purge = f"DELETE FROM {t} WHERE expires_at <= ?"
        self._sql_clear = f"DELETE FROM {t}"

    def roll_back_creation(self) -> None:
        """The ``transaction()`` block that created this table rolled back: its table is gone,
        and its id will be given to the next collection made, so from now on every call
        raises :class:`~kvlite.errors.CollectionDropped` instead of reaching that table."""
        self.dropped = True
        self._use_table(ROLLED_BACK_TABLE)

    def _after_write(self) -> None:
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            self._purge_now()

    def _purge_now(self) -> int:
        conn = self.engine.connection()
        # One write transaction: the trim's counting must not interleave with another process's.
        with self.engine.write(conn):
            try:
                conn.execute(self._sql_purge, (self._clock(),))
                purged = conn.changes()
                _changes.trim(conn, time.time(), only=self.table_id)  # its change log, to its retention
            except apsw.Error as exc:
                raise translate_error(exc) from exc
        self.expirations += purged
        return purged

    def sizes(self, now: float) -> tuple[int, int, int]:
        try:
            rows, total, pending = self.engine.connection().execute(
                # length() of TEXT counts characters: cast to BLOB to count bytes.
                f"SELECT count(*) FILTER (WHERE {self.live_sql}), coalesce(sum(length(CAST(value AS BLOB))), 0), "
                f"count(*) FILTER (WHERE expires_at <= ?) FROM {self.sql_name}", (now, now)).fetchone()
        except apsw.Error as exc:
            raise translate_error(exc) from exc
        return rows, total, pending

    # -- single keys ------------------------------------------------------------------

    def get(self, key: Any) -> Any:
        # The hot path: the thread's reused cursor is taken without a method call; a str or a
        # 64-bit int is stored as it is (kvlite.keys.encode would give it back unchanged).
        kind = type(key)
        stored = key if kind is str or (kind is int and _INT_MIN <= key <= _INT_MAX) else _keys.encode(key)[0]
        try:
            cursor = self.engine.local.cursor
        except AttributeError:
            cursor = self.engine.cursor()
        data: Any = MISSING
        try:
            # Iterated to the end (one row at most: key is UNIQUE), which resets the statement.
            for data, expires in cursor.execute(self._sql_get_expiring, (stored,)):
                if expires is not None and expires <= self._clock():
                    data = MISSING  # expired: invisible, as in every read
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        return data

    def entry(self, key: Any, now: float) -> tuple[Any, Any] | None:
        try:
            row = self.engine.connection().execute(
                f"SELECT key, key_type, {self.value_sql} FROM {self.sql_name} WHERE key = ? AND {self.live_sql}",
                (_stored(key), now)).fetchone()
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        return None if row is None else (_keys.decode(row[0], row[1]), row[2])

    def expiry(self, key: Any, now: float) -> Any:
        stored = key if type(key) is str else _keys.encode(key)[0]
        try:
            row = self.engine.connection().execute(self._sql_ttl, (stored, now)).fetchone()
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        return MISSING if row is None else row[0]

    def put(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        if type(key) is str:
            params: tuple[Any, ...] = (key, 0, data, now, expires)
        else:
            params = (*_keys.encode(key), data, now, expires)
        engine = self.engine
        try:
            # The thread's reused cursor (an INSERT runs to its end at once, as cursor() asks).
            engine.cursor().execute(self._sql_put, params)
            conn = engine.connection()
            if not conn.changes():  # the key is there but expired: it counts as a new key
                with engine.write(conn):
                    conn.execute(self._sql_delete_expired_key, (params[0], now))
                    conn.execute(self._sql_put, params)
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        self._after_write()

    def delete(self, key: Any, now: float) -> bool:
        stored, _ = _keys.encode(key)
        try:
            row = self.engine.connection().execute(self._sql_delete, (stored, now)).fetchone()
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        return bool(row and row[0])

    def pop(self, key: Any, now: float, decode: Callable[[Any], Any]) -> Any:
        stored, _ = _keys.encode(key)
        conn = self.engine.connection()
        with self.engine.write(conn):  # decode before commit: a value that cannot be decoded stays stored
            now = self._clock()  # again, now that the write lock is held (see Table's contract)
            try:
                row = conn.execute(self._sql_pop, (stored, now)).fetchone()
            except DB_ERRORS as exc:
                raise translate_error(exc) from exc
            except UnicodeEncodeError:
                row = None
            return MISSING if row is None or not row[1] else decode(row[0])

    def popitem(self, now: float, decode: Callable[[Any], Any]) -> tuple[Any, Any] | None:
        conn = self.engine.connection()
        with self.engine.write(conn):  # decode before commit: a value that cannot be decoded stays stored
            now = self._clock()  # again, now that the write lock is held
            try:
                row = conn.execute(self._sql_popitem, (now,)).fetchone()
            except DB_ERRORS as exc:
                raise translate_error(exc) from exc
            if row is None:
                return None
            return _keys.decode(row[0], row[1]), decode(row[2])

    def setdefault(self, key: Any, default: Callable[[], Any], now: float, expires: float | None,
                   decode: Callable[[Any], Any]) -> Any:
        stored, key_type = _keys.encode(key)
        conn = self.engine.connection()
        with self.engine.write(conn):
            later = self._clock()  # again, now that the write lock is held: the TTL starts here
            if expires is not None:
                expires += later - now
            now = later
            try:
                row = conn.execute(self._sql_get, (stored, now)).fetchone()
                if row is not None:
                    return decode(row[0])
                conn.execute(self._sql_delete_expired_key, (stored, now))
                conn.execute(self._sql_put, (stored, key_type, default(), now, expires))
            except STATEMENT_ERRORS as exc:
                raise translate_error(exc) from exc
        return MISSING

    def modify(self, key: Any, change: Callable[[Any], tuple[Any, Any]], now: float,
               expires: Any = KEEP) -> Any:
        """Read, ``change`` and write in one ``BEGIN IMMEDIATE`` transaction (a savepoint inside a
        ``transaction()`` block): the write lock is held from the read to the write, so no other
        thread or process writes in between (see :meth:`Table.modify`)."""
        stored, key_type = _keys.encode(key)
        conn = self.engine.connection()
        with self.engine.write(conn):
            later = self._clock()  # again, now that the write lock is held: a new TTL starts here
            if expires is not KEEP and expires is not None:
                expires += later - now
            now = later
            try:
                row = conn.execute(f"SELECT {self.value_sql}, expires_at FROM {self.sql_name} "
                                   f"WHERE key = ? AND {self.live_sql}", (stored, now)).fetchone()
            except STATEMENT_ERRORS as exc:
                raise translate_error(exc) from exc
            new, result = change(MISSING if row is None else row[0])
            if new is MISSING:
                return result
            if expires is KEEP:
                expires = None if row is None else row[1]
            try:
                if row is None:  # an expired row goes first: the key counts as new
                    conn.execute(self._sql_delete_expired_key, (stored, now))
                conn.execute(self._sql_put, (stored, key_type, new, now, expires))
            except STATEMENT_ERRORS as exc:
                raise translate_error(exc) from exc
        self._after_write()
        return result

    def patch(self, key: Any, patch: str | None, change: Callable[[Any], tuple[Any, Any]], now: float) -> Any:
        """One ``UPDATE ... SET value = json_patch(value, ?) ... RETURNING`` for a live JSON
        entry (its expiry and row id, so its place, untouched); a missing one goes through
        :meth:`modify` (``KeyError``, or the patch applied to ``{}``)."""
        if patch is not None:
            conn = self.engine.connection()
            # BEGIN IMMEDIATE: an autocommit UPDATE would read first and then ask for the write
            # lock, which two threads of a ":memory:" store (no WAL) can wait for each other on.
            with self.engine.write(conn):
                try:
                    row = conn.execute(self._sql_patch, (patch, self._clock(), _stored(key))).fetchone()
                except STATEMENT_ERRORS as exc:
                    raise translate_error(exc) from exc
            if row is not None:
                self._after_write()
                return row[0]
        return self.modify(key, change, now, KEEP)

    # -- many keys --------------------------------------------------------------------

    def get_many(self, keys: list[Any], now: float) -> list[Any]:
        conn = self.engine.connection()
        out: list[Any] = []
        try:
            with self.engine.read(conn):
                for key in keys:
                    row = conn.execute(self._sql_get, (_stored(key), now)).fetchone()
                    out.append(MISSING if row is None else row[0])
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        return out

    def expiry_many(self, keys: list[Any], now: float) -> list[Any]:
        conn = self.engine.connection()
        out: list[Any] = []
        try:
            with self.engine.read(conn):
                for key in keys:
                    row = conn.execute(self._sql_ttl, (_stored(key), now)).fetchone()
                    out.append(MISSING if row is None else row[0])
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        return out

    def put_many(self, pairs: Iterable[Any], encode: Callable[[Any], Any], now: float,
                 expires: float | None) -> int:
        encode_key, limit = _keys.encode, _MAX_KEY
        # One row per pair, made as executemany() asks for it (never a list of encoded values);
        # a str key needs no conversion (the common case, kept to one test).  `last` is the row
        # executemany() took last, so the row a statement failed on can be given to another.
        last: tuple[Any, ...] = ()
        # `taken` counts the pairs read (zip advances it only after a pair): the rows written, as
        # each statement below changes exactly one row -- whatever the iterable itself writes.
        taken = itertools.count()
        rows = ((last := (key, 0, encode(value), now, expires)) if type(key) is str and len(key) <= limit
                else (last := (*encode_key(key), encode(value), now, expires))
                for (key, value), _ in zip(pairs, taken))

        conn = self.engine.connection()
        with self.engine.write(conn):
            try:
                # Expired rows go first (cheap, through the partial index), so every key left
                # is live: each upsert below updates in place or inserts at the end, and
                # changes exactly one row.
                conn.execute(self._sql_purge, (now,))
                self.expirations += conn.changes()
                try:
                    # New keys (a bulk load) need no upsert: plain inserts, until a key exists.
                    conn.executemany(self._sql_insert, rows)
                except apsw.ConstraintError:
                    # That row's insert was undone alone; it and the rest go through the upsert.
                    conn.executemany(self._sql_put, itertools.chain((last,), rows))
                written = next(taken)
            except STATEMENT_ERRORS as exc:
                raise translate_error(exc) from exc
        self._after_write()
        return written

    def delete_many(self, keys: list[Any], now: float) -> int:
        conn = self.engine.connection()
        removed = 0
        with self.engine.write(conn):
            now = self._clock()  # again, now that the write lock is held
            try:
                for key in keys:
                    row = conn.execute(self._sql_delete, (_stored(key), now)).fetchone()
                    removed += bool(row and row[0])
            except STATEMENT_ERRORS as exc:
                raise translate_error(exc) from exc
        return removed

    # -- whole collection -------------------------------------------------------------

    def page_lists(self, sql: str, reverse: bool) -> Iterator[list[tuple[Any, ...]]]:
        """Pages of rows in insertion order (or reversed), read by ``id``.

        Each page is its own short read, so a slow consumer never holds a lock
        or pins the WAL.  Only the rows there when the iteration began are read
        (an entry added meanwhile gets a larger ``id``), so adding keys in the
        loop cannot make it endless; an entry changed or deleted before the
        iteration reaches it is read as it is then.
        """
        conn = self.engine.connection()
        try:
            newest = conn.execute(f"SELECT max(id) FROM {self.sql_name}").fetchone()[0]
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc
        if newest is None:
            return
        last = newest + 1 if reverse else -(1 << 63)
        while True:
            try:
                rows = conn.execute(sql, (last, self._clock(), _PAGE)).fetchall()
            except DB_ERRORS as exc:
                raise translate_error(exc) from exc
            full = len(rows) == _PAGE
            if not reverse and rows and rows[-1][0] > newest:  # added since the iteration began
                rows = [row for row in rows if row[0] <= newest]
                full = False
            if rows:
                yield rows
            if not full:
                return
            last = rows[-1][0]

    def keys(self, reverse: bool) -> Iterator[Any]:
        sql = self._sql_keys_page_rev if reverse else self._sql_keys_page
        decode = _keys.decode
        for rows in self.page_lists(sql, reverse):
            for _, stored, key_type in rows:
                yield decode(stored, key_type)

    def items(self, reverse: bool, decode: Callable[[Any], Any] | None) -> Iterator[tuple[Any, Any]]:
        sql = self._sql_page_rev if reverse else self._sql_page
        if decode is not None:
            for rows in self.page_lists(sql, reverse):
                for _, stored, key_type, data in rows:
                    yield _keys.decode(stored, key_type), decode(data)
            return
        loads = self._loads
        for rows in self.page_lists(sql, reverse):
            for _, stored, key_type, data in rows:  # decoded one at a time, as they are consumed
                try:
                    value = loads(data)
                except KvliteError:
                    raise
                except Exception as exc:
                    raise decode_error(self.serializer, exc) from exc
                yield (stored if key_type == 0 else _keys.decode(stored, key_type)), value

    #: The bounds of each kind of key in SQLite's order (numbers < TEXT < BLOB): from the least
    #: key of the kind (inclusive) to the least key of the next kind (exclusive; none after BLOB).
    _KIND_BOUNDS = {"number": (float("-inf"), ""), "str": ("", b""), "bytes": (b"", None)}

    def key_range(self, keys: _keys.KeyRange, reverse: bool,
                  decode: Callable[[Any], Any] | None | bool) -> Iterator[Any]:
        """Pages of the range in key order through the ``key`` column's UNIQUE index (a SEARCH
        of it, no sort), each page its own short read, the next one starting after the last
        key read."""
        self.check()
        if keys.empty:
            return
        low, high = self._KIND_BOUNDS[keys.kind]
        if keys.start is not None:
            low = _stored(keys.start)
        if keys.stop is not None:
            high = _stored(keys.stop)
        columns = "key, key_type" if decode is False else f"key, key_type, {self.value_sql}"
        live = "(expires_at IS NULL OR expires_at > ?)"
        if decode is None:
            decode = self.decode_raw
        conn = self.engine.connection()
        after: Any = MISSING  # the last key read: the next page starts past it
        while True:
            clauses, params = [], []
            lower = "key >= ?" if reverse or after is MISSING else "key > ?"
            clauses.append(lower)
            params.append(low if reverse or after is MISSING else after)
            if reverse and after is not MISSING:
                clauses.append("key < ?")
                params.append(after)
            elif high is not None:
                clauses.append("key < ?")
                params.append(high)
            sql = (f"SELECT {columns} FROM {self.sql_name} WHERE {' AND '.join(clauses)} AND {live} "
                   f"ORDER BY key {'DESC' if reverse else ''} LIMIT ?")
            try:
                rows = conn.execute(sql, (*params, self._clock(), _PAGE)).fetchall()
            except DB_ERRORS as exc:
                raise translate_error(exc) from exc
            for row in rows:
                key = row[0] if row[1] == 0 else _keys.decode(row[0], row[1])
                yield key if decode is False else (key, decode(row[2]))  # type: ignore[operator]
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def count(self, now: float) -> int:
        try:
            return self.engine.connection().execute(self._sql_count, (now,)).fetchone()[0]  # type: ignore[no-any-return]
        except apsw.Error as exc:
            raise translate_error(exc) from exc

    def purge(self, now: float) -> int:
        with self.engine.write(self.engine.connection()):
            return self._purge_now()  # reads the clock with the write lock held

    def clear(self) -> None:
        conn = self.engine.connection()
        with self.engine.write(conn):
            try:
                conn.execute(self._sql_clear)
            except apsw.Error as exc:
                raise translate_error(exc) from exc

    # -- queries and indexes: SQL push-down (query.py) ---------------------------------

    def decode_raw(self, data: Any) -> Any:
        """A stored value as plain data (what queries walk)."""
        return decode(self.serializer, data)

    def find(self, language: str, parsed: Any, order_by: str | None, desc: bool,
             tracker: Any, missing_last: bool = False) -> Iterator[tuple[Any, Any]] | None:
        from . import query

        return query.find(self, language, parsed, order_by, desc, tracker, missing_last)

    def count_matches(self, language: str, parsed: Any) -> int | None:
        from . import query

        return query.count_matches(self, language, parsed)

    def explain(self, language: str, parsed: Any, order_by: str | None,
                desc: bool, missing_last: bool = False) -> tuple[list[dict[str, Any]], list[str]] | None:
        from . import query

        return query.explain(self, language, parsed, order_by, desc, missing_last)

    def delete_where(self, query: Any, now: float) -> int:
        from . import query as _query

        removed = _query.delete_where(self, query, now)
        return super().delete_where(query, now) if removed is None else removed

    def patch_where(self, query: Any, patch: str | None, change: Callable[[Any], Any], now: float) -> int:
        from . import query as _query

        changed = None if patch is None else _query.patch_where(self, query, patch, now)
        return super().patch_where(query, patch, change, now) if changed is None else changed

    def count_by(self, path: list[str | int], query: Any | None) -> list[tuple[str, Any, int, int]] | None:
        from . import query as _query

        return _query.count_by(self, path, query)

    def create_index(self, path: str) -> str:
        from . import query

        return query.create_index(self, path)

    def drop_index(self, path: str) -> bool:
        from . import query

        return query.drop_index(self, path)

    def indexes(self) -> list[str]:
        from . import query

        return query.indexes(self)
