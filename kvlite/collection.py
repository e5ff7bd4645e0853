"""Collection: one table of ``key -> value`` entries with TTL, and the key-value protocol.

Table layout (one per collection, named ``kv_<id>`` after its registry row, so
no user text ever reaches SQL)::

    id          INTEGER PRIMARY KEY  -- insertion order, as in dict
    key         ANY NOT NULL UNIQUE  -- str/bytes/int/float, kept as given
    key_type    INTEGER              -- 1 when the key is a bool
    value       ANY NOT NULL         -- serializer output (TEXT for JSON)
    created_at, updated_at REAL
    expires_at  REAL NULL            -- NULL = never expires

Expiry: an entry whose ``expires_at`` is at or before the store's clock is
invisible to every read at once.  Expired rows are physically deleted when
their key is written again, by :meth:`Collection.purge_expired`, and every
1024 writes through a collection object.
"""

from __future__ import annotations

import datetime
import itertools
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Tuple

import apsw

from . import keys as _keys
from .errors import InvalidKey, KvliteError
from .backends.base import MISSING, entry_pairs
from .models import ModelAdapter
from .serializers import Serializer, decode, decode_error, encoder
from .store import DB_ERRORS, STATEMENT_ERRORS, translate_error
from .ttl import expiry

if TYPE_CHECKING:
    from .dictview import DictView
    from .store import Store

__all__ = ["Collection", "MISSING"]

_PURGE_EVERY = 1024
_MAX_KEY = _keys.MAX_KEY_LENGTH
_PAGE = 1000


#: The table a Collection object made in a rolled-back block is pointed at: it never exists.
ROLLED_BACK_TABLE = '"kvlite_rolled_back"'


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


Entry = Tuple[Any, Any]


