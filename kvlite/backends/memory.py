"""``memory://`` — a pure-Python store in this process, and ``null://``, which keeps nothing.

``kvlite.open("memory://")`` gives a new, private store with the full kvlite
API: serializers (values are encoded, so a stored value is a copy and a value
the serializer refuses is refused here too), TTLs on the store's clock,
insertion order, the dict view, queries (evaluated in Python), and
transactions.  It is the fastest choice for tests and caches.  Nothing
survives the process.

Transactions take the store's lock for their duration (other threads wait,
as with SQLite's ``BEGIN IMMEDIATE``) and copy a collection's entries the
first time the transaction writes to it, so a rollback puts everything back,
including collections created or dropped in the block.

A dropped collection's entries are gone at once: every call through a
collection object kept from before the drop raises
:class:`~kvlite.errors.CollectionDropped`, as on SQLite.

``durability="full"`` raises :class:`~kvlite.errors.NotSupported` (nothing is
ever on disk); ``"normal"`` is accepted.  ``timeout`` bounds how long
``transaction()`` waits for another thread's block (then
:class:`~kvlite.errors.StoreLocked`).  ``create_index`` / ``drop_index`` raise
:class:`~kvlite.errors.NotSupported` (queries scan in Python; ``indexes()``
is ``[]``).

``kvlite.open("null://")`` accepts every call (with the same validation) and
keeps nothing: every read misses.  Useful to switch a cache off.
See docs/backends/embedded.md.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from typing import Any, Callable, Iterator

from .. import serializers as _serializers
from ..errors import NotSupported, StoreLocked
from ..ttl import is_live
from .base import MISSING, BackendCollection, BackendStore, validate_settings

__all__ = ["MemoryStore", "MemoryCollection", "NullStore"]

_Entry = list  # [stored key, data, expires_at]


def _live(entry: _Entry, now: float) -> bool:
    return is_live(entry[2], now)


class MemoryStore(BackendStore):
    """A kvlite store held in this process's memory (``memory://``)."""

    supports_transactions = True

    def __init__(self, url: str = "memory://", *, serializer: str | _serializers.Serializer = "json",
                 clock: Callable[[], float] = time.time, readonly: bool = False, durability: str = "normal",
                 timeout: float = 30.0) -> None:
        if durability == "full":
            raise NotSupported(f"{url.split('://')[0]}:// keeps nothing on disk, so durability='full' (every "
                               "committed write survives a crash) cannot be given; use durability='normal'")
        seconds = validate_settings(durability, timeout)
        super().__init__(url, serializer=serializer, clock=clock, readonly=readonly)
        self.durability = durability
        self.timeout = seconds
        self._lock = threading.RLock()
        self._registry: dict[str, tuple[dict[Any, _Entry], str]] = {}
        # One dict per open transaction level: {id(data): (data, copy made at first write)}.
        self._savepoints: list[dict[int, tuple[dict[Any, _Entry], dict[Any, _Entry]]]] = []
        self._owner: threading.Thread | None = None
        self._made: weakref.WeakSet[MemoryCollection] = weakref.WeakSet()  # for _after_rollback

    # -- registry primitives --------------------------------------------------------------------

    def _registry_get(self, name: str) -> tuple[Any, str] | None:
        with self._lock:
            return self._registry.get(name)

    @staticmethod
    def _same_handle(cached: Any, current: Any) -> bool:
        return cached is current  # the entries dict itself: a new collection of that name has a new one

    def _registry_create(self, name: str, serializer: str) -> tuple[Any, str]:
        with self._lock:
            return self._registry.setdefault(name, ({}, serializer))

    def _registry_names(self) -> list[str]:
        with self._lock:
            return list(self._registry)

    def _registry_drop(self, name: str) -> bool:
        with self._lock:
            found = self._registry.pop(name, None)
            if found is None:
                return False
            self._touch(found[0])  # a rollback brings the entries back
            found[0].clear()  # objects still holding the collection see nothing
            return True

    def _make_collection(self, name: str, handle: Any, serializer: _serializers.Serializer,
                         model: type | None) -> MemoryCollection:
        coll = MemoryCollection(self, name, handle, serializer, model)
        self._made.add(coll)
        return coll

    def _close(self) -> None:
        with self._lock:
            self._registry.clear()

    # -- transactions --------------------------------------------------------------------------

    def _touch(self, data: dict[Any, _Entry]) -> None:
        """Called (under the lock) before a write: remember the old entries for a rollback."""
        for level in self._savepoints:
            if id(data) not in level:
                level[id(data)] = (data, {k: list(v) for k, v in data.items()})

    @contextlib.contextmanager
    def transaction(self) -> Iterator[MemoryStore]:
        """Atomic block: on an exception every write made in it is undone.  Nested blocks roll
        back only their own writes (like savepoints)."""
        self._check_writable()
        if not self._lock.acquire(timeout=self.timeout):
            raise StoreLocked(f"another thread's transaction() held {self.url} for longer than the "
                              f"timeout ({self.timeout:g} s)")
        try:
            registry = dict(self._registry)
            self._savepoints.append({})
            try:
                yield self
            except BaseException:
                for data, before in self._savepoints.pop().values():
                    data.clear()
                    data.update(before)
                self._registry.clear()
                self._registry.update(registry)
                self._after_rollback()
                raise
            finished = self._savepoints.pop()
            if self._savepoints:  # an inner block: the outer one must still be able to undo it
                outer = self._savepoints[-1]
                for key, value in finished.items():
                    outer.setdefault(key, value)
        finally:
            self._lock.release()

    def _after_rollback(self) -> None:
        """After a rollback: a collection object is usable exactly when its entries are registered
        again (a drop was undone), and counts as dropped when not (its creation was undone)."""
        for coll in list(self._made):
            entry = self._registry.get(coll.name)
            coll._dropped = entry is None or entry[0] is not coll._data

    @contextlib.contextmanager
    def _read_snapshot(self) -> Iterator[None]:
        with self._lock:
            yield


