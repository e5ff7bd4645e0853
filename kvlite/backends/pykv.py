"""Any py-key-value store as a kvlite engine: ``kvlite.open(store)``.

``store`` is a py-key-value ``AsyncKeyValue`` store object (``pip install
'kvlite[pykv]'``, i.e. py-key-value-aio): ``MemoryStore``, ``DiskStore``,
``RedisStore``, ``PostgreSQLStore``, ... .  kvlite's sync API drives it on a
private event loop running in a daemon thread owned by the engine (one
``asyncio.run_coroutine_threadsafe(...).result()`` per kvlite call; a kvlite
call that needs several store calls makes them in one coroutine).  See
``docs/backends/pykv.md`` for the user's view; the exact rules are here.

Collections
    A kvlite collection ``"users"`` is the py-key-value collection ``"users"``: a plain
    py-key-value client of the same store sees the same entries.  kvlite's registry
    (the names, the serializer recorded for each, and a *handle* that is new each time a
    collection is created) is one document, key ``"collections"`` in the reserved
    py-key-value collection :data:`REGISTRY` (``"kvlite"``, which kvlite refuses as a
    collection name).  The protocol has no transactions: two clients creating or dropping
    collections at the same moment may lose one another's registry change (the entries are
    not lost; only the record of the collection).  A drop by another client is not seen by
    collection objects this client already holds (they keep reading and writing the
    py-key-value collection of that name); a drop through this store makes every
    collection object made for the old one raise :class:`~kvlite.errors.CollectionDropped`.

Values
    py-key-value stores ``dict`` documents.  For a collection whose serializer is a JSON one
    (``json``, ``jsonb``, or any serializer with ``json = True``) a value that is a JSON
    object is stored as that dict; any other value (a list, a string, a number, ``null``) is
    wrapped in the one-member dict ``{"__kvlite_value__": value}``, and so is an object that
    itself has exactly one member whose name is one of the reserved names below, so nothing
    is ambiguous.  A collection with a non-JSON serializer (``pickle``, ``msgpack``, a custom
    one) stores ``{"__kvlite_bytes__": "<base64>"}`` for bytes output and
    ``{"__kvlite_text__": "<text>"}`` for text output.  Reading unwraps transparently: a
    stored dict with exactly one member named ``__kvlite_value__``, ``__kvlite_text__`` or
    ``__kvlite_bytes__`` is a wrapper, every other dict is the document itself (also one a
    plain py-key-value client wrote).  Members of objects may come back in another order:
    py-key-value's stores serialise documents with sorted members (PostgreSQL keeps JSONB's
    order).  On the stores of :data:`TEXT_DOCUMENT_STORES` (``DuckDBStore``, which changes
    documents) every value is stored as the serializer's output in a text/bytes wrapper.

Keys
    py-key-value keys are ``str``; kvlite keys are typed.  A ``str`` key is stored as itself,
    unless it starts with ``~``: then as ``"~s:" + key``.  Every other key is ``"~"`` + its
    :func:`kvlite.keys.tagged_text` (``b"\\x01"`` -> ``"~b:01"``, ``5`` -> ``"~i:5"``,
    ``2.5`` -> ``"~f:2.5"``, ``True`` -> ``"~B:1"``).  Keys that Python finds equal
    (``1 == 1.0 == True``) are one key: reads look up every form of the number (at most
    four, in one ``get_many``), and a write goes to the form already stored, so the key
    first stored keeps its type, as in a ``dict`` (checked by one read before the write;
    two clients writing ``1`` and ``1.0`` at the same moment may both land, and reads then
    take the first form in the order int, float, bool).  Enumerated py-key-value keys that
    start with ``~`` but are not a form kvlite writes are not visible through kvlite.
    A key a store cannot hold raises :class:`~kvlite.errors.InvalidKey` before anything is
    written: on ``MemcachedStore`` without a key sanitization strategy, ``collection::key``
    must be at most 250 UTF-8 bytes with no whitespace or control characters; on
    ``FileTreeStore`` without one, a key is a file name (no ``/``, ``\\``, NUL, ``.`` or
    ``..``; at most 250 UTF-8 bytes); on ``PostgreSQLStore`` a key or collection name holds no
    NUL character, nor does a document (that value raises ``SerializationError``).

Expiry
    A TTL is py-key-value's TTL (seconds): the store decides expiry, on the real clock
    (Redis and Memcached round a TTL down to whole seconds, at least 1).  ``ttl()`` is the
    store's remaining time; :meth:`PyKVTable.expiry` is ``now`` + that.  ``clock=`` other
    than ``time.time`` raises :class:`~kvlite.errors.NotSupported` at open (the store would
    ignore it).  A TTL longer than :data:`MAX_TTL` (100 years) raises
    :class:`~kvlite.errors.InvalidTTL`.  Expired entries are invisible at once; removing
    them is the store's job, so ``purge_expired()`` calls the store's ``cull()`` where it has
    one and reports 0.

Enumeration
    Iteration (``keys``/``items``/``values``, ``len``, ``popitem``, queries, ``clear``, the
    dict view's whole-collection methods, ``stats()``) uses the store's ``keys()``, where the
    store has one (in py-key-value 0.5.0: ``MemoryStore``, ``RedisStore``, ``SimpleStore``,
    ...; not ``DiskStore``, ``MultiDiskStore``, ``RocksDBStore``, ``DuckDBStore``,
    ``FileTreeStore``, ``MemcachedStore``, ``PostgreSQLStore``): elsewhere they raise
    :class:`~kvlite.errors.NotSupported` naming the store class, while
    get/put/delete/ttl and their ``_many`` forms work.  Values are read in batches of
    :data:`PAGE` through ``get_many``.  ``keys()`` has no cursor and a cap (``PAGE_LIMIT``
    of the store's module, 10,000 for the memory and Redis stores; :data:`DEFAULT_LIST_CAP`
    when the module names none): when the store returns that many keys, the collection may
    hold more than it can list, and iteration raises ``NotSupported`` instead of silently
    missing keys.  ``clear()`` and ``drop`` delete listed keys page after page until none
    is left, so they work at any size.  Order: the store's enumeration order (the memory
    store's is insertion order, an update keeping the place; Redis's ``SCAN`` order is
    arbitrary); ``reverse=True`` reverses it, ``popitem()`` removes the last live key of it.

Capabilities
    ``transaction()``, ``incr``, ``compare_and_set``, ``patch`` and ``patch_where`` raise
    :class:`~kvlite.errors.NotSupported` (the protocol cannot read and write one entry
    atomically).  ``pop``, ``popitem``, ``setdefault`` and ``delete_where`` read then write:
    atomic among the threads of one kvlite store (an engine lock), not against other
    clients.  ``put_many``/``delete_many`` check every key and value first (bad input writes
    nothing) and then make one store call, which is atomic only where the store makes it so.
    No change log, backup, indexes, key ranges, ``info()`` or ``vacuum()``
    (``NotSupported``); queries are evaluated in Python over ``items()`` (no push-down).

Errors
    Every exception of the store reaches the caller as a :mod:`kvlite.errors` exception:
    py-key-value's ``InvalidKeyError`` -> ``InvalidKey``, ``InvalidTTLError`` ->
    ``InvalidTTL``, ``SerializationError``/``DeserializationError`` -> ``SerializationError``,
    ``ReadOnlyError`` -> ``ReadOnlyError``, ``EntryTooLargeError``/``ValueTooLargeError`` ->
    ``StoreFull``, ``PathSecurityError`` -> ``InvalidKey``, a memcached client's key
    validation error -> ``InvalidKey``, anything else (connection errors, setup errors, a
    store's own bugs) -> ``KvliteError`` with the original chained as ``__cause__``.

Lifecycle
    ``close()`` stops the engine's loop and thread.  It closes the store object too when that
    store is not one of :data:`INLINE_STORES` (its connections were made on the engine's loop
    and cannot outlive it); an in-process or file store run inline stays open for the caller.
    ``PyKVEngine(store, close_store=True|False)`` chooses explicitly.  A store whose client is
    bound to an event loop (Redis, PostgreSQL, Memcached) must be used from one loop only: hand
    kvlite one not used on another loop, and reach it through :meth:`PyKVEngine.call` while
    kvlite has it.  ``durability="full"`` raises ``NotSupported`` (the store decides
    durability); ``timeout`` bounds each call that runs on the loop (``0``: no bound): a call
    that takes longer raises ``KvliteError`` (it may still complete in the store).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import functools
import inspect
import math
import re
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from asyncio.events import _get_running_loop, _set_running_loop
from typing import Any, TypeVar

import orjson

from .. import keys as _keys
from .. import serializers as _serializers
from ..errors import (
    InvalidCollectionName,
    InvalidKey,
    InvalidTTL,
    KvliteError,
    NotSupported,
    ReadOnlyError,
    SerializationError,
    StoreClosed,
    StoreFull,
)
from .base import KEEP, MISSING, Engine, Table

try:  # an optional extra: the module imports without it (open_engine is only reached with a store)
    from key_value.aio import errors as _kv_errors
except ImportError:  # pragma: no cover - exercised only without the extra
    _kv_errors = None  # type: ignore[assignment]

__all__ = ["PyKVEngine", "PyKVTable", "REGISTRY", "VALUE", "TEXT", "BYTES", "PAGE", "MAX_TTL",
           "DEFAULT_LIST_CAP", "INLINE_STORES", "key_text", "key_of_text"]

T = TypeVar("T")

#: The reserved py-key-value collection holding kvlite's registry (refused as a collection name).
REGISTRY = "kvlite"
_REGISTRY_KEY = "collections"
#: The member of the wrapper of a JSON value that is not a plain document.
VALUE = "__kvlite_value__"
#: The member of the wrapper of a non-JSON serializer's text output.
TEXT = "__kvlite_text__"
#: The member of the wrapper of a non-JSON serializer's bytes output (base64).
BYTES = "__kvlite_bytes__"
_RESERVED = frozenset((VALUE, TEXT, BYTES))
#: Keys read per ``get_many`` when iterating.
PAGE = 500
#: The longest TTL accepted (100 years, in seconds): py-key-value keeps expiry as a ``datetime``.
MAX_TTL = 100 * 365.25 * 86400.0
#: The listing cap assumed for a store whose module names no ``PAGE_LIMIT``.
DEFAULT_LIST_CAP = 10_000

#: The py-key-value stores that change documents: DuckDBStore (0.5.0) binds a dict as a DuckDB STRUCT
#: before storing it as JSON, so a list of mixed types comes back as strings and some documents are
#: refused.  kvlite stores the serializer's output there, wrapped (``{TEXT: "<json>"}``).
TEXT_DOCUMENT_STORES = frozenset({"key_value.aio.stores.duckdb.store.DuckDBStore"})

#: The py-key-value stores whose coroutines do their work synchronously (in-process data, or a
#: library without asyncio: cachetools, diskcache, RocksDB, DuckDB): kvlite runs their calls in
#: the calling thread instead of handing each one to the engine's loop thread (see
#: :meth:`PyKVEngine.call`).  Exact classes: a subclass or a wrapper runs on the loop.
INLINE_STORES = frozenset({
    "key_value.aio.stores.memory.store.MemoryStore",
    "key_value.aio.stores.simple.store.SimpleStore",
    "key_value.aio.stores.null.store.NullStore",
    "key_value.aio.stores.disk.store.DiskStore",
    "key_value.aio.stores.disk.multi_store.MultiDiskStore",
    "key_value.aio.stores.rocksdb.store.RocksDBStore",
    "key_value.aio.stores.duckdb.store.DuckDBStore",
})

_MEMCACHED_KEY = re.compile("^[^\\s\x00-\x1f\x7f-\x9f]{1,250}$")


# -- keys ------------------------------------------------------------------------------------------


def key_text(key: Any) -> str:
    """The py-key-value key of a normalised kvlite key: a ``str`` as itself (``"~s:" + key``
    when it starts with ``~``), any other key ``"~"`` + :func:`kvlite.keys.tagged_text`."""
    if type(key) is str:
        return "~s:" + key if key[:1] == "~" else key
    return "~" + _keys.tagged_text(key)


def key_of_text(text: str) -> Any:
    """The kvlite key whose :func:`key_text` is ``text``, else ``MISSING`` (a key kvlite never
    writes, such as ``"~x"`` written by another client)."""
    if text[:1] != "~":
        return text
    try:
        key = _keys.from_tagged_text(text[1:])
    except (ValueError, OverflowError):
        return MISSING
    if isinstance(key, float) and math.isnan(key):
        return MISSING
    return key if key_text(key) == text else MISSING


def _forms(key: Any) -> list[str]:
    """Every py-key-value key of the kvlite keys equal to ``key`` (``1``, ``1.0``, ``True``), the
    key's own form first; one form for ``str``, ``bytes`` and non-integral floats."""
    own = key_text(key)
    if type(key) is str or type(key) is bytes or (type(key) is float and not key.is_integer()):
        return [own]
    number = int(key)
    forms = [own]
    candidates = [f"~i:{number}"]
    try:
        as_float = float(number)
    except OverflowError:
        as_float = math.inf
    if as_float == number:
        candidates.append(f"~f:{as_float!r}")
    if number == 0:
        candidates.append("~f:-0.0")
    if number in (0, 1):
        candidates.append(f"~B:{number}")
    forms.extend(form for form in candidates if form != own)
    return forms


