"""One conformance suite, run on every backend (issue 8, item 5).

Every test here takes ``make_store`` (or ``store``), which is parametrized over

=================== ==========================================================
``sqlite-file``     ``kvlite.open(<tmp>/store-N.db)``
``sqlite-memory``   ``kvlite.open(":memory:")``
``per-collection``  ``kvlite.open(<tmp>/folder-N, layout="per-collection")``
``memory``          ``kvlite.open("memory://")``
``redis``           ``kvlite.open(redis_url + "?prefix=<unique>")``
``postgresql``      ``kvlite.open(<postgres_url in a new, empty schema>)``
=================== ==========================================================

so a behaviour that differs between engines is a failing test, not a
surprise.  Every store runs on a fake clock (``conftest.Clock``): TTL tests
move it instead of sleeping.  The Redis and PostgreSQL servers come from the
session fixtures of ``tests/server_redis.py`` and ``tests/server_postgres.py``
(skipped when a server binary is missing, a failure under ``CI=true``).

What is checked on each backend:

* the key-value protocol (``get``/``put``/``delete``/``ttl`` and the
  ``_many`` forms: positions, duplicates, defaults), ``pop``, ``popitem``,
  ``setdefault``, ``count``/``len``/``in``, ``clear``, the registry;
* TTLs on the fake clock: invisible at once (at ``expires_at == now``), a
  put over an expired key moves it to the end, ``purge_expired`` counts,
  ``ttl`` values;
* key types (``str``/``bytes``/``int``/``float``/``bool``; ``1 == 1.0 ==
  True`` is one key and keeps the first type stored) and insertion order
  (update keeps the place, delete + re-insert moves to the end, reversed,
  pages longer than any backend's page size);
* the dict view: CPython's ``test.mapping_tests.TestMappingProtocol`` (one
  generated ``TestCase`` per backend; only ``test_setdefault`` is replaced,
  as in ``tests/test_dictview.py``) and a Hypothesis state machine against a
  ``dict`` model with expiry;
* atomicity of ``put_many`` (a bad key, value, TTL or pair: nothing
  written), the recorded serializer (``SerializerMismatch``), typed errors;
* queries: ``find``/``select``/``count`` for fixed and random JSONPath and
  ObjectPath paths equal the oracle of ``tests/test_query_differential.py``
  (the engine run on the collection's items loaded in a ``dict``), with and
  without an index where the backend has indexes;
* transactions: atomic (commit, rollback, savepoints) on the backends that
  support them; ``NotSupported`` raised -- with nothing written -- by exactly
  the backends whose documentation says so;
* ``kvlite.copy`` from every backend to every other, preserving values, key
  types, remaining TTLs and order, changing the serializer on the way;
* also: value fidelity per serializer, ``order_by`` (one exact order on every engine, JSON
  collections only), read-only stores, typed (model) collections, stats,
  dropped collections, closed stores, and collection changes undone by a
  rolled-back transaction.

Documented deviations, asserted as such (each with the text that documents it):
``transaction()`` raises ``NotSupported`` on ``per-collection`` and Redis
(checked against their docs, both ways); ``per-collection`` lists
``collections()`` in file-name order.  Allowed differences that are not
deviations: ``purge_expired()`` may count fewer entries on a backend that
deletes expired entries earlier (Redis, on every write), so exact counts are
only asserted with no write in between; ``":memory:"`` opened read-only
refuses at open, ``memory://`` at its first write (both ``ReadOnlyError``).

``KVLITE_CONFORMANCE_EXAMPLES`` raises the number of Hypothesis examples.
"""

from __future__ import annotations

import datetime
import enum
import itertools
import math
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import helpers_query
import pytest
from conftest import Clock
from helpers_dictview import DocumentedSetdefault
from helpers_engines import ENGINES, StoreMaker, new_location
from helpers_query import (
    ENTRIES,
    check_jsonpath,
    contains,
    jsonpaths,
    objectpaths,
    op_outcome,
    sqlite_order_key,
    strict,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from test import (
    mapping_tests,  # ships with CPython; imported as a module so pytest does not collect its bases
)

import kvlite
from kvlite import DictView
from kvlite.errors import (
    CollectionDropped,
    InvalidCollectionName,
    InvalidKey,
    InvalidTTL,
    KvliteError,
    NotSupported,
    QuerySyntaxError,
    ReadOnlyError,
    SerializationError,
    SerializerMismatch,
    StoreClosed,
    ValidationError,
)
from kvlite.query import jsonpath as qjp
from kvlite.query import objectpath as qop
from kvlite.keys import view as view_key

BACKENDS = ENGINES

EXAMPLES = int(os.environ.get("KVLITE_CONFORMANCE_EXAMPLES", "0"))
HYPOTHESIS: dict[str, Any] = {"deadline": None, "suppress_health_check": [
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]}
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
TTL_TOLERANCE = 1e-5  # PostgreSQL keeps expiry times in microseconds

# -- where each backend's stores live: tests/helpers_engines.py -------------------------------


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[StoreMaker]:
    maker = StoreMaker(new_location(request.param, request, tmp_path), clock)
    yield maker
    maker.close_all()


@pytest.fixture
def store(make_store: StoreMaker) -> Any:
    return make_store()


# -- helpers ----------------------------------------------------------------------------------------


def typed(pairs: Any) -> list[tuple[type, Any, type, Any]]:
    """``(key type, key, value type, value)`` in order: ``1``, ``1.0`` and ``True`` are told apart."""
    return [(type(k), k, type(v), v) for k, v in pairs]


def key_types(keys: Any) -> list[tuple[type, Any]]:
    return [(type(k), k) for k in keys]


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=\.)\s+", " ".join(text.split()))


def transaction_documented_as_not_supported(store: Any) -> bool:
    """Whether the store's documentation says its ``transaction()`` raises ``NotSupported``.

    Read from the backend module's docstring, its store class's docstring, a
    ``transaction`` method the class itself defines, and the backend's page in
    ``docs/backends/`` (a Markdown line), when there is one: a sentence (or a
    line) that names both ``transaction()`` and ``NotSupported``.
    """
    cls = type(store)
    module = sys.modules[cls.__module__]
    texts = [module.__doc__ or "", cls.__doc__ or ""]
    if "transaction" in vars(cls):
        texts.append(vars(cls)["transaction"].__doc__ or "")
    pieces = [sentence for text in texts for sentence in _sentences(text)]
    for page in (DOCS_DIR / "backends").glob("*.md"):
        if page.stem in cls.__module__.rsplit(".", 1)[-1]:
            pieces += page.read_text(encoding="utf-8").splitlines()
    return any("transaction()" in piece and "NotSupported" in piece for piece in pieces)


class Color(str, enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 7


# -- the key-value protocol -----------------------------------------------------------------------


def test_get_put_delete_and_defaults(store: Any) -> None:
    c = store.collection("kv")
    assert c.get("a") is None and c.get("a", 5) == 5 and "a" not in c and len(c) == 0
    assert c.put("a", {"x": [1, 2.5, None, True, "é"]}) is None
    assert c.get("a") == {"x": [1, 2.5, None, True, "é"]}
    assert c.get("a", 5) == {"x": [1, 2.5, None, True, "é"]}
    c.put("b", None)  # a stored None is a value, not a miss
    assert "b" in c and c.get("b", "default") is None and c.count() == 2 and len(c) == 2
    c.put("a", [1])
    assert c.get("a") == [1] and len(c) == 2
    assert c.delete("a") is True and c.delete("a") is False and c.delete("never") is False
    assert c.get("a", "gone") == "gone" and "a" not in c and len(c) == 1
    assert c.ttl("b") is None and c.ttl("missing") is None


def test_many_forms_keep_positions(store: Any) -> None:
    c = store.collection("many")

    class KeysOnly:  # what dict.update accepts: an object with keys() and __getitem__
        def keys(self) -> list[str]:
            return ["k1", "k2"]

        def __getitem__(self, key: str) -> str:
            return key.upper()

    assert c.put_many({"a": 1, "b": 2}) == 2
    assert c.put_many([("c", 3), ("d", 4)]) == 2
    assert c.put_many(pair for pair in [("e", 5)]) == 1
    assert c.put_many(KeysOnly()) == 2
    assert c.put_many([]) == 0
    assert c.put_many([("f", 1), ("f", 2)]) == 2  # the last value wins, in the first one's place
    assert list(c.items()) == [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5), ("k1", "K1"), ("k2", "K2"),
                               ("f", 2)]
    assert c.get_many(["b", "zz", "a", "b", 1]) == [2, None, 1, 2, None]
    assert c.get_many(["zz", "a"], default="-") == ["-", 1]
    assert c.get_many([]) == []
    c.put("t", 0, ttl=30)
    assert c.ttl_many(["a", "t", "zz", "t"]) == [None, pytest.approx(30, abs=TTL_TOLERANCE), None,
                                                  pytest.approx(30, abs=TTL_TOLERANCE)]
    assert c.delete_many(["a", "zz", "a", "b"]) == 2  # a duplicate counts once, a missing key not at all
    assert c.delete_many([]) == 0
    assert list(c.keys()) == ["c", "d", "e", "k1", "k2", "f", "t"]


