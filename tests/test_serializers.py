"""Serializers: round-trips, strictness, registration, and the per-collection record in the file."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from pathlib import Path
from typing import Any, Callable, NamedTuple

import apsw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvlite
from kvlite.errors import KvliteError, SerializationError, SerializerMismatch, UnknownSerializer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def raw_column_types(path: Path, collection: str) -> list[str]:
    """SQLite's ``typeof(value)`` of each row of ``collection``, read without kvlite."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        table = conn.execute("SELECT table_name FROM kvlite_collections WHERE name = ?", (collection,)).fetchone()[0]
        assert table.startswith("kv_") and table[3:].isdigit()
        return [row[0] for row in conn.execute(f'SELECT typeof(value) FROM "{table}" ORDER BY id')]
    finally:
        conn.close()


# -- round trips ------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_json_round_trip(value: Any) -> None:
    with kvlite.open(":memory:") as db:
        coll = db.collection("c")
        coll.put("k", value)
        assert coll.get("k") == value
        assert list(coll.items()) == [("k", value)]


def test_json_round_trip_through_the_file(open_store: Callable[..., kvlite.Store], db_path: Path) -> None:
    value = {"s": "ünï 🦄", "i": -(2**63), "big": 2**63 - 1, "f": 0.1, "neg0": -0.0, "n": None,
             "l": [True, False, [], {}], "nested": {"a": {"b": [1.5e300]}}}
    open_store().collection("c").put("k", value)
    again = open_store().collection("c").get("k")
    assert again == value
    assert str(again["neg0"]) == "-0.0"
    assert raw_column_types(db_path, "c") == ["text"]  # JSON is TEXT, so json_extract works on it


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_jsonb_round_trips_what_json_does(value: Any) -> None:
    """SQLite's jsonb()/json() conversion on the way in and out gives back exactly orjson's value."""
    with kvlite.open(":memory:", serializer="jsonb") as db:
        coll = db.collection("c")
        coll.put("k", value)
        coll.put_many([("m", value)])
        assert coll.get("k") == value
        assert list(coll.items()) == [("k", value), ("m", value)]
        assert coll.pop("m") == value and coll.setdefault("k") == value
        assert coll.popitem() == ("k", value)


def test_jsonb_is_stored_as_sqlite_jsonb(open_store: Callable[..., kvlite.Store], db_path: Path) -> None:
    value = {"s": "ünï 🦄", "i": -(2**63), "f": 0.1, "neg0": -0.0, "l": [True, None, {}], "deep": {"a": [1.5e300]}}
    open_store(serializer="jsonb").collection("c").put("k", value)
    assert raw_column_types(db_path, "c") == ["blob"]
    conn = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READONLY)
    try:  # SQLite itself reads the stored BLOB as JSON
        assert conn.execute("SELECT json_extract(value, '$.deep.a[0]'), json_valid(value, 8) FROM kv_1").fetchone() \
            == (1.5e300, 1)
    finally:
        conn.close()
    again = open_store(serializer="jsonb").collection("c").get("k")
    assert again == value and str(again["neg0"]) == "-0.0"
    with pytest.raises(SerializerMismatch) as info:  # the same values, but another stored form
        open_store().collection("c")
    assert (info.value.stored, info.value.requested) == ("jsonb", "json")


def test_jsonb_is_as_strict_as_json(store: kvlite.Store) -> None:
    coll = store.collection("c", serializer="jsonb")
    coll.put("k", [1])
    for bad in ({1, 2}, float("nan"), b"raw", 2**64):
        with pytest.raises(SerializationError):
            coll.put("k", bad)
    assert coll.get("k") == [1]


def test_a_damaged_jsonb_value_is_a_corrupt_store_error(store: kvlite.Store) -> None:
    from kvlite.errors import CorruptStore

    coll = store.collection("c", serializer="jsonb")
    coll.put_many({"bad": {"a": 1}, "good": {"a": 2}})
    store.engine.connection().execute("UPDATE kv_1 SET value = x'ff00ff' WHERE key = 'bad'")  # not JSONB
    for read in (lambda: coll.get("bad"), lambda: list(coll.items()), lambda: list(coll.find("$[?(@.a == 2)]"))):
        with pytest.raises(CorruptStore, match="not valid JSON"):
            read()
    assert coll.get("good") == {"a": 2}