def _key_rule(store: Any) -> Callable[[str, str], str | None] | None:
    """A check of ``(collection, key text)`` for a store with limits of its own (the reason it
    cannot hold them, else ``None``), or ``None`` when the store takes any text."""
    name = type(store).__name__
    strategy = getattr(store, "_key_sanitization_strategy", None)
    plain = strategy is None or type(strategy).__name__ == "PassthroughStrategy"
    if name == "MemcachedStore":
        def memcached(collection: str, text: str) -> str | None:
            combined = f"{collection}::{text}"
            if not plain:
                try:
                    strategy.validate(value=combined)  # type: ignore[union-attr]
                    combined = strategy.sanitize(value=combined)  # type: ignore[union-attr]
                except Exception as exc:  # noqa: BLE001 - the strategy's refusal, reported as InvalidKey
                    return str(exc)
            if len(combined.encode("utf-8")) > 250 or not _MEMCACHED_KEY.match(combined) or combined.endswith("\n"):
                return ("memcached keys ('collection::key') are 1 to 250 UTF-8 bytes without whitespace or "
                        "control characters")
            return None
        return memcached
    if name == "PostgreSQLStore":
        def postgres(collection: str, text: str) -> str | None:
            if "\x00" in collection or "\x00" in text:
                return "PostgreSQL text cannot hold the NUL character"
            return None
        return postgres
    if name == "FileTreeStore" and plain:
        def filetree(collection: str, text: str) -> str | None:
            if text in ("", ".", "..") or any(c in text for c in "/\\\x00") or len(text.encode("utf-8")) > 250:
                return ("a FileTreeStore without key sanitization keeps each key as a file name: no '/', '\\\\' "
                        "or NUL, not '.' or '..', at most 250 UTF-8 bytes")
            return None
        return filetree
    return None


