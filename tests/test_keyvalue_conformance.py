"""Conformance with the py-key-value protocol, from its documented semantics.

Written from ``key_value/aio/protocols/key_value.py`` (the protocol and its
docstrings) and ``key_value/aio/stores/base.py`` (what every py-key-value
store does: ``collection or default_collection``, ``(None, None)`` for a
missing ``ttl``, ``ValueError`` on a ``put_many`` length mismatch, TTL
validation, a new ``dict`` from every read).  Every test runs against the
three implementations through one synchronous facade:

* ``sync`` - :class:`kvlite.KeyValue` (kvlite's own errors);
* ``aio``  - :class:`kvlite.aio.KeyValue` (kvlite's own errors);
* ``pykv`` - :class:`kvlite.integrations.pykv.KvliteStore` (py-key-value's errors).

The async ones run on an event loop in a background thread.  Deliberate
differences from py-key-value (see ``docs/protocol.md``) are tested as such.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import enum
import inspect
import threading
import types
import uuid
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

pytest.importorskip("key_value.aio", reason="the conformance suite needs py-key-value-aio (the test extra)")

import orjson  # noqa: E402
from key_value.aio import errors as pykv_errors  # noqa: E402
from key_value.aio.protocols import key_value as protocols  # noqa: E402

import kvlite  # noqa: E402
import kvlite.aio  # noqa: E402
import kvlite.keyvalue  # noqa: E402
from kvlite import errors  # noqa: E402
from kvlite.integrations.pykv import KvliteStore  # noqa: E402

IMPLS = ["sync", "aio", "pykv"]


class Loop:
    """An event loop on a daemon thread; ``run(coro)`` waits for the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-kv-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


class KV:
    """One implementation behind synchronous calls, with the error types it promises."""

    def __init__(self, kind: str, impl: Any, loop: Loop | None, path: Path) -> None:
        self.kind = kind
        self.impl = impl
        self.loop = loop
        self.path = path
        if kind == "pykv":
            self.InvalidTTL: type[Exception] = pykv_errors.InvalidTTLError
            self.SerializationError: type[Exception] = pykv_errors.SerializationError
            self.InvalidName: type[Exception] = pykv_errors.InvalidKeyError
            self.ReadOnly: type[Exception] = pykv_errors.ReadOnlyError
        else:
            self.InvalidTTL = errors.InvalidTTL
            self.SerializationError = errors.SerializationError
            self.InvalidName = errors.InvalidCollectionName
            self.ReadOnly = errors.ReadOnlyError

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.impl, name)
        if self.loop is None:
            return method  # type: ignore[no-any-return]
        loop = self.loop
        return lambda *args, **kwargs: loop.run(method(*args, **kwargs))


@pytest.fixture
def make(tmp_path: Path, clock: Any) -> Iterator[Callable[..., KV]]:
    """``make(kind, **options)``: a facade on a new store file (``readonly=``, ``default_collection=``)."""
    closers: list[Callable[[], None]] = []
    counter = iter(range(1000))

    def factory(kind: str, *, path: Path | None = None, readonly: bool = False, **options: Any) -> KV:
        path = path or tmp_path / f"kv{next(counter)}.db"
        if kind == "sync":
            store = kvlite.open(path, clock=clock, readonly=readonly)
            closers.append(store.close)
            return KV(kind, kvlite.KeyValue(store, **options), None, path)
        loop = Loop()
        if kind == "aio":
            astore = loop.run(kvlite.aio.open(path, clock=clock, readonly=readonly))
            impl: Any = kvlite.aio.KeyValue(astore, **options)
            closers.append(lambda: (loop.run(astore.close()), loop.close()))
        else:
            impl = KvliteStore(str(path), clock=clock, readonly=readonly, **options)
            closers.append(lambda: (loop.run(impl.close()), loop.close()))
        return KV(kind, impl, loop, path)

    yield factory
    for close in reversed(closers):
        close()


@pytest.fixture(params=IMPLS)
def kv(request: pytest.FixtureRequest, make: Callable[..., KV]) -> KV:
    return make(request.param)


def _file(kv: KV, clock: Any) -> kvlite.Store:
    """A second, independent connection to the implementation's file."""
    return kvlite.open(kv.path, clock=clock)


# -- reads of what is not there ----------------------------------------------------------------