class Collection:
    """A named table of ``key -> value`` entries in a :class:`~kvlite.Store`.

    Get one with ``store.collection(name)``.  Every method is atomic; the
    ``_many`` methods run in one transaction each.  Reads never see expired
    entries.  Keys: see :mod:`kvlite.keys` (``str``, ``bytes``, ``int``,
    ``float``, ``bool``; others raise :class:`~kvlite.errors.InvalidKey`).
    """

    def __init__(self, store: Store, name: str, table_id: int, serializer: Serializer,
                 model: type | None = None) -> None:
        self.store = store
        self.name = name
        self.serializer = serializer
        self.model = model
        self._model = ModelAdapter(model) if model is not None else None
        self._table_id = table_id
        self._dropped = False
        self._writes = 0
        self._dict: DictView | None = None
        # Operation counters for stats(); plain ints, cheap enough to leave on.
        self._n_gets = self._n_hits = self._n_puts = self._n_deletes = self._n_expired = 0
        self._clock = store._clock
        self._loads = serializer.loads
        # value -> stored data, or SerializationError: what every write calls once per value.
        self._encode_plain = encoder(serializer)
        self._encode = self._encode_plain if self._model is None else self._encode_model
        self._use_table(table_sql_name(table_id))

    def _use_table(self, t: str) -> None:
        """Build every statement of this collection on table ``t`` (its quoted SQL name)."""
        self._table = t
        serializer = self.serializer
        live = "(expires_at IS NULL OR expires_at > ?)"
        self._live = live
        # The stored value as the serializer reads it, and the stored form of a bound ?3
        # (both just the value unless the serializer converts in SQL, as jsonb does).
        value = self._value_sql = serializer.sql_out.format("value")
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
        self._sql_purge = f"DELETE FROM {t} WHERE expires_at <= ?"
        self._sql_clear = f"DELETE FROM {t}"

    def _roll_back_creation(self) -> None:
        """The ``transaction()`` block that created this collection rolled back: its table is
        gone, and its id will be given to the next collection made, so from now on every call
        raises :class:`~kvlite.errors.CollectionDropped` instead of reaching that table."""
        self._dropped = True
        self._use_table(ROLLED_BACK_TABLE)

    # -- helpers --------------------------------------------------------------------

    def _encode_model(self, value: Any) -> str | bytes:
        assert self._model is not None
        return self._encode_plain(self._model.dump(value))

    def _decode_raw(self, data: str | bytes) -> Any:
        """The stored value as the serializer gives it back (a dict, for typed collections)."""
        return decode(self.serializer, data)

    def _decode(self, data: str | bytes) -> Any:
        value = self._decode_raw(data)
        if self._model is not None:
            return self._model.load(value)
        return value

    def _after_write(self) -> None:
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            self._purge_any()

    def _purge_any(self) -> int:
        conn = self.store._conn()
        try:
            conn.execute(self._sql_purge, (self.store.now(),))
            purged = conn.changes()
        except apsw.Error as exc:
            raise translate_error(exc) from exc
        self._n_expired += purged
        return purged

    def stats(self) -> dict[str, Any]:
        """Counters and sizes: ``gets``, ``hits``, ``misses``, ``puts``, ``deletes``
        (operations through this object since it was made), ``expirations``
        (expired entries it purged), and from the file: ``rows`` (live
        entries), ``expired_pending`` (expired, not yet purged), ``bytes``
        (stored value bytes)."""
        try:
            rows, total, pending = self.store._conn().execute(
                # length() of TEXT counts characters: cast to BLOB to count bytes.
                f"SELECT count(*) FILTER (WHERE {self._live}), coalesce(sum(length(CAST(value AS BLOB))), 0), "
                f"count(*) FILTER (WHERE expires_at <= ?) FROM {self._table}",
                (self.store.now(), self.store.now())).fetchone()
        except apsw.Error as exc:
            raise translate_error(exc) from exc
        return {
            "collection": self.name,
            "serializer": self.serializer.name,
            "gets": self._n_gets,
            "hits": self._n_hits,
            "misses": self._n_gets - self._n_hits,
            "puts": self._n_puts,
            "deletes": self._n_deletes,
            "expirations": self._n_expired,
            "rows": rows,
            "expired_pending": pending,
            "bytes": total,
        }

    # -- single keys ------------------------------------------------------------------

    def get(self, key: Any, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` when it is missing or expired."""
        # The hot path of kvlite, kept to few calls: a str key needs no conversion (only the
        # length check), and the thread's reused cursor is taken without a method call.
        stored = key if type(key) is str and len(key) <= _MAX_KEY else _keys.encode(key)[0]
        store = self.store
        try:
            cursor = store._local.cursor
        except AttributeError:
            cursor = store._cursor()
        data: Any = MISSING
        try:
            # Iterated to the end (one row at most: key is UNIQUE), which resets the statement.
            for data, expires in cursor.execute(self._sql_get_expiring, (stored,)):
                if expires is not None and expires <= self._clock():
                    data = MISSING  # expired: invisible, as in every read
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        self._n_gets += 1
        if data is MISSING:
            return default
        self._n_hits += 1
        if self._model is None:
            try:
                return self._loads(data)
            except KvliteError:
                raise
            except Exception as exc:
                raise decode_error(self.serializer, exc) from exc
        return self._decode(data)

    def put(self, key: Any, value: Any, *, ttl: float | datetime.timedelta | None = None) -> None:
        """Store ``value`` under ``key``, replacing any previous value and TTL.

        ``ttl`` is in seconds (``None``: never expires).  An existing key keeps
        its place in iteration order (as in ``dict``); a key that had expired
        counts as new and moves to the end.

        :raises InvalidKey: unsupported key type.
        :raises InvalidTTL: ``ttl`` is not a positive finite number.
        :raises SerializationError: the serializer cannot encode ``value`` (nothing written).
        """
        if type(key) is str and len(key) <= _keys.MAX_KEY_LENGTH:
            stored: Any = key
            key_type = 0
        else:
            stored, key_type = _keys.encode(key)
        now = self._clock()
        expires = None if ttl is None else expiry(ttl, now)
        data = self._encode(value)
        store = self.store
        params = (stored, key_type, data, now, expires)
        try:
            # The thread's reused cursor (an INSERT runs to its end at once, as _cursor() asks).
            store._cursor().execute(self._sql_put, params)
            conn = store._conn()
            if not conn.changes():  # the key is there but expired: it counts as a new key
                with store._write(conn):
                    conn.execute(self._sql_delete_expired_key, (stored, now))
                    conn.execute(self._sql_put, params)
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        self._n_puts += 1
        self._after_write()

    def delete(self, key: Any) -> bool:
        """Remove ``key``; ``True`` if a live entry was removed, ``False`` if none (or it had expired)."""
        stored, _ = _keys.encode(key)
        try:
            row = self.store._conn().execute(self._sql_delete, (stored, self.store._clock())).fetchone()
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        deleted = bool(row and row[0])
        self._n_deletes += deleted
        return deleted

    def ttl(self, key: Any) -> float | None:
        """Seconds until ``key`` expires; ``None`` when it never expires or is missing."""
        stored, _ = _keys.encode(key)
        now = self.store._clock()
        try:
            row = self.store._conn().execute(self._sql_ttl, (stored, now)).fetchone()
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        if row is None or row[0] is None:
            return None
        return row[0] - now

    def __contains__(self, key: Any) -> bool:
        try:
            stored, _ = _keys.encode(key)
            row = self.store._conn().execute(self._sql_ttl, (stored, self.store._clock())).fetchone()
        except (InvalidKey, UnicodeEncodeError):
            return False
        except apsw.Error as exc:
            raise translate_error(exc) from exc
        return row is not None

    # -- many keys --------------------------------------------------------------------

    def get_many(self, keys: Iterable[Any], default: Any = None) -> list[Any]:
        """Values for ``keys``, in the same positions (``default`` where missing); one read snapshot."""
        encoded = _keys.encode_many(keys, "get_many")
        conn = self.store._conn()
        now = self.store._clock()
        out: list[Any] = []
        try:
            with self.store._read(conn):
                for stored in encoded:
                    row = conn.execute(self._sql_get, (stored, now)).fetchone()
                    out.append(default if row is None else self._decode(row[0]))
                    self._n_hits += row is not None
                self._n_gets += len(encoded)
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        return out

    def put_many(self, entries: Mapping[Any, Any] | Iterable[tuple[Any, Any]], *,
                 ttl: float | datetime.timedelta | None = None) -> int:
        """Store every ``(key, value)`` of a mapping or iterable of pairs in one transaction.

        All land or none does: a bad key or value anywhere raises and leaves the
        collection as it was.  Returns the number of entries written.
        """
        items = entry_pairs(entries)
        now = self.store._clock()
        expires = expiry(ttl, now)
        encode_key, encode, limit = _keys.encode, self._encode, _keys.MAX_KEY_LENGTH
        # One row per pair, made as executemany() asks for it (never a list of encoded values);
        # a str key needs no conversion (the common case, kept to one test).  `last` is the row
        # executemany() took last, so the row a statement failed on can be given to another.
        last: tuple[Any, ...] = ()
        # `taken` counts the pairs read (zip advances it only after a pair): the rows written, as
        # each statement below changes exactly one row -- whatever the iterable itself writes.
        taken = itertools.count()
        rows = ((last := (key, 0, encode(value), now, expires)) if type(key) is str and len(key) <= limit
                else (last := (*encode_key(key), encode(value), now, expires))
                for (key, value), _ in zip(items, taken))

        conn = self.store._conn()
        with self.store._write(conn):
            try:
                # Expired rows go first (cheap, through the partial index), so every key left
                # is live: each upsert below updates in place or inserts at the end, and
                # changes exactly one row.
                conn.execute(self._sql_purge, (now,))
                self._n_expired += conn.changes()
                try:
                    # New keys (a bulk load) need no upsert: plain inserts, until a key exists.
                    conn.executemany(self._sql_insert, rows)
                except apsw.ConstraintError:
                    # That row's insert was undone alone; it and the rest go through the upsert.
                    conn.executemany(self._sql_put, itertools.chain((last,), rows))
                written = next(taken)
            except STATEMENT_ERRORS as exc:
                raise translate_error(exc) from exc
        self._n_puts += written
        self._after_write()
        return written

    def delete_many(self, keys: Iterable[Any]) -> int:
        """Remove every key in ``keys`` in one transaction; returns how many live entries were removed."""
        encoded = _keys.encode_many(keys, "delete_many")
        conn = self.store._conn()
        removed = 0
        with self.store._write(conn):
            now = self.store._clock()
            try:
                for stored in encoded:
                    row = conn.execute(self._sql_delete, (stored, now)).fetchone()
                    removed += bool(row and row[0])
                self._n_deletes += removed
            except STATEMENT_ERRORS as exc:
                raise translate_error(exc) from exc
        return removed

    def ttl_many(self, keys: Iterable[Any]) -> list[float | None]:
        """:meth:`ttl` for each key, in the same positions; one read snapshot."""
        encoded = _keys.encode_many(keys, "ttl_many")
        conn = self.store._conn()
        now = self.store._clock()
        out: list[float | None] = []
        try:
            with self.store._read(conn):
                for stored in encoded:
                    row = conn.execute(self._sql_ttl, (stored, now)).fetchone()
                    out.append(None if row is None or row[0] is None else row[0] - now)
        except STATEMENT_ERRORS as exc:
            raise translate_error(exc) from exc
        return out

    # -- compound operations (one statement or one transaction each) ---------------------

    def pop(self, key: Any, default: Any = MISSING) -> Any:
        """Remove ``key`` and return its value; ``default`` if missing, else ``KeyError``."""
        try:
            stored, _ = _keys.encode(key)
        except InvalidKey:
            if default is MISSING:
                raise KeyError(key) from None
            return default
        conn = self.store._conn()
        with self.store._write(conn):  # decode before commit: a value that cannot be decoded stays stored
            try:
                row = conn.execute(self._sql_pop, (stored, self.store._clock())).fetchone()
            except DB_ERRORS as exc:
                raise translate_error(exc) from exc
            except UnicodeEncodeError:
                row = None
            value = MISSING if row is None or not row[1] else self._decode(row[0])
        if value is MISSING:
            if default is MISSING:
                raise KeyError(key)
            return default
        self._n_deletes += 1
        return value

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the most recently inserted ``(key, value)``; ``KeyError`` when empty."""
        conn = self.store._conn()
        with self.store._write(conn):  # decode before commit: a value that cannot be decoded stays stored
            try:
                row = conn.execute(self._sql_popitem, (self.store._clock(),)).fetchone()
            except DB_ERRORS as exc:
                raise translate_error(exc) from exc
            if row is None:
                raise KeyError("popitem(): dictionary is empty")
            item = _keys.decode(row[0], row[1]), self._decode(row[2])
        self._n_deletes += 1
        return item

    def setdefault(self, key: Any, default: Any = None, *, ttl: float | None = None) -> Any:
        """The value of ``key``; if missing, store ``default`` (with ``ttl``) and return it."""
        stored, key_type = _keys.encode(key)
        conn = self.store._conn()
        with self.store._write(conn):
            now = self.store._clock()
            expires = expiry(ttl, now)  # a bad ttl is an error even when the key exists
            try:
                row = conn.execute(self._sql_get, (stored, now)).fetchone()
                if row is not None:
                    return self._decode(row[0])
                conn.execute(self._sql_delete_expired_key, (stored, now))
                conn.execute(self._sql_put, (stored, key_type, self._encode(default), now, expires))
            except STATEMENT_ERRORS as exc:
                raise translate_error(exc) from exc
        return default

    # -- whole collection -------------------------------------------------------------

    def _page_lists(self, sql: str, reverse: bool) -> Iterator[list[tuple[Any, ...]]]:
        """Pages of rows in insertion order (or reversed), read by ``id``.

        Each page is its own short read, so a slow consumer never holds a lock
        or pins the WAL.  Only the rows there when the iteration began are read
        (an entry added meanwhile gets a larger ``id``), so adding keys in the
        loop cannot make it endless; an entry changed or deleted before the
        iteration reaches it is read as it is then.
        """
        conn = self.store._conn()
        try:
            newest = conn.execute(f"SELECT max(id) FROM {self._table}").fetchone()[0]
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

    def _pages(self, sql: str, reverse: bool) -> Iterator[tuple[Any, ...]]:
        """The rows of :meth:`_page_lists`, one at a time."""
        for rows in self._page_lists(sql, reverse):
            yield from rows

    def keys(self, *, reverse: bool = False) -> Iterator[Any]:
        """Every live key, in insertion order (or reversed)."""
        sql = self._sql_keys_page_rev if reverse else self._sql_keys_page
        decode = _keys.decode
        for _, stored, key_type in self._pages(sql, reverse):
            yield decode(stored, key_type)

    def items(self, *, reverse: bool = False) -> Iterator[Entry]:
        """Every live ``(key, value)``, in insertion order (or reversed), decoded one page at a time."""
        sql = self._sql_page_rev if reverse else self._sql_page
        if self._model is not None:
            for _, stored, key_type, data in self._pages(sql, reverse):
                yield _keys.decode(stored, key_type), self._decode(data)
            return
        loads = self._loads
        for rows in self._page_lists(sql, reverse):
            for _, stored, key_type, data in rows:  # decoded one at a time, as they are consumed
                try:
                    value = loads(data)
                except KvliteError:
                    raise
                except Exception as exc:
                    raise decode_error(self.serializer, exc) from exc
                yield (stored if key_type == 0 else _keys.decode(stored, key_type)), value

    def values(self, *, reverse: bool = False) -> Iterator[Any]:
        """Every live value, in insertion order (or reversed)."""
        for _, value in self.items(reverse=reverse):
            yield value

    def count(self, path: str | None = None, *, engine: str = "jsonpath") -> int:
        """Number of live (not expired) entries; with ``path``, the number of matches of the query."""
        if path is not None:
            return sum(1 for _ in self.find(path, engine=engine))
        try:
            return self.store._conn().execute(self._sql_count, (self.store._clock(),)).fetchone()[0]
        except apsw.Error as exc:
            raise translate_error(exc) from exc

    def __len__(self) -> int:
        return self.count()

    # -- queries (kvlite.query) ---------------------------------------------------------

    def find(self, path: str, *, engine: str = "jsonpath", limit: int | None = None, offset: int = 0,
             order_by: str | None = None, desc: bool = False) -> Iterator[tuple[Any, Any]]:
        """Yield ``(key, value)`` for every match of ``path``, streaming.

        ``path`` is JSONPath (jsonpath-ng's extended syntax) or, with
        ``engine="objectpath"``, ObjectPath.  The root ``$`` is the collection
        seen as the mapping ``{key: document}``; the matches, their values and
        their order are exactly what the engine returns on that mapping loaded
        in memory (see ``docs/queries.md``).  ``key`` is the key of the
        document a match came from (``None`` when a query over the whole
        collection, such as ``count($.*)``, has no single source).

        ``order_by`` (``"$.age"``; ``"-$.age"`` or ``desc=True`` for
        descending) orders the *documents* before the path runs (JSON
        collections only; missing values first when ascending).  ``offset``
        and ``limit`` page through the matches; reading stops as soon as
        ``limit`` matches are out.

        :raises QuerySyntaxError: the path does not parse.
        """
        from .query import find

        return find(self, path, engine=engine, limit=limit, offset=offset, order_by=order_by, desc=desc)

    def select(self, path: str, **options: Any) -> Iterator[Any]:
        """Like :meth:`find`, yielding only the matched values."""
        return (value for _, value in self.find(path, **options))

    def explain(self, path: str, *, engine: str = "jsonpath", order_by: str | None = None,
                desc: bool = False) -> dict[str, Any]:
        """How :meth:`find` would run ``path``: which part runs in SQL (with SQLite's query plan,
        so you can see an index being used) and which in Python, and whether it streams."""
        from .query import explain

        return explain(self, path, engine=engine, order_by=order_by, desc=desc)

    def create_index(self, path: str) -> str:
        """Create an expression index on ``json_extract(value, path)`` (JSON collections only).

        ``path`` is a plain field path (``"$.age"``, ``"$.address.city"``);
        filters and ``order_by`` on it then use the index.  Idempotent;
        returns the normalised path.
        """
        from .query import create_index

        return create_index(self, path)

    def drop_index(self, path: str) -> bool:
        """Drop the index on ``path``; ``False`` if there was none."""
        from .query import drop_index

        return drop_index(self, path)

    def indexes(self) -> list[str]:
        """Paths of this collection's expression indexes."""
        from .query import indexes

        return indexes(self)

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def purge_expired(self) -> int:
        """Delete expired entries now; returns how many."""
        with self.store._write(self.store._conn()):
            return self._purge_any()

    def clear(self) -> None:
        """Remove every entry."""
        conn = self.store._conn()
        with self.store._write(conn):
            try:
                conn.execute(self._sql_clear)
            except apsw.Error as exc:
                raise translate_error(exc) from exc

    def dict(self) -> DictView:
        """A :class:`~kvlite.DictView` over this collection: a ``MutableMapping`` that behaves like ``dict``."""
        from .dictview import DictView

        if self._dict is None:
            self._dict = DictView._over(self)
        return self._dict

    def __repr__(self) -> str:
        return f"<kvlite.Collection {self.name!r} serializer={self.serializer.name!r} in {self.store.path!r}>"