# -- errors ----------------------------------------------------------------------------------------


def _translated(exc: BaseException, where: str) -> BaseException:
    """A :mod:`kvlite.errors` exception for an exception the store raised (a kvlite error, or a
    ``BaseException`` that is not an ``Exception``, as it is)."""
    if isinstance(exc, KvliteError) or not isinstance(exc, Exception):
        return exc
    text = f"{where}: {exc}"
    if _kv_errors is not None:
        if isinstance(exc, (_kv_errors.InvalidKeyError, _kv_errors.PathSecurityError)):
            return InvalidKey(text)
        if isinstance(exc, _kv_errors.InvalidTTLError):
            return InvalidTTL(text)
        if isinstance(exc, (_kv_errors.SerializationError, _kv_errors.DeserializationError)):
            return SerializationError(text)
        if isinstance(exc, _kv_errors.ReadOnlyError):
            return ReadOnlyError(text)
        if isinstance(exc, (_kv_errors.EntryTooLargeError, _kv_errors.ValueTooLargeError)):
            return StoreFull(f"{text} (nothing was written)")
    if type(exc).__name__ == "ValidationException" and type(exc).__module__.startswith("aiomcache"):
        return InvalidKey(text)
    if isinstance(exc, (TimeoutError, concurrent.futures.TimeoutError)):
        return KvliteError(f"{where} did not answer in time")
    return KvliteError(f"{where}: {type(exc).__name__}: {exc}")


