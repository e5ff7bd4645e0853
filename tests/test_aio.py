"""The asyncio API (``kvlite.aio``).

Part 1 is ONE behaviour suite for the Collection API, written against a small
synchronous facade and run twice through the ``api`` fixture: on the sync
:class:`kvlite.Collection` and on :class:`kvlite.aio.AsyncCollection`.  The
async adapter runs every call in one long-lived task on an event loop in a
background thread (:class:`LoopThread`), so ``async with store.transaction()``
behaves as in straight-line async code (its context variable is seen by the
calls that follow it).

Part 2 is what only the async API has: the event loop keeps running while
SQLite works, concurrent ``asyncio.gather`` calls, cancellation never leaving a
partial write (checked from a second connection), and ``async for`` streaming
in batches.  "The loop is not blocked" is proved without timing: the worker
thread blocks inside the serializer until a callback *scheduled on the event
loop* releases it, which can only happen if the loop is free.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import inspect
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvlite
import kvlite.aio
from kvlite.errors import InvalidKey, InvalidTTL, SerializationError, StoreClosed
from kvlite.serializers import JSONSerializer

from helpers_threads import in_threads

# -- running async code from synchronous tests -----------------------------------------------


class LoopThread:
    """An event loop on a daemon thread with one driver task that runs submitted calls in order."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()
        self._queue: asyncio.Queue[Any] | None = None
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)

    async def _start(self) -> None:
        self._queue = asyncio.Queue()
        self._driver = asyncio.get_running_loop().create_task(self._drive())

    async def _drive(self) -> None:
        assert self._queue is not None
        while True:
            fn, done = await self._queue.get()
            if fn is None:
                return
            try:
                done.set_result(await fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """``await fn()`` in the driver task; returns its result or raises its exception."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        assert self._queue is not None
        self.loop.call_soon_threadsafe(self._queue.put_nowait, (fn, done))
        return done.result(timeout=60)

    def close(self) -> None:
        assert self._queue is not None
        self.loop.call_soon_threadsafe(self._queue.put_nowait, (None, None))
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(self._driver, 30), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


_STREAMS = {"find", "select", "keys", "items", "values"}


class SyncColl:
    """The facade on a sync Collection: streams become lists, ``in`` becomes ``contains``."""

    def __init__(self, coll: kvlite.Collection) -> None:
        self._c = coll

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._c, name)
        if name in _STREAMS:
            return lambda *a, **kw: list(attr(*a, **kw))
        return attr

    def contains(self, key: Any) -> bool:
        return key in self._c


class AsyncColl:
    """The same facade on an AsyncCollection: each call awaited in the runner's driver task."""

    def __init__(self, runner: LoopThread, coll: kvlite.aio.AsyncCollection) -> None:
        self._runner = runner
        self._c = coll

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._c, name)
        if name in _STREAMS:
            async def collect(*a: Any, **kw: Any) -> list[Any]:
                return [item async for item in attr(*a, **kw)]

            return lambda *a, **kw: self._runner.run(lambda: collect(*a, **kw))
        return lambda *a, **kw: self._runner.run(lambda: attr(*a, **kw))


class SyncApi:
    kind = "sync"

    def __init__(self, path: Path, clock: Any) -> None:
        self.store = kvlite.open(path, clock=clock)

    def coll(self, name: str, **options: Any) -> Any:
        return SyncColl(self.store.collection(name, **options))

    def transaction(self) -> Any:
        return self.store.transaction()

    def purge_expired(self) -> int:
        return self.store.purge_expired()

    def close(self) -> None:
        self.store.close()


