"""py-key-value's own wrappers and adapters on top of :class:`KvliteStore`, end to end.

Each test builds the py-key-value object exactly as its documentation does,
with a kvlite file underneath, and checks real behaviour: values round-trip,
the TTL clamp changes the TTL that lands in the file, read-only refuses writes
and leaves the file as it was, the passthrough cache really serves from the
cache, fallback selects on py-key-value's exception types (which kvlite
raises), ...  The last tests show what only kvlite adds: what py-key-value
code wrote is a kvlite file, queryable with ``find``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path
from typing import Any

import apsw
import pytest

pytest.importorskip("key_value.aio", reason="interop tests need py-key-value-aio (the test extra)")
pydantic = pytest.importorskip("pydantic")

from key_value.aio import errors as pykv_errors  # noqa: E402
from key_value.aio.adapters.base_model import BaseModelAdapter  # noqa: E402
from key_value.aio.adapters.dataclass import DataclassAdapter  # noqa: E402
from key_value.aio.adapters.pydantic import PydanticAdapter  # noqa: E402
from key_value.aio.adapters.raise_on_missing import RaiseOnMissingAdapter  # noqa: E402
from key_value.aio.wrappers.compression import CompressionWrapper  # noqa: E402
from key_value.aio.wrappers.fallback import FallbackWrapper  # noqa: E402
from key_value.aio.wrappers.passthrough_cache import PassthroughCacheWrapper  # noqa: E402
from key_value.aio.wrappers.prefix_collections import PrefixCollectionsWrapper  # noqa: E402
from key_value.aio.wrappers.read_only import ReadOnlyWrapper  # noqa: E402
from key_value.aio.wrappers.statistics import StatisticsWrapper  # noqa: E402
from key_value.aio.wrappers.ttl_clamp import TTLClampWrapper  # noqa: E402

import kvlite  # noqa: E402
from kvlite.integrations.pykv import KvliteStore  # noqa: E402
from kvlite.serializers import JSONSerializer  # noqa: E402

from helpers_threads import in_threads  # noqa: E402


def memory_store() -> Any:
    """py-key-value's MemoryStore (needs ``py-key-value-aio[memory]``, i.e. cachetools)."""
    module = pytest.importorskip("key_value.aio.stores.memory", reason="needs py-key-value-aio[memory]")
    return module.MemoryStore()


class User(pydantic.BaseModel):
    name: str
    age: int
    email: str | None = None


@dataclasses.dataclass
class Item:
    sku: str
    qty: int


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "pykv.db"


def _documents(path: Path, collection: str = "default_collection", clock: Any = None) -> dict[str, Any]:
    """What is in the file, read with plain kvlite (a second connection)."""
    with kvlite.open(path, **({"clock": clock} if clock else {})) as store:
        if collection not in store.collections():
            return {}
        return dict(store.collection(collection).items())


# -- wrappers -----------------------------------------------------------------------------------


def test_statistics_wrapper(path: Path) -> None:
    async def main() -> None:
        async with KvliteStore(str(path)) as store:
            stats = StatisticsWrapper(key_value=store)
            await stats.put("a", {"v": 1})
            await stats.put_many(["b", "c"], [{"v": 2}, {"v": 3}])
            assert await stats.get("a") == {"v": 1}
            assert await stats.get("zz") is None
            assert await stats.get_many(["a", "zz", "b"]) == [{"v": 1}, None, {"v": 2}]
            assert (await stats.ttl("a"))[0] == {"v": 1}
            assert await stats.ttl("zz") == (None, None)
            assert await stats.delete("a") is True
            assert await stats.delete("a") is False
            assert await stats.delete_many(["b", "zz"]) == 1
            counted = stats.statistics.collections["default_collection"]
            assert (counted.get.hit, counted.get.miss, counted.get.count) == (3, 2, 5)
            assert (counted.ttl.hit, counted.ttl.miss) == (1, 1)
            assert counted.put.count == 3
            assert (counted.delete.hit, counted.delete.miss) == (2, 2)
            # kvlite's own counters agree on what reached the file
            assert store.kvlite_store is not None
            own = (await store.kvlite_store.stats())["collections"]["default_collection"]
            assert (own["puts"], own["deletes"], own["rows"]) == (3, 2, 1)
        assert _documents(path) == {"c": {"v": 3}}

    asyncio.run(main())


