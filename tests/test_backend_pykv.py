"""kvlite over py-key-value stores (``kvlite.open(store)``, kvlite/backends/pykv.py), for real.

One shared class, :class:`PyKVStoreChecks`, holds the checks every store supports (as
py-key-value's own tests do: a base class every store's test class subclasses); two mixins add
what depends on whether the store can list its keys: :class:`Enumerating` (the dict view against
a ``dict`` model, queries against the same data in a ``memory://`` store, iteration, ``popitem``,
``clear``, and tests reused from ``tests/conformance/``) and :class:`NotEnumerating`
(``NotSupported`` exactly where ``docs/backends/pykv.md`` says).  One class per store:

=================== ============================================================ ===========
class               store                                                        enumerates
=================== ============================================================ ===========
TestMemoryStore     ``MemoryStore()``                                            yes
TestRedisStore      ``RedisStore(url=...)`` on the session's Redis, db 9          yes
TestDiskStore       ``DiskStore(directory=tmp)``                                 no
TestMultiDiskStore  ``MultiDiskStore(base_directory=tmp)`` (a cache per collection) no
TestFileTreeStore   ``FileTreeStore(data_directory=tmp)``                        no
TestRocksDBStore    ``RocksDBStore(path=tmp)``                                   no
TestDuckDBStore     ``DuckDBStore(database_path=tmp)``                           no
TestMemcachedStore  ``MemcachedStore(host, port)`` on ``tests/server_memcached.py`` no
TestPostgreSQLStore ``PostgreSQLStore(url=..., table_name=<new>)``               no
=================== ============================================================ ===========

Isolation: a new store object (and folder) per test; Redis db 9 and the memcached server (used by
no other module) are flushed before each test; PostgreSQL gets a new table per test.  TTLs are
checked with short real sleeps (the store decides expiry on the real clock).  Under ``CI=true`` a
missing server fails (the plugins' rule); nothing here skips.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from conformance.protocol import KeyValueProtocol
from conformance.values import ValuesAndErrors
from conftest import Clock
from hypothesis import given, settings
from hypothesis import strategies as st

import kvlite
from kvlite.backends.base import MISSING
from kvlite.backends.pykv import BYTES, REGISTRY, TEXT, VALUE, PyKVEngine, key_of_text, key_text
from kvlite.errors import (
    CollectionDropped,
    InvalidCollectionName,
    InvalidKey,
    InvalidTTL,
    NotSupported,
    SerializationError,
    SerializerMismatch,
    StoreClosed,
)

# py-key-value warns that some of its stores' APIs may change; that is its notice, not a kvlite problem.
pytestmark = pytest.mark.filterwarnings("ignore:A configured store is unstable:UserWarning")

HYPOTHESIS = settings(max_examples=20, deadline=None, suppress_health_check=list(__import__("hypothesis").HealthCheck))

#: Documents for the query checks (keys of every type, nested members, missing members).
DOCS: list[tuple[Any, Any]] = [
    ("u1", {"name": "Ada", "age": 36, "email": "ada@x", "tags": ["a", "b"]}),
    ("u2", {"name": "Bob", "age": 25, "address": {"city": "Paris", "zip": "75001"}}),
    (3, {"name": "Cy", "age": 41, "tags": []}),
    (b"k4", {"name": "Di", "age": None}),
    (4.5, [1, {"age": 50}]),
    (True, "scalar"),
    ("u7", {"name": "Ed", "age": 30.5, "email": None}),
    ("é", {"name": "Zoë", "age": 7, "tags": ["c"], "address": {"city": "Kraków"}}),
]
QUERIES = ["$[?@.age > 30]", "$[?@.age >= 25 && @.age < 41]", "$[?@.email]", "$[?@.address.city == 'Kraków']",
           "$[?@.name != 'Ada']", "$[?length(@.tags) > 0]", "$[*]", "$[?@.age == null]", "$[?!@.age]"]


def _sorted(pairs: Any) -> list[tuple[str, bytes]]:
    """``(key, value)`` pairs in one order, key types told apart (``1`` is not ``True``), values as
    JSON with sorted members (py-key-value's stores keep members sorted, not in insertion order)."""
    return sorted((f"{type(k).__name__}:{k!r}", orjson.dumps(v, option=orjson.OPT_SORT_KEYS)) for k, v in pairs)


def _plain(db: kvlite.Store, call: Any) -> Any:
    """Run a py-key-value coroutine on the store object kvlite drives (a plain client of it)."""
    return db.engine.call(call)


class PyKVStoreChecks:
    """The checks every py-key-value store supports through kvlite.  A subclass makes its store
    (:meth:`make`) and states its capabilities (the table of ``docs/backends/pykv.md``)."""

    #: Whether the store lists keys (py-key-value's ``keys()``).
    enumerates: ClassVar[bool]
    #: Whether kvlite can empty / drop a collection (listing its keys, or destroy_collection).
    drops: ClassVar[bool]
    #: Keys the store cannot hold (a key kvlite accepts): InvalidKey, nothing written.
    unholdable: ClassVar[list[Any]] = []
    #: The text keys and text values of the Hypothesis checks (what the store can hold).
    text_keys: ClassVar[Any] = st.text(max_size=12)
    text_values: ClassVar[Any] = st.text(max_size=5)

    def make(self, request: pytest.FixtureRequest, folder: Path) -> Any:
        raise NotImplementedError

    @pytest.fixture
    def pykv(self, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
        return self.make(request, tmp_path)

    #: Whether kvlite.close() leaves the store object usable (an in-process or file store, run inline).
    stays_open: ClassVar[bool] = True

    def reopen(self, pykv: Any) -> Any:
        """A store object on the same data after kvlite closed ``pykv``: the same object when it
        stays open, else a new client of the same server, table or namespace."""
        return pykv

    @pytest.fixture
    def db(self, pykv: Any) -> Iterator[kvlite.Store]:
        store = kvlite.open(pykv)
        yield store
        store.close()  # closes a store object bound to kvlite's loop (a server client); not the others

    @pytest.fixture
    def store(self, db: kvlite.Store) -> kvlite.Store:
        """The name the reused conformance tests take."""
        return db

    # -- opening ---------------------------------------------------------------------------------

    def test_open_names_the_store_and_states_capabilities(self, db: kvlite.Store, pykv: Any) -> None:
        name = type(pykv).__name__
        assert db.url == db.path == f"pykv:{name}" and isinstance(db.engine, PyKVEngine)
        assert db.supports_transactions is False
        assert db.engine.enumerates is self.enumerates
        with pytest.raises(NotSupported, match="clock"):
            kvlite.open(pykv, clock=Clock())
        with pytest.raises(NotSupported, match="durability"):
            kvlite.open(pykv, durability="full")
        with pytest.raises(ValueError):
            kvlite.open(pykv, layout="per-collection")

    # -- the key-value protocol --------------------------------------------------------------------

    def test_get_put_delete_ttl_and_many(self, db: kvlite.Store) -> None:
        c = db.collection("kv")
        assert c.get("a") is None and c.get("a", 5) == 5 and "a" not in c
        c.put("a", {"x": [1, 2.5, None, True, "é"]})
        c.put("b", None)  # a stored None is a value, not a miss
        assert c.get("a") == {"x": [1, 2.5, None, True, "é"]} and "b" in c and c.get("b", "d") is None
        c.put("a", [1])
        assert c.get("a") == [1]
        assert c.delete("a") is True and c.delete("a") is False and c.delete("never") is False
        assert c.ttl("b") is None and c.ttl("missing") is None
        assert c.put_many({"m1": 1, "m2": {"two": 2}, 3: "three"}) == 3
        assert c.put_many([("f", 1), ("f", 2)]) == 2  # the last value wins
        assert c.get_many(["m2", "zz", "m1", 3, 3.0, "f"]) == [{"two": 2}, None, 1, "three", "three", 2]
        assert c.get_many(["zz"], default="-") == ["-"] and c.get_many([]) == []
        c.put("t", 0, ttl=30)
        ttls = c.ttl_many(["m1", "t", "zz"])
        assert ttls[0] is None and 28 < ttls[1] <= 30 and ttls[2] is None
        assert 28 < c.ttl("t") <= 30
        assert c.delete_many(["m1", "zz", "m1", 3.0]) == 2  # a duplicate counts once; 3.0 is the key 3
        assert c.get_many(["m1", 3]) == [None, None] and c.delete_many([]) == 0
        assert c.pop("m2") == {"two": 2} and c.pop("m2", "d") == "d"
        with pytest.raises(KeyError):
            c.pop("m2")
        assert c.setdefault("s", [1]) == [1] and c.setdefault("s", [2]) == [1]

    def test_equal_keys_are_one_key_and_keep_the_first_type(self, db: kvlite.Store) -> None:
        c = db.collection("numbers")
        c.put(True, "bool")
        c.put(1.0, "float")  # the key True keeps its type; the value is replaced
        assert c.get(1) == "float" and c.get(True) == "float"
        stored = {TEXT: '"float"'} if db.engine.text_documents else {VALUE: "float"}
        assert _plain(db, db.engine.store.get(key_text(True), collection="numbers")) == stored
        assert _plain(db, db.engine.store.get(key_text(1.0), collection="numbers")) is None
        c.put(0.0, "zero")
        assert c.get(-0.0) == c.get(0) == c.get(False) == "zero"
        c.put(2**64, "big")
        assert c.get(float(2**64)) == "big"
        assert c.delete(1) is True and c.get(True) is None and c.get(1.0) is None

    @HYPOTHESIS
    @given(data=st.data())
    def test_typed_keys_against_a_dict_model(self, db: kvlite.Store, data: st.DataObject) -> None:
        """Random get/put/delete/pop of keys of every type against a ``dict`` (Python's equality:
        ``1 == 1.0 == True`` is one key); on stores that enumerate, the keys with their types too."""
        keys = st.one_of(self.text_keys, st.binary(max_size=8), st.integers(-3, 3), st.integers(-2**63, 2**63 - 1),
                         st.floats(allow_nan=False, width=64), st.booleans(), st.sampled_from(["~", "~s:x", "~i:1"]))
        if True:
            c = db.collection(f"h{uuid.uuid4().hex[:8]}")
            model: dict[Any, Any] = {}
            for _ in range(data.draw(st.integers(1, 25))):
                op = data.draw(st.sampled_from(["put", "put", "delete", "get", "pop", "many"]))
                key = data.draw(keys)
                if op == "put":
                    value = data.draw(st.one_of(st.integers(-2**53, 2**53), self.text_values, st.none(),
                                                st.dictionaries(st.text(max_size=3), st.integers(-9, 9), max_size=2)))
                    c.put(key, value)
                    model[key] = value
                elif op == "delete":
                    assert c.delete(key) is (key in model)
                    model.pop(key, None)
                elif op == "pop":
                    assert c.pop(key, "absent") == model.pop(key, "absent")
                elif op == "many":
                    more = data.draw(st.lists(keys, max_size=4))
                    assert c.get_many([key, *more]) == [model.get(k) for k in [key, *more]]
                else:
                    assert c.get(key, "absent") == model.get(key, "absent") and (key in c) is (key in model)
            if self.enumerates:
                assert _sorted(c.items()) == _sorted(model.items())
                assert len(c) == len(model)

    # -- values: wrapped and unwrapped ----------------------------------------------------------------

    def test_documents_are_plain_dicts_to_a_py_key_value_client(self, db: kvlite.Store, pykv: Any) -> None:
        c = db.collection("docs")
        doc = {"name": "Ada", "tags": ["a"], "nested": {"x": 1.5, "n": None}}
        c.put("ada", doc, ttl=60)
        as_text = db.engine.text_documents  # DuckDBStore: the JSON text, wrapped (see its class)
        stored, remaining = _plain(db, pykv.ttl("ada", collection="docs"))
        assert stored == ({TEXT: orjson.dumps(doc).decode()} if as_text else doc) and 58 < remaining <= 60
        _plain(db, pykv.put("bob", {"name": "Bob", "n": [1]}, collection="docs"))  # written by a plain client
        assert c.get("bob") == {"name": "Bob", "n": [1]}
        for key, other in [("list", [1, {"a": None}]), ("str", "text"), ("int", 7), ("float", 2.5), ("none", None),
                           ("true", True), ("wrapper-like", {VALUE: 1}), ("text-like", {TEXT: "x"}),
                           ("two", {VALUE: 1, "other": 2}), ("empty", {})]:
            c.put(key, other)
            assert c.get(key) == other, key
            stored = _plain(db, pykv.get(key, collection="docs"))
            if as_text:
                assert stored == {TEXT: orjson.dumps(other).decode()}
            elif isinstance(other, dict) and not (len(other) == 1 and next(iter(other)) in (VALUE, TEXT, BYTES)):
                assert stored == other  # a dict is stored as itself
            else:
                assert stored == {VALUE: other}  # anything else (and a wrapper look-alike) is wrapped
        p = db.collection("pickled", serializer="pickle")
        p.put("set", {1, 2})
        assert p.get("set") == {1, 2}
        assert set(_plain(db, pykv.get("set", collection="pickled"))) == {BYTES}
        with pytest.raises(SerializerMismatch):
            db.collection("pickled")
        assert db.serializer_of("pickled") == "pickle" and db.serializer_of("docs") == "json"

    def test_keys_as_a_py_key_value_client_sees_them(self, db: kvlite.Store, pykv: Any) -> None:
        c = db.collection("keys")
        for key in ["plain", "~tilde", b"\x01\xff", 5, 2.5, True]:
            c.put(key, {"k": 1})
            stored = {TEXT: '{"k":1}'} if db.engine.text_documents else {"k": 1}
            assert _plain(db, pykv.get(key_text(key), collection="keys")) == stored
            assert key_of_text(key_text(key)) == key and type(key_of_text(key_text(key))) is type(key)
        assert key_text("plain") == "plain" and key_text("~tilde") == "~s:~tilde"
        assert key_of_text("~nonsense") is MISSING and key_of_text("~s:no-tilde") is MISSING

    # -- TTL, for real ----------------------------------------------------------------------------------

    def test_ttl_for_real(self, db: kvlite.Store) -> None:
        c = db.collection("ttl")
        c.put("short", {"v": 1}, ttl=0.6)
        c.put_many({"m1": 1, "m2": 2}, ttl=0.6)
        c.put("long", 2, ttl=300)
        c.put("never", 3)
        assert 0 < c.ttl("short") <= 0.6 and c.get("short") == {"v": 1} and "m1" in c
        assert db.collection("ttl").ttl_many(["m2", "never"])[1] is None
        time.sleep(0.8)
        assert c.get("short") is None and "short" not in c and c.ttl("short") is None
        assert c.get_many(["m1", "m2", "long", "never"]) == [None, None, 2, 3]
        assert c.ttl_many(["m1", "long"])[0] is None and 298 < c.ttl("long") <= 300
        assert c.delete("short") is False and c.pop("m1", "gone") == "gone"
        if self.enumerates:
            assert sorted(c.keys()) == ["long", "never"] and len(c) == 2
        c.put("short", 4)  # a write over an expired key: a new, live entry
        assert c.get("short") == 4 and c.ttl("short") is None

    # -- errors ------------------------------------------------------------------------------------------

    def test_bad_input_raises_typed_errors_and_changes_nothing(self, db: kvlite.Store) -> None:
        c = db.collection("bad")
        c.put_many({"a": 1, "b": {"x": 2}})
        calls = [(lambda: c.put(None, 1), InvalidKey), (lambda: c.put("\ud800", 1), InvalidKey),
                 (lambda: c.put(float("nan"), 1), InvalidKey), (lambda: c.get((1, 2)), InvalidKey),
                 (lambda: c.put("a", 2, ttl=-1), InvalidTTL), (lambda: c.put("a", 2, ttl=1e12), InvalidTTL),
                 (lambda: c.put_many({"a": 2}, ttl=1e12), InvalidTTL),
                 (lambda: c.put("a", object()), SerializationError), (lambda: c.put("a", {1, 2}), SerializationError),
                 (lambda: c.put("a", float("nan")), SerializationError),
                 (lambda: c.put_many([("a", 10), ("c", 3), ("d", object())]), SerializationError),
                 (lambda: c.put_many([("a", 10), ("c", 3), (None, 4)]), InvalidKey),
                 (lambda: c.incr("n"), NotSupported), (lambda: c.compare_and_set("a", 1, 2), NotSupported),
                 (lambda: c.patch("b", {"y": 1}), NotSupported)]
        for key in self.unholdable:  # keys kvlite takes but this store cannot hold
            calls += [(lambda key=key: c.put(key, 1), InvalidKey), (lambda key=key: c.get(key), InvalidKey),
                      (lambda key=key: c.put_many([("a", 10), ("c", 3), (key, 4)]), InvalidKey)]
        for call, error in calls:
            with pytest.raises(error):
                call()
            assert c.get_many(["a", "b", "c", "d"]) == [1, {"x": 2}, None, None], error
            assert c.ttl("a") is None
        with pytest.raises(NotSupported):
            with db.transaction():
                c.put("a", 5)
        with pytest.raises(InvalidCollectionName, match="registry"):
            db.collection(REGISTRY)
        assert c.get("a") == 1

    def test_store_errors_are_kvlite_errors(self, db: kvlite.Store) -> None:
        """An exception of the store itself (here: a py-key-value error raised inside the store's
        coroutine) reaches the caller as a kvlite error."""
        from key_value.aio.errors import InvalidTTLError, StoreConnectionError

        engine = db.engine

        async def failing(error: Exception) -> None:
            raise error

        with pytest.raises(InvalidTTL):
            engine.run(failing(InvalidTTLError(ttl=-1)))
        with pytest.raises(kvlite.errors.KvliteError, match="StoreConnectionError") as raised:
            engine.run(failing(StoreConnectionError("down")))
        assert isinstance(raised.value.__cause__, StoreConnectionError)
        with pytest.raises(kvlite.errors.KvliteError, match="KeyError"):
            engine.run(failing(KeyError("internal")))

    # -- the registry ---------------------------------------------------------------------------------

    def test_registry_collections_and_drop(self, db: kvlite.Store, pykv: Any) -> None:
        assert db.collections() == []
        for name in ("b-second", "a-first", "c-third"):
            db.collection(name).put("k", name)
        assert db.collections() == ["b-second", "a-first", "c-third"]  # oldest first
        old = db.collection("a-first")
        if not self.drops:
            with pytest.raises(NotSupported, match=type(pykv).__name__):
                db.drop_collection("a-first")
            assert db.collections() == ["b-second", "a-first", "c-third"] and old.get("k") == "a-first"
            return
        assert db.drop_collection("a-first") is True and db.drop_collection("a-first") is False
        with pytest.raises(CollectionDropped):
            old.get("k")
        assert db.collections() == ["b-second", "c-third"]
        again = db.collection("a-first")
        assert again.get("k") is None and db.collection("c-third").get("k") == "c-third"

    def test_reopening_the_same_store_object_sees_the_data(self, pykv: Any) -> None:
        first = kvlite.open(pykv)
        first.collection("c").put_many([(1, "one"), ("k", [1, 2])])
        first.collection("c").put("t", 1, ttl=100)
        first.close()
        assert first.engine.close_store is not self.stays_open
        second = kvlite.open(self.reopen(pykv))
        try:
            assert second.collections() == ["c"]
            assert second.collection("c").get_many([1, "k", "t"]) == ["one", [1, 2], 1]
            assert 98 < second.collection("c").ttl("t") <= 100
        finally:
            second.close()

    def test_a_closed_store_raises_store_closed(self, db: kvlite.Store, pykv: Any) -> None:
        c = db.collection("c")
        c.put("a", 1)
        db.close()
        assert db.closed
        for call in (lambda: c.get("a"), lambda: c.put("a", 2), lambda: db.collection("d"), lambda: c.get_many([]),
                     lambda: c.ttl_many(["a"]), lambda: db.engine.call(asyncio.sleep(0)), lambda: c.delete("a")):
            with pytest.raises(StoreClosed):
                call()
        db.close()  # idempotent
        assert not db.engine._thread.is_alive()  # the engine's loop thread is gone

    # reused from the conformance suite (every engine's): bad collection names
    test_bad_collection_names = ValuesAndErrors.test_bad_collection_names


class Enumerating:
    """What a store that lists its keys adds: the whole-collection API."""

    enumerates = True
    drops = True

    # reused from the conformance suite: they only need a store whose collections iterate
    test_conformance_get_put_delete_and_defaults = KeyValueProtocol.test_get_put_delete_and_defaults
    test_bad_keys_raise_invalid_key_and_write_nothing = ValuesAndErrors.test_bad_keys_raise_invalid_key_and_write_nothing
    test_bad_ttls_raise_invalid_ttl_and_write_nothing = ValuesAndErrors.test_bad_ttls_raise_invalid_ttl_and_write_nothing
    test_values_json_cannot_keep_raise_serialization_error = \
        ValuesAndErrors.test_values_json_cannot_keep_raise_serialization_error

    def test_iteration_len_popitem_clear(self, db: kvlite.Store, pykv: Any) -> None:
        c = db.collection("whole")
        entries = {"a": 1, 2: "two", b"c": [3], "~d": {"d": 4}, 2.5: None}
        c.put_many(entries)
        _plain(db, pykv.put("~not-a-kvlite-key", {"x": 1}, collection="whole"))  # invisible to kvlite
        assert _sorted(c.items()) == _sorted(entries.items()) and len(c) == c.count() == 5
        assert list(c.keys(reverse=True)) == list(reversed(list(c.keys())))
        assert sorted(map(repr, c.values())) == sorted(map(repr, entries.values()))
        assert c.dict() == {k: v for k, v in entries.items()}
        last = list(c.keys())[-1]
        assert c.popitem() == (last, entries[last]) and len(c) == 4
        stats = c.stats()
        assert stats["rows"] == 4 and stats["bytes"] > 0
        c.clear()
        assert len(c) == 0 and list(c.items()) == [] and c.get("a") is None
        c.put("a", 2)
        assert list(c.items()) == [("a", 2)]
        with pytest.raises(KeyError):
            db.collection("empty").popitem()

    def test_the_memory_store_keeps_insertion_order(self, db: kvlite.Store, pykv: Any) -> None:
        if type(pykv).__name__ != "MemoryStore":  # Redis lists keys in SCAN order: only the set is checked
            assert sorted(db.collection("o").keys()) == []
            return
        c = db.collection("o")
        c.put_many([("z", 1), ("a", 2), ("m", 3)])
        c.put("a", 20)  # an update keeps the place
        assert list(c.keys()) == ["z", "a", "m"] and list(c.keys(reverse=True)) == ["m", "a", "z"]

    def test_queries_match_the_same_data_in_memory(self, db: kvlite.Store) -> None:
        c = db.collection("q")
        c.put_many(DOCS)
        c.put("expired", {"name": "Old", "age": 99}, ttl=0.3)
        with kvlite.open("memory://") as reference:
            r = reference.collection("q")
            r.put_many(DOCS)
            time.sleep(0.4)
            for query in QUERIES:
                assert _sorted(c.find(query)) == _sorted(r.find(query)), query
                assert c.count(query) == r.count(query), query
            assert c.count() == r.count() == len(DOCS)
            assert _sorted(c.find("$[?@.age > 30]", engine="jsonpath-ng")) == \
                _sorted(r.find("$[?@.age > 30]", engine="jsonpath-ng"))
            assert sorted(c.select("$[*].name")) == sorted(r.select("$[*].name"))
            removed = c.delete_where("$[?@.age < 30]")
            assert removed == r.delete_where("$[?@.age < 30]") and _sorted(c.items()) == _sorted(r.items())
            with pytest.raises(NotSupported):
                c.patch_where("$[?@.age > 30]", {"old": True})

    def test_a_collection_larger_than_the_listing_cap_is_refused_not_truncated(self, db: kvlite.Store) -> None:
        engine = db.engine
        c = db.collection("big")
        c.put_many((f"k{i}", i) for i in range(30))
        engine.list_cap = 30  # as if the store listed at most 30 keys (10,000 in the memory and Redis stores)
        try:
            for call in (lambda: list(c.keys()), lambda: len(c), lambda: c.count("$[*]"), lambda: c.popitem()):
                with pytest.raises(NotSupported, match="at most 30 keys"):
                    call()
            c.delete("k0")
            assert len(c) == 29
            c.put_many((f"x{i}", i) for i in range(40))
            c.clear()  # deletes page after page: works at any size
            assert len(c) == 0
        finally:
            engine.list_cap = 10_000


class NotEnumerating:
    """A store that cannot list keys: the whole-collection API raises NotSupported, naming it."""

    enumerates = False
    drops = False

    def test_whole_collection_calls_raise_not_supported(self, db: kvlite.Store, pykv: Any) -> None:
        c = db.collection("c")
        c.put_many({"a": {"age": 1}, "b": {"age": 2}})
        calls = [lambda: list(c.keys()), lambda: list(c.items()), lambda: list(c.values()), lambda: len(c),
                 lambda: c.count("$[?@.age > 1]"), lambda: list(c.find("$[?@.age > 1]")), lambda: c.popitem(),
                 lambda: list(c.dict()), lambda: c.stats(), lambda: c.delete_where("$[*]")]
        if not self.drops:
            calls.append(c.clear)
        for call in calls:
            with pytest.raises(NotSupported, match=type(pykv).__name__):
                call()
        assert c.get_many(["a", "b"]) == [{"age": 1}, {"age": 2}] and "a" in c and c.dict()["a"] == {"age": 1}
        assert db.collections() == ["c"]
        if self.drops:  # destroy_collection
            c.clear()
            assert c.get_many(["a", "b"]) == [None, None]


# -- one class per store ------------------------------------------------------------------------------


class TestMemoryStore(Enumerating, PyKVStoreChecks):
    def make(self, request: pytest.FixtureRequest, folder: Path) -> Any:
        from key_value.aio.stores.memory import MemoryStore

        return MemoryStore()

    def test_calls_run_inline_and_a_suspending_call_finishes_on_the_loop(self, db: kvlite.Store) -> None:
        engine = db.engine
        assert engine.inline

        async def suspends() -> str:
            await asyncio.sleep(0.01)
            future = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon_threadsafe(future.set_result, "done")
            return await future

        assert engine.call(suspends()) == "done"


class TestRedisStore(Enumerating, PyKVStoreChecks):
    unholdable: ClassVar[list[Any]] = []

    def make(self, request: pytest.FixtureRequest, folder: Path) -> Any:
        import redis

        from key_value.aio.stores.redis import RedisStore

        url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/9"  # a database no other module uses
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        self.url = url
        return RedisStore(url=url)

    stays_open = False

    def reopen(self, pykv: Any) -> Any:
        from key_value.aio.stores.redis import RedisStore

        return RedisStore(url=self.url)

    def test_the_url_has_no_secret(self, db: kvlite.Store) -> None:
        assert db.url == "pykv:RedisStore" and "redis://" not in repr(db)


class TestDiskStore(NotEnumerating, PyKVStoreChecks):
    def make(self, request: pytest.FixtureRequest, folder: Path) -> Any:
        from key_value.aio.stores.disk import DiskStore

        return DiskStore(directory=folder / "disk")


class TestMultiDiskStore(NotEnumerating, PyKVStoreChecks):
    def make(self, request: pytest.FixtureRequest, folder: Path) -> Any:
        from key_value.aio.stores.disk import MultiDiskStore

        return MultiDiskStore(base_directory=folder / "multi")


class TestFileTreeStore(NotEnumerating, PyKVStoreChecks):
    unholdable: ClassVar[list[Any]] = ["a/b", "..", "x" * 251]
    text_keys: ClassVar[Any] = st.text(st.characters(blacklist_characters="/\\\x00", blacklist_categories=("Cs",)),
                                       min_size=1, max_size=12).filter(
        lambda k: k not in (".", ".."))

    stays_open = False  # not run inline (its files are read through threads): closed with kvlite

    def make(self, request: pytest.FixtureRequest, folder: Path) -> Any:
        from key_value.aio.stores.filetree import FileTreeStore

        self.folder = folder / "tree"
        return FileTreeStore(data_directory=self.folder)

    def reopen(self, pykv: Any) -> Any:
        from key_value.aio.stores.filetree import FileTreeStore

        return FileTreeStore(data_directory=self.folder)


class TestRocksDBStore(NotEnumerating, PyKVStoreChecks):
    def make(self, request: pytest.FixtureRequest, folder: Path) -> Any:
        from key_value.aio.stores.rocksdb import RocksDBStore

        return RocksDBStore(path=folder / "rocks")


class TestDuckDBStore(NotEnumerating, PyKVStoreChecks):
    def test_values_are_stored_as_json_text_and_keep_their_types(self, db: kvlite.Store, pykv: Any) -> None:
        """DuckDBStore turns a dict into a DuckDB STRUCT (mixed-type lists become strings): kvlite
        stores the JSON text there instead (documented), and values come back exactly."""
        c = db.collection("d")
        c.put("k", {"x": [1, 2.5, None, True, "é"]})
        assert c.get("k") == {"x": [1, 2.5, None, True, "é"]}
        assert _plain(db, pykv.get("k", collection="d")) == {TEXT: '{"x":[1,2.5,null,true,"é"]}'}

    def make(self, request: pytest.FixtureRequest, folder: Path) -> Any:
        from key_value.aio.stores.duckdb import DuckDBStore

        return DuckDBStore(database_path=folder / "duck.db")


class TestMemcachedStore(NotEnumerating, PyKVStoreChecks):
    unholdable: ClassVar[list[Any]] = ["a b", "tab\there", "x" * 250, "é" * 124, b"\x00" * 130]
    text_keys: ClassVar[Any] = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=12)

    def make(self, request: pytest.FixtureRequest, folder: Path) -> Any:
        from key_value.aio.stores.memcached import MemcachedStore

        import aiomcache

        self.address = host, port = request.getfixturevalue("memcached_address")

        async def flush() -> None:  # the server is this module's alone: start every test empty
            client = aiomcache.Client(host, port)
            await client.flush_all()
            await client.close()

        asyncio.run(flush())
        return MemcachedStore(host=host, port=port)

    stays_open = False

    def reopen(self, pykv: Any) -> Any:
        from key_value.aio.stores.memcached import MemcachedStore

        return MemcachedStore(host=self.address[0], port=self.address[1])

    def test_a_collection_name_memcached_cannot_hold_is_refused(self, db: kvlite.Store) -> None:
        with pytest.raises(InvalidCollectionName, match="memcached"):
            db.collection("a name with spaces")
        assert db.collections() == []


class TestPostgreSQLStore(NotEnumerating, PyKVStoreChecks):
    drops = True  # destroy_collection (it lists collections, not keys)
    unholdable: ClassVar[list[Any]] = ["nul\x00inside"]
    text_keys: ClassVar[Any] = st.text(st.characters(blacklist_characters="\x00"), max_size=12)
    text_values: ClassVar[Any] = st.text(st.characters(blacklist_characters="\x00"), max_size=5)

    def test_nul_characters_are_refused_before_the_store(self, db: kvlite.Store) -> None:
        c = db.collection("nul")
        c.put("k", "ok")
        for bad in ["a\x00b", {"x": ["\x00"]}, {"\x00": 1}]:
            with pytest.raises(SerializationError, match="NUL"):
                c.put("k", bad)
        c.put("k2", "\\u0000 is only text")  # a backslash, not a NUL
        assert c.get_many(["k", "k2"]) == ["ok", "\\u0000 is only text"]

    def make(self, request: pytest.FixtureRequest, folder: Path) -> Any:
        from key_value.aio.stores.postgresql import PostgreSQLStore

        self.url, self.table = request.getfixturevalue("postgres_url"), f"kv_{uuid.uuid4().hex[:16]}"
        return PostgreSQLStore(url=self.url, table_name=self.table)

    stays_open = False

    def reopen(self, pykv: Any) -> Any:
        from key_value.aio.stores.postgresql import PostgreSQLStore

        return PostgreSQLStore(url=self.url, table_name=self.table)


# -- the documentation ----------------------------------------------------------------------------------


def test_every_store_class_is_in_the_docs_table() -> None:
    """The capability table of docs/backends/pykv.md says what these classes check: its
    "enumerates" column (the second) for every store tested here."""
    text = (Path(__file__).parent.parent / "docs" / "backends" / "pykv.md").read_text(encoding="utf-8")
    classes = [cls for cls in globals().values()
               if isinstance(cls, type) and issubclass(cls, PyKVStoreChecks) and cls.__name__.startswith("Test")]
    assert len(classes) == 9
    for cls in classes:
        store = cls.__name__.removeprefix("Test")
        row = next((line for line in text.splitlines() if line.startswith(f"| `{store}`")), None)
        assert row is not None, store
        assert row.split("|")[2].strip() == ("yes" if cls.enumerates else "no"), row