class AsyncApi:
    kind = "async"

    def __init__(self, path: Path, clock: Any) -> None:
        self.runner = LoopThread()
        self.store: kvlite.aio.AsyncStore = self.runner.run(lambda: kvlite.aio.open(path, clock=clock))

    def coll(self, name: str, **options: Any) -> Any:
        return AsyncColl(self.runner, self.runner.run(lambda: self.store.collection(name, **options)))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        manager = self.store.transaction()
        self.runner.run(manager.__aenter__)
        try:
            yield
        except BaseException as exc:
            if not self.runner.run(lambda: manager.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            self.runner.run(lambda: manager.__aexit__(None, None, None))

    def purge_expired(self) -> int:
        return self.runner.run(self.store.purge_expired)

    def close(self) -> None:
        self.runner.run(self.store.close)
        self.runner.close()


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, tmp_path: Path, clock: Any) -> Iterator[Any]:
    made = (SyncApi if request.param == "sync" else AsyncApi)(tmp_path / "behaviour.db", clock)
    yield made
    made.close()


@pytest.fixture
def coll(api: Any) -> Any:
    return api.coll("c")


class Boom(Exception):
    pass


# == Part 1: the shared behaviour suite =======================================================


def test_get_put_delete(coll: Any) -> None:
    assert coll.get("k") is None
    assert coll.get("k", "dflt") == "dflt"
    coll.put("k", {"a": [1, 2]})
    assert coll.get("k") == {"a": [1, 2]}
    assert coll.contains("k")
    coll.put("k", "replaced")
    assert coll.get("k") == "replaced"
    assert coll.delete("k") is True
    assert coll.delete("k") is False
    assert coll.get("k", "gone") == "gone"
    assert not coll.contains("k")


def test_falsy_values_and_key_types_are_kept(coll: Any) -> None:
    entries = [("none", None), (b"bytes", 0), (7, ""), (2.5, False), (True, [])]
    for key, value in entries:
        coll.put(key, value)
    assert coll.items() == entries
    assert [coll.get(k, "missing") for k, _ in entries] == [v for _, v in entries]
    assert coll.count() == 5


def test_ttl_with_a_fake_clock(api: Any, coll: Any, clock: Any) -> None:
    assert coll.ttl("missing") is None
    coll.put("forever", 1)
    coll.put("short", 2, ttl=10)
    assert coll.ttl("forever") is None
    assert coll.ttl("short") == 10
    clock.advance(4)
    assert coll.ttl("short") == 6
    assert coll.get("short") == 2
    clock.advance(6)  # expires_at == now: expired
    assert coll.get("short") is None
    assert coll.ttl("short") is None
    assert not coll.contains("short")
    assert coll.count() == 1
    assert coll.keys() == ["forever"]
    assert api.purge_expired() == 1
    assert coll.delete("short") is False
    coll.put("short", 3, ttl=5)  # a fresh entry, at the end
    assert coll.items() == [("forever", 1), ("short", 3)]
    assert coll.ttl_many(["short", "forever", "nope"]) == [5, None, None]


def test_put_replaces_the_ttl(coll: Any, clock: Any) -> None:
    coll.put("k", 1, ttl=5)
    coll.put("k", 2)
    clock.advance(100)
    assert coll.get("k") == 2
    assert coll.ttl("k") is None


@pytest.mark.parametrize("bad", [0, -1, True, float("nan"), float("inf"), "10"])
def test_invalid_ttl_writes_nothing(coll: Any, bad: Any) -> None:
    with pytest.raises(InvalidTTL):
        coll.put("k", 1, ttl=bad)
    with pytest.raises(InvalidTTL):
        coll.put_many({"a": 1, "b": 2}, ttl=bad)
    assert coll.count() == 0


def test_invalid_key_and_value(coll: Any) -> None:
    with pytest.raises(InvalidKey):
        coll.put(("tuple",), 1)
    with pytest.raises(TypeError):  # InvalidKey is a TypeError, as dict users expect
        coll.get(None)
    with pytest.raises(SerializationError):
        coll.put("k", {"a set": {1, 2}})
    with pytest.raises(SerializationError):
        coll.put_many([("ok", 1), ("bad", object()), ("ok2", 2)])
    assert coll.count() == 0


