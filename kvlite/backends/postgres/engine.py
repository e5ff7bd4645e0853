"""``postgresql://`` -- kvlite on a PostgreSQL server (psycopg 3 + psycopg_pool).

``kvlite.open("postgresql://user:password@host:5432/dbname")`` gives the full
kvlite Store / Collection / DictView / TTL / transaction / query API on a
PostgreSQL database (psycopg 3 and psycopg-pool: kvlite's ``postgres`` extra).  The URL is a libpq
connection URI (``postgres://`` works too; every libpq parameter such as
``sslmode`` or ``options=-csearch_path%3Dmyschema`` is passed through), plus
two kvlite parameters read and removed before connecting:
``pool_min_size`` (default 1) and ``pool_max_size`` (default 10).

Layout, in the schema that is first on the connection's ``search_path``
(``current_schema()`` when the store is opened; every name below is
qualified with it)::

    kvlite_meta(key text PRIMARY KEY, value text)      -- schema_version, created_by
    kvlite_collections(id bigserial PRIMARY KEY, name text UNIQUE, serializer text,
                       value_type text, created_at timestamptz)
    kv_<id>                                            -- one table per collection
        id          bigint PRIMARY KEY DEFAULT nextval('kv_<id>_id_seq')  -- insertion order
        key_canon   text NOT NULL UNIQUE  -- equal keys, equal text (1, 1.0, True -> 'n:1')
        key_text    text NOT NULL         -- the stored key with its type ('s:a', 'B:1', ...)
        value       text NOT NULL         -- JSON collections: the serializer's text, exactly
        doc         jsonb GENERATED ALWAYS AS (value::jsonb) STORED   -- JSON only, for queries
        value       bytea NOT NULL        -- other serializers (value_is_text: it was a str)
        created_at, updated_at timestamptz
        expires_at  timestamptz NULL      -- NULL = never; partial index WHERE NOT NULL

Table names come from the registry's integer id, never from user text; keys,
values, names and query literals always travel as bound parameters.  Key
texts escape ``\\`` and NUL (PostgreSQL text cannot hold NUL).  ``doc`` is
NULL for a document whose JSON text contains ``\\u0000`` (jsonb cannot hold
it); queries then check that row in Python.  A JSON serializer whose
``dumps`` returns bytes (UTF-8, as ``orjson.dumps`` does) has its text stored
all the same, and ``loads`` gets bytes back; which type it returns is asked
once per collection object, with ``dumps(None)``.

Semantics are the SQLite store's (see :mod:`kvlite.collection`): an update
keeps the key's place and its first-stored form; a put over an expired key
counts as new (a new ``id`` from the sequence: it moves to the end); expired
rows are invisible at once to every read, judged by the store's clock
(``clock=``), and deleted when written again or by ``purge_expired()``.
Expiry times are ``timestamptz``: microsecond resolution, and an expiry past
the year ~293,500 (timestamptz ends in 294276; e.g. ``ttl=1e300``) is capped
to it: the entry still never expires in practice, and ``ttl()`` reports the
(finite) time left until the cap, a TTL that ``put`` and ``kvlite.copy``
accept again.

Every call is atomic: single statements, and ``put_many`` / ``delete_many`` /
``setdefault`` / ``popitem`` in one transaction each.  Connections come from a
``psycopg_pool.ConnectionPool`` (autocommit), so one store is safe to share
between threads; other processes and machines may use the same database.

``transaction()``: the thread takes one pooled connection for the block and
every call it makes in the block goes through it (other threads keep using
the pool).  The outermost block first takes a session advisory lock per
schema (``pg_advisory_lock``; like SQLite's ``BEGIN IMMEDIATE`` it waits up
to ``timeout`` and lets one block run at a time, across processes), then
runs ``BEGIN ISOLATION LEVEL REPEATABLE READ``: reads in the block see one
stable snapshot.  Every read in a block also locks the rows it returns
(``SELECT ... FOR SHARE``) until the block ends, and every write locks its
row, so a single call made outside any block that would change a row the
block read or wrote waits for the block (up to its ``timeout``, then
:class:`~kvlite.errors.StoreLocked`), as a write waits for a block on
SQLite: a read-modify-write in a block cannot lose an update or a delete.
What the block cannot lock in time is refused instead: when another client
changed a row after the block's snapshot was taken and before the block read
(or wrote) it, or inserted a key the block saw missing and then writes,
PostgreSQL refuses the block's statement, kvlite raises
:class:`~kvlite.errors.StoreLocked` ("... retry it") and the block is rolled
back.  Single calls outside blocks take no extra locks.  Nested blocks are
savepoints; collections created or dropped in one that rolls back are undone
with it (objects made in it then raise, objects of a collection it dropped
work again).

``durability="full"`` needs a server running with ``fsync = on`` (else
:class:`~kvlite.errors.NotSupported` when the store is opened) and sets
``synchronous_commit = on`` on every connection; ``"normal"`` keeps the
server's settings (PostgreSQL's default is already durable).  ``timeout``
bounds the wait for a pool connection, for the server to connect, and for
locks (``lock_timeout``); past it kvlite raises
:class:`~kvlite.errors.StoreLocked`.

``store.collection(name)`` reads the registry every time (one query), as the
SQLite store does: after another client dropped the collection (and maybe made
it again, maybe with another serializer: :class:`~kvlite.errors.SerializerMismatch`)
it gives the current one.  Every call through an object of a dropped
collection raises :class:`~kvlite.errors.CollectionDropped`.

Queries (:meth:`PostgresCollection.find`): on JSON collections the filters
of a path (``$[?(@.age > 30 & @.name == "Ada")]``) are pushed down to
PostgreSQL's SQL/JSON path language -- ``jsonb_path_exists(doc, path, vars)``
with every literal passed in ``vars``, never in the SQL or path text -- and,
on a path with :meth:`~PostgresCollection.create_index`, to a btree
expression index on ``doc #> '{a,b}'``.  The SQL condition is a superset of
the Python one (it never drops a row Python would match) and Python re-checks
every row it lets through, so the answer is always the one kvlite's Python
evaluation gives on the collection loaded in memory.  Everything else
(``order_by``, ObjectPath, ``$..x``, other serializers) runs in Python over
streamed rows, as on every non-SQLite backend.
"""

from __future__ import annotations