def _has_nul(value: Any) -> bool:
    """Whether a JSON value holds U+0000 in a string or a member name."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            if "\x00" in item:
                return True
        elif type(item) is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


def _has(store: Any, method: str) -> bool:
    return inspect.iscoroutinefunction(getattr(store, method, None))


def _list_cap(store: Any) -> int:
    """How many keys the store's ``keys()`` gives at most (its module's ``PAGE_LIMIT``)."""
    module = sys.modules.get(type(store).__module__)
    cap = getattr(module, "PAGE_LIMIT", None)
    return cap if isinstance(cap, int) and cap > 0 else DEFAULT_LIST_CAP


# -- the engine ------------------------------------------------------------------------------------


class PyKVEngine(Engine):
    """kvlite over a py-key-value ``AsyncKeyValue`` store object (see the module docstring).

    :param store: the py-key-value store.
    :param clock: must be ``time.time`` (the store decides expiry on the real clock).
    :param durability: ``"normal"`` (``"full"``: :class:`~kvlite.errors.NotSupported`).
    :param timeout: seconds one call to the store may take (``0``: no bound).
    :param close_store: close the store (``await store.close()``) when the engine closes;
        ``None`` (the default): exactly when the store is not one of :data:`INLINE_STORES`
        (a store talking to a server made its connections on the engine's loop, which
        closing ends; an in-process or file store stays open for the caller).
    :raises NotSupported: another clock, ``durability="full"``.
    """

    supports_transactions = False
    supports_indexes = False

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time, readonly: bool = False,
                 durability: str = "normal", timeout: float = 30.0, close_store: bool | None = None) -> None:
        name = type(store).__name__
        super().__init__(f"pykv:{name}", clock=clock, readonly=readonly, durability=durability, timeout=timeout)
        if clock is not time.time:
            raise NotSupported(f"a py-key-value store ({name}) decides expiry itself, on the real clock: "
                               "clock= cannot be given (leave it at time.time)")
        if durability == "full":
            raise NotSupported(f"durability is {name}'s own: durability='full' cannot be promised by kvlite; "
                               "use durability='normal'")
        self.store = store
        self.store_name = name
        self.enumerates = _has(store, "keys")
        self.destroys_collections = _has(store, "destroy_collection")
        self.list_cap = _list_cap(store)
        self.key_rule = _key_rule(store)
        #: Serialises the read-then-write calls (pop, setdefault, numeric keys, the registry).
        self.lock = threading.RLock()
        self._tables: weakref.WeakSet[PyKVTable] = weakref.WeakSet()
        #: Whether calls run in the calling thread first (see :meth:`call`).
        qualified = f"{type(store).__module__}.{name}"
        self.inline = qualified in INLINE_STORES
        #: Whether every value is stored as the serializer's output in a wrapper (see TEXT_DOCUMENT_STORES).
        self.text_documents = qualified in TEXT_DOCUMENT_STORES
        #: Whether documents cannot hold U+0000 (PostgreSQL's JSONB): such a value is refused.
        self.nul_free = name == "PostgreSQLStore"
        #: Whether close() closes the store object (default: when it is not inline: its
        #: connections were made on the engine's loop, which close() ends).
        self.close_store = (not self.inline) if close_store is None else close_store
        self._inline_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"kvlite-pykv-{name}", daemon=True)
        self._thread.start()

    # -- running coroutines on the engine's loop ------------------------------------------------

    def call(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` (a coroutine of the store, or any) for the engine and return its
        result: how to use the store object directly while kvlite holds it.  Exceptions come
        back as they are (not translated).

        On a store of :data:`INLINE_STORES` the coroutine is first run in the calling thread,
        under the engine's lock, with the engine's loop as the running loop: such a store does
        its work synchronously, so the call normally ends without ever suspending; if it does
        suspend, the rest of it runs as a task on the engine's loop (waited for).  On any other
        store the coroutine runs on the engine's loop (``run_coroutine_threadsafe``)."""
        if self.closed:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise StoreClosed("the store is closed")
        if threading.current_thread() is self._thread:
            raise KvliteError("a kvlite call cannot be made from inside the py-key-value engine's own loop")
        coroutine = awaitable if inspect.iscoroutine(awaitable) else _awaited(awaitable)
        if not self.inline:
            return self._submit(coroutine)
        with self._inline_lock:
            previous = _get_running_loop()
            _set_running_loop(self._loop)
            try:
                yielded = coroutine.send(None)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            finally:
                _set_running_loop(previous)
            return self._submit(_finish(coroutine, yielded))

    def _submit(self, coroutine: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self.timeout or None)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def run(self, awaitable: Awaitable[T]) -> T:
        """:meth:`call`, with the store's exceptions translated to :mod:`kvlite.errors`."""
        try:
            return self.call(awaitable)
        except KvliteError:
            raise
        except Exception as exc:
            raise _translated(exc, self.store_name) from exc

    # -- the registry -----------------------------------------------------------------------------

    def _registry(self) -> list[dict[str, Any]]:
        self.check_open()
        document = self.run(self.store.get(_REGISTRY_KEY, collection=REGISTRY))
        entries = [] if document is None else document.get("collections", [])
        return [entry for entry in entries if isinstance(entry, dict)]

    def _refuse_reserved(self, name: str) -> None:
        if name == REGISTRY:
            raise InvalidCollectionName(f"{REGISTRY!r} is the py-key-value collection kvlite keeps its registry in; "
                                        "it cannot be a kvlite collection")

    def lookup(self, name: str) -> tuple[Any, str] | None:
        self._refuse_reserved(name)
        for entry in self._registry():
            if entry.get("name") == name:
                return entry.get("handle"), str(entry.get("serializer"))
        return None

    def create(self, name: str, serializer: str) -> tuple[Any, str]:
        self._refuse_reserved(name)
        self.check_writable()
        if self.key_rule is not None:
            reason = self.key_rule(name, "k")
            if reason is not None:
                raise InvalidCollectionName(f"{self.store_name} cannot hold the collection {name!r}: {reason}")
        with self.lock:
            entries = self._registry()
            for entry in entries:
                if entry.get("name") == name:
                    return entry.get("handle"), str(entry.get("serializer"))
            handle = f"{time.time_ns():x}-{id(self):x}-{len(entries)}"
            entries.append({"name": name, "serializer": serializer, "handle": handle})
            self.run(self.store.put(_REGISTRY_KEY, {"collections": entries}, collection=REGISTRY))
            return handle, serializer

    def names(self) -> list[str]:
        return [str(entry.get("name")) for entry in self._registry()]

    def drop(self, name: str) -> bool:
        self._refuse_reserved(name)
        self.check_writable()
        with self.lock:
            entries = self._registry()
            found = [entry for entry in entries if entry.get("name") == name]
            if not found:
                return False
            self.remove_all(name)
            self.run(self.store.put(_REGISTRY_KEY, {"collections": [e for e in entries if e.get("name") != name]},
                                    collection=REGISTRY))
            for table in list(self._tables):
                if table.name == name:
                    table.dropped = True
            return True

    def remove_all(self, name: str) -> None:
        """Delete every entry of the py-key-value collection ``name``: listed keys, page after
        page, where the store enumerates (py-key-value 0.5.0's ``MemoryStore.destroy_collection``
        leaves the collection unusable), else ``destroy_collection``, else ``NotSupported``."""
        store = self.store
        if self.enumerates:
            async def delete_listed() -> None:
                while True:
                    listed = await store.keys(name, limit=self.list_cap)
                    if not listed:
                        return
                    removed = await store.delete_many(listed, collection=name)
                    if len(listed) < self.list_cap or removed == 0:
                        return  # the listing was complete (or nothing more can be removed)
            self.run(delete_listed())
        elif self.destroys_collections:
            self.run(store.destroy_collection(name))
        else:
            raise NotSupported(f"{self.store_name} can neither list the keys of a collection nor destroy one: "
                               "clear() and drop_collection() are not available")

    def table(self, name: str, handle: Any, serializer: _serializers.Serializer) -> PyKVTable:
        table = PyKVTable(self, name, serializer)
        self._tables.add(table)
        return table

    # -- the whole store ----------------------------------------------------------------------------

    def purge_expired(self, now: float) -> dict[str, int]:
        """Expired entries are the store's to remove: its ``cull()`` is called where it has one;
        every collection reports 0."""
        self.check_writable()
        if _has(self.store, "cull"):
            self.run(self.store.cull())
        return {name: 0 for name in self.names()}

    def close(self) -> None:
        """Stop the engine's loop and thread (after closing the store when ``close_store``)."""
        if self.close_store and _has(self.store, "close"):
            try:
                self.run(self.store.close())
            finally:
                self._stop()
        else:
            self._stop()

    def _stop(self) -> None:
        super().close()
        loop = self._loop
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        if not loop.is_running():
            loop.close()