def test_many_forms(coll: Any, clock: Any) -> None:
    assert coll.put_many({"a": 1, "b": 2}) == 2
    assert coll.put_many([("c", 3), ("a", 10)], ttl=30) == 2
    assert coll.get_many(["a", "zz", "c", "a"]) == [10, None, 3, 10]
    assert coll.get_many(["zz"], "dflt") == ["dflt"]
    assert coll.ttl_many(["a", "b", "zz"]) == [30, None, None]
    assert coll.items() == [("a", 10), ("b", 2), ("c", 3)]  # "a" kept its place
    assert coll.delete_many(["a", "zz", "a", "b"]) == 2
    assert coll.items() == [("c", 3)]
    clock.advance(30)
    assert coll.get_many(["c"]) == [None]
    assert coll.delete_many(["c"]) == 0


def test_pop_popitem_setdefault(coll: Any, clock: Any) -> None:
    coll.put_many([("a", 1), ("b", 2), ("c", 3)])
    assert coll.pop("b") == 2
    assert coll.pop("b", "dflt") == "dflt"
    with pytest.raises(KeyError):
        coll.pop("b")
    assert coll.popitem() == ("c", 3)
    assert coll.setdefault("a", 99) == 1
    assert coll.setdefault("new", [5], ttl=10) == [5]
    assert coll.ttl("new") == 10
    assert coll.items() == [("a", 1), ("new", [5])]
    clock.advance(10)
    assert coll.setdefault("new", "again") == "again"  # expired counts as missing
    assert coll.popitem() == ("new", "again")
    assert coll.popitem() == ("a", 1)
    with pytest.raises(KeyError):
        coll.popitem()


def test_iteration_order_and_reverse(coll: Any) -> None:
    coll.put_many([(f"k{i}", i) for i in range(25)])
    coll.delete("k3")
    coll.put("k3", "back")
    keys = [f"k{i}" for i in range(25) if i != 3] + ["k3"]
    assert coll.keys() == keys
    assert coll.keys(reverse=True) == keys[::-1]
    assert coll.values()[-1] == "back"
    assert coll.items(reverse=True)[0] == ("k3", "back")
    assert coll.count() == 25


def test_find_select_count(coll: Any) -> None:
    coll.put_many({
        "u1": {"name": "Ada", "age": 36, "tags": ["x"]},
        "u2": {"name": "Bob", "age": 20, "tags": []},
        "u3": {"name": "Cy", "age": 41, "tags": ["x", "y"]},
    })
    assert coll.find("$[?(@.age > 30)]") == [("u1", {"name": "Ada", "age": 36, "tags": ["x"]}),
                                              ("u3", {"name": "Cy", "age": 41, "tags": ["x", "y"]})]
    assert coll.select("$[?(@.age > 30)].name") == ["Ada", "Cy"]
    assert coll.find("$.u3.tags[*]") == [("u3", "x"), ("u3", "y")]
    assert coll.count("$[?(@.age > 30)]") == 2
    assert coll.find("$[?(@.age > 0)].name", limit=2, offset=1) == [("u2", "Bob"), ("u3", "Cy")]


def test_transaction_commits_across_collections(api: Any, coll: Any) -> None:
    other = api.coll("other")
    with api.transaction():
        coll.put("a", 1)
        other.put("b", 2)
        assert coll.get("a") == 1  # a transaction reads its own writes
    assert coll.items() == [("a", 1)]
    assert other.items() == [("b", 2)]


def test_transaction_rolls_back_on_error(api: Any, coll: Any) -> None:
    other = api.coll("other")
    coll.put("keep", 0)
    with pytest.raises(Boom):
        with api.transaction():
            coll.put("a", 1)
            coll.delete("keep")
            other.put_many({"b": 2})
            raise Boom
    assert coll.items() == [("keep", 0)]
    assert other.items() == []