def test_ttl_clamp_wrapper_changes_the_stored_ttl(path: Path, clock: Any) -> None:
    async def main() -> None:
        async with KvliteStore(str(path), clock=clock) as store:
            clamped = TTLClampWrapper(key_value=store, min_ttl=10, max_ttl=100, missing_ttl=50)
            await clamped.put("long", {"v": 1}, ttl=1000)
            await clamped.put("short", {"v": 2}, ttl=1)
            await clamped.put("none", {"v": 3})
            await clamped.put_many(["m1", "m2"], [{"v": 4}, {"v": 5}], ttl=5)
            await clamped.put("ok", {"v": 6}, ttl=42)
            ttls = await store.ttl_many(["long", "short", "none", "m1", "m2", "ok"])
            assert [t for _, t in ttls] == [100, 10, 50, 10, 10, 42]
            with pytest.raises(pykv_errors.InvalidTTLError):
                await clamped.put("bad", {"v": 0}, ttl=-1)
        with kvlite.open(path, clock=clock) as plain:
            assert plain.collection("default_collection").ttl("long") == 100
            clock.advance(60)
            assert plain.collection("default_collection").get("none") is None  # clamped to 50 s: expired
            assert plain.collection("default_collection").get("long") == {"v": 1}

    asyncio.run(main())


def test_compression_wrapper(path: Path) -> None:
    async def main() -> None:
        big = {"text": "kvlite " * 500, "n": list(range(50))}
        async with KvliteStore(str(path)) as store:
            compressed = CompressionWrapper(key_value=store, min_size_to_compress=256)
            await compressed.put("big", big)
            await compressed.put("small", {"v": 1})
            await compressed.put_many(["big2"], [big])
            assert await compressed.get("big") == big
            assert await compressed.get_many(["big2", "small", "zz"]) == [big, {"v": 1}, None]
            assert (await compressed.ttl("big"))[0] == big
            raw = await store.get("big")  # the store underneath holds the compressed form
            assert raw is not None and set(raw) == {"__compressed_data__", "__compression_algorithm__",
                                                    "__compression_version__"}
        stored = _documents(path)
        assert "__compressed_data__" in stored["big"] and len(str(stored["big"])) < len(str(big))
        assert stored["small"] == {"v": 1}

    asyncio.run(main())


def test_prefix_collections_wrapper(path: Path) -> None:
    async def main() -> None:
        async with KvliteStore(str(path)) as store:
            tenant = PrefixCollectionsWrapper(key_value=store, prefix="tenant1")
            await tenant.put("k", {"v": 1})
            await tenant.put("u1", {"name": "Ada"}, collection="users")
            assert await tenant.get("k") == {"v": 1}
            assert await tenant.get("u1", collection="users") == {"name": "Ada"}
            assert await store.get("u1", collection="users") is None  # not under the bare name
            assert await store.get("u1", collection="tenant1__users") == {"name": "Ada"}
            assert await tenant.delete("k") is True
        with kvlite.open(path) as plain:
            assert plain.collections() == ["tenant1__default_collection", "tenant1__users", "users"]
            assert dict(plain.collection("tenant1__users").items()) == {"u1": {"name": "Ada"}}

    asyncio.run(main())