@pytest.mark.parametrize("one", ["ab", b"ab"])
def test_many_methods_refuse_one_str_or_bytes_key(make_store: StoreMaker, one: Any) -> None:
    """``get_many("ab")`` would read the characters (or byte values) of one key as keys: every
    engine refuses it with InvalidKey and changes nothing (memory://, null://, PostgreSQL and
    Redis deleted keys "a" and "b")."""
    with kvlite.open("null://") as null:
        stores = [(make_store(), [1, 2, 3, 4]), (null, [None] * 4)]
        for store, kept in stores:
            c = store.collection("c")
            c.put_many({"a": 1, "b": 2, 97: 3, 98: 4})
            for method in (c.get_many, c.delete_many, c.ttl_many):
                with pytest.raises(InvalidKey, match=f"{method.__name__}\\(\\[key\\]\\)"):
                    method(one)
            assert c.get_many(["a", "b", 97, 98]) == kept


@pytest.mark.parametrize("bad", [{"timeout": -1}, {"timeout": float("nan")}, {"timeout": True},
                                 {"timeout": "30"}, {"durability": "bogus"}])
def test_bad_settings_are_refused_at_open_on_every_engine(make_store: StoreMaker, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        make_store(**bad)
    with pytest.raises(ValueError, match=next(iter(bad))):
        kvlite.open("null://", **bad)
    if make_store.backend == "per-collection":  # refused before the folder is made
        assert not os.path.exists(make_store.location.target)


def test_pop_popitem_setdefault(store: Any) -> None:
    c = store.collection("compound")
    with pytest.raises(KeyError):
        c.popitem()
    c.put_many([("a", 1), ("b", 2), ("c", 3)])
    assert c.pop("b") == 2 and c.pop("b", "d") == "d"
    with pytest.raises(KeyError):
        c.pop("b")
    with pytest.raises(KeyError):
        c.pop(("not", "a", "key"))  # like dict: a key that cannot exist is missing
    assert c.pop(("not", "a", "key"), 0) == 0
    assert c.popitem() == ("c", 3)  # LIFO
    assert c.setdefault("a", 9) == 1 and c.get("a") == 1
    assert c.setdefault("n") is None and "n" in c and c.get("n", 1) is None
    assert c.setdefault("s", [1], ttl=10) == [1] and c.ttl("s") == pytest.approx(10, abs=TTL_TOLERANCE)
    assert list(c.items()) == [("a", 1), ("n", None), ("s", [1])]
    assert c.popitem() == ("s", [1]) and c.popitem() == ("n", None) and c.popitem() == ("a", 1)
    with pytest.raises(KeyError):
        c.popitem()


def test_clear_count_and_iteration(store: Any) -> None:
    c = store.collection("whole")
    c.put_many({"a": 1, 2: "two", b"c": [3]})
    assert list(c) == ["a", 2, b"c"] == list(c.keys())
    assert list(c.values()) == [1, "two", [3]] and list(c.values(reverse=True)) == [[3], "two", 1]
    assert c.count() == len(c) == 3
    c.clear()
    assert len(c) == 0 and list(c.items()) == [] and c.get("a") is None
    c.put("a", 2)
    assert list(c.items()) == [("a", 2)]


def test_registry_collections_and_drop(store: Any, make_store: StoreMaker) -> None:
    assert store.collections() == []
    for name in ("b-second", "a-first", "é ü / ?"):
        store.collection(name).put("k", name)
    names = store.collections()
    if make_store.backend == "per-collection":
        from kvlite.backends.directory import file_name

        assert names == sorted(names, key=file_name)  # documented in kvlite/backends/directory.py
        assert "file-name order" in (sys.modules["kvlite.backends.directory"].__doc__ or "")
    else:
        assert names == ["b-second", "a-first", "é ü / ?"]  # oldest first
    assert sorted(names) == sorted(["b-second", "a-first", "é ü / ?"])
    assert store.drop_collection("a-first") is True and store.drop_collection("a-first") is False
    assert sorted(store.collections()) == sorted(["b-second", "é ü / ?"])
    again = store.collection("a-first")
    assert len(again) == 0 and again.get("k") is None
    assert store.collection("é ü / ?").get("k") == "é ü / ?"
    assert store.dict("b-second") == {"k": "b-second"}


def test_data_survives_reopening_exactly_when_persistent(make_store: StoreMaker) -> None:
    first = make_store()
    first.collection("c").put_many([(1, "one"), ("k", [1, 2])])
    first.collection("c").put("t", 1, ttl=100)
    first.close()
    second = make_store()
    if make_store.persistent:
        assert second.collections() == ["c"]
        assert typed(second.collection("c").items()) == typed([(1, "one"), ("k", [1, 2]), ("t", 1)])
        assert second.collection("c").ttl("t") == pytest.approx(100, abs=TTL_TOLERANCE)
    else:  # a new private store each time
        assert second.collections() == []


def test_a_closed_store_raises_store_closed(store: Any) -> None:
    c = store.collection("c")
    c.put("a", 1)
    store.close()
    assert store.closed
    for call in (lambda: c.get("a"), lambda: c.put("a", 2), lambda: store.collection("d"), lambda: list(c.items()),
                 lambda: len(c)):
        with pytest.raises(StoreClosed):
            call()
    store.close()  # idempotent


# -- TTL ---------------------------------------------------------------------------------------------


def test_ttl_values_and_expiry_at_once(store: Any, clock: Clock) -> None:
    c = store.collection("ttl")
    c.put("a", 1, ttl=10)
    c.put("b", 2, ttl=datetime.timedelta(seconds=2.5))
    c.put("forever", 3)
    assert c.ttl("a") == pytest.approx(10, abs=TTL_TOLERANCE)
    assert c.ttl("b") == pytest.approx(2.5, abs=TTL_TOLERANCE)
    assert c.ttl("forever") is None and c.ttl("missing") is None
    clock.advance(2.5)  # b's expiry time is now: it is gone at once
    assert c.ttl("a") == pytest.approx(7.5, abs=TTL_TOLERANCE)
    assert c.get("b") is None and c.get("b", "x") == "x" and "b" not in c and c.ttl("b") is None
    assert c.get_many(["a", "b"], default="x") == [1, "x"] and c.ttl_many(["b"]) == [None]
    assert list(c.keys()) == ["a", "forever"] and len(c) == 2 and c.count() == 2
    assert list(c.items(reverse=True)) == [("forever", 3), ("a", 1)]
    assert c.pop("b", "gone") == "gone" and c.delete("b") is False
    clock.advance(7.5)
    assert c.get("a") is None and list(c.items()) == [("forever", 3)]
    assert c.popitem() == ("forever", 3)
    with pytest.raises(KeyError):
        c.popitem()  # only expired entries are left


def test_put_keeps_or_replaces_the_ttl(store: Any, clock: Clock) -> None:
    c = store.collection("ttl2")
    c.put("a", 1, ttl=10)
    c.put("a", 2)  # no ttl: never expires any more
    assert c.ttl("a") is None
    c.put("a", 3, ttl=5)
    clock.advance(4)
    assert c.ttl("a") == pytest.approx(1, abs=TTL_TOLERANCE)
    c.put_many({"a": 4, "b": 5}, ttl=20)
    assert c.ttl_many(["a", "b"]) == [pytest.approx(20, abs=TTL_TOLERANCE)] * 2
    assert c.setdefault("a", 0, ttl=1) == 4 and c.ttl("a") == pytest.approx(20, abs=TTL_TOLERANCE)
    clock.advance(20)
    assert len(c) == 0 and c.setdefault("a", 6) == 6 and c.ttl("a") is None


def test_put_over_an_expired_key_moves_it_to_the_end_with_its_new_type(store: Any, clock: Clock) -> None:
    c = store.collection("revive")
    c.put(1, "one", ttl=5)
    c.put("b", "b")
    c.put("c", "c", ttl=50)
    clock.advance(5)
    c.put(True, "revived")  # 1 had expired: True is a new key, at the end
    c.put("c", "updated")  # c is live: it keeps its place
    assert typed(c.items()) == typed([("b", "b"), ("c", "updated"), (True, "revived")])
    assert c.ttl("c") is None and c.ttl(1) is None
    c.put("x", 0, ttl=1)
    clock.advance(1)
    assert c.setdefault("x", "new") == "new"  # setdefault over an expired key also counts as new
    assert list(c.keys()) == ["b", "c", True, "x"]


def test_purge_expired_counts(make_store: StoreMaker, clock: Clock) -> None:
    store = make_store()
    a, b = store.collection("a"), store.collection("b")
    a.put_many({1: 1, 2: 2, 3: 3}, ttl=5)
    a.put("live", 0)
    b.put_many({1: 1, 2: 2}, ttl=10)
    assert a.purge_expired() == 0 and store.purge_expired() == 0
    clock.advance(5)
    assert a.purge_expired() == 3 and a.purge_expired() == 0
    assert list(a.items()) == [("live", 0)]
    clock.advance(5)
    assert store.purge_expired() == 2 and store.purge_expired() == 0
    assert len(b) == 0 and len(a) == 1


def test_long_and_short_ttls(store: Any, clock: Clock) -> None:
    c = store.collection("ttl-range")
    c.put("year", 1, ttl=datetime.timedelta(days=365))
    c.put("century", 2, ttl=100 * 365 * 86400.0)
    c.put("ms", 3, ttl=0.001)
    assert c.ttl_many(["year", "century", "ms"]) == [pytest.approx(365 * 86400.0, abs=TTL_TOLERANCE),
                                                     pytest.approx(100 * 365 * 86400.0, abs=TTL_TOLERANCE),
                                                     pytest.approx(0.001, abs=TTL_TOLERANCE)]
    clock.advance(0.001)
    assert list(c.keys()) == ["year", "century"]
    clock.advance(365 * 86400.0)
    assert list(c.keys()) == ["century"]


# -- collections that go away, read-only stores, typed collections, stats --------------------------


def test_a_dropped_collection_object_never_shows_old_data(store: Any) -> None:
    c = store.collection("gone")
    c.put("k", "old")
    assert store.drop_collection("gone") is True
    try:
        seen = c.get("k")
    except KvliteError:
        seen = None  # raising is fine too: the collection is gone
    assert seen is None
    with pytest.raises(KvliteError):
        c.put("k", "into nowhere")
    fresh = store.collection("gone")
    assert len(fresh) == 0 and fresh.get("k") is None and store.collections() == ["gone"]
    fresh.put("k", "new")
    assert fresh.get("k") == "new"


def test_readonly_store(make_store: StoreMaker) -> None:
    writer = make_store()
    writer.collection("c").put("k", 1)
    if not make_store.persistent:
        # A new private store: read-only it has nothing to read.  SQLite's ":memory:" refuses at
        # open (its schema cannot be created), memory:// at the first write; both with ReadOnlyError.
        try:
            reader = make_store(readonly=True)
        except ReadOnlyError:
            return
        with pytest.raises(ReadOnlyError):
            reader.collection("new")
        assert reader.collections() == []
        return
    reader = make_store(readonly=True)
    with pytest.raises(ReadOnlyError):
        reader.collection("new")  # creating a collection is a write
    c = reader.collection("c")
    assert c.get("k") == 1 and list(c.items()) == [("k", 1)]
    for call in (lambda: c.put("k", 2), lambda: c.delete("k"), lambda: c.put_many({"a": 1}), lambda: c.clear(),
                 lambda: c.pop("k"), lambda: c.setdefault("z", 1), lambda: reader.drop_collection("c")):
        with pytest.raises(ReadOnlyError):
            call()
    assert writer.collection("c").get("k") == 1 and writer.collections() == ["c"]


@dataclass
class Point:
    x: int
    y: int


def test_typed_collection(store: Any) -> None:
    points = store.collection("points", model=Point)
    points.put("a", Point(1, 2))
    points.put("b", {"x": 3, "y": 4})
    assert points.get("a") == Point(1, 2) and points.get("b") == Point(3, 4)
    with pytest.raises(ValidationError):
        points.put("c", {"x": 1})
    with pytest.raises(ValidationError):
        points.put_many([("c", Point(5, 6)), ("d", "not a point")])
    assert list(points.keys()) == ["a", "b"]
    assert store.collection("points").get("a") == {"x": 1, "y": 2}  # the store keeps plain JSON
    assert list(points.select("$[?(@.x > 1)]")) == [Point(3, 4)]


def test_stats_shape_and_counts(store: Any, clock: Clock) -> None:
    c = store.collection("s")
    c.put_many({"a": 1, "b": 2})
    c.put("t", 3, ttl=1)
    c.get("a")
    c.get("missing")
    clock.advance(1)
    info = c.stats()
    assert {k: info[k] for k in ("collection", "gets", "hits", "misses", "puts", "rows")} == {
        "collection": "s", "gets": 2, "hits": 1, "misses": 1, "puts": 3, "rows": 2}
    assert info["bytes"] > 0 and info["expired_pending"] in (0, 1)
    totals = store.stats()["totals"]
    assert totals["rows"] == 2 and totals["puts"] == 3


# -- key types and insertion order -----------------------------------------------------------------


def test_equal_keys_are_one_key_and_keep_the_first_type(store: Any) -> None:
    c = store.collection("keys")
    c.put(1, "int")
    c.put(1.0, "float")
    c.put(True, "bool")
    assert typed(c.items()) == typed([(1, "bool")])
    assert c.get(1.0) == c.get(True) == c.get(1) == "bool" and True in c and 1.0 in c
    c.put("1", "str")
    c.put(b"1", "bytes")
    c.put(0.0, "zero")
    c.put(False, "false")
    c.put(-0.0, "minus zero")
    assert typed(c.items()) == typed([(1, "bool"), ("1", "str"), (b"1", "bytes"), (0.0, "minus zero")])
    assert c.delete(True) is True and 1 not in c
    c.put(True, "again")  # deleted and re-added: the new type, at the end
    assert key_types(c.keys()) == key_types(["1", b"1", 0.0, True])
    assert c.pop(1.0) == "again" and c.pop(False) == "minus zero"
    assert c.get_many([b"1", "1", 1]) == ["bytes", "str", None]


def test_every_key_type_round_trips(store: Any) -> None:
    c = store.collection("types")
    keys = ["", "a", "a\x00b", "日本 🎉", "n:1", "s:a", "\\0", b"", b"a", b"\x00\xff", -1, 2**53 + 1, 2**63 - 1,
            -(2**63), 2.5, -0.5, 2.0**53, 1e300, 5e-324, math.inf, -math.inf, False]
    c.put_many((k, i) for i, k in enumerate(keys))
    assert key_types(c.keys()) == key_types(keys)
    assert c.get_many(keys) == list(range(len(keys)))
    assert len(c) == len(keys)
    c.put(Color.RED, "enum")  # a str subclass is stored as str
    c.put(Size.BIG, "int enum")
    assert key_types(list(c.keys())[-2:]) == [(str, "red"), (int, 7)]
    assert c.get("red") == "enum" and c.get(7.0) == "int enum"


def test_more_equal_and_distinct_keys(store: Any) -> None:
    c = store.collection("edge-keys")
    c.put(-(2**63), "int")
    c.put(-(2.0**63), "float")  # equal to the int: one key, the int's type
    c.put(2**63 - 1, "max int")
    c.put(2.0**63, "2.0**63")  # not equal to 2**63 - 1: another key
    c.put("é", "composed")
    c.put("e\u0301", "decomposed")  # canonically equivalent text, but another str: another key
    c.put(0.1 + 0.2, "float sum")
    c.put(0.3, "0.3")
    c.put(1e20, "big float")
    assert typed(c.items()) == typed([(-(2**63), "float"), (2**63 - 1, "max int"), (2.0**63, "2.0**63"),
                                      ("é", "composed"), ("e\u0301", "decomposed"), (0.1 + 0.2, "float sum"),
                                      (0.3, "0.3"), (1e20, "big float")])


@pytest.mark.parametrize("length", [3000, 100_000])
def test_long_keys_work(store: Any, length: int) -> None:
    """Keys up to kvlite.keys.MAX_KEY_LENGTH are valid keys on every backend."""
    c = store.collection("long")
    text, raw = "k" * length, b"\xff" * length
    c.put(text, 1)
    c.put(raw, 2)
    c.put(text, 3)
    assert typed(c.items()) == typed([(text, 3), (raw, 2)])
    assert c.get(text) == 3 and c.pop(raw) == 2 and len(c) == 1


def test_insertion_order(store: Any) -> None:
    c = store.collection("order")
    for key in ["a", 2, b"c", 4.5, True]:
        c.put(key, str(key))
    c.put(2, "updated")  # keeps its place
    c.put(1.0, "equal to True")  # True's place and type
    assert typed(c.items()) == typed([("a", "a"), (2, "updated"), (b"c", "b'c'"), (4.5, "4.5"), (True, "equal to True")])
    c.delete(2)
    c.put(2, "back")  # moves to the end
    assert list(c.keys()) == ["a", b"c", 4.5, True, 2]
    assert list(c.keys(reverse=True)) == [2, True, 4.5, b"c", "a"]
    assert next(c.items(reverse=True)) == (2, "back")
    assert c.popitem() == (2, "back") and c.popitem() == (True, "equal to True")


def test_order_across_pages(store: Any) -> None:
    """More entries than any backend reads per page (SQLite/PostgreSQL 1000, Redis 500)."""
    c = store.collection("big")
    keys: list[Any] = []
    for i in range(1100):
        keys.append([f"k{i}", i, f"b{i}".encode(), i + 0.5][i % 4])
    c.put_many((k, i) for i, k in enumerate(keys))
    c.delete_many(keys[100:200])
    c.put_many((k, -1) for k in keys[100:110])
    expected = keys[:100] + keys[200:] + keys[100:110]
    assert key_types(c.keys()) == key_types(expected)
    assert key_types(c.keys(reverse=True)) == key_types(expected[::-1])
    assert [v for v in c.values()][-10:] == [-1] * 10
    assert len(c) == len(expected)


# -- the dict view: CPython's mapping protocol, one TestCase per backend ---------------------------

_view_names = itertools.count()


class _BackendDictView(DictView):
    """Each instance is a new collection in the store its test class opened (``store``)."""

    store: ClassVar[Any] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        store = type(self).store
        assert store is not None, "the class-scoped fixture opens the store"
        self._collection = store.collection(f"view-{next(_view_names)}")
        if args or kwargs:
            self.update(*args, **kwargs)


@pytest.fixture(scope="class")
def _mapping_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    view_type = request.cls.type2test
    location = new_location(request.cls.backend, request, tmp_path_factory.mktemp("mapping"))
    view_type.store = location.open(Clock())
    yield
    view_type.store.close()
    view_type.store = None


def _mapping_case(backend: str) -> type:
    ident = backend.replace("-", "_")
    view_type = type(f"DictView_{ident}", (_BackendDictView,), {"store": None})

    def _reference(self: Any) -> dict[str, Any]:
        # The default reference holds a tuple, which JSON stores as a list; same shape, JSON-invariant.
        return {"1": "2", "key1": "value1", "key2": [1, 2, 3]}

    case = type(f"TestMappingProtocol_{ident}", (DocumentedSetdefault, mapping_tests.TestMappingProtocol), {
        "type2test": view_type, "backend": backend, "_reference": _reference,
        "__doc__": f"CPython's mapping protocol on DictViews over {backend} collections (a new one per call).",
        "__module__": __name__})
    return pytest.mark.usefixtures("_mapping_store")(case)


for _backend in BACKENDS:
    _case = _mapping_case(_backend)
    globals()[_case.__name__] = _case
del _backend, _case


# -- the dict view against a dict model (with TTLs on the fake clock) ------------------------------

MODEL_KEYS = st.sampled_from(["a", "b", "", "é", b"a", b"", 0, 1, -1, 1.0, 0.0, 2.5, True, False, 2**40])
MODEL_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5)
TTLS = st.sampled_from([0.25, 1.0, 2.5])  # multiples of 0.25: exact on every engine's clock
MISSING = "<missing>"