def test_nested_transaction_is_a_savepoint(api: Any, coll: Any) -> None:
    with api.transaction():
        coll.put("outer", 1)
        with pytest.raises(Boom):
            with api.transaction():
                coll.put("inner", 2)
                raise Boom
        assert coll.get("inner") is None
        coll.put("after", 3)
    assert coll.items() == [("outer", 1), ("after", 3)]


_KEYS = st.sampled_from(["a", "b", "c", "d", "e"])
_VALUES = st.none() | st.integers(-5, 5) | st.text(max_size=3) | st.lists(st.integers(0, 3), max_size=2)
_OPS = st.one_of(
    st.tuples(st.just("put"), _KEYS, _VALUES),
    st.tuples(st.just("delete"), _KEYS),
    st.tuples(st.just("pop"), _KEYS),
    st.tuples(st.just("setdefault"), _KEYS, _VALUES),
    st.tuples(st.just("get"), _KEYS),
    st.tuples(st.just("put_many"), st.lists(st.tuples(_KEYS, _VALUES), max_size=4)),
    st.tuples(st.just("delete_many"), st.lists(_KEYS, max_size=4)),
    st.tuples(st.just("popitem")),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_OPS, max_size=25))
def test_behaves_like_a_dict(api: Any, ops: list[tuple[Any, ...]]) -> None:
    coll = api.coll("model")
    coll.clear()  # one store for every example: start from empty
    model: dict[str, Any] = {}
    for op, *args in ops:
        if op == "put":
            coll.put(*args)
            model[args[0]] = args[1]
        elif op == "delete":
            expected = args[0] in model
            model.pop(args[0], None)
            assert coll.delete(args[0]) is expected
        elif op == "pop":
            assert coll.pop(args[0], "missing") == model.pop(args[0], "missing")
        elif op == "setdefault":
            assert coll.setdefault(*args) == model.setdefault(*args)
        elif op == "get":
            assert coll.get(args[0], "missing") == model.get(args[0], "missing")
        elif op == "put_many":
            assert coll.put_many(args[0]) == len(args[0])
            model.update(args[0])
        elif op == "delete_many":
            present = {k for k in args[0] if k in model}
            assert coll.delete_many(args[0]) == len(present)
            for k in present:
                del model[k]
        else:
            if model:
                assert coll.popitem() == model.popitem()
            else:
                with pytest.raises(KeyError):
                    coll.popitem()
    assert coll.items() == list(model.items())
    assert coll.count() == len(model)


# == Part 2: async only =========================================================================


class GatedJSON(JSONSerializer):
    """JSON that counts encodes/decodes and can block the worker thread at the n-th one.

    ``on_block`` runs (on the worker thread) when it blocks; the worker then
    waits for ``gate``.  ``released`` records whether the gate opened (True) or
    the wait timed out (False: nobody could open it, e.g. a blocked loop).
    """

    name = "test-gated-json"

    def __init__(self, *, block_dumps_at: int | None = None, block_loads_at: int | None = None) -> None:
        self.dumps_calls = 0
        self.loads_calls = 0
        self.block_dumps_at = block_dumps_at
        self.block_loads_at = block_loads_at
        self.gate = threading.Event()
        self.on_block: Callable[[], None] = lambda: None
        self.released: bool | None = None

    def _block(self) -> None:
        self.on_block()
        self.released = self.gate.wait(10)

    def dumps(self, value: Any) -> str:
        self.dumps_calls += 1
        if self.dumps_calls == self.block_dumps_at:
            self._block()
        return super().dumps(value)

    def loads(self, data: str | bytes) -> Any:
        self.loads_calls += 1
        if self.loads_calls == self.block_loads_at:
            self._block()
        return super().loads(data)


def _blocking_signal(gated: GatedJSON) -> asyncio.Event:
    """An asyncio.Event set *through the event loop* when the worker blocks in ``gated``."""
    loop = asyncio.get_running_loop()
    blocked = asyncio.Event()
    gated.on_block = lambda: loop.call_soon_threadsafe(blocked.set)
    return blocked


