"""What every non-SQLite backend shares: validation, serializers, models, TTL, counters, queries.

A backend implements a handful of storage primitives (the ``_``-methods of
:class:`BackendCollection` and :class:`BackendStore` marked *primitive*); this
module turns them into the same public API as the SQLite
:class:`~kvlite.Collection` and :class:`~kvlite.Store`, with the same
validation and the same exceptions, so a behaviour that differs between
backends is a bug, not a choice.

Keys reach the primitives *normalised*: validated by :mod:`kvlite.keys` and
converted to their base type (a ``StrEnum`` becomes ``str``).  They keep
Python's equality (``1 == 1.0 == True``); backends that need a text form use
:func:`canonical_key` (equal keys, equal text) and :func:`key_to_text` /
:func:`key_from_text` (exact round trip of the type).
"""

from __future__ import annotations

import contextlib
import datetime
import math
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from .. import keys as _keys
from .. import serializers as _serializers
from ..errors import (
    CollectionDropped,
    InvalidKey,
    KvliteError,
    NotSupported,
    ReadOnlyError,
    SerializerMismatch,
    StoreClosed,
)
from ..models import ModelAdapter
from ..names import validate_collection_name
from ..ttl import expiry, remaining

if TYPE_CHECKING:
    from ..dictview import DictView

