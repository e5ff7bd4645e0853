"""The asyncio API: ``store = await kvlite.aio.open(...)``.

Same semantics as the synchronous API (it *is* the synchronous API, run on a
worker thread): every SQLite call of an :class:`AsyncStore` runs on one
dedicated thread, so the event loop never blocks on the database, and a
transaction's statements all run on one connection.

* Operations from different tasks run one at a time, in the order they were
  awaited.  Inside ``async with store.transaction():`` the block's own
  operations run in the transaction; other tasks wait until it ends (they can
  never see or join a half-done transaction).
* Cancelling a task never leaves a partial write: an operation that reached
  the worker thread completes (each is atomic), and a cancelled transaction
  block rolls back.
* Queries stream: ``async for key, value in coll.find(path)`` fetches
  ``batch`` matches at a time on the worker thread.
* Nothing is bound to one event loop: a store (and a ``KeyValue`` over it) can
  be used from several ``asyncio.run()`` calls in turn, or from threads that
  each run their own loop at the same time.  The turn-taking is a
  :class:`_TurnLock` (a threading lock and one future per waiter, on the
  waiter's own loop), not an ``asyncio.Lock``.

``kvlite.aio.KeyValue`` is the py-key-value protocol (``key_value.aio``'s
``AsyncKeyValue``) over an :class:`AsyncStore`; see :mod:`kvlite.keyvalue`
for the semantics.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import functools
import itertools
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, SupportsFloat, TypeVar

from . import serializers as _serializers
from .changes import Change
from .collection import MISSING, Collection
from .errors import StoreClosed
from .keyvalue import DEFAULT_COLLECTION
from .keyvalue import KeyValue as _SyncKeyValue
from .store import Store
from .store import open as open_store

__all__ = ["open", "AsyncStore", "AsyncCollection", "KeyValue"]

T = TypeVar("T")

_in_transaction: contextvars.ContextVar[AsyncStore | None] = contextvars.ContextVar(
    "kvlite_aio_transaction", default=None)


class _Waiter:
    __slots__ = ("loop", "future", "granted")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
        self.loop = loop
        self.future = future
        self.granted = False


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _TurnLock:
    """A FIFO lock for coroutines on *any* event loop, in any thread.

    ``asyncio.Lock`` binds itself to the first loop that waits on it (a second
    loop then gets ``RuntimeError``) and wakes waiters without thread safety
    (a waiter on another thread's loop may never wake).  Here the state is
    guarded by a ``threading.Lock``; each waiter waits on a future of its own
    loop, and ``release`` hands the lock straight to the oldest waiter and wakes
    it on that loop (``call_soon_threadsafe`` when it is another loop).  A
    waiter cancelled after being handed the lock passes it on, so the lock is
    never lost, and a waiter whose loop has closed is skipped.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locked = False
        self._waiters: collections.deque[_Waiter] = collections.deque()

    def locked(self) -> bool:
        return self._locked

    async def acquire(self) -> None:
        with self._mutex:
            if not self._locked:  # the lock is only ever free with nobody waiting
                self._locked = True
                return
            loop = asyncio.get_running_loop()
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await waiter.future
        except BaseException:  # cancelled while waiting (or just after being handed the lock)
            with self._mutex:
                granted = waiter.granted
                if not granted:
                    self._waiters.remove(waiter)
            if granted:
                self.release()
            raise

    def release(self) -> None:
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        while True:
            with self._mutex:
                if not self._waiters:
                    self._locked = False
                    return
                waiter = self._waiters.popleft()
                waiter.granted = True
            if waiter.loop is current:
                _wake(waiter.future)
                return
            try:
                waiter.loop.call_soon_threadsafe(_wake, waiter.future)
                return
            except RuntimeError:  # its loop is closed: nobody will take the turn, give it to the next
                continue

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.release()


class AsyncStore:
    """An open kvlite store for asyncio code.  Make one with :func:`kvlite.aio.open`."""

    def __init__(self, store: Store, executor: ThreadPoolExecutor) -> None:
        self.store = store
        self._executor = executor
        self._lock = _TurnLock()
        self._collections: dict[tuple[str, type | None], AsyncCollection] = {}

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the worker thread, one operation at a time across tasks."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs)
        if _in_transaction.get() is self:
            return await loop.run_in_executor(self._executor, call)
        async with self._lock:
            if self.store.closed:  # the worker thread is gone: say so in kvlite's terms
                raise StoreClosed("the store is closed")
            # Shielded: once handed to the thread, an operation finishes even if the
            # awaiting task is cancelled, so nothing is ever half-written.
            return await asyncio.shield(loop.run_in_executor(self._executor, call))

    # -- collections and transactions ------------------------------------------------------

    async def collection(self, name: str, *, serializer: str | _serializers.Serializer | None = None,
                         model: type | None = None, **changes: Any) -> AsyncCollection:
        """The collection ``name`` (created on first use); see :meth:`kvlite.Store.collection`
        (``changes``, ``changes_keep``, ``changes_max_age`` as there)."""
        coll = await self._call(self.store.collection, name, serializer=serializer, model=model, **changes)
        cached = self._collections.get((name, model))
        if cached is None or cached.sync is not coll:
            cached = self._collections[(name, model)] = AsyncCollection(self, coll)
        return cached

    async def collections(self) -> list[str]:
        return await self._call(self.store.collections)

    async def drop_collection(self, name: str) -> bool:
        return await self._call(self.store.drop_collection, name)

    async def purge_expired(self) -> int:
        return await self._call(self.store.purge_expired)

    async def stats(self) -> dict[str, Any]:
        return await self._call(self.store.stats)

    async def last_change_seq(self, collection: str | None = None) -> int:
        return await self._call(self.store.last_change_seq, collection)

    async def backup(self, path: str | os.PathLike[str], *, progress: Callable[[int, int], None] | None = None) -> None:
        """:meth:`kvlite.Store.backup`, awaited (``progress`` is called on the worker thread)."""
        await self._call(self.store.backup, path, progress=progress)

    async def changes(self, since: int = 0, *, collections: list[str] | None = None, wait: bool = False,
                      timeout: float | None = None, poll: float = 0.05) -> AsyncIterator[Change]:
        """``async for change in store.changes(...)``: :meth:`kvlite.Store.changes`.  Pages are
        read on the worker thread; with ``wait=True`` the task sleeps ``poll`` seconds between
        looks for new changes (the worker thread stays free for other tasks), until ``timeout``
        seconds pass without a change (``None``: never)."""
        await self._call(self.store.changes, since, collections=collections, timeout=timeout)  # checks arguments

        def page(after: int) -> list[Change]:
            return list(itertools.islice(self.store.changes(after, collections=collections), 500))

        idle_since = time.monotonic()
        while True:
            found = await self._call(page, since)
            for change in found:
                yield change
                since = change.seq
            if found:
                idle_since = time.monotonic()
                if len(found) == 500:
                    continue
            if not wait or (timeout is not None and time.monotonic() - idle_since >= timeout):
                return
            await asyncio.sleep(poll)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncStore]:
        """``async with store.transaction():`` — atomic across keys and collections.

        Nested blocks (in the same task) are savepoints, as in the sync API.
        Other tasks' operations wait until the outermost block ends.
        """
        if _in_transaction.get() is self:
            manager = self.store.transaction()
            await self._call(manager.__enter__)
            try:
                yield self
            except BaseException as exc:
                await asyncio.shield(self._call(manager.__exit__, type(exc), exc, exc.__traceback__))
                raise
            await self._call(manager.__exit__, None, None, None)
            return
        async with self._lock:
            if self.store.closed:
                raise StoreClosed("the store is closed")
            loop = asyncio.get_running_loop()

            def run(fn: Callable[..., Any], *args: Any) -> Any:
                return loop.run_in_executor(self._executor, functools.partial(fn, *args))

            manager = self.store.transaction()
            begun = run(manager.__enter__)
            try:
                await asyncio.shield(begun)
            except asyncio.CancelledError:
                # BEGIN may still run on the worker thread: queue the rollback right behind it.
                cancelled = asyncio.CancelledError()
                self._executor.submit(manager.__exit__, type(cancelled), cancelled, None)
                raise
            token = _in_transaction.set(self)
            try:
                yield self
            except BaseException as exc:
                _in_transaction.reset(token)
                await asyncio.shield(run(manager.__exit__, type(exc), exc, exc.__traceback__))
                raise
            _in_transaction.reset(token)
            await asyncio.shield(run(manager.__exit__, None, None, None))

    # -- life cycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the store and stop its worker thread (closing it again does nothing)."""
        async with self._lock:
            if not self.store.closed:
                await asyncio.get_running_loop().run_in_executor(self._executor, self.store.close)
        self._executor.shutdown(wait=False)

    @property
    def closed(self) -> bool:
        return self.store.closed

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<kvlite.aio.AsyncStore {self.store.path!r}>"