async def _heartbeat(beats: int) -> int:
    ticks = 0
    for _ in range(beats):
        await asyncio.sleep(0)
        ticks += 1
    return ticks


def _docs(n: int) -> dict[str, dict[str, int]]:
    return {f"k{i:05d}": {"i": i} for i in range(n)}


def _count_in_file(path: Path, name: str = "c", serializer: Any = "json") -> int:
    """Live entries of ``name`` as a second, independent connection sees them."""
    with kvlite.open(path, timeout=5) as other:
        if name not in other.collections():
            return 0
        return other.collection(name, serializer=serializer).count()


def test_event_loop_runs_while_put_many_works(tmp_path: Path) -> None:
    async def main() -> None:
        gated = GatedJSON(block_dumps_at=500)
        blocked = _blocking_signal(gated)
        async with await kvlite.aio.open(tmp_path / "s.db") as store:
            coll = await store.collection("c", serializer=gated)
            task = asyncio.create_task(coll.put_many(_docs(1000)))
            await blocked.wait()  # reached only if the loop runs while the worker is mid put_many
            assert await _heartbeat(100) == 100
            assert not task.done()
            gated.gate.set()
            assert await task == 1000
        assert gated.released is True

    asyncio.run(main())


def test_event_loop_runs_while_a_query_streams(tmp_path: Path) -> None:
    async def main() -> None:
        gated = GatedJSON()
        async with await kvlite.aio.open(tmp_path / "s.db") as store:
            coll = await store.collection("c", serializer=gated)
            await coll.put_many(_docs(600))
            gated.block_loads_at = gated.loads_calls + 400
            blocked = _blocking_signal(gated)

            async def consume() -> list[Any]:
                return [key async for key, _ in coll.find("$[?(@.i >= 0)]", batch=1000)]

            task = asyncio.create_task(consume())
            await blocked.wait()
            assert await _heartbeat(100) == 100
            assert not task.done()
            gated.gate.set()
            assert await task == list(_docs(600))
        assert gated.released is True

    asyncio.run(main())


def test_gather_many_puts_and_gets(tmp_path: Path) -> None:
    async def main() -> None:
        async with await kvlite.aio.open(tmp_path / "s.db") as store:
            coll = await store.collection("c")
            docs = _docs(200)
            await asyncio.gather(*(coll.put(k, v) for k, v in docs.items()))
            got = await asyncio.gather(*(coll.get(k) for k in docs))
            assert got == list(docs.values())
            assert await coll.count() == 200
            # operations from different tasks run one at a time, in the order they were awaited
            results = await asyncio.gather(
                coll.put("x", 1), coll.get("x"), coll.put("x", 2), coll.get("x"),
                coll.delete("x"), coll.get("x", "gone"), coll.get_many(["k00000", "x"]))
            assert results == [None, 1, None, 2, True, "gone", [{"i": 0}, None]]

    asyncio.run(main())


def test_concurrent_transactions_lose_no_update(tmp_path: Path) -> None:
    async def main() -> None:
        async with await kvlite.aio.open(tmp_path / "s.db") as store:
            coll = await store.collection("c")
            await coll.put("n", 0)

            async def increment() -> None:
                async with store.transaction():
                    value = await coll.get("n")
                    await asyncio.sleep(0)  # let every other task try to get in
                    await coll.put("n", value + 1)

            await asyncio.gather(*(increment() for _ in range(50)))
            assert await coll.get("n") == 50

    asyncio.run(main())


def test_other_tasks_wait_for_a_transaction(tmp_path: Path) -> None:
    async def main() -> None:
        async with await kvlite.aio.open(tmp_path / "s.db") as store:
            coll = await store.collection("c")
            inside, release = asyncio.Event(), asyncio.Event()

            async def writer() -> None:
                async with store.transaction():
                    await coll.put("x", "half")
                    inside.set()
                    await release.wait()
                    await coll.put("x", "done")

            w = asyncio.create_task(writer())
            await inside.wait()
            reader = asyncio.create_task(coll.get("x"))
            await _heartbeat(50)
            assert not reader.done()  # it never sees the half-done transaction
            release.set()
            await w
            assert await reader == "done"

    asyncio.run(main())