def test_missing_key_reads_as_none(kv: KV) -> None:
    assert kv.get("nope") is None
    assert kv.ttl("nope") == (None, None)
    assert kv.get_many(["nope", "nope2"]) == [None, None]
    assert kv.ttl_many(["nope"]) == [(None, None)]
    assert kv.delete("nope") is False
    assert kv.delete_many(["nope"]) == 0
    assert kv.get("nope", collection="never-written") is None
    assert kv.keys("never-written") == []


# -- values --------------------------------------------------------------------------------------


def test_put_get_round_trip_returns_a_new_dict(kv: KV) -> None:
    value = {"name": "Ada", "n": 3, "f": 1.5, "ok": True, "none": None, "list": [1, "two", {"x": []}],
             "nested": {"deep": {"deeper": "é☃"}}}
    kv.put("k", value)
    got = kv.get("k")
    assert got == value and type(got) is dict
    got["name"] = "changed"
    got["list"].append("more")
    assert kv.get("k") == value  # the store kept its own copy
    kv.put("k", {"replaced": 1})
    assert kv.get("k") == {"replaced": 1}


def test_any_mapping_is_accepted_and_read_back_as_dict(kv: KV) -> None:
    kv.put("proxy", types.MappingProxyType({"a": 1}))
    assert kv.get("proxy") == {"a": 1} and type(kv.get("proxy")) is dict
    kv.put("empty", {})
    assert kv.get("empty") == {}  # an empty value is a value, not a miss
    assert kv.ttl("empty") == ({}, None)
    assert kv.get_many(["empty"]) == [{}]


@pytest.mark.parametrize("bad", [[1, 2], "text", 5, None, {1: "int key"}, {("t",): 1}, {b"b": 1}])
def test_values_must_be_string_keyed_mappings(kv: KV, bad: Any) -> None:
    with pytest.raises(TypeError):
        kv.put("k", bad)
    with pytest.raises(TypeError):
        kv.put_many(["a", "b"], [{"ok": 1}, bad])
    assert kv.get_many(["k", "a", "b"]) == [None, None, None]  # nothing written


@pytest.mark.parametrize("bad", [{"a set": {1, 2}}, {"nested": {1: "int key"}}, {"obj": object()},
                                 {"nan": float("nan")}, {"big": 2**64}, {"text": "lone \ud800"},
                                 {"\udfff key": 1}, {"nested": ["\ud800"]}])
def test_values_that_json_cannot_keep_are_refused(kv: KV, bad: Any) -> None:
    # py-key-value's JSON stores differ here (json.dumps turns {1: ..} into {"1": ..} and keeps NaN);
    # kvlite refuses rather than change the value: a deliberate difference.
    with pytest.raises(kv.SerializationError):
        kv.put("k", bad)
    with pytest.raises(kv.SerializationError):
        kv.put_many(["a", "k"], [{"ok": 1}, bad])
    assert kv.get_many(["a", "k"]) == [None, None]


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Field(str, enum.Enum):  # enum.StrEnum's behaviour, on Python 3.10 too
    NAME = "name"


class Tag(str):
    pass


UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize("bad", [{"id": UUID}, {"color": Color.RED}, {"deep": [{"ids": (UUID,)}]},
                                 {"deep": {"deeper": {"color": Color.RED}}}, {"raw": orjson.Fragment(b"{}")}],
                         ids=["uuid", "enum", "nested-uuid", "nested-enum", "orjson-fragment"])
def test_values_json_would_change_are_refused(kv: KV, bad: Any) -> None:
    # orjson writes a UUID as its text and an Enum member as its value: read back, the value would have
    # changed.  py-key-value's json.dumps refuses both (SerializationError), and so does kvlite.
    with pytest.raises(kv.SerializationError):
        kv.put("k", bad)
    with pytest.raises(kv.SerializationError):
        kv.put_many(["a", "k"], [{"ok": 1}, bad])
    assert kv.get_many(["a", "k"]) == [None, None]


def test_str_and_int_enum_values_are_stored_as_their_plain_value(kv: KV) -> None:
    # They *are* str / int (json.dumps writes them as such in py-key-value too), like a str subclass.
    kv.put("k", {"level": Level.HIGH, "field": Field.NAME, "tag": Tag("t"), "list": [Level.HIGH]})
    got = kv.get("k")
    assert got == {"level": 3, "field": "name", "tag": "t", "list": [3]}
    assert [type(v) for v in (got["level"], got["field"], got["tag"])] == [int, str, str]