class AsyncCollection:
    """The async twin of :class:`kvlite.Collection`: the same methods, awaited."""

    def __init__(self, store: AsyncStore, sync: Collection) -> None:
        self.store = store
        self.sync = sync
        self.name = sync.name
        self.serializer = sync.serializer

    async def get(self, key: Any, default: Any = None) -> Any:
        return await self.store._call(self.sync.get, key, default)

    async def put(self, key: Any, value: Any, *, ttl: Any = None) -> None:
        await self.store._call(self.sync.put, key, value, ttl=ttl)

    async def delete(self, key: Any) -> bool:
        return await self.store._call(self.sync.delete, key)

    async def ttl(self, key: Any) -> float | None:
        return await self.store._call(self.sync.ttl, key)

    async def contains(self, key: Any) -> bool:
        return await self.store._call(self.sync.__contains__, key)

    async def get_many(self, keys: Sequence[Any], default: Any = None) -> list[Any]:
        return await self.store._call(self.sync.get_many, list(keys), default)

    async def put_many(self, entries: Any, *, ttl: Any = None) -> int:
        if not isinstance(entries, Mapping):
            entries = list(entries)  # consume iterators here, not on the worker thread
        return await self.store._call(self.sync.put_many, entries, ttl=ttl)

    async def delete_many(self, keys: Sequence[Any]) -> int:
        return await self.store._call(self.sync.delete_many, list(keys))

    async def ttl_many(self, keys: Sequence[Any]) -> list[float | None]:
        return await self.store._call(self.sync.ttl_many, list(keys))

    async def pop(self, key: Any, default: Any = MISSING) -> Any:
        return await self.store._call(self.sync.pop, key, default)

    async def popitem(self) -> tuple[Any, Any]:
        return await self.store._call(self.sync.popitem)

    async def setdefault(self, key: Any, default: Any = None, *, ttl: Any = None) -> Any:
        return await self.store._call(self.sync.setdefault, key, default, ttl=ttl)

    async def incr(self, key: Any, delta: Any = 1, *, path: str | None = None, default: Any = 0) -> int | float:
        """:meth:`kvlite.Collection.incr`, awaited."""
        return await self.store._call(self.sync.incr, key, delta, path=path, default=default)

    async def compare_and_set(self, key: Any, expected: Any, value: Any, *, ttl: Any = None) -> bool:
        """:meth:`kvlite.Collection.compare_and_set`, awaited (``expected`` may be ``kvlite.ABSENT``)."""
        return await self.store._call(self.sync.compare_and_set, key, expected, value, ttl=ttl)

    async def patch(self, key: Any, patch: Any, *, create: bool = False) -> Any:
        """:meth:`kvlite.Collection.patch`, awaited."""
        return await self.store._call(self.sync.patch, key, patch, create=create)

    async def patch_where(self, query: str, patch: Any) -> int:
        """:meth:`kvlite.Collection.patch_where`, awaited."""
        return await self.store._call(self.sync.patch_where, query, patch)

    async def delete_where(self, query: str) -> int:
        """:meth:`kvlite.Collection.delete_where`, awaited."""
        return await self.store._call(self.sync.delete_where, query)

    async def count_by(self, path: str, query: str | None = None) -> list[tuple[Any, int]]:
        """:meth:`kvlite.Collection.count_by`, awaited."""
        return await self.store._call(self.sync.count_by, path, query)

    async def count(self, path: str | None = None, *, engine: str = "jsonpath") -> int:
        """:meth:`kvlite.Collection.count`; ``engine`` is one of :data:`kvlite.query.ENGINES`
        (``"jsonpath"``, RFC 9535, by default) and is passed through as it is."""
        return await self.store._call(self.sync.count, path, engine=engine)

    async def purge_expired(self) -> int:
        return await self.store._call(self.sync.purge_expired)

    async def clear(self) -> None:
        await self.store._call(self.sync.clear)

    async def stats(self) -> dict[str, Any]:
        return await self.store._call(self.sync.stats)

    async def explain(self, path: str, *, engine: str = "jsonpath", **options: Any) -> dict[str, Any]:
        """:meth:`kvlite.Collection.explain`; ``engine`` is one of :data:`kvlite.query.ENGINES`
        (``"jsonpath"``, RFC 9535, by default)."""
        return await self.store._call(self.sync.explain, path, engine=engine, **options)

    async def create_index(self, path: str) -> str:
        return await self.store._call(self.sync.create_index, path)

    async def drop_index(self, path: str) -> bool:
        return await self.store._call(self.sync.drop_index, path)

    async def indexes(self) -> list[str]:
        return await self.store._call(self.sync.indexes)

    # -- streams ---------------------------------------------------------------------------------

    async def _stream(self, make: Callable[[], Iterator[T]], batch: int) -> AsyncIterator[T]:
        if batch < 1:
            raise ValueError("batch must be >= 1")
        iterator: Iterator[T] | None = None

        def next_batch() -> list[T]:
            nonlocal iterator
            if iterator is None:
                iterator = make()
            return list(itertools.islice(iterator, batch))

        try:
            while True:
                items = await self.store._call(next_batch)
                for item in items:
                    yield item
                if len(items) < batch:
                    return
        finally:
            if iterator is not None and hasattr(iterator, "close"):
                with contextlib.suppress(Exception):
                    await self.store._call(iterator.close)

    def find(self, path: str, *, engine: str = "jsonpath", batch: int = 256,
             **options: Any) -> AsyncIterator[tuple[Any, Any]]:
        """``async for key, value in coll.find(path)``: :meth:`kvlite.Collection.find`, in batches.

        ``engine`` is one of :data:`kvlite.query.ENGINES`: ``"jsonpath"`` (RFC 9535 JSONPath, the
        default), ``"jsonpath-ng"``, ``"objectpath"`` or ``"jmespath"``."""
        return self._stream(lambda: self.sync.find(path, engine=engine, **options), batch)

    def select(self, path: str, *, engine: str = "jsonpath", batch: int = 256,
               **options: Any) -> AsyncIterator[Any]:
        """``async for value in coll.select(path)``: :meth:`kvlite.Collection.select`, in batches
        (``engine`` as in :meth:`find`)."""
        return self._stream(lambda: self.sync.select(path, engine=engine, **options), batch)

    def keys(self, prefix: str | bytes | None = None, *, start: Any = None, stop: Any = None,
             reverse: bool = False, batch: int = 1000) -> AsyncIterator[Any]:
        """``async for key in coll.keys()``: :meth:`kvlite.Collection.keys` (a key range with
        ``prefix``/``start``/``stop``), in batches."""
        return self._stream(lambda: self.sync.keys(prefix, start=start, stop=stop, reverse=reverse), batch)

    def items(self, prefix: str | bytes | None = None, *, start: Any = None, stop: Any = None,
              reverse: bool = False, batch: int = 1000) -> AsyncIterator[tuple[Any, Any]]:
        """:meth:`kvlite.Collection.items`, in batches."""
        return self._stream(lambda: self.sync.items(prefix, start=start, stop=stop, reverse=reverse), batch)

    def values(self, prefix: str | bytes | None = None, *, start: Any = None, stop: Any = None,
               reverse: bool = False, batch: int = 1000) -> AsyncIterator[Any]:
        """:meth:`kvlite.Collection.values`, in batches."""
        return self._stream(lambda: self.sync.values(prefix, start=start, stop=stop, reverse=reverse), batch)

    def __repr__(self) -> str:
        return f"<kvlite.aio.AsyncCollection {self.name!r}>"