def test_cancel_mid_put_many_leaves_no_partial_write(tmp_path: Path) -> None:
    path = tmp_path / "s.db"

    async def main() -> None:
        gated = GatedJSON(block_dumps_at=300)
        blocked = _blocking_signal(gated)
        async with await kvlite.aio.open(path) as store:
            coll = await store.collection("c", serializer=gated)
            task = asyncio.create_task(coll.put_many(_docs(1000)))
            await blocked.wait()  # the worker is inside the put_many's transaction
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert _count_in_file(path, serializer=gated) == 0  # nothing half-written is visible
            gated.gate.set()
            # the operation had reached the worker: it completes, whole (never in part)
            assert await coll.count() == 1000
        assert _count_in_file(path, serializer=gated) == 1000

    asyncio.run(main())


def test_cancel_before_the_worker_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"

    async def main() -> None:
        async with await kvlite.aio.open(path) as store:
            coll = await store.collection("c")
            inside, release = asyncio.Event(), asyncio.Event()

            async def hold() -> None:
                async with store.transaction():
                    inside.set()
                    await release.wait()

            holder = asyncio.create_task(hold())
            await inside.wait()
            queued = asyncio.create_task(coll.put_many(_docs(100)))
            await _heartbeat(10)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            release.set()
            await holder
            assert await coll.count() == 0
        assert _count_in_file(path) == 0

    asyncio.run(main())


def test_cancel_mid_transaction_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "s.db"

    async def main() -> None:
        async with await kvlite.aio.open(path) as store:
            coll = await store.collection("c")
            await coll.put("before", 0)
            inside = asyncio.Event()

            async def work() -> None:
                async with store.transaction():
                    await coll.put("a", 1)
                    await coll.put_many(_docs(50))
                    await coll.delete("before")
                    inside.set()
                    await asyncio.Event().wait()  # never set: cancelled here

            task = asyncio.create_task(work())
            await inside.wait()
            assert _count_in_file(path) == 1  # the second connection sees only committed data
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await coll.get("before") == 0
            assert await coll.get("a") is None
            assert await coll.count() == 1
            await coll.put("after", 2)  # the write lock was released
        with kvlite.open(path, timeout=5) as other:
            assert list(other.collection("c").items()) == [("before", 0), ("after", 2)]
            other.collection("c").put("from-other", 3)  # nobody holds the lock

    asyncio.run(main())


def test_cancel_while_a_transaction_statement_runs(tmp_path: Path) -> None:
    path = tmp_path / "s.db"

    async def main() -> None:
        gated = GatedJSON(block_dumps_at=30)
        blocked = _blocking_signal(gated)
        async with await kvlite.aio.open(path) as store:
            coll = await store.collection("c", serializer=gated)

            async def work() -> None:
                async with store.transaction():
                    await coll.put("a", 1)
                    await coll.put_many(_docs(100))  # blocks at its 29th value

            task = asyncio.create_task(work())
            await blocked.wait()
            task.cancel()
            gated.gate.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await coll.count() == 0
        assert _count_in_file(path, serializer=gated) == 0

    asyncio.run(main())


def test_cancel_while_waiting_for_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    kvlite.open(path).close()
    locked, release = threading.Event(), threading.Event()

    def other_process_holds_the_lock() -> None:
        with kvlite.open(path) as other:
            with other.transaction():
                other.collection("c").put("other", 1)
                locked.set()
                release.wait(10)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with await kvlite.aio.open(path, timeout=10) as store:
            coll = await store.collection("c")
            holder = threading.Thread(target=other_process_holds_the_lock)
            holder.start()
            await loop.run_in_executor(None, locked.wait, 10)

            async def work() -> None:
                async with store.transaction():  # BEGIN IMMEDIATE waits for the other writer
                    await coll.put("mine", 1)

            task = asyncio.create_task(work())
            await _heartbeat(20)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()
            await loop.run_in_executor(None, holder.join, 10)
            assert await coll.get("other") == 1
            assert await coll.get("mine") is None  # the block never ran, and its BEGIN was rolled back
            await coll.put("after", 2)
        with kvlite.open(path, timeout=5) as again:
            again.collection("c").put("last", 3)  # nobody is left holding the lock
            assert list(again.collection("c").keys()) == ["other", "after", "last"]

    asyncio.run(main())