@pytest.mark.parametrize("value, stored", [
    ({Field.NAME: "Ada"}, {"name": "Ada"}),
    ({Tag("name"): "Ada", "n": 1}, {"name": "Ada", "n": 1}),
    ({"user": {Field.NAME: "Ada", "tags": [{Tag("x"): 1}]}}, {"user": {"name": "Ada", "tags": [{"x": 1}]}}),
], ids=["str-enum-key", "str-subclass-key", "nested"])
def test_str_subclass_dict_keys_are_stored_as_plain_str(kv: KV, value: Any, stored: Any) -> None:
    # A Mapping[str, Any] whose keys are str subclasses: py-key-value stores them (as plain str, which
    # is all JSON keeps); orjson alone refuses them.
    kv.put("k", value)
    kv.put_many(["m"], [value])
    for got in (kv.get("k"), kv.get("m")):
        assert got == stored

        def key_types(node: Any) -> set[type]:
            if isinstance(node, dict):
                return {type(k) for k in node} | set().union(*map(key_types, node.values()))
            if isinstance(node, list):
                return set().union(*map(key_types, node))
            return set()

        assert key_types(got) == {str}


def test_values_nested_deeper_than_json_allows_are_refused(kv: KV) -> None:
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    with pytest.raises(kv.SerializationError):
        kv.put("k", {"deep": deep})
    fine: Any = 1
    for _ in range(250):
        fine = [fine]
    kv.put("k", {"fine": fine})
    assert kv.get("k") == {"fine": fine}


def test_with_pickle_uuids_and_enums_are_kept_exactly(tmp_path: Path) -> None:
    # The refusal is about what JSON would change: a pickled collection keeps them as they are.
    with kvlite.open(tmp_path / "p.db", serializer="pickle") as store:
        kv = kvlite.KeyValue(store)
        kv.put("k", {"id": UUID, "color": Color.RED, Field.NAME: 1})
        got = kv.get("k")
        assert got == {"id": UUID, "color": Color.RED, "name": 1}
        assert type(got["id"]) is uuid.UUID and got["color"] is Color.RED


@pytest.mark.parametrize("bad_key", [1, b"bytes", None, 1.5, ("t",)])
def test_keys_must_be_str(kv: KV, bad_key: Any) -> None:
    with pytest.raises(TypeError):
        kv.get(bad_key)
    with pytest.raises(TypeError):
        kv.put(bad_key, {"a": 1})
    with pytest.raises(TypeError):
        kv.delete(bad_key)
    with pytest.raises(TypeError):
        kv.get_many(["fine", bad_key])
    with pytest.raises(TypeError):
        kv.put_many(["fine", bad_key], [{"a": 1}, {"b": 2}])
    assert kv.get("fine") is None


# -- TTL ----------------------------------------------------------------------------------------------


def test_ttl_semantics_with_a_fake_clock(kv: KV, clock: Any) -> None:
    kv.put("forever", {"v": 1})
    kv.put("short", {"v": 2}, ttl=10)
    assert kv.ttl("forever") == ({"v": 1}, None)
    assert kv.ttl("short") == ({"v": 2}, pytest.approx(10))
    clock.advance(4)
    assert kv.ttl("short") == ({"v": 2}, pytest.approx(6))
    assert kv.ttl_many(["short", "forever", "nope"]) == [({"v": 2}, pytest.approx(6)), ({"v": 1}, None),
                                                         (None, None)]
    clock.advance(6)
    assert kv.get("short") is None
    assert kv.ttl("short") == (None, None)
    assert kv.get_many(["short", "forever"]) == [None, {"v": 1}]
    assert kv.keys() == ["forever"]
    assert kv.delete("short") is False
    kv.put("forever", {"v": 3}, ttl=1)
    kv.put("forever", {"v": 4})  # a put without ttl removes the old one
    clock.advance(100)
    assert kv.ttl("forever") == ({"v": 4}, None)


@pytest.mark.parametrize("ttl", [1, 2.5, Decimal("3.5"), Fraction(9, 2)])
def test_ttl_accepts_supportsfloat(kv: KV, ttl: Any) -> None:
    kv.put("k", {"a": 1}, ttl=ttl)
    kv.put_many(["m"], [{"b": 2}], ttl=ttl)
    assert kv.ttl("k") == ({"a": 1}, pytest.approx(float(ttl)))
    assert kv.ttl("m") == ({"b": 2}, pytest.approx(float(ttl)))


@pytest.mark.parametrize("ttl", [0, -1, -0.5, 0.0, True, False, "10", [10], pytest.param(10**400, id="10**400"),
                                 pytest.param(-10**400, id="-10**400"), pytest.param(10**5000, id="10**5000"),
                                 Decimal("sNaN"), Decimal("1e400"), datetime.timedelta(seconds=5)])