def test_jsonb_cannot_be_compressed(store: kvlite.Store) -> None:
    with pytest.raises(UnknownSerializer, match="cannot be compressed"):
        store.collection("c", serializer="jsonb+zlib")
    assert store.collections() == []


def test_json_stores_tuples_as_lists(store: kvlite.Store) -> None:
    coll = store.collection("c")
    coll.put("k", {"t": (1, (2, 3))})
    assert coll.get("k") == {"t": [1, [2, 3]]}


@pytest.mark.parametrize("name, value", [
    ("pickle", {"t": (1, 2), "s": {1, 2}, "fs": frozenset("ab"), "b": b"\x00\xff", "ba": bytearray(b"x"),
                "dt": datetime.datetime(2024, 1, 2, 3, 4, 5), "dec": decimal.Decimal("1.10"), 7: "int key",
                "nan-free": [float("inf")], "c": 1 + 2j}),
    ("msgpack", {"b": b"\x00\xff", "l": [1, "x", None, True, 1.5, -(2**63), 2**64 - 1], "m": {"k": {}}}),
    ("cbor2", {"b": b"\x00\xff", "l": [1, "x", None, True, 1.5, 2**70], "dt": datetime.datetime(
        2024, 1, 2, tzinfo=datetime.timezone.utc), "m": {"k": {}}}),
])
def test_builtin_serializer_round_trips(open_store: Callable[..., kvlite.Store], db_path: Path,
                                        name: str, value: Any) -> None:
    open_store().collection("c", serializer=name).put("k", value)
    again = open_store(serializer=name).collection("c").get("k")
    assert again == value
    assert raw_column_types(db_path, "c") == ["blob"]


def test_pickle_keeps_types_exactly(store: kvlite.Store) -> None:
    view = store.dict("p", serializer="pickle")
    view["k"] = (1, {2, 3}, b"bytes", frozenset([4]), (5,))
    value = view["k"]
    assert type(value) is tuple
    assert [type(v) for v in value] == [int, set, bytes, frozenset, tuple]
    assert value == (1, {2, 3}, b"bytes", frozenset([4]), (5,))


@settings(max_examples=60, deadline=None)
@given(value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner) | st.frozensets(st.integers(), max_size=3)
    | st.dictionaries(st.integers() | st.text(max_size=3), inner, max_size=3),
    max_leaves=10))
def test_pickle_round_trip_keeps_types(value: Any) -> None:
    with kvlite.open(":memory:", serializer="pickle") as db:
        coll = db.collection("c")
        coll.put("k", value)
        back = coll.get("k")
        assert back == value
        assert_same_types(back, value)


def assert_same_types(got: Any, expected: Any) -> None:
    """``got`` has the types of ``expected`` all the way down (a tuple stays a tuple, ...)."""
    assert type(got) is type(expected), (got, expected)
    if isinstance(expected, (list, tuple)):
        for g, e in zip(got, expected):
            assert_same_types(g, e)
    elif isinstance(expected, dict):
        assert [type(k) for k in got] == [type(k) for k in expected]
        for key in expected:
            assert_same_types(got[key], expected[key])


# -- strict JSON ------------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int


JSON_REJECTS = [
    float("nan"), float("inf"), float("-inf"), [1.0, float("nan")], {"a": {"b": float("-inf")}},
    {1, 2}, frozenset([1]), b"bytes", bytearray(b"x"), datetime.datetime(2024, 1, 1), datetime.date(2024, 1, 1),
    decimal.Decimal("1.5"), Point(1), object(), 2**64, {1: "non-str key"},
    enum.Enum("Odd", {"NAN": float("nan")}).NAN, [enum.Enum("Nested", {"V": {"x": float("inf")}}).V],
]