def test_passthrough_cache_with_a_memory_store_cache(path: Path, clock: Any) -> None:
    cache = memory_store()

    async def main() -> None:
        async with KvliteStore(str(path), clock=clock) as primary:
            cached = PassthroughCacheWrapper(primary_key_value=primary, cache_key_value=cache)
            await cached.put("a", {"v": 1})
            await cached.put("b", {"v": 2}, ttl=60)
            assert await cache.get("a") is None  # writes go to the primary only
            assert await cached.get("a") == {"v": 1}  # a miss in the cache: read through, then cached
            assert await cache.get("a") == {"v": 1}
            assert await cached.get_many(["b", "zz"]) == [{"v": 2}, None]
            _, cache_ttl = await cache.ttl("b")
            assert cache_ttl == pytest.approx(60, abs=5)  # the primary's TTL, carried into the cache
            await primary.delete("a")  # behind the wrapper's back
            assert await cached.get("a") == {"v": 1}  # served from the cache
            await cached.put("a", {"v": 10})  # a write through the wrapper invalidates the cache
            assert await cache.get("a") is None
            assert await cached.get("a") == {"v": 10}
            assert await cached.delete("b") is True
            assert await cache.get("b") is None
        assert _documents(path, clock=clock) == {"a": {"v": 10}}

    asyncio.run(main())


def test_fallback_on_pykv_errors_raised_by_kvlite(tmp_path: Path) -> None:
    async def main() -> None:
        broken = KvliteStore(str(tmp_path / "no-such-folder" / "x.db"))  # cannot be opened
        with pytest.raises(pykv_errors.StoreSetupError):
            await broken.get("k")
        async with KvliteStore(str(tmp_path / "backup.db")) as backup:
            await backup.put("k", {"from": "backup"})
            reads = FallbackWrapper(primary_key_value=broken, fallback_key_value=backup,
                                    fallback_on=(pykv_errors.KeyValueStoreError,))
            assert await reads.get("k") == {"from": "backup"}
            assert await reads.get_many(["k", "zz"]) == [{"from": "backup"}, None]

            # a read-only kvlite primary refuses writes with py-key-value's ReadOnlyError
            seed = kvlite.open(tmp_path / "ro.db")
            seed.collection("default_collection").put("r", {"from": "primary"})
            seed.close()
            readonly = KvliteStore(str(tmp_path / "ro.db"), readonly=True)
            writes = FallbackWrapper(primary_key_value=readonly, fallback_key_value=backup,
                                     fallback_on=(pykv_errors.ReadOnlyError,), write_to_fallback=True)
            await writes.put("w", {"v": 1})
            assert await writes.get("r") == {"from": "primary"}
            assert await backup.get("w") == {"v": 1}
            assert await readonly.get("w") is None
            await readonly.close()

    asyncio.run(main())


def test_read_only_wrapper_refuses_writes(path: Path) -> None:
    async def main() -> None:
        async with KvliteStore(str(path)) as store:
            await store.put("k", {"v": 1})
            frozen = ReadOnlyWrapper(key_value=store)
            assert await frozen.get("k") == {"v": 1}
            assert await frozen.ttl("k") == ({"v": 1}, None)
            with pytest.raises(pykv_errors.ReadOnlyError):
                await frozen.put("k", {"v": 2})
            with pytest.raises(pykv_errors.ReadOnlyError):
                await frozen.put_many(["x"], [{"v": 3}])
            with pytest.raises(pykv_errors.ReadOnlyError):
                await frozen.delete("k")
            with pytest.raises(pykv_errors.ReadOnlyError):
                await frozen.delete_many(["k"])
            silent = ReadOnlyWrapper(key_value=store, raise_on_write=False)
            await silent.put("k", {"v": 4})
            assert await silent.delete("k") is False
        assert _documents(path) == {"k": {"v": 1}}

    asyncio.run(main())


# -- adapters -----------------------------------------------------------------------------------------