def test_invalid_ttl(kv: KV, ttl: Any) -> None:
    with pytest.raises(kv.InvalidTTL):
        kv.put("k", {"a": 1}, ttl=ttl)
    with pytest.raises(kv.InvalidTTL):
        kv.put_many(["k", "j"], [{"a": 1}, {"b": 2}], ttl=ttl)
    assert kv.get_many(["k", "j"]) == [None, None]


@pytest.mark.parametrize("ttl", [float("nan"), float("inf")])
def test_non_finite_ttl_is_refused(kv: KV, ttl: float) -> None:
    # A deliberate difference: py-key-value's validator lets NaN and infinity through.
    with pytest.raises(kv.InvalidTTL):
        kv.put("k", {"a": 1}, ttl=ttl)
    assert kv.get("k") is None


@pytest.mark.parametrize("ttl", [1e300, 2**63], ids=["1e300", "2**63"])
def test_huge_finite_ttl_is_kept(kv: KV, clock: Any, ttl: float) -> None:
    # A deliberate difference: py-key-value's datetime arithmetic overflows (OverflowError).
    kv.put("k", {"a": 1}, ttl=ttl)
    kv.put_many(["m"], [{"b": 2}], ttl=ttl)
    clock.advance(10**9)
    assert kv.ttl("k") == ({"a": 1}, pytest.approx(float(ttl)))
    assert kv.get("m") == {"b": 2}


def test_kvlite_errors_are_also_builtin_errors(make: Callable[..., KV]) -> None:
    kv = make("sync")
    with pytest.raises(ValueError):  # InvalidTTL is a ValueError
        kv.put("k", {"a": 1}, ttl=-1)
    with pytest.raises(ValueError):  # so is SerializationError
        kv.put("k", {"a": {1, 2}})


# -- the _many forms -------------------------------------------------------------------------------


def test_get_many_and_ttl_many_keep_positions(kv: KV) -> None:
    kv.put_many(["a", "c"], [{"v": "a"}, {"v": "c"}], ttl=50)
    kv.put("b", {"v": "b"})
    keys = ["a", "missing", "c", "a", "b", "missing"]
    assert kv.get_many(keys) == [{"v": "a"}, None, {"v": "c"}, {"v": "a"}, {"v": "b"}, None]
    assert kv.ttl_many(keys) == [({"v": "a"}, pytest.approx(50)), (None, None), ({"v": "c"}, pytest.approx(50)),
                                 ({"v": "a"}, pytest.approx(50)), ({"v": "b"}, None), (None, None)]
    assert kv.get_many([]) == []
    assert kv.ttl_many([]) == []
    assert kv.get_many(("a",)) == [{"v": "a"}]  # any Sequence


def test_put_many(kv: KV) -> None:
    with pytest.raises(ValueError):
        kv.put_many(["a", "b"], [{"v": 1}])
    with pytest.raises(ValueError):
        kv.put_many(["a"], [{"v": 1}, {"v": 2}])
    assert kv.get_many(["a", "b"]) == [None, None]
    kv.put_many([], [])
    kv.put_many(["d", "e", "d"], [{"v": 1}, {"v": 2}, {"v": 3}])  # the last value of a key wins
    assert kv.get_many(["d", "e"]) == [{"v": 3}, {"v": 2}]
    assert kv.keys() == ["d", "e"]


def test_delete_and_delete_many_count(kv: KV, clock: Any) -> None:
    kv.put_many(["a", "b", "c"], [{"v": 1}, {"v": 2}, {"v": 3}])
    assert kv.delete("a") is True
    assert kv.delete("a") is False
    assert kv.delete_many(["b", "zz", "b", "c"]) == 2
    assert kv.delete_many([]) == 0
    kv.put("t", {"v": 4}, ttl=1)
    clock.advance(1)
    assert kv.delete("t") is False  # an expired entry does not count
    assert kv.keys() == []


# -- keys and collection names --------------------------------------------------------------------

SPECIAL = ["", " ", "with space", "slash/and\\back", "quote'\"`", "unicode é ☃ 日本語", "emoji 🎉",
           "new\nline\ttab", "a::b", "a__b", "nul\x00inside", "%_*?[]", "'; DROP TABLE kvlite_collections; --",
           "x" * 10_000]


def test_long_and_special_character_keys(kv: KV) -> None:
    values = [{"i": i} for i in range(len(SPECIAL))]
    kv.put_many(SPECIAL, values)
    assert kv.get_many(SPECIAL) == values
    for key, value in zip(SPECIAL, values):
        assert kv.get(key) == value
        assert kv.ttl(key) == (value, None)
    assert kv.keys() == SPECIAL
    assert kv.delete("x" * 10_000) is True
    assert kv.delete_many(SPECIAL) == len(SPECIAL) - 1
    assert kv.keys() == []