import contextlib
import decimal
import hashlib
import json
import math
import sys
import threading
import time
import urllib.parse
import weakref
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterator

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ..errors import KvliteError

    raise KvliteError("the PostgreSQL backend needs psycopg 3 and psycopg_pool: "
                      "pip install 'psycopg[binary]' psycopg-pool") from exc

from ..version import __version__
from .. import keys as _keys
from .. import serializers as _serializers
from ..errors import (
    CollectionDropped,
    IncompatibleVersion,
    KvliteError,
    NotSupported,
    ReadOnlyError,
    SerializationError,
    StoreClosed,
    StoreFull,
    StoreLocked,
    TransactionLost,
)
from ..query.jsonpath import field_chain
from .base import MISSING, BackendCollection, BackendStore, validate_settings

__all__ = ["PostgresStore", "PostgresCollection", "SCHEMA_VERSION"]

#: Version of the tables this module writes (``kvlite_meta.schema_version``).
SCHEMA_VERSION = 1

_PAGE = 1000
_LOCK_CLASS = 0x6B766C74  # "kvlt": the first key of every advisory lock kvlite takes
#: The latest expiry stored (in the year 293,500; timestamptz ends in 294276): a later one is capped
#: to it, so such an entry still never expires in practice and ``ttl()`` stays a finite number.
_MAX_EPOCH = 9.2e12
_KVLITE_PARAMS = ("pool_min_size", "pool_max_size")


# -- text forms ------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    """``text`` without NUL (PostgreSQL text cannot hold it); injective: ``\\`` -> ``\\\\``, NUL -> ``\\0``."""
    if "\\" not in text and "\x00" not in text:
        return text
    return text.replace("\\", "\\\\").replace("\x00", "\\0")


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append("\x00" if nxt == "0" else nxt)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _canon(key: Any) -> str:
    return _escape(_keys.canonical_text(key))


def _key_text(key: Any) -> str:
    return _escape(_keys.tagged_text(key))


def _key_back(text: str) -> Any:
    return _keys.from_tagged_text(_unescape(text))


def _epoch(value: float | None) -> float | None:
    """A store-clock time as the float ``to_timestamp()`` gets (capped at :data:`_MAX_EPOCH`)."""
    if value is None:
        return None
    return _MAX_EPOCH if value > _MAX_EPOCH else value


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def split_url(url: str) -> tuple[str, dict[str, int]]:
    """``(libpq conninfo URL, kvlite options)``: the ``pool_*`` parameters taken out of ``url``."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ours: dict[str, int] = {}
    rest = []
    for name, value in query:
        if name in _KVLITE_PARAMS:
            try:
                ours[name] = int(value)
            except ValueError:
                raise ValueError(f"{name} must be an integer, not {value!r}") from None
            if ours[name] < (0 if name == "pool_min_size" else 1):
                raise ValueError(f"{name} is too small: {value!r}")
        else:
            rest.append((name, value))
    scheme = "postgresql" if parts.scheme.lower() in ("postgresql", "postgres") else parts.scheme
    conninfo = urllib.parse.urlunsplit((scheme, parts.netloc, parts.path,
                                        urllib.parse.urlencode(rest, quote_via=urllib.parse.quote), parts.fragment))
    return conninfo, ours


def _redacted(url: str) -> str:
    """``url`` without its password (for ``repr`` and messages)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urllib.parse.urlunsplit((parts.scheme, f"{user}:***@{netloc[1]}", parts.path, parts.query, parts.fragment))


# -- errors ----------------------------------------------------------------------------------------


def translate(exc: BaseException) -> BaseException:
    """The :mod:`kvlite.errors` exception for a psycopg / pool error (or ``exc`` itself)."""
    if isinstance(exc, PoolClosed):
        return StoreClosed("the store is closed")
    if isinstance(exc, PoolTimeout):
        return StoreLocked(f"no PostgreSQL connection became free within the timeout: {exc}")
    if isinstance(exc, (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected)):
        return StoreLocked(f"a PostgreSQL lock was not granted within the timeout: {exc}")
    if isinstance(exc, pg_errors.SerializationFailure):
        return StoreLocked("another client changed a row this transaction also writes; the transaction "
                           f"was rolled back, retry it: {exc}")
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return ReadOnlyError(f"the store cannot be written: {exc}")
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return ReadOnlyError(f"the PostgreSQL user may not do this: {exc}")
    if isinstance(exc, (pg_errors.DiskFull, pg_errors.OutOfMemory)):
        return StoreFull(f"the PostgreSQL server is full; nothing was written: {exc}")
    if isinstance(exc, pg_errors.InFailedSqlTransaction):
        return TransactionLost("PostgreSQL aborted this transaction after an earlier error inside the block "
                               f"(caught by the code in it); nothing of the block is committed: {exc}")
    if isinstance(exc, pg_errors.UndefinedTable):
        return CollectionDropped("the collection was dropped (by this or another client): "
                                 f"{exc.diag.message_primary or exc}")
    if isinstance(exc, (pg_errors.ProgramLimitExceeded, pg_errors.DataError)):
        return SerializationError(f"PostgreSQL refused the data: {exc}")
    if isinstance(exc, psycopg.Error):
        return KvliteError(f"PostgreSQL error: {exc}")
    return exc


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (psycopg.Error, PoolClosed, PoolTimeout) as exc:
        raise translate(exc) from exc


def _executemany(conn: psycopg.Connection[Any], sql: str, rows: list[dict[str, Any]]) -> None:
    """``executemany(sql, rows)`` in a pipeline that ends cleanly when a row fails; the first
    error is then raised (a psycopg error, for :func:`_translated`).

    psycopg sends the rows of ``executemany()`` in pipeline mode.  When one fails (the collection
    was dropped by another client, a lock timed out, PostgreSQL refused a value), the rows already
    sent after it come back "aborted"; a pipeline left by that error (psycopg's own, in
    ``executemany()``) cannot sync them, and psycopg logs "error ignored terminating
    <psycopg.Pipeline ...>: pipeline aborted" on its logger, which a program that configured no
    logging prints to stderr.  Here the pipeline is this function's: after a failure it is synced
    inside its block (collecting the aborted results), so it is left without an error to report.
    """
    failure: psycopg.Error | None = None
    try:
        with conn.pipeline() as pipeline, conn.cursor() as cur:
            try:
                cur.executemany(sql, rows)  # rides this pipeline instead of opening its own
            except psycopg.Error as exc:
                failure = exc
                for _ in range(3):  # normally once: the results up to this sync, all aborted
                    try:
                        pipeline.sync()
                        break
                    except pg_errors.PipelineAborted:
                        continue
                    except psycopg.Error:
                        break  # the connection itself failed: the pool discards it
    except psycopg.Error:
        if failure is None:  # an error reported when the pipeline ends (the rows' own, then)
            raise
        # else: ending the pipeline failed too, after the row's error: that is the one to raise
    if failure is not None:
        raise failure