def test_pydantic_adapters(path: Path, clock: Any) -> None:
    async def main() -> None:
        async with KvliteStore(str(path), clock=clock) as store:
            users = PydanticAdapter(key_value=store, pydantic_model=User)
            await users.put("u1", User(name="Ada", age=36, email="ada@example.org"), ttl=30)
            await users.put_many(["u2", "u3"], [User(name="Bob", age=20), User(name="Cy", age=41)])
            assert await users.get("u1") == User(name="Ada", age=36, email="ada@example.org")
            assert await users.get("zz") is None
            assert await users.ttl("u1") == (User(name="Ada", age=36, email="ada@example.org"), 30)
            assert await users.get_many(["u2", "zz"]) == [User(name="Bob", age=20), None]
            assert await users.delete("u3") is True

            teams = BaseModelAdapter(key_value=store, pydantic_model=list[User], default_collection="teams")
            await teams.put("t1", [User(name="Ada", age=36), User(name="Bob", age=20)])
            assert await teams.get("t1") == [User(name="Ada", age=36), User(name="Bob", age=20)]
            assert await store.get("t1", collection="teams") == {
                "items": [{"name": "Ada", "age": 36, "email": None}, {"name": "Bob", "age": 20, "email": None}]}

            await store.put("broken", {"name": "no age"})
            assert await users.get("broken") is None  # invalid data reads as missing by default
            strict = PydanticAdapter(key_value=store, pydantic_model=User, raise_on_validation_error=True)
            with pytest.raises(pykv_errors.DeserializationError):
                await strict.get("broken")

        # the same file, as a typed kvlite collection: the same User instances
        with kvlite.open(path, clock=clock) as db:
            typed = db.collection("default_collection", model=User)
            assert typed.get("u2") == User(name="Bob", age=20)
            assert [k for k, _ in typed.find("$[?(@.age > 30)]")] == ["u1"]

    asyncio.run(main())


def test_dataclass_adapter(path: Path) -> None:
    async def main() -> None:
        async with KvliteStore(str(path)) as store:
            items = DataclassAdapter(key_value=store, dataclass_type=Item, default_collection="items")
            await items.put("i1", Item("apple", 3))
            await items.put_many(["i2"], [Item("pear", 0)])
            assert await items.get("i1") == Item("apple", 3)
            assert await items.get_many(["i2", "zz"]) == [Item("pear", 0), None]
            assert await store.get("i1", collection="items") == {"sku": "apple", "qty": 3}
            await store.put("bad", {"sku": "x", "qty": "not a number"}, collection="items")
            assert await items.get("bad") is None
        assert _documents(path, "items")["i1"] == {"sku": "apple", "qty": 3}

    asyncio.run(main())


def test_raise_on_missing_adapter(path: Path) -> None:
    async def main() -> None:
        async with KvliteStore(str(path)) as store:
            strict = RaiseOnMissingAdapter(key_value=store)
            await strict.put("k", {"v": 1})
            assert await strict.get("k", raise_on_missing=True) == {"v": 1}
            assert await strict.get("zz") is None
            with pytest.raises(pykv_errors.MissingKeyError):
                await strict.get("zz", raise_on_missing=True)
            with pytest.raises(pykv_errors.MissingKeyError):
                await strict.get_many(["k", "zz"], raise_on_missing=True)
            with pytest.raises(pykv_errors.MissingKeyError):
                await strict.ttl("zz", raise_on_missing=True)
            assert await strict.ttl_many(["k"], raise_on_missing=True) == [({"v": 1}, None)]

    asyncio.run(main())


# -- errors are py-key-value's ----------------------------------------------------------------------


def test_errors_are_pykv_types(tmp_path: Path) -> None:
    async def main() -> None:
        async with KvliteStore(str(tmp_path / "e.db")) as store:
            with pytest.raises(pykv_errors.InvalidTTLError):
                await store.put("k", {"v": 1}, ttl=0)
            with pytest.raises(pykv_errors.SerializationError):
                await store.put("k", {"v": {1, 2}})
            with pytest.raises(pykv_errors.InvalidKeyError):
                await store.put("k", {"v": 1}, collection="nul\x00name")
            with pytest.raises(TypeError):
                await store.put("k", {"v": 1}, collection=1)  # as py-key-value's stores
            with pytest.raises(TypeError):
                await store.put("k", ["not", "a", "mapping"])
            await store.put("k", {"v": 1})
        # a stored value that cannot be decoded -> DeserializationError
        conn = apsw.Connection(str(tmp_path / "e.db"))
        table = conn.execute("SELECT table_name FROM kvlite_collections WHERE name = 'default_collection'").fetchone()[0]
        conn.execute(f'UPDATE "{table}" SET value = \'{{not json\'')
        conn.close()
        async with KvliteStore(str(tmp_path / "e.db")) as store:
            with pytest.raises(pykv_errors.DeserializationError):
                await store.get("k")
            for read in (store.ttl("k"), store.get_many(["k"]), store.ttl_many(["k"])):
                with pytest.raises(pykv_errors.DeserializationError):
                    await read
        # a collection recorded with another serializer: still a py-key-value error
        with kvlite.open(tmp_path / "p.db", serializer="pickle") as db:
            db.collection("default_collection").put("k", {"v": 1})
        async with KvliteStore(str(tmp_path / "p.db")) as store:
            with pytest.raises(pykv_errors.BaseKeyValueError):
                await store.get("k")
        async with KvliteStore(str(tmp_path / "p.db"), serializer="pickle") as store:
            assert await store.get("k") == {"v": 1}

    asyncio.run(main())


