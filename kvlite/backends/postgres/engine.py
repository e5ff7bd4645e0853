"""The PostgreSQL engine: its connection pool, schema, registry of collections and transactions.

One :class:`PostgresEngine` per store.  Connections come from a
``psycopg_pool.ConnectionPool`` of autocommit connections (:meth:`PostgresEngine.connection`);
inside a :meth:`~PostgresEngine.transaction` block every call of the thread
goes through the block's own connection instead.  Every setting kvlite applies
to a connection is in :meth:`PostgresEngine._configure`; the tables kvlite
makes are in :meth:`PostgresEngine._setup` (the registry) and
:meth:`PostgresEngine._table_ddl` (one table per collection).

Collections made or dropped inside a block are remembered per level (the
block, and each savepoint in it: :class:`_Level`), so a rollback turns the
:class:`~kvlite.backends.postgres.table.PostgresTable` objects made for a
collection it undid away from their table (they raise
:class:`~kvlite.errors.CollectionDropped`), and those of a collection whose
drop it undid work again.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import psycopg
from psycopg_pool import ConnectionPool

from ... import serializers as _serializers
from ...errors import IncompatibleVersion, KvliteError, NotSupported
from ...version import __version__
from ..base import Engine
from .errors import DB_ERRORS, translate, translated
from .table import PostgresTable
from .text import quote_ident, quote_literal, redacted, split_url

__all__ = ["PostgresEngine", "SCHEMA_VERSION", "LOCK_CLASS"]

#: Version of the tables this package writes (``kvlite_meta.schema_version``).
SCHEMA_VERSION = 1
#: "kvlt": the first key of every advisory lock kvlite takes.
LOCK_CLASS = 0x6B766C74


@dataclass
class _Level:
    """What one ``transaction()`` level (the block, or a savepoint in it) changed in the registry."""

    created: set[int] = field(default_factory=set)  # table ids of collections it created
    dropped: list[PostgresTable] = field(default_factory=list)  # tables it marked dropped

    def absorb(self, inner: _Level) -> None:
        """Take over what a savepoint that committed changed: this level now undoes it on rollback."""
        self.created |= inner.created
        self.dropped.extend(inner.dropped)


class PostgresEngine(Engine):
    """A kvlite store in a PostgreSQL database (``postgresql://...``): see :mod:`kvlite.backends.postgres`.

    Safe to share between threads (connections come from a pool); any number of
    processes and machines may open the same database.
    """

    supports_transactions = True
    supports_indexes = True

    #: The server's version number (``130000`` for 13.0), read when the store is opened.
    server_version: int
    #: The schema holding kvlite's tables (``current_schema()`` when the store was opened).
    schema: str
    pool: ConnectionPool

    def __init__(self, url: str, *, durability: str = "normal", timeout: float = 30.0,
                 clock: Callable[[], float] = time.time, readonly: bool = False) -> None:
        super().__init__(redacted(url), clock=clock, readonly=readonly, durability=durability, timeout=timeout)
        conninfo, options = split_url(url)
        self._local = threading.local()  # this thread's block: `conn` and its `levels`
        self._made: weakref.WeakSet[PostgresTable] = weakref.WeakSet()  # every table object made
        self._made_lock = threading.Lock()  # other threads add to _made while one reads it
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
        self.pool = ConnectionPool(
            conninfo, kwargs=self._connect_kwargs, min_size=min_size, max_size=max_size,
            configure=self._configure, open=False, timeout=max(self.timeout, connect_timeout), name="kvlite")
        self.pool.open(wait=False)

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
        self.server_version = conn.info.server_version
        schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        if schema is None:
            raise KvliteError("no schema on the search_path exists to hold kvlite's tables")
        self.schema = schema
        self._s = quote_ident(schema)
        self._registry = f"{self._s}.kvlite_collections"
        self._meta = f"{self._s}.kvlite_meta"
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self._registry,)).fetchone()[0]  # type: ignore[index]
        if not exists and not self.readonly:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, schema + "/setup"))
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
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """This thread's ``transaction()`` connection, else a pooled one for the ``with`` block."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        self.check_open()
        with translated(), self.pool.connection() as pooled:
            yield pooled

    @contextlib.contextmanager
    def atomic(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection in a transaction (a savepoint inside a ``transaction()`` block): all of
        the ``with`` block's statements land, or none (also when it raises after them)."""
        with self.connection() as conn, translated(), conn.transaction():
            yield conn

    def fetchone(self, sql: str, params: Any = None) -> Any:
        """The first row of ``sql`` (``None``: no row)."""
        with self.connection() as conn, translated():
            return conn.execute(sql, params).fetchone()

    def fetchall(self, sql: str, params: Any = None) -> list[Any]:
        """Every row of ``sql``."""
        with self.connection() as conn, translated():
            return conn.execute(sql, params).fetchall()

    def rowcount(self, sql: str, params: Any = None) -> int:
        """How many rows ``sql`` changed."""
        with self.connection() as conn, translated():
            return conn.execute(sql, params).rowcount

    def in_block(self) -> bool:
        """Whether this thread is inside a ``transaction()`` block (its reads then lock rows)."""
        return getattr(self._local, "conn", None) is not None

    def committed(self) -> bool:
        """``False`` inside a ``transaction()`` block: what it created or dropped may still roll back."""
        return getattr(self._local, "conn", None) is None

    # -- the registry of collections ---------------------------------------------------------------

    def table_name(self, table_id: int) -> str:
        """The qualified, quoted name of collection ``table_id``'s table (built from an integer only)."""
        return f"{self._s}.{quote_ident(f'kv_{int(table_id):d}')}"

    def seq_name(self, table_id: int) -> str:
        """The qualified, quoted name of the sequence giving that table's ids (its insertion order)."""
        return f"{self._s}.{quote_ident(f'kv_{int(table_id):d}_id_seq')}"

    def index_name(self, name: str) -> str:
        """The qualified, quoted name of the index ``name`` (in kvlite's schema)."""
        return f"{self._s}.{quote_ident(name)}"

    def _registry_exists(self) -> bool:
        """Whether kvlite's tables exist (a read-only store opened before any writer may see them later)."""
        if not self._has_registry:
            self._has_registry = bool(self.fetchone("SELECT to_regclass(%s) IS NOT NULL", (self._registry,))[0])
        return self._has_registry

    def lookup(self, name: str) -> tuple[Any, str] | None:
        """``((table id, value type), serializer name)`` of collection ``name``, else ``None``.

        The value type is ``"json"`` (text, with a jsonb ``doc`` column) or ``"bytea"``."""
        if not self._registry_exists():
            return None
        row = self.fetchone(f"SELECT id, serializer, value_type FROM {self._registry} WHERE name = %s", (name,))
        if row is None:
            return None
        return (int(row[0]), row[2]), row[1]

    def create(self, name: str, serializer: str) -> tuple[Any, str]:
        """Create collection ``name`` (its registry row and its table), or return the one another
        client made meanwhile.  Creators of one schema take turns (an advisory lock), so a
        concurrent creator of the same name waits and then finds it instead of failing."""
        self.check_writable()
        value_type = "json" if _serializers.get(serializer).json else "bytea"
        with self.atomic() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, self.schema + "/setup"))
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
        """The statements that make collection ``table_id``'s table, sequence and indexes."""
        table, seq = self.table_name(table_id), self.seq_name(table_id)
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
                id         bigint PRIMARY KEY DEFAULT nextval({quote_literal(seq)}::regclass),
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

    def names(self) -> list[str]:
        """Every collection name, oldest first."""
        if not self._registry_exists():
            self.check_open()
            return []
        return [row[0] for row in self.fetchall(f"SELECT name FROM {self._registry} ORDER BY id")]

    def drop(self, name: str) -> bool:
        """Delete collection ``name``'s registry row and its table (its sequence goes with it).

        Every table object of it made by this engine raises
        :class:`~kvlite.errors.CollectionDropped` from then on, until a rollback of the block
        (or savepoint) that dropped it; other clients' objects get it from PostgreSQL (their
        table is gone)."""
        self.check_writable()
        if not self._registry_exists():
            return False
        opened = [table for table in self._tables() if table.name == name and not table.dropped]
        with self.atomic() as conn:
            row = conn.execute(f"DELETE FROM {self._registry} WHERE name = %s RETURNING id", (name,)).fetchone()
            if row is None:
                return False
            conn.execute(f"DROP TABLE IF EXISTS {self.table_name(int(row[0]))}")
        for table in opened:
            table.dropped = True
        levels = getattr(self._local, "levels", None)
        if levels:  # a rollback of this level makes them usable again
            levels[-1].dropped.extend(opened)
        return True

    def table(self, name: str, handle: Any, serializer: _serializers.Serializer) -> PostgresTable:
        """The table object of the collection ``handle = (table id, value type)`` identifies."""
        table_id, value_type = handle
        table = PostgresTable(self, name, table_id, value_type, serializer)
        with self._made_lock:
            self._made.add(table)
        return table

    def _tables(self) -> list[PostgresTable]:
        """Every table object of this engine still in use."""
        with self._made_lock:
            return list(self._made)

    # -- transactions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Atomic block across keys and collections: all of it lands, or none.

        The thread takes one pooled connection for the block and every call it
        makes in the block goes through it (other threads keep using the pool).
        The outermost block first takes a session advisory lock per schema
        (``pg_advisory_lock``, waiting up to ``timeout``: one block at a time,
        across processes), then runs ``BEGIN ISOLATION LEVEL REPEATABLE READ``;
        the rows the block reads are locked (``FOR SHARE``) until it ends, so
        another client cannot change them under it.  A nested block is a
        savepoint that undoes only its own writes -- and its collection changes
        -- when it raises.
        """
        self.check_writable()
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None:  # nested: a savepoint
            level = _Level()
            local.levels.append(level)
            released = False
            try:
                with translated(), conn.transaction():
                    yield
                released = True
            finally:
                local.levels.pop()
                if released:  # the outer block now undoes this one's changes if it rolls back
                    local.levels[-1].absorb(level)
                else:
                    self._after_rollback(level)
            return
        with translated():
            conn = self.pool.getconn()
        try:
            with translated():
                conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, self.schema + "/tx"))
            try:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                level = _Level()
                local.conn, local.levels = conn, [level]
                committed = False
                try:
                    with translated(), conn.transaction():
                        yield
                    committed = True
                finally:
                    local.conn = local.levels = None
                    if not committed:  # registry reads now see the committed state again
                        self._after_rollback(level)
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.isolation_level = None
                    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, self.schema + "/tx"))
        finally:
            with contextlib.suppress(Exception):
                self.pool.putconn(conn)

    def _after_rollback(self, level: _Level) -> None:
        """After a block or savepoint rolled back: the collections it created are gone again, and
        the tables of collections it dropped work again (when the registry names their table
        again, as this thread now sees it)."""
        for table in self._tables():
            if table.table_id in level.created:
                table.dropped = True
        for table in level.dropped:
            if table.table_id in level.created:
                continue
            with contextlib.suppress(KvliteError):
                found = self.lookup(table.name)
                if found is not None and found[0][0] == table.table_id:
                    table.dropped = False

    # -- life cycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pool: every later call raises :class:`~kvlite.errors.StoreClosed`."""
        super().close()
        with contextlib.suppress(*DB_ERRORS):
            self.pool.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<kvlite PostgresEngine {self.url!r} schema={getattr(self, 'schema', None)!r}{state}>"