class MemoryCollection(BackendCollection):
    """A collection of a :class:`MemoryStore`."""

    def __init__(self, store: MemoryStore, name: str, data: dict[Any, _Entry],
                 serializer: _serializers.Serializer, model: type | None = None) -> None:
        super().__init__(store, name, serializer, model)
        self._data = data
        self._lock = store._lock
        self._mstore = store

    def _get(self, key: Any, now: float) -> tuple[Any, float | None, Any] | None:
        with self._lock:  # a transaction in another thread holds it: its writes are not seen half-done
            entry = self._data.get(key)
            if entry is None or not _live(entry, now):
                return None
            return entry[1], entry[2], entry[0]

    def _write(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        entry = self._data.get(key)
        if entry is not None and _live(entry, now):
            entry[1], entry[2] = data, expires
            return
        if entry is not None:
            del self._data[key]  # an expired key counts as new: it moves to the end
        self._data[key] = [key, data, expires]

    def _put(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        with self._lock:
            self._mstore._touch(self._data)
            self._write(key, data, now, expires)

    def _put_all(self, entries: list[tuple[Any, Any]], now: float, expires: float | None) -> None:
        with self._lock:
            self._mstore._touch(self._data)
            for key, data in entries:
                self._write(key, data, now, expires)

    def _delete(self, key: Any, now: float) -> Any:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return MISSING
            self._mstore._touch(self._data)
            del self._data[key]
            return entry[1] if _live(entry, now) else MISSING

    def _delete_all(self, keys: list[Any], now: float) -> int:
        with self._lock:
            return sum(self._delete(key, now) is not MISSING for key in keys)

    def _popitem(self, now: float) -> tuple[Any, Any] | None:
        with self._lock:
            for key in reversed(self._data):
                entry = self._data[key]
                if _live(entry, now):
                    self._mstore._touch(self._data)
                    del self._data[key]
                    return entry[0], entry[1]
            return None

    def _setdefault(self, key: Any, data: Any, now: float, expires: float | None) -> Any:
        with self._lock:
            found = self._get(key, now)
            if found is not None:
                return found[0]
            self._put(key, data, now, expires)
            return MISSING

    def _entries(self, now: float, reverse: bool) -> Iterator[tuple[Any, Any]]:
        with self._lock:
            entries = list(reversed(self._data.values()) if reverse else self._data.values())
        for entry in entries:
            if _live(entry, now):
                yield entry[0], entry[1]

    def _count(self, now: float) -> int:
        with self._lock:
            return sum(1 for entry in self._data.values() if _live(entry, now))

    def _clear(self) -> None:
        with self._lock:
            self._mstore._touch(self._data)
            self._data.clear()

    def _purge(self, now: float) -> int:
        with self._lock:
            expired = [key for key, entry in self._data.items() if not _live(entry, now)]
            if expired:
                self._mstore._touch(self._data)
            for key in expired:
                del self._data[key]
            return len(expired)

    def _sizes(self, now: float) -> tuple[int, int, int]:
        with self._lock:
            live = [e for e in self._data.values() if _live(e, now)]
            size = sum(len(e[1].encode("utf-8") if isinstance(e[1], str) else e[1]) for e in self._data.values())
            return len(live), size, len(self._data) - len(live)


class NullStore(MemoryStore):
    """``null://``: every call is validated as usual, nothing is kept, every read misses."""

    _NOTHING: dict[Any, _Entry] = {}  # every null collection's (always empty) entries

    def _make_collection(self, name: str, handle: Any, serializer: _serializers.Serializer,
                         model: type | None) -> MemoryCollection:
        return _NullCollection(self, name, handle, serializer, model)

    def _registry_create(self, name: str, serializer: str) -> tuple[Any, str]:
        return self._NOTHING, serializer  # remembered nowhere

    def _after_rollback(self) -> None:
        return None  # nothing is registered, nothing to undo


class _NullCollection(MemoryCollection):
    def _write(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        return None