# -- the store -------------------------------------------------------------------------------------


@dataclass
class _Level:
    """What one ``transaction()`` level (the block, or a savepoint in it) changed in the registry."""

    created: set[int] = field(default_factory=set)  # table ids of collections it created
    dropped: list[Any] = field(default_factory=list)  # collection objects it marked dropped

    def absorb(self, inner: _Level) -> None:
        self.created |= inner.created
        self.dropped.extend(inner.dropped)


class PostgresStore(BackendStore):
    """A kvlite store in a PostgreSQL database (``postgresql://...``)."""

    supports_transactions = True

    def __init__(self, url: str, *, serializer: str | _serializers.Serializer = "json",
                 clock: Callable[[], float] = time.time, readonly: bool = False,
                 durability: str = "normal", timeout: float = 30.0) -> None:
        seconds = validate_settings(durability, timeout)
        super().__init__(_redacted(url), serializer=serializer, clock=clock, readonly=readonly)
        self.durability = durability
        self.timeout = seconds
        conninfo, options = split_url(url)
        self._local = threading.local()
        self._made: weakref.WeakSet[PostgresCollection] = weakref.WeakSet()  # every collection object
        self._lock_ms = max(1, int(self.timeout * 1000))
        connect_timeout = max(2, math.ceil(self.timeout))  # libpq: whole seconds, at least 2
        self._connect_kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": connect_timeout}
        try:
            with psycopg.connect(conninfo, **self._connect_kwargs) as conn:
                self._configure(conn)
                if durability == "full":
                    self._check_full_durability(conn)
                self._setup(conn)
        except psycopg.Error as exc:
            if exc.sqlstate is None:  # no answer from a server: could not connect at all
                raise KvliteError(f"cannot connect to PostgreSQL at {self.url}: {exc}") from exc
            raise translate(exc) from exc
        max_size = options.get("pool_max_size", 10)
        min_size = min(options.get("pool_min_size", 1), max_size)
        self._pool: ConnectionPool = ConnectionPool(
            conninfo, kwargs=self._connect_kwargs, min_size=min_size, max_size=max_size,
            configure=self._configure, open=False, timeout=max(self.timeout, connect_timeout), name="kvlite")
        self._pool.open(wait=False)

    # -- connections -----------------------------------------------------------------------------

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Session settings of every connection (autocommit, so each SET is on its own)."""
        conn.execute(f"SET lock_timeout = {self._lock_ms:d}")
        conn.execute("SET TIME ZONE 'UTC'")
        if self.durability == "full":
            conn.execute("SET synchronous_commit = on")
        if self.readonly:
            conn.execute("SET default_transaction_read_only = on")

    def _check_full_durability(self, conn: psycopg.Connection[Any]) -> None:
        """``durability="full"`` needs a server that flushes its WAL to disk (``fsync = on``)."""
        fsync = conn.execute("SHOW fsync").fetchone()[0]  # type: ignore[index]
        if fsync != "on":
            raise NotSupported(
                f"durability='full' needs a PostgreSQL server running with fsync = on (this one has "
                f"fsync = {fsync}: a committed write may be lost in a crash); use durability='normal' "
                "or change the server")

    def _setup(self, conn: psycopg.Connection[Any]) -> None:
        """Find the schema, create kvlite's tables in it if needed, and check their version."""
        self.server_version: int = conn.info.server_version
        schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        if schema is None:
            raise KvliteError("no schema on the search_path exists to hold kvlite's tables")
        self.schema: str = schema
        self._s = quote_ident(schema)
        self._registry = f"{self._s}.kvlite_collections"
        self._meta = f"{self._s}.kvlite_meta"
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self._registry,)).fetchone()[0]  # type: ignore[index]
        if not exists and not self.readonly:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, schema + "/setup"))
                conn.execute(f"CREATE TABLE IF NOT EXISTS {self._meta} (key text PRIMARY KEY, value text NOT NULL)")
                conn.execute(f"""
                    CREATE TABLE IF NOT EXISTS {self._registry} (
                        id         bigserial PRIMARY KEY,
                        name       text NOT NULL UNIQUE,
                        serializer text NOT NULL,
                        value_type text NOT NULL CHECK (value_type IN ('json', 'bytea')),
                        created_at timestamptz NOT NULL DEFAULT now()
                    )""")
                conn.execute(f"INSERT INTO {self._meta} (key, value) VALUES ('schema_version', %s), "
                             "('created_by', %s) ON CONFLICT (key) DO NOTHING",
                             (str(SCHEMA_VERSION), f"kvlite {__version__}"))
            exists = True
        self._has_registry = bool(exists)
        if exists:
            row = conn.execute(f"SELECT value FROM {self._meta} WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                raise IncompatibleVersion(f"the kvlite tables in schema {schema!r} have version {version}; "
                                          f"this kvlite knows up to {SCHEMA_VERSION}: upgrade kvlite")

    @contextlib.contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """This thread's ``transaction()`` connection, else a pooled one for the ``with`` block."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        self._check_open()
        with _translated(), self._pool.connection() as pooled:
            yield pooled

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection in a transaction (a savepoint inside a ``transaction()`` block)."""
        with self._conn() as conn, _translated(), conn.transaction():
            yield conn

    def _fetchone(self, sql: str, params: Any = None) -> Any:
        with self._conn() as conn, _translated():
            return conn.execute(sql, params).fetchone()

    def _fetchall(self, sql: str, params: Any = None) -> list[Any]:
        with self._conn() as conn, _translated():
            return conn.execute(sql, params).fetchall()

    def _rowcount(self, sql: str, params: Any = None) -> int:
        with self._conn() as conn, _translated():
            return conn.execute(sql, params).rowcount

    # -- registry primitives ---------------------------------------------------------------------

    def _registry_exists(self) -> bool:
        """Whether kvlite's tables exist (a read-only store opened before any writer may see them later)."""
        if not self._has_registry:
            self._has_registry = bool(self._fetchone("SELECT to_regclass(%s) IS NOT NULL", (self._registry,))[0])
        return self._has_registry

    def _registry_get(self, name: str) -> tuple[Any, str] | None:
        if not self._registry_exists():
            return None
        row = self._fetchone(f"SELECT id, serializer, value_type FROM {self._registry} WHERE name = %s", (name,))
        if row is None:
            return None
        return (int(row[0]), row[2]), row[1]

    def _registry_create(self, name: str, serializer: str) -> tuple[Any, str]:
        value_type = "json" if _serializers.get(serializer).json else "bytea"
        with self._atomic() as conn:
            # One creator at a time per schema, so a concurrent creator of the same name waits
            # and then finds it (instead of failing on the unique name).
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, self.schema + "/setup"))
            row = conn.execute(f"SELECT id, serializer, value_type FROM {self._registry} WHERE name = %s",
                               (name,)).fetchone()
            if row is not None:
                return (int(row[0]), row[2]), row[1]
            table_id = int(conn.execute(
                f"INSERT INTO {self._registry} (name, serializer, value_type) VALUES (%s, %s, %s) RETURNING id",
                (name, serializer, value_type)).fetchone()[0])  # type: ignore[index]
            for statement in self._table_ddl(table_id, value_type):
                conn.execute(statement)
        levels = getattr(self._local, "levels", None)
        if levels:  # inside a block: undone if the block (or savepoint) that made it rolls back
            levels[-1].created.add(table_id)
        return (table_id, value_type), serializer

    def _table_ddl(self, table_id: int, value_type: str) -> list[str]:
        table, seq = self._table_name(table_id), self._seq_name(table_id)
        if value_type == "json":
            value_cols = """
                value      text NOT NULL,
                doc        jsonb GENERATED ALWAYS AS
                           (CASE WHEN strpos(value, E'\\\\u0000') = 0 THEN value::jsonb END) STORED,"""
        else:
            value_cols = """
                value      bytea NOT NULL,
                value_is_text boolean NOT NULL DEFAULT false,"""
        statements = [
            f"CREATE SEQUENCE {seq}",
            f"""CREATE TABLE {table} (
                id         bigint PRIMARY KEY DEFAULT nextval({_quote_literal(seq)}::regclass),
                key_canon  text NOT NULL UNIQUE,
                key_text   text NOT NULL,{value_cols}
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                expires_at timestamptz
            )""",
            f"ALTER SEQUENCE {seq} OWNED BY {table}.id",
            (f"CREATE INDEX {quote_ident(f'kv_{table_id:d}_expires')} ON {table} (expires_at) "
             "WHERE expires_at IS NOT NULL"),
        ]
        if value_type == "json":
            # The (rare) rows whose doc is NULL pass every pushed-down filter: index them, so a
            # filter on an indexed path can still be answered from indexes alone.
            statements.append(f"CREATE INDEX {quote_ident(f'kv_{table_id:d}_nodoc')} ON {table} (id) "
                              "WHERE doc IS NULL")
        return statements

    def _table_name(self, table_id: int) -> str:
        return f"{self._s}.{quote_ident(f'kv_{int(table_id):d}')}"

    def _seq_name(self, table_id: int) -> str:
        return f"{self._s}.{quote_ident(f'kv_{int(table_id):d}_id_seq')}"

    def _registry_names(self) -> list[str]:
        if not self._registry_exists():
            return []
        return [row[0] for row in self._fetchall(f"SELECT name FROM {self._registry} ORDER BY id")]

    def _registry_drop(self, name: str) -> bool:
        if not self._registry_exists():
            return False
        with self._atomic() as conn:
            row = conn.execute(f"DELETE FROM {self._registry} WHERE name = %s RETURNING id", (name,)).fetchone()
            if row is None:
                return False
            conn.execute(f"DROP TABLE IF EXISTS {self._table_name(int(row[0]))}")  # its sequence goes with it
        return True

    def _make_collection(self, name: str, handle: Any, serializer: _serializers.Serializer,
                         model: type | None) -> PostgresCollection:
        table_id, value_type = handle
        coll = PostgresCollection(self, name, table_id, value_type, serializer, model)
        self._made.add(coll)
        return coll

    def _close(self) -> None:
        self._pool.close()

    # -- transactions --------------------------------------------------------------------------

    def _in_block(self) -> bool:
        """Whether this thread is inside a ``transaction()`` block."""
        return getattr(self._local, "conn", None) is not None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PostgresStore]:
        """Atomic block across keys and collections: all of it lands, or none (see the module doc).

        Every call this thread makes inside the block uses the block's
        connection, and the rows the block reads are locked (``FOR SHARE``)
        until it ends, so another client cannot change them under it; a nested
        block is a savepoint that undoes only its own writes when it raises.
        """
        self._check_writable()
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None:  # nested: a savepoint
            level = _Level()
            local.levels.append(level)
            released = False
            try:
                with _translated(), conn.transaction():
                    yield self
                released = True
            finally:
                local.levels.pop()
                if released:  # the outer block now undoes this one's changes if it rolls back
                    local.levels[-1].absorb(level)
                else:
                    self._after_rollback(level)
            return
        with _translated():
            conn = self._pool.getconn()
        try:
            with _translated():
                conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_LOCK_CLASS, self.schema + "/tx"))
            try:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                level = _Level()
                local.conn, local.levels = conn, [level]
                committed = False
                try:
                    with _translated(), conn.transaction():
                        yield self
                    committed = True
                finally:
                    local.conn = local.levels = None
                    if not committed:  # registry reads now see the committed state again
                        self._after_rollback(level)
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.isolation_level = None
                    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_LOCK_CLASS, self.schema + "/tx"))
        finally:
            with contextlib.suppress(Exception):
                self._pool.putconn(conn)

    def drop_collection(self, name: str) -> bool:
        """See :meth:`kvlite.Store.drop_collection`.  Inside a ``transaction()`` block (or a
        nested one) that is rolled back, the drop is undone: the collection objects opened
        before it work again."""
        opened = [coll for coll in list(self._made) if coll.name == name and not coll._dropped]
        dropped = super().drop_collection(name)
        if dropped:
            for coll in opened:
                coll._dropped = True
            levels = getattr(self._local, "levels", None)
            if levels:
                levels[-1].dropped.extend(opened)
        return dropped

    def _after_rollback(self, level: _Level) -> None:
        """After a block or savepoint rolled back: the collections it created are gone again,
        and the objects of collections it dropped work again (when their table is registered
        again, as this thread now sees the registry)."""
        for coll in list(self._made):
            if coll._table_id in level.created:
                coll._dropped = True
                for cache_key in [k for k, v in list(self._collections.items()) if v is coll]:
                    self._collections.pop(cache_key, None)
        for coll in level.dropped:
            if coll._table_id in level.created:
                continue
            with contextlib.suppress(KvliteError):
                found = self._registry_get(coll.name)
                if found is not None and found[0][0] == coll._table_id:
                    coll._dropped = False
                    self._collections.setdefault((coll.name, coll.model), coll)

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<kvlite.PostgresStore {self.url!r} schema={getattr(self, 'schema', None)!r}{state}>"