@pytest.mark.parametrize("value", JSON_REJECTS, ids=repr)
def test_json_rejects_what_it_cannot_keep(store: kvlite.Store, value: Any) -> None:
    coll = store.collection("c")
    coll.put("k", "old")
    with pytest.raises(SerializationError):
        coll.put("k", value)
    with pytest.raises(SerializationError):
        coll.put("new", value)
    with pytest.raises(SerializationError):
        coll.put_many({"k": "newer", "new": value})
    with pytest.raises(SerializationError):
        coll.setdefault("new", value)
    with pytest.raises(SerializationError):
        coll.dict()["new"] = value
    assert list(coll.items()) == [("k", "old")]
    assert issubclass(SerializationError, ValueError)


class Color(enum.Enum):
    RED = 1


@pytest.mark.parametrize(("value", "stored"), [(uuid.UUID(int=1), str(uuid.UUID(int=1))), (Color.RED, Color.RED.value)],
                         ids=repr)
def test_json_stores_uuid_and_enum_as_their_json_form(store: kvlite.Store, value: Any, stored: Any) -> None:
    # Documented in JSONSerializer: orjson encodes these natively; they come back as str / the member's value.
    coll = store.collection("c")
    coll.put("k", value)
    assert coll.get("k") == stored
    assert type(coll.get("k")) is type(stored)


class Price(float):
    pass


class Tag(str):
    pass


class Count(int):
    pass


class Coords(tuple):  # type: ignore[type-arg]
    pass


class Items(list):  # type: ignore[type-arg]
    pass


class Doc(dict):  # type: ignore[type-arg]
    pass


class Sneaky(dict):  # type: ignore[type-arg]
    def items(self) -> Any:  # json stores what the dict holds (as orjson does), not what methods say
        return [("not", "this")]

    def values(self) -> Any:
        return []


class Pair(NamedTuple):
    a: int
    b: float


class Half(float, enum.Enum):
    HALF = 0.5


SUBCLASS_VALUES = [  # (value, what comes back: every subclass as its base type)
    (Price(1.5), 1.5),
    (Count(3), 3),
    (Tag("x"), "x"),
    (Coords((1, Price(2.0))), [1, 2.0]),
    (Pair(1, Price(2.5)), [1, 2.5]),
    ({Tag("k"): {Tag("inner"): Price(1.0)}}, {"k": {"inner": 1.0}}),
    (Doc(a=Items([Price(0.5), Coords(())])), {"a": [0.5, []]}),
    ([Price(0.1), {"n": Count(-(2**63))}, Tag("")], [0.1, {"n": -(2**63)}, ""]),
]


@pytest.mark.parametrize("name", ["json", "jsonb", "msgpack", "cbor2"])
@pytest.mark.parametrize(("value", "stored"), SUBCLASS_VALUES, ids=repr)
def test_subclasses_of_json_types_are_stored_as_their_base_type(open_store: Callable[..., kvlite.Store],
                                                               name: str, value: Any, stored: Any) -> None:
    """One rule for every subclass of a JSON type, as for keys: accepted, stored as the base type.
    (orjson alone refused float and tuple subclasses and str subclass dict keys, and took the rest.)"""
    coll = open_store().collection("c", serializer=name)
    coll.put("put", value)
    coll.put_many({"put_many": value})
    coll.setdefault("setdefault", value)
    coll.dict()["dict"] = value
    again = open_store().collection("c", serializer=name)
    for key in ("put", "put_many", "setdefault", "dict"):
        assert_same_types(again.get(key), stored)
        assert again.get(key) == stored


def test_json_subclass_rules_hold_inside_the_subclasses(store: kvlite.Store) -> None:
    coll = store.collection("c")
    coll.put("enum", {"e": Half.HALF, "in a tuple": Coords((Half.HALF,))})
    assert coll.get("enum") == {"e": 0.5, "in a tuple": [0.5]}
    coll.put("sneaky", Coords((Sneaky(a=Price(1.0)),)))
    assert coll.get("sneaky") == [{"a": 1.0}]
    shared = Coords((Price(1.0),))
    coll.put("shared", [shared, shared, {"again": shared}])
    assert coll.get("shared") == [[1.0], [1.0], {"again": [1.0]}]
    for bad in (Price("nan"), [Coords((Price("inf"),))], {"k": Sneaky(x=float("nan"))}, Coords(({1, 2},)),
                {Tag("k"): {1: Price(1.0)}}, Pair(1, datetime.date(2024, 1, 1)), Count(2**64)):
        with pytest.raises(SerializationError):
            coll.put("bad", bad)
    deep: Any = Price(1.0)
    for _ in range(100_000):  # orjson's nesting limit holds for subclasses too (and nothing crashes)
        deep = Coords((deep,))
    with pytest.raises(SerializationError, match="Recursion limit"):
        coll.put("bad", deep)
    nested: Any = Price(1.0)
    for _ in range(254):  # orjson's deepest
        nested = Coords((nested,))
    coll.put("deepest", nested)
    assert str(coll.get("deepest")) == "[" * 254 + "1.0" + "]" * 254
    assert "bad" not in coll


def test_serialization_error_writes_nothing_for_any_serializer(store: kvlite.Store) -> None:
    coll = store.collection("p", serializer="pickle")
    coll.put("k", "old")
    with pytest.raises(SerializationError):
        coll.put("k", lambda: None)  # functions defined inline cannot be pickled
    assert coll.get("k") == "old"
    assert list(coll.items()) == [("k", "old")]


# -- custom serializers -------------------------------------------------------------------------


class Reversed(kvlite.Serializer):
    """Stores text reversed, and counts calls, so the test can see it was used."""

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]
        self.dumped = 0
        self.loaded = 0

    def dumps(self, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError("text only")
        self.dumped += 1
        return value[::-1]

    def loads(self, data: str | bytes) -> Any:
        self.loaded += 1
        assert isinstance(data, str)
        return data[::-1]


def test_register_and_use_a_custom_serializer(open_store: Callable[..., kvlite.Store], db_path: Path) -> None:
    name = unique_name("reversed")
    serializer = kvlite.register_serializer(Reversed(name))
    db = open_store(serializer=name)
    coll = db.collection("c")
    assert coll.serializer is serializer
    coll.put("k", "hello")
    assert serializer.dumped == 1
    assert coll.get("k") == "hello"
    assert serializer.loaded == 1
    with pytest.raises(SerializationError):
        coll.put("k", 42)  # the serializer refuses: nothing written
    assert coll.get("k") == "hello"
    conn = apsw.Connection(str(db_path))
    try:
        assert conn.execute("SELECT serializer FROM kvlite_collections WHERE name = 'c'").fetchone()[0] == name
        table = conn.execute("SELECT table_name FROM kvlite_collections WHERE name = 'c'").fetchone()[0]
        assert conn.execute(f'SELECT value FROM "{table}"').fetchone()[0] == "olleh"
    finally:
        conn.close()
    assert open_store().collection("c", serializer=name).get("k") == "hello"
    with pytest.raises(SerializerMismatch):
        open_store().collection("c")


def test_serializer_instance_can_be_passed_directly(store: kvlite.Store) -> None:
    serializer = Reversed(unique_name("direct"))
    coll = store.collection("c", serializer=serializer)
    coll.put("k", "abc")
    assert coll.get("k") == "abc"
    assert serializer.dumped == 1
    assert store.collection("c", serializer=serializer.name) is coll  # registered by its name on first use


def test_register_refuses_taken_names_unless_replacing() -> None:
    name = unique_name("dup")
    first = kvlite.register_serializer(Reversed(name))
    with pytest.raises(ValueError):
        kvlite.register_serializer(Reversed(name))
    with pytest.raises(ValueError):
        kvlite.register_serializer(Reversed("json"))
    second = kvlite.register_serializer(Reversed(name), replace=True)
    assert second is not first
    with pytest.raises(ValueError):
        kvlite.register_serializer(Reversed(""))


class NotBytes(kvlite.Serializer):
    name = "not-bytes-" + uuid.uuid4().hex[:8]

    def dumps(self, value: Any) -> Any:
        return 42

    def loads(self, data: str | bytes) -> Any:
        return data


def test_serializer_returning_neither_str_nor_bytes_is_a_serialization_error(store: kvlite.Store) -> None:
    coll = store.collection("c", serializer=NotBytes())
    with pytest.raises(SerializationError):
        coll.put("k", "v")
    assert len(coll) == 0


# -- the serializer recorded in the file -----------------------------------------------------------


class Surrogates(kvlite.Serializer):
    """Returns text that is not valid Unicode (a lone surrogate), which no store can keep."""

    name = "surrogate-text"

    def dumps(self, value: Any) -> str:
        return str(value) + "\udc80"

    def loads(self, data: str | bytes) -> Any:
        return data


def test_text_that_is_not_valid_unicode_is_a_serialization_error(store: kvlite.Store) -> None:
    coll = store.collection("c", serializer=Surrogates())
    store.engine.connection().execute(f"INSERT INTO {coll._table.sql_name} (key, value, created_at, updated_at) VALUES ('k', 'old', 0, 0)")
    for write in (lambda: coll.put("k", "new"), lambda: coll.put_many({"k": "new", "j": "x"}),
                  lambda: coll.setdefault("j", "x"), lambda: coll.dict().update(j="x")):
        with pytest.raises(SerializationError, match="not valid Unicode"):
            write()
    assert list(coll.items()) == [("k", "old")]


def test_reopening_with_another_serializer_raises_mismatch(open_store: Callable[..., kvlite.Store]) -> None:
    open_store().collection("docs").put("k", 1)
    with pytest.raises(SerializerMismatch) as info:
        open_store(serializer="pickle").collection("docs")
    message = str(info.value)
    assert "'json'" in message and "'pickle'" in message and "'docs'" in message
    assert (info.value.stored, info.value.requested, info.value.collection) == ("json", "pickle", "docs")
    with pytest.raises(SerializerMismatch):
        open_store().collection("docs", serializer="msgpack")
    with pytest.raises(SerializerMismatch):
        open_store().dict("docs", serializer="cbor2")
    assert open_store(serializer="pickle").collection("docs", serializer="json").get("k") == 1
    assert issubclass(SerializerMismatch, KvliteError)


def test_mismatch_in_the_same_store(store: kvlite.Store) -> None:
    store.collection("p", serializer="pickle").put("k", (1,))
    with pytest.raises(SerializerMismatch) as info:
        store.collection("p")
    assert "'pickle'" in str(info.value) and "'json'" in str(info.value)
    assert store.collection("p", serializer="pickle").get("k") == (1,)


def test_each_collection_keeps_its_own_serializer(open_store: Callable[..., kvlite.Store]) -> None:
    db = open_store()
    db.collection("j").put("k", [1])
    db.collection("p", serializer="pickle").put("k", (1,))
    db.collection("m", serializer="msgpack").put("k", b"x")
    again = open_store()
    assert again.collection("j").get("k") == [1]
    assert again.collection("p", serializer="pickle").get("k") == (1,)
    assert again.collection("m", serializer="msgpack").get("k") == b"x"


@pytest.mark.parametrize("spec", ["nope", "JSON", "", 42, None])
def test_unknown_serializer_raises(db_path: Path, store: kvlite.Store, spec: Any) -> None:
    with pytest.raises(UnknownSerializer):
        kvlite.open(db_path, serializer=spec)
    if spec is not None:  # on collection(), serializer=None means "the store's default"
        with pytest.raises(UnknownSerializer):
            store.collection("c", serializer=spec)
        with pytest.raises(UnknownSerializer):
            store.dict("c", serializer=spec)
    assert store.collections() == []
    assert issubclass(UnknownSerializer, KvliteError)


def test_unknown_serializer_message_lists_known_names(store: kvlite.Store) -> None:
    with pytest.raises(UnknownSerializer) as info:
        store.collection("c", serializer="nope")
    assert "'nope'" in str(info.value)
    assert "json" in str(info.value) and "pickle" in str(info.value)


def test_a_json_subclass_with_its_own_dumps_gets_every_check(store: kvlite.Store) -> None:
    class Loose(kvlite.serializers.JSONSerializer):
        name = "loose-json-subclass"

        def dumps(self, value: Any) -> Any:
            if value == "ok":
                return super().dumps(value)
            return value  # anything else as it is: not JSON text, not even text

    coll = store.collection("c", serializer=Loose())
    coll.put("k", "ok")
    for bad in ("\ud800", 42):
        with pytest.raises(SerializationError):
            coll.put("k", bad)
    assert coll.get("k") == "ok"