class decoder_settings:  # noqa: N801 - a type whose name says "decode", which must not matter
    pass


class StoredValueError(Exception):
    def __str__(self) -> str:
        return "cannot encode a stored value"  # and a message that says the opposite


def test_encode_and_decode_errors_are_told_apart_by_where_they_come_from(tmp_path: Path) -> None:
    class Strict(JSONSerializer):
        name = "strict-json-test"

        def dumps(self, value: Any) -> str:
            if "refuse" in value:
                raise StoredValueError()
            return super().dumps(value)

        def loads(self, data: Any) -> Any:
            if "unreadable" in str(data):
                raise StoredValueError()
            return super().loads(data)

    async def main() -> None:
        async with KvliteStore(str(tmp_path / "e.db"), serializer=Strict()) as store:
            for value in ({"x": decoder_settings()}, {"refuse": 1}):
                with pytest.raises(pykv_errors.SerializationError) as raised:
                    await store.put("k", value)
                assert not isinstance(raised.value, pykv_errors.DeserializationError)
                with pytest.raises(pykv_errors.SerializationError):
                    await store.put_many(["a", "k"], [{"ok": 1}, value])
            await store.put("k", {"unreadable": 1})
            for read in (store.get("k"), store.ttl("k"), store.get_many(["k"]), store.ttl_many(["k"])):
                with pytest.raises(pykv_errors.DeserializationError):
                    await read

    asyncio.run(main())


def test_store_reopens_after_close(path: Path) -> None:
    async def main() -> None:
        store = KvliteStore(str(path))
        assert store.kvlite_store is None  # opened lazily, like py-key-value's stores
        await store.put("k", {"v": 1})
        await store.close()
        assert store.kvlite_store is None
        assert await store.get("k") == {"v": 1}  # a call after close() opens the file again
        async with store:
            await store.put("j", {"v": 2})
        assert await store.get_many(["k", "j"]) == [{"v": 1}, {"v": 2}]
        underneath = store.kvlite_store
        assert underneath is not None
        await underneath.close()  # closed behind its back: py-key-value's connection error
        with pytest.raises(pykv_errors.StoreConnectionError):
            await store.get("k")
        await store.close()
        assert await store.get("j") == {"v": 2}
        await store.close()
        await store.close()  # closing twice is fine

    asyncio.run(main())


# -- one store, many event loops ------------------------------------------------------------------
# py-key-value stores are made once (module level, app config) and outlive one event loop: several
# asyncio.run() calls, pytest-asyncio's loop per test, threads each running a loop.


async def _burst(store: KvliteStore, tag: str, n: int = 20) -> list[Any]:
    await asyncio.gather(*(store.put(f"{tag}{i}", {"v": i}) for i in range(n)))
    return await asyncio.gather(*(store.get(f"{tag}{i}") for i in range(n)))


def test_store_outlives_one_event_loop(path: Path) -> None:
    store = KvliteStore(str(path))  # made outside any loop, as py-key-value stores are
    try:
        for run in range(3):
            assert asyncio.run(_burst(store, f"r{run}-")) == [{"v": i} for i in range(20)]
    finally:
        asyncio.run(store.close())
    assert len(_documents(path)) == 60