def test_async_for_streams_in_batches(tmp_path: Path) -> None:
    async def main() -> None:
        gated = GatedJSON()
        async with await kvlite.aio.open(tmp_path / "s.db") as store:
            coll = await store.collection("c", serializer=gated)
            await coll.put_many(_docs(1000))
            gated.loads_calls = 0
            stream = coll.find("$[?(@.i >= 0)]", batch=10)
            first = [await stream.__anext__() for _ in range(3)]
            assert first == [("k00000", {"i": 0}), ("k00001", {"i": 1}), ("k00002", {"i": 2})]
            assert gated.loads_calls == 10  # one batch decoded, not the collection
            await stream.aclose()
            assert gated.loads_calls == 10

            gated.loads_calls = 0
            items = coll.items(batch=7)
            assert await items.__anext__() == ("k00000", {"i": 0})
            assert gated.loads_calls == 7
            await items.aclose()

            everything = [kv async for kv in coll.find("$[?(@.i >= 0)]", batch=64)]
            assert everything == list(store.store.collection("c", serializer=gated).find("$[?(@.i >= 0)]"))
            assert [k async for k in coll.keys(reverse=True, batch=33)] == sorted(_docs(1000), reverse=True)
            assert [v async for v in coll.select("$[?(@.i < 3)].i")] == [0, 1, 2]
            with pytest.raises(ValueError):
                [kv async for kv in coll.items(batch=0)]

    asyncio.run(main())


def test_closed_store_raises_store_closed(tmp_path: Path) -> None:
    async def main() -> None:
        store = await kvlite.aio.open(tmp_path / "s.db")
        coll = await store.collection("c")
        await coll.put("k", 1)
        await store.close()
        assert store.closed
        with pytest.raises(StoreClosed):
            await coll.get("k")
        with pytest.raises(StoreClosed):
            async with store.transaction():
                pass
        await store.close()  # a second close does nothing
        assert store.closed
        with kvlite.open(tmp_path / "s.db") as other:
            assert other.collection("c").get("k") == 1

    asyncio.run(main())


def test_async_collection_mirrors_collection() -> None:
    streams = {"find", "select", "keys", "items", "values"}
    awaited = {"get", "put", "delete", "ttl", "get_many", "put_many", "delete_many", "ttl_many", "pop",
               "popitem", "setdefault", "count", "purge_expired", "clear", "stats", "explain",
               "create_index", "drop_index", "indexes"}
    for name in awaited | streams:
        assert hasattr(kvlite.Collection, name), name
        method = getattr(kvlite.aio.AsyncCollection, name)
        if name in streams:
            assert not inspect.iscoroutinefunction(method), name  # returns an async iterator
        else:
            assert inspect.iscoroutinefunction(method), name
    for name in ["collection", "collections", "drop_collection", "purge_expired", "stats", "close"]:
        assert inspect.iscoroutinefunction(getattr(kvlite.aio.AsyncStore, name)), name


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_async_typed_collection_and_stats(tmp_path: Path) -> None:
    async def main() -> None:
        async with await kvlite.aio.open(tmp_path / "s.db") as store:
            points = await store.collection("points", model=Point)
            await points.put("p", Point(1, 2))
            await points.put("q", {"x": 5, "y": 0})
            assert await points.get("p") == Point(1, 2)
            assert [kv async for kv in points.find("$[?(@.x > 2)]")] == [("q", Point(5, 0))]
            assert await points.get("nope") is None
            stats = await points.stats()
            assert (stats["gets"], stats["hits"], stats["misses"], stats["puts"], stats["rows"]) == (2, 1, 1, 2, 2)
            assert (await store.stats())["totals"]["rows"] == 2
            assert await store.collections() == ["points"]
            assert await store.drop_collection("points") is True

    asyncio.run(main())


