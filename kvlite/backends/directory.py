"""``kvlite.open("data/", layout="per-collection")``: one SQLite file per collection.

Like py-key-value's MultiDiskStore: each collection lives in its own kvlite
file inside the folder, so writers on different collections never wait for
each other (each file has its own write lock), and dropping a collection
deletes its file.

File names: the collection name, percent-encoded (UTF-8) so any name is a
safe file name, plus ``.kvlite``; a name whose encoded form would be too long
for a file system gets a hash-based file name instead.  Each file is an
ordinary kvlite store holding that one collection.

Dropping a collection that other stores (threads, processes) have open is
safe: the drop first deletes the collection *inside* its file, in a write
transaction like any other (so every connection that has the file open sees
it gone, and a call through an old collection object raises
:class:`~kvlite.errors.CollectionDropped`, as on a
single-file store), checkpoints the WAL into the file, and only then deletes
the files: ``-wal``, ``-shm``, then the ``.kvlite`` file.  A folder lock
(``.kvlite-folder.lock``, POSIX ``flock``) keeps the drop apart from anything
that opens a collection file: a drop waits for them and they wait for the drop
(up to ``timeout``, then :class:`~kvlite.errors.StoreLocked`), so nobody opens
a file half deleted or picks up an old WAL.  A store that had the old file
open never writes into it after the drop: a new connection (another thread)
checks that the path still is the file it opened, and ``collection(name)``
opens the new file when the name was made again.  The folder lock needs a
local file system with ``flock`` (Linux, macOS, BSD); elsewhere (Windows, some
network file systems) kvlite opens and drops without it.

What differs from a single-file store: ``transaction()`` on the folder raises
:class:`~kvlite.errors.NotSupported` (a transaction cannot span files); use
``collection.store.transaction()`` for atomic work inside one collection.
``collections()`` lists names in file-name order.  See docs/backends/embedded.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import string
import threading
import time
import urllib.parse
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .. import serializers as _serializers
from ..errors import CollectionDropped, KvliteError, NotSupported, ReadOnlyError, StoreClosed, StoreLocked
from ..store import Store, store_stats, validate_collection_name

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from ..collection import Collection
    from ..dictview import DictView

__all__ = ["DirectoryStore", "LOCK_FILE", "SUFFIX", "file_name"]

SUFFIX = ".kvlite"
#: The folder lock (not a collection: it does not end in ``.kvlite``).
LOCK_FILE = ".kvlite-folder.lock"
_MAX_ENCODED = 180


_PLAIN = frozenset(string.ascii_lowercase + string.digits + "-_")


def file_name(name: str) -> str:
    """The file name for collection ``name``.

    Every character but ``a-z``, ``0-9``, ``-`` and ``_`` is percent-encoded
    (its UTF-8 bytes), upper-case letters included, so two names never share a
    file on a case-insensitive file system, and no name is hidden, ``.`` or ``..``.
    """
    encoded = "".join(ch if ch in _PLAIN else "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
                      for ch in name)
    if len(encoded) > _MAX_ENCODED:
        encoded = "~" + hashlib.sha256(name.encode("utf-8")).hexdigest()
    return encoded + SUFFIX


def _identity(path: str) -> tuple[int, int] | None:
    """``(device, inode)`` of the file at ``path`` (``None``: there is none)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class _FolderLock:
    """``flock`` on the folder's lock file: shared while a file is opened, exclusive while one is
    deleted.  Each hold opens the lock file anew, so threads of one process exclude each other too."""

    def __init__(self, folder: str, timeout: float, readonly: bool) -> None:
        self.path = os.path.join(folder, LOCK_FILE)
        self.timeout = timeout
        self.readonly = readonly
        self._held = threading.local()  # what this thread holds: nested holds inside it are free

    def _open(self) -> int | None:
        cloexec = getattr(os, "O_CLOEXEC", 0)
        if not self.readonly:
            with contextlib.suppress(OSError):
                return os.open(self.path, os.O_RDWR | os.O_CREAT | cloexec, 0o644)
        try:
            return os.open(self.path, os.O_RDONLY | cloexec)
        except OSError:
            return None  # a read-only folder nobody wrote to: nothing can be dropped in it by kvlite

    @contextlib.contextmanager
    def hold(self, *, exclusive: bool) -> Iterator[None]:
        held = getattr(self._held, "mode", None)
        if fcntl is None or held == "exclusive" or (held == "shared" and not exclusive):
            yield  # no flock here, or this thread already holds enough of it
            return
        fd = self._open()
        if fd is None:
            yield
            return
        try:
            self._acquire(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            self._held.mode = "exclusive" if exclusive else "shared"
            try:
                yield
            finally:
                self._held.mode = held
        finally:
            os.close(fd)  # releases the lock

    def _acquire(self, fd: int, mode: int) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.0005
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            except OSError:  # a file system without flock: go on without it
                return
            if time.monotonic() >= deadline:
                what = "dropping a collection" if mode & fcntl.LOCK_EX else "opening a collection file"
                raise StoreLocked(f"{what} in {os.path.dirname(self.path)!r}: the folder lock was not "
                                  "granted within the timeout (another client is dropping a collection, "
                                  "or opening one while this one drops)")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _dropped(path: str) -> KvliteError:
    return CollectionDropped(f"the collection was dropped (by this or another client): its file {path!r} "
                             "was deleted; store.collection(name) gives the current one")


class _FileStore(Store):
    """The kvlite store in one collection file: every connection is to the file first opened.

    SQLite opens a path; after a drop the path is gone (or is a new file), and a
    new connection (a new thread) of a store that had the old file open must not
    create or open that one.  The old file cannot be freed (so its inode cannot be
    reused) while the store lives: the store always keeps one connection open.
    """

    def __init__(self, path: str, folder_lock: _FolderLock, **options: Any) -> None:
        self._folder_lock = folder_lock
        self._identity: tuple[int, int] | None = None
        super().__init__(path, **options)

    def _connect(self) -> Any:
        with self._folder_lock.hold(exclusive=False):
            if self._identity is not None and _identity(self.path) != self._identity:
                raise _dropped(self.path)
            conn = super()._connect()
            if self._identity is None:
                self._identity = _identity(self.path)
            return conn

    def is_current(self) -> bool:
        """Whether the path still is the file this store opened (not dropped, not made again)."""
        return self._identity is not None and _identity(self.path) == self._identity

    def collection(self, name: str, **options: Any) -> Collection:
        # Through collection.store too: never make a collection again in a dropped file.
        with self._folder_lock.hold(exclusive=False):
            if not self.is_current():
                raise _dropped(self.path)
            return super().collection(name, **options)


class DirectoryStore:
    """A folder of kvlite files, one per collection (the ``per-collection`` layout)."""

    #: ``transaction()`` cannot span collections (files); see :meth:`transaction`.
    supports_transactions = False

    def __init__(self, path: str | os.PathLike[str], *, serializer: str | _serializers.Serializer = "json",
                 durability: str = "normal", timeout: float = 30.0, clock: Callable[[], float] = time.time,
                 readonly: bool = False) -> None:
        self.path = self.url = os.fspath(path)
        self.readonly = readonly
        self.durability = durability
        self.timeout = timeout
        self._options: dict[str, Any] = {"serializer": serializer, "durability": durability,
                                         "timeout": timeout, "clock": clock, "readonly": readonly}
        self._default_serializer = _serializers.get(serializer)
        self._clock = clock
        if not os.path.isdir(self.path):
            if readonly:
                raise ReadOnlyError(f"folder {self.path!r} does not exist and the store is read-only")
            os.makedirs(self.path, exist_ok=True)
        timeout_seconds = float(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else 0.0
        self._folder_lock = _FolderLock(self.path, timeout_seconds, readonly)
        self._stores: dict[str, _FileStore] = {}
        # Stores of dropped files, kept (by their old collection objects only) so those raise
        # "dropped" instead of StoreClosed; closed with the folder store.
        self._retired: weakref.WeakSet[_FileStore] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    def _file(self, name: str) -> str:
        return os.path.join(self.path, file_name(name))

    def _store(self, name: str, *, create: bool) -> _FileStore | None:
        """The store of collection ``name``'s current file (the caller holds the folder lock);
        ``None`` when there is no file and ``create`` is false."""
        self._check_open()
        path = self._file(name)
        with self._lock:
            store = self._stores.get(name)
            if store is not None and not store.closed and store.is_current():
                return store
            if store is not None:  # its file was dropped (maybe made again) by another client
                del self._stores[name]
                self._retired.add(store)
            if not create and not os.path.exists(path):
                return None
            store = self._stores[name] = _FileStore(path, self._folder_lock, **self._options)
            return store

    def now(self) -> float:
        return self._clock()

    def collection(self, name: str, *, serializer: str | _serializers.Serializer | None = None,
                   model: type | None = None) -> Collection:
        """The collection ``name`` in its own file (created on first use)."""
        validate_collection_name(name)
        self._check_open()
        with self._folder_lock.hold(exclusive=False):
            if self.readonly and not os.path.exists(self._file(name)):
                raise ReadOnlyError(f"collection {name!r} does not exist and the store is read-only")
            store = self._store(name, create=True)
            assert store is not None
            return store.collection(name, serializer=serializer, model=model)

    def serializer_of(self, name: str) -> str | None:
        """The serializer recorded for collection ``name`` (``None`` if it does not exist)."""
        validate_collection_name(name)
        self._check_open()
        with self._folder_lock.hold(exclusive=False):
            store = self._store(name, create=False)
            return None if store is None else store.serializer_of(name)

    def collections(self) -> list[str]:
        """Every collection in the folder, in file-name order."""
        self._check_open()
        names = []
        with self._folder_lock.hold(exclusive=False):
            for entry in sorted(os.listdir(self.path)):
                if not entry.endswith(SUFFIX):
                    continue
                stem = entry[: -len(SUFFIX)]
                if stem.startswith("~"):
                    with Store(os.path.join(self.path, entry), readonly=True) as store:
                        names.extend(store.collections())
                else:
                    names.append(urllib.parse.unquote(stem))
        return names

    def drop_collection(self, name: str) -> bool:
        """Delete the collection and its file; ``False`` if there was none (see the module doc)."""
        self._check_open()
        validate_collection_name(name)
        if self.readonly:
            raise ReadOnlyError("the store was opened read-only")
        path = self._file(name)
        with self._folder_lock.hold(exclusive=True):
            store = self._store(name, create=False)
            if store is not None:
                if not store._conn().getautocommit():
                    raise KvliteError(f"cannot drop collection {name!r} inside a transaction() block of "
                                      "its own file: the file is deleted, which cannot be rolled back")
                # First inside the file, like any write: every connection that has it open sees the
                # collection gone.  Then the WAL goes into the file, so deleting -wal first loses nothing.
                store.drop_collection(name)
                with contextlib.suppress(Exception):
                    store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            existed = os.path.exists(path)
            for suffix in ("-wal", "-shm", ""):  # never a WAL left next to a missing (or new) file
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path + suffix)
            with self._lock:
                if store is not None and self._stores.get(name) is store:
                    del self._stores[name]
                    self._retired.add(store)  # its old collection objects now raise "dropped"
        return existed

    def dict(self, name: str, *, serializer: str | _serializers.Serializer | None = None,
             model: type | None = None) -> DictView:
        return self.collection(name, serializer=serializer, model=model).dict()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[DirectoryStore]:
        raise NotSupported("a transaction cannot span the files of a per-collection store; "
                           "use collection.store.transaction() for one collection")
        yield self  # pragma: no cover

    @contextlib.contextmanager
    def _read_snapshot(self) -> Iterator[None]:
        yield  # each collection is its own file: reads go through collection.store

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[DirectoryStore]:
        """No snapshot spans the files of a folder: each collection's reads are their own
        (``collection.store.snapshot()`` gives one within a collection)."""
        yield self

    def _each_store(self) -> Iterator[_FileStore]:
        for name in self.collections():
            with self._folder_lock.hold(exclusive=False):
                store = self._store(name, create=False)
            if store is not None:
                yield store

    def purge_expired(self) -> int:
        return sum(store.purge_expired() for store in self._each_store())

    def stats(self) -> dict[str, Any]:
        per = {}
        for store in self._each_store():
            per.update(store.stats()["collections"])
        return store_stats(self.path, per)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        with self._lock:
            stores, self._stores = [*self._stores.values(), *self._retired], {}
            self._retired = weakref.WeakSet()
        for store in stores:
            store.close()

    def __enter__(self) -> DirectoryStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<kvlite.DirectoryStore {self.path!r}{' closed' if self._closed else ''}>"