NAMES = ["with space", "slash/name", "back\\slash", "quote'\"`", "日本語", "🎉", "a::b", "app__users",
         "'; DROP TABLE kvlite_collections; --", "x" * 255, "default_collection_2"]  # stored as they are


def test_special_collection_names(kv: KV) -> None:
    for i, name in enumerate(NAMES):
        kv.put("k", {"i": i}, collection=name)
    for i, name in enumerate(NAMES):
        assert kv.get("k", collection=name) == {"i": i}
        assert kv.keys(name) == ["k"]
    assert kv.collections() == NAMES
    assert kv.get("k") is None  # none of it went to the default collection
    assert kv.destroy_collection("quote'\"`") is True
    assert kv.get("k", collection="'; DROP TABLE kvlite_collections; --") == {"i": 8}


@pytest.mark.parametrize("name", ["nul\x00name", "\ud800", "long" * 100 + "\x00", "\ud800" * 300],
                         ids=["nul", "surrogate", "long-with-nul", "long-surrogates"])
def test_collection_names_kvlite_cannot_store(kv: KV, name: str) -> None:
    # A deliberate difference: names are valid text without NUL (at any length).
    with pytest.raises(kv.InvalidName):
        kv.put("k", {"a": 1}, collection=name)
    with pytest.raises(kv.InvalidName):
        kv.get("k", collection=name)


LONG = ["test_collection" * 100, "x" * 256, "x" * 255 + "y", "日本語" * 200, "kvlite-name:names",
        "kvlite-name:" + "0" * 64, "kvlite-name:"]


def test_collection_names_of_any_length(kv: KV, clock: Any) -> None:
    # kvlite stores at most 255 characters of name; longer ones (and ones that look like the stored
    # form) are stored under "kvlite-name:" + SHA-256, and the protocol shows the names as given.
    kv.put("k", {"first": True}, collection="short")
    for i, name in enumerate(LONG):
        kv.put("k", {"i": i}, collection=name, ttl=100 if i % 2 else None)
        kv.put_many(["m"], [{"i": i}], collection=name)
    kv.put("k", {"last": True}, collection="short2")
    assert kv.collections() == ["short", *LONG, "short2"]
    assert kv.collections(limit=3) == ["short", *LONG[:2]]
    for i, name in enumerate(LONG):
        assert kv.get("k", collection=name) == {"i": i}
        assert kv.ttl("k", collection=name) == ({"i": i}, pytest.approx(100) if i % 2 else None)
        assert kv.get_many(["k", "m"], collection=name) == [{"i": i}, {"i": i}]
        assert kv.keys(name) == ["k", "m"]
    assert kv.destroy_collection(LONG[1]) is True
    assert kv.destroy_collection(LONG[1]) is False
    assert kv.get("k", collection=LONG[1]) is None  # read: the collection is made again (as any read does)
    assert kv.delete("k", collection=LONG[2]) is True
    assert kv.delete_many(["m"], collection=LONG[2]) == 1
    assert kv.collections() == ["short", LONG[0], *LONG[2:], "short2", LONG[1]]
    with _file(kv, clock) as store:  # kvlite's own view: the stored names
        stored = kvlite.keyvalue.stored_collection_name
        assert stored("short") == "short" and len(stored(LONG[0])) == len("kvlite-name:") + 64
        assert store.collection(stored(LONG[0])).get("k") == {"i": 0}
        assert set(store.collections()) == {"short", "short2", "kvlite-name:names", *map(stored, LONG)}
    assert kv.destroy() is True
    assert kv.collections() == []
    with _file(kv, clock) as store:
        assert store.collections() == []


def test_collection_names_of_any_length_on_a_read_only_store(make: Callable[..., KV]) -> None:
    writer = make("sync")
    writer.put("k", {"v": 1}, collection=LONG[0])
    for kind in IMPLS:
        kv = make(kind, path=writer.path, readonly=True)
        assert kv.get("k", collection=LONG[0]) == {"v": 1}
        assert kv.get("k", collection=LONG[1]) is None
        assert kv.keys(LONG[1]) == []
        assert kv.collections() == [LONG[0]]
        with pytest.raises(kv.ReadOnly):
            kv.put("k", {"v": 2}, collection=LONG[1])


