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

import bisect
import collections
import contextlib
import functools
import itertools
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Iterator

from .. import keys as _keys
from .. import serializers as _serializers
from ..errors import ChangesTruncated, CollectionDropped, NotSupported, StoreLocked
from ..ttl import is_live
from .base import KEEP, MISSING, Engine, Table

__all__ = ["MemoryEngine", "MemoryTable", "NullEngine"]

_Entry = list  # [stored key, data, expires_at]


def _live(entry: _Entry, now: float) -> bool:
    return is_live(entry[2], now)


class MemoryEngine(Engine):
    """A kvlite store held in this process's memory (``memory://``)."""

    supports_transactions = True

    def __init__(self, url: str = "memory://", *, clock: Callable[[], float] = time.time, readonly: bool = False,
                 durability: str = "normal", timeout: float = 30.0) -> None:
        if durability == "full":
            raise NotSupported(f"{url.split('://')[0]}:// keeps nothing on disk, so durability='full' (every "
                               "committed write survives a crash) cannot be given; use durability='normal'")
        super().__init__(url, clock=clock, readonly=readonly, durability=durability, timeout=timeout)
        self.lock = threading.RLock()
        self._registry: dict[str, tuple[dict[Any, _Entry], str]] = {}
        # One dict per open transaction level: {id(data): (data, copy made at first write)}.
        self._savepoints: list[dict[int, tuple[dict[Any, _Entry], dict[Any, _Entry]]]] = []
        self._made: weakref.WeakSet[MemoryTable] = weakref.WeakSet()  # for _after_rollback
        #: Sorted keys of a collection by kind ({id(entries): (entries, {kind: [keys]})}), made by
        #: its first ordered read (Collection.keys(prefix=...)) and kept up to date from then on.
        self.key_orders: dict[int, tuple[dict[Any, _Entry], dict[str, list[Any]]]] = {}
        # The change log: (seq, collection, serializer, key, op, its entries dict, at) in seq order; per
        # collection that records, [keep, max_age, trimmed, changes in the log]; waiters wake on
        # every record.
        self.change_log: list[tuple[Any, ...]] = []
        self.change_seq = 0
        self.change_state: dict[str, list[Any]] = {}
        self.changed = threading.Condition(self.lock)
        self._stopped: dict[str, int] = {}  # collections whose log was turned off: the seq then

    # -- the registry ---------------------------------------------------------------------------

    def lookup(self, name: str) -> tuple[Any, str] | None:
        with self.lock:
            return self._registry.get(name)

    def same_handle(self, cached: Any, current: Any) -> bool:
        return cached is current  # the entries dict itself: a new collection of that name has a new one

    def create(self, name: str, serializer: str) -> tuple[Any, str]:
        with self.lock:
            return self._registry.setdefault(name, ({}, serializer))

    def names(self) -> list[str]:
        with self.lock:
            return list(self._registry)

    def drop(self, name: str) -> bool:
        with self.lock:
            found = self._registry.pop(name, None)
            if found is None:
                return False
            self.touch(found[0])  # a rollback brings the entries back
            self.key_orders.pop(id(found[0]), None)
            if name in self.change_state:  # a logged collection logs each removal
                for stored in found[0]:
                    self.record(name, found[1], stored, "delete", found[0])
            found[0].clear()  # objects still holding the collection see nothing
            for table in list(self._made):
                if table.data is found[0]:
                    table.dropped = True
            return True

    def table(self, name: str, handle: Any, serializer: _serializers.Serializer) -> MemoryTable:
        table = MemoryTable(self, name, handle, serializer)
        self._made.add(table)
        return table

    def close(self) -> None:
        super().close()
        with self.lock:
            self._registry.clear()

    # -- the change log ----------------------------------------------------------------------------

    def record(self, name: str, serializer: str, key: Any, op: str, entries: dict[Any, _Entry]) -> None:
        """Log one change of collection ``name`` whose entries are ``entries`` (under the lock; the
        caller checked that it records).  A put's value is read from ``entries`` when the change
        is read: the latest, as on SQLite."""
        self.change_seq += 1
        self.change_log.append((self.change_seq, name, serializer, key, op, entries, time.time()))
        state = self.change_state.get(name)
        if state is not None:
            state[3] += 1
            if state[3] > state[0] + max(1024, state[0] // 8):  # trimmed in batches: O(1) a change
                self._trim(time.time())
        self.changed.notify_all()

    def _trim(self, now: float) -> None:
        """Trim each collection's log to its retention (under the lock)."""
        if not self.change_state:
            return
        newer: dict[str, int] = {}
        for entry in self.change_log:
            newer[entry[1]] = newer.get(entry[1], 0) + 1
        kept = []
        for entry in self.change_log:
            name, state = entry[1], self.change_state.get(entry[1])
            newer[name] -= 1  # how many changes of this collection come after this one
            if state is not None and (newer[name] >= state[0] or entry[6] < now - state[1]):
                state[2] = max(state[2], entry[0])
                continue
            kept.append(entry)
        self.change_log[:] = kept
        counts = collections.Counter(entry[1] for entry in kept)
        for name, state in self.change_state.items():
            state[3] = counts[name]

    def set_changes(self, name: str, handle: Any, enabled: bool, keep: int, max_age: float) -> None:
        with self.lock:
            self.check_writable()
            found = self._registry.get(name)
            if found is None or found[0] is not handle:
                raise CollectionDropped(f"the collection {name!r} was dropped")
            state = self.change_state.get(name)
            if enabled:
                if state is None:
                    self.change_state[name] = [keep, max_age, 0, 0]  # keep, max_age, trimmed, count
                else:
                    state[0], state[1] = keep, max_age
            elif state is not None:
                self.change_state.pop(name)
                self.change_log[:] = [entry for entry in self.change_log if entry[1] != name]
                self._stopped[name] = self.change_seq  # read from before now: ChangesTruncated

    def changes_after(self, since: int, names: list[str] | None, limit: int) -> list[tuple[Any, ...]]:
        with self.lock:
            self.check_open()
            states = {**{n: [0, 0, upto, 0] for n, upto in self._stopped.items()}, **self.change_state}
            for name, state in states.items():
                if (names is None or name in names) and state[2] > since:
                    raise ChangesTruncated(f"changes of {name!r} up to seq {state[2]} are no longer kept; "
                                           f"since={since} is older: resync", since=since, oldest=state[2])
            start = bisect.bisect_right(self.change_log, since, key=lambda entry: entry[0])
            out = []
            now = self.clock()
            for seq, name, serializer, key, op, entries, _ in itertools.islice(self.change_log, start, None):
                if names is None or name in names:
                    data = MISSING
                    if op == "put":
                        live = entries.get(key)
                        if live is not None and _live(live, now):
                            data = live[1]
                    out.append((seq, name, serializer, key, op, data))
                    if len(out) == limit:
                        break
            return out

    def last_change_seq(self, name: str | None = None) -> int:
        with self.lock:
            self.check_open()
            return self.change_seq

    def wait_for_changes(self, after: int, timeout: float, names: list[str] | None = None) -> None:
        with self.changed:
            if self.change_seq <= after:
                self.changed.wait(timeout)

    def purge_expired(self, now: float) -> dict[str, int]:
        purged = super().purge_expired(now)
        with self.lock:
            self._trim(time.time())  # the change logs too, to their retention
        return purged

    # -- transactions --------------------------------------------------------------------------

    def touch(self, data: dict[Any, _Entry]) -> None:
        """Called (under the lock) before a write: remember the old entries for a rollback."""
        for level in self._savepoints:
            if id(data) not in level:
                level[id(data)] = (data, {k: list(v) for k, v in data.items()})

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Atomic block: on an exception every write made in it is undone.  Nested blocks roll
        back only their own writes (like savepoints)."""
        self.check_writable()
        if not self.lock.acquire(timeout=self.timeout):
            raise StoreLocked(f"another thread's transaction() held {self.url} for longer than the "
                              f"timeout ({self.timeout:g} s)")
        try:
            registry = dict(self._registry)
            self._savepoints.append({})
            mark = self.change_seq
            try:
                yield
            except BaseException:
                while self.change_log and self.change_log[-1][0] > mark:  # the block's changes never were
                    self.change_log.pop()
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
            self.lock.release()

    def _after_rollback(self) -> None:
        """After a rollback: a table is usable exactly when its entries are registered again
        (a drop was undone), and counts as dropped when not (its creation was undone)."""
        self.key_orders.clear()  # the entries were put back: orders are made again when asked
        for table in list(self._made):
            entry = self._registry.get(table.name)
            table.dropped = entry is None or entry[0] is not table.data

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self.lock:
            yield


class MemoryTable(Table):
    """A collection of a :class:`MemoryEngine`: a dict ``{key: [stored key, data, expires_at]}``
    in insertion order, behind the engine's lock."""

    engine: MemoryEngine

    def __init__(self, engine: MemoryEngine, name: str, data: dict[Any, _Entry],
                 serializer: _serializers.Serializer) -> None:
        super().__init__(engine, name, serializer)
        self.data = data
        self._lock = engine.lock

    def _find(self, key: Any, now: float) -> _Entry | None:
        """The live entry of ``key`` (checked: the store is open, the collection not dropped)."""
        self.check()
        entry = self.data.get(key)
        if entry is None:
            if type(key) is str:
                _keys.check_text(key)
            return None
        return entry if _live(entry, now) else None

    def get(self, key: Any) -> Any:
        with self._lock:  # a transaction in another thread holds it: its writes are not seen half-done
            entry = self._find(key, self.engine.clock())
            return MISSING if entry is None else entry[1]

    def entry(self, key: Any, now: float) -> tuple[Any, Any] | None:
        with self._lock:
            entry = self._find(key, now)
            return None if entry is None else (entry[0], entry[1])

    def expiry(self, key: Any, now: float) -> Any:
        with self._lock:
            entry = self._find(key, now)
            return MISSING if entry is None else entry[2]

    def _write(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        entry = self.data.get(key)
        if entry is not None and _live(entry, now):
            entry[1], entry[2] = data, expires
            if self.engine.change_state:
                self._log(entry[0], "put")
            return
        if entry is not None:
            del self.data[key]  # an expired key counts as new: it moves to the end
            if self.engine.change_state:
                self._log(entry[0], "delete")
        elif id(self.data) in self.engine.key_orders:
            bisect.insort(self._order_of(key), key)
        self.data[key] = [key, data, expires]
        if self.engine.change_state:
            self._log(key, "put")

    def _log(self, key: Any, op: str) -> None:
        """Record a change when this collection records them (under the lock)."""
        engine = self.engine
        if self.name in engine.change_state:
            found = engine._registry.get(self.name)
            if found is not None and found[0] is self.data:
                engine.record(self.name, found[1], key, op, self.data)

    def _order_of(self, key: Any) -> list[Any]:
        """The sorted list of the keys of ``key``'s kind (the order must exist)."""
        return self.engine.key_orders[id(self.data)][1][_keys.kind_of(key)]

    def put(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        if type(key) is str:
            _keys.check_text(key)
        with self._lock:
            self.check_writable()
            self.engine.touch(self.data)
            self._write(key, data, now, expires)

    def put_many(self, pairs: Iterable[Any], encode: Callable[[Any], Any], now: float,
                 expires: float | None) -> int:
        entries = [(_keys.normalize(key), encode(value)) for key, value in pairs]
        with self._lock:
            self.check_writable()
            self.engine.touch(self.data)
            for key, data in entries:
                self._write(key, data, now, expires)
        return len(entries)

    def _remove(self, key: Any, now: float, decode: Callable[[Any], Any] | None) -> Any:
        entry = self.data.get(key)
        if entry is None:
            return MISSING
        value = MISSING if not _live(entry, now) else entry[1] if decode is None else decode(entry[1])
        self.engine.touch(self.data)
        del self.data[key]
        if self.engine.change_state:
            self._log(entry[0], "delete")
        if id(self.data) in self.engine.key_orders:
            order = self._order_of(key)
            del order[bisect.bisect_left(order, key)]
        return value

    def delete(self, key: Any, now: float) -> bool:
        with self._lock:
            self.check_writable()
            return self._remove(key, now, None) is not MISSING

    def delete_many(self, keys: list[Any], now: float) -> int:
        with self._lock:
            self.check_writable()
            return sum(self._remove(key, now, None) is not MISSING for key in keys)

    def pop(self, key: Any, now: float, decode: Callable[[Any], Any]) -> Any:
        with self._lock:
            self.check_writable()
            return self._remove(key, now, decode)  # an expired entry is removed too (MISSING)

    def popitem(self, now: float, decode: Callable[[Any], Any]) -> tuple[Any, Any] | None:
        with self._lock:
            self.check_writable()
            for key in reversed(self.data):
                entry = self.data[key]
                if _live(entry, now):
                    return entry[0], self._remove(key, now, decode)
            return None

    def setdefault(self, key: Any, default: Callable[[], Any], now: float, expires: float | None,
                   decode: Callable[[Any], Any]) -> Any:
        with self._lock:
            self.check_writable()
            entry = self.data.get(key)
            if entry is not None and _live(entry, now):
                return decode(entry[1])
            data = default()
            self.engine.touch(self.data)
            self._write(key, data, now, expires)
            return MISSING

    def modify(self, key: Any, change: Callable[[Any], tuple[Any, Any]], now: float,
               expires: Any = KEEP) -> Any:
        """Read, ``change`` and write under the store's lock (see :meth:`Table.modify`)."""
        if type(key) is str:
            _keys.check_text(key)
        with self._lock:
            self.check_writable()
            entry = self._find(key, now)
            new, result = change(MISSING if entry is None else entry[1])
            if new is not MISSING:
                if expires is KEEP:
                    expires = None if entry is None else entry[2]
                self.engine.touch(self.data)
                self._write(key, new, now, expires)
            return result

    def _entries(self, reverse: bool) -> Iterator[_Entry]:
        with self._lock:
            self.check()
            entries = list(reversed(self.data.values()) if reverse else self.data.values())
        clock = self.engine.clock
        for entry in entries:
            if _live(entry, clock()):
                yield entry

    def keys(self, reverse: bool) -> Iterator[Any]:
        for entry in self._entries(reverse):
            yield entry[0]

    def items(self, reverse: bool, decode: Callable[[Any], Any] | None) -> Iterator[tuple[Any, Any]]:
        if decode is None:
            decode = functools.partial(_serializers.decode, self.serializer)
        for entry in self._entries(reverse):
            yield entry[0], decode(entry[1])

    def key_range(self, keys: _keys.KeyRange, reverse: bool,
                  decode: Callable[[Any], Any] | None | bool) -> Iterator[Any]:
        """The range sliced (``bisect``) from the collection's sorted keys of that kind, a list
        made by the first ordered read and kept up to date by every write from then on."""
        with self._lock:
            self.check()
            orders = self.engine.key_orders.get(id(self.data))
            if orders is None:
                made: dict[str, list[Any]] = {kind: [] for kind in _keys.KINDS}
                for key in self.data:
                    made[_keys.kind_of(key)].append(key)
                for kind_keys in made.values():
                    kind_keys.sort()
                orders = self.engine.key_orders[id(self.data)] = (self.data, made)
            order = orders[1][keys.kind]
            low = 0 if keys.start is None else bisect.bisect_left(order, keys.start)
            high = len(order) if keys.stop is None else bisect.bisect_left(order, keys.stop)
            chosen = order[low:high] if low < high else []
        if reverse:
            chosen.reverse()
        if decode is None:
            decode = functools.partial(_serializers.decode, self.serializer)
        clock = self.engine.clock
        for key in chosen:
            with self._lock:
                entry = self.data.get(key)
            if entry is not None and _live(entry, clock()):
                yield entry[0] if decode is False else (entry[0], decode(entry[1]))  # type: ignore[operator]

    def count(self, now: float) -> int:
        with self._lock:
            self.check()
            return sum(1 for entry in self.data.values() if _live(entry, now))

    def clear(self) -> None:
        with self._lock:
            self.check_writable()
            self.engine.touch(self.data)
            self.engine.key_orders.pop(id(self.data), None)
            if self.engine.change_state:
                for entry in self.data.values():
                    self._log(entry[0], "delete")
            self.data.clear()

    def purge(self, now: float) -> int:
        with self._lock:
            self.check_writable()
            expired = [key for key, entry in self.data.items() if not _live(entry, now)]
            if expired:
                self.engine.touch(self.data)
            for key in expired:
                if self.engine.change_state:
                    self._log(self.data[key][0], "delete")
                del self.data[key]
            if expired:
                self.engine.key_orders.pop(id(self.data), None)
        self.expirations += len(expired)
        return len(expired)

    def sizes(self, now: float) -> tuple[int, int, int]:
        with self._lock:
            self.check()
            live = [e for e in self.data.values() if _live(e, now)]
            size = sum(len(e[1].encode("utf-8") if isinstance(e[1], str) else e[1]) for e in self.data.values())
            return len(live), size, len(self.data) - len(live)


class NullEngine(MemoryEngine):
    """``null://``: every call is validated as usual, nothing is kept, every read misses."""

    _NOTHING: dict[Any, _Entry] = {}  # every null collection's (always empty) entries

    def table(self, name: str, handle: Any, serializer: _serializers.Serializer) -> MemoryTable:
        return _NullTable(self, name, handle, serializer)

    def create(self, name: str, serializer: str) -> tuple[Any, str]:
        return self._NOTHING, serializer  # remembered nowhere

    def _after_rollback(self) -> None:
        return None  # nothing is registered, nothing to undo


class _NullTable(MemoryTable):
    def _write(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        return None
