"""The engine protocol: what a storage engine implements under kvlite's one Store and Collection.

:class:`kvlite.Store` and :class:`kvlite.Collection` are written once, over
two small abstract classes declared here:

- :class:`Engine` -- the storage behind one store: its registry of
  collections, transactions and snapshots, and the :class:`Table` of each
  collection.  One per store.
- :class:`Table` -- one collection's entries: reads and writes with expiry,
  iteration, counts, and optionally query push-down and indexes.

Every engine (``backends/sqlite/``, ``directory.py``, ``memory.py``,
``redis.py``, ``postgres/``) subclasses both; nothing outside an engine touches
its internals, and no engine imports the Store, the Collection or the query
front-end.  The rules every engine shares live in leaf modules: keys in
:mod:`kvlite.keys`, TTLs in :mod:`kvlite.ttl`, collection names in
:mod:`kvlite.names`, encoding in :mod:`kvlite.serializers`.

What a Table's methods get and give (the *contract*):

- *keys* are normalised by :func:`kvlite.keys.normalize` (validated, and their
  base type: a ``StrEnum`` member arrives as ``str``) -- except that the hot
  paths (:meth:`Table.get`, :meth:`Table.put`, :meth:`Table.expiry`) may get a
  ``str`` not yet checked for being valid Unicode: an engine raises
  :class:`~kvlite.errors.InvalidKey` for one holding a lone surrogate
  (:func:`kvlite.keys.check_text`; SQLite does it when binding);
- *data* is a serializer's output (``str`` or ``bytes``), never decoded by the
  engine except through the ``decode`` function a method is given;
- ``now`` is the store's clock at the call; an entry whose expiry is at or
  before it does not exist for any read (:func:`kvlite.ttl.is_live`).  An
  engine that waits for a write lock reads the clock again once it holds it
  (and moves ``expires`` by the same amount): an entry that expired while the
  call waited is not treated as live (SQLite does; memory:// holds its lock);
- every call is atomic on its own; a Table raises
  :class:`~kvlite.errors.StoreClosed` once its engine is closed,
  :class:`~kvlite.errors.CollectionDropped` once its collection is dropped,
  and :class:`~kvlite.errors.ReadOnlyError` for a write to a read-only engine.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable, Iterator, Mapping

from .. import keys as _keys
from .. import serializers as _serializers
from ..errors import (
    CollectionDropped,
    InvalidBackupTarget,
    KvliteError,
    NotSupported,
    ReadOnlyError,
    StoreClosed,
)
from ..query import rfc9535 as _rfc
from ..query.matches import Tracker

__all__ = ["Engine", "Table", "MISSING", "KEEP", "entry_pairs", "validate_settings", "store_stats", "collection_stats",
           "sync_folder", "backup_folder",
           "STAT_COUNTERS"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Sentinel: "no entry" from a primitive, "no default given" in the public API.
MISSING: Any = _Missing()


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


class _Unselected(Exception):
    """Raised inside :meth:`Table.delete_where`'s check: the entry no longer matches."""


#: Sentinel ``expires`` of :meth:`Table.modify`: keep the live entry's expiry (a new entry never expires).
KEEP: Any = _Keep()


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




