"""Key types and insertion order on every engine: ``str``/``bytes``/``int``/``float``/``bool`` keys
come back with their type; ``1 == 1.0 == True`` is one key and keeps the first type stored; an
update keeps the place, delete + re-insert moves to the end; reversed; pages longer than any
engine's page size; keys added while iterating are not visited."""

from __future__ import annotations

import enum
import math
from typing import Any

import pytest

from .base import EngineTests, StoreMaker, key_types, typed


class Color(str, enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 7


class KeysAndOrder(EngineTests):
    """Key types, equal keys, and insertion order."""

    def test_equal_keys_are_one_key_and_keep_the_first_type(self, store: Any) -> None:
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

    def test_every_key_type_round_trips(self, store: Any) -> None:
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

    def test_more_equal_and_distinct_keys(self, store: Any) -> None:
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
    def test_long_keys_work(self, store: Any, length: int) -> None:
        """Keys up to kvlite.keys.MAX_KEY_LENGTH are valid keys on every backend."""
        c = store.collection("long")
        text, raw = "k" * length, b"\xff" * length
        c.put(text, 1)
        c.put(raw, 2)
        c.put(text, 3)
        assert typed(c.items()) == typed([(text, 3), (raw, 2)])
        assert c.get(text) == 3 and c.pop(raw) == 2 and len(c) == 1

    def test_insertion_order(self, store: Any) -> None:
        c = store.collection("order")
        for key in ["a", 2, b"c", 4.5, True]:
            c.put(key, str(key))
        c.put(2, "updated")  # keeps its place
        c.put(1.0, "equal to True")  # True's place and type
        assert typed(c.items()) == typed([("a", "a"), (2, "updated"), (b"c", "b'c'"), (4.5, "4.5"),
                                          (True, "equal to True")])
        c.delete(2)
        c.put(2, "back")  # moves to the end
        assert list(c.keys()) == ["a", b"c", 4.5, True, 2]
        assert list(c.keys(reverse=True)) == [2, True, 4.5, b"c", "a"]
        assert next(c.items(reverse=True)) == (2, "back")
        assert c.popitem() == (2, "back") and c.popitem() == (True, "equal to True")

    def test_order_across_pages(self, store: Any) -> None:
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

    def test_keys_added_while_iterating_are_not_visited(self, make_store: StoreMaker) -> None:
        """Iteration covers the entries there when it began, over several pages, on every backend:
        adding keys in the loop never makes it endless (dict would raise RuntimeError)."""
        view = make_store().dict("grow")
        view.update((f"k{i:04d}", i) for i in range(2100))
        assert sum(1 for key in view if view.__setitem__(key + "+", 0) is None) == 2100
        assert sum(1 for key, _ in view.items() if view.__setitem__(key + "-", 0) is None) == 4200
        assert sum(1 for key in reversed(view) if view.__setitem__(key + "~", 0) is None) == 8400
        assert len(view) == 16800
