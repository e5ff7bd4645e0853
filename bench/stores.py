"""One adapter per store the benchmark compares, all with the same small interface.

An adapter opens its store in a folder it is given (each measurement gets a
fresh one), and exposes the operations the workloads time.  Hot operations
are handed out as plain callables (:meth:`Adapter.getter`,
:meth:`Adapter.putter`) so the timed loops add no adapter frame of their own
to any store.

Stores (``name``: what it is):

* ``kvlite``: :class:`kvlite.Collection` (``get``/``put``/``put_many``/``get_many``/``items``).
* ``kvlite-dict``: :class:`kvlite.DictView` (``d[k]``, ``d[k] = v``, ``d.update``, ``d.items()``).
* ``kvlite-full`` (optional): ``kvlite.open(..., durability="full")``.
* ``apsw``: the floor: raw apsw + orjson, ``key TEXT PRIMARY KEY, value TEXT``
  ``WITHOUT ROWID`` (measured faster than a rowid table for writes and point
  reads; ``apsw-rowid`` keeps the other one measurable), one reused cursor
  (apsw caches the prepared statements), iteration in pages of 1000 by key
  with ``fetchall()``, the same pragmas as kvlite (WAL,
  ``synchronous=NORMAL``, busy timeout, 512-statement cache).
* ``dict``: a plain in-process ``dict`` (the ceiling; nothing is encoded).
* ``kvlite-lmdb``: :class:`kvlite.Collection` of an ``lmdb://`` store; ``lmdb``: its floor,
  raw py-lmdb + orjson (a read transaction per get, a write transaction per put).
* ``diskcache``: ``diskcache.Cache`` with its defaults (WAL, ``synchronous=NORMAL``, pickle).
* ``sqlitedict``: ``SqliteDict`` (pickle) with ``journal_mode="WAL"`` and
  ``PRAGMA synchronous=NORMAL`` (its default is ``OFF``, which is not
  durable; set so every SQLite store is compared at the same durability),
  ``autocommit=False`` for bulk/batch workloads (one ``commit()`` per batch),
  ``True`` for single writes.
* ``shelve``: stdlib ``shelve`` over the default ``dbm`` (``dbm.dumb`` when
  no gdbm/ndbm is compiled in, as here).  No transactions: a "single write" is
  ``s[k] = v``, not crash-safe.

Query strategies (the ``query`` workload group): ``jsonpath-ng`` (every
document decoded from a kvlite collection and matched by jsonpath-ng),
``python-loop`` (the same scan with a hand-written Python predicate),
``apsw`` / ``apsw+index`` (``json_extract`` SQL over the floor's TEXT column,
without / with an expression index), ``apsw-jsonb`` / ``apsw-jsonb+index``
(the same over a JSONB BLOB column), and ``kvlite`` / ``kvlite+index``
(``Collection.find``; only when kvlite has it).

RFC 9535 strategies (the ``rfc9535`` group; its baseline is ``rfc9535-ref``):
``apsw`` / ``apsw+index`` (the exact SQL kvlite pushes down, run bare,
matches decoded with orjson), the kvlite stores above (``find`` with the
default ``engine="jsonpath"``), ``kvlite-ng`` (``find`` with
``engine="jsonpath-ng"``, the previous default) and ``rfc9535-ref`` (every
document decoded from a kvlite ``json`` collection and matched by the
``jsonpath-rfc9535`` reference implementation, 1000 documents per ``find``).

Add a store: subclass :class:`Adapter`, implement what it supports, and
decorate it with :func:`register`.
"""

from __future__ import annotations

import dbm
import pickle
import shelve
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import apsw
import orjson

__all__ = ["Adapter", "QuerySpec", "STORES", "register", "default_stores"]

Pair = tuple[str, Any]


@dataclass(frozen=True)
class QuerySpec:
    """One query, written for every strategy.

    ``jsonpath`` is the path over the whole collection (root ``$`` = the
    mapping ``{key: document}``); ``predicate`` the same test on one document
    in plain Python; ``sql`` the same test as an SQL condition on the
    ``value`` column (``?`` placeholders bound to ``params``);
    ``index_path``/``index_sql`` the field an index serves.  ``group`` is the
    workload group, ``dataset`` the documents (:data:`bench.data.DATASETS`),
    ``ng_path`` the path in jsonpath-ng's dialect (default: ``jsonpath``) and
    ``select`` makes kvlite stores iterate ``select`` instead of ``find``.
    """

    name: str
    jsonpath: str
    predicate: Callable[[Any], bool]
    sql: str
    index_path: str
    index_sql: str
    params: tuple[Any, ...] = ()
    group: str = "query"
    dataset: str = "small"
    ng_path: str | None = None
    select: bool = False