__all__ = ["BackendStore", "BackendCollection", "MISSING", "entry_pairs", "validate_settings", "store_stats",
           "collection_stats"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Sentinel: "no entry" from a primitive, "no default given" in the public API.
MISSING: Any = _Missing()


def entry_pairs(entries: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> Iterable[Any]:
    """The ``(key, value)`` pairs of what ``put_many`` accepts: a mapping, an object with
    ``keys()`` and ``[]`` (the same duck-typing as ``dict.update``), or an iterable of pairs."""
    if isinstance(entries, Mapping):
        return entries.items()
    if hasattr(entries, "keys"):
        return ((k, entries[k]) for k in entries.keys())  # type: ignore[index]
    return entries


_DURABILITY = ("normal", "full")


def validate_settings(durability: object, timeout: object) -> float:
    """``timeout`` as a float, once both settings every kind of store takes are checked:
    ``durability`` is ``"normal"`` or ``"full"``, ``timeout`` a finite number of seconds >= 0
    (else ``ValueError``)."""
    if durability not in _DURABILITY:
        raise ValueError(f"durability must be 'normal' or 'full', not {durability!r}")
    if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout >= 0
            and math.isfinite(timeout)):
        raise ValueError("timeout must be a finite number of seconds >= 0")
    return float(timeout)


#: The numbers every ``stats()`` reports, summed over collections in ``Store.stats()["totals"]``.
STAT_COUNTERS = ("gets", "hits", "misses", "puts", "deletes", "expirations", "rows", "expired_pending", "bytes")


def store_stats(path: str, per: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``Store.stats()``'s result from each collection's ``stats()``."""
    totals = {counter: sum(info[counter] for info in per.values()) for counter in STAT_COUNTERS}
    return {"path": path, "collections": per, "totals": totals}


def collection_stats(opened: list[Any], recorded: tuple[Any, str] | None,
                     make: Callable[[Any, _serializers.Serializer], Any]) -> dict[str, Any] | None:
    """One collection's figures for ``Store.stats()``: the counters of every view of it open in
    this store, summed; when none is open, the figures of ``make(handle, serializer)`` for its
    registry entry ``recorded = (handle, serializer name)`` (``None``: dropped meanwhile).

    ``make`` gets a stand-in serializer carrying the recorded name: sizes need no decoding, so
    a collection whose serializer is not available in this process still counts.
    """
    if opened:
        info: dict[str, Any] = opened[0].stats()
        for other in opened[1:]:
            extra = other.stats()
            for counter in ("gets", "hits", "misses", "puts", "deletes", "expirations"):
                info[counter] += extra[counter]
        return info
    if recorded is None:
        return None
    return make(recorded[0], _serializers.stand_in(recorded[1])).stats()  # type: ignore[no-any-return]



class BackendStore(ABC):
    """The :class:`kvlite.Store` API over a backend's primitives."""

    #: Whether ``transaction()`` can be atomic across keys and collections.
    supports_transactions = False

    def __init__(self, url: str, *, serializer: str | _serializers.Serializer = "json",
                 clock: Callable[[], float] = time.time, readonly: bool = False) -> None:
        self.url = self.path = url
        self.readonly = readonly
        self._default_serializer = _serializers.get(serializer)
        self._clock = clock
        self._closed = False
        self._collections: dict[tuple[str, type | None], BackendCollection] = {}

    # -- primitives -------------------------------------------------------------------------

    @abstractmethod
    def _registry_get(self, name: str) -> tuple[Any, str] | None:
        """*Primitive*: ``(handle, serializer name)`` of an existing collection, or ``None``."""

    @abstractmethod
    def _registry_create(self, name: str, serializer: str) -> tuple[Any, str]:
        """*Primitive*: create the collection (or return the existing one, if another client won)."""

    @abstractmethod
    def _registry_names(self) -> list[str]:
        """*Primitive*: every collection name, oldest first."""

    @abstractmethod
    def _registry_drop(self, name: str) -> bool:
        """*Primitive*: delete a collection and its entries; ``False`` if there was none."""

    @abstractmethod
    def _make_collection(self, name: str, handle: Any, serializer: _serializers.Serializer,
                         model: type | None) -> BackendCollection:
        """*Primitive*: the collection object for a registry entry."""

    def _close(self) -> None:
        """*Primitive*: release connections."""

    # -- the Store API ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.readonly:
            raise ReadOnlyError("the store was opened read-only")

    def now(self) -> float:
        return self._clock()

    def collection(self, name: str, *, serializer: str | _serializers.Serializer | None = None,
                   model: type | None = None) -> BackendCollection:
        """The collection ``name``, created on first use (see :meth:`kvlite.Store.collection`).

        The registry is read on every call, as the SQLite store does: when
        another client dropped the collection (and maybe made a new one of that
        name, maybe with another serializer), the cached object is not handed
        out again."""
        self._check_open()
        validate_collection_name(name)
        wanted = self._default_serializer if serializer is None else _serializers.get(serializer)
        found = self._registry_get(name)
        if found is None:
            self._check_writable()
            found = self._registry_create(name, wanted.name)
        handle, stored = found
        if stored != wanted.name:
            raise SerializerMismatch(name, stored, wanted.name)
        cached = self._collections.get((name, model))
        if cached is not None and not cached._dropped and self._same_handle(cached._handle, handle):
            if cached.serializer.name != wanted.name:
                raise SerializerMismatch(name, cached.serializer.name, wanted.name)
            return cached
        coll = self._make_collection(name, handle, wanted, model)
        coll._handle = handle
        self._collections[(name, model)] = coll
        return coll

    @staticmethod
    def _same_handle(cached: Any, current: Any) -> bool:
        """Whether two registry handles name the same collection (not a newer one of that name)."""
        return bool(cached == current)

    def collections(self) -> list[str]:
        self._check_open()
        return self._registry_names()

    def serializer_of(self, name: str) -> str | None:
        """The serializer name recorded for collection ``name`` (``None`` if it does not exist)."""
        self._check_open()
        found = self._registry_get(validate_collection_name(name))
        return None if found is None else found[1]

    def drop_collection(self, name: str) -> bool:
        self._check_writable()
        validate_collection_name(name)
        dropped = self._registry_drop(name)
        if dropped:
            for cache_key in [k for k in list(self._collections) if k[0] == name]:
                stale = self._collections.pop(cache_key, None)
                if stale is not None:
                    stale._dropped = True
        return dropped

    def dict(self, name: str, *, serializer: str | _serializers.Serializer | None = None,
             model: type | None = None) -> DictView:
        return self.collection(name, serializer=serializer, model=model).dict()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[BackendStore]:
        """Not every engine can make several operations atomic: those raise :class:`NotSupported`."""
        raise NotSupported(f"{type(self).__name__} cannot make several operations atomic; "
                           "each single call (including the _many ones) is atomic on its own")
        yield self  # pragma: no cover

    @contextlib.contextmanager
    def _read_snapshot(self) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[BackendStore]:
        """A block whose reads see one state of the store, where the engine has snapshots
        (``memory://`` holds its lock for the block); on PostgreSQL and Redis each call is its
        own snapshot.  See :meth:`kvlite.Store.snapshot`."""
        with self._read_snapshot():
            yield self

    def purge_expired(self) -> int:
        self._check_writable()
        total = 0
        for name in self._registry_names():
            found = self._registry_get(name)
            if found is not None:
                total += self._make_collection(name, found[0], self._default_serializer, None)._purge(self.now())
        return total

    def stats(self) -> dict[str, Any]:
        per = {}
        for name in self.collections():
            opened = [c for (n, _), c in list(self._collections.items()) if n == name and not c._dropped]
            recorded = None if opened else self._registry_get(name)
            info = collection_stats(opened, recorded,
                                    lambda handle, serializer: self._make_collection(name, handle, serializer, None))
            if info is not None:
                per[name] = info
        return store_stats(self.url, per)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> BackendStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<kvlite.{type(self).__name__} {self.url!r}{' closed' if self._closed else ''}>"


class BackendCollection(ABC):
    """The :class:`kvlite.Collection` API over a backend's primitives."""

    def __init__(self, store: BackendStore, name: str, serializer: _serializers.Serializer,
                 model: type | None = None) -> None:
        self.store = store
        self.name = name
        self.serializer = serializer
        self.model = model
        self._model = ModelAdapter(model) if model is not None else None
        self._dropped = False
        self._handle: Any = None  # the registry handle this object was made for
        self._dict: DictView | None = None
        self._n_gets = self._n_hits = self._n_puts = self._n_deletes = self._n_expired = 0

    # -- primitives (keys are normalised; data is serializer output) --------------------------

    @abstractmethod
    def _get(self, key: Any, now: float) -> tuple[Any, float | None, Any] | None:
        """``(data, expires_at, stored key)`` of a live entry, else ``None``.

        The stored key is the one first written (``True`` when ``True`` was
        stored and ``1`` is asked for), as in ``dict``."""

    @abstractmethod
    def _put(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        """Insert or replace (an existing live key keeps its place and its original key)."""

    @abstractmethod
    def _put_all(self, entries: list[tuple[Any, Any]], now: float, expires: float | None) -> None:
        """Atomic :meth:`_put` of every entry, in order."""

    @abstractmethod
    def _delete(self, key: Any, now: float) -> Any:
        """Remove ``key``; the data of the live entry removed, else ``MISSING``."""

    @abstractmethod
    def _delete_all(self, keys: list[Any], now: float) -> int:
        """Atomic :meth:`_delete` of every key; how many live entries were removed."""

    @abstractmethod
    def _popitem(self, now: float) -> tuple[Any, Any] | None:
        """Remove and return ``(key, data)`` of the newest live entry."""

    @abstractmethod
    def _setdefault(self, key: Any, data: Any, now: float, expires: float | None) -> Any:
        """Atomically: the live entry's data, or store ``data`` and return ``MISSING``."""

    @abstractmethod
    def _entries(self, now: float, reverse: bool) -> Iterator[tuple[Any, Any]]:
        """``(key, data)`` of live entries in insertion order (or reversed), streaming."""

    @abstractmethod
    def _count(self, now: float) -> int:
        """Number of live entries."""

    @abstractmethod
    def _clear(self) -> None:
        """Remove every entry."""

    @abstractmethod
    def _purge(self, now: float) -> int:
        """Remove expired entries; how many."""

    @abstractmethod
    def _sizes(self, now: float) -> tuple[int, int, int]:
        """``(live rows, stored bytes, expired but not yet purged)``."""

    # -- helpers ------------------------------------------------------------------------------

    def _check_write(self) -> None:
        self.store._check_writable()
        if self._dropped:
            raise self._dropped_error()

    def _check_read(self) -> None:
        self.store._check_open()
        if self._dropped:
            raise self._dropped_error()

    def _dropped_error(self) -> KvliteError:
        """What every call through this object raises once its collection is gone (as on SQLite)."""
        return CollectionDropped(f"the collection {self.name!r} was dropped (by this or another client); "
                                 "store.collection(name) gives the current one")

    def _encode(self, value: Any) -> Any:
        if self._model is not None:
            value = self._model.dump(value)
        return _serializers.encode(self.serializer, value)

    def _decode_raw(self, data: Any) -> Any:
        return _serializers.decode(self.serializer, data)

    def _decode(self, data: Any) -> Any:
        value = self._decode_raw(data)
        return self._model.load(value) if self._model is not None else value

    # -- the Collection API --------------------------------------------------------------------

    def get(self, key: Any, default: Any = None) -> Any:
        """See :meth:`kvlite.Collection.get`."""
        self._check_read()
        found = self._get(_keys.normalize(key), self.store.now())
        self._n_gets += 1
        if found is None:
            return default
        self._n_hits += 1
        return self._decode(found[0])

    def put(self, key: Any, value: Any, *, ttl: float | datetime.timedelta | None = None) -> None:
        """See :meth:`kvlite.Collection.put`."""
        key = _keys.normalize(key)
        now = self.store.now()
        expires = expiry(ttl, now)
        data = self._encode(value)
        self._check_write()
        self._put(key, data, now, expires)
        self._n_puts += 1

    def delete(self, key: Any) -> bool:
        key = _keys.normalize(key)
        self._check_write()
        deleted = self._delete(key, self.store.now()) is not MISSING
        self._n_deletes += deleted
        return deleted

    def ttl(self, key: Any) -> float | None:
        self._check_read()
        now = self.store.now()
        found = self._get(_keys.normalize(key), now)
        return None if found is None else remaining(found[1], now)

    def __contains__(self, key: Any) -> bool:
        try:
            key = _keys.normalize(key)
        except InvalidKey:
            return False
        self._check_read()
        return self._get(key, self.store.now()) is not None

    def get_many(self, keys: Iterable[Any], default: Any = None) -> list[Any]:
        normalized = _keys.normalize_many(keys, "get_many")
        self._check_read()
        now = self.store.now()
        with self.store._read_snapshot():  # one consistent view where the engine offers one
            found_all = [self._get(key, now) for key in normalized]
        out = [default if found is None else self._decode(found[0]) for found in found_all]
        self._n_hits += sum(found is not None for found in found_all)
        self._n_gets += len(normalized)
        return out

    def put_many(self, entries: Mapping[Any, Any] | Iterable[tuple[Any, Any]], *,
                 ttl: float | datetime.timedelta | None = None) -> int:
        items = entry_pairs(entries)
        now = self.store.now()
        expires = expiry(ttl, now)
        encoded = []
        for pair in items:
            key, value = pair
            encoded.append((_keys.normalize(key), self._encode(value)))
        self._check_write()
        self._put_all(encoded, now, expires)
        self._n_puts += len(encoded)
        return len(encoded)

    def delete_many(self, keys: Iterable[Any]) -> int:
        normalized = _keys.normalize_many(keys, "delete_many")
        self._check_write()
        removed = self._delete_all(normalized, self.store.now())
        self._n_deletes += removed
        return removed

    def ttl_many(self, keys: Iterable[Any]) -> list[float | None]:
        normalized = _keys.normalize_many(keys, "ttl_many")
        self._check_read()
        now = self.store.now()
        with self.store._read_snapshot():
            found_all = [self._get(key, now) for key in normalized]
        return [None if found is None else remaining(found[1], now) for found in found_all]

    def pop(self, key: Any, default: Any = MISSING) -> Any:
        try:
            key = _keys.normalize(key)
        except InvalidKey:
            if default is MISSING:
                raise KeyError(key) from None
            return default
        self._check_write()
        data = self._delete(key, self.store.now())
        if data is MISSING:
            if default is MISSING:
                raise KeyError(key)
            return default
        self._n_deletes += 1
        return self._decode(data)

    def popitem(self) -> tuple[Any, Any]:
        self._check_write()
        found = self._popitem(self.store.now())
        if found is None:
            raise KeyError("popitem(): dictionary is empty")
        self._n_deletes += 1
        return found[0], self._decode(found[1])

    def setdefault(self, key: Any, default: Any = None, *, ttl: float | None = None) -> Any:
        key = _keys.normalize(key)
        now = self.store.now()
        expires = expiry(ttl, now)
        data = self._encode(default)
        self._check_write()
        existing = self._setdefault(key, data, now, expires)
        return default if existing is MISSING else self._decode(existing)

    def keys(self, *, reverse: bool = False) -> Iterator[Any]:
        self._check_read()
        for key, _ in self._entries(self.store.now(), reverse):
            yield key

    def items(self, *, reverse: bool = False) -> Iterator[tuple[Any, Any]]:
        self._check_read()
        for key, data in self._entries(self.store.now(), reverse):
            yield key, self._decode(data)

    def values(self, *, reverse: bool = False) -> Iterator[Any]:
        for _, value in self.items(reverse=reverse):
            yield value

    def _raw_items(self, *, reverse: bool = False) -> Iterator[tuple[Any, Any]]:
        """``(key, document as plain data)``: what the query engines walk."""
        self._check_read()
        for key, data in self._entries(self.store.now(), reverse):
            yield key, self._decode_raw(data)

    def count(self, path: str | None = None, *, engine: str = "jsonpath") -> int:
        if path is not None:
            return sum(1 for _ in self.find(path, engine=engine))
        self._check_read()
        return self._count(self.store.now())

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def purge_expired(self) -> int:
        self._check_write()
        purged = self._purge(self.store.now())
        self._n_expired += purged
        return purged

    def clear(self) -> None:
        self._check_write()
        self._clear()

    def stats(self) -> dict[str, Any]:
        self._check_read()
        rows, size, pending = self._sizes(self.store.now())
        return {
            "collection": self.name, "serializer": self.serializer.name,
            "gets": self._n_gets, "hits": self._n_hits, "misses": self._n_gets - self._n_hits,
            "puts": self._n_puts, "deletes": self._n_deletes, "expirations": self._n_expired,
            "rows": rows, "expired_pending": pending, "bytes": size,
        }

    # -- queries: Python evaluation over streamed entries (kvlite.query) ------------------------

    def find(self, path: str, *, engine: str = "jsonpath", limit: int | None = None, offset: int = 0,
             order_by: str | None = None, desc: bool = False) -> Iterator[tuple[Any, Any]]:
        """See :meth:`kvlite.Collection.find`; evaluated in Python over streamed entries."""
        from ..query import find

        return find(self, path, engine=engine, limit=limit, offset=offset, order_by=order_by, desc=desc)

    def select(self, path: str, **options: Any) -> Iterator[Any]:
        return (value for _, value in self.find(path, **options))

    def explain(self, path: str, *, engine: str = "jsonpath", order_by: str | None = None,
                desc: bool = False) -> dict[str, Any]:
        from ..query import explain

        return explain(self, path, engine=engine, order_by=order_by, desc=desc)

    def create_index(self, path: str) -> str:
        raise NotSupported(f"{type(self.store).__name__} has no secondary indexes; queries scan in Python")

    def drop_index(self, path: str) -> bool:
        raise NotSupported(f"{type(self.store).__name__} has no secondary indexes")

    def indexes(self) -> list[str]:
        return []

    def dict(self) -> DictView:
        from ..dictview import DictView

        if self._dict is None:
            self._dict = DictView._over(self)  # type: ignore[arg-type]
        return self._dict

    def __repr__(self) -> str:
        return f"<kvlite.{type(self).__name__} {self.name!r} in {self.store.url!r}>"