def sync_folder(folder: str) -> None:
    """Put a rename made in ``folder`` on disk (fsync of the folder; nothing where the system
    cannot open a folder)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder or ".", os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def backup_folder(path: str, source: str, kind: str) -> Iterator[str]:
    """For a backup that is a new folder at ``path``: the temporary folder to write it in,
    ``.NAME.<random>.tmp`` beside ``path``, renamed to ``path`` (and the rename synced) when the
    block ends, removed when it raises.  ``path`` must not exist, or be an empty folder (else
    :class:`~kvlite.errors.InvalidBackupTarget`, naming ``source`` and ``kind``)."""
    if os.path.exists(path) and not (os.path.isdir(path) and not os.listdir(path)):
        raise InvalidBackupTarget(f"cannot back up {source} to {path!r}: it exists ({kind} is a new folder)")
    parent, base = os.path.split(path)
    temp = os.path.join(parent, f".{base}.{uuid.uuid4().hex[:12]}.tmp")
    os.mkdir(temp)
    try:
        yield temp
        if os.path.isdir(path):
            os.rmdir(path)  # the empty folder that was there
        os.replace(temp, path)
        sync_folder(parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


class Engine(ABC):
    """The storage behind one :class:`kvlite.Store`: a registry of collections and their tables.

    An engine is made by :func:`kvlite.backends.open_engine` from what
    :func:`kvlite.open` was given, and is reached as ``store.engine``.  The
    Store validates every argument (names, serializers) before it calls one.

    Attributes every engine sets: ``url`` (how the store is named, secrets
    redacted), ``path`` (the file or folder for file engines, else ``url``),
    ``readonly``, ``durability``, ``timeout`` (seconds), and ``clock``.
    """

    #: Whether :meth:`transaction` makes several calls atomic (else it raises NotSupported).
    supports_transactions = False
    #: Whether tables can have secondary indexes (:meth:`Table.create_index`).
    supports_indexes = False

    url: str
    path: str
    readonly: bool
    durability: str
    timeout: float
    clock: Callable[[], float]

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time, readonly: bool = False,
                 durability: str = "normal", timeout: float = 30.0) -> None:
        self.timeout = validate_settings(durability, timeout)
        self.url = self.path = url
        self.clock = clock
        self.readonly = readonly
        self.durability = durability
        self.closed = False

    # -- the registry of collections --------------------------------------------------------

    @abstractmethod
    def lookup(self, name: str) -> tuple[Any, str] | None:
        """``(handle, serializer name)`` of the existing collection ``name``, else ``None``.

        A *handle* identifies this incarnation of the collection: after a drop, a new
        collection of the same name has another one (see :meth:`same_handle`)."""

    @abstractmethod
    def create(self, name: str, serializer: str) -> tuple[Any, str]:
        """Create collection ``name`` recording ``serializer``; when another client made it
        meanwhile, its ``(handle, serializer name)``."""

    @abstractmethod
    def names(self) -> list[str]:
        """Every collection name, oldest first."""

    @abstractmethod
    def drop(self, name: str) -> bool:
        """Delete collection ``name`` and its entries (``False``: there was none).  Every table
        made for it from then on raises :class:`~kvlite.errors.CollectionDropped`."""

    @abstractmethod
    def table(self, name: str, handle: Any, serializer: _serializers.Serializer) -> Table:
        """The :class:`Table` of the collection ``name`` that ``handle`` identifies."""

    def open_collection(self, name: str, serializer: str, known: Any = MISSING) -> tuple[Any, str]:
        """``(handle, serializer name)`` of collection ``name``, created with ``serializer``
        when it does not exist.  ``known`` is the handle of a table the caller already has:
        when it still names the collection, it may be returned without further checks."""
        found = self.lookup(name)
        if found is None:
            if self.readonly:
                raise ReadOnlyError("the store was opened read-only")
            found = self.create(name, serializer)
        return found

    def serializer_of(self, name: str) -> str | None:
        """The serializer name recorded for ``name`` (``None``: no such collection), reading
        no more than the registry."""
        found = self.lookup(name)
        return None if found is None else found[1]

    def same_handle(self, cached: Any, current: Any) -> bool:
        """Whether two handles name the same collection (not a newer one of that name)."""
        return bool(cached == current)

    def committed(self) -> bool:
        """Whether what this thread sees is committed: ``False`` inside a :meth:`transaction`
        block that could still roll back (a collection made there may vanish)."""
        return True

    # -- blocks ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """An atomic block across keys and collections (nested blocks roll back alone)."""
        raise NotSupported(f"{type(self).__name__} cannot make several operations atomic; "
                           "each single call (including the _many ones) is atomic on its own")
        yield  # pragma: no cover

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """A read-only block whose reads (in this thread) see one state of the store, where the
        engine has snapshots; elsewhere each call is its own snapshot."""
        return self.reading()

    def reading(self) -> contextlib.AbstractContextManager[None]:
        """One read snapshot for several reads (``get_many``, ``stats()``), where the engine
        has one; writes are not refused in it."""
        return contextlib.nullcontext()

    # -- the change log (optional) ------------------------------------------------------------

    def set_changes(self, name: str, handle: Any, enabled: bool, keep: int, max_age: float) -> None:
        """Turn collection ``name``'s change log on (with its retention: the last ``keep`` changes,
        and those younger than ``max_age`` seconds) or off, for every client of the store."""
        raise NotSupported(f"{type(self).__name__} keeps no change log: changes=True is not available")

    def changes_after(self, since: int, names: list[str] | None, limit: int) -> list[tuple[Any, ...]]:
        """Up to ``limit`` committed changes after seq ``since`` (of the collections ``names``, or
        all): ``(seq, collection, serializer name, key, op, data)`` in seq order, read in one
        snapshot with the check that the log still holds every change after ``since``
        (:class:`~kvlite.errors.ChangesTruncated` otherwise).  ``data`` is, for a put, the key's
        live data now (the latest, not a copy made by the change), else ``MISSING``."""
        raise NotSupported(f"{type(self).__name__} keeps no change log: changes() is not available")

    def last_change_seq(self, name: str | None = None) -> int:
        """The seq of the newest change recorded (0: none yet); ``name``: of that collection's log,
        for engines with one log per collection (the others ignore it)."""
        raise NotSupported(f"{type(self).__name__} keeps no change log: last_change_seq() is not available")

    def wait_for_changes(self, after: int, timeout: float, names: list[str] | None = None) -> None:
        """Return once a change after seq ``after`` (to the collections ``names``, or any) may have
        committed (by any client), or after ``timeout`` seconds: cheaply, without a busy loop."""
        raise NotSupported(f"{type(self).__name__} keeps no change log")

    def backup(self, path: str, progress: Callable[[int, int], None] | None) -> None:
        """A consistent copy of the whole store at ``path`` (checked by the Store), written under a
        temporary name and moved into place only when complete."""
        raise NotSupported(f"{type(self).__name__} cannot be backed up by kvlite; use the server's own tools")

    # -- the whole store ----------------------------------------------------------------------

    def purge_expired(self, now: float) -> dict[str, int]:
        """Delete the expired entries of every collection: how many, per collection name."""
        purged = {}
        for name in self.names():
            found = self.lookup(name)
            if found is not None:
                purged[name] = self.table(name, found[0], _serializers.stand_in(found[1])).purge(now)
        return purged

    def info(self) -> dict[str, Any]:
        """Facts about the storage (see :meth:`kvlite.Store.info`)."""
        raise NotSupported(f"{type(self).__name__} has no file facts to report; see stats()")

    def vacuum(self) -> None:
        """Give unused space back (see :meth:`kvlite.Store.vacuum`)."""
        raise NotSupported(f"{type(self).__name__} cannot be vacuumed by kvlite; use the server's own tools")

    def close(self) -> None:
        """Release connections; every later call raises :class:`~kvlite.errors.StoreClosed`.
        Called once."""
        self.closed = True

    def check_open(self) -> None:
        if self.closed:
            raise StoreClosed("the store is closed")

    def check_writable(self) -> None:
        self.check_open()
        if self.readonly:
            raise ReadOnlyError("the store was opened read-only")


class Table(ABC):
    """One collection's entries in an engine: the storage primitives of :class:`kvlite.Collection`.

    See the module docstring for what keys, data and ``now`` are.  The
    methods with a default here are optional: an engine overrides them when it
    can do better (one round trip for many keys, SQL for queries).
    """

    def __init__(self, engine: Engine, name: str, serializer: _serializers.Serializer) -> None:
        self.engine = engine
        self.name = name
        self.serializer = serializer
        #: Expired entries this table deleted (counted in ``Collection.stats()["expirations"]``).
        self.expirations = 0
        self.dropped = False

    # -- checks an engine without its own detection calls -------------------------------------

    def dropped_error(self) -> KvliteError:
        return CollectionDropped(f"the collection {self.name!r} was dropped (by this or another client); "
                                 "store.collection(name) gives the current one")

    def check(self) -> None:
        """Raise unless the engine is open and the collection not dropped."""
        self.engine.check_open()
        if self.dropped:
            raise self.dropped_error()

    def check_writable(self) -> None:
        self.engine.check_writable()
        if self.dropped:
            raise self.dropped_error()

    # -- single keys --------------------------------------------------------------------------

    @abstractmethod
    def get(self, key: Any) -> Any:
        """The data of the live entry ``key``, else ``MISSING`` (the engine reads the clock
        itself, and only when the entry can expire)."""

    @abstractmethod
    def entry(self, key: Any, now: float) -> tuple[Any, Any] | None:
        """``(stored key, data)`` of the live entry ``key``, else ``None``.  The stored key is
        the one first written: ``True`` when ``True`` was stored and ``1`` is asked for."""

    @abstractmethod
    def expiry(self, key: Any, now: float) -> Any:
        """The live entry's expiry time (``None``: never), else ``MISSING``."""

    @abstractmethod
    def put(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        """Insert or replace.  A live key keeps its place in the order and the key first stored
        (``True`` stays when ``1`` is written); an expired one counts as new (it moves last)."""

    @abstractmethod
    def delete(self, key: Any, now: float) -> bool:
        """Remove ``key``: whether a live entry was removed."""

    @abstractmethod
    def pop(self, key: Any, now: float, decode: Callable[[Any], Any]) -> Any:
        """Remove the live entry ``key`` and return ``decode(data)``, else ``MISSING``.
        When ``decode`` raises, nothing is removed."""

    @abstractmethod
    def popitem(self, now: float, decode: Callable[[Any], Any]) -> tuple[Any, Any] | None:
        """Remove the newest live entry: ``(key, decode(data))``, else ``None`` (as :meth:`pop`)."""

    @abstractmethod
    def setdefault(self, key: Any, default: Callable[[], Any], now: float, expires: float | None,
                   decode: Callable[[Any], Any]) -> Any:
        """Atomically: ``decode`` of the live entry's data, or store the data ``default()`` gives
        and return ``MISSING``.  ``default`` is called only when the key is missing (it may
        raise: then nothing is written)."""

    def modify(self, key: Any, change: Callable[[Any], tuple[Any, Any]], now: float,
               expires: Any = KEEP) -> Any:
        """Atomically read, change and write one entry: what ``incr`` and ``compare_and_set`` use.

        ``change(data)`` gets the live entry's data (``MISSING`` when the key is missing or
        expired) and returns ``(new data, result)``.  When the new data is ``MISSING`` nothing is
        written; otherwise it is written as :meth:`put` writes (a live key keeps its place and its
        first stored form; a missing or expired one is inserted last) with ``expires`` (``KEEP``:
        the live entry's own expiry, none for a new entry).  Returns ``result``.  No other write
        to the entry can come between the read and the write: a lock held from the read to the
        write (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's row and advisory locks, memory://'s
        lock) or an optimistic check (Redis: the write lands only if the entry is still the one
        read, else ``change`` runs again on the new one).  So ``change`` may be called more than
        once and must only compute; when it raises, nothing is written and the error propagates.

        This default runs the read and the write in :meth:`Engine.transaction`; an engine without
        transactions that does not override it raises :class:`~kvlite.errors.NotSupported`.
        """
        if not self.engine.supports_transactions:
            raise NotSupported(f"{type(self.engine).__name__} cannot read and write one entry atomically "
                               "(no transactions): incr() and compare_and_set() are not available")
        self.check_writable()
        with self.engine.transaction():
            found = self.entry(key, now)
            kept = MISSING if found is None or expires is not KEEP else self.expiry(key, now)
            new, result = change(MISSING if found is None else found[1])
            if new is not MISSING:
                if expires is KEEP:
                    expires = None if kept is MISSING else kept
                self.put(key, new, now, expires)
        return result

    # -- documents changed where they are ------------------------------------------------------

    def patch(self, key: Any, patch: str | None, change: Callable[[Any], tuple[Any, Any]], now: float) -> Any:
        """Apply a JSON merge patch (RFC 7396, :mod:`kvlite.merge_patch`) to the live entry ``key``
        atomically, keeping its expiry and place: the new data.

        ``change`` is the patch in Python, as :meth:`modify` takes it (``change(data)`` returns
        ``(new data, new data)``; for a missing key it raises ``KeyError`` or starts from
        ``{}``).  ``patch`` is the patch as JSON text when the engine may apply it in its own
        language instead (the collection stores plain JSON), else ``None``.  The default is
        :meth:`modify`; SQLite runs one ``UPDATE ... json_patch``."""
        return self.modify(key, change, now, KEEP)

    def _changing(self) -> contextlib.AbstractContextManager[None]:
        """The block a ``*_where`` call runs in: one transaction where the engine has them."""
        return self.engine.transaction() if self.engine.supports_transactions else contextlib.nullcontext()

    def matching(self, query: Any) -> Iterator[tuple[Any, Any]]:
        """``(key, document as stored)`` of each live document the RFC 9535 query ``$[?filter]``
        (or ``$[*]``) selects, in order: narrowed by :meth:`find` where the engine can, else
        every document checked in Python."""
        found = self.find("jsonpath", query, None, False, Tracker())
        if found is not None:
            return found
        expression = _rfc.plan(query).steps[0].filter
        return ((key, document) for key, document in self.items(False, None)
                if expression is None or _rfc.accepts(expression, document))

    def selected(self, query: Any) -> list[Any]:
        """The keys :meth:`matching` gives, read before anything is written."""
        return [key for key, _ in self.matching(query)]

    def _selects(self, query: Any) -> Callable[[Any], Any]:
        """For stored data: the document decoded if the query's filter selects it, else ``MISSING``
        (what a ``*_where`` call checks again on the entry it is about to change)."""
        expression = _rfc.plan(query).steps[0].filter

        def still(data: Any) -> Any:
            document = _serializers.decode(self.serializer, data)
            return document if expression is None or _rfc.accepts(expression, document) else MISSING

        return still

    def delete_where(self, query: Any, now: float) -> int:
        """Remove every live document the RFC 9535 query ``$[?filter]`` selects: how many.

        The default finds them (:meth:`selected`), then removes each with :meth:`pop`, which
        checks the filter again on the entry it removes (so a document changed meanwhile by
        another client is left alone when it no longer matches), all in one transaction where
        the engine has them.  SQLite runs one ``DELETE`` when SQL decides the filter exactly."""
        self.check_writable()
        still = self._selects(query)

        def check(data: Any) -> None:
            if still(data) is MISSING:
                raise _Unselected
            return None

        removed = 0
        with self._changing():
            for key in self.selected(query):
                try:
                    removed += self.pop(key, now, check) is not MISSING
                except _Unselected:
                    pass
        return removed

    def patch_where(self, query: Any, patch: str | None, change: Callable[[Any], Any], now: float) -> int:
        """Change every live document the RFC 9535 query ``$[?filter]`` selects to
        ``change(document)`` (new data), keeping expiries and places: how many.

        As :meth:`delete_where`: found first, then each changed with :meth:`modify` after the
        filter is checked again on the entry it changes; one transaction where the engine has
        them.  ``patch`` is the merge patch as JSON text when the engine may apply it in its own
        language (SQLite: one ``UPDATE ... json_patch`` when SQL decides the filter exactly)."""
        self.check_writable()
        still = self._selects(query)

        def apply(data: Any) -> tuple[Any, bool]:
            document = MISSING if data is MISSING else still(data)
            return (MISSING, False) if document is MISSING else (change(document), True)

        with self._changing():
            return sum(bool(self.modify(key, apply, now, KEEP)) for key in self.selected(query))

    def count_by(self, path: list[str | int], query: Any | None) -> list[tuple[str, Any, int, int]] | None:
        """Groups of the live documents (those ``query`` selects, if given) by the value at the
        singular query ``path``: ``(kind, value, count, position of the first one)`` with kind
        ``"json"`` for arrays and objects (``value`` as decoded; the front-end merges equal
        ones), when the engine can count in its own language; ``None``: the front-end counts
        the documents in Python."""
        return None

    # -- keys in key order ----------------------------------------------------------------------

    def key_range(self, keys: _keys.KeyRange, reverse: bool,
                  decode: Callable[[Any], Any] | None | bool) -> Iterator[Any]:
        """The live entries whose key lies in ``keys``, in key order (or reversed), served by an
        ordered index of keys: their keys when ``decode`` is ``False``, else ``(key,
        decode(data))`` (``None``: the serializer's decoding).  Read as :meth:`keys` (pages)."""
        raise NotSupported(f"{type(self.engine).__name__} keeps no ordered index of keys: keys(), "
                           "items() and values() with prefix, start or stop are not available")

    # -- many keys ----------------------------------------------------------------------------

    @abstractmethod
    def put_many(self, pairs: Iterable[Any], encode: Callable[[Any], Any], now: float,
                 expires: float | None) -> int:
        """Atomically :meth:`put` each ``(key, value)`` of ``pairs`` (as the user gave them:
        each key goes through :func:`kvlite.keys.normalize` or :func:`kvlite.keys.encode`, each
        value through ``encode``); all land or none.  How many pairs were written."""

    def get_many(self, keys: list[Any], now: float) -> list[Any]:
        """:meth:`get` of each key in one snapshot (``MISSING`` where none)."""
        self.check()  # also for no keys at all
        with self.engine.reading():
            return [self.get(key) for key in keys]

    def expiry_many(self, keys: list[Any], now: float) -> list[Any]:
        """:meth:`expiry` of each key in one snapshot."""
        self.check()
        with self.engine.reading():
            return [self.expiry(key, now) for key in keys]

    @abstractmethod
    def delete_many(self, keys: list[Any], now: float) -> int:
        """Atomically :meth:`delete` each key: how many live entries were removed."""

    # -- the whole collection -----------------------------------------------------------------

    @abstractmethod
    def keys(self, reverse: bool) -> Iterator[Any]:
        """Live keys in insertion order (or reversed), streaming: a key added during the
        iteration is not required to appear; none appears twice."""

    @abstractmethod
    def items(self, reverse: bool, decode: Callable[[Any], Any] | None) -> Iterator[tuple[Any, Any]]:
        """``(key, decode(data))`` of live entries as :meth:`keys`; ``decode=None`` is the
        serializer's own decoding (:func:`kvlite.serializers.decode`), which an engine may inline."""

    @abstractmethod
    def count(self, now: float) -> int:
        """The number of live entries."""

    @abstractmethod
    def clear(self) -> None:
        """Remove every entry."""

    @abstractmethod
    def purge(self, now: float) -> int:
        """Delete expired entries: how many (also added to :attr:`expirations`)."""

    @abstractmethod
    def sizes(self, now: float) -> tuple[int, int, int]:
        """``(live entries, bytes of stored data, expired entries not yet purged)``."""

    # -- queries and indexes (optional) -------------------------------------------------------

    def find(self, language: str, parsed: Any, order_by: str | None, desc: bool,
             tracker: Tracker, missing_last: bool = False) -> Iterator[tuple[Any, Any]] | None:
        """The matches of a query parsed by :mod:`kvlite.query` (``language`` is one of
        :data:`kvlite.query.ENGINES`), narrowed by the engine (SQL push-down) and re-checked in Python,
        as ``(key, plain value)``; or ``None``: the query front-end then evaluates it in Python
        over :meth:`items`.  ``order_by``, ``desc`` and ``missing_last`` are
        :meth:`Collection.find <kvlite.Collection.find>`'s.  Errors in ``order_by`` are raised at
        once, the rest on iteration."""
        return None

    def count_matches(self, language: str, parsed: Any) -> int | None:
        """The number of matches of a query when the engine can count them without reading the
        documents (the whole query decided in SQL: one ``COUNT``); ``None``: the front-end counts
        what :meth:`find` yields."""
        return None

    def explain(self, language: str, parsed: Any, order_by: str | None,
                desc: bool, missing_last: bool = False) -> tuple[list[dict[str, Any]], list[str]] | None:
        """``(steps, notes)`` of what :meth:`find` would do (``None``: it evaluates in Python)."""
        return None

    def create_index(self, path: str) -> str:
        raise NotSupported(f"{type(self.engine).__name__} has no secondary indexes; queries scan in Python")

    def drop_index(self, path: str) -> bool:
        raise NotSupported(f"{type(self.engine).__name__} has no secondary indexes")

    def indexes(self) -> list[str]:
        return []
