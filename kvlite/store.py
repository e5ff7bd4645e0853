"""The Store: one kvlite store over any engine, and :func:`open`, which makes one.

A Store is written once, over the :class:`~kvlite.backends.base.Engine` that
holds its data (an SQLite file by default; see :mod:`kvlite.backends` for
every target).  It validates arguments, keeps the collection objects it handed
out (so a dropped or re-created collection is never served stale), and sums
statistics; the engine stores.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from . import serializers as _serializers
from .backends.base import MISSING, Engine, collection_stats, store_stats
from .collection import ABSENT, Collection
from .changes import Change
from .errors import (
    CollectionDropped,
    CollectionNotFound,
    InvalidBackupTarget,
    InvalidValue,
    ReadOnlyError,
    SerializerMismatch,
    StoreClosed,
)
from .names import MAX_COLLECTION_NAME, validate_collection_name  # noqa: F401 - kvlite.store.MAX_COLLECTION_NAME was public

if TYPE_CHECKING:
    from .dictview import DictView

__all__ = ["Store", "open"]


#: Changes read per page by Store.changes().
_CHANGES_PAGE = 500
_DEFAULT_KEEP = 100_000
_DEFAULT_MAX_AGE = 7 * 86400.0


def _retention(keep: object, max_age: object) -> tuple[int, float]:
    """``(keep, max_age)`` of ``collection(changes=True, ...)``, checked (``None``: the default)."""
    keep = _DEFAULT_KEEP if keep is None else keep
    max_age = _DEFAULT_MAX_AGE if max_age is None else max_age
    if type(keep) is not int or keep < 1:
        raise ValueError(f"changes_keep must be an int >= 1, not {keep!r}")
    if isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or not 0 < max_age < float("inf"):
        raise ValueError(f"changes_max_age must be a finite number of seconds > 0, not {max_age!r}")
    return keep, float(max_age)


class Store:
    """A kvlite store: named collections of ``key -> value`` entries.  Use :func:`kvlite.open`.

    ``Store(target, ...)`` takes the same arguments as :func:`kvlite.open`, or an
    :class:`~kvlite.backends.base.Engine` already made.  Safe to share between
    threads; every engine but ``memory://``/``null://`` can also be opened from
    several processes at once.  Close it with :meth:`close` or a ``with``
    block; using it afterwards raises :class:`~kvlite.errors.StoreClosed`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Engine | Any = ":memory:",
        *,
        serializer: str | _serializers.Serializer = "json",
        durability: str = "normal",
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        readonly: bool = False,
        layout: str = "single",
    ) -> None:
        self._default_serializer = _serializers.get(serializer)
        if isinstance(path, Engine):
            engine = path
        else:
            from .backends import open_engine

            engine = open_engine(path, layout=layout, durability=durability, timeout=timeout, clock=clock,
                                 readonly=readonly)
        #: The :class:`~kvlite.backends.base.Engine` holding this store's data.
        self.engine = engine
        self._closed = False
        # Collection objects handed out, with the registry handle each was made for.
        self._collections: dict[tuple[str, type | None], tuple[Collection, Any]] = {}
        # The Stores of the engines inside this one's (see _owner_of), made on first use.
        self._inner: weakref.WeakKeyDictionary[Engine, Store] = weakref.WeakKeyDictionary()

    # -- facts --------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The file or folder of a file engine; the (redacted) URL of a server."""
        return self.engine.path

    @property
    def url(self) -> str:
        """How the store is named: its path, or its URL with any password redacted."""
        return self.engine.url

    @property
    def readonly(self) -> bool:
        return self.engine.readonly

    @property
    def durability(self) -> str:
        return self.engine.durability

    @property
    def timeout(self) -> float:
        return self.engine.timeout

    @property
    def supports_transactions(self) -> bool:
        """Whether :meth:`transaction` is atomic across keys and collections on this engine."""
        return self.engine.supports_transactions

    @property
    def closed(self) -> bool:
        """Whether the store (or the engine under it: a per-collection folder's file) is closed."""
        return self._closed or self.engine.closed

    def now(self) -> float:
        """The store's clock (``time.time`` unless ``clock=`` was given)."""
        return self.engine.clock()

    def _check_open(self) -> None:
        if self._closed or self.engine.closed:
            raise StoreClosed("the store is closed")

    # -- collections -----------------------------------------------------------------

    def collection(self, name: str, *, serializer: str | _serializers.Serializer | None = None,
                   model: type | None = None, changes: bool | None = None, changes_keep: int | None = None,
                   changes_max_age: float | None = None) -> Collection:
        """The collection ``name``, created on first use.

        ``serializer`` defaults to the store's.  A collection keeps the
        serializer it was created with: asking for another one raises
        :class:`~kvlite.errors.SerializerMismatch` (it is never decoded with
        the wrong one).  Names are any Unicode text (see
        :func:`kvlite.names.validate_collection_name`).

        ``model`` (a dataclass or a Pydantic model) makes a typed view of the
        collection: values are validated on the way in and come back as
        instances (see :mod:`kvlite.models`); the store keeps plain values.

        ``changes=True`` makes the collection record every change from now on, for every client
        of the store (see :meth:`changes`), keeping the last ``changes_keep`` changes (default
        100,000) and those younger than ``changes_max_age`` seconds (default a week);
        ``changes=False`` stops recording and drops its log; ``None`` (the default) leaves it as
        it is.  Supported on SQLite files, ``":memory:"``, per-collection folders (one log per
        collection file) and ``memory://``.

        The registry is read on every call: when another client dropped the
        collection (and maybe made a new one of that name), the object made for
        the old one is not handed out again.
        :raises ReadOnlyError: the collection does not exist and the store is read-only.
        :raises NotSupported: ``changes`` on an engine without a change log.
        """
        self._check_open()
        validate_collection_name(name)
        if changes is not None:
            keep, max_age = _retention(changes_keep, changes_max_age)
            coll = self.collection(name, serializer=serializer, model=model)
            if self.engine.readonly:
                raise ReadOnlyError("the store was opened read-only")
            found = self.engine.lookup(name)
            if found is None:
                raise CollectionDropped(f"the collection {name!r} was dropped (by another client)")
            self.engine.set_changes(name, found[0], bool(changes), keep, max_age)
            return coll
        if changes_keep is not None or changes_max_age is not None:
            raise ValueError("changes_keep and changes_max_age go with changes=True")
        wanted = self._default_serializer if serializer is None else _serializers.get(serializer)
        engine = self.engine
        cached = self._collections.get((name, model))
        known = MISSING if cached is None or cached[0]._table.dropped else cached[1]
        handle, stored = engine.open_collection(name, wanted.name, known)
        if known is not MISSING and engine.same_handle(known, handle):
            coll = cached[0]  # type: ignore[index]
            if coll.serializer.name != wanted.name:
                raise SerializerMismatch(name, coll.serializer.name, wanted.name)
            return coll
        if stored != wanted.name:
            raise SerializerMismatch(name, stored, wanted.name)
        table = engine.table(name, handle, wanted)
        coll = Collection(self._owner_of(table), name, table, wanted, model)
        if engine.committed():
            # Inside an open transaction the collection's creation may still be rolled back:
            # cache only what is committed, so a rollback never leaves a stale entry.
            self._collections[(name, model)] = (coll, handle)
        return coll

    def existing_collection(self, name: str, *, decode: bool = True) -> Collection | None:
        """The collection ``name`` if it exists, else ``None``: never creates it.

        It is opened with the serializer recorded for it (so it never raises
        :class:`~kvlite.errors.SerializerMismatch`; an unregistered one raises
        :class:`~kvlite.errors.UnknownSerializer`).  With ``decode=False`` its values are never
        decoded nor encoded, so any recorded serializer is accepted, even one this process does
        not know or must not run (``pickle`` of an untrusted file): the collection object
        carries a stand-in serializer with the recorded name, and can count entries, list keys,
        read TTLs, delete keys, purge expired entries and give :meth:`Collection.stats`; reading
        or writing a value raises :class:`~kvlite.errors.SerializationError`.  Such an object is
        not cached: ``collection(name)`` still gives the decoding one.

        :raises CorruptStore: the collection's storage is missing or not kvlite's (a damaged file).
        """
        self._check_open()
        validate_collection_name(name)
        recorded = self.engine.lookup(name)
        if recorded is None:
            return None
        handle, stored = recorded
        if decode:
            return self.collection(name, serializer=stored)
        stand_in = _serializers.stand_in(stored)
        table = self.engine.table(name, handle, stand_in)
        return Collection(self._owner_of(table), name, table, stand_in)

    def _owner_of(self, table: Any) -> Store:
        """The Store a collection object belongs to: this one, or, for an engine made of other
        engines (a per-collection folder: one SQLite engine per collection file), the Store of
        the table's own engine, so that ``collection.store.transaction()``, ``info()``,
        ``vacuum()`` and ``path`` are its file's, as documented."""
        if table.engine is self.engine:
            return self
        owner = self._inner.get(table.engine)
        if owner is None:
            owner = self._inner[table.engine] = Store(table.engine, serializer=self._default_serializer)
        return owner

    def collections(self) -> list[str]:
        """Names of every collection, oldest first (one snapshot)."""
        self._check_open()
        return self.engine.names()

    def serializer_of(self, name: str) -> str | None:
        """The serializer name recorded for collection ``name`` (``None`` if it does not exist).

        Reads only the registry: it never decodes a value."""
        self._check_open()
        return self.engine.serializer_of(validate_collection_name(name))

    def drop_collection(self, name: str) -> bool:
        """Delete the collection ``name`` and all its entries; ``False`` when there was none.

        Every collection object of it (in any client) raises
        :class:`~kvlite.errors.CollectionDropped` from then on."""
        self._check_open()
        if self.engine.readonly:
            raise ReadOnlyError("the store was opened read-only")
        validate_collection_name(name)
        dropped = self.engine.drop(name)
        if dropped and self.engine.committed():  # inside a transaction() block it may still roll back
            for cache_key in [k for k in list(self._collections) if k[0] == name]:
                stale = self._collections.pop(cache_key, None)
                if stale is not None:
                    stale[0]._table.dropped = True
        return dropped

    # -- blocks -----------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """Atomic block across keys and collections: all of it lands, or none.

        On SQLite the outermost block is ``BEGIN IMMEDIATE``: it takes the write
        lock at once (waiting up to ``timeout``), so reads inside it see a
        stable snapshot and a read-modify-write cannot lose an update.  A nested
        block is a savepoint: if it raises, only its own writes are undone and
        the exception propagates to the outer block.

        :raises NotSupported: the engine cannot make several calls atomic
            (``supports_transactions`` is false); each single call still is.
        """
        self._check_open()
        with self.engine.transaction():
            yield self

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Store]:
        """A block in which every read of this thread sees the store as it was when it began.

        Reads made in this thread inside the block (``collections()``, ``collection()``,
        ``get``, iteration, ``stats()``, ...) all see one committed state: a collection
        another process drops or creates meanwhile is seen as it was at the start.  Writes in
        it raise :class:`~kvlite.errors.ReadOnlyError` (a write would have to see the newest
        state).  Inside a ``transaction()`` block it is that block's own view.  Keep it short:
        on SQLite a snapshot held open stops the WAL from being checkpointed past it.

        Engines without snapshots (PostgreSQL, Redis) make each call its own snapshot;
        ``memory://`` holds its lock for the block.
        """
        self._check_open()
        with self.engine.snapshot():
            yield self

    # -- the whole store -------------------------------------------------------------

    def purge_expired(self) -> int:
        """Delete the expired entries of every collection; returns how many were deleted."""
        self._check_open()
        if self.engine.readonly:
            raise ReadOnlyError("the store was opened read-only")
        purged = self.engine.purge_expired(self.now())
        total = sum(purged.values())
        for (name, _), (coll, _) in list(self._collections.items()):  # stats(): credited to one open view
            if name in purged and not coll._table.dropped:
                coll._table.expirations += purged.pop(name)
        return total

    # -- the change feed and backups -----------------------------------------------------

    def changes(self, since: int = 0, *, collections: Iterable[str] | None = None, wait: bool = False,
                timeout: float | None = None) -> Iterator[Change]:
        """The committed changes after seq ``since``, in commit order, as :class:`kvlite.Change`
        records (``seq``, ``collection``, ``key``, ``op``, ``value``), of the collections that
        record them (``collection(name, changes=True)``), or only of ``collections``.

        Streams in pages.  Without ``wait`` it ends after the newest change; with ``wait=True``
        it then waits for new changes committed by any thread or process (polling cheaply,
        never spinning) and yields them as they come, ending once ``timeout`` seconds have
        passed without a new change (``None``: never).  Resume a follower with ``since=`` the
        last ``seq`` it handled; :meth:`last_change_seq` is where the log is now.  A change is seen only once
        its transaction committed: a rolled-back ``transaction()`` block leaves none.

        :raises InvalidValue: ``since`` is not an int >= 0, or ``timeout`` not a number >= 0.
        :raises CollectionNotFound: a name in ``collections`` is not a collection of the store.
        :raises ChangesTruncated: changes after ``since`` were already trimmed by the retention
            (raised where it is found, also in the middle of a long follow): resync.
        :raises NotSupported: the engine keeps no change log (PostgreSQL, Redis); a
            per-collection folder, which keeps one log per collection file (each with its own
            seqs), when ``collections`` does not name exactly one collection.
        """
        self._check_open()
        if type(since) is not int or since < 0:
            raise InvalidValue(f"since must be an int >= 0 (a Change.seq), not {since!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout >= 0):
            raise InvalidValue(f"timeout must be a number of seconds >= 0 or None, not {timeout!r}")
        names = None
        if collections is not None:
            if isinstance(collections, str):
                raise InvalidValue("collections is an iterable of names: use collections=[name]")
            names = [validate_collection_name(name) for name in collections]
            known = set(self.engine.names())
            missing = [name for name in names if name not in known]
            if missing:
                raise CollectionNotFound(f"no collection named {missing[0]!r}")
        self.engine.last_change_seq(names[0] if names and len(names) == 1 else None)  # NotSupported now
        return self._follow(since, names, wait, timeout)

    def _follow(self, since: int, names: list[str] | None, wait: bool,
                timeout: float | None) -> Iterator[Change]:
        engine = self.engine
        deadline = None if timeout is None else time.monotonic() + timeout
        decoders: dict[str, Callable[[Any], Any]] = {}
        while True:
            rows = engine.changes_after(since, names, _CHANGES_PAGE)
            for seq, collection, serializer, key, op, data in rows:
                value = ABSENT
                if data is not MISSING:
                    decode = decoders.get(serializer)
                    if decode is None:
                        decode = decoders[serializer] = functools.partial(_serializers.decode,
                                                                          _serializers.get(serializer))
                    value = decode(data)
                since = seq
                yield Change(seq, collection, key, op, value)
            if len(rows) == _CHANGES_PAGE:
                continue
            if not wait:
                return
            if rows and timeout is not None:
                deadline = time.monotonic() + timeout  # the timeout counts from the last change
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            engine.wait_for_changes(since, 1.0 if left is None else min(left, 1.0), names)
            self._check_open()

    def last_change_seq(self, collection: str | None = None) -> int:
        """The seq of the newest change recorded in the store (0: none yet): where a follower that
        has just copied the collections starts (``changes(since=store.last_change_seq())``).

        A per-collection folder keeps one log per collection file, each with its own seqs: there
        ``collection`` names the log (other engines have one log and ignore it).

        :raises NotSupported: the engine keeps no change log; a per-collection folder without
            ``collection``."""
        self._check_open()
        return self.engine.last_change_seq(None if collection is None else validate_collection_name(collection))

    def backup(self, path: str | os.PathLike[str], *, progress: Callable[[int, int], None] | None = None) -> None:
        """Write a consistent copy of the whole store to ``path`` while other threads and
        processes go on writing.

        SQLite file: the online backup API reading one snapshot (the store as it was when the
        backup began; writers are not blocked), into a temporary file beside ``path``, moved over
        ``path`` (replacing a file there) only once complete and synced to disk: a crash or kill
        leaves no partial file at ``path``.  The copy opens as a normal kvlite store.
        ``progress(done, total)`` is called with page counts as the copy goes.

        ``":memory:"`` is saved the same way (to a file that opens as a normal store).  A
        per-collection folder is backed up to a new folder (``path`` must not exist, or be an
        empty folder) holding a copy of each collection file, each consistent on its own.

        :raises InvalidBackupTarget: the folder of ``path`` does not exist, ``path`` is the store
            itself, or (per-collection folder) ``path`` exists and is not an empty folder.
        :raises NotSupported: ``memory://``, PostgreSQL and Redis (use the server's own tools:
            ``pg_dump``, ``redis-cli --rdb``).
        """
        self._check_open()
        target = os.path.abspath(os.fspath(path))
        folder = os.path.dirname(target)
        if not os.path.isdir(folder):
            raise InvalidBackupTarget(f"cannot back up to {os.fspath(path)!r}: folder {folder!r} does not exist")
        own = os.path.abspath(self.engine.path) if "://" not in self.engine.path else None
        if own is not None and (target == own or (os.path.exists(target) and os.path.samefile(target, own))):
            raise InvalidBackupTarget(f"cannot back up {self.path!r} onto itself")
        self.engine.backup(target, progress)

    def stats(self) -> dict[str, Any]:
        """Per-collection :meth:`Collection.stats` plus totals.

        Operation counters count the operations made through this ``Store``
        object; rows and bytes are read from the storage, in one read snapshot where
        the engine has one: a collection dropped by another client before it began is
        not in the result, one dropped while it runs is counted as it was.
        """
        self._check_open()
        engine = self.engine
        per = {}
        with engine.reading():
            for name in engine.names():
                recorded = engine.lookup(name)
                # Only the open objects of the collection as it is now: another client may have
                # dropped it and made it again.
                opened = [coll for (n, _), (coll, handle) in list(self._collections.items())
                          if n == name and not coll._table.dropped and recorded is not None
                          and engine.same_handle(handle, recorded[0])]
                info = collection_stats(opened, recorded, lambda handle, serializer, name=name: Collection(
                    self, name, engine.table(name, handle, serializer), serializer))
                if info is not None:
                    per[name] = info
        return store_stats(self.path, per)

    def info(self) -> dict[str, Any]:
        """Facts about the file (SQLite engines), read in one snapshot: ``path``; ``size`` and
        ``wal_size`` (bytes on disk; 0 for ``":memory:"``); ``schema_version``;
        ``created_by`` (the kvlite version that made the file, or ``None``); ``page_size``,
        ``pages`` and ``free_pages`` (pages a :meth:`vacuum` would give back); ``journal_mode``.

        :raises CorruptStore: a table kvlite needs is missing (a damaged file, or not a kvlite store).
        :raises NotSupported: the engine is not a single SQLite file.
        """
        self._check_open()
        return self.engine.info()

    def vacuum(self) -> None:
        """Compact the file: rebuild it without free pages (SQLite ``VACUUM``) and fold the WAL
        into it.  Every entry, TTL and index is kept.  Needs free disk space about the size of
        the file, and the write lock (it waits for other writers up to ``timeout``).

        :raises ReadOnlyError: the store was opened read-only, or a :meth:`snapshot` block is open.
        :raises NotSupported: inside a :meth:`transaction` block, or on an engine that is not a
            single SQLite file.
        """
        self._check_open()
        self.engine.vacuum()

    # -- life cycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the store and its engine's connections.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.engine.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"serializer={self._default_serializer.name!r}"
        return f"<kvlite.Store {self.url!r} {state}>"

    # Last in the class: a method named dict would hide the builtin in the annotations below it.
    def dict(self, name: str, *, serializer: str | _serializers.Serializer | None = None,
             model: type | None = None) -> DictView:
        """Shortcut for ``store.collection(name, serializer=..., model=...).dict()``."""
        return self.collection(name, serializer=serializer, model=model).dict()


def open(  # noqa: A001 - kvlite.open is the entry point, like shelve.open
    path: str | os.PathLike[str] | Engine | Any = ":memory:",
    *,
    serializer: str | _serializers.Serializer = "json",
    durability: str = "normal",
    timeout: float = 30.0,
    clock: Callable[[], float] = time.time,
    readonly: bool = False,
    layout: str = "single",
) -> Store:
    """Open (or create) the kvlite store at ``path``: a file, ``":memory:"``, or a URL.

    ``path`` is a file name (or ``"sqlite:///file"``), ``":memory:"`` for a
    private in-memory SQLite database, ``"memory://"`` (pure Python),
    ``"null://"``, ``"lmdb://folder"`` (LMDB), ``"postgresql://..."`` or
    ``"redis://..."``/``"valkey://..."``, or a py-key-value ``AsyncKeyValue`` store object
    (see :mod:`kvlite.backends`).  Every kind gives a :class:`Store` with the same API; what
    each engine supports is in ``docs/stores.md``.

    :param serializer: default serializer for collections (``"json"``,
        ``"pickle"``, ``"msgpack"``, ``"cbor2"``, a registered name, or a
        :class:`~kvlite.Serializer`).
    :param durability: ``"normal"`` (WAL, ``synchronous=NORMAL``: a commit
        survives a crash of the process; a power loss may undo the last
        commits) or ``"full"`` (``synchronous=FULL``: a commit survives power
        loss too, at the cost of an fsync per commit).
    :param timeout: seconds a write waits for another writer before
        :class:`~kvlite.errors.StoreLocked`.
    :param clock: the time source for TTLs (seconds, like ``time.time``).
    :param readonly: open without write access; writes raise
        :class:`~kvlite.errors.ReadOnlyError`.
    :param layout: ``"single"`` (one file) or ``"per-collection"`` (``path``
        is a folder with one SQLite file per collection).
    :raises CorruptStore: the file is not SQLite, not kvlite, or damaged.
    :raises IncompatibleVersion: the file was made by a newer kvlite.
    """
    return Store(path, serializer=serializer, durability=durability, timeout=timeout, clock=clock,
                 readonly=readonly, layout=layout)