@pytest.mark.parametrize("bad", [1, b"name", 1.5, ("t",), ["l"]])
def test_non_str_collection_is_a_type_error(kv: KV, bad: Any) -> None:
    # As for keys; py-key-value's stores raise TypeError too (from the str operations on the name).
    calls = [lambda: kv.get("k", collection=bad), lambda: kv.ttl("k", collection=bad),
             lambda: kv.put("k", {"v": 1}, collection=bad), lambda: kv.delete("k", collection=bad),
             lambda: kv.get_many(["k"], collection=bad), lambda: kv.ttl_many(["k"], collection=bad),
             lambda: kv.put_many(["k"], [{"v": 1}], collection=bad), lambda: kv.delete_many(["k"], collection=bad),
             lambda: kv.keys(bad), lambda: kv.destroy_collection(bad)]
    for call in calls:
        with pytest.raises(TypeError):
            call()
    assert kv.collections() == []


def test_destroy_collection_of_no_name(kv: KV) -> None:
    kv.put("k", {"v": 1})
    with pytest.raises(TypeError):
        kv.destroy_collection(None)  # the protocol's collection is a str here: there is no default
    assert kv.destroy_collection("") is False  # and no collection is named ""
    assert kv.get("k") == {"v": 1}


def test_keys_that_are_not_valid_text(kv: KV) -> None:
    # A deliberate difference: lone surrogates cannot be stored as SQLite text.
    error = pykv_errors.InvalidKeyError if kv.kind == "pykv" else errors.InvalidKey
    with pytest.raises(error):
        kv.put("\ud800", {"a": 1})


def test_keys_longer_than_kvlite_stores(kv: KV) -> None:
    # A deliberate difference: keys are at most 1,048,576 characters.
    error = pykv_errors.InvalidKeyError if kv.kind == "pykv" else errors.InvalidKey
    longest = "k" * (1 << 20)
    kv.put(longest, {"a": 1})
    assert kv.get(longest) == {"a": 1}
    with pytest.raises(error):
        kv.put(longest + "k", {"a": 1})


def test_default_collection(kv: KV) -> None:
    kv.put("k", {"v": 1})
    assert kv.get("k", collection=None) == {"v": 1}
    assert kv.get("k", collection="") == {"v": 1}  # "" means the default too, as `collection or default`
    assert kv.get("k", collection="default_collection") == {"v": 1}
    assert kv.collections() == ["default_collection"]
    assert kv.keys() == kv.keys("default_collection") == ["k"]


@pytest.mark.parametrize("kind", IMPLS)
def test_custom_default_collection(make: Callable[..., KV], kind: str, clock: Any) -> None:
    kv = make(kind, default_collection="mine")
    kv.put("k", {"v": 1})
    assert kv.get("k", collection="mine") == {"v": 1}
    assert kv.collections() == ["mine"]
    with _file(kv, clock) as store:
        assert store.collection("mine").get("k") == {"v": 1}


# -- the enumerate / destroy / cull segments --------------------------------------------------


def test_keys_with_limit(kv: KV, clock: Any) -> None:
    names = [f"k{i}" for i in range(10)]
    kv.put_many(names, [{"i": i} for i in range(10)])
    kv.put("gone", {"i": -1}, ttl=1)
    assert kv.keys() == names + ["gone"]
    clock.advance(1)
    assert kv.keys() == names
    assert kv.keys(limit=3) == names[:3]
    assert kv.keys(None, limit=0) == []
    assert kv.keys(limit=100) == names
    assert kv.keys("other") == []


def test_collections_with_limit(kv: KV) -> None:
    assert kv.collections() == []
    for name in ["c1", "c2", "c3"]:
        kv.put("k", {}, collection=name)
    assert kv.collections() == ["c1", "c2", "c3"]
    assert kv.collections(limit=2) == ["c1", "c2"]
    assert kv.collections(limit=0) == []


def test_negative_limit_is_refused(kv: KV) -> None:
    kv.put("k", {}, collection="c1")
    with pytest.raises(ValueError):
        kv.keys("c1", limit=-1)
    with pytest.raises(ValueError):
        kv.collections(limit=-1)


def test_destroy(kv: KV, clock: Any) -> None:
    kv.put("a", {"v": 1})
    kv.put("b", {"v": 2}, collection="other")
    with _file(kv, clock) as store:  # a collection of kvlite's own API goes too
        store.collection("own", serializer="pickle").put(42, {1, 2})
    assert kv.collections() == ["default_collection", "other", "own"]
    assert kv.destroy() is True
    assert kv.collections() == []
    assert kv.get("a") is None
    assert kv.get("b", collection="other") is None
    kv.put("a", {"v": 3})  # still usable
    assert kv.get("a") == {"v": 3}


