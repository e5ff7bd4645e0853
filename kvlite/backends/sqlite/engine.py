"""The SQLite engine: one file (or ``":memory:"``), its connections, settings and transactions.

Connections: one apsw connection per thread, made on first use, so threads
never share a transaction; a forked child starts with none.  Every setting
kvlite applies to SQLite lives in :meth:`SQLiteEngine._configure`.

Transactions: :meth:`SQLiteEngine.transaction` starts ``BEGIN IMMEDIATE`` (the
write lock is taken at once, so a second writer waits up to ``timeout``
seconds instead of failing half-way); nested blocks are savepoints.

The registry of collections is the table ``kvlite_collections`` (name, table
name, serializer); each collection's entries live in its own table
(:mod:`.table`).  The schema is made and upgraded by :mod:`.migrate`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import urllib.parse
import uuid
import weakref
from typing import Any, Callable, Iterator

import apsw

from ... import serializers as _serializers
from ... import keys as _keys
from ...errors import (
    CollectionDropped,
    CorruptStore,
    KvliteError,
    NotSupported,
    ReadOnlyError,
    StoreClosed,
    TransactionLost,
)
from ..base import MISSING, Engine, sync_folder
from . import changes as _changes
from . import migrate, rfc9535_sql
from .errors import DB_ERRORS, needs_wal_index, translate_error
from .table import SQLiteTable, create_table_sql, table_sql_name

__all__ = ["SQLiteEngine"]

_DURABILITY = {"normal": "NORMAL", "full": "FULL"}

_live_engines: "weakref.WeakSet[SQLiteEngine]" = weakref.WeakSet()

_inherited: list[Any] = []  # in a forked child: the parent's connections, never used nor closed


def _forget_connections_after_fork() -> None:
    # An SQLite connection must not be used across fork() -- not even closed: the child keeps
    # a reference to each (so they are never garbage-collected there) and opens its own.
    for engine in list(_live_engines):
        _inherited.extend(conn for _, conn in engine._connections)
        _inherited.extend(engine._readers)
        _inherited.extend(engine._busy_readers)
        _inherited.append(engine._keeper)
        engine._readers = []
        engine._busy_readers = set()
        engine.local = threading.local()
        engine._connections = []
        engine._lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_connections_after_fork)


def _undo(conn: apsw.Connection, sql: str) -> None:
    """Roll a block (``ROLLBACK``) or a savepoint back with ``sql``, unless SQLite already rolled
    the transaction back; an error doing so is ignored (there is nothing more to undo)."""
    if not conn.getautocommit():
        with contextlib.suppress(apsw.Error):
            conn.execute(sql)


def _finish(conn: apsw.Connection, sql: str, undo: str) -> None:
    """End a block or savepoint with ``sql`` (``COMMIT``, ``RELEASE``); when that fails, undo it
    with ``undo`` and raise the kvlite error."""
    try:
        conn.execute(sql)
    except apsw.Error as exc:
        _undo(conn, undo)
        raise translate_error(exc) from exc


class _Block:
    """The outermost write block open on one thread's connection.

    SQLite rolls a whole transaction back by itself after some errors (a full
    disk, for one).  When the block's code catches such an error and goes on,
    its later writes would each commit on their own: the commit hook refuses
    every commit but the block's own, so the block stays all or nothing.

    It also remembers the collections created inside it (``created``: table ids, one set per
    savepoint level) and the table objects made for them: when the level that created
    one rolls back, its table id goes back to SQLite's sequence and the next collection made
    gets it, so those objects are turned away from that table
    (:meth:`SQLiteTable.roll_back_creation`).
    """

    __slots__ = ("conn", "lost", "committing", "created", "made")

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self.lost = False
        self.committing = False
        self.created: list[set[int]] = [set()]
        self.made: list[SQLiteTable] = []

    def made_here(self, table_id: int) -> bool:
        return any(table_id in level for level in self.created)

    def roll_back(self, created: set[int]) -> None:
        """Collections with these table ids were undone: no object made for them may reach the table."""
        for table in self.made:
            if table.table_id in created:
                table.roll_back_creation()

    def lost_error(self) -> KvliteError:
        return TransactionLost(
            "SQLite rolled this transaction back after an earlier error inside the block "
            "(caught by the code in it); nothing of the block was committed")

    def on_commit(self) -> bool:
        if self.committing:
            return False
        self.lost = True
        raise self.lost_error()  # the statement's own change is undone with it


def _value_out(serializer: str) -> str:
    """The SQL that reads the ``value`` column as serializer ``serializer`` wrote it (``json(value)``
    for jsonb); a serializer this process does not know reads it as stored."""
    try:
        return _serializers.get(serializer).sql_out.format("value")
    except KvliteError:
        return "value"


class SQLiteEngine(Engine):
    """One SQLite file (or ``":memory:"``) as a kvlite engine.

    Safe to share between threads (each thread gets its own SQLite connection)
    and to open from several processes at once.
    """

    supports_transactions = True
    #: Whether a new change log starts its seqs at the current time (see changes.enable).
    change_origin = False
    supports_indexes = True

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, durability: str = "normal",
                 timeout: float = 30.0, clock: Callable[[], float] = time.time, readonly: bool = False) -> None:
        super().__init__(os.fspath(path), clock=clock, readonly=readonly, durability=durability, timeout=timeout)
        self._memory = self.path == ":memory:"
        if self._memory and durability == "full":
            raise NotSupported("an in-memory store (':memory:') keeps nothing on disk, so durability='full' "
                               "(a commit survives power loss) cannot be given; open a file for it")
        if self._memory:
            # A named in-memory database every thread's connection shares.
            self._uri = f"file:/kvlite-{uuid.uuid4().hex}?vfs=memdb"
        else:
            self._uri = self.path
        #: This thread's ``conn``, ``cursor`` and write ``block`` (the tables read it directly).
        self.local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[threading.Thread, apsw.Connection]] = []
        self._keeper: apsw.Connection | None = None
        self._readers: list[apsw.Connection] = []  # idle connections for query snapshots
        self._busy_readers: set[apsw.Connection] = set()  # those a running query reads from
        conn = self.connection()  # validates and migrates the file now, not at first use
        if self._memory:
            self._keeper = conn  # the memdb lives as long as one connection does
        _live_engines.add(self)

    # -- connections -----------------------------------------------------------------

    def cursor(self) -> apsw.Cursor:
        """This thread's cursor for one-row lookups (``get``, ``ttl``, ``in``).

        Reusing one cursor saves making one per call.  Callers run a statement
        to its end (which resets it, so no read snapshot stays open) and never
        while another statement runs on this cursor; iterations use their own.
        """
        try:
            return self.local.cursor
        except AttributeError:
            pass
        cursor = self.local.cursor = self.connection().cursor()
        return cursor

    def connection(self) -> apsw.Connection:
        """This thread's connection (made on first use)."""
        try:
            return self.local.conn
        except AttributeError:
            pass
        if self.closed:
            raise StoreClosed("the store is closed")
        conn = self._connect()
        self.local.conn = conn
        with self._lock:
            # Close the connections of threads that have ended, so a pool that keeps
            # starting new threads does not keep one open connection per dead thread.
            kept = []
            for thread, other in self._connections:
                if thread.is_alive():
                    kept.append((thread, other))
                elif other is not self._keeper:
                    with contextlib.suppress(apsw.Error):
                        other.close(True)
            kept.append((threading.current_thread(), conn))
            self._connections = kept
        return conn

    def _connect(self) -> apsw.Connection:
        if self.readonly:
            flags = apsw.SQLITE_OPEN_READONLY
        else:
            flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
        flags |= apsw.SQLITE_OPEN_URI if self._memory else 0
        if not self._memory and os.path.isdir(self.path):
            raise KvliteError(f"{self.path!r} is a folder, not a kvlite file; open a folder of collection "
                              "files with kvlite.open(folder, layout='per-collection')")
        if not self._memory and not self.readonly:
            parent = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(parent):
                raise KvliteError(f"cannot create the store: folder {parent!r} does not exist")
        try:
            conn = apsw.Connection(self._uri, flags=flags, statementcachesize=512)
        except apsw.CantOpenError as exc:
            folder = os.path.dirname(os.path.abspath(self.path))
            if self.readonly or os.path.exists(self.path) or not os.access(folder, os.W_OK):
                raise ReadOnlyError(f"cannot open {self.path!r}: {exc}") from exc
            raise KvliteError(f"cannot open {self.path!r}: {exc}") from exc
        try:
            self._configure(conn)
        except KvliteError as exc:
            conn.close()
            if not self._memory and needs_wal_index(exc):
                if self.readonly:
                    return self._connect_snapshot()
                raise ReadOnlyError(
                    f"cannot open {self.path!r} for writing: its folder is not writable, so SQLite cannot "
                    "create the -wal/-shm files it needs; open it with readonly=True to read it") from exc
            raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_snapshot(self) -> apsw.Connection:
        """A read-only connection to a WAL file in a folder this process cannot write.

        SQLite cannot create the WAL index (``-shm``) there, so the file is
        opened ``immutable``: a snapshot that does not see later changes.  Only
        done when no ``-wal`` file holds commits the main file lacks.
        """
        wal = self.path + "-wal"
        if os.path.exists(wal) and os.path.getsize(wal) > 0:
            raise ReadOnlyError(
                f"cannot read {self.path!r}: its folder is not writable and {wal!r} holds commits not yet "
                "in the main file; open it once with write access (or from a writable folder)")
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?immutable=1"
        conn = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI, statementcachesize=512)
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure(self, conn: apsw.Connection) -> None:
        """Every SQLite setting kvlite uses, in one place."""
        conn.set_busy_timeout(int(self.timeout * 1000))
        rfc9535_sql.register(conn)  # match() and search() of the default JSONPath, in SQL
        try:
            version = migrate.inspect(conn)  # reads only: a foreign file is never modified
            if not self._memory and not self.readonly:
                self._use_wal(conn)
            conn.execute(f"PRAGMA synchronous = {_DURABILITY[self.durability]}")
            conn.execute("PRAGMA foreign_keys = OFF")
            if version < migrate.latest_version():
                if self.readonly:
                    raise ReadOnlyError(
                        f"{self.path!r} needs a schema upgrade (or is new) and the store is read-only")
                migrate.upgrade(conn)
        except apsw.Error as exc:
            raise translate_error(exc) from exc

    def _use_wal(self, conn: apsw.Connection) -> None:
        """Put the file in WAL mode (once: it is recorded in the file).

        Switching needs the file to itself, and SQLite answers "busy" at once, without waiting
        in its busy handler, while other connections open the new file at the same moment: so
        it is retried here, up to the store's timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL").fetchall()
                return
            except apsw.BusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)

    # -- transactions and snapshots ---------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Atomic block across keys and collections: all of it lands, or none.

        The outermost block is ``BEGIN IMMEDIATE``: it takes the write lock at
        once (waiting up to ``timeout``), so reads inside it see a stable
        snapshot and a read-modify-write cannot lose an update.  A nested block
        is a savepoint: if it raises, only its own writes are undone and the
        exception propagates to the outer block.
        """
        with self.write(self.connection()):
            yield

    @contextlib.contextmanager
    def write(self, conn: apsw.Connection) -> Iterator[apsw.Connection]:
        """A write transaction on ``conn``, or a savepoint inside the current one."""
        if self.readonly:
            raise ReadOnlyError("the store was opened read-only")
        block: _Block | None = getattr(self.local, "block", None)
        if block is not None and block.conn is conn:
            yield from self._savepoint(conn, block)
            return
        if not conn.getautocommit():  # a read snapshot (store.snapshot()) is open on this thread
            raise ReadOnlyError("cannot write inside store.snapshot(): it is a read-only block "
                                "(write after it, or use store.transaction())")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            raise translate_error(exc) from exc
        block = self.local.block = _Block(conn)
        conn.set_commit_hook(block.on_commit)
        committed = False
        try:
            try:
                yield conn
            except BaseException:
                _undo(conn, "ROLLBACK")
                raise
            if block.lost or conn.getautocommit():
                # SQLite rolled the whole transaction back after an error inside the block
                # (disk full, ...) that the block's code caught and went on from.
                _undo(conn, "ROLLBACK")
                raise block.lost_error()
            block.committing = True
            _finish(conn, "COMMIT", "ROLLBACK")
            committed = True
        finally:
            self.local.block = None
            with contextlib.suppress(apsw.Error):
                conn.set_commit_hook(None)
            if not committed:
                block.roll_back(set().union(*block.created))

    @staticmethod
    def _savepoint(conn: apsw.Connection, block: _Block) -> Iterator[apsw.Connection]:
        """A nested block: a savepoint, undone alone when the nested block raises."""
        if block.lost or conn.getautocommit():
            raise block.lost_error()
        try:
            conn.execute("SAVEPOINT kvlite")
        except apsw.Error as exc:
            raise translate_error(exc) from exc
        block.created.append(set())
        released = False
        try:
            try:
                yield conn
            except BaseException:
                _undo(conn, "ROLLBACK TO kvlite; RELEASE kvlite")
                raise
            if conn.getautocommit():  # SQLite rolled back the outer transaction meanwhile
                block.lost = True
                raise block.lost_error()
            _finish(conn, "RELEASE kvlite", "ROLLBACK TO kvlite; RELEASE kvlite")
            released = True
        finally:
            level = block.created.pop()
            if released:  # the outer level now undoes these collections if it rolls back
                block.created[-1] |= level
            else:
                block.roll_back(level)

    #: Idle snapshot connections kept for reuse (more are made while more queries run at once,
    #: and closed when they end): one, since a per-collection folder has a Store per file.
    _IDLE_READERS = 1

    @contextlib.contextmanager
    def query_snapshot(self) -> Iterator[apsw.Connection]:
        """The connection a query reads from, holding one read snapshot for the whole query.

        On a file store (WAL) that is a connection of its own, so the query sees the
        collection as it was when it started: writes this thread makes while it iterates
        (``for k, doc in c.find(...): c.put(...)``) are not seen by it, and no other writer
        waits for it.  Inside a ``transaction()`` block the query reads the block's own
        connection, to see the block's uncommitted writes; an in-memory store (no WAL) also
        reads its thread's connection.
        """
        conn = self.connection()
        if self._memory or not conn.getautocommit():
            yield conn
            return
        with self._lock:
            reader = self._readers.pop() if self._readers else None
        if reader is None:
            reader = self._connect()
        with self._lock:
            if self.closed:  # closed meanwhile: close() could not see this reader
                reader.close()
                raise StoreClosed("the store is closed")
            self._busy_readers.add(reader)
        try:
            reader.execute("BEGIN")
            yield reader
        except apsw.Error as exc:
            raise translate_error(exc) from exc
        finally:
            with self._lock:
                self._busy_readers.discard(reader)
            try:
                reader.execute("COMMIT")
            except apsw.Error:  # closed by Store.close() meanwhile, or damaged: not reused
                with contextlib.suppress(apsw.Error):
                    reader.close(True)
            else:
                with self._lock:
                    keep = not self.closed and len(self._readers) < self._IDLE_READERS
                    if keep:
                        self._readers.append(reader)
                if not keep:
                    reader.close(True)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """One read snapshot of this thread's connection (inside a transaction: that one)."""
        with self.read(self.connection()):
            yield

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """A block in which every read of this thread sees the store as it was when it began.

        Reads made in this thread inside the block (``collections()``, ``collection()``,
        ``get``, iteration, ``stats()``, ...) all see one committed state of the file: a
        collection another process drops or creates meanwhile is seen as it was at the start.
        Writes in it raise :class:`~kvlite.errors.ReadOnlyError` (a write would have to see the
        newest state).  Inside a ``transaction()`` block it is that block's own view.  Keep it short: a snapshot held
        open stops SQLite from checkpointing the WAL past it.
        """
        return self._snapshot_of_store()

    @contextlib.contextmanager
    def _snapshot_of_store(self) -> Iterator[None]:
        conn = self.connection()
        if not conn.getautocommit():  # inside a transaction() block (or a snapshot): its view
            yield
            return
        conn.execute("PRAGMA query_only = 1")  # every write in the block: ReadOnlyError
        try:
            with self.read(conn):
                yield
        finally:
            with contextlib.suppress(apsw.Error):
                conn.execute("PRAGMA query_only = 0")

    @contextlib.contextmanager
    def read(self, conn: apsw.Connection) -> Iterator[apsw.Connection]:
        """One read snapshot for several statements (inside a transaction: that one)."""
        if not conn.getautocommit():
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            with contextlib.suppress(apsw.Error):
                conn.execute("COMMIT")

    # -- the registry of collections ---------------------------------------------------

    def committed(self) -> bool:
        return bool(self.connection().getautocommit())

    def lookup(self, name: str) -> tuple[int, str] | None:
        """The registry row of ``name`` and a check of the table it names, in one snapshot."""
        conn = self.connection()
        with self.read(conn):
            row = self._registry_row(conn, name)
            if row is not None:
                self._check_table(conn, name, row[0])
        return row

    def serializer_of(self, name: str) -> str | None:
        row = self._registry_row(self.connection(), name)  # the registry only: the table is not read
        return None if row is None else row[1]

    def open_collection(self, name: str, serializer: str, known: Any = MISSING) -> tuple[int, str]:
        conn = self.connection()
        # One statement is one snapshot: the table a cached object reads is the registry's still
        # (another store may have dropped the collection, or dropped it and made it again).
        row = self._registry_row(conn, name)
        if row is not None and row[0] == known:
            return row
        if row is not None:
            return self.lookup(name) or self.open_collection(name, serializer)
        return self.create(name, serializer)

    def create(self, name: str, serializer: str) -> tuple[int, str]:
        conn = self.connection()
        with self.write(conn):
            row = self._registry_row(conn, name)
            if row is None:
                row = self._create_collection(conn, name, serializer)
            else:  # made by another store meanwhile
                self._check_table(conn, name, row[0])
        return row

    def table(self, name: str, handle: Any, serializer: _serializers.Serializer) -> SQLiteTable:
        table = SQLiteTable(self, name, handle, serializer)
        block: _Block | None = getattr(self.local, "block", None)
        if block is not None and block.made_here(handle):
            block.made.append(table)  # turned away from its table if the creation rolls back
        return table

    #: itself guarantees each value's type (``expires_at`` is a REAL or NULL, never text), so
    #: reads need not check them row by row.
    _TABLE_COLUMNS = {"id": "INTEGER", "key": "ANY", "key_type": "INTEGER", "value": "ANY",
                      "created_at": "REAL", "updated_at": "REAL", "expires_at": "REAL"}

    def _check_table(self, conn: apsw.Connection, name: str, table_id: object) -> None:
        """Raise :class:`CorruptStore` unless collection ``name``'s table ``kv_<id>`` is a STRICT
        table with kvlite's columns and their types (a damaged or hostile file may have dropped
        it, made it a view, or changed its columns or their types; kvlite's SQL would then fail
        with raw SQLite errors, or hand Python values of the wrong type)."""
        if type(table_id) is not int:
            raise CorruptStore(f"damaged registry: collection {name!r} has table id {table_id!r}")
        table = f"kv_{table_id:d}"
        try:
            kind = conn.execute("SELECT type, strict FROM pragma_table_list(?) WHERE schema = 'main'",
                                (table,)).fetchone()
            columns = {row[0]: row[1].upper() for row in
                       conn.execute("SELECT name, type FROM pragma_table_info(?)", (table,))}
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc
        if kind != ("table", 1) or any(columns.get(column) != kind_of
                                       for column, kind_of in self._TABLE_COLUMNS.items()):
            raise CorruptStore(
                f"collection {name!r}: its table {table} is missing or does not have kvlite's columns "
                "(the file is damaged or was not written by kvlite)")

    def _registry_row(self, conn: apsw.Connection, name: str) -> tuple[int, str] | None:
        try:
            row = conn.execute("SELECT id, serializer FROM kvlite_collections WHERE name = ?", (name,)).fetchone()
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc
        return None if row is None else (row[0], row[1])  # both typed by the STRICT registry

    def _create_collection(self, conn: apsw.Connection, name: str,
                           serializer: str) -> tuple[int, str]:
        try:
            next_id = conn.execute(
                "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'kvlite_collections'), 0) + 1"
            ).fetchone()[0]
            table_id = conn.execute(
                "INSERT INTO kvlite_collections(name, table_name, serializer, created_at) "
                "VALUES (?, ?, ?, ?) RETURNING id",
                (name, f"kv_{next_id}", serializer, self.clock()),
            ).fetchone()[0]
            conn.execute(create_table_sql(table_id))
        except apsw.Error as exc:
            raise translate_error(exc) from exc
        block: _Block | None = getattr(self.local, "block", None)
        if block is not None:
            block.created[-1].add(table_id)
        return table_id, serializer

    def names(self) -> list[str]:
        try:
            return [row[0] for row in self.connection().execute("SELECT name FROM kvlite_collections ORDER BY id")]
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc

    def drop(self, name: str) -> bool:
        conn = self.connection()
        with self.write(conn):
            try:
                found = self._registry_row(conn, name)
                if found is not None:
                    _changes.before_drop(conn, found[0])  # a logged collection logs each removal
                row = conn.execute("DELETE FROM kvlite_collections WHERE name = ? RETURNING id", (name,)).fetchone()
                if row is not None:
                    conn.execute(f"DROP TABLE IF EXISTS {table_sql_name(row[0])}")
            except apsw.Error as exc:
                raise translate_error(exc) from exc
        return row is not None

    def purge_expired(self, now: float) -> dict[str, int]:
        conn = self.connection()
        purged: dict[str, int] = {}
        with self.write(conn):
            now = self.clock()  # again, now that the write lock is held
            try:
                for table_id, name in conn.execute("SELECT id, name FROM kvlite_collections").fetchall():
                    conn.execute(f"DELETE FROM {table_sql_name(table_id)} WHERE expires_at <= ?", (now,))
                    purged[name] = conn.changes()
                _changes.trim(conn, time.time())  # the change logs too, to their retention
            except apsw.Error as exc:
                raise translate_error(exc) from exc
        return purged

    # -- the change log (changes.py) and backups --------------------------------------------

    def set_changes(self, name: str, handle: Any, enabled: bool, keep: int, max_age: float) -> None:
        conn = self.connection()
        with self.write(conn):
            try:
                row = self._registry_row(conn, name)
                if row is None or row[0] != handle:
                    raise CollectionDropped(f"the collection {name!r} was dropped (by this or another client)")
                if enabled:
                    _changes.enable(conn, name, handle, row[1], keep, max_age, origin=self.change_origin)
                else:
                    _changes.disable(conn, handle)
            except DB_ERRORS as exc:
                raise translate_error(exc) from exc

    def changes_after(self, since: int, names: list[str] | None, limit: int) -> list[tuple[Any, ...]]:
        """The page and, for each put, the key's live value now (``MISSING`` when it is gone),
        all read in one snapshot."""
        conn = self.connection()
        out: list[tuple[Any, ...]] = []
        try:
            with self.read(conn):
                _changes.check_since(conn, since, names)
                rows = _changes.page(conn, since, names, limit)
                now = self.clock()
                lookups: dict[int, str | None] = {}
                for seq, collection, serializer, key, key_type, op, table_id in rows:
                    data = MISSING
                    if op == "put":
                        sql = lookups.get(table_id, "")
                        if sql == "":  # once per collection: its table, if it still exists
                            exists = conn.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
                                                  "AND name = ?", (f"kv_{table_id:d}",)).fetchone()[0]
                            value = _value_out(serializer)
                            sql = lookups[table_id] = (
                                f"SELECT {value} FROM {table_sql_name(table_id)} WHERE key = ? AND "
                                "(expires_at IS NULL OR expires_at > ?)") if exists else None
                        if sql is not None:
                            found = conn.execute(sql, (key, now)).fetchone()
                            data = MISSING if found is None else found[0]
                    out.append((seq, collection, serializer, _keys.decode(key, key_type), op, data))
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc
        return out

    def last_change_seq(self, name: str | None = None) -> int:
        return _changes.last_seq(self.connection())

    def wait_for_changes(self, after: int, timeout: float, names: list[str] | None = None) -> None:
        """Polls ``PRAGMA data_version`` (which moves when another connection commits) every 20 ms
        on a connection of its own, after checking that nothing newer than ``after`` is there."""
        deadline = time.monotonic() + timeout
        conn = self._connect()
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if _changes.last_seq(conn) > after:
                return
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(0.02, left))
                if conn.execute("PRAGMA data_version").fetchone()[0] != version:
                    return
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc
        finally:
            conn.close()

    def backup(self, path: str, progress: Callable[[int, int], None] | None) -> None:
        """SQLite's online backup of one read snapshot: the source connection holds a read
        transaction for the whole copy, so writers (in WAL mode) go on and the copy is the store
        as it was when it began; written to ``.<name>.<random>.tmp`` beside ``path``, synced, and
        renamed over ``path`` only when complete."""
        folder, name = os.path.split(os.path.abspath(path))
        temp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
        source = self._connect()
        try:
            source.execute("BEGIN")
            source.execute("SELECT count(*) FROM kvlite_meta").fetchone()  # the snapshot starts here
            target = apsw.Connection(temp)
            try:
                with target.backup("main", source, "main") as copying:
                    while not copying.done:
                        copying.step(256)
                        if progress is not None:
                            progress(copying.pagecount - copying.remaining, copying.pagecount)
                target.execute("PRAGMA journal_mode = WAL").fetchall()
            finally:
                target.close()
            source.execute("COMMIT")
            with open(temp, "rb") as done:
                os.fsync(done.fileno())
            os.replace(temp, path)
            sync_folder(folder)  # the rename itself, on disk
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            for leftover in (temp + "-wal", temp + "-shm", temp + "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
            if isinstance(exc, apsw.Error):
                raise translate_error(exc) from exc
            raise
        finally:
            source.close()

    # -- life cycle and inspection -----------------------------------------------------

    def close(self) -> None:
        """Close every connection of this engine."""
        self.closed = True
        with self._lock:
            connections, self._connections = self._connections, []
            for reader in [*self._readers, *self._busy_readers]:  # a running query ends with StoreClosed
                connections.append((threading.current_thread(), reader))
            self._readers = []
        for _, conn in connections:
            with contextlib.suppress(apsw.Error):
                conn.close(True)
        self._keeper = None
        self.local = threading.local()

    def info(self) -> dict[str, Any]:
        """Facts about the file, its SQLite settings read in one snapshot (inside
        :meth:`snapshot`: that one):

        ``path``; ``size`` and ``wal_size``: bytes of the file and of its ``-wal`` file on disk
        (0 when there is none, and for ``":memory:"``); ``schema_version``: kvlite's schema
        version recorded in the file; ``created_by``: the kvlite version that made the file
        (``None`` when not recorded); ``page_size`` (bytes), ``pages`` and ``free_pages``
        (pages a :meth:`vacuum` would give back); ``journal_mode`` (``"wal"`` for a file).

        :raises CorruptStore: a table kvlite needs is missing (a damaged file, or not a kvlite store).
        """
        conn = self.connection()
        with self.read(conn):
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                made_by = conn.execute("SELECT value FROM kvlite_meta WHERE key = 'created_by'").fetchone()
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                pages = conn.execute("PRAGMA page_count").fetchone()[0]
                free = conn.execute("PRAGMA freelist_count").fetchone()[0]
                journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
            except apsw.SQLError as exc:
                if "no such table" in str(exc):
                    raise CorruptStore(f"{self.path}: damaged kvlite file, or not a kvlite store: {exc} "
                                       "(a table kvlite needs is missing)") from exc
                raise translate_error(exc) from exc
            except DB_ERRORS as exc:
                raise translate_error(exc) from exc

        def size(path: str) -> int:
            if self._memory:
                return 0
            try:
                return os.path.getsize(path)
            except OSError:
                return 0

        return {"path": self.path, "size": size(self.path), "wal_size": size(self.path + "-wal"),
                "schema_version": version, "created_by": None if made_by is None else made_by[0],
                "page_size": page_size, "pages": pages, "free_pages": free, "journal_mode": journal}

    def vacuum(self) -> None:
        """Compact the file: rebuild it without free pages (SQLite ``VACUUM``) and fold the WAL
        into it (a ``TRUNCATE`` checkpoint).  Every entry, TTL and index is kept.

        Needs free disk space about the size of the file, and the write lock (it waits for
        other writers up to ``timeout``, like a write).
        :raises ReadOnlyError: the store was opened read-only, or a :meth:`snapshot` block is open.
        :raises NotSupported: inside a :meth:`transaction` block (SQLite vacuums outside any).
        """
        if self.readonly:
            raise ReadOnlyError("the store was opened read-only")
        conn = self.connection()
        block: _Block | None = getattr(self.local, "block", None)
        if block is not None and block.conn is conn:
            raise NotSupported("vacuum() cannot run inside a transaction() block; call it after the block")
        if not conn.getautocommit():
            raise ReadOnlyError("cannot vacuum inside store.snapshot(): it is a read-only block")
        try:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except DB_ERRORS as exc:
            raise translate_error(exc) from exc

