"""Collections that go away, read-only stores, typed (model) collections, stats and durability,
on every engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import Clock

import kvlite
from kvlite.backends.base import Engine, Table
from kvlite.errors import (
    CollectionDropped,
    KvliteError,
    NotSupported,
    ReadOnlyError,
    SerializerMismatch,
    ValidationError,
)

from .base import EngineTests, Point, StoreMaker


def _dropped_calls(c: Any) -> list[Callable[[], Any]]:
    return [lambda: c.get("k"), lambda: c.put("k", 2), lambda: len(c), lambda: list(c.items()),
            lambda: c.delete("k"), lambda: c.clear(), lambda: c.purge_expired(), lambda: c.put_many({"a": 1}),
            lambda: "k" in c, lambda: c.ttl("k"), lambda: c.get_many(["k"])]


class StoreLifecycle(EngineTests):
    """Dropped collections, read-only stores, typed collections, stats, durability."""

    def test_one_store_and_one_collection_class_on_every_engine(self, store: Any) -> None:
        coll = store.collection("typed")
        assert type(store) is kvlite.Store and type(coll) is kvlite.Collection
        assert type(coll.dict()) is kvlite.DictView
        assert isinstance(store.engine, Engine) and isinstance(coll._table, Table)
        assert store.supports_transactions is type(store.engine).supports_transactions

    def test_a_dropped_collection_object_never_shows_old_data(self, store: Any) -> None:
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

    def test_readonly_store(self, make_store: StoreMaker) -> None:
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

    def test_typed_collection(self, store: Any) -> None:
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

    def test_stats_shape_and_counts(self, store: Any, clock: Clock) -> None:
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

    def test_every_call_through_a_dropped_collection_object_raises(self, make_store: StoreMaker) -> None:
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

    def test_a_collection_made_again_by_another_store_is_seen(self, make_store: StoreMaker) -> None:
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

    @pytest.mark.parametrize("durability", ["normal", "full"])
    def test_durability_full_is_given_or_refused(self, make_store: StoreMaker, durability: str,
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
