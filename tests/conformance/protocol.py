"""The key-value protocol on every engine: get/put/delete/ttl and the ``_many`` forms (positions,
duplicates, defaults), pop, popitem, setdefault, count/len/in, clear, the registry of collections,
reopening, a closed store, settings refused at open, and kvlite.KeyValue over the store."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

import kvlite
from kvlite.errors import InvalidKey, StoreClosed

from .base import TTL_TOLERANCE, EngineTests, StoreMaker, typed


class KeyValueProtocol(EngineTests):
    """The key-value protocol of Collection and Store, and KeyValue over a store."""

    def test_get_put_delete_and_defaults(self, store: Any) -> None:
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

    def test_many_forms_keep_positions(self, store: Any) -> None:
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
    def test_many_methods_refuse_one_str_or_bytes_key(self, make_store: StoreMaker, one: Any) -> None:
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
    def test_bad_settings_are_refused_at_open_on_every_engine(self, make_store: StoreMaker,
                                                              bad: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match=next(iter(bad))):
            make_store(**bad)
        with pytest.raises(ValueError, match=next(iter(bad))):
            kvlite.open("null://", **bad)
        if make_store.backend == "per-collection":  # refused before the folder is made
            assert not os.path.exists(make_store.location.target)

    def test_pop_popitem_setdefault(self, store: Any) -> None:
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

    def test_clear_count_and_iteration(self, store: Any) -> None:
        c = store.collection("whole")
        c.put_many({"a": 1, 2: "two", b"c": [3]})
        assert list(c) == ["a", 2, b"c"] == list(c.keys())
        assert list(c.values()) == [1, "two", [3]] and list(c.values(reverse=True)) == [[3], "two", 1]
        assert c.count() == len(c) == 3
        c.clear()
        assert len(c) == 0 and list(c.items()) == [] and c.get("a") is None
        c.put("a", 2)
        assert list(c.items()) == [("a", 2)]

    def test_registry_collections_and_drop(self, store: Any, make_store: StoreMaker) -> None:
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

    def test_data_survives_reopening_exactly_when_persistent(self, make_store: StoreMaker) -> None:
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

    def test_a_closed_store_raises_store_closed(self, store: Any) -> None:
        c = store.collection("c")
        c.put("a", 1)
        store.close()
        assert store.closed
        for call in (lambda: c.get("a"), lambda: c.put("a", 2), lambda: store.collection("d"), lambda: list(c.items()),
                     lambda: len(c), lambda: c.get_many([]), lambda: c.ttl_many([])):
            with pytest.raises(StoreClosed):
                call()
        store.close()  # idempotent

    def test_the_key_value_protocol_runs_on_every_backend(self, make_store: StoreMaker) -> None:
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