# -- collections -----------------------------------------------------------------------------------


class PostgresCollection(BackendCollection):
    """A collection of a :class:`PostgresStore`: one table ``kv_<id>``."""

    def __init__(self, store: PostgresStore, name: str, table_id: int, value_type: str,
                 serializer: _serializers.Serializer, model: type | None = None) -> None:
        super().__init__(store, name, serializer, model)
        self._pg = store
        self._table_id = table_id
        self._json = value_type == "json"
        # A JSON collection stores text; a JSON serializer whose dumps() gives bytes (UTF-8, as
        # orjson.dumps does) gets bytes back from loads(), as on every other backend.  Which one
        # it gives is asked once, for None.
        self._json_bytes = False
        if self._json:
            with contextlib.suppress(Exception):
                self._json_bytes = isinstance(serializer.dumps(None), bytes)
        t = self._tname = store._table_name(table_id)
        seq = _quote_literal(store._seq_name(table_id))
        now = "to_timestamp(%(now)s::float8)"
        live = self._live = f"(expires_at IS NULL OR expires_at > {now})"
        extra_col, extra_val, extra_set = ("", "", "") if self._json else (
            ", value_is_text", ", %(is_text)s", ", value_is_text = excluded.value_is_text")
        self._value_cols = "value" if self._json else "value, value_is_text"
        expired = "e.expires_at <= excluded.created_at"
        insert = (f"INSERT INTO {t} AS e (key_canon, key_text, value{extra_col}, created_at, updated_at, expires_at) "
                  f"VALUES (%(canon)s, %(text)s, %(value)s{extra_val}, {now}, {now}, "
                  f"to_timestamp(%(expires)s::float8)) ON CONFLICT (key_canon) DO UPDATE SET ")
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
        self._sql_get = (f"SELECT {self._value_cols}, extract(epoch FROM expires_at)::float8, key_text "
                         f"FROM {t} WHERE key_canon = %(canon)s AND {live}")
        self._sql_get_many = (f"SELECT key_canon, {self._value_cols} FROM {t} "
                              f"WHERE key_canon = ANY(%(canons)s::text[]) AND {live}")
        # Inside a transaction() block reads lock what they read (see PostgresStore.transaction).
        self._sql_get_locked = self._sql_get + " FOR SHARE"
        self._sql_get_many_locked = self._sql_get_many + " FOR SHARE"
        self._sql_count_locked = f"SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {live} FOR SHARE) AS live"
        self._sql_delete = f"DELETE FROM {t} WHERE key_canon = %(canon)s RETURNING {self._value_cols}, {live}"
        self._sql_delete_all = (f"WITH gone AS (DELETE FROM {t} WHERE key_canon = ANY(%(canons)s::text[]) "
                                f"RETURNING expires_at) SELECT count(*) FROM gone WHERE {live}")
        self._sql_popitem = (f"DELETE FROM {t} WHERE id = (SELECT id FROM {t} WHERE {live} "
                             f"ORDER BY id DESC LIMIT 1 FOR UPDATE) RETURNING key_text, {self._value_cols}")
        self._sql_any_live = f"SELECT EXISTS (SELECT 1 FROM {t} WHERE {live})"
        self._sql_count = f"SELECT count(*) FROM {t} WHERE {live}"
        self._sql_page = (f"SELECT id, key_text, {self._value_cols} FROM {t} WHERE id > %(after)s "
                          f"AND id <= %(newest)s AND {live} ORDER BY id LIMIT %(page)s")
        self._sql_newest = f"SELECT coalesce(max(id), 0) FROM {t}"
        self._sql_page_rev = (f"SELECT id, key_text, {self._value_cols} FROM {t} WHERE id < %(after)s AND {live} "
                              "ORDER BY id DESC LIMIT %(page)s")
        self._sql_purge = f"DELETE FROM {t} WHERE expires_at <= {now}"
        self._sql_clear = f"DELETE FROM {t}"
        self._sql_sizes = (f"SELECT count(*) FILTER (WHERE {live}), coalesce(sum(octet_length(value)), 0), "
                           f"count(*) FILTER (WHERE expires_at <= {now}) FROM {t}")

    # -- value conversion ----------------------------------------------------------------------

    def _params(self, key: Any, data: Any, now: float, expires: float | None) -> dict[str, Any]:
        params: dict[str, Any] = {"canon": _canon(key), "text": _key_text(key), "now": now,
                                  "expires": _epoch(expires)}
        if self._json:
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

    def _data(self, row: Any, at: int) -> Any:
        """The serializer data stored in ``row[at]`` (and ``row[at + 1]`` for bytea tables)."""
        if self._json:
            return row[at].encode("utf-8") if self._json_bytes else row[at]
        value = bytes(row[at])
        return value.decode("utf-8", "surrogatepass") if row[at + 1] else value

    @property
    def _width(self) -> int:
        return 1 if self._json else 2

    # -- primitives ----------------------------------------------------------------------------

    def _get(self, key: Any, now: float) -> tuple[Any, float | None, Any] | None:
        sql = self._sql_get_locked if self._pg._in_block() else self._sql_get
        row = self._pg._fetchone(sql, {"canon": _canon(key), "now": now})
        if row is None:
            return None
        w = self._width
        # (an expiry stored as infinity by an older kvlite reads as the cap, too)
        return self._data(row, 0), _epoch(row[w]), _key_back(row[w + 1])

    def _put(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        params = self._params(key, data, now, expires)
        with self._pg._conn() as conn, _translated():
            conn.execute(self._sql_put, params)

    def _put_all(self, entries: list[tuple[Any, Any]], now: float, expires: float | None) -> None:
        if not entries:
            return
        rows = [self._params(key, data, now, expires) for key, data in entries]
        with self._pg._atomic() as conn:
            _executemany(conn, self._sql_put, rows)

    def _delete(self, key: Any, now: float) -> Any:
        row = self._pg._fetchone(self._sql_delete, {"canon": _canon(key), "now": now})
        if row is None or not row[self._width]:
            return MISSING
        return self._data(row, 0)

    def _delete_all(self, keys: list[Any], now: float) -> int:
        if not keys:
            return 0
        row = self._pg._fetchone(self._sql_delete_all, {"canons": [_canon(k) for k in keys], "now": now})
        return int(row[0])

    def _popitem(self, now: float) -> tuple[Any, Any] | None:
        # One statement (atomic on its own): lock the newest live row, delete it, return it.
        for _ in range(100):
            row = self._pg._fetchone(self._sql_popitem, {"now": now})
            if row is not None:
                return _key_back(row[0]), self._data(row, 1)
            if not self._pg._fetchone(self._sql_any_live, {"now": now})[0]:
                return None
            # The newest row went away under us (another client popped it): look again.
        raise StoreLocked("popitem() kept losing the race for the newest entry to other clients")

    def _setdefault(self, key: Any, data: Any, now: float, expires: float | None) -> Any:
        params = self._params(key, data, now, expires)
        for _ in range(100):
            with self._pg._atomic() as conn:
                if conn.execute(self._sql_insert_or_revive, params).fetchone() is not None:
                    return MISSING
                # A live row exists, and ON CONFLICT locked it: read it in the same transaction.
                row = conn.execute(self._sql_get, params).fetchone()
                if row is not None:
                    return self._data(row, 0)
        raise StoreLocked("setdefault() kept losing races with other clients")

    def _entries(self, now: float, reverse: bool) -> Iterator[tuple[Any, Any]]:
        yield from self._pages(self._sql_page_rev if reverse else self._sql_page, {}, now, reverse)

    def _pages(self, sql: str, params: dict[str, Any], now: float, reverse: bool) -> Iterator[tuple[Any, Any]]:
        """``(key, data)`` of the rows of ``sql`` in pages by ``id`` (keyset pagination).

        Each page is its own short query, so a slow consumer holds no
        connection and no snapshot.  Only the rows there when the iteration
        began are read (an entry added meanwhile gets a larger ``id``), so adding
        keys in the loop cannot make it endless; an entry changed or deleted
        before the iteration reaches it is read as it is then.
        """
        newest = int(self._pg._fetchone(self._sql_newest, {})[0])
        after = newest + 1 if reverse else -(1 << 63)
        if self._pg._in_block():
            sql += " FOR SHARE"
        while True:
            rows = self._pg._fetchall(sql, {**params, "after": after, "newest": newest, "now": now,
                                            "page": _PAGE})
            for row in rows:
                yield _key_back(row[1]), self._data(row, 2)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def _count(self, now: float) -> int:
        sql = self._sql_count_locked if self._pg._in_block() else self._sql_count
        return int(self._pg._fetchone(sql, {"now": now})[0])

    def _clear(self) -> None:
        self._pg._rowcount(self._sql_clear)

    def _purge(self, now: float) -> int:
        return self._pg._rowcount(self._sql_purge, {"now": now})

    def _sizes(self, now: float) -> tuple[int, int, int]:
        row = self._pg._fetchone(self._sql_sizes, {"now": now})
        return int(row[0]), int(row[1]), int(row[2])

    # -- faster versions of base methods (same semantics) ---------------------------------------

    def get_many(self, keys: Any, default: Any = None) -> list[Any]:
        """See :meth:`kvlite.Collection.get_many`: one query, one snapshot."""

        canons = [_canon(k) for k in _keys.normalize_many(keys, "get_many")]
        self._check_read()
        found: dict[str, Any] = {}
        if canons:
            sql = self._sql_get_many_locked if self._pg._in_block() else self._sql_get_many
            for row in self._pg._fetchall(sql, {"canons": canons, "now": self.store.now()}):
                found[row[0]] = self._data(row, 1)
        out = []
        for canon in canons:
            data = found.get(canon, MISSING)
            out.append(default if data is MISSING else self._decode(data))
            self._n_hits += data is not MISSING
        self._n_gets += len(canons)
        return out

    # -- queries: push-down to SQL/JSON path ----------------------------------------------------

    def find(self, path: str, *, engine: str = "jsonpath", limit: int | None = None, offset: int = 0,
             order_by: str | None = None, desc: bool = False) -> Iterator[tuple[Any, Any]]:
        """See :meth:`kvlite.Collection.find`.

        On a JSON collection, a JSONPath without ``order_by`` pushes each
        filter step down (see :func:`compile_expression`); everything else is
        the base class's Python evaluation over streamed rows.  Same answer
        either way.
        """
        if engine != "jsonpath" or order_by is not None or not self._json:
            return super().find(path, engine=engine, limit=limit, offset=offset, order_by=order_by, desc=desc)
        from .. import query as _q
        from ..query import jsonpath as _jp

        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError("limit must be an int >= 0 or None")
        if not isinstance(offset, int) or offset < 0:
            raise ValueError("offset must be an int >= 0")
        steps = _jp.plan(_jp.parse(path)).steps
        self._check_read()
        tracker = _q._Tracker()
        matches = self._run(steps, tracker)
        if self._model is not None:
            matches = _q._as_models(self, matches, tracker)
        # As on every backend: the engine's own errors become QuerySyntaxError, others pass through.
        stop = None if limit is None or offset + limit > sys.maxsize else offset + limit
        return _q._guarded(matches, path, engine, min(offset, sys.maxsize), stop)

    def _where(self, step: Any) -> list[PgCondition]:
        """The pushed-down conditions of a plan step (empty: none)."""
        if not self._json or step.kind != "scan" or step.filter is None:
            return []
        indexed = set(self.indexes())
        string_order = self._pg.server_version >= 130000  # jsonpath compares strings by code point
        out = []
        for expr in step.filter.expressions:
            cond = compile_expression(expr, len(out), indexed, string_order)
            if cond is not None:
                out.append(cond)
        return out

    def _run(self, steps: list[Any], tracker: Any) -> Iterator[tuple[Any, Any]]:
        from .. import query as _q
        from ..query import jsonpath as _jp
        from ..query import python_source

        def source(reverse: bool) -> Iterator[tuple[Any, Any]]:
            return self._raw_items(reverse=reverse)

        for step in steps:
            where = self._where(step)
            if not where:
                yield from python_source.run(self, [step], source, tracker, _q.view_key, _q._key_candidates,
                                             _q._owner)
                continue
            sql, params = self._select(where)
            for key, data in self._pages(sql, params, self.store.now(), False):
                doc = self._decode_raw(data)
                tracker.current = doc
                for value in _jp.apply_rest(step, doc, None):
                    yield key, value

    def _select(self, where: list[PgCondition]) -> tuple[str, dict[str, Any]]:
        """A keyset page query over the live rows that pass every condition of ``where``."""
        params: dict[str, Any] = {}
        for cond in where:
            params.update(cond.params)
        conds = " AND ".join(cond.sql for cond in where)
        sql = (f"SELECT id, key_text, value FROM {self._tname} WHERE id > %(after)s AND id <= %(newest)s "
               f"AND {self._live} AND {conds} ORDER BY id LIMIT %(page)s")
        return sql, params

    def explain(self, path: str, *, engine: str = "jsonpath", order_by: str | None = None,
                desc: bool = False) -> dict[str, Any]:
        """See :meth:`kvlite.Collection.explain`: which filters run in PostgreSQL (with its plan)."""
        info = super().explain(path, engine=engine, order_by=order_by, desc=desc)
        if engine != "jsonpath" or order_by is not None or not self._json:
            return info
        from ..query import jsonpath as _jp

        for step, shown in zip(_jp.plan(_jp.parse(path)).steps, info["steps"]):
            where = self._where(step)
            if not where:
                continue
            sql, params = self._select(where)
            run = {**params, "after": -(1 << 63), "newest": (1 << 63) - 1, "now": self.store.now(), "page": _PAGE}
            shown["pushdown"] = [cond.text for cond in where]
            shown["python"] = "jsonpath-ng on each document PostgreSQL lets through (filter re-checked)"
            shown["sql"] = sql
            shown["params"] = params
            shown["query_plan"] = [row[0] for row in self._pg._fetchall("EXPLAIN " + sql, run)]
        info["notes"] = [note for note in info["notes"] if "has no query engine" not in note]
        info["notes"].append("filters on plain field paths run in PostgreSQL (jsonb_path_exists); "
                             "Python re-checks every row and runs the rest of the path")
        return info

    # -- indexes -----------------------------------------------------------------------------

    def _index_path(self, path: str) -> str:
        from ..query import jsonpath as _jp

        if not self._json:
            raise NotSupported("indexes need a JSON collection (they index the jsonb doc column)")
        sql_path = _jp.sql_path(_jp.parse(path))
        if sql_path is None:
            raise NotSupported(f"an index path must be a plain field path like '$.age' or '$.a.b', not {path!r}")
        return sql_path

    def _index_name(self, sql_path: str) -> str:
        digest = hashlib.sha1(sql_path.encode()).hexdigest()[:16]
        return f"kv_{self._table_id:d}_ix_{digest}"

    def create_index(self, path: str) -> str:
        """A btree index on ``doc #> '{a,b}'`` for the plain field path ``path`` (``"$.a.b"``).

        Filters on that path then narrow rows through the index.  Idempotent;
        returns the normalised path.
        """
        sql_path = self._index_path(path)
        self._check_write()
        name = self._index_name(sql_path)
        with self._pg._atomic() as conn:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {quote_ident(name)} ON {self._tname} ({index_expr(sql_path)})")
            conn.execute(f"COMMENT ON INDEX {self._pg._s}.{quote_ident(name)} IS {_quote_literal(sql_path)}")
        return sql_path

    def drop_index(self, path: str) -> bool:
        """Drop the index on ``path``; ``False`` if there was none."""
        sql_path = self._index_path(path)
        self._check_write()
        name = self._index_name(sql_path)
        with self._pg._atomic() as conn:
            existed = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                   (f"{self._pg._s}.{quote_ident(name)}",)).fetchone()[0]  # type: ignore[index]
            conn.execute(f"DROP INDEX IF EXISTS {self._pg._s}.{quote_ident(name)}")
        return bool(existed)

    def indexes(self) -> list[str]:
        """Paths of this collection's indexes, sorted."""
        if not self._json:
            return []
        rows = self._pg._fetchall(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass", (self._tname,))
        prefix = f"kv_{self._table_id:d}_ix_"
        return sorted(comment for name, comment in rows if name.startswith(prefix) and comment)


# -- compiling jsonpath-ng filter expressions to PostgreSQL ------------------------------------------


@dataclass
class PgCondition:
    """A SQL condition over a row (``doc``) that every document Python would match satisfies."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    text: str = ""


#: Widening of numeric bounds: a float's JSON text may differ from its binary value by half an ulp
#: (2**-53 of it; for subnormals up to ~2.5e-324 absolute): 2**-40 relative plus 1e-300 is far outside.
_DECIMALS = decimal.Context(prec=4000, Emax=100000, Emin=-100000)
_WIDEN = _DECIMALS.power(Decimal(2), -40)
_WIDEN_ABS = Decimal("1e-300")
_FLOOR = decimal.Context(prec=24, rounding=decimal.ROUND_FLOOR, Emax=100000, Emin=-100000)
_CEILING = decimal.Context(prec=24, rounding=decimal.ROUND_CEILING, Emax=100000, Emin=-100000)
_BELOW_NUMBERS = "'-1e309'::jsonb"  # every string sorts below it; no JSON number orjson writes does


def jsonpath_string(text: str) -> str | None:
    """``text`` as a SQL/JSON path string literal (``None`` if it holds NUL, which jsonpath cannot)."""
    if "\x00" in text:
        return None
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_number(value: Decimal) -> str:
    """A JSON number for a finite decimal (plain digits when short, else exponent form)."""
    return format(value, "f") if abs(value.adjusted()) < 30 else format(value, "e")


def _json_string(text: str) -> str | None:
    if "\x00" in text:
        return None  # jsonb cannot hold \u0000
    return json.dumps(text, ensure_ascii=False)


def index_expr(sql_path: str) -> str:
    """The indexed SQL expression for a plain field path (``$.a.b`` -> ``(doc #> '{a,b}'::text[])``).

    ``sql_path`` holds only ``[A-Za-z0-9_.$]`` (see :func:`kvlite.query.jsonpath.sql_path`)."""
    return "(doc #> '{" + ",".join(sql_path[2:].split(".")) + "}'::text[])"


def _py_true(op: str, literal: Any, value: Any) -> bool:
    """jsonpath-ng's comparison of one stored ``value`` (int() first for an int literal)."""
    from jsonpath_ng.ext.filter import OPERATOR_MAP

    try:
        if type(literal) is int:
            value = int(value)
        return bool(OPERATOR_MAP[op](value, literal))
    except (TypeError, ValueError):
        return False


def compile_expression(expr: Any, n: int, indexed: set[str], string_order: bool = True) -> PgCondition | None:
    """A superset PostgreSQL condition for one jsonpath-ng filter expression, or ``None``.

    The rules follow :func:`kvlite.query.jsonpath.compile_expression` (Python
    re-checks every row, so the condition may let extra rows through but must
    never stop a row Python would match):

    * the target must be a chain of single field names (``@.a.b``); it becomes
      the SQL/JSON path ``$."a"."b"`` (lax mode: arrays on the way are
      unwrapped, which only adds rows);
    * no operator, ``!=`` and ``=~``: "the field exists";
    * int literal ``L``: the engine compares ``int(value)``, so every string
      passes, numbers pass in the range widened by 1 (``int()`` truncates),
      and ``true``/``false`` pass when ``int()`` of them compares true;
    * float / bool literal: numbers in the range, ``true``/``false`` as 1/0;
    * str literal: ``==`` is string equality; ordering compares code points
      (PostgreSQL 13+; before that only "is a string");
    * numeric bounds are exact decimals widened by 2**-40 of their size, so a
      float whose JSON text is off its binary value by half an ulp still passes.

    Literals travel in the ``vars`` jsonb parameter (``$lo0``, ``$s0``), never
    inside SQL or path text.  Documents stored without ``doc`` (their JSON
    holds ``\\u0000``) always pass.  When ``indexed`` holds the path, the same
    superset is also written as ranges of ``doc #> '{a,b}'`` that its btree
    index can answer.
    """
    from ..query import jsonpath as _jp

    fields = field_chain(expr.target)
    if fields is None:
        return None
    quoted = [jsonpath_string(name) for name in fields]
    if any(q is None for q in quoted):
        return None
    path = "$" + "".join("." + q for q in quoted)  # type: ignore[operator]
    op, literal = expr.op, expr.value
    variables: dict[str, str] = {}
    arms: list[str] = []  # index ranges over X = doc #> '{a,b}', OR'ed
    preds: list[str] = []  # SQL/JSON path predicates on @, OR'ed
    shown = ".".join(fields)
    if op is None or op in ("!=", "=~"):
        preds, arms, text = [], ["X IS NOT NULL"], f"{shown} exists"
    elif type(literal) is str:
        encoded = _json_string(literal)
        text = f"{shown} {op} {literal!r}"
        if op in ("=", "==") and encoded is not None:
            variables[f"s{n}"] = encoded
            preds, arms = [f"@ == $s{n}"], [f"X = %(ix_s{n})s::jsonb"]
        elif encoded is not None and string_order:
            variables[f"s{n}"] = encoded
            preds, arms = [f"@ {op} $s{n}"], [f"(X >= '\"\"'::jsonb AND X < {_BELOW_NUMBERS})"]
        else:
            preds, arms = ['@.type() == "string"'], [f"(X >= '\"\"'::jsonb AND X < {_BELOW_NUMBERS})"]
    elif type(literal) in (int, float, bool):
        if type(literal) is float and not math.isfinite(literal):
            return None
        bounds = _numeric_bounds(op, literal)
        if bounds is None:
            return None
        lo, hi = bounds
        text = f"{'int(' + shown + ')' if type(literal) is int else shown} {op} {literal!r}"
        numeric = []
        if lo is not None:
            variables[f"lo{n}"] = _json_number(lo)
            numeric.append(f"@ >= $lo{n}")
        if hi is not None:
            variables[f"hi{n}"] = _json_number(hi)
            numeric.append(f"@ <= $hi{n}")
        preds.append("(" + " && ".join(numeric) + ")")
        if lo is not None and hi is not None:
            arms.append(f"(X >= %(ix_lo{n})s::jsonb AND X <= %(ix_hi{n})s::jsonb)")
        elif lo is not None:
            arms.append(f"X >= %(ix_lo{n})s::jsonb")
        else:
            arms.append(f"X <= %(ix_hi{n})s::jsonb")
        if type(literal) is int:
            preds.append('@.type() == "string"')  # int(" 42 ") == 42: every string may match
            arms.append(f"(X >= '\"\"'::jsonb AND X < {_BELOW_NUMBERS})")
        for flag in (True, False):
            if _py_true(op, literal, flag):
                preds.append(f"@ == {'true' if flag else 'false'}")
                arms.append(f"X = '{'true' if flag else 'false'}'::jsonb")
    else:
        return None
    if preds:
        path = f"{path} ? ({' || '.join(preds)})"
    params: dict[str, Any] = {f"path{n}": path, f"vars{n}": "{" + ", ".join(
        f'"{name}": {value}' for name, value in variables.items()) + "}"}
    sql = f"coalesce(jsonb_path_exists(doc, %(path{n})s::jsonpath, %(vars{n})s::jsonb, true), true)"
    sql_path = _jp.sql_path(expr.target)
    if sql_path is not None and sql_path in indexed:
        x = index_expr(sql_path)
        for name, value in variables.items():
            params[f"ix_{name}"] = value
        sql = f"(({' OR '.join(arm.replace('X', x) for arm in arms)}) AND {sql})"
        text += " (index)"
    return PgCondition(f"(doc IS NULL OR {sql})", params, text)


def _numeric_bounds(op: str, literal: Any) -> tuple[Decimal | None, Decimal | None] | None:
    """Widened inclusive ``(low, high)`` bounds (``None``: open) holding every number that can match."""
    if op not in ("=", "==", "<", "<=", ">", ">="):
        return None
    if type(literal) is int:
        centre = Decimal(literal)
        lo, hi = centre - 1, centre + 1  # int() truncates towards zero
        if op in ("<", "<="):
            lo = None
        elif op in (">", ">="):
            hi = None
    else:
        centre = Decimal(float(literal)) if type(literal) is float else Decimal(int(literal))
        lo = hi = centre
        if op in ("<", "<="):
            lo = None
        elif op in (">", ">="):
            hi = None
    with decimal.localcontext(_DECIMALS):
        if lo is not None:
            lo = _FLOOR.plus(lo - abs(lo) * _WIDEN - _WIDEN_ABS)  # rounded outwards: still a superset
        if hi is not None:
            hi = _CEILING.plus(hi + abs(hi) * _WIDEN + _WIDEN_ABS)
    return lo, hi
