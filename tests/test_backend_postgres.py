"""The PostgreSQL backend (``kvlite.open("postgresql://...")``) against a real, throwaway server.

The server comes from ``tests/server_postgres.py`` (skipped when PostgreSQL is
not installed, a failure under ``CI=true``).  Every test gets its own schema,
so tests never see each other's collections.

What is checked:

* the key-value protocol, key types, insertion order and TTLs behave exactly
  like the SQLite store (the reference): a Hypothesis differential test runs
  random operation sequences on both, with one fake clock, and compares every
  result and the full contents after each step;
* CPython's ``test.mapping_tests.TestMappingProtocol`` on a DictView over a
  PostgreSQL collection (JSON and pickle), a fresh collection per test;
* atomicity of ``put_many`` (a row PostgreSQL refuses rolls back the batch),
  transactions (commit, rollback, savepoints, one connection per block,
  no lost updates), ``setdefault`` and ``popitem`` under concurrent threads;
* queries: pushed-down filters give the same answers as Python evaluation on
  ``memory://`` with the same documents (Hypothesis differential test, with
  and without indexes), and ``explain`` shows what ran in PostgreSQL.

``KVLITE_PG_EXAMPLES`` raises the number of Hypothesis examples.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import math
import os
import re
import threading
from typing import Any, Callable, ClassVar, Iterator

import pytest
from conftest import Clock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import helpers_servers
import server_postgres
from helpers_dictview import DocumentedSetdefault
from helpers_query import ENTRIES, FIELDS, NUMERIC_STRINGS, filters, jsonpaths, strict
from server_postgres import new_schema_url
from test import mapping_tests  # imported as a module so pytest does not collect its bases

import kvlite
from kvlite import DictView
from kvlite.errors import (
    CollectionDropped,
    IncompatibleVersion,
    InvalidKey,
    KvliteError,
    NotSupported,
    ReadOnlyError,
    SerializationError,
    SerializerMismatch,
    StoreClosed,
    StoreLocked,
    TransactionLost,
)

try:  # the optional extra; without it the server fixture skips (or fails under CI=true)
    import psycopg

    from kvlite.backends import postgres as pg
except (ImportError, KvliteError):  # pragma: no cover - depends on the environment
    psycopg = pg = None  # type: ignore[assignment]

EXAMPLES = int(os.environ.get("KVLITE_PG_EXAMPLES", "0"))
SETTINGS = settings(max_examples=EXAMPLES or 40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


@pytest.fixture
def pgmod(postgres_server: Any) -> Any:  # noqa: F811
    """The backend module (its tests need the same things as the server: skipped or failed alike)."""
    return pg


@pytest.fixture
def schema_url(postgres_url: str) -> str:  # noqa: F811
    """A URL whose tables go to a new, empty schema: each test starts with no collections."""
    return new_schema_url(postgres_url)


@pytest.fixture
def open_pg(schema_url: str, clock: Clock) -> Iterator[Callable[..., Any]]:
    opened: list[Any] = []

    def factory(url: str | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("clock", clock)
        store = kvlite.open(url or schema_url, **kwargs)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def db(open_pg: Callable[..., Any]) -> Any:
    return open_pg()


def typed(items: Any) -> list[Any]:
    """Items with types made visible (``1``, ``1.0`` and ``True`` differ)."""
    return [strict(item) for item in items]


# -- opening, registry, basics ------------------------------------------------------------------


def test_open_dispatches_on_the_url(db: Any, schema_url: str) -> None:
    assert isinstance(db.engine, pg.PostgresEngine)
    assert db.collections() == []
    other = kvlite.open(schema_url.replace("postgresql://", "postgres://", 1))
    try:
        assert isinstance(other.engine, pg.PostgresEngine) and other.engine.schema == db.engine.schema
    finally:
        other.close()


def test_repr_and_url_hide_the_password(pgmod: Any) -> None:
    assert pg.redacted("postgresql://ann:s3cret@h:5/db?x=1") == "postgresql://ann:***@h:5/db?x=1"
    assert pg.redacted("postgresql://ann@h/db") == "postgresql://ann@h/db"


def test_pool_parameters_are_taken_out_of_the_url(pgmod: Any) -> None:
    conninfo, options = pg.split_url("postgresql://u@h:1/d?pool_max_size=3&sslmode=disable&pool_min_size=0")
    assert conninfo == "postgresql://u@h:1/d?sslmode=disable"
    assert options == {"pool_max_size": 3, "pool_min_size": 0}
    with pytest.raises(ValueError):
        pg.split_url("postgresql://h/d?pool_max_size=0")
    with pytest.raises(ValueError):
        pg.split_url("postgresql://h/d?pool_max_size=lots")


def test_unreachable_server_fails_fast_with_a_kvlite_error(pgmod: Any) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(KvliteError, match="cannot connect"):
        kvlite.open(f"postgresql://postgres@127.0.0.1:{port}/x", timeout=2)


def test_durability_full_needs_a_server_with_fsync(open_pg: Callable[..., Any],
                                                  postgres_server: Any) -> None:  # noqa: F811
    """The session server runs with fsync=off: durability='full' cannot be given there."""
    with pytest.raises(NotSupported, match="fsync = off"):
        open_pg(durability="full")
    durable = server_postgres.PostgresServer(postgres_server.bindir, fsync=True)
    try:
        durable.start()
        store = kvlite.open(new_schema_url(durable.url), durability="full")
        try:
            assert store.durability == "full"
            with store.engine.connection() as conn:
                assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
            store.collection("c").put("k", 1)
            assert store.collection("c").get("k") == 1
        finally:
            store.close()
    finally:
        durable.stop()


def test_json_serializer_returning_bytes_gets_bytes_back(db: Any) -> None:
    class BytesJSON(kvlite.Serializer):
        name = "pg-bytes-json"
        json = True

        def dumps(self, value: Any) -> bytes:
            return json.dumps(value).encode()

        def loads(self, data: str | bytes) -> Any:
            assert isinstance(data, bytes)
            return json.loads(data)

    c = db.collection("c", serializer=BytesJSON())
    c.put("k", {"a": 1})
    assert c.get("k") == {"a": 1} and c.pop("k") == {"a": 1}
    c.put("j", {"a": 2})
    assert list(c.find("$[?(@.a == 2)]")) == [("j", {"a": 2})]  # pushed down, then loads(bytes)
    assert c._table.json  # stored as text (jsonb-queryable) all the same


def test_bad_options_are_refused(schema_url: str) -> None:
    with pytest.raises(ValueError):
        kvlite.open(schema_url, durability="sometimes")
    with pytest.raises(ValueError):
        kvlite.open(schema_url, timeout=-1)


def test_registry_create_list_drop(db: Any) -> None:
    users = db.collection("users")
    db.collection("pickles", serializer="pickle")
    db.collection("naïve \"name\"; DROP TABLE x")
    assert db.collections() == ["users", "pickles", "naïve \"name\"; DROP TABLE x"]
    assert db.serializer_of("pickles") == "pickle" and db.serializer_of("nope") is None
    with pytest.raises(SerializerMismatch):
        db.collection("pickles")
    users.put("a", 1)
    assert db.drop_collection("users") is True
    assert db.drop_collection("users") is False
    assert db.collections() == ["pickles", "naïve \"name\"; DROP TABLE x"]
    with pytest.raises(CollectionDropped, match="dropped"):
        users.put("a", 2)
    assert db.collection("users").get("a") is None  # a new, empty collection


def test_two_stores_share_the_schema(open_pg: Callable[..., Any]) -> None:
    first, second = open_pg(), open_pg()
    first.collection("c").put("k", {"v": 1})
    assert second.collection("c").get("k") == {"v": 1}
    assert second.collections() == ["c"]
    old = first.collection("c")
    second.drop_collection("c")
    with pytest.raises(CollectionDropped, match="dropped"):
        old.get("k")  # the old object's table is gone
    assert first.collection("c").get("k") is None  # the registry is read again: a new collection


def test_concurrent_creation_makes_one_collection(open_pg: Callable[..., Any]) -> None:
    stores = [open_pg() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def create(store: Any) -> None:
        try:
            barrier.wait()
            store.collection("race").put(id(store), 1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stores[0].collections() == ["race"]
    assert len(stores[0].collection("race")) == 4


def test_readonly_store(open_pg: Callable[..., Any], schema_url: str) -> None:
    empty = open_pg(readonly=True)  # no kvlite tables yet: nothing is created
    assert empty.collections() == []
    with pytest.raises(ReadOnlyError):
        empty.collection("c")
    writer = open_pg()
    writer.collection("c").put("k", 1)
    reader = open_pg(readonly=True)
    coll = reader.collection("c")
    assert coll.get("k") == 1 and list(coll.items()) == [("k", 1)]
    for write in (lambda: coll.put("k", 2), lambda: coll.delete("k"), coll.clear, reader.purge_expired):
        with pytest.raises(ReadOnlyError):
            write()
    with pytest.raises(ReadOnlyError):
        with reader.transaction():
            pass


def test_newer_schema_version_is_refused(open_pg: Callable[..., Any], schema_url: str) -> None:
    open_pg()
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("UPDATE kvlite_meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(IncompatibleVersion):
        kvlite.open(schema_url)


def test_closed_store(db: Any) -> None:
    coll = db.collection("c")
    db.close()
    db.close()  # idempotent
    assert db.closed
    for call in (lambda: coll.get("k"), lambda: coll.put("k", 1), lambda: db.collection("c"), db.collections):
        with pytest.raises(StoreClosed):
            call()


def test_context_manager_closes(open_pg: Callable[..., Any]) -> None:
    with open_pg() as store:
        store.collection("c").put(1, 2)
    assert store.closed


# -- protocol details -----------------------------------------------------------------------------


def test_keys_keep_their_type_and_equal_keys_are_one(db: Any) -> None:
    c = db.collection("c")
    c.put(1, "int")
    c.put(1.0, "float")  # same key as 1: value replaced, key stays 1
    c.put(True, "bool")
    c.put("1", "str")
    c.put(b"1", "bytes")
    assert typed(c.items()) == typed([(1, "bool"), ("1", "str"), (b"1", "bytes")])
    c.delete(True)
    c.put(1.0, "again")
    assert typed(c.keys()) == typed(["1", b"1", 1.0])


@pytest.mark.parametrize("key", ["", "a\x00b", "back\\slash", "\\0", "\\", "é日本😀", b"", b"\x00\xff",
                                 0, -0.0, 2**63 - 1, -(2**63), 1e300, -1e-300, math.inf, -math.inf, 0.1])
def test_key_round_trip(db: Any, key: Any) -> None:
    c = db.collection("c")
    c.put(key, "v")
    assert typed(c.keys()) == typed([key])
    assert c.get(key) == "v" and key in c and c.pop(key) == "v" and key not in c


def test_nul_and_backslash_keys_stay_distinct(db: Any) -> None:
    c = db.collection("c")
    keys = ["\x00", "\\0", "\\", "\\\\", "\\\x00", "0"]
    for i, key in enumerate(keys):
        c.put(key, i)
    assert list(c.items()) == list(zip(keys, range(len(keys))))


def test_invalid_keys(db: Any) -> None:
    c = db.collection("c")
    for key in (None, (1,), math.nan, 2**64 + 1, "\ud800"):
        with pytest.raises(InvalidKey):
            c.put(key, 1)
        assert key not in c


def test_insertion_order_update_keeps_place(db: Any) -> None:
    c = db.collection("c")
    c.put_many([("a", 1), ("b", 2), ("c", 3)])
    c.put("a", 10)
    assert list(c.items()) == [("a", 10), ("b", 2), ("c", 3)]
    c.delete("a")
    c.put("a", 11)
    assert list(c.keys()) == ["b", "c", "a"]
    assert list(c.keys(reverse=True)) == ["a", "c", "b"]
    assert c.popitem() == ("a", 11)


def test_json_text_round_trips_exactly(db: Any) -> None:
    class Verbatim(kvlite.Serializer):
        """JSON text stored and returned as is (jsonb would reorder and respace it)."""

        name = "verbatim-json-pg-test"
        json = True

        def dumps(self, value: Any) -> str:
            return value

        def loads(self, data: Any) -> Any:
            return data

    kvlite.register_serializer(Verbatim(), replace=True)
    c = db.collection("v", serializer="verbatim-json-pg-test")
    text = '{ "b" : 1,\n "a":[1.50, 1e2], "b" : 2, "s": "x\\u0000y"}'
    c.put("k", text)
    assert c.get("k") == text
    with pytest.raises(SerializationError):
        c.put("bad", "not json")  # PostgreSQL refuses the jsonb cast: nothing written
    assert list(c.keys()) == ["k"]


def test_values_with_nul_and_unicode(db: Any) -> None:
    c = db.collection("c")
    docs = {"n": {"s": "a\x00b", "t": ["\x00"]}, "u": "é日本😀", "e": "", "x": {"\x00": 1}}
    c.put_many(docs)
    assert dict(c.items()) == docs
    assert list(c.find('$[?(@.s == "a")]')) == []
    assert [k for k, _ in c.find("$[?(@.s)]")] == ["n"]


def test_non_json_serializers_store_bytes(db: Any) -> None:
    class Upper(kvlite.Serializer):
        name = "upper-text-pg-test"

        def dumps(self, value: Any) -> str:
            return str(value).upper()

        def loads(self, data: Any) -> Any:
            assert isinstance(data, str)
            return data

    kvlite.register_serializer(Upper(), replace=True)
    text = db.collection("t", serializer="upper-text-pg-test")
    text.put("k", "abc\x00é")
    assert text.get("k") == "ABC\x00É"
    pick = db.collection("p", serializer="pickle")
    value = (1, {2, 3}, b"\x00", frozenset({"a"}))
    pick.put(b"k", value)
    assert pick.get(b"k") == value
    assert list(pick.find("$[*]")) == [(b"k", value)]
    with pytest.raises(NotSupported):
        pick.create_index("$.a")


# -- TTL (fake clock, never sleeps) ---------------------------------------------------------------


def test_ttl_with_a_fake_clock(db: Any, clock: Clock) -> None:
    c = db.collection("c")
    c.put("short", 1, ttl=10)
    c.put("td", 2, ttl=datetime.timedelta(minutes=1))
    c.put("forever", 3)
    assert c.ttl("short") == 10 and c.ttl("td") == 60 and c.ttl("forever") is None
    clock.advance(4)
    assert c.ttl("short") == 6 and c.ttl_many(["short", "nope"]) == [6, None]
    clock.advance(6)  # exactly at expiry: gone, as in SQLite (expires_at > now is live)
    assert c.get("short") is None and "short" not in c and c.ttl("short") is None
    assert len(c) == 2 and list(c.keys()) == ["td", "forever"]
    assert c.stats()["expired_pending"] == 1
    assert c.delete("short") is False
    c.put("x", 1, ttl=1)
    clock.advance(1)
    assert c.purge_expired() == 1 and c.stats()["expired_pending"] == 0


def test_put_over_an_expired_key_counts_as_new(db: Any, clock: Clock) -> None:
    c = db.collection("c")
    c.put(1, "a", ttl=5)
    c.put("b", "b")
    c.put(1.0, "live update", ttl=5)  # live: keeps the key 1 and its place
    assert typed(c.items()) == typed([(1, "live update"), ("b", "b")])
    clock.advance(5)
    c.put(True, "new")  # over the expired row: the new key form, at the end
    assert typed(c.items()) == typed([("b", "b"), (True, "new")])
    assert c.ttl(1) is None
    clock.advance(100)
    assert c.setdefault(True, "kept") == "new"
    assert c.pop(1) == "new"


def test_setdefault_revives_an_expired_key(db: Any, clock: Clock) -> None:
    c = db.collection("c")
    c.put("k", "old", ttl=1)
    c.put("z", 0)
    clock.advance(1)
    assert c.setdefault("k", "fresh", ttl=3) == "fresh"
    assert list(c.items()) == [("z", 0), ("k", "fresh")] and c.ttl("k") == 3


def test_huge_ttl_is_capped_and_stays_finite(db: Any, clock: Clock, schema_url: str) -> None:
    c = db.collection("c")
    c.put("k", 1, ttl=1e300)  # after timestamptz's last year (294276): capped to the year ~293,500
    assert c.ttl("k") == pytest.approx(pg.text.MAX_EPOCH - clock.now, abs=1e-3)
    assert math.isfinite(c.ttl("k")) and c.ttl_many(["k"]) == [c.ttl("k")]
    c.put("k2", 2, ttl=c.ttl("k"))  # a TTL read back is a TTL kvlite accepts (kvlite.copy does this)
    clock.advance(1e12)
    assert c.get("k") == 1 and c.get("k2") == 2
    with psycopg.connect(schema_url, autocommit=True) as conn:  # what older versions stored: infinity
        conn.execute(f"UPDATE {c._table.sql_name} SET expires_at = 'infinity' WHERE key_canon = 's:k'")
    assert c.ttl("k") == pytest.approx(pg.text.MAX_EPOCH - clock.now, abs=1e-3)


def test_ttl_microseconds(db: Any, clock: Clock) -> None:
    c = db.collection("c")
    c.put("k", 1, ttl=0.25)
    assert c.ttl("k") == pytest.approx(0.25, abs=1e-6)
    clock.advance(0.249999)
    assert "k" in c
    clock.advance(0.000001)
    assert "k" not in c


def test_store_purge_and_stats(db: Any, clock: Clock) -> None:
    a, b = db.collection("a"), db.collection("b", serializer="pickle")
    a.put("x", 1, ttl=1)
    b.put("y", 2, ttl=1)
    b.put("z", "zz")
    clock.advance(2)
    stats = db.stats()
    assert stats["totals"]["rows"] == 1 and stats["totals"]["expired_pending"] == 2
    assert db.purge_expired() == 2
    assert db.stats()["totals"]["expired_pending"] == 0


# -- differential: random operations against the SQLite store -----------------------------------

KEYS = st.sampled_from(["a", "b", "", "\x00", "\\0", b"a", b"\x00", 0, 1, 1.0, True, False, -0.0, 2.5,
                        2**63 - 1, math.inf])
VALUES = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False,
                                                                                  allow_infinity=False)
                      | st.text(max_size=3), lambda inner: st.lists(inner, max_size=2)
                      | st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2), max_leaves=4)
TTLS = st.sampled_from([None, None, 1, 2.5, 5])

OPERATIONS = st.one_of(
    st.tuples(st.just("put"), KEYS, VALUES, TTLS),
    st.tuples(st.just("put"), KEYS, VALUES, TTLS),
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("pop"), KEYS, st.sampled_from([None, "dflt"])),
    st.tuples(st.just("popitem")),
    st.tuples(st.just("setdefault"), KEYS, VALUES, TTLS),
    st.tuples(st.just("put_many"), st.lists(st.tuples(KEYS, VALUES), max_size=4), TTLS),
    st.tuples(st.just("delete_many"), st.lists(KEYS, max_size=4)),
    st.tuples(st.just("get_many"), st.lists(KEYS, max_size=4)),
    st.tuples(st.just("ttl"), KEYS),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 1, 2.5, 10])),
    st.tuples(st.just("purge")),
    st.tuples(st.just("clear")),
)


def _apply(coll: Any, op: tuple[Any, ...], clock: Clock) -> Any:
    name = op[0]
    try:
        if name == "put":
            return coll.put(op[1], op[2], ttl=op[3])
        if name == "get":
            return coll.get(op[1], "missing")
        if name == "delete":
            return coll.delete(op[1])
        if name == "pop":
            return coll.pop(op[1]) if op[2] is None else coll.pop(op[1], op[2])
        if name == "popitem":
            return coll.popitem()
        if name == "setdefault":
            return coll.setdefault(op[1], op[2], ttl=op[3])
        if name == "put_many":
            return coll.put_many(op[1], ttl=op[2])
        if name == "delete_many":
            return coll.delete_many(op[1])
        if name == "get_many":
            return coll.get_many(op[1])
        if name == "ttl":
            found = coll.ttl(op[1])
            return None if found is None else round(found, 5)
        if name == "purge":
            return coll.purge_expired()
        if name == "clear":
            return coll.clear()
        raise AssertionError(name)
    except KeyError as exc:
        return ("KeyError", type(exc.args[0]).__name__ if exc.args else None)


@pytest.fixture(params=["json", "pickle"])
def pair(request: pytest.FixtureRequest, db: Any, clock: Clock) -> Iterator[tuple[Any, Any]]:
    """A PostgreSQL collection and an SQLite one, same serializer, same clock."""
    sqlite = kvlite.open(":memory:", clock=clock)
    yield db.collection("diff", serializer=request.param), sqlite.collection("diff", serializer=request.param)
    sqlite.close()


@SETTINGS
@given(ops=st.lists(OPERATIONS, max_size=25))
def test_differential_against_sqlite(pair: tuple[Any, Any], clock: Clock, ops: list[Any]) -> None:
    pgc, ref = pair
    pgc.clear()
    ref.clear()
    for op in ops:
        if op[0] == "advance":
            clock.advance(op[1])
            continue
        expected = _apply(ref, op, clock)
        got = _apply(pgc, op, clock)
        assert strict(got) == strict(expected), op
        assert typed(pgc.items()) == typed(ref.items()), op
    assert typed(pgc.keys(reverse=True)) == typed(ref.keys(reverse=True))
    assert len(pgc) == len(ref)


def test_iteration_spans_pages(db: Any) -> None:
    c = db.collection("c")
    n = pg.table.PAGE * 2 + 7
    c.put_many((i, i) for i in range(n))
    assert list(c.keys()) == list(range(n))
    assert list(c.keys(reverse=True)) == list(range(n - 1, -1, -1))
    assert c.get_many([5, n + 1, 0]) == [5, None, 0]


# -- atomicity ------------------------------------------------------------------------------------


class _RefuseMarked(kvlite.Serializer):
    """JSON, except that the value ``"poison"`` becomes text PostgreSQL refuses as jsonb."""

    name = "json-poison-pg-test"
    json = True

    def dumps(self, value: Any) -> str:
        return "{oops" if value == "poison" else kvlite.serializers.get("json").dumps(value)

    def loads(self, data: Any) -> Any:
        return kvlite.serializers.get("json").loads(data)


def test_put_many_is_all_or_nothing_in_postgres(db: Any) -> None:
    kvlite.register_serializer(_RefuseMarked(), replace=True)
    c = db.collection("c", serializer="json-poison-pg-test")
    c.put("a", "before")
    with pytest.raises(SerializationError):
        c.put_many([("a", "changed"), ("b", 1), ("c", "poison"), ("d", 2)])
    assert list(c.items()) == [("a", "before")]
    with pytest.raises(SerializationError):
        c.setdefault("e", "poison")
    assert list(c.items()) == [("a", "before")]


def test_a_block_that_goes_on_after_postgresql_aborted_it_is_transaction_lost(db: Any) -> None:
    """PostgreSQL aborts a transaction at the first error in it: a block whose code caught
    that error gets TransactionLost from its next call, and nothing of it is committed."""
    kvlite.register_serializer(_RefuseMarked(), replace=True)
    c = db.collection("c", serializer="json-poison-pg-test")
    c.put("a", "before")
    with pytest.raises(TransactionLost):
        with db.transaction():
            c.put("a", "inside")
            with pytest.raises(SerializationError):
                c.put("b", "poison")
            c.put("c", "after")
    assert list(c.items()) == [("a", "before")]


class _FailsOnBad(kvlite.Serializer):
    """Text values; the stored text ``"bad"`` cannot be decoded."""

    name = "fails-on-bad-pg-test"

    def dumps(self, value: Any) -> str:
        return str(value)

    def loads(self, data: Any) -> Any:
        if data == "bad":
            raise ValueError("cannot decode 'bad'")
        return data


def test_pop_and_popitem_keep_a_value_they_cannot_decode(db: Any) -> None:
    """pop, popitem and setdefault decode before their transaction commits: a value the serializer
    refuses raises SerializationError and stays stored (also inside a block, which goes on)."""
    kvlite.register_serializer(_FailsOnBad(), replace=True)
    c = db.collection("c", serializer=_FailsOnBad.name)
    c.put("k", "bad")
    for call in (lambda: c.pop("k"), lambda: c.pop("k", None), c.popitem, lambda: c.setdefault("k", "x")):
        with pytest.raises(SerializationError):
            call()
    assert list(c.keys()) == ["k"]
    with db.transaction():
        with pytest.raises(SerializationError):
            c.pop("k")
        c.put("after", "ok")
    assert list(c.keys()) == ["k", "after"]


def test_str_keys_with_a_lone_surrogate_are_invalid_everywhere(db: Any) -> None:
    c = db.collection("c")
    for call in (lambda: c.get("\ud800"), lambda: c.put("\ud800", 1), lambda: c.ttl("\ud800"),
                 lambda: c.get_many(["\ud800"]), lambda: c.delete("\ud800"), lambda: c.setdefault("\ud800", 1)):
        with pytest.raises(InvalidKey):
            call()
    assert "\ud800" not in c and len(c) == 0


def test_committed_is_false_only_inside_a_block(db: Any) -> None:
    """What the Store caches hangs on it: a collection made in a block that rolls back is never cached."""
    engine = db.engine
    assert engine.committed()
    with db.transaction():
        assert not engine.committed()
        with db.transaction():
            assert not engine.committed()
        seen_by_other_thread: list[bool] = []
        worker = threading.Thread(target=lambda: seen_by_other_thread.append(engine.committed()))
        worker.start()
        worker.join()
        assert seen_by_other_thread == [True]
    assert engine.committed()


def test_put_many_rejects_bad_input_before_writing(db: Any) -> None:
    c = db.collection("c")
    with pytest.raises(SerializationError):
        c.put_many([("a", 1), ("b", {1, 2})])
    with pytest.raises(InvalidKey):
        c.put_many([("a", 1), ((1,), 2)])
    assert len(c) == 0


# -- transactions ---------------------------------------------------------------------------------


def test_transaction_commit_and_rollback(db: Any) -> None:
    a, b = db.collection("a"), db.collection("b")
    with db.transaction():
        a.put("x", 1)
        b.put("y", 2)
    assert a.get("x") == 1 and b.get("y") == 2
    with pytest.raises(ZeroDivisionError):
        with db.transaction():
            a.put("x", 100)
            b.delete("y")
            db.collection("made-inside").put("z", 1)
            1 / 0
    assert a.get("x") == 1 and b.get("y") == 2
    assert db.collections() == ["a", "b"]
    assert db.collection("made-inside").get("z") is None  # made again, empty


def test_nested_transaction_is_a_savepoint(db: Any) -> None:
    c = db.collection("c")
    with db.transaction():
        c.put("outer", 1)
        with pytest.raises(ValueError):
            with db.transaction():
                c.put("inner", 2)
                raise ValueError
        c.put("after", 3)
    assert list(c.keys()) == ["outer", "after"]


def test_savepoint_rollback_undoes_collection_changes(db: Any, open_pg: Callable[..., Any]) -> None:
    """The reviewer's case: a nested block creates "new" and drops "keep", then raises; the outer
    block commits.  The clean-up runs at the savepoint, not only when the outer block ends."""
    old = db.collection("keep")
    old.put("k", 1)
    with db.transaction():
        with pytest.raises(ValueError):
            with db.transaction():
                made = db.collection("new")
                made.put("a", 1)
                db.drop_collection("keep")
                with pytest.raises(CollectionDropped, match="dropped"):
                    old.get("k")
                raise ValueError
        old.put("k1", 1)  # usable again at once, inside the outer block
        with pytest.raises(CollectionDropped, match="dropped"):
            made.put("x", 1)
        with db.transaction():  # a savepoint that commits: its changes stay with the outer block
            db.collection("kept-inner").put("i", 1)
            db.drop_collection("keep")
    assert db.collections() == ["kept-inner"]
    assert db.collection("kept-inner").get("i") == 1
    with pytest.raises(CollectionDropped, match="dropped"):
        old.put("k2", 2)
    db.collection("new").put("b", 2)
    assert list(db.collection("new").items()) == [("b", 2)]
    assert list(open_pg().collection("new").items()) == [("b", 2)]


def test_outer_rollback_undoes_what_committed_savepoints_changed(db: Any) -> None:
    old = db.collection("keep")
    old.put("k", 1)
    with pytest.raises(ValueError):
        with db.transaction():
            with db.transaction():
                inner = db.collection("inner")
                inner.put("a", 1)
                db.drop_collection("keep")
            raise ValueError
    assert db.collections() == ["keep"]
    old.put("k2", 2)
    assert list(db.collection("keep").items()) == [("k", 1), ("k2", 2)]
    with pytest.raises(KvliteError):
        inner.put("b", 2)


def test_transaction_is_invisible_to_others_until_commit(db: Any, open_pg: Callable[..., Any]) -> None:
    c = db.collection("c")
    other = open_pg().collection("c")
    seen: dict[str, Any] = {}
    with db.transaction():
        c.put("k", "uncommitted")
        assert c.get("k") == "uncommitted"  # this thread's calls use the block's connection
        worker = threading.Thread(target=lambda: seen.update(thread=c.get("k"), store=other.get("k")))
        worker.start()
        worker.join()
    assert seen == {"thread": None, "store": None}
    assert other.get("k") == "uncommitted"


def test_transactions_do_not_lose_updates(open_pg: Callable[..., Any]) -> None:
    stores = [open_pg() for _ in range(3)]
    stores[0].collection("n").put("count", 0)
    per_thread, threads_per_store = 15, 2

    def work(store: Any) -> None:
        coll = store.collection("n")
        for _ in range(per_thread):
            with store.transaction():
                coll.put("count", coll.get("count") + 1)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores for _ in range(threads_per_store)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[0].collection("n").get("count") == per_thread * len(threads)


def test_a_single_call_waits_for_a_block_that_read_the_row(db: Any, open_pg: Callable[..., Any]) -> None:
    """The rows a block reads are locked (FOR SHARE): another client's write of one waits for the
    block, like a write on SQLite waits for BEGIN IMMEDIATE; here it times out (StoreLocked)."""
    c = db.collection("c")
    c.put("k", 1)
    other = open_pg(timeout=0.3).collection("c")
    with db.transaction():
        value = c.get("k")
        with pytest.raises(StoreLocked):
            other.put("k", 50)
        with pytest.raises(StoreLocked):
            other.delete("k")
        c.put("k", value + 1)
    assert c.get("k") == 2 and other.get("k") == 2


def test_a_concurrent_delete_is_not_lost(db: Any, open_pg: Callable[..., Any]) -> None:
    """The reviewer's case: get in a block, another client deletes, the block puts value + 1."""
    c = db.collection("c")
    c.put("n", 0)
    other = open_pg().collection("c")
    started, done = threading.Event(), threading.Event()
    result: list[Any] = []

    def delete() -> None:
        started.set()
        result.append(other.delete("n"))
        done.set()

    with db.transaction():
        value = c.get("n")
        thread = threading.Thread(target=delete)
        thread.start()
        assert started.wait(10)
        assert not done.wait(0.3)  # the delete waits for the block
        c.put("n", value + 1)
        c.put("m", "x")
    thread.join(10)
    assert result == [True]  # it ran after the block: it deleted the block's n = 1
    assert "n" not in c and c.get("m") == "x"