def test_destroy_collection(kv: KV) -> None:
    kv.put("a", {"v": 1}, collection="one")
    kv.put("a", {"v": 2}, collection="two")
    assert kv.destroy_collection("one") is True
    assert kv.destroy_collection("one") is False
    assert kv.destroy_collection("never") is False
    assert kv.get("a", collection="one") is None
    assert kv.get("a", collection="two") == {"v": 2}


def test_cull_deletes_expired_entries(kv: KV, clock: Any) -> None:
    kv.put("stay", {"v": 1})
    kv.put_many(["go1", "go2"], [{"v": 2}, {"v": 3}], ttl=5)
    kv.put("go3", {"v": 4}, ttl=5, collection="other")
    clock.advance(10)
    with _file(kv, clock) as store:
        assert store.collection("default_collection").stats()["expired_pending"] == 2
        assert kv.cull() is None
        assert store.collection("default_collection").stats()["expired_pending"] == 0
        assert store.collection("other").stats()["expired_pending"] == 0
        assert list(store.collection("default_collection").items()) == [("stay", {"v": 1})]


def test_collections_shared_with_kvlite_api_are_shown_as_stored(kv: KV, clock: Any) -> None:
    # A deliberate difference: a value put with kvlite's own API is returned as it is stored.
    with _file(kv, clock) as store:
        store.collection("shared").put_many({"doc": {"v": 1}, "n": 7, "l": [1, 2]})
    assert kv.get_many(["doc", "n", "l"], collection="shared") == [{"v": 1}, 7, [1, 2]]
    assert kv.keys("shared") == ["doc", "n", "l"]


def test_stores_are_unbounded(kv: KV) -> None:
    # A deliberate difference from a bounded py-key-value memory store (max_entries_per_collection):
    # nothing is evicted; py-key-value's suite skips its "not unbounded" test for persistent stores.
    for i in range(0, 1200, 100):
        kv.put_many([f"k{j}" for j in range(i, i + 100)], [{"j": j} for j in range(i, i + 100)])
    assert kv.get("k0") == {"j": 0} and kv.get("k1199") == {"j": 1199}
    assert len(kv.keys()) == 1200


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_use_after_close_raises_store_closed(make: Callable[..., KV], kind: str) -> None:
    # (A KvliteStore opens its file again instead: test_pykv_interop.test_store_reopens_after_close.)
    kv = make(kind)
    kv.put("k", {"v": 1})
    if kind == "sync":
        kv.store.close()
    else:
        assert kv.loop is not None
        kv.loop.run(kv.impl.store.close())
    with pytest.raises(errors.StoreClosed):
        kv.get("k")
    with pytest.raises(errors.StoreClosed):
        kv.put("k", {"v": 2})


# -- read-only stores ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", IMPLS)
def test_read_only_store(make: Callable[..., KV], kind: str) -> None:
    writer = make("sync")
    writer.put("k", {"v": 1})
    kv = make(kind, path=writer.path, readonly=True)
    assert kv.get("k") == {"v": 1}
    assert kv.get("k", collection="missing") is None  # reading a missing collection is not a write
    assert kv.ttl("k", collection="missing") == (None, None)
    assert kv.get_many(["k"], collection="missing") == [None]
    assert kv.ttl_many(["k"], collection="missing") == [(None, None)]
    assert kv.keys("missing") == []
    with pytest.raises(kv.ReadOnly):
        kv.put("k", {"v": 2})
    with pytest.raises(kv.ReadOnly):
        kv.delete("k")
    assert kv.get("k") == {"v": 1}