#: Every adapter, by name, in the order tables show them.
STORES: dict[str, type[Adapter]] = {}


def register(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: make ``cls`` selectable as ``--stores NAME``."""
    if cls.name in STORES:
        raise ValueError(f"store {cls.name!r} is registered twice")
    STORES[cls.name] = cls
    return cls


def default_stores() -> list[str]:
    """Names of the stores a run measures when ``--stores`` is not given."""
    return [name for name, cls in STORES.items() if cls.default]


class Adapter:
    """A store under test, opened in ``folder``.

    ``autocommit`` says what the workload wants: ``True`` for single writes
    (each its own transaction), ``False`` for bulk/batch workloads (only
    stores that distinguish the two, like sqlitedict, use it).
    """

    #: Name used on the command line and in the results.
    name: ClassVar[str] = ""
    #: Column header in the tables.
    title: ClassVar[str] = ""
    #: Workload groups it takes part in ("kv", "query").
    groups: ClassVar[frozenset[str]] = frozenset({"kv"})
    #: Measured unless ``--stores`` says otherwise.
    default: ClassVar[bool] = True
    #: How threads use it: "share" one object, "per-thread" objects, "lock" one
    #: object behind a lock (not thread-safe), or None (cannot).
    threads: ClassVar[str | None] = "share"
    #: Can two processes open the same folder at once?
    processes: ClassVar[bool] = True
    #: The data lives in the process: read workloads fill it in the measuring process.
    in_memory: ClassVar[bool] = False
    #: Name of the store whose filled template folder this one reads (same file layout); None: its own.
    template: ClassVar[str | None] = None

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        self.folder = folder
        self.autocommit = autocommit

    @classmethod
    def supports_query(cls) -> bool:
        """True when the ``query`` workloads can run on it."""
        return False

    @classmethod
    def describe(cls) -> str:
        """Versions and settings, for the results file."""
        return cls.title

    def close(self) -> None:
        """Flush and close (not timed)."""

    def after_populate(self) -> None:
        """Called once after the data set is written, before any measurement (e.g. make an index)."""

    def bulk_write(self, pairs: Iterable[Pair]) -> None:
        """Write every pair in one transaction (as fast as the store allows)."""
        raise NotImplementedError

    def getter(self) -> Callable[[str], Any]:
        """A callable ``get(key) -> decoded value`` for the timed loops."""
        raise NotImplementedError

    def putter(self) -> Callable[[str, Any], None]:
        """A callable ``put(key, value)``, each call its own committed transaction."""
        raise NotImplementedError

    def iterate(self) -> int:
        """Read and decode every ``(key, value)``; returns how many."""
        raise NotImplementedError

    def get_many(self, keys: list[str]) -> list[Any]:
        """Decoded values of ``keys`` (one read snapshot where the store has one)."""
        get = self.getter()
        return [get(k) for k in keys]

    def put_many(self, pairs: list[Pair]) -> None:
        """Write ``pairs`` in one transaction."""
        self.bulk_write(pairs)

    def count(self) -> int:
        """Number of entries (for checks, not timed)."""
        raise NotImplementedError

    def querier(self, spec: QuerySpec) -> Callable[[], int]:
        """A callable running ``spec`` over the whole store, decoding every match; returns the match count.

        Everything that is not the query itself (parsing the path, importing
        the engine) happens here, before the memory baseline and the clock.
        """
        raise NotImplementedError


# -- the floor ------------------------------------------------------------------------


@register
class ApswFloor(Adapter):
    """Raw apsw + orjson: the practical floor for SQLite."""

    name = "apsw"
    title = "apsw floor"
    groups = frozenset({"kv", "query", "rfc9535"})
    threads = "per-thread"
    FILE = "floor.db"
    SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
    SQL_GET = "SELECT value FROM kv WHERE key = ?"
    SQL_PUT = "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)"
    #: Iteration reads pages of PAGE rows by key (keyset pagination) with fetchall():
    #: measured ~10% faster than stepping one cursor over the whole table.
    SQL_PAGE = "SELECT key, value FROM kv WHERE key > ? ORDER BY key LIMIT ?"
    PAGE = 1000
    SQL_SCAN = "SELECT key, value FROM kv WHERE {where}"
    INDEX = False

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        super().__init__(folder, autocommit=autocommit)
        self.conn = apsw.Connection(str(folder / self.FILE), statementcachesize=512)
        self.conn.set_busy_timeout(30_000)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = OFF")
        if self.conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'kv'").fetchone() is None:
            self.conn.execute(self.SCHEMA)
        self.cur = self.conn.cursor()

    @classmethod
    def supports_query(cls) -> bool:
        return True

    @classmethod
    def describe(cls) -> str:
        return f"{cls.title}: apsw {apsw.apsw_version()}, SQLite {apsw.sqlite_lib_version()}, orjson {orjson.__version__}"

    def close(self) -> None:
        self.conn.close()

    def bulk_write(self, pairs: Iterable[Pair]) -> None:
        dumps = orjson.dumps
        cur = self.cur
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany(self.SQL_PUT, ((k, dumps(v).decode()) for k, v in pairs))
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def getter(self) -> Callable[[str], Any]:
        execute = self.cur.execute
        loads = orjson.loads
        sql = self.SQL_GET

        def get(key: str) -> Any:
            # A for-loop steps the statement to its end, which resets it: fetchone() on a
            # reused cursor would leave a read transaction open until the next call.
            out = None
            for (value,) in execute(sql, (key,)):
                out = loads(value)
            return out

        return get

    def putter(self) -> Callable[[str, Any], None]:
        execute = self.cur.execute
        dumps = orjson.dumps
        sql = self.SQL_PUT

        def put(key: str, value: Any) -> None:
            execute(sql, (key, dumps(value).decode()))

        return put

    def iterate(self) -> int:
        loads = orjson.loads
        execute = self.cur.execute
        sql, page = self.SQL_PAGE, self.PAGE
        n = 0
        last: Any = ""
        while True:
            rows: list[Any] = execute(sql, (last, page)).fetchall()
            for _key, value in rows:
                loads(value)
            n += len(rows)
            if len(rows) < page:
                return n
            last = rows[-1][0]

    def get_many(self, keys: list[str]) -> list[Any]:
        cur = self.cur
        execute = cur.execute
        loads = orjson.loads
        sql = self.SQL_GET
        out: list[Any] = []
        execute("BEGIN")
        try:
            for key in keys:
                value: Any = None
                for (value,) in execute(sql, (key,)):
                    pass
                out.append(None if value is None else loads(value))
        finally:
            execute("COMMIT")
        return out

    def count(self) -> int:
        row: Any = self.conn.execute("SELECT count(*) FROM kv").fetchone()
        return int(row[0])

    def after_populate(self) -> None:
        if self.INDEX:
            # Every index a registered query can use; bench.workloads.QUERIES share one field.
            from .workloads import QUERIES

            for i, index_sql in enumerate(sorted({spec.index_sql for spec in QUERIES.values()})):
                self.conn.execute(f"CREATE INDEX IF NOT EXISTS kv_query_{i} ON kv({index_sql})")
            self.conn.execute("ANALYZE")

    def querier(self, spec: QuerySpec) -> Callable[[], int]:
        sql = self.SQL_SCAN.format(where=spec.sql)
        params = spec.params
        execute = self.cur.execute
        loads = orjson.loads

        def run() -> int:
            n = 0
            for _key, value in execute(sql, params):
                loads(value)
                n += 1
            return n

        return run


@register
class ApswFloorIndexed(ApswFloor):
    """The floor with an expression index on every queried field (query group only)."""

    name = "apsw+index"
    title = "apsw + index"
    groups = frozenset({"query", "rfc9535"})
    INDEX = True


@register
class ApswRowid(ApswFloor):
    """The floor's other schema: a rowid table with ``key TEXT PRIMARY KEY`` (two b-trees).

    Measured by default: like kvlite, it has two access paths (rowid order and the key), which
    is what keeping insertion order costs; the floor (one b-tree ordered by key) has one."""

    name = "apsw-rowid"
    title = "apsw rowid (2 b-trees)"
    groups = frozenset({"kv"})
    FILE = "floor-rowid.db"
    SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


@register
class ApswJsonb(ApswFloor):
    """The floor storing SQLite JSONB (BLOB); reads convert back with ``json(value)``."""

    name = "apsw-jsonb"
    title = "apsw JSONB"
    default = False
    FILE = "floor-jsonb.db"
    SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
    SQL_GET = "SELECT json(value) FROM kv WHERE key = ?"
    SQL_PUT = "INSERT OR REPLACE INTO kv (key, value) VALUES (?, jsonb(?))"
    SQL_PAGE = "SELECT key, json(value) FROM kv WHERE key > ? ORDER BY key LIMIT ?"
    SQL_SCAN = "SELECT key, json(value) FROM kv WHERE {where}"


@register
class ApswJsonbIndexed(ApswJsonb):
    """JSONB floor with expression indexes (query group only)."""

    name = "apsw-jsonb+index"
    title = "apsw JSONB + index"
    groups = frozenset({"query"})
    INDEX = True


# -- kvlite ---------------------------------------------------------------------------


def _kvlite_has_find() -> bool:
    import kvlite

    return hasattr(kvlite.Collection, "find")


@register
class KvliteCollection(Adapter):
    """kvlite through the Collection API."""

    name = "kvlite"
    title = "kvlite Collection"
    groups = frozenset({"kv", "query", "rfc9535"})
    INDEX = False
    DURABILITY = "normal"
    SERIALIZER = "json"
    #: ``engine=`` of ``find``/``select`` (``"jsonpath"``: RFC 9535, kvlite's default).
    ENGINE = "jsonpath"

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        import kvlite

        super().__init__(folder, autocommit=autocommit)
        self.store = kvlite.open(folder / "kvlite.db", durability=self.DURABILITY, serializer=self.SERIALIZER)
        self.coll = self.store.collection("bench")

    @classmethod
    def supports_query(cls) -> bool:
        return _kvlite_has_find()

    @classmethod
    def describe(cls) -> str:
        import kvlite

        return (f"{cls.title}: kvlite {kvlite.__version__} (durability={cls.DURABILITY!r}, "
                f"serializer={cls.SERIALIZER!r})")

    def close(self) -> None:
        self.store.close()

    def bulk_write(self, pairs: Iterable[Pair]) -> None:
        self.coll.put_many(pairs)

    def getter(self) -> Callable[[str], Any]:
        return self.coll.get

    def putter(self) -> Callable[[str, Any], None]:
        return self.coll.put

    def iterate(self) -> int:
        n = 0
        for _key, _value in self.coll.items():
            n += 1
        return n

    def get_many(self, keys: list[str]) -> list[Any]:
        return self.coll.get_many(keys)

    def put_many(self, pairs: list[Pair]) -> None:
        self.coll.put_many(pairs)

    def count(self) -> int:
        return self.coll.count()

    def after_populate(self) -> None:
        if self.INDEX and hasattr(self.coll, "create_index"):
            from .workloads import QUERIES

            for path in {spec.index_path for spec in QUERIES.values()}:
                self.coll.create_index(path)

    def querier(self, spec: QuerySpec) -> Callable[[], int]:
        engine = self.ENGINE
        path = (spec.ng_path or spec.jsonpath) if engine == "jsonpath-ng" else spec.jsonpath
        method = self.coll.select if spec.select else self.coll.find  # type: ignore[attr-defined]
        for _ in method(path, engine=engine, limit=1):  # parse and import the engine now, outside the timed part
            break

        def run() -> int:
            n = 0
            for _ in method(path, engine=engine):
                n += 1
            return n

        return run


@register
class KvliteFull(KvliteCollection):
    """kvlite with ``durability="full"`` (``synchronous=FULL``: an fsync per commit)."""

    name = "kvlite-full"
    title = "kvlite durability=full"
    groups = frozenset({"kv"})
    default = False
    DURABILITY = "full"


@register
class KvliteIndexed(KvliteCollection):
    """kvlite ``find`` with ``create_index`` on every queried field (query group only)."""

    name = "kvlite+index"
    title = "kvlite + index"
    groups = frozenset({"query", "rfc9535"})
    INDEX = True

    @classmethod
    def supports_query(cls) -> bool:
        import kvlite

        return _kvlite_has_find() and hasattr(kvlite.Collection, "create_index")


@register
class KvliteJsonb(KvliteCollection):
    """kvlite with ``serializer="jsonb"``: the same JSON values, stored as SQLite JSONB."""

    name = "kvlite-jsonb"
    title = "kvlite jsonb"
    SERIALIZER = "jsonb"

    @classmethod
    def supports_query(cls) -> bool:
        import kvlite

        return _kvlite_has_find() and "jsonb" in kvlite.serializers.names()


@register
class KvliteJsonbIndexed(KvliteJsonb):
    """kvlite ``serializer="jsonb"`` with ``create_index`` on every queried field (query group only)."""

    name = "kvlite-jsonb+index"
    title = "kvlite jsonb + index"
    groups = frozenset({"query", "rfc9535"})
    INDEX = True


@register
class KvliteDict(KvliteCollection):
    """kvlite through the DictView (``collection.dict()``)."""

    name = "kvlite-dict"
    title = "kvlite DictView"
    groups = frozenset({"kv"})

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        super().__init__(folder, autocommit=autocommit)
        self.d = self.coll.dict()

    def bulk_write(self, pairs: Iterable[Pair]) -> None:
        self.d.update(pairs)

    def getter(self) -> Callable[[str], Any]:
        return self.d.__getitem__

    def putter(self) -> Callable[[str, Any], None]:
        return self.d.__setitem__

    def iterate(self) -> int:
        n = 0
        for _key, _value in self.d.items():
            n += 1
        return n

    def get_many(self, keys: list[str]) -> list[Any]:
        d = self.d
        return [d[k] for k in keys]

    def put_many(self, pairs: list[Pair]) -> None:
        self.d.update(pairs)

    def count(self) -> int:
        return len(self.d)


@register
class KvliteLMDB(KvliteCollection):
    """kvlite's LMDB engine (``lmdb://``) through the Collection API."""

    name = "kvlite-lmdb"
    title = "kvlite lmdb://"
    groups = frozenset({"kv"})

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        import kvlite

        Adapter.__init__(self, folder, autocommit=autocommit)
        self.store = kvlite.open(f"lmdb://{folder / 'kvlite-lmdb'}", durability=self.DURABILITY)
        self.coll = self.store.collection("bench")

    @classmethod
    def describe(cls) -> str:
        import lmdb

        return f"{super().describe()}, py-lmdb {lmdb.__version__}, LMDB {'.'.join(map(str, lmdb.version()))}"


@register
class LMDBFloor(Adapter):
    """The LMDB floor: raw py-lmdb + orjson, one database, keys as UTF-8, a read transaction per
    get and a write transaction per put (kvlite's settings: data synced at commit, meta lazily)."""

    name = "lmdb"
    title = "LMDB floor"

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        import lmdb

        super().__init__(folder, autocommit=autocommit)
        self.env = lmdb.open(str(folder / "lmdb-floor"), map_size=1 << 32, sync=True, metasync=False)

    @classmethod
    def describe(cls) -> str:
        import lmdb

        return f"{cls.title}: py-lmdb {lmdb.__version__}, LMDB {'.'.join(map(str, lmdb.version()))}"

    def close(self) -> None:
        self.env.close()

    def bulk_write(self, pairs: Iterable[Pair]) -> None:
        with self.env.begin(write=True) as txn:
            put = txn.put
            for key, value in pairs:
                put(key.encode(), orjson.dumps(value))

    def getter(self) -> Callable[[str], Any]:
        begin, loads = self.env.begin, orjson.loads

        def get(key: str) -> Any:
            txn = begin()
            data = txn.get(key.encode())
            txn.abort()
            return loads(data)

        return get

    def putter(self) -> Callable[[str, Any], None]:
        begin, dumps = self.env.begin, orjson.dumps

        def put(key: str, value: Any) -> None:
            with begin(write=True) as txn:
                txn.put(key.encode(), dumps(value))

        return put

    def iterate(self) -> int:
        n = 0
        loads = orjson.loads
        with self.env.begin() as txn:
            for key, value in txn.cursor():
                key.decode(), loads(value)
                n += 1
        return n

    def get_many(self, keys: list[str]) -> list[Any]:
        loads = orjson.loads
        with self.env.begin() as txn:
            return [loads(txn.get(key.encode())) for key in keys]

    def count(self) -> int:
        return int(self.env.stat()["entries"])


@register
class JsonpathScan(KvliteCollection):
    """Query strategy: decode every document of a kvlite collection and match it with jsonpath-ng."""

    name = "jsonpath-ng"
    title = "jsonpath-ng scan"
    groups = frozenset({"query"})
    template = "kvlite"

    @classmethod
    def supports_query(cls) -> bool:
        return True

    @classmethod
    def describe(cls) -> str:
        from importlib.metadata import version

        return f"{cls.title}: jsonpath-ng {version('jsonpath-ng')} over kvlite Collection.items()"

    def querier(self, spec: QuerySpec) -> Callable[[], int]:
        from jsonpath_ng.ext import parse

        expr = parse(spec.jsonpath)
        items = self.coll.items

        def run() -> int:
            # The root is the collection {key: doc}; one document at a time keeps memory flat
            # and, for a filter on the root, finds the same matches in the same order.
            n = 0
            find = expr.find
            for key, value in items():
                n += len(find({key: value}))
            return n

        return run


@register
class PythonLoop(KvliteCollection):
    """Query strategy: decode every document of a kvlite collection and test it in plain Python."""

    name = "python-loop"
    title = "Python loop"
    groups = frozenset({"query"})
    template = "kvlite"

    @classmethod
    def supports_query(cls) -> bool:
        return True

    def querier(self, spec: QuerySpec) -> Callable[[], int]:
        predicate = spec.predicate
        items = self.coll.items

        def run() -> int:
            n = 0
            for _key, value in items():
                if predicate(value):
                    n += 1
            return n

        return run


@register
class KvliteNg(KvliteCollection):
    """kvlite ``find`` with ``engine="jsonpath-ng"`` (the previous default query language; rfc9535 group only)."""

    name = "kvlite-ng"
    title = "kvlite engine=jsonpath-ng"
    groups = frozenset({"rfc9535"})
    template = "kvlite"
    ENGINE = "jsonpath-ng"


@register
class Rfc9535Reference(KvliteCollection):
    """Query strategy: decode every document of a kvlite ``json`` collection and match it with the
    ``jsonpath-rfc9535`` reference implementation, 1000 documents (``{key: doc}``) per ``find`` call."""

    name = "rfc9535-ref"
    title = "jsonpath-rfc9535 reference"
    groups = frozenset({"rfc9535"})
    template = "kvlite"
    CHUNK = 1000

    @classmethod
    def supports_query(cls) -> bool:
        return True

    @classmethod
    def describe(cls) -> str:
        from importlib.metadata import version

        return (f"{cls.title}: jsonpath-rfc9535 {version('jsonpath-rfc9535')} over kvlite Collection.items(), "
                f"{cls.CHUNK} documents per find()")

    def querier(self, spec: QuerySpec) -> Callable[[], int]:
        import jsonpath_rfc9535

        find = jsonpath_rfc9535.compile(spec.jsonpath).find
        items = self.coll.items
        size = self.CHUNK

        def run() -> int:
            # The root is the collection {key: doc}, 1000 documents at a time: the same matches as
            # one find() over every document, with memory bounded by the chunk.
            n = 0
            chunk: dict[str, Any] = {}
            for key, value in items():
                chunk[key] = value
                if len(chunk) == size:
                    n += len(find(chunk))
                    chunk = {}
            if chunk:
                n += len(find(chunk))
            return n

        return run


# -- kvlite on a Redis / Valkey server ------------------------------------------------------

#: URL of a Redis/Valkey server for ``kvlite-redis`` (``redis://127.0.0.1:6379/0``); unset: not measured.
REDIS_URL_ENV = "KVLITE_BENCH_REDIS_URL"


def _redis_reachable() -> bool:
    """True when ``$KVLITE_BENCH_REDIS_URL`` is set and the server answers (a 1-second try)."""
    import os

    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        return False
    try:
        import redis

        from kvlite.backends.redis import parse_url

        client = redis.Redis.from_url(parse_url(url)[0], socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "not measured"
        return False


@register
class KvliteRedis(KvliteCollection):
    """kvlite's Redis backend: the Collection API on the server at ``$KVLITE_BENCH_REDIS_URL``.

    Measured by default only when that server answers.  Each measurement
    folder gets its own ``?prefix=`` (from the folder's path), so processes
    opening the same folder share data and measurements never see each other's.
    The data lives on the server, so read workloads fill it in the measuring
    process (``in_memory``), which drops it when it closes.
    """

    name = "kvlite-redis"
    title = "kvlite Redis"
    groups = frozenset({"kv", "query"})
    default = _redis_reachable()
    in_memory = True

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        import hashlib
        import os

        import kvlite

        Adapter.__init__(self, folder, autocommit=autocommit)
        url = os.environ.get(REDIS_URL_ENV)
        if not url:
            raise RuntimeError(f"set {REDIS_URL_ENV}=redis://host:port/db to measure kvlite-redis")
        prefix = "kvlite-bench-" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:16]
        self.store = kvlite.open(f"{url}{'&' if '?' in url else '?'}prefix={prefix}")
        self.coll = self.store.collection("bench")
        self._owner = False

    @classmethod
    def describe(cls) -> str:
        import os

        import redis

        import kvlite
        from kvlite.backends.redis import _redacted, parse_url

        url = os.environ.get(REDIS_URL_ENV, "")
        try:
            client = redis.Redis.from_url(parse_url(url)[0], socket_connect_timeout=1)
            info = client.info("server")
            client.close()
            server = f"{'Valkey' if 'valkey_version' in info else 'Redis'} " \
                     f"{info.get('valkey_version', info.get('redis_version'))}"
        except Exception:  # noqa: BLE001
            server = "server unreachable"
        where = _redacted(parse_url(url)[0]) if url else "(no URL)"
        return f"{cls.title}: kvlite {kvlite.__version__}, redis-py {redis.__version__}, {server} at {where}"

    def bulk_write(self, pairs: Iterable[Pair]) -> None:
        self._owner = True
        self.coll.put_many(pairs)

    def close(self) -> None:
        if self._owner:
            self.store.drop_collection("bench")
            # The namespace is this measurement's alone: remove its last key (the collection counter).
            self.store.engine.client.delete(f"{self.store.engine.prefix}:registry:seq")
        self.store.close()


# -- kvlite on a PostgreSQL server ------------------------------------------------------------

#: URL of a PostgreSQL database for ``kvlite-postgres`` (``postgresql://user@127.0.0.1:5432/db``); unset: not measured.
POSTGRES_URL_ENV = "KVLITE_BENCH_POSTGRES_URL"


def _postgres_reachable() -> bool:
    """True when ``$KVLITE_BENCH_POSTGRES_URL`` is set and the server answers (a 2-second try)."""
    import os

    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        return False
    try:
        import psycopg

        from kvlite.backends.postgres import split_url

        with psycopg.connect(split_url(url)[0], connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except Exception:  # noqa: BLE001 - any failure means "not measured"
        return False


@register
class KvlitePostgres(KvliteCollection):
    """kvlite's PostgreSQL backend: the Collection API on the database at ``$KVLITE_BENCH_POSTGRES_URL``.

    Measured by default only when that server answers.  Each measurement
    folder gets its own schema (named from the folder's path, put first on the
    ``search_path``), so processes opening the same folder share data and
    measurements never see each other's.  The data lives on the server, so
    read workloads fill it in the measuring process (``in_memory``), which
    drops the schema when it closes.
    """

    name = "kvlite-postgres"
    title = "kvlite PostgreSQL"
    groups = frozenset({"kv", "query"})
    default = _postgres_reachable()
    in_memory = True

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        import hashlib
        import os
        import urllib.parse

        import psycopg

        import kvlite
        from kvlite.backends.postgres import split_url

        Adapter.__init__(self, folder, autocommit=autocommit)
        url = os.environ.get(POSTGRES_URL_ENV)
        if not url:
            raise RuntimeError(f"set {POSTGRES_URL_ENV}=postgresql://user@host:port/db to measure kvlite-postgres")
        self.schema = "kvlite_bench_" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:16]
        self._conninfo = split_url(url)[0]
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        options = urllib.parse.quote(f"-csearch_path={self.schema}")
        self.store = kvlite.open(f"{url}{'&' if '?' in url else '?'}options={options}")
        self.coll = self.store.collection("bench")
        self._owner = False

    @classmethod
    def describe(cls) -> str:
        import os

        import psycopg

        import kvlite
        from kvlite.backends.postgres import _redacted, split_url

        url = os.environ.get(POSTGRES_URL_ENV, "")
        try:
            with psycopg.connect(split_url(url)[0], connect_timeout=2) as conn:
                server = "PostgreSQL " + str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        except Exception:  # noqa: BLE001
            server = "server unreachable"
        return (f"{cls.title}: kvlite {kvlite.__version__}, psycopg {psycopg.__version__}, {server} at "
                f"{_redacted(url) if url else '(no URL)'}")

    def bulk_write(self, pairs: Iterable[Pair]) -> None:
        self._owner = True
        self.coll.put_many(pairs)

    def close(self) -> None:
        self.store.close()
        if self._owner:
            import psycopg

            with psycopg.connect(self._conninfo, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


@register
class KvlitePostgresIndexed(KvlitePostgres):
    """kvlite PostgreSQL ``find`` with ``create_index`` on every queried field (query group only)."""

    name = "kvlite-postgres+index"
    title = "kvlite PostgreSQL + index"
    groups = frozenset({"query"})
    INDEX = True


# -- peers ----------------------------------------------------------------------------


@register
class PlainDict(Adapter):
    """A plain ``dict`` in the process: the ceiling."""

    name = "dict"
    title = "dict (ceiling)"
    processes = False
    in_memory = True

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        super().__init__(folder, autocommit=autocommit)
        self.d: dict[str, Any] = {}

    def bulk_write(self, pairs: Iterable[Pair]) -> None:
        self.d.update(pairs)

    def getter(self) -> Callable[[str], Any]:
        return self.d.__getitem__

    def putter(self) -> Callable[[str, Any], None]:
        return self.d.__setitem__

    def iterate(self) -> int:
        n = 0
        for _key, _value in self.d.items():
            n += 1
        return n

    def get_many(self, keys: list[str]) -> list[Any]:
        return list(map(self.d.__getitem__, keys))

    def put_many(self, pairs: list[Pair]) -> None:
        self.d.update(pairs)

    def count(self) -> int:
        return len(self.d)


@register
class DiskCache(Adapter):
    """``diskcache.Cache`` with its default settings."""

    name = "diskcache"
    title = "diskcache"

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        import diskcache

        super().__init__(folder, autocommit=autocommit)
        self.cache = diskcache.Cache(str(folder / "diskcache"))

    @classmethod
    def describe(cls) -> str:
        import diskcache

        return f"{cls.title}: diskcache {diskcache.__version__} (defaults: WAL, synchronous=NORMAL, pickle)"

    def close(self) -> None:
        self.cache.close()

    def bulk_write(self, pairs: Iterable[Pair]) -> None:
        cache = self.cache
        set_ = cache.set
        with cache.transact():
            for k, v in pairs:
                set_(k, v)

    def getter(self) -> Callable[[str], Any]:
        return self.cache.get

    def putter(self) -> Callable[[str, Any], None]:
        return self.cache.set

    def iterate(self) -> int:
        # diskcache has no items(): iterate the keys and read each value.
        get = self.cache.get
        n = 0
        for key in self.cache:
            get(key)
            n += 1
        return n

    def count(self) -> int:
        return len(self.cache)


@register
class SqliteDictAdapter(Adapter):
    """``sqlitedict.SqliteDict`` (pickle values) in WAL mode with ``synchronous=NORMAL``."""

    name = "sqlitedict"
    title = "sqlitedict"

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        from sqlitedict import SqliteDict

        super().__init__(folder, autocommit=autocommit)
        self.d = SqliteDict(str(folder / "sqlitedict.sqlite"), tablename="kv", autocommit=autocommit,
                            journal_mode="WAL", timeout=30)
        # sqlitedict sets synchronous=OFF (not durable); compare at kvlite's durability.
        self.d.conn.execute("PRAGMA synchronous = NORMAL")

    @classmethod
    def describe(cls) -> str:
        from importlib.metadata import version

        return f"{cls.title}: sqlitedict {version('sqlitedict')} (pickle, WAL, synchronous=NORMAL)"

    def close(self) -> None:
        self.d.close()

    def bulk_write(self, pairs: Iterable[Pair]) -> None:
        d = self.d
        for k, v in pairs:
            d[k] = v
        d.commit()

    def getter(self) -> Callable[[str], Any]:
        return self.d.__getitem__

    def putter(self) -> Callable[[str, Any], None]:
        return self.d.__setitem__

    def iterate(self) -> int:
        n = 0
        for _key, _value in self.d.items():
            n += 1
        return n

    def count(self) -> int:
        return len(self.d)


@register
class Shelve(Adapter):
    """stdlib ``shelve`` over the default ``dbm`` (pickle values)."""

    name = "shelve"
    title = "shelve"
    threads = "lock"
    processes = False

    def __init__(self, folder: Path, *, autocommit: bool = True) -> None:
        super().__init__(folder, autocommit=autocommit)
        self.path = str(folder / "shelf")
        self.s = shelve.open(self.path, flag="c", protocol=pickle.HIGHEST_PROTOCOL)
        self.lock = threading.Lock()

    @classmethod
    def describe(cls) -> str:
        return f"{cls.title}: dbm backend {_dbm_backend()} (no transactions)"

    def close(self) -> None:
        self.s.close()

    def bulk_write(self, pairs: Iterable[Pair]) -> None:
        s = self.s
        for k, v in pairs:
            s[k] = v
        s.sync()

    def put_many(self, pairs: list[Pair]) -> None:
        # No transactions; a sync() per batch would rewrite dbm.dumb's whole index.
        s = self.s
        for k, v in pairs:
            s[k] = v

    def getter(self) -> Callable[[str], Any]:
        return self.s.__getitem__

    def putter(self) -> Callable[[str, Any], None]:
        return self.s.__setitem__

    def iterate(self) -> int:
        n = 0
        for _key, _value in self.s.items():
            n += 1
        return n

    def count(self) -> int:
        return len(self.s)


def _dbm_backend() -> str:
    """The module ``dbm.open`` picks for new files on this Python."""
    for name in ("dbm.sqlite3", "dbm.gnu", "dbm.ndbm"):
        if name.split(".")[1] in getattr(dbm, "_names", ()):
            try:
                __import__(name)
                return name
            except ImportError:
                continue
    return "dbm.dumb"