def test_a_change_the_block_cannot_lock_in_time_fails_the_block(db: Any, open_pg: Callable[..., Any]) -> None:
    """A row changed by another client after the block's snapshot was taken (before the block
    read it) cannot be locked: the block is refused with StoreLocked ('retry'), nothing is lost."""
    c = db.collection("c")
    c.put_many({"k": 1, "j": 1})
    other = open_pg().collection("c")
    with pytest.raises(StoreLocked, match="retry"):
        with db.transaction():
            c.get("j")  # the block's snapshot starts here
            other.put("k", 50)  # another client, outside any block, commits meanwhile
            value = c.get("k")  # a newer version than the snapshot's: refused
            c.put("k", value + 1)
    assert c.get("k") == 50 and c.get("j") == 1
    with pytest.raises(StoreLocked, match="retry"):
        with db.transaction():
            assert c.get("new") is None
            other.put("new", 1)  # made after the block saw it missing
            c.put("new", 2)
    assert c.get("new") == 1


@pytest.mark.parametrize("read", ["get", "in", "ttl", "get_many", "items", "keys", "len", "find"])
def test_every_read_in_a_block_locks_what_it_read(db: Any, open_pg: Callable[..., Any], read: str) -> None:
    c = db.collection("c")
    c.put("k", {"v": 1})
    other = open_pg(timeout=0.2).collection("c")
    reads: dict[str, Callable[[], Any]] = {
        "get": lambda: c.get("k"), "in": lambda: "k" in c, "ttl": lambda: c.ttl("k"),
        "get_many": lambda: c.get_many(["k", "x"]), "items": lambda: list(c.items()),
        "keys": lambda: list(c.keys()), "len": lambda: len(c),
        "find": lambda: list(c.find("$[?(@.v == 1)]"))}
    with db.transaction():
        reads[read]()
        with pytest.raises(StoreLocked):
            other.delete("k")
    assert other.delete("k") is True  # after the block: free again


