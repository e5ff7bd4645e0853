"""A drop-in py-key-value store backed by a kvlite file (``pip install py-key-value-aio``).

:class:`KvliteStore` satisfies ``key_value.aio.protocols.AsyncKeyValue`` (and
the enumerate / destroy / cull segments) and raises py-key-value's own
exception types, so code written for py-key-value — including its wrappers
and adapters — works unchanged::

    from key_value.aio.wrappers.ttl_clamp import TTLClampWrapper
    from kvlite.integrations.pykv import KvliteStore

    store = TTLClampWrapper(KvliteStore("cache.db"), min_ttl=1, max_ttl=3600)

Like py-key-value's stores it is made synchronously, opens its file on first
use (from whichever event loop or thread comes first: it is bound to none) and
is closed with ``await store.close()`` or ``async with``; a call after that
opens the file again.  It is deliberately not a ``BaseStore`` subclass (it
replaces that machinery: see ``docs/protocol.md``) and, like py-key-value's
persistent stores, it is unbounded.  The file stays an ordinary kvlite store:
``kvlite.open("cache.db")`` can query it.

Exception mapping: invalid TTL -> ``InvalidTTLError``; a value that cannot be
encoded (from ``put`` / ``put_many``, the only methods that encode) ->
``SerializationError``; a stored value that cannot be decoded (from any other
method) -> ``DeserializationError``; a write to a read-only store ->
``ReadOnlyError``; a key or collection name kvlite cannot store (see
``docs/protocol.md``) -> ``InvalidKeyError``; a store that cannot be opened
(missing folder, not a kvlite file, newer schema) -> ``StoreSetupError``; a
locked or damaged store (or its ``kvlite_store`` closed behind its back) ->
``StoreConnectionError``; any other kvlite error -> ``KeyValueStoreError``.
Non-``str`` keys and collections and non-mapping values raise ``TypeError``,
as py-key-value's stores do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Callable, SupportsFloat, TypeVar

try:
    from key_value.aio import errors as kv_errors
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("kvlite.integrations.pykv needs py-key-value-aio: pip install py-key-value-aio") from exc

from .. import aio
from .. import errors as kv
from ..keyvalue import DEFAULT_COLLECTION

__all__ = ["KvliteStore"]

T = TypeVar("T")


#: The methods that encode values; a kvlite ``SerializationError`` from any other one comes from
#: decoding what is stored (that is the only other thing that raises it).
_ENCODING = frozenset({"put", "put_many"})


def _shown(ttl: object) -> str:
    """``str(ttl)`` for the error, which cannot fail (``str(10**5000)`` raises ``ValueError``)."""
    try:
        return str(ttl)
    except Exception:  # noqa: BLE001 - any str() failure
        return f"<{type(ttl).__name__}>"


def _translated(fn: Callable[..., Any]) -> Callable[..., Any]:
    encodes = fn.__name__ in _ENCODING

    @functools.wraps(fn)
    async def wrapper(self: KvliteStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(self, *args, **kwargs)
        except kv.InvalidTTL as exc:
            raise kv_errors.InvalidTTLError(ttl=_shown(kwargs.get("ttl")), extra_info={"reason": str(exc)}) from exc
        except kv.ValidationError as exc:
            raise kv_errors.SerializationError(str(exc)) from exc
        except kv.SerializationError as exc:  # by where it came from, never by its message
            raise (kv_errors.SerializationError if encodes else kv_errors.DeserializationError)(str(exc)) from exc
        except kv.ReadOnlyError as exc:
            raise kv_errors.ReadOnlyError(operation=fn.__name__, collection=kwargs.get("collection")) from exc
        except (kv.InvalidCollectionName, kv.InvalidKey) as exc:
            raise kv_errors.InvalidKeyError(str(exc)) from exc
        except (kv.StoreClosed, kv.StoreLocked, kv.CorruptStore, kv.StoreFull) as exc:
            raise kv_errors.StoreConnectionError(str(exc)) from exc
        except kv.KvliteError as exc:  # anything else: still one of py-key-value's types
            raise kv_errors.KeyValueStoreError(str(exc)) from exc
    return wrapper


class _OpenInterrupted(Exception):
    """The task opening the file was cancelled: the callers waiting for it try again."""


class KvliteStore:
    """py-key-value's ``AsyncKeyValue`` on a kvlite file (or ``":memory:"``).

    Nothing in it is bound to an event loop: like py-key-value's stores it can
    be made once and used from several loops in turn or at once (threads each
    running a loop).  The first use opens the file, once, whichever loop makes
    it; the others wait for that (a ``threading.Lock`` and a
    ``concurrent.futures.Future``, as py-key-value's ``BaseStore.setup``).
    """

    def __init__(self, path: str = ":memory:", *, default_collection: str | None = None,
                 **open_options: Any) -> None:
        self.path = path
        self.default_collection = default_collection or DEFAULT_COLLECTION
        self._options = open_options
        self._kv: aio.KeyValue | None = None
        self._state = threading.Lock()
        self._opening: concurrent.futures.Future[aio.KeyValue] | None = None

    async def _ready(self) -> aio.KeyValue:
        while True:
            ready = self._kv
            if ready is not None:
                return ready
            with self._state:
                if self._kv is not None:
                    return self._kv
                opening = self._opening
                if opening is None:
                    opening = self._opening = concurrent.futures.Future()
                    break  # this call opens the file
            try:  # another call (on this loop or another one) is opening it: wait for that
                return await asyncio.shield(asyncio.wrap_future(opening))
            except _OpenInterrupted:
                continue  # its task was cancelled: try again (perhaps opening it here)
        try:
            store = await aio.open(self.path, **self._options)
        except kv.KvliteError as exc:  # as py-key-value's BaseStore.setup() reports it
            error = kv_errors.StoreSetupError(f"cannot open the kvlite store {self.path!r}: {exc}",
                                              extra_info={"store": type(self).__name__})
            self._opened(opening, error=error)
            raise error from exc
        except BaseException as exc:
            self._opened(opening, error=_OpenInterrupted() if isinstance(exc, asyncio.CancelledError) else exc)
            raise
        opened = aio.KeyValue(store, default_collection=self.default_collection)
        self._opened(opening, opened)
        return opened

    def _opened(self, opening: concurrent.futures.Future[aio.KeyValue], opened: aio.KeyValue | None = None, *,
                error: BaseException | None = None) -> None:
        """Publish the end of an open to the callers waiting for it; a failed open can be retried."""
        with self._state:
            self._opening = None
            if opened is not None:
                self._kv = opened
        if error is not None:
            opening.set_exception(error)
        else:
            opening.set_result(opened)

    @property
    def kvlite_store(self) -> aio.AsyncStore | None:
        """The underlying :class:`kvlite.aio.AsyncStore` (``None`` until first use)."""
        return None if self._kv is None else self._kv.store

    @_translated
    async def get(self, key: str, *, collection: str | None = None) -> dict[str, Any] | None:
        return await (await self._ready()).get(key, collection=collection)

    @_translated
    async def ttl(self, key: str, *, collection: str | None = None) -> tuple[dict[str, Any] | None, float | None]:
        return await (await self._ready()).ttl(key, collection=collection)

    @_translated
    async def put(self, key: str, value: Mapping[str, Any], *, collection: str | None = None,
                  ttl: SupportsFloat | None = None) -> None:
        await (await self._ready()).put(key, value, collection=collection, ttl=ttl)

    @_translated
    async def delete(self, key: str, *, collection: str | None = None) -> bool:
        return await (await self._ready()).delete(key, collection=collection)

    @_translated
    async def get_many(self, keys: Sequence[str], *, collection: str | None = None) -> list[dict[str, Any] | None]:
        return await (await self._ready()).get_many(keys, collection=collection)

    @_translated
    async def ttl_many(self, keys: Sequence[str], *,
                       collection: str | None = None) -> list[tuple[dict[str, Any] | None, float | None]]:
        return await (await self._ready()).ttl_many(keys, collection=collection)

    @_translated
    async def put_many(self, keys: Sequence[str], values: Sequence[Mapping[str, Any]], *,
                       collection: str | None = None, ttl: SupportsFloat | None = None) -> None:
        await (await self._ready()).put_many(keys, values, collection=collection, ttl=ttl)

    @_translated
    async def delete_many(self, keys: Sequence[str], *, collection: str | None = None) -> int:
        return await (await self._ready()).delete_many(keys, collection=collection)

    @_translated
    async def keys(self, collection: str | None = None, *, limit: int | None = None) -> list[str]:
        return await (await self._ready()).keys(collection, limit=limit)

    @_translated
    async def collections(self, *, limit: int | None = None) -> list[str]:
        return await (await self._ready()).collections(limit=limit)

    @_translated
    async def destroy(self) -> bool:
        return await (await self._ready()).destroy()

    @_translated
    async def destroy_collection(self, collection: str) -> bool:
        return await (await self._ready()).destroy_collection(collection)

    @_translated
    async def cull(self) -> None:
        await (await self._ready()).cull()

    async def close(self) -> None:
        """Close the file (an open in progress is waited for).  The next call opens it again."""
        with self._state:
            opening = self._opening
        if opening is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.wrap_future(opening))
        with self._state:
            opened, self._kv = self._kv, None
        if opened is not None:
            await opened.store.close()

    async def __aenter__(self) -> KvliteStore:
        await self._ready()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()