async def _unique(method: Callable[..., Awaitable[list[Any]]], texts: list[str], collection: str) -> list[Any]:
    """``method(texts, collection=collection)`` (``get_many``/``ttl_many``) asked for each key once
    (memcached refuses a repeated key), the results in the positions of ``texts``."""
    distinct = list(dict.fromkeys(texts))
    if len(distinct) == len(texts):
        return await method(texts, collection=collection)
    found = dict(zip(distinct, await method(distinct, collection=collection)))
    return [found[text] for text in texts]


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _finish(coroutine: Any, yielded: Any) -> Any:
    """Go on running a coroutine that suspended (yielding ``yielded``) while run inline: each
    future it waits for is awaited here, on the engine's loop, then the coroutine resumes."""
    while True:
        if asyncio.isfuture(yielded):
            await asyncio.wait([yielded])
        else:  # a bare yield (asyncio.sleep(0))
            await asyncio.sleep(0)
        try:
            yielded = coroutine.send(None)
        except StopIteration as stop:
            return stop.value


# -- one collection ---------------------------------------------------------------------------------


class PyKVTable(Table):
    """One kvlite collection: the py-key-value collection of the same name."""

    engine: PyKVEngine

    def __init__(self, engine: PyKVEngine, name: str, serializer: _serializers.Serializer) -> None:
        super().__init__(engine, name, serializer)
        self.store = engine.store
        self.json = bool(serializer.json) and not engine.text_documents
        self.bytes_out = False
        if serializer.json:
            try:
                self.bytes_out = isinstance(serializer.dumps({}), bytes)
            except Exception:  # noqa: BLE001 - a stand-in, or a serializer refusing {}: text assumed
                pass
        #: Values decoded straight from the stored document (no JSON text in between).
        self.plain_json = type(serializer) in (_serializers.JSONSerializer, _serializers.JSONBSerializer)
        self.collection = name

    # -- documents ------------------------------------------------------------------------------

    def to_document(self, data: Any) -> dict[str, Any]:
        """The document stored for the serializer output ``data``."""
        if self.json:
            try:
                value = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise SerializationError(f"the serializer {self.serializer.name!r} is marked JSON but gave "
                                         f"text that is not JSON: {exc}") from None
            if self.engine.nul_free and "u0000" in data and _has_nul(value):
                raise SerializationError(f"{self.engine.store_name} cannot store the NUL character (U+0000) in "
                                         "a document")
            if type(value) is dict and not (len(value) == 1 and next(iter(value)) in _RESERVED):
                return value
            return {VALUE: value}
        if isinstance(data, str):
            try:
                data.encode("utf-8")
            except UnicodeEncodeError:
                raise SerializationError(f"the serializer {self.serializer.name!r} gave text that is not "
                                         "valid Unicode (no store can keep it)") from None
            if self.engine.nul_free and "\x00" in data:
                raise SerializationError(f"{self.engine.store_name} cannot store the NUL character (U+0000) in "
                                         "a document")
            return {TEXT: data}
        if isinstance(data, (bytes, bytearray, memoryview)):
            return {BYTES: base64.b64encode(data).decode("ascii")}
        raise SerializationError(f"the serializer {self.serializer.name!r} gave {type(data).__name__}, "
                                 "not str or bytes")

    def value_of(self, document: dict[str, Any]) -> Any:
        """The stored JSON value of a document, unwrapped (``MISSING`` for a text/bytes wrapper)."""
        if len(document) == 1:
            name, inner = next(iter(document.items()))
            if name == VALUE:
                return inner
            if name in (TEXT, BYTES):
                return MISSING
        return document

    def data_of(self, document: dict[str, Any]) -> Any:
        """The serializer output a stored document holds (what :meth:`get` returns)."""
        if len(document) == 1:
            name, inner = next(iter(document.items()))
            if name == TEXT and type(inner) is str:
                return inner
            if name == BYTES and type(inner) is str:
                try:
                    return base64.b64decode(inner, validate=True)
                except (binascii.Error, ValueError):
                    raise SerializationError(f"a stored {BYTES} wrapper in {self.name!r} is not base64") from None
            if name == VALUE:
                document = inner
        try:
            out = orjson.dumps(document)
        except TypeError as exc:
            raise SerializationError(f"a document in {self.name!r} cannot be read as JSON: {exc}") from None
        return out if self.bytes_out else out.decode()

    def _decoder(self, decode: Callable[[Any], Any] | None) -> Callable[[dict[str, Any]], Any]:
        """The value of a stored document as ``items()`` gives it."""
        if decode is None:
            if self.plain_json:
                def plain(document: dict[str, Any]) -> Any:
                    value = self.value_of(document)
                    return _serializers.decode(self.serializer, self.data_of(document)) if value is MISSING else value
                return plain
            decode = functools.partial(_serializers.decode, self.serializer)
        chosen = decode
        return lambda document: chosen(self.data_of(document))

    # -- keys -----------------------------------------------------------------------------------

    def _text(self, key: Any) -> str:
        """The one py-key-value key of a ``str``/``bytes``/non-integral key, checked."""
        if type(key) is str:
            _keys.check_text(key)
        text = key_text(key)
        self._check_text(text)
        return text

    def _check_text(self, text: str) -> None:
        rule = self.engine.key_rule
        if rule is not None:
            reason = rule(self.collection, text)
            if reason is not None:
                raise InvalidKey(f"{self.engine.store_name} cannot hold the key {text!r}: {reason}")

    def _all_forms(self, key: Any) -> list[str]:
        """The key's own form (checked: :class:`InvalidKey` when the store cannot hold it), then
        the other forms of the keys equal to it that the store can hold."""
        if type(key) is str:
            return [self._text(key)]
        forms = _forms(key)
        self._check_text(forms[0])
        rule = self.engine.key_rule
        if rule is not None and len(forms) > 1:
            forms = [forms[0]] + [form for form in forms[1:] if rule(self.collection, form) is None]
        return forms

    def _needs_forms(self, key: Any) -> bool:
        return type(key) is not str and type(key) is not bytes and not (type(key) is float and not key.is_integer())

    async def _find(self, forms: list[str]) -> tuple[str, dict[str, Any]] | None:
        """The first of ``forms`` with a live entry: ``(its key, its document)``."""
        if len(forms) == 1:
            found = await self.store.get(forms[0], collection=self.collection)
            return None if found is None else (forms[0], found)
        for form, document in zip(forms, await self.store.get_many(forms, collection=self.collection)):
            if document is not None:
                return form, document
        return None

    # -- single keys ----------------------------------------------------------------------------

    def get(self, key: Any) -> Any:
        self.check()
        if type(key) is str:
            text = key if key[:1] != "~" else "~s:" + key
            _keys.check_text(key)
            if self.engine.key_rule is not None:
                self._check_text(text)
            document = self.engine.run(self.store.get(text, collection=self.collection))
            if document is None:
                return MISSING
            if self.plain_json and not (len(document) == 1 and next(iter(document)) in _RESERVED):
                # the hot path: JSON bytes, which the collection decodes as it would the text
                try:
                    return orjson.dumps(document)
                except TypeError:
                    pass  # data_of raises the typed error
            return self.data_of(document)
        found = self.engine.run(self._find(self._all_forms(key)))
        return MISSING if found is None else self.data_of(found[1])

    def entry(self, key: Any, now: float) -> tuple[Any, Any] | None:
        self.check()
        found = self.engine.run(self._find(self._all_forms(key)))
        return None if found is None else (key_of_text(found[0]), self.data_of(found[1]))

    def _ttl_of(self, expires: float | None, now: float) -> float | None:
        if expires is None:
            return None
        ttl = expires - now
        if not ttl <= MAX_TTL:
            raise InvalidTTL(f"{self.engine.store_name} keeps expiry as a date: a TTL is at most {MAX_TTL:.0f} s "
                             "(100 years)")
        return ttl

    def expiry(self, key: Any, now: float) -> Any:
        self.check()
        forms = self._all_forms(key)
        found = self.engine.run(_unique(self.store.ttl_many, forms, self.collection))
        for document, remaining in found:
            if document is not None:
                if remaining is None:
                    return None
                return now + remaining if remaining > 0 else MISSING
        return MISSING

    def _first_of_forms(self, method: Callable[..., Awaitable[list[Any]]], keys: list[Any],
                        convert: Callable[[Any], Any]) -> list[Any]:
        """For each key, the first of its forms' ``convert(entry)`` that is not ``MISSING`` (else
        ``MISSING``), every form of every key read in one ``method`` call (``get_many``, whose
        entries are documents, or ``ttl_many``: ``(document, remaining)``)."""
        self.check()
        groups = [self._all_forms(key) for key in keys]
        flat = [form for forms in groups for form in forms]
        found = iter(self.engine.run(_unique(method, flat, self.collection)) if flat else [])
        out = []
        for forms in groups:
            result = MISSING
            for _ in forms:
                entry = next(found)
                if result is MISSING:
                    result = convert(entry)
            out.append(result)
        return out

    def expiry_many(self, keys: list[Any], now: float) -> list[Any]:
        def expiry(entry: tuple[Any, float | None]) -> Any:
            document, remaining = entry
            if document is None:
                return MISSING
            return None if remaining is None else (now + remaining if remaining > 0 else MISSING)

        return self._first_of_forms(self.store.ttl_many, keys, expiry)

    def get_many(self, keys: list[Any], now: float) -> list[Any]:
        return self._first_of_forms(self.store.get_many, keys,
                                    lambda document: MISSING if document is None else self.data_of(document))

    async def _targets(self, groups: list[list[str]]) -> list[str]:
        """For each key's forms: the form already stored (live), else its own."""
        flat = [form for forms in groups if len(forms) > 1 for form in forms]
        found = iter(await _unique(self.store.get_many, flat, self.collection) if flat else [])
        targets = []
        for forms in groups:
            target = forms[0]
            if len(forms) > 1:
                hits = [form for form in forms if next(found) is not None]
                target = hits[0] if hits else forms[0]
            targets.append(target)
        return targets

    def put(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        self.check_writable()
        ttl = self._ttl_of(expires, now)
        document = self.to_document(data)
        if type(key) is str or not self._needs_forms(key):
            self.engine.run(self.store.put(self._text(key), document, collection=self.collection, ttl=ttl))
            return
        forms = self._all_forms(key)

        async def put_number() -> None:
            (target,) = await self._targets([forms])
            await self.store.put(target, document, collection=self.collection, ttl=ttl)

        with self.engine.lock:
            self.engine.run(put_number())

    def put_many(self, pairs: Iterable[Any], encode: Callable[[Any], Any], now: float,
                 expires: float | None) -> int:
        self.check_writable()
        ttl = self._ttl_of(expires, now)
        latest: dict[Any, tuple[list[str], dict[str, Any]]] = {}
        count = 0
        for pair in pairs:
            key, value = pair
            key = _keys.normalize(key)
            forms = self._all_forms(key)
            document = self.to_document(encode(value))
            if key in latest:
                latest[key] = (latest[key][0], document)  # the first one's forms, the last value
            else:
                latest[key] = (forms, document)
            count += 1
        if not latest:
            return 0
        groups = [forms for forms, _ in latest.values()]
        documents = [document for _, document in latest.values()]
        store, collection = self.store, self.collection

        async def put_all() -> None:
            targets = await self._targets(groups)
            await store.put_many(targets, documents, collection=collection, ttl=ttl)

        with self.engine.lock:
            self.engine.run(put_all())
        return count

    def delete(self, key: Any, now: float) -> bool:
        self.check_writable()
        return self.delete_many([key], now) > 0

    def delete_many(self, keys: list[Any], now: float) -> int:
        """Delete the live entries: how many (an entry the store still holds after it expired is
        deleted too, and not counted)."""
        self.check_writable()
        groups: dict[Any, list[str]] = {}
        for key in keys:
            if key not in groups:
                groups[key] = self._all_forms(key)
        flat = [form for forms in groups.values() for form in forms]
        if not flat:
            return 0
        store, collection = self.store, self.collection

        async def delete_all() -> int:
            found = iter(await _unique(store.get_many, flat, collection))
            live = 0
            for forms in groups.values():
                live += any([next(found) is not None for _ in forms])
            await store.delete_many(list(dict.fromkeys(flat)), collection=collection)
            return live

        return self.engine.run(delete_all())

    def pop(self, key: Any, now: float, decode: Callable[[Any], Any]) -> Any:
        self.check_writable()
        forms = self._all_forms(key)
        with self.engine.lock:
            found = self.engine.run(self._find(forms))
            if found is None:
                return MISSING
            value = decode(self.data_of(found[1]))  # may raise: then nothing is removed
            self.engine.run(self.store.delete_many(forms, collection=self.collection))
            return value

    def setdefault(self, key: Any, default: Callable[[], Any], now: float, expires: float | None,
                   decode: Callable[[Any], Any]) -> Any:
        self.check_writable()
        ttl = self._ttl_of(expires, now)
        forms = self._all_forms(key)
        with self.engine.lock:
            found = self.engine.run(self._find(forms))
            if found is not None:
                return decode(self.data_of(found[1]))
            document = self.to_document(default())
            self.engine.run(self.store.put(forms[0], document, collection=self.collection, ttl=ttl))
            return MISSING

    def modify(self, key: Any, change: Callable[[Any], tuple[Any, Any]], now: float,
               expires: Any = KEEP) -> Any:
        raise NotSupported(f"{self.engine.store_name} (py-key-value) cannot read and write one entry atomically: "
                           "incr(), compare_and_set() and patch() are not available")

    # -- the whole collection ---------------------------------------------------------------------

    def _listed(self) -> list[str]:
        """Every key the store lists for the collection (expired ones it still holds included).

        :raises NotSupported: the store cannot list keys, or listed as many as its cap."""
        self.check()
        engine = self.engine
        if not engine.enumerates:
            raise NotSupported(f"{engine.store_name} cannot list the keys of a collection (py-key-value's keys() "
                               "is not available on it): iteration, len(), popitem(), queries, clear() and "
                               "stats() are not available; get/put/delete/ttl and their _many forms are")
        listed = engine.run(self.store.keys(self.collection, limit=engine.list_cap))
        if len(listed) >= engine.list_cap:
            raise NotSupported(f"{engine.store_name} lists at most {engine.list_cap} keys per collection and has no "
                               f"cursor; {self.name!r} holds at least that many, so it cannot be iterated "
                               "completely (kvlite refuses rather than miss keys)")
        return listed

    def _documents(self, reverse: bool) -> Iterator[tuple[Any, dict[str, Any]]]:
        """``(key, document)`` of every live entry, in the store's listing order, read in pages."""
        listed = self._listed()
        if reverse:
            listed.reverse()
        seen: set[Any] = set()
        for start in range(0, len(listed), PAGE):
            page = listed[start:start + PAGE]
            self.check()
            documents = self.engine.run(self.store.get_many(page, collection=self.collection))
            for text, document in zip(page, documents):
                if document is None:
                    continue
                key = key_of_text(text)
                if key is MISSING or key in seen:
                    continue
                seen.add(key)
                yield key, document

    def keys(self, reverse: bool) -> Iterator[Any]:
        for key, _ in self._documents(reverse):
            yield key

    def items(self, reverse: bool, decode: Callable[[Any], Any] | None) -> Iterator[tuple[Any, Any]]:
        convert = self._decoder(decode)
        for key, document in self._documents(reverse):
            yield key, convert(document)

    def popitem(self, now: float, decode: Callable[[Any], Any]) -> tuple[Any, Any] | None:
        self.check_writable()
        with self.engine.lock:
            last = None
            for last in self._documents(True):
                break
            if last is None:
                return None
            key, document = last
            value = decode(self.data_of(document))
            self.engine.run(self.store.delete_many(_forms(key), collection=self.collection))
            return key, value

    def count(self, now: float) -> int:
        return sum(1 for _ in self._documents(False))

    def clear(self) -> None:
        self.check_writable()
        self.engine.remove_all(self.collection)

    def purge(self, now: float) -> int:
        """0: expired entries are the store's to remove (see :meth:`PyKVEngine.purge_expired`)."""
        self.check_writable()
        return 0

    def sizes(self, now: float) -> tuple[int, int, int]:
        """``(live entries, bytes of their serializer output, listed keys that read as expired)``;
        keys that are not kvlite's (see :func:`key_of_text`) count nowhere."""
        listed = [text for text in self._listed() if key_of_text(text) is not MISSING]
        live = size = 0
        for start in range(0, len(listed), PAGE):
            page = listed[start:start + PAGE]
            for document in self.engine.run(self.store.get_many(page, collection=self.collection)):
                if document is not None:
                    live += 1
                    data = self.data_of(document)
                    size += len(data.encode("utf-8") if isinstance(data, str) else data)
        return live, size, len(listed) - live