def test_single_calls_outside_blocks_do_not_lock_rows(db: Any, open_pg: Callable[..., Any]) -> None:
    c = db.collection("c")
    c.put("k", 1)
    other = open_pg(timeout=0.2).collection("c")
    assert c.get("k") == 1 and list(c.items()) == [("k", 1)] and len(c) == 1
    other.put("k", 2)  # nothing held a lock
    assert c.get("k") == 2


def test_transaction_waits_for_another_block(db: Any, open_pg: Callable[..., Any]) -> None:
    c = db.collection("c")
    quick = open_pg(timeout=0.2)
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with db.transaction():
            c.put("held", 1)
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(10)
        with pytest.raises(StoreLocked):
            with quick.transaction():
                pass
    finally:
        release.set()
        holder.join()
    with quick.transaction():
        quick.collection("c").put("after", 2)
    assert list(c.keys()) == ["held", "after"]


# -- threads --------------------------------------------------------------------------------------


def _run_threads(n: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_many_threads_share_one_store(db: Any) -> None:
    c = db.collection("c")

    def work(i: int) -> None:
        for j in range(40):
            c.put((i, j).__repr__(), j)
            assert c.get((i, j).__repr__()) == j
        c.put_many({f"{i}-{j}": j for j in range(20)})

    _run_threads(12, work)  # more threads than pool connections (10)
    assert len(c) == 12 * 60


def test_setdefault_is_atomic_across_threads(db: Any) -> None:
    c = db.collection("c")
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        results.append(c.setdefault("k", i))

    _run_threads(8, work)
    assert len(set(results)) == 1 and c.get("k") == results[0]


def test_popitem_pops_each_entry_once_across_threads(db: Any) -> None:
    c = db.collection("c")
    c.put_many((i, i) for i in range(200))
    popped: list[Any] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        while True:
            try:
                item = c.popitem()
            except KeyError:
                return
            with lock:
                popped.append(item[0])

    _run_threads(6, work)
    assert sorted(popped) == list(range(200)) and len(c) == 0


# -- the dict view: CPython's mapping protocol tests --------------------------------------------

_view_names = itertools.count()


class PostgresDictView(DictView):
    """Each instance is a new collection in the store the test class opened."""

    store: ClassVar[Any] = None
    serializer: ClassVar[str] = "json"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._collection = type(self).store.collection(f"view-{next(_view_names)}", serializer=self.serializer)
        if args or kwargs:
            self.update(*args, **kwargs)


@pytest.fixture(scope="class")
def mapping_store(request: pytest.FixtureRequest, postgres_url: str) -> Iterator[None]:  # noqa: F811
    store = kvlite.open(new_schema_url(postgres_url, "map"))
    request.cls.type2test.store = store
    yield
    request.cls.type2test.store = None
    store.close()


@pytest.mark.usefixtures("mapping_store")
class TestPostgresDictViewMapping(DocumentedSetdefault, mapping_tests.TestMappingProtocol):
    """The protocol over JSON views in PostgreSQL (tuples come back as lists, as in SQLite).

    (Pickle collections share every code path but the value column; the
    differential test above runs them against SQLite.)
    """

    type2test = PostgresDictView

    def _reference(self) -> dict[str, Any]:
        return {"1": "2", "key1": "value1", "key2": [1, 2, 3]}


def test_dict_view_equals_dict(db: Any) -> None:
    d = db.dict("d")
    ref: dict[Any, Any] = {}
    for key, value in [(1, "a"), ("x", [1]), (True, "b"), (b"k", None), (2.5, {"z": 1})]:
        d[key] = value
        ref[key] = value
    del d["x"], ref["x"]
    d["x"] = ref["x"] = 0
    assert d == ref and typed(d.items()) == typed(ref.items())
    assert d.popitem() == ref.popitem()
    assert list(reversed(d)) == list(reversed(ref))


# -- queries: push-down must answer exactly like Python evaluation ------------------------------


INDEXED = ("$.a", "$.age", "$.b", "$.a.b")


@pytest.fixture
def query_pair(db: Any, clock: Clock) -> Iterator[Callable[..., tuple[Any, Any]]]:
    """``make(entries, indexed)``: a PostgreSQL collection (with indexes on :data:`INDEXED` or none)
    and a memory:// one, both emptied and then filled with the same entries."""
    memory = kvlite.open("memory://", clock=clock)

    def make(entries: list[Any], indexed: bool = False) -> tuple[Any, Any]:
        name = "indexed" if indexed else "plain"
        pgc, ref = db.collection(name), memory.collection(name)
        if indexed and not pgc.indexes():
            for path in INDEXED:
                pgc.create_index(path)
        pgc.clear()
        ref.clear()
        for key, doc, life in entries:
            ttl = {"live": None, "ttl": 1000.0, "expired": 5.0}[life]
            pgc.put(key, doc, ttl=ttl)
            ref.put(key, doc, ttl=ttl)
        clock.advance(10.0)
        return pgc, ref

    yield make
    memory.close()


def _same_answer(pgc: Any, ref: Any, path: str, engine: str = "jsonpath") -> None:
    expected = [(strict(k), strict(v)) for k, v in ref.find(path, engine=engine)]
    got = [(strict(k), strict(v)) for k, v in pgc.find(path, engine=engine)]
    assert got == expected, path


@SETTINGS
@given(entries=ENTRIES, path=jsonpaths(), indexed=st.booleans())
def test_queries_match_python_evaluation(query_pair: Callable[..., tuple[Any, Any]], entries: list[Any],
                                         path: str, indexed: bool) -> None:
    pgc, ref = query_pair(entries, indexed)
    _same_answer(pgc, ref, path, "jsonpath-ng")  # the grammar draws jsonpath-ng's dialect


@SETTINGS
@given(entries=ENTRIES, filter_=filters())
def test_filters_match_python_evaluation(query_pair: Callable[..., tuple[Any, Any]], entries: list[Any],
                                         filter_: str) -> None:
    """Focused on pushed-down filters: every literal type and operator, with and without an index
    (jsonpath-ng's filters, as the grammar draws them)."""
    pgc, ref = query_pair(entries)
    _same_answer(pgc, ref, "$" + filter_, "jsonpath-ng")
    indexed, ref = query_pair(entries, True)
    _same_answer(indexed, ref, "$" + filter_, "jsonpath-ng")


TRICKY_NUMBERS = [0, -0.0, 1, 1.0, True, False, 0.1, 0.30000000000000004, 2**53, 2**53 + 1, 2.0**60,
                  2**63 - 1, -(2**63), 1e23, 2**64 - 1, 1e300, -1e300, 5e-324, 1e-320,
                  1.7976931348623157e308, 29.999999999999996, 30, 30.5, 31, "30", " 31 ", "٣١", "3_1", None,
                  [31], {"x": 31}, "", "B", "a", "é", "\x00"]
TRICKY_LITERALS = ["30", "31", "0", "1", "-1", "0.1", "30.0", "30.5", "100000000000000000000000.0",
                   "99999999999999991611392", "9007199254740993", "0.0", "1.0", "true", "false", '"30"',
                   '"B"', '"a"', '""', "9223372036854775807", "-9223372036854775808",
                   str(int(1.7976931348623157e308)) + ".0"]  # the largest float, as jsonpath-ng's FLOAT token


@pytest.mark.parametrize("index", [False, True], ids=["scan", "index"])
def test_tricky_numbers_and_literals(query_pair: Callable[..., tuple[Any, Any]], index: bool) -> None:
    entries = [(f"k{i}", {"a": value}, "live") for i, value in enumerate(TRICKY_NUMBERS)]
    entries.append(("none", {"b": 1}, "live"))
    pgc, ref = query_pair(entries, index)
    for literal in TRICKY_LITERALS:
        for op in ("==", "!=", "<", "<=", ">", ">="):
            _same_answer(pgc, ref, f"$[?(@.a {op} {literal})]")
            _same_answer(pgc, ref, f"$[?(@.a {op} {literal})]", "jsonpath-ng")
    for word in ["@.a", "@.b", "@.a.x"]:
        _same_answer(pgc, ref, f"$[?({word})]")


def test_field_names_that_need_quoting(query_pair: Callable[..., tuple[Any, Any]]) -> None:
    odd = ['we"ird', "back\\slash", "new\nline", "é", "a b", "$x", "\x01", "@"]
    entries = [(f"k{i}", {name: i, "n": {name: i}}, "live") for i, name in enumerate(odd)]
    pgc, ref = query_pair(entries)
    for name in odd:
        quoted = "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"
        for path in (f"$[?(@[{quoted}] > 1)]", f"$[?(@.n[{quoted}] >= 0)]", f"$[?(@[{quoted}])]"):
            try:
                expected = [(strict(k), strict(v)) for k, v in ref.find(path)]
            except kvlite.errors.QuerySyntaxError:
                continue
            assert [(strict(k), strict(v)) for k, v in pgc.find(path)] == expected, path


def test_find_options_and_models(db: Any) -> None:
    c = db.collection("c")
    c.put_many((f"u{i}", {"age": i, "name": f"n{i}"}) for i in range(50))
    assert [k for k, _ in c.find("$[?(@.age >= 10)]", offset=5, limit=3)] == ["u15", "u16", "u17"]
    assert list(c.select("$[?(@.age == 3)].name")) == ["n3"]
    assert c.count("$[?(@.age < 5)]") == 5
    assert [k for k, _ in c.find("$[?(@.age > 40)]", order_by="-$.age", limit=2)] == ["u49", "u48"]
    assert list(c.find("$[?(@.age > 40)]", limit=0)) == []
    with pytest.raises(ValueError):
        c.find("$[*]", limit=-1)

    @dataclasses.dataclass
    class User:
        name: str
        age: int

    typed_users = db.collection("users", model=User)
    typed_users.put("a", User("Ada", 36))
    typed_users.put("b", User("Bob", 20))
    assert list(typed_users.find("$[?(@.age > 30)]")) == [("a", User("Ada", 36))]
    assert list(typed_users.find("$[?(@.age > 30)].name")) == [("a", "Ada")]
    with pytest.raises(kvlite.errors.QuerySyntaxError):
        c.find("$[?(@.age >")


def test_explain_shows_the_pushdown(db: Any) -> None:
    c = db.collection("c")
    c.put_many((f"u{i}", {"age": i % 97, "name": f"n{i}"}) for i in range(3000))
    # RFC 9535's push-down (the default language).
    plain = c.explain("$[?@.age == 42 && @.name]")
    step = plain["steps"][0]
    assert step["kind"] == "scan" and step["pushdown"]
    # Literals are parameters: 42 is nowhere in the SQL text outside quoted identifiers (the
    # test's random schema name, as in "t_819b54240487", may itself contain "42").
    unquoted = re.sub(r'"[^"]*"', '""', step["sql"])
    assert "42" not in unquoted
    assert plain["streaming"] is True
    # jsonpath-ng's dialect is not pushed down: its filters run in Python on every document.
    ng = "jsonpath-ng"
    ng_plan = c.explain("$[?(@.age == 42 && @.name)]", engine=ng)
    assert ng_plan["streaming"] is True and all(s["pushdown"] == [] for s in ng_plan["steps"])
    assert c.create_index("$.age") == "$.age" and c.indexes() == ["$.age"]
    assert c.create_index("$.age") == "$.age"  # idempotent
    with psycopg.connect(db.engine.pool.conninfo, autocommit=True) as conn:
        conn.execute(f"ANALYZE {c._table.sql_name}")
    indexed = c.explain("$[?@.age == 42]")["steps"][0]
    assert indexed["pushdown"]
    assert any(c._table.index_name("$.age") in line for line in indexed["query_plan"]), indexed["query_plan"]
    assert c.explain("$[?(@.age == 42)]", engine=ng)["steps"][0]["pushdown"] == []
    assert [k for k, _ in c.find("$[?(@.age == 42)]", engine=ng)] == [f"u{i}" for i in range(3000) if i % 97 == 42]
    assert [k for k, _ in c.find("$[?@.age == 42 && @.name]")] == [f"u{i}" for i in range(3000) if i % 97 == 42]
    assert c.drop_index("$.age") is True and c.indexes() == [] and c.drop_index("$.age") is False
    with pytest.raises(NotSupported):
        c.create_index("$.a[0]")
    python_only = c.explain("$..name", engine=ng)
    assert all(s["pushdown"] == [] for s in python_only["steps"])


NUMBERS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**63), 2**64 - 1),
                    st.integers(-100, 100), st.sampled_from([0.0, -0.0, 5e-324, 1e-320, 2.0**53, 1e23, 0.1]))