def test_first_use_from_two_threads_at_once(path: Path) -> None:
    store = KvliteStore(str(path))
    try:
        seen: list[Any] = []

        def work(t: int) -> list[Any]:
            async def main() -> list[Any]:
                got = await _burst(store, f"t{t}-", 40)
                seen.append(store.kvlite_store)
                return got
            return asyncio.run(main())

        assert in_threads(3, work) == [[{"v": i} for i in range(40)]] * 3
        assert seen[0] is not None and all(s is seen[0] for s in seen)  # opened once, shared
    finally:
        asyncio.run(store.close())
    assert len(_documents(path)) == 120


def test_a_failed_first_use_is_reported_to_every_caller_and_retried(tmp_path: Path) -> None:
    folder = tmp_path / "later"
    store = KvliteStore(str(folder / "x.db"))

    async def everyone() -> list[Any]:
        return await asyncio.gather(*(store.get(f"k{i}") for i in range(5)), return_exceptions=True)

    results = asyncio.run(everyone())
    assert all(isinstance(r, pykv_errors.StoreSetupError) for r in results), results
    folder.mkdir()
    assert asyncio.run(everyone()) == [None] * 5  # the next use opens it
    asyncio.run(store.close())


def test_cancelled_first_use_lets_the_others_open(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[kvlite.Store] = []
    started, release = threading.Event(), threading.Event()

    def slow_open(*args: Any, **kwargs: Any) -> kvlite.Store:
        if not opened:  # the first open waits until its caller has been cancelled
            started.set()
            release.wait(10)
        opened.append(kvlite.open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(kvlite.aio, "open_store", slow_open)

    async def main() -> None:
        store = KvliteStore(str(path))
        first = asyncio.create_task(store.put("a", {"v": 1}))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)  # `first` is opening the file
        others = [asyncio.create_task(store.put(f"k{i}", {"v": i})) for i in range(3)]
        await asyncio.sleep(0)  # they wait for that open
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        release.set()
        await asyncio.gather(*others)  # one of them opened the file again
        assert await store.get_many(["k0", "k1", "k2", "a"]) == [{"v": 0}, {"v": 1}, {"v": 2}, None]
        await store.close()

    asyncio.run(main())
    for _ in range(100):  # the abandoned open is closed by its worker thread when it ends
        if len(opened) == 2 and all(s.closed for s in opened):
            break
        threading.Event().wait(0.05)
    assert len(opened) == 2 and all(s.closed for s in opened)


# -- what only kvlite adds: the file is queryable ------------------------------------------------


def test_data_written_through_pykv_is_queryable(path: Path) -> None:
    async def main() -> None:
        async with KvliteStore(str(path)) as store:
            await store.put_many(["u1", "u2", "u3"], [{"name": "Ada", "age": 36}, {"name": "Bob", "age": 20},
                                                      {"name": "Cy", "age": 41}])
            users = PydanticAdapter(key_value=store, pydantic_model=User)
            await users.put("u4", User(name="Di", age=52, email="di@example.org"))

    asyncio.run(main())
    with kvlite.open(path) as db:
        coll = db.collection("default_collection")
        assert list(coll.find("$[?(@.age > 30)].name")) == [("u1", "Ada"), ("u3", "Cy"), ("u4", "Di")]
        assert coll.count("$[?(@.email)]") == 1
        assert coll.explain("$[?(@.age > 30)]")["steps"][0]["pushdown"]  # filtered in SQL


def test_kvlite_compression_under_pykv(path: Path) -> None:
    async def main() -> None:
        async with KvliteStore(str(path), serializer="json+zlib") as store:
            await store.put("k", {"text": "x" * 10_000})
            assert await store.get("k") == {"text": "x" * 10_000}

    asyncio.run(main())
    with kvlite.open(path, serializer="json+zlib") as db:
        stats = db.collection("default_collection").stats()
        assert stats["serializer"] == "json+zlib"
        assert stats["bytes"] < 1000
