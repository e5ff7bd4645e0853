"""``Collection.stats()`` and ``Store.stats()``: exact counters and sizes.

Counters (``gets``, ``hits``, ``misses``, ``puts``, ``deletes``,
``expirations``) count operations through one object since it was made;
``rows``, ``expired_pending`` and ``bytes`` are read from the file.  Every
expected number below is worked out by hand from the sequence of operations,
with a fake clock for everything time-dependent.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable

import orjson
import pytest

import kvlite

COUNTERS = ("gets", "hits", "misses", "puts", "deletes", "expirations")


def _counters(stats: dict[str, Any]) -> dict[str, int]:
    return {name: stats[name] for name in COUNTERS}


def test_counters_are_exact_after_a_known_sequence(store: kvlite.Store) -> None:
    c = store.collection("c")
    c.put("a", 1)                        # puts 1
    c.put("a", 2)                        # puts 2 (an overwrite is a put)
    c.put_many({"b": 3, "c": 4, "d": 5})  # puts 5
    assert c.get("a") == 2               # gets 1, hits 1
    assert c.get("zz") is None           # gets 2, misses 1
    assert c.get("zz", 0) == 0           # gets 3, misses 2
    assert c.get_many(["a", "zz", "b", "a"]) == [2, None, 3, 2]  # gets 7, hits 4, misses 3
    assert c.delete("a") is True         # deletes 1
    assert c.delete("a") is False        # a miss is not a delete
    assert c.delete_many(["b", "zz", "c"]) == 2  # deletes 3
    assert "d" in c                      # membership is not a get
    assert list(c.find("$[*]")) == [("d", 5)]  # nor is a query
    assert _counters(c.stats()) == {"gets": 7, "hits": 4, "misses": 3, "puts": 5, "deletes": 3, "expirations": 0}
    assert c.stats()["rows"] == 1


def test_stats_keys_and_identity(store: kvlite.Store) -> None:
    stats = store.collection("c", serializer="pickle").stats()
    assert set(stats) == {"collection", "serializer", *COUNTERS, "rows", "expired_pending", "bytes"}
    assert (stats["collection"], stats["serializer"]) == ("c", "pickle")
    assert all(stats[name] == 0 for name in (*COUNTERS, "rows", "expired_pending", "bytes"))


def test_rows_bytes_and_expired_pending_with_a_fake_clock(store: kvlite.Store, clock: Any) -> None:
    c = store.collection("c")
    values = {"forever": {"a": 1}, "short": {"text": "é" * 10}, "mid": [1, 2, 3]}
    size = {k: len(orjson.dumps(v)) for k, v in values.items()}  # bytes, not characters
    assert size["short"] == len('{"text":""}') + 20  # 10 characters, 20 bytes
    c.put("forever", values["forever"])
    c.put("short", values["short"], ttl=5)
    c.put("mid", values["mid"], ttl=50)
    first = c.stats()
    assert (first["rows"], first["expired_pending"], first["bytes"]) == (3, 0, sum(size.values()))

    clock.advance(5)  # "short" expires: invisible at once, still stored until purged
    later = c.stats()
    assert (later["rows"], later["expired_pending"], later["bytes"]) == (2, 1, sum(size.values()))
    assert c.purge_expired() == 1
    purged = c.stats()
    assert (purged["rows"], purged["expired_pending"], purged["expirations"]) == (2, 0, 1)
    assert purged["bytes"] == size["forever"] + size["mid"]

    clock.advance(100)  # "mid" expires; the store-wide purge counts it as an expiration too
    assert c.stats()["expired_pending"] == 1
    assert store.purge_expired() == 1
    final = c.stats()
    assert (final["rows"], final["expired_pending"], final["expirations"], final["bytes"]) == (
        1, 0, 2, size["forever"])


def test_cull_through_keyvalue_counts_expirations(store: kvlite.Store, clock: Any) -> None:
    kv = kvlite.KeyValue(store)
    kv.put("a", {"v": 1}, ttl=1)
    kv.put("b", {"v": 2}, ttl=1)
    kv.put("c", {"v": 3})
    clock.advance(2)
    kv.cull()
    stats = store.stats()["collections"]["default_collection"]
    assert (stats["expirations"], stats["rows"], stats["expired_pending"], stats["puts"]) == (2, 1, 0, 3)


def test_pickle_bytes_are_the_pickled_size(store: kvlite.Store) -> None:
    c = store.collection("p", serializer="pickle")
    values = [{"a": (1, 2)}, {1, 2, 3}, b"\x00\xff" * 10]
    for i, value in enumerate(values):
        c.put(i, value)
    assert c.stats()["bytes"] == sum(len(pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)) for v in values)


def test_store_stats_per_collection_and_totals(open_store: Callable[..., kvlite.Store], db_path: Path,
                                               clock: Any) -> None:
    first = open_store()
    a, b = first.collection("a"), first.collection("b")
    a.put_many({"x": 1, "y": 2})
    b.put("z", "zz", ttl=10)
    assert a.get("x") == 1 and b.get("nope") is None
    clock.advance(10)
    stats = first.stats()
    assert stats["path"] == str(db_path)
    assert list(stats["collections"]) == ["a", "b"]
    assert _counters(stats["collections"]["a"]) == {"gets": 1, "hits": 1, "misses": 0, "puts": 2, "deletes": 0,
                                                    "expirations": 0}
    assert stats["collections"]["b"]["expired_pending"] == 1
    assert stats["totals"] == {"gets": 2, "hits": 1, "misses": 1, "puts": 3, "deletes": 0, "expirations": 0,
                               "rows": 2, "expired_pending": 1, "bytes": 1 + 1 + len('"zz"')}

    # another Store object on the same file: its own (zero) counters, the same file numbers
    second = open_store()
    other = second.stats()
    assert {k: other["totals"][k] for k in COUNTERS} == dict.fromkeys(COUNTERS, 0)
    assert (other["totals"]["rows"], other["totals"]["bytes"]) == (2, stats["totals"]["bytes"])


def test_store_stats_needs_no_serializer(open_store: Callable[..., kvlite.Store],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    class Upper(kvlite.Serializer):
        name = "test-stats-upper"

        def dumps(self, value: Any) -> str:
            return str(value).upper()

        def loads(self, data: Any) -> Any:
            return data

    writer = open_store()
    writer.collection("shout", serializer=Upper()).put_many({"a": "hello", "b": "hi"})
    writer.close()
    # another program, where that serializer is not registered: stats still reads the file
    monkeypatch.delitem(kvlite.serializers._registry, "test-stats-upper")
    stats = open_store().stats()["collections"]["shout"]
    assert (stats["serializer"], stats["rows"], stats["bytes"]) == ("test-stats-upper", 2, len("HELLO") + len("HI"))


def test_store_stats_sums_typed_and_plain_views(store: kvlite.Store) -> None:
    import dataclasses

    @dataclasses.dataclass
    class Item:
        n: int

    plain = store.collection("items")
    typed = store.collection("items", model=Item)
    plain.put("a", {"n": 1})
    typed.put("b", Item(2))
    assert typed.get("a") == Item(1) and plain.get("b") == {"n": 2}
    totals = store.stats()["collections"]["items"]
    assert (totals["puts"], totals["gets"], totals["hits"], totals["rows"]) == (2, 2, 2, 2)


def test_compressed_collections_report_stored_bytes(store: kvlite.Store) -> None:
    doc = {"text": "kvlite " * 1000}
    plain = store.collection("plain")
    packed = store.collection("packed", serializer="json+zlib")
    plain.put("k", doc)
    packed.put("k", doc)
    assert plain.stats()["bytes"] == len(orjson.dumps(doc))
    assert 0 < packed.stats()["bytes"] < plain.stats()["bytes"] // 10


def test_store_stats_after_another_store_drops_and_makes_a_collection_again(open_store: Any) -> None:
    first, second = open_store(), open_store()
    first.collection("x").put("k", 1)
    second.drop_collection("x")
    second.collection("x").put_many({"a": 1, "b": 2})
    assert first.stats()["collections"]["x"]["rows"] == 2
    with first.transaction():
        first.drop_collection("x")
        first.collection("x").put("c", 3)
    assert first.stats()["collections"]["x"]["rows"] == 1