# -- one store, many event loops -------------------------------------------------------------------
# A store is often made once and used from more than one event loop over its life: several
# asyncio.run() calls in turn, or threads that each run their own loop at the same time.  Nothing in
# an AsyncStore is bound to one loop, and a waiter on one loop is woken by a release on another.


async def _burst(store: kvlite.aio.AsyncStore, tag: str, n: int = 30) -> list[Any]:
    coll = await store.collection("c")
    await asyncio.gather(*(coll.put(f"{tag}{i}", i) for i in range(n)))
    return await asyncio.gather(*(coll.get(f"{tag}{i}") for i in range(n)))


def test_store_used_from_event_loops_in_turn(tmp_path: Path) -> None:
    store = asyncio.run(kvlite.aio.open(tmp_path / "s.db"))
    try:
        for run in range(3):  # each asyncio.run() is a new loop; gather makes the calls wait for each other
            assert asyncio.run(_burst(store, f"r{run}-")) == list(range(30))
    finally:
        asyncio.run(store.close())
    with kvlite.open(tmp_path / "s.db") as other:
        assert other.collection("c").count() == 90


def test_store_used_from_two_threads_loops_at_once(tmp_path: Path) -> None:
    store = asyncio.run(kvlite.aio.open(tmp_path / "s.db"))
    try:
        results = in_threads(4, lambda t: asyncio.run(_burst(store, f"t{t}-", 50)))
        assert results == [list(range(50))] * 4
    finally:
        asyncio.run(store.close())


def test_transaction_on_one_loop_makes_another_loop_wait(tmp_path: Path) -> None:
    store = asyncio.run(kvlite.aio.open(tmp_path / "s.db"))
    coll = asyncio.run(store.collection("c"))  # an AsyncCollection is not bound to a loop either
    inside, release = threading.Event(), threading.Event()

    def holder() -> None:
        async def main() -> None:
            async with store.transaction():
                await coll.put("x", "half")
                inside.set()
                await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
                await coll.put("x", "done")
        asyncio.run(main())

    def reader() -> list[Any]:
        async def main() -> list[Any]:
            waiting = [asyncio.create_task(coll.get("x")) for _ in range(3)]
            doomed = asyncio.create_task(coll.put("x", "never"))
            await _heartbeat(20)
            assert not any(task.done() for task in waiting)  # no loop sees the half-done transaction
            doomed.cancel()  # a waiter cancelled on its own loop gives up its turn
            release.set()
            return await asyncio.gather(*waiting)
        assert inside.wait(10)
        return asyncio.run(main())

    try:
        results = in_threads(2, lambda i: holder() if i == 0 else reader())
        assert results[1] == ["done"] * 3
        assert asyncio.run(_burst(store, "after-", 3)) == [0, 1, 2]  # the turn was passed on, not lost
        assert asyncio.run(coll.get("x")) == "done"
    finally:
        asyncio.run(store.close())


def test_cancelled_open_closes_the_store_it_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[kvlite.Store] = []
    started, release = threading.Event(), threading.Event()

    def slow_open(*args: Any, **kwargs: Any) -> kvlite.Store:
        started.set()
        release.wait(10)
        opened.append(kvlite.open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(kvlite.aio, "open_store", slow_open)

    async def main() -> None:
        task = asyncio.create_task(kvlite.aio.open(tmp_path / "s.db"))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()

    asyncio.run(main())
    for _ in range(100):
        if opened and opened[0].closed:
            break
        threading.Event().wait(0.05)
    assert opened and opened[0].closed  # the worker finished opening it, and it was closed
