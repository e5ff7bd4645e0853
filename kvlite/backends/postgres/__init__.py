"""``postgresql://`` -- kvlite on a PostgreSQL server (psycopg 3 + psycopg_pool).

``kvlite.open("postgresql://user:password@host:5432/dbname")`` gives the full
kvlite Store / Collection / DictView / TTL / transaction / query API on a
PostgreSQL database (psycopg 3 and psycopg-pool: kvlite's ``postgres`` extra).  The URL is a libpq
connection URI (``postgres://`` works too; every libpq parameter such as
``sslmode`` or ``options=-csearch_path%3Dmyschema`` is passed through), plus
two kvlite parameters read and removed before connecting:
``pool_min_size`` (default 1) and ``pool_max_size`` (default 10).

What lives where in this package:

================ ===================================================================
``engine.py``    :class:`PostgresEngine`: the pool, the schema, the registry of
                 collections, transactions (savepoints, collections made or dropped
                 in a block that rolls back are undone with it)
``table.py``     :class:`PostgresTable`: one collection's table, its statements
``query.py``     queries narrowed in PostgreSQL (``find``, ``explain``), indexes
``pushdown.py``  jsonb SQL helpers for the push-down (:class:`PgCondition`, bounds, paths)
``errors.py``    psycopg and pool errors as kvlite errors; batches that fail quietly
``text.py``      keys as PostgreSQL text, SQL names, URLs (:func:`split_url`)
================ ===================================================================

Layout, in the schema that is first on the connection's ``search_path``
(``current_schema()`` when the store is opened; every name below is
qualified with it)::

    kvlite_meta(key text PRIMARY KEY, value text)      -- schema_version, created_by
    kvlite_collections(id bigserial PRIMARY KEY, name text UNIQUE, serializer text,
                       value_type text, created_at timestamptz)
    kv_<id>                                            -- one table per collection (see table.py)

Table names come from the registry's integer id, never from user text; keys,
values, names and query literals always travel as bound parameters.  Key
texts escape ``\\`` and NUL (PostgreSQL text cannot hold NUL).  ``doc`` is
NULL for a document whose JSON text contains ``\\u0000`` (jsonb cannot hold
it); queries then check that row in Python.  A JSON serializer whose
``dumps`` returns bytes (UTF-8, as ``orjson.dumps`` does) has its text stored
all the same, and ``loads`` gets bytes back; which type it returns is asked
once per table object, with ``dumps(None)``.

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

Every call is atomic: single statements, and ``put_many`` / ``setdefault`` /
``pop`` / ``popitem`` in one transaction each (``pop`` and ``popitem`` decode
the value before they commit, so a value that cannot be decoded stays
stored).  Connections come from a ``psycopg_pool.ConnectionPool``
(autocommit), so one store is safe to share between threads; other processes
and machines may use the same database.

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

Queries (:mod:`.query`): on JSON collections the filters of a path
(``$[?(@.age > 30 & @.name == "Ada")]``) are pushed down to PostgreSQL's
SQL/JSON path language -- ``jsonb_path_exists(doc, path, vars)`` with every
literal passed in ``vars``, never in the SQL or path text -- and, on a path
with ``create_index``, to a btree expression index on ``doc #> '{a,b}'``.
The SQL condition is a superset of the Python one (it never drops a row
Python would match) and Python re-checks every row it lets through, so the
answer is always the one kvlite's Python evaluation gives on the collection
loaded in memory.  Everything else (``order_by``, ObjectPath, ``$..x``, other
serializers) runs in Python over streamed rows, as on every engine without
SQL push-down.
"""

from __future__ import annotations

try:
    import psycopg  # noqa: F401 - checked here, so a missing extra is one clear error
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ...errors import KvliteError

    raise KvliteError("the PostgreSQL backend needs psycopg 3 and psycopg_pool: "
                      "pip install 'psycopg[binary]' psycopg-pool") from exc

from .engine import SCHEMA_VERSION, PostgresEngine
from .pushdown import PgCondition
from .table import PostgresTable
from .text import redacted, split_url

#: ``redacted`` under its former name (``kvlite.backends.postgres._redacted``), which the
#: benchmark imports.
_redacted = redacted

__all__ = ["PostgresEngine", "PostgresTable", "SCHEMA_VERSION", "PgCondition",
           "split_url", "redacted"]