async def open(  # noqa: A001 - mirrors kvlite.open
    path: str | os.PathLike[str] = ":memory:",
    *,
    serializer: str | _serializers.Serializer = "json",
    durability: str = "normal",
    timeout: float = 30.0,
    clock: Callable[[], float] = time.time,
    readonly: bool = False,
    layout: str = "single",
) -> AsyncStore:
    """Open (or create) a store for asyncio code; the arguments are :func:`kvlite.open`'s
    (a file, ``":memory:"``, or a URL such as ``"memory://"`` or ``"redis://..."``)."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kvlite-aio")
    opening = executor.submit(open_store, path, serializer=serializer, durability=durability, timeout=timeout,
                              clock=clock, readonly=readonly, layout=layout)
    try:
        store = await asyncio.shield(asyncio.wrap_future(opening))
    except BaseException:
        # Cancelled while the worker opens the file: close what it opens, nobody will.
        opening.add_done_callback(_close_opened)
        executor.shutdown(wait=False)
        raise
    return AsyncStore(store, executor)


def _close_opened(opening: concurrent.futures.Future[Store]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


class KeyValue:
    """The py-key-value protocol (``AsyncKeyValue``) over an :class:`AsyncStore`.

    Same semantics as :class:`kvlite.KeyValue` (see :mod:`kvlite.keyvalue`);
    each call runs the synchronous implementation on the store's worker thread.
    """

    def __init__(self, store: AsyncStore, *, default_collection: str = DEFAULT_COLLECTION) -> None:
        self.store = store
        self.default_collection = default_collection
        self._sync = _SyncKeyValue(store.store, default_collection=default_collection)

    async def get(self, key: str, *, collection: str | None = None) -> dict[str, Any] | None:
        return await self.store._call(self._sync.get, key, collection=collection)

    async def ttl(self, key: str, *, collection: str | None = None) -> tuple[dict[str, Any] | None, float | None]:
        return await self.store._call(self._sync.ttl, key, collection=collection)

    async def put(self, key: str, value: Mapping[str, Any], *, collection: str | None = None,
                  ttl: SupportsFloat | None = None) -> None:
        await self.store._call(self._sync.put, key, value, collection=collection, ttl=ttl)

    async def delete(self, key: str, *, collection: str | None = None) -> bool:
        return await self.store._call(self._sync.delete, key, collection=collection)

    async def get_many(self, keys: Sequence[str], *, collection: str | None = None) -> list[dict[str, Any] | None]:
        return await self.store._call(self._sync.get_many, keys, collection=collection)

    async def ttl_many(self, keys: Sequence[str], *,
                       collection: str | None = None) -> list[tuple[dict[str, Any] | None, float | None]]:
        return await self.store._call(self._sync.ttl_many, keys, collection=collection)

    async def put_many(self, keys: Sequence[str], values: Sequence[Mapping[str, Any]], *,
                       collection: str | None = None, ttl: SupportsFloat | None = None) -> None:
        await self.store._call(self._sync.put_many, keys, values, collection=collection, ttl=ttl)

    async def delete_many(self, keys: Sequence[str], *, collection: str | None = None) -> int:
        return await self.store._call(self._sync.delete_many, keys, collection=collection)

    async def keys(self, collection: str | None = None, *, limit: int | None = None) -> list[str]:
        return await self.store._call(self._sync.keys, collection, limit=limit)

    async def collections(self, *, limit: int | None = None) -> list[str]:
        return await self.store._call(self._sync.collections, limit=limit)

    async def destroy(self) -> bool:
        return await self.store._call(self._sync.destroy)

    async def destroy_collection(self, collection: str) -> bool:
        return await self.store._call(self._sync.destroy_collection, collection)

    async def cull(self) -> None:
        await self.store._call(self._sync.cull)