# -- concurrency ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["aio", "pykv"])
def test_concurrent_gather(kind: str, tmp_path: Path, clock: Any) -> None:
    async def main() -> None:
        if kind == "aio":
            store = await kvlite.aio.open(tmp_path / "g.db", clock=clock)
            kv: Any = kvlite.aio.KeyValue(store)
        else:
            kv = KvliteStore(str(tmp_path / "g.db"), clock=clock)  # opened by the first of many calls
        try:
            keys = [f"k{i}" for i in range(100)]
            await asyncio.gather(*(kv.put(k, {"i": i}, collection=f"c{i % 3}", ttl=100 if i % 2 else None)
                                   for i, k in enumerate(keys)))
            got = await asyncio.gather(*(kv.get(k, collection=f"c{i % 3}") for i, k in enumerate(keys)))
            assert got == [{"i": i} for i in range(100)]
            ttls = await asyncio.gather(*(kv.ttl(k, collection=f"c{i % 3}") for i, k in enumerate(keys)))
            assert ttls == [({"i": i}, pytest.approx(100) if i % 2 else None) for i in range(100)]
            many = await asyncio.gather(*(kv.get_many(keys, collection=f"c{c}") for c in range(3)))
            for c, values in enumerate(many):
                assert values == [{"i": i} if i % 3 == c else None for i in range(100)]
            deleted = await asyncio.gather(*(kv.delete(k, collection=f"c{i % 3}") for i, k in enumerate(keys)),
                                           *(kv.delete(k, collection=f"c{i % 3}") for i, k in enumerate(keys)))
            assert deleted == [True] * 100 + [False] * 100
            assert sorted(await kv.collections()) == ["c0", "c1", "c2"]
            assert await asyncio.gather(*(kv.keys(f"c{c}") for c in range(3))) == [[], [], []]
        finally:
            if kind == "aio":
                await store.close()
            else:
                await kv.close()

    asyncio.run(main())


def test_sync_keyvalue_from_many_threads(make: Callable[..., KV]) -> None:
    kv = make("sync")

    def work(t: int) -> list[Any]:
        for i in range(30):
            kv.put(f"t{t}-{i}", {"t": t, "i": i}, collection=f"c{t % 2}")
        return kv.get_many([f"t{t}-{i}" for i in range(30)], collection=f"c{t % 2}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for t, values in enumerate(results):
        assert values == [{"t": t, "i": i} for i in range(30)]
    assert len(kv.keys("c0")) == len(kv.keys("c1")) == 120


# -- the protocol itself --------------------------------------------------------------------------

SEGMENTS = [protocols.AsyncKeyValue, protocols.AsyncCullProtocol, protocols.AsyncEnumerateKeysProtocol,
            protocols.AsyncEnumerateCollectionsProtocol, protocols.AsyncDestroyStoreProtocol,
            protocols.AsyncDestroyCollectionProtocol]
METHODS = ["get", "ttl", "put", "delete", "get_many", "ttl_many", "put_many", "delete_many", "keys",
           "collections", "destroy", "destroy_collection", "cull"]


def test_async_stores_are_runtime_protocol_instances(tmp_path: Path) -> None:
    from key_value.aio.stores.base import BaseStore

    async def main() -> None:
        store = await kvlite.aio.open(tmp_path / "p.db")
        try:
            for candidate in (kvlite.aio.KeyValue(store), KvliteStore(str(tmp_path / "q.db"))):
                for protocol in SEGMENTS:
                    assert isinstance(candidate, protocol), (candidate, protocol)
                assert not isinstance(candidate, BaseStore)  # deliberately: the protocol, not the machinery
        finally:
            await store.close()
        assert not isinstance(object(), protocols.AsyncKeyValue)  # the check can fail

    asyncio.run(main())


def _protocol_method(name: str) -> Any:
    for protocol in SEGMENTS:
        if hasattr(protocol, name):
            return getattr(protocol, name)
    raise AssertionError(name)


@pytest.mark.parametrize("cls", [kvlite.KeyValue, kvlite.aio.KeyValue, KvliteStore],
                         ids=["sync", "aio", "pykv"])
@pytest.mark.parametrize("name", METHODS)
def test_signatures_match_the_protocol(cls: type, name: str) -> None:
    expected = inspect.signature(_protocol_method(name))
    actual = inspect.signature(getattr(cls, name))

    def shape(sig: inspect.Signature) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in sig.parameters.values()]

    assert shape(actual) == shape(expected)
    assert inspect.iscoroutinefunction(getattr(cls, name)) is (cls is not kvlite.KeyValue)


def test_a_collection_another_store_drops_and_makes_again_is_followed(kv: KV, clock: Any) -> None:
    """The facade keeps its collections open (a lookup per call would double a get's cost) and
    follows a drop made elsewhere: reads and writes then reach the collection as it is now."""
    kv.put("k", {"v": 1}, collection="c")
    other = _file(kv, clock)
    try:
        other.drop_collection("c")
        assert kv.get("k", collection="c") is None
        other.collection("c").put("j", {"v": 2})
        assert kv.get("j", collection="c") == {"v": 2} and kv.keys("c") == ["j"]
        other.drop_collection("c")
        kv.put("k", {"v": 3}, collection="c")
        assert other.collection("c").get("k") == {"v": 3}
    finally:
        other.close()