LITERAL_VALUES = st.one_of(NUMBERS, st.integers(-(2**70), 2**70), st.booleans(),
                           st.text(max_size=3), st.sampled_from(NUMERIC_STRINGS))
STORED_VALUES = st.one_of(NUMBERS, st.booleans(), st.none(), st.text(max_size=3), st.sampled_from(NUMERIC_STRINGS),
                          st.lists(st.integers(-3, 3), max_size=2), st.just({"x": 1}))


def test_strings_compare_by_code_point(query_pair: Callable[..., tuple[Any, Any]]) -> None:
    names = ["a", "B", "é", "z", "Z", "日本", "😀", "\uffff", "", "a\x00"]
    pgc, ref = query_pair([(n, {"s": n}, "live") for n in names])
    for literal in ['"B"', '"a"', '"é"', '"\uffff"', '"z"']:
        for op in ("<", "<=", ">", ">=", "=="):
            _same_answer(pgc, ref, f"$[?(@.s {op} {literal})]")


# -- the fixture's own rule: a missing server skips locally and fails under CI ----------------


def test_missing_server_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        helpers_servers.unavailable("no server")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        helpers_servers.unavailable("no server")


def test_numeric_strings_stay_strings(db: Any) -> None:
    c = db.collection("c")
    for i, text in enumerate(NUMERIC_STRINGS):
        c.put(i, {"a": text, "f": FIELDS[i % len(FIELDS)]})
    assert [v["a"] for v in c.values()] == list(NUMERIC_STRINGS)


# -- the examples of docs/backends/postgres.md run against the test server ----------------------

DOCS_URL = "postgresql://app:secret@127.0.0.1:5432/app"


def test_docs_examples_run(schema_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import types
    from pathlib import Path

    from helpers_docs import code_blocks

    page = Path(__file__).resolve().parent.parent / "docs" / "backends" / "postgres.md"
    blocks = [b for b in code_blocks(page.read_text(encoding="utf-8")) if b.runs]
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace = types.ModuleType("postgres_docs_examples").__dict__
    for block in blocks:
        assert DOCS_URL in block.code, f"line {block.line}: examples open {DOCS_URL}"
        code = compile(block.code.replace(DOCS_URL, schema_url), f"{page.name}:{block.line}", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation
