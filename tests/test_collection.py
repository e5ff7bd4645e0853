"""Collection: the key-value protocol, the ``_many`` forms, keys, names."""

from __future__ import annotations

import enum
from typing import Any
from pathlib import Path

import apsw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvlite
from kvlite.errors import InvalidCollectionName, InvalidKey, SerializationError


@pytest.fixture
def coll(store: kvlite.Store) -> kvlite.Collection:
    return store.collection("c")


# -- single keys --------------------------------------------------------------------------


def test_get_put_delete(coll: kvlite.Collection) -> None:
    assert coll.get("k") is None
    assert coll.get("k", "dflt") == "dflt"
    coll.put("k", {"a": [1, 2]})
    assert coll.get("k") == {"a": [1, 2]}
    assert coll.get("k", "dflt") == {"a": [1, 2]}
    coll.put("k", "replaced")
    assert coll.get("k") == "replaced"
    assert coll.delete("k") is True
    assert coll.delete("k") is False
    assert coll.get("k") is None


def test_none_and_falsy_values_are_stored(coll: kvlite.Collection) -> None:
    for key, value in [("none", None), ("zero", 0), ("empty", ""), ("false", False), ("list", [])]:
        coll.put(key, value)
        assert key in coll
        assert coll.get(key, "missing") == value
    assert len(coll) == 5


def test_put_keeps_position_of_existing_key(coll: kvlite.Collection) -> None:
    coll.put_many([("a", 1), ("b", 2), ("c", 3)])
    coll.put("a", 10)
    assert list(coll.items()) == [("a", 10), ("b", 2), ("c", 3)]
    coll.delete("a")
    coll.put("a", 11)
    assert list(coll.keys()) == ["b", "c", "a"]


def test_ttl_of_missing_and_permanent_keys(coll: kvlite.Collection) -> None:
    assert coll.ttl("missing") is None
    coll.put("k", 1)
    assert coll.ttl("k") is None


def test_contains_len_count(coll: kvlite.Collection) -> None:
    assert len(coll) == 0 and coll.count() == 0
    assert "a" not in coll
    coll.put("a", 1)
    coll.put(b"a", 2)
    assert "a" in coll and b"a" in coll and 1 not in coll
    assert len(coll) == coll.count() == 2


# -- keys ---------------------------------------------------------------------------------

KEYS = ["", "a", "ключ", "🔑", b"", b"a", b"\x00\xff", 0, 7, -1, 2**63 - 1, -(2**63), 0.5, -2.5, 1e300,
        float("inf"), float("-inf"), True]


def test_every_supported_key_type_round_trips_with_its_type(store: kvlite.Store, open_store) -> None:
    coll = store.collection("c")
    for i, key in enumerate(KEYS):
        coll.put(key, i)
    assert [(type(k), k) for k in coll.keys()] == [(type(k), k) for k in KEYS]
    assert coll.get_many(KEYS) == list(range(len(KEYS)))
    again = open_store().collection("c")
    assert [(type(k), k, v) for k, v in again.items()] == [(type(k), k, i) for i, k in enumerate(KEYS)]


def test_str_bytes_int_are_distinct_keys(coll: kvlite.Collection) -> None:
    coll.put("1", "str")
    coll.put(b"1", "bytes")
    coll.put(1, "int")
    assert len(coll) == 3
    assert [coll.get("1"), coll.get(b"1"), coll.get(1)] == ["str", "bytes", "int"]


def test_equal_numbers_are_one_key_first_type_kept(coll: kvlite.Collection) -> None:
    coll.put(1, "int")
    coll.put(1.0, "float")
    coll.put(True, "bool")
    assert len(coll) == 1
    [(key, value)] = list(coll.items())
    assert type(key) is int and value == "bool"
    assert coll.get(True) == coll.get(1.0) == "bool"


def test_put_many_mixing_new_existing_and_repeated_keys_is_dict_update(coll: kvlite.Collection) -> None:
    """put_many inserts until a key exists, then upserts the rest: the result is still dict.update's."""
    model = {"b": 0, "d": 0}
    coll.put_many(model)
    batch = [("a", 1), ("b", 2), ("c", 3), ("a", 4), ("e", 5), ("d", 6), (1, 7), (1.0, 8)]
    model.update(batch)
    assert coll.put_many(batch) == len(batch)
    assert list(coll.items()) == list(model.items())


@pytest.mark.parametrize("method", ["get_many", "delete_many", "ttl_many"])
def test_many_methods_refuse_a_single_str_or_bytes_key(coll: kvlite.Collection, method: str) -> None:
    coll.put_many({"a": 1, "b": 2, "ab": 3})
    for keys in ("ab", b"ab"):
        with pytest.raises(InvalidKey, match=method):
            getattr(coll, method)(keys)
    assert dict(coll.items()) == {"a": 1, "b": 2, "ab": 3}


def test_a_dropped_collection_rolled_back_still_works(store: kvlite.Store) -> None:
    coll = store.collection("c")
    coll.put("k", 1)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.drop_collection("c")
            raise RuntimeError("undo")
    assert store.collection("c") is coll and coll.get("k") == 1
    assert store.stats()["collections"]["c"]["rows"] == 1


def test_ints_beyond_64_bits_are_the_floats_they_equal(coll: kvlite.Collection) -> None:
    """As in dict: ``2**64 == 2.0**64`` is one key; an int no float equals (2**63 + 1) is refused."""
    model: dict[Any, str] = {}
    for key, value in [(2.0**63, "float"), (2**63, "int over it"), (2**64, "int"), (-(2**70), "neg"),
                       (10**20, "ten")]:
        coll.put(key, value)
        model[key] = value
    assert list(coll.items()) == list(model.items())
    assert [type(k) for k in coll.keys()] == [type(k) for k in model]
    assert coll.get(2.0**64) == "int" and coll.get(2**63) == "int over it" and 10.0**20 in coll
    assert coll.dict().get(2**63 + 1) is None and coll.delete(2**64) and 2**64 not in coll


@pytest.mark.parametrize("key", [(1, 2), None, frozenset(), object(), 2**63 + 1, -(2**63) - 1, float("nan"),
                                 bytearray(b"x"), 1j])
def test_unsupported_keys_raise_invalid_key_and_write_nothing(coll: kvlite.Collection, key: object) -> None:
    coll.put("other", 1)
    for write in (lambda: coll.put(key, 1), lambda: coll.put_many([("a", 1), (key, 2)]),
                  lambda: coll.setdefault(key, 1)):
        with pytest.raises(InvalidKey):
            write()
    with pytest.raises(InvalidKey):
        coll.get(key)
    assert key not in coll
    assert list(coll.items()) == [("other", 1)]
    assert issubclass(InvalidKey, TypeError)


def test_str_key_with_lone_surrogate_is_invalid(coll: kvlite.Collection) -> None:
    with pytest.raises(InvalidKey):
        coll.put("\ud800", 1)
    assert "\ud800" not in coll
    assert len(coll) == 0


class Color(enum.IntEnum):
    RED = 1


class Name(str, enum.Enum):
    ADA = "ada"


def test_subclass_keys_are_stored_as_base_type(coll: kvlite.Collection) -> None:
    coll.put(Color.RED, "red")
    coll.put(Name.ADA, "ada")
    assert coll.get(1) == "red"
    assert coll.get("ada") == "ada"
    assert [(type(k), k) for k in coll.keys()] == [(int, 1), (str, "ada")]


# -- many keys ----------------------------------------------------------------------------


def test_get_many_keeps_positions(coll: kvlite.Collection) -> None:
    coll.put_many({"a": 1, "b": 2})
    assert coll.get_many(["b", "missing", "a", "b", 1]) == [2, None, 1, 2, None]
    assert coll.get_many(["missing", "a"], default="d") == ["d", 1]
    assert coll.get_many([]) == []
    assert coll.get_many(iter(["a"])) == [1]


def test_get_many_bad_key_raises(coll: kvlite.Collection) -> None:
    with pytest.raises(InvalidKey):
        coll.get_many(["a", (1,)])


def test_put_many_accepts_mapping_pairs_and_generators(coll: kvlite.Collection) -> None:
    assert coll.put_many({"a": 1, "b": 2}) == 2
    assert coll.put_many([("c", 3), ("a", 10)]) == 2
    assert coll.put_many((k, v) for k, v in [("d", 4)]) == 1
    assert coll.put_many({}) == 0

    class KeysOnly:  # anything with keys() and __getitem__, like dict.update accepts
        def keys(self):
            return ["e"]

        def __getitem__(self, key):
            return 5

    assert coll.put_many(KeysOnly()) == 1
    assert list(coll.items()) == [("a", 10), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]


@pytest.mark.parametrize("bad_pair", [("bad", {1, 2}), ((1, 2), "bad key"), ("x", "y", "z"), "xyz"])
def test_put_many_is_all_or_nothing(coll: kvlite.Collection, store: kvlite.Store, open_store,
                                    bad_pair: object) -> None:
    coll.put_many({"a": "old-a", "b": "old-b"})
    pairs = [("a", "new-a"), ("new", 1), bad_pair, ("b", "new-b"), ("later", 2)]
    with pytest.raises((SerializationError, InvalidKey, ValueError, TypeError)):
        coll.put_many(pairs)
    assert list(coll.items()) == [("a", "old-a"), ("b", "old-b")]
    assert list(open_store().collection("c").items()) == [("a", "old-a"), ("b", "old-b")]


def test_put_many_bad_value_in_mapping_writes_nothing(coll: kvlite.Collection) -> None:
    coll.put("a", "old")
    with pytest.raises(SerializationError):
        coll.put_many({"a": "new", "b": object(), "c": 3})
    assert list(coll.items()) == [("a", "old")]


def test_delete_many(coll: kvlite.Collection) -> None:
    coll.put_many({"a": 1, "b": 2, "c": 3})
    assert coll.delete_many(["a", "missing", "c", "a"]) == 2
    assert list(coll.items()) == [("b", 2)]
    assert coll.delete_many([]) == 0


def test_delete_many_bad_key_deletes_nothing(coll: kvlite.Collection) -> None:
    coll.put_many({"a": 1, "b": 2})
    with pytest.raises(InvalidKey):
        coll.delete_many(["a", (1, 2), "b"])
    assert list(coll.items()) == [("a", 1), ("b", 2)]


def test_ttl_many_keeps_positions(coll: kvlite.Collection, clock) -> None:
    coll.put("forever", 1)
    coll.put("short", 1, ttl=5)
    coll.put("long", 1, ttl=50.5)
    assert coll.ttl_many(["long", "missing", "forever", "short"]) == [50.5, None, None, 5.0]
    clock.advance(2)
    assert coll.ttl_many(["short", "long"]) == [3.0, 48.5]


# -- compound operations ------------------------------------------------------------------


def test_pop(coll: kvlite.Collection) -> None:
    coll.put("a", [1])
    assert coll.pop("a") == [1]
    assert "a" not in coll
    with pytest.raises(KeyError):
        coll.pop("a")
    assert coll.pop("a", "dflt") == "dflt"
    assert coll.pop((1, 2), "dflt") == "dflt"
    with pytest.raises(KeyError):
        coll.pop((1, 2))


def test_popitem_is_lifo(coll: kvlite.Collection) -> None:
    coll.put_many([("a", 1), ("b", 2), ("c", 3)])
    coll.put("a", 10)  # an update does not move the key
    assert coll.popitem() == ("c", 3)
    assert coll.popitem() == ("b", 2)
    assert coll.popitem() == ("a", 10)
    with pytest.raises(KeyError):
        coll.popitem()


def test_setdefault(coll: kvlite.Collection) -> None:
    assert coll.setdefault("a", [1]) == [1]
    assert coll.setdefault("a", [2]) == [1]
    assert coll.setdefault("n") is None
    assert "n" in coll and coll.get("n", "missing") is None
    assert list(coll.items()) == [("a", [1]), ("n", None)]


def test_setdefault_unencodable_default_writes_nothing(coll: kvlite.Collection) -> None:
    with pytest.raises(SerializationError):
        coll.setdefault("a", {1, 2})
    assert "a" not in coll
    coll.put("b", 1)
    assert coll.setdefault("b", {1, 2}) == 1  # not encoded: the key exists


def test_clear(coll: kvlite.Collection, store: kvlite.Store) -> None:
    other = store.collection("other")
    other.put("x", 1)
    coll.put_many({"a": 1, "b": 2})
    coll.clear()
    assert len(coll) == 0 and list(coll.items()) == []
    assert list(other.items()) == [("x", 1)]
    coll.put("c", 3)
    assert list(coll.items()) == [("c", 3)]


# -- iteration ----------------------------------------------------------------------------


def test_keys_items_values_in_insertion_order_and_reversed(coll: kvlite.Collection) -> None:
    pairs = [(k, i) for i, k in enumerate(["z", "a", b"m", 5, 2.5, "b"])]
    coll.put_many(pairs)
    assert list(coll.keys()) == [k for k, _ in pairs]
    assert list(coll) == [k for k, _ in pairs]
    assert list(coll.items()) == pairs
    assert list(coll.values()) == [v for _, v in pairs]
    assert list(coll.keys(reverse=True)) == [k for k, _ in reversed(pairs)]
    assert list(coll.items(reverse=True)) == pairs[::-1]
    assert list(coll.values(reverse=True)) == [v for _, v in reversed(pairs)]


def test_iteration_over_several_pages(coll: kvlite.Collection) -> None:
    n = 2345  # several internal pages of rows
    coll.put_many((f"k{i}", i) for i in range(n))
    coll.delete_many(f"k{i}" for i in range(0, n, 7))
    expected = [(f"k{i}", i) for i in range(n) if i % 7]
    assert list(coll.items()) == expected
    assert list(coll.items(reverse=True)) == expected[::-1]
    assert len(coll) == len(expected)


# -- the dict view and the store ----------------------------------------------------------


def test_dict_returns_the_same_view(coll: kvlite.Collection) -> None:
    view = coll.dict()
    assert isinstance(view, kvlite.DictView)
    assert view is coll.dict()
    assert view.collection is coll
    view["k"] = 1
    assert coll.get("k") == 1


# -- collection names ---------------------------------------------------------------------

ODD_NAMES = [
    "users",
    "Users",
    "🦄 unicorns 🌈",
    "名前",
    "שלום",
    "with space",
    " ",
    "quote'single",
    'quote"double',
    '"; DROP TABLE kvlite_collections; --',
    "'); DELETE FROM kvlite_meta; --",
    "kv_1",
    "kvlite_collections",
    "sqlite_master",
    "[bracket]",
    "`backtick`",
    "new\nline\ttab",
    "x" * 255,
    "e\u0301",  # combining accent
    "\u00e9",  # the same text precomposed: a different name
]


def test_any_unicode_name_works_and_cannot_inject(db_path: Path, open_store) -> None:
    db = open_store()
    for i, name in enumerate(ODD_NAMES):
        coll = db.collection(name)
        coll.put("k", i)
        coll.put(name, name)
    assert db.collections() == ODD_NAMES
    again = open_store()
    assert again.collections() == ODD_NAMES
    for i, name in enumerate(ODD_NAMES):
        assert list(again.collection(name).items()) == [("k", i), (name, name)]
    raw = apsw.Connection(str(db_path))
    try:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        assert {"kvlite_meta", "kvlite_collections", "kvlite_migrations"} <= tables
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        raw.close()


@settings(max_examples=40, deadline=None)
@given(names=st.lists(st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
                      min_size=1, max_size=4, unique=True))
def test_generated_names_round_trip(names: list[str]) -> None:
    with kvlite.open(":memory:") as db:
        for i, name in enumerate(names):
            db.collection(name).put(name, i)
        assert db.collections() == names
        for i, name in enumerate(names):
            assert db.collection(name).get(name) == i
            assert db.drop_collection(name) is True
        assert db.collections() == []


@pytest.mark.parametrize("name", ["", "x" * 256, "a\x00b", "\ud800", None, 1, b"users", ["users"]])
def test_invalid_names_raise(store: kvlite.Store, name: object) -> None:
    with pytest.raises(InvalidCollectionName):
        store.collection(name)  # type: ignore[arg-type]
    with pytest.raises(InvalidCollectionName):
        store.dict(name)  # type: ignore[arg-type]
    with pytest.raises(InvalidCollectionName):
        store.drop_collection(name)  # type: ignore[arg-type]
    assert store.collections() == []
    assert issubclass(InvalidCollectionName, ValueError)