class DictModelMachine(RuleBasedStateMachine):
    """A DictView (and its collection) against ``{key: (value, expires_at)}`` in a plain ``dict``.

    The model keeps expired entries until they are overwritten, deleted,
    popped or purged, exactly as the backends do; the live part (in order,
    with the first key stored) must equal the view after every step.
    """

    store: ClassVar[Any] = None
    clock: ClassVar[Clock | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.coll = type(self).store.collection(f"machine-{uuid.uuid4().hex[:12]}")
        self.view = self.coll.dict()
        self.model: dict[Any, tuple[Any, float | None]] = {}

    @property
    def now(self) -> float:
        assert self.clock is not None
        return self.clock.now

    def _expires(self, key: Any) -> float | None:
        return self.model[key][1]

    def _live(self, key: Any) -> bool:
        if key not in self.model:
            return False
        expires = self._expires(key)
        return expires is None or expires > self.now

    def _set(self, key: Any, value: Any, expires: float | None) -> None:
        if key in self.model and not self._live(key):
            del self.model[key]  # an expired key counts as new
        self.model[key] = (value, expires)

    def live_items(self) -> list[tuple[Any, Any]]:
        return [(k, v) for k, (v, e) in self.model.items() if e is None or e > self.now]

    @rule(key=MODEL_KEYS, value=MODEL_VALUES)
    def set_item(self, key: Any, value: Any) -> None:
        self.view[key] = value
        self._set(key, value, None)

    @rule(key=MODEL_KEYS, value=MODEL_VALUES, ttl=TTLS)
    def put_with_ttl(self, key: Any, value: Any, ttl: float) -> None:
        self.coll.put(key, value, ttl=ttl)
        self._set(key, value, self.now + ttl)

    @rule(key=MODEL_KEYS)
    def del_item(self, key: Any) -> None:
        live = self._live(key)
        if live:
            del self.view[key]
        else:
            with pytest.raises(KeyError):
                del self.view[key]
        self.model.pop(key, None)

    @rule(key=MODEL_KEYS)
    def pop(self, key: Any) -> None:
        expected = self.model[key][0] if self._live(key) else MISSING
        assert strict(self.view.pop(key, MISSING)) == strict(expected)
        self.model.pop(key, None)

    @rule()
    def popitem(self) -> None:
        live = self.live_items()
        if not live:
            with pytest.raises(KeyError):
                self.view.popitem()
            return
        assert strict(self.view.popitem()) == strict(live[-1])
        del self.model[live[-1][0]]

    @rule(key=MODEL_KEYS, value=MODEL_VALUES)
    def setdefault(self, key: Any, value: Any) -> None:
        expected = self.model[key][0] if self._live(key) else value
        assert strict(self.view.setdefault(key, value)) == strict(expected)
        if not self._live(key):
            self._set(key, value, None)

    @rule(pairs=st.lists(st.tuples(MODEL_KEYS, MODEL_VALUES), max_size=4))
    def update(self, pairs: list[tuple[Any, Any]]) -> None:
        self.view.update(pairs)
        for key, value in pairs:
            self._set(key, value, None)

    @rule(keys=st.lists(MODEL_KEYS, max_size=4))
    def delete_many(self, keys: list[Any]) -> None:
        removed = 0
        for key in keys:
            removed += self._live(key)
            self.model.pop(key, None)
        assert self.coll.delete_many(keys) == removed

    @rule(keys=st.lists(MODEL_KEYS, max_size=4))
    def get_many(self, keys: list[Any]) -> None:
        expected = [self.model[k][0] if self._live(k) else MISSING for k in keys]
        assert strict(self.coll.get_many(keys, default=MISSING)) == strict(expected)
        assert [k in self.view for k in keys] == [self._live(k) for k in keys]

    @rule(seconds=st.sampled_from([0.25, 1.0, 3.0]))
    def advance(self, seconds: float) -> None:
        assert self.clock is not None
        self.clock.advance(seconds)

    @rule()
    def purge(self) -> None:
        expired = [k for k in self.model if not self._live(k)]
        # Backends may delete expired entries earlier (Redis does on every write): at most this many.
        assert 0 <= self.coll.purge_expired() <= len(expired)
        for key in expired:
            del self.model[key]
        assert self.coll.purge_expired() == 0

    @invariant()
    def same_as_model(self) -> None:
        live = self.live_items()
        assert strict(list(self.view.items())) == strict(live)
        assert len(self.view) == len(live)
        assert key_types(reversed(self.view)) == key_types(k for k, _ in reversed(live))
        keys = list(self.model)
        expected_ttls: list[float | None] = []
        for k in keys:
            expires = self._expires(k)
            expected_ttls.append(None if not self._live(k) or expires is None else expires - self.now)
        got = self.coll.ttl_many(keys)
        assert [t is None for t in got] == [t is None for t in expected_ttls]
        assert [t for t in got if t is not None] == pytest.approx([t for t in expected_ttls if t is not None],
                                                                   abs=TTL_TOLERANCE)


def test_dict_view_against_a_dict_model(store: Any, clock: Clock) -> None:
    DictModelMachine.store, DictModelMachine.clock = store, clock
    try:
        run_state_machine_as_test(DictModelMachine, settings=settings(
            max_examples=EXAMPLES or 8, stateful_step_count=20, **HYPOTHESIS))
    finally:
        DictModelMachine.store = DictModelMachine.clock = None


def test_dict_view_basics(store: Any) -> None:
    d = store.dict("view")
    ref: dict[Any, Any] = {}
    targets: tuple[Any, ...] = (d, ref)
    for target in targets:
        target.update([(1, "a"), ("x", [1]), (b"y", None)], z=2)
        target[True] = "b"
        del target["x"]
        target["x"] = 5
        target |= {2.5: "f"}
    assert d == ref and typed(d.items()) == typed(ref.items())
    assert list(reversed(d)) == list(reversed(ref)) and list(d.values()) == list(ref.values())
    assert d.pop("z") == ref.pop("z") and d.popitem() == ref.popitem()
    with pytest.raises(KeyError):
        d["nope"]
    with pytest.raises(KeyError):
        del d[(1, 2)]
    with pytest.raises(TypeError):
        d[[1]] = 0  # unhashable, as in dict
    assert d.get((1, 2), "default") == "default" and (1, 2) not in d


# -- atomicity of put_many, the recorded serializer, typed errors ----------------------------------


def test_put_many_with_a_bad_entry_writes_nothing(store: Any) -> None:
    c = store.collection("atomic")
    c.put_many([("a", 1), ("b", 2)])

    def failing() -> Iterator[tuple[str, int]]:
        yield "c", 3
        raise RuntimeError("the source failed")

    bad_calls: list[tuple[Callable[[], Any], type[BaseException]]] = [
        (lambda: c.put_many([("a", 10), ("c", 3), ("d", object())]), SerializationError),
        (lambda: c.put_many({"a": 10, "c": 3, "d": {1, 2}}), SerializationError),
        (lambda: c.put_many([("a", 10), ("c", 3), ("d", float("nan"))]), SerializationError),
        (lambda: c.put_many([("a", 10), ("c", 3), (None, 4)]), InvalidKey),
        (lambda: c.put_many([("a", 10), ("c", 3), (2**64 + 1, 4)]), InvalidKey),
        (lambda: c.put_many([("a", 10), ("c", 3)], ttl=-1), InvalidTTL),
        (lambda: c.put_many([("a", 10), ("c", 3, "three")]), ValueError),
        (lambda: c.put_many(failing()), RuntimeError),
    ]
    for call, error in bad_calls:
        with pytest.raises(error):
            call()
        assert list(c.items()) == [("a", 1), ("b", 2)], error
        assert c.ttl("a") is None


def test_serializer_is_recorded(make_store: StoreMaker) -> None:
    store = make_store()
    p = store.collection("p", serializer="pickle")
    value = (1, {2, 3}, b"raw", datetime.date(2024, 1, 2))
    p.put("k", value)
    assert p.get("k") == value and type(p.get("k")) is tuple
    store.collection("j").put("k", (1, 2))
    assert store.collection("j").get("k") == [1, 2]  # JSON: tuples come back as lists, on every backend
    with pytest.raises(SerializerMismatch) as raised:
        store.collection("p")
    default = make_store.location.options.get("serializer", "json")
    assert (raised.value.collection, raised.value.stored, raised.value.requested) == ("p", "pickle", default)
    with pytest.raises(SerializerMismatch):
        store.collection("j", serializer="pickle")
    assert store.serializer_of("p") == "pickle" and store.serializer_of("j") == default
    assert store.serializer_of("missing") is None
    if make_store.persistent:  # the record is in the store, not in the object
        store.close()
        again = make_store()
        with pytest.raises(SerializerMismatch):
            again.collection("p")
        assert again.collection("p", serializer="pickle").get("k") == value
        pickled = make_store(serializer="pickle")
        assert pickled.collection("p").get("k") == value
        with pytest.raises(SerializerMismatch):
            pickled.collection("j")
        assert pickled.serializer_of("j") == default


class UpperText(kvlite.Serializer):
    """A serializer that returns (non-JSON) text: every backend must give the text back as ``str``."""

    name = "conformance-upper-text"

    def dumps(self, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError("text only")
        return "<" + value.upper() + ">"

    def loads(self, data: str | bytes) -> Any:
        assert isinstance(data, str), f"a text serializer got {type(data).__name__} back"
        return data[1:-1]


def test_values_round_trip_exactly(store: Any) -> None:
    j = store.collection("json")
    docs = ["", "nul \x00 inside", "\u2028\u2029 é 日本 🎉", 2**63 - 1, -(2**63), 2**64 - 1, 1e308, 5e-324, -0.0, 0.1,
            True, None, [], {}, {"nested": [{"a": [1, {"b": None}]}], "": "empty key"}, "x" * 2_000_000,
            [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]
    j.put_many((i, doc) for i, doc in enumerate(docs))
    assert strict(list(j.values())) == strict(docs)
    with pytest.raises(SerializationError):
        j.put("surrogate", "\ud800")
    p = store.collection("pickle", serializer="pickle")
    values = [(1, "tuple"), {1, 2}, frozenset({"a"}), b"\x00\xff", bytearray(b"ba"), 1 + 2j, 2**200, float("nan"),
              datetime.datetime(2024, 1, 2, 3, 4, 5), Point(1, 2), {(1, 2): "tuple key"}, "str", b""]
    p.put_many((i, v) for i, v in enumerate(values))
    got = list(p.values())
    assert [type(v) for v in got] == [type(v) for v in values]
    assert got[:7] == values[:7] and got[8:] == values[8:] and math.isnan(got[7])
    t = store.collection("text", serializer=UpperText())
    t.put("k", "abc")
    t.put_many({"e": "", "u": "é\x00"})
    assert list(t.items()) == [("k", "ABC"), ("e", ""), ("u", "É\x00")]
    with pytest.raises(SerializationError):
        t.put("n", 1)


@pytest.mark.parametrize("bad_key", [None, (1, 2), [1], frozenset(), object(), float("nan"), 2**63 + 1, -(2**63) - 1,
                                     "\ud800", "x" * ((1 << 20) + 1)], ids=repr)
def test_bad_keys_raise_invalid_key_and_write_nothing(store: Any, bad_key: Any) -> None:
    c = store.collection("badkeys")
    c.put("ok", 1)
    for call in (lambda: c.put(bad_key, 1), lambda: c.get(bad_key), lambda: c.delete(bad_key),
                 lambda: c.ttl(bad_key), lambda: c.setdefault(bad_key, 1), lambda: c.get_many(["ok", bad_key]),
                 lambda: c.delete_many(["ok", bad_key]), lambda: c.ttl_many([bad_key]),
                 lambda: c.put_many([("a", 1), (bad_key, 2)])):
        with pytest.raises(InvalidKey):
            call()
    assert isinstance(InvalidKey(), TypeError)
    assert bad_key not in c and c.pop(bad_key, "d") == "d"
    assert list(c.items()) == [("ok", 1)]


@pytest.mark.parametrize("bad_ttl", [0, -1, -0.5, float("nan"), math.inf, "10", True, datetime.timedelta(0),
                                     datetime.timedelta(seconds=-1), 10**400], ids=repr)
def test_bad_ttls_raise_invalid_ttl_and_write_nothing(store: Any, bad_ttl: Any) -> None:
    c = store.collection("badttl")
    c.put("a", 1)
    for call in (lambda: c.put("a", 2, ttl=bad_ttl), lambda: c.put("b", 2, ttl=bad_ttl),
                 lambda: c.put_many({"b": 2}, ttl=bad_ttl), lambda: c.setdefault("b", 2, ttl=bad_ttl)):
        with pytest.raises(InvalidTTL):
            call()
    assert list(c.items()) == [("a", 1)] and c.ttl("a") is None


@pytest.mark.parametrize("bad_value", [object(), {1, 2}, b"bytes", float("nan"), [math.inf], {1: "int key"}, 2**64,
                                       datetime.datetime(2024, 1, 1)], ids=repr)
def test_values_json_cannot_keep_raise_serialization_error(store: Any, bad_value: Any) -> None:
    c = store.collection("badvalues")
    c.put("a", 1)
    for call in (lambda: c.put("a", bad_value), lambda: c.put("b", bad_value), lambda: c.setdefault("b", bad_value),
                 lambda: c.dict().__setitem__("b", bad_value)):
        with pytest.raises(SerializationError):
            call()
    assert isinstance(SerializationError(), ValueError)
    assert list(c.items()) == [("a", 1)]


@pytest.mark.parametrize("bad_name", ["", "x" * 256, "a\x00b", "\ud800", 7, None], ids=repr)
def test_bad_collection_names(store: Any, bad_name: Any) -> None:
    with pytest.raises(InvalidCollectionName):
        store.collection(bad_name)
    assert store.collections() == []


# -- queries: the oracle of tests/test_query_differential.py ---------------------------------------

DOCS: list[tuple[Any, Any, float | None]] = [
    ("u1", {"name": "Ada", "age": 36, "email": "ada@x", "tags": ["a", "b"], "x": 1}, None),
    ("u2", {"name": "Bob", "age": 25, "address": {"x": 2, "email": "bob@x"}}, 100.0),
    (3, {"name": "Cy", "age": 41, "tags": [], "x": [{"x": 3}]}, None),
    (b"k4", {"name": "Di", "age": None}, None),
    ("gone", {"name": "Expired", "age": 99, "email": "old@x"}, 5.0),
    (4.5, [1, {"x": 4}], None),
    (True, "scalar", None),
    ("u7", {"name": "Ed", "age": 30.5, "email": None, "score": "12"}, 50.0),
    ("é", {"name": "Zoë", "age": 7, "tags": ["c"], "address": {"city": "Kraków"}}, None),
]
JSONPATHS = [
    "$", "$.*", "$[*]", "$..*", "$.u1", "$.u1.tags[*]", "$.u1.tags[0]", "$['3'].name", "$.*.name", "$..x",
    "$..email", "$[0]", "$[-1]", "$[1:3]", "$[::-1].name", "$[?(@.age > 30)]", "$[?(@.age > 30)].name",
    "$[?(@.age >= 25 & @.age < 41)]", "$[?(@.email)]", "$[?(@.name == 'Bob')].address.x", "$[?(@.age < 30)]",
    "$[?(@.name != 'Ada')].age", "$[?(@.score > 5)]", "$[?(@.address.city == 'Kraków')].name", "$.gone",
    "($.u1.name) | ($..city)", "$[?(@.age == 36.0)]", "$[?(@.tags)].tags[*]",
]
OBJECTPATHS = [
    "$.*", "$.*[@.age > 30]", "$.*[@.age > 30].name", "$.*[@.name is 'Bob'].address.x", "count($.*)",
    "len($.*[@.age >= 25])", "$..email", "$.u1.name", "$.*[0]", "$.*[-1]", "$.*[@.age < 30 or @.name is 'Ada']",
    "$.gone", "sum($.*[@.age > 0].age)",
]


def fill_docs(store: Any, clock: Clock, name: str = "docs", serializer: str = "json") -> tuple[Any, dict, dict]:
    """:data:`DOCS` in a new collection, one entry expired; ``(collection, oracle mapping, view key -> key)``."""
    coll = store.collection(name, serializer=serializer)
    for key, doc, ttl in DOCS:
        coll.put(key, doc, ttl=ttl)
    clock.advance(10)  # "gone" has expired
    live = [(k, d) for k, d, ttl in DOCS if ttl is None or ttl > 10]
    assert strict(list(coll.items())) == strict(live)
    return coll, {view_key(k): d for k, d in live}, {view_key(k): k for k, _ in live}


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_jsonpath_queries_match_the_oracle(store: Any, clock: Clock, serializer: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helpers_query, "event", lambda *args: None)  # a Hypothesis-only statistic
    coll, mapping, originals = fill_docs(store, clock, serializer=serializer)
    for path in JSONPATHS:
        check_jsonpath(coll, path, mapping, originals, (1, 2))
    indexed = []
    for path in ("$.age", "$.name", "$.address.city"):
        try:
            indexed.append(coll.create_index(path))
        except NotSupported:  # memory:// and Redis have no indexes; pickle collections neither
            pass
    assert sorted(coll.indexes()) == sorted(indexed)
    for path in JSONPATHS:
        check_jsonpath(coll, path, mapping, originals, (0, 3))


def test_objectpath_queries_match_the_oracle(store: Any, clock: Clock) -> None:
    coll, mapping, _ = fill_docs(store, clock)
    for path in OBJECTPATHS:
        parsed = qop.parse(path)
        expected = op_outcome(lambda parsed=parsed: qop.evaluate(parsed, mapping))
        assert op_outcome(lambda path=path: coll.select(path, engine="objectpath")) == expected, path
        if expected[0] == "ok":
            assert coll.count(path, engine="objectpath") == len(expected[1])
            if parsed.rowwise:
                for key, value in coll.find(path, engine="objectpath"):
                    assert contains(mapping[view_key(key)], value), (path, key, value)


def test_query_errors_are_typed(store: Any, clock: Clock) -> None:
    coll, _, _ = fill_docs(store, clock)
    for path, engine in (("$[?(@.age >", "jsonpath"), ("$.*[", "objectpath")):
        with pytest.raises(QuerySyntaxError):
            list(coll.find(path, engine=engine))
    # jsonpath-ng compares int(value) with an int literal: Ed's 30.5 is not > 30, but is > 30.0.
    assert list(coll.select("$[?(@.age > 30)].name")) == ["Ada", "Cy"]
    assert list(coll.select("$[?(@.age > 30.0)].name")) == ["Ada", "Cy", "Ed"]
    assert list(coll.select("$[?(@.age > 30.0)].name", limit=1)) == ["Ada"]
    assert list(coll.select("$[?(@.age > 30.0)].name", offset=1, limit=5)) == ["Cy", "Ed"]
    assert coll.count("$[?(@.age > 30.0)]") == 3


def test_query_arguments_are_checked_alike(store: Any, clock: Clock) -> None:
    coll, _, _ = fill_docs(store, clock)
    bad_options: list[dict[str, Any]] = [{"limit": -1}, {"offset": -1}, {"limit": "2"}, {"engine": "xpath"}]
    for bad in bad_options:
        with pytest.raises((ValueError, KvliteError)):
            list(coll.find("$.*", **bad))
    with pytest.raises(NotSupported):  # order_by takes a plain field path
        list(coll.find("$.*", order_by="$..name"))


def test_order_by(store: Any, clock: Clock) -> None:
    """``order_by`` sorts the documents the way SQLite's ``ORDER BY json_extract(value, path)`` does
    (missing/null, numbers, text; ties in insertion order), on every backend; JSON collections only."""
    coll, mapping, _ = fill_docs(store, clock)
    for order in ("$.age", "$.name", "$.address.city", "$.tags"):
        for desc in (False, True):
            ordered = dict(sorted(mapping.items(), key=lambda item: sqlite_order_key(item[1], order), reverse=desc))
            for path in ("$.*", "$[?(@.age > 20)].name", "$[0]", "$[-1]", "$[1:3]"):
                expected = [strict(v) for v in qjp.evaluate(qjp.parse(path), ordered)]
                assert [strict(v) for v in coll.select(path, order_by=order, desc=desc)] == expected, (order, path)
        assert key_types(coll.keys()) == key_types(k for k, _, ttl in DOCS if ttl is None or ttl > 10)  # unchanged
    pickled = store.collection("pickled", serializer="pickle")
    pickled.put("a", {"age": 2})
    pickled.put("b", {"age": 1})
    with pytest.raises(NotSupported):  # documented for Collection.find: JSON collections only
        list(pickled.find("$.*", order_by="$.age"))


def _fill_entries(store: Any, clock: Clock, entries: list[Any], serializer: str) -> tuple[Any, list[Any]]:
    """A new collection holding ``entries`` (some expired); ``(collection, its live items by a dict model)``.

    The model is a ``dict``, so equal keys (``1`` and ``True``) merge the way
    the collection must merge them: the first key, the last value and TTL."""
    coll = store.collection(f"q-{uuid.uuid4().hex[:12]}", serializer=serializer)
    model: dict[Any, tuple[Any, str]] = {}
    for key, doc, life in entries:
        coll.put(key, doc, ttl={"live": None, "ttl": 1000.0, "expired": 5.0}[life])
        model[key] = (doc, life)
    clock.advance(10)
    live = [(k, d) for k, (d, life) in model.items() if life != "expired"]
    assert strict(list(coll.items())) == strict(live)
    return coll, live


@settings(max_examples=EXAMPLES or 12, **HYPOTHESIS)
@given(entries=ENTRIES, paths=st.lists(jsonpaths(), min_size=1, max_size=3),
       serializer=st.sampled_from(["json", "json", "pickle"]))
def test_random_jsonpaths_match_the_oracle(store: Any, clock: Clock, entries: list[Any], paths: list[str],
                                           serializer: str) -> None:
    coll, live = _fill_entries(store, clock, entries, serializer)
    mapping, originals = {view_key(k): d for k, d in live}, {view_key(k): k for k, _ in live}
    for path in paths:
        try:
            qjp.parse(path)
        except QuerySyntaxError:
            continue
        check_jsonpath(coll, path, mapping, originals, (1, 2))
    store.drop_collection(coll.name)


@settings(max_examples=EXAMPLES or 12, **HYPOTHESIS)
@given(entries=ENTRIES, path=jsonpaths(), order=st.sampled_from(["$.a", "$.age", "$.a.b", "$.name", "$.tags"]),
       desc=st.booleans())
def test_random_order_by_matches_sqlite_order(store: Any, clock: Clock, entries: list[Any], path: str, order: str,
                                              desc: bool) -> None:
    """The oracle: the documents sorted as SQLite's ``json_extract`` sorts them, then the path on them."""
    coll, live = _fill_entries(store, clock, entries, "json")
    mapping = {view_key(k): d for k, d in live}
    ordered = dict(sorted(mapping.items(), key=lambda item: sqlite_order_key(item[1], order), reverse=desc))
    try:
        tree = qjp.parse(path)
    except QuerySyntaxError:
        return
    expected = [strict(v) for v in qjp.evaluate(tree, ordered)]
    assert [strict(v) for v in coll.select(path, order_by=order, desc=desc)] == expected, (path, order, desc)
    store.drop_collection(coll.name)


@settings(max_examples=EXAMPLES or 10, **HYPOTHESIS)
@given(entries=ENTRIES, paths=st.lists(objectpaths(), min_size=1, max_size=3))
def test_random_objectpaths_match_the_oracle(store: Any, clock: Clock, entries: list[Any], paths: list[str]) -> None:
    coll, live = _fill_entries(store, clock, entries, "json")
    mapping = {view_key(k): d for k, d in live}
    for path in paths:
        parsed = qop.parse(path)
        expected = op_outcome(lambda parsed=parsed: qop.evaluate(parsed, mapping))
        assert op_outcome(lambda path=path: coll.select(path, engine="objectpath")) == expected, path
    store.drop_collection(coll.name)


# -- transactions ------------------------------------------------------------------------------------


def _supports_transactions(store: Any) -> bool:
    try:
        with store.transaction():
            pass
    except NotSupported:
        return False
    return True


def test_transaction_support_is_exactly_what_the_docs_say(store: Any) -> None:
    supported = _supports_transactions(store)
    assert supported is not transaction_documented_as_not_supported(store), (
        f"{type(store).__name__}: transaction() {'works' if supported else 'raises NotSupported'}, "
        "the docs say otherwise")
    flag = getattr(store, "supports_transactions", None)
    assert flag is None or flag is supported


def test_transactions_are_atomic_or_not_supported(store: Any, clock: Clock) -> None:
    a, b = store.collection("a"), store.collection("b")
    a.put_many({"k1": 1, "k2": 2, "k3": 3})
    a.put("t", "ttl", ttl=50)
    b.put("x", "b")
    before = (typed(a.items()), typed(b.items()), a.ttl("t"))
    ran = []

    class Boom(Exception):
        pass

    def body() -> None:
        ran.append(True)
        a.put("k1", "changed")
        a.delete("k2")
        a.put("t", "no ttl now")
        a.put_many({"new": 1, 7: 7})
        assert a.pop("k3") == 3
        b.put("y", "b2")
        b.delete("x")
        assert a.get("k1") == "changed" and "k2" not in a and len(b) == 1  # a block reads its own writes
        raise Boom

    if not _supports_transactions(store):
        with pytest.raises(NotSupported), store.transaction():
            body()
        assert ran == []  # nothing ran, so nothing was half-written
        assert (typed(a.items()), typed(b.items()), a.ttl("t")) == before
        if a.store is not store:  # per-collection: the documented way to be atomic inside one collection
            with pytest.raises(Boom), a.store.transaction():
                a.put("k1", "changed")
                a.delete("k2")
                raise Boom
            assert typed(a.items()) == before[0]
        return

    with pytest.raises(Boom), store.transaction():
        body()
    assert ran == [True]
    assert (typed(a.items()), typed(b.items())) == before[:2]  # deleted keys are back in their places
    assert a.ttl("t") == pytest.approx(before[2], abs=TTL_TOLERANCE)

    with store.transaction():
        a.put("k1", "committed")
        b.put("y", "committed")
        with pytest.raises(Boom), store.transaction():  # a nested block undoes only its own writes
            a.put("k2", "inner")
            b.delete("x")
            raise Boom
        assert a.get("k2") == 2 and b.get("x") == "b"
        with store.transaction():
            a.put("inner", "kept")
    assert a.get("k1") == "committed" and a.get("inner") == "kept" and a.get("k2") == 2
    assert typed(b.items()) == typed([("x", "b"), ("y", "committed")])


def test_rolled_back_transactions_undo_collection_changes(store: Any) -> None:
    """Creating, clearing or dropping a collection inside a block that raises is undone too."""
    keep = store.collection("keep")
    keep.put_many({"a": 1, "b": 2})

    class Boom(Exception):
        pass

    if not _supports_transactions(store):
        return  # covered by test_transactions_are_atomic_or_not_supported
    with pytest.raises(Boom), store.transaction():
        store.collection("created").put("k", 1)
        keep.clear()
        raise Boom
    assert store.collections() == ["keep"] and list(keep.items()) == [("a", 1), ("b", 2)]
    with pytest.raises(Boom), store.transaction():
        store.drop_collection("keep")
        raise Boom
    assert store.collections() == ["keep"]
    assert list(store.collection("keep").items()) == [("a", 1), ("b", 2)]
    keep.put("c", 3)  # the object from before the block still works
    assert list(store.collection("keep").keys()) == ["a", "b", "c"]
    with pytest.raises(Boom), store.transaction():
        store.drop_collection("keep")
        store.collection("keep").put("z", 0)  # a new collection under the old name
        temp = store.collection("temp")
        temp.put("k", 1)
        store.drop_collection("temp")
        raise Boom
    assert store.collections() == ["keep"]
    assert list(keep.items()) == list(store.collection("keep").items()) == [("a", 1), ("b", 2), ("c", 3)]
    with pytest.raises(KvliteError):
        temp.put("k", 2)  # its collection never existed outside the block
    assert store.collection("created").get("k") is None and store.collection("temp").get("k") is None


# -- kvlite.copy from every backend to every other ---------------------------------------------------

COPY_PAIRS = [(src, dst) for src in BACKENDS for dst in BACKENDS if src != dst]


def _source_entries() -> list[tuple[Any, Any, float | None]]:
    return [
        ("plain", {"name": "Ada", "tags": ["a"]}, None),
        (2, [1, 2.5, None], 100.0),
        (b"\x00k", "bytes key", None),
        (True, {"bool": "key"}, 5.0),  # expires before the copy
        (2.5, None, 40.0),
        ("é", 0, None),
    ]


@pytest.mark.parametrize(("source", "target"), COPY_PAIRS, ids=[f"{s}->{d}" for s, d in COPY_PAIRS])
def test_copy_between_backends(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock, source: str,
                               target: str) -> None:
    src = new_location(source, request, tmp_path).open(clock)
    dst = new_location(target, request, tmp_path).open(clock)
    try:
        users = src.collection("users")
        for key, value, ttl in _source_entries():
            users.put(key, value, ttl=ttl)
        src.collection("empty")
        clock.advance(10)
        expected = [(k, v) for k, v, ttl in _source_entries() if ttl is None or ttl > 10]
        counts = kvlite.copy(src, dst, serializer="pickle", progress=False)
        assert counts == {"users": len(expected), "empty": 0}
        assert sorted(dst.collections()) == ["empty", "users"]
        assert dst.serializer_of("users") == "pickle" and dst.serializer_of("empty") == "pickle"
        with pytest.raises(SerializerMismatch):
            dst.collection("users")  # the copy is recorded as pickle, not the source's json
        copied = dst.collection("users", serializer="pickle")
        assert sorted(typed(copied.items()), key=repr) == sorted(typed(expected), key=repr)  # values and key types
        keys = [k for k, _ in expected]
        assert copied.ttl_many(keys) == [None if t is None else pytest.approx(t, abs=TTL_TOLERANCE)
                                         for t in users.ttl_many(keys)]  # remaining TTLs
        assert key_types(copied.keys()) == key_types(keys)  # insertion order
        clock.advance(30)  # the remaining TTLs run on in the copy
        assert copied.get(2.5) is None and copied.get(2) == [1, 2.5, None]
        assert strict(list(users.items())) == strict([e for e in expected if e[0] != 2.5])  # source untouched
    finally:
        src.close()
        dst.close()


# -- review fixes: the same behaviour on every backend -------------------------------------------------


def test_collection_changes_in_a_rolled_back_savepoint_are_undone(store: Any) -> None:
    """A nested block that creates and drops collections and raises, inside a block that commits."""
    if not _supports_transactions(store):
        return  # covered by test_transactions_are_atomic_or_not_supported
    keep = store.collection("keep")
    keep.put("k", 1)

    class Boom(Exception):
        pass

    with store.transaction():
        with pytest.raises(Boom), store.transaction():
            made = store.collection("new")
            made.put("a", 1)
            store.drop_collection("keep")
            raise Boom
        keep.put("in-outer", 2)  # the drop was undone: the old object works again in the block
    assert store.collections() == ["keep"]
    assert list(store.collection("keep").items()) == [("k", 1), ("in-outer", 2)]
    keep.put("k2", 3)
    assert list(store.collection("keep").keys()) == ["k", "in-outer", "k2"]
    with pytest.raises(KvliteError):
        made.put("b", 2)  # its collection never existed outside the savepoint
    fresh = store.collection("new")  # the name is free again: a new, empty collection
    assert list(fresh.items()) == []
    fresh.put("b", 2)
    assert list(store.collection("new").items()) == [("b", 2)]


def _dropped_calls(c: Any) -> list[Callable[[], Any]]:
    return [lambda: c.get("k"), lambda: c.put("k", 2), lambda: len(c), lambda: list(c.items()),
            lambda: c.delete("k"), lambda: c.clear(), lambda: c.purge_expired(), lambda: c.put_many({"a": 1}),
            lambda: "k" in c, lambda: c.ttl("k"), lambda: c.get_many(["k"])]


def test_every_call_through_a_dropped_collection_object_raises(make_store: StoreMaker) -> None:
    """As on SQLite: the collection is gone, so every call through an old object raises
    KvliteError (never an empty answer, never a write into nowhere) -- dropped by this store,
    or by another one of the same persistent store."""
    store = make_store()
    mine = store.collection("c")
    mine.put("k", 1)
    stores = [store, make_store()] if make_store.persistent else [store]
    for dropper in stores:
        old = store.collection("c")
        old.put("k", 1)
        assert dropper.drop_collection("c") is True
        for call in _dropped_calls(old):
            with pytest.raises(CollectionDropped, match="dropped"):
                call()
        fresh = store.collection("c")  # the registry is read again: a new, empty collection
        assert fresh is not old and len(fresh) == 0
        fresh.put("new", 2)
        assert list(dropper.collection("c").items()) == [("new", 2)]
        with pytest.raises(CollectionDropped, match="dropped"):
            old.put("k", 3)  # not into the new collection either
        assert dropper.drop_collection("c") is True
    for call in _dropped_calls(mine):
        with pytest.raises(CollectionDropped, match="dropped"):
            call()


def test_a_collection_made_again_by_another_store_is_seen(make_store: StoreMaker) -> None:
    """Another client drops a collection and makes it again, with another serializer: this store's
    collection(name) checks the registry (SerializerMismatch), never hands out the old object."""
    if not make_store.persistent:
        return
    a, b = make_store(), make_store()
    old = a.collection("c")
    old.put("old", 1)
    b.drop_collection("c")
    b.collection("c", serializer="pickle").put("new", (2,))
    with pytest.raises(SerializerMismatch):
        a.collection("c")
    assert a.serializer_of("c") == "pickle"
    assert list(a.collection("c", serializer="pickle").items()) == [("new", (2,))]
    with pytest.raises(CollectionDropped, match="dropped"):
        old.put("z", 3)
    assert list(b.collection("c", serializer="pickle").items()) == [("new", (2,))]
    b.drop_collection("c")
    b.collection("c").put("third", 3)  # the same serializer again: still a new collection
    assert list(a.collection("c").items()) == [("third", 3)]


def test_a_huge_ttl_is_kept_and_copied(store: Any, clock: Clock) -> None:
    """ttl=1e300 (SQLite keeps it as it is): accepted everywhere, never expires, ttl() is a finite
    number kvlite accepts as a TTL again (PostgreSQL caps it at the year ~293,500: documented), so
    kvlite.copy works from and to every backend."""
    c = store.collection("c")
    c.put("k", 1, ttl=1e300)
    c.put_many({"m": 2}, ttl=1e300)
    left = c.ttl("k")
    assert math.isfinite(left) and left > 7e12
    c.put("again", 3, ttl=left)  # what kvlite.copy does with it
    clock.advance(1e12)
    assert c.get("k") == 1 and c.get("m") == 2 and c.get("again") == 3
    copy = kvlite.open("memory://", clock=clock)
    try:
        assert kvlite.copy(store, copy, serializer="json", progress=False) == {"c": 3}
        assert copy.collection("c").ttl("k") > 7e12
    finally:
        copy.close()
    source = kvlite.open("memory://", clock=clock)
    try:
        source.collection("far").put("k", 1, ttl=1e300)
        kvlite.copy(source, store, progress=False)
        far = store.collection("far", serializer="json")
        assert far.get("k") == 1 and far.ttl("k") > 7e12
    finally:
        source.close()


class BytesJSON(kvlite.Serializer):
    """A JSON serializer whose dumps returns bytes (as orjson.dumps does)."""

    name = "conformance-bytes-json"
    json = True

    def dumps(self, value: Any) -> bytes:
        import orjson

        return orjson.dumps(value)

    def loads(self, data: str | bytes) -> Any:
        import orjson

        assert isinstance(data, bytes), f"a bytes serializer got {type(data).__name__} back"
        return orjson.loads(data)


class BadText(kvlite.Serializer):
    """A serializer returning text that is not valid Unicode (cannot be stored as UTF-8)."""

    name = "conformance-bad-text"

    def dumps(self, value: Any) -> str:
        return "ok" if value == "ok" else "\udcff"

    def loads(self, data: str | bytes) -> Any:
        return data


def test_serializer_output_types_come_back_alike(store: Any) -> None:
    j = store.collection("j", serializer=BytesJSON())
    j.put("k", {"a": [1, "é"]})
    j.put_many({"m": 2})
    assert j.get("k") == {"a": [1, "é"]} and list(j.items()) == [("k", {"a": [1, "é"]}), ("m", 2)]
    assert [v for _, v in j.find("$[?(@.a)]")] == [{"a": [1, "é"]}]
    t = store.collection("t", serializer=BadText())
    t.put("good", "ok")
    for call in (lambda: t.put("k", 1), lambda: t.put_many({"x": 1}), lambda: t.setdefault("k", 1)):
        with pytest.raises(SerializationError):
            call()
    assert list(t.items()) == [("good", "ok")]


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_durability_full_is_given_or_refused(make_store: StoreMaker, durability: str,
                                              request: pytest.FixtureRequest) -> None:
    """durability='full' is either given or refused with NotSupported, never ignored: memory://
    keeps nothing on disk; the test servers run without fsync (PostgreSQL fsync=off, Redis
    appendonly no), so they refuse it (tests/test_backend_*.py show them accepting it)."""
    refuses = make_store.backend in {"memory", "sqlite-memory", "redis", "postgresql"}
    if durability == "full" and refuses:
        with pytest.raises(NotSupported, match="durability"):
            make_store(durability=durability)
        return
    store = make_store(durability=durability)
    assert store.durability == durability
    store.collection("c").put("k", 1)
    assert store.collection("c").get("k") == 1


def test_null_store_keeps_nothing_and_refuses_full_durability(clock: Clock) -> None:
    with kvlite.open("null://", clock=clock) as null:
        c = null.collection("c")
        assert null.collection("c") is c
        c.put("k", 1)
        assert c.get("k") is None and len(c) == 0 and null.collections() == []
        with pytest.raises(SerializerMismatch):
            null.collection("c", serializer="pickle")
        assert null.drop_collection("c") is False
        c.put("k", 2)  # still usable: there was nothing to drop
    with pytest.raises(NotSupported, match="durability"):
        kvlite.open("null://", durability="full")
    with pytest.raises(ValueError):
        kvlite.open("memory://", durability="sometimes")


def test_a_transaction_waits_for_another_threads_block_up_to_the_timeout(make_store: StoreMaker) -> None:
    """As SQLite's BEGIN IMMEDIATE: a second block waits for the first up to ``timeout``, then raises
    StoreLocked (memory:// used to wait without limit)."""
    import threading
    import time

    from kvlite.errors import StoreLocked

    # A private store (":memory:", memory://) is one store shared by both threads: its timeout applies.
    holder = make_store() if make_store.persistent else make_store(timeout=0.2)
    if not _supports_transactions(holder):
        return
    holder.collection("c").put("k", 0)
    quick = make_store(timeout=0.2) if make_store.persistent else holder
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transaction():
            holder.collection("c").put("k", 1)
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert entered.wait(10)
        started = time.monotonic()
        with pytest.raises(StoreLocked):
            with quick.transaction():
                pass
        assert time.monotonic() - started < 4
    finally:
        release.set()
        thread.join()
    with quick.transaction():
        quick.collection("c").put("k", 2)
    assert holder.collection("c").get("k") == 2


def test_the_key_value_protocol_runs_on_every_backend(make_store: StoreMaker) -> None:
    """kvlite.KeyValue over any store: collection names of any length, destroy_collection() and
    destroy() (which use a transaction only where the store has them)."""
    kv = kvlite.KeyValue(make_store())
    long_name = "c" * 400
    kv.put("k", {"a": 1}, collection=long_name)
    kv.put("k", {"a": 2}, collection="short", ttl=60)
    assert kv.get("k", collection=long_name) == {"a": 1}
    assert kv.ttl("k", collection="short")[0] == {"a": 2}
    assert sorted(kv.collections()) == sorted([long_name, "short"])
    assert kv.destroy_collection(long_name) is True and kv.collections() == ["short"]
    assert kv.get("k", collection=long_name) is None
    assert kv.destroy() is True and kv.collections() == []


def test_keys_added_while_iterating_are_not_visited(make_store: StoreMaker) -> None:
    """Iteration covers the entries there when it began, over several pages, on every backend:
    adding keys in the loop never makes it endless (dict would raise RuntimeError)."""
    view = make_store().dict("grow")
    view.update((f"k{i:04d}", i) for i in range(2100))
    assert sum(1 for key in view if view.__setitem__(key + "+", 0) is None) == 2100
    assert sum(1 for key, _ in view.items() if view.__setitem__(key + "-", 0) is None) == 4200
    assert sum(1 for key in reversed(view) if view.__setitem__(key + "~", 0) is None) == 8400
    assert len(view) == 16800


def test_a_query_never_reads_documents_added_while_it_runs(make_store: StoreMaker) -> None:
    """A pushed-down filter (SQL on SQLite and PostgreSQL) is bounded like plain iteration."""
    coll = make_store().collection("grow")
    coll.put_many((f"k{i:04d}", {"n": i}) for i in range(1500))
    seen = 0
    for key, _ in coll.find("$[?(@.n >= 0)]"):
        coll.put(key + "+", {"n": 1})
        seen += 1
    assert seen == 1500 and len(coll) == 3000
