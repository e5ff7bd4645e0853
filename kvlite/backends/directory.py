"""``kvlite.open("data/", layout="per-collection")``: one SQLite file per collection.

Like py-key-value's MultiDiskStore: each collection lives in its own kvlite
file inside the folder, so writers on different collections never wait for
each other (each file has its own write lock), and dropping a collection
deletes its file.

File names: the collection name, percent-encoded (UTF-8) so any name is a
safe file name, plus ``.kvlite``; a name whose encoded form would be too long
for a file system gets a hash-based file name instead.  Each file is an
ordinary kvlite store holding that one collection.  The folder's own files
(the lock, tombstones, files being made) start with a dot: never a
collection's file name.

Making a collection: its file is made under a temporary name
(``.<file name>-new-<random>``), with the collection registered in it and its
WAL checkpointed into it and closed, and only then moved to its file name (a
hard link, so a file another client made there meanwhile is never replaced:
that one is used; a rename where there are no hard links).  Nothing half made
is ever under a collection file name: ``collections()`` does not list a
collection before it is complete, and never opens a half-made file.

Dropping a collection is one step that a crash leaves either done or not
done.  Under the folder lock (below), the drop takes the file's write lock,
deletes the collection *inside* the file (so every connection that has the
file open sees it gone, and a call through an old collection object raises
:class:`~kvlite.errors.CollectionDropped`, as on a single-file store), and
before committing that, creates the file's tombstone ``.<file name>-dropped``:
that is the drop's atomic step.  From then on the collection is dropped: not
listed, ``serializer_of()`` is ``None``, its file is never opened as a
collection again.  Then ``-wal``, ``-shm`` and the file are deleted, and last
the tombstone.  No checkpoint is needed (nothing waits for a reader's
snapshot), and a WAL is only deleted once its file is dropped: the WAL of a
collection that is still there is never deleted.  (The file is not renamed to
a tombstone name instead: SQLite finds a file's WAL by the file's name, so the
renamed file would be cut off from its WAL.)  A crash before the tombstone
leaves the collection as it was (SQLite rolls the uncommitted delete back).  A
crash after it leaves a dropped collection whose files are deleted later: by
the next drop in the folder, by ``collection(name)`` (which finishes the drop
first, deleting the collection inside the file again while its WAL is there,
so that clients still holding the file see it gone, then makes the name
anew), or when the folder is next opened (if its lock is free at once).  With
``durability="full"`` the folder is also fsynced after the tombstone is made,
before it is removed, and after a new file is moved into place.

A folder lock (``.kvlite-folder.lock``, POSIX ``flock``) keeps drops apart
from anything that opens or makes a collection file: a drop waits for them and
they wait for the drop (up to ``timeout``, then
:class:`~kvlite.errors.StoreLocked`), so nobody opens a file half deleted or
picks up an old WAL, and leftovers of a crash are only removed while nobody
is making a file.  A store that had the old file open never writes into it
after the drop: a new connection (another thread) checks that the path still
is the file it opened and has no tombstone, and ``collection(name)`` opens the
new file when the name was made again.  The folder lock needs a local file
system with ``flock`` (Linux, macOS, BSD); elsewhere (Windows, some network
file systems) kvlite opens and drops without it.

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
from ..errors import (CollectionDropped, CorruptStore, KvliteError, NotSupported, ReadOnlyError, StoreClosed,
                      StoreLocked)
from ..names import validate_collection_name
from ..store import Store
from .base import store_stats, validate_settings

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
#: ``.<file name>-dropped``: the tombstone of a dropped collection's file, until the file is deleted.
_TOMBSTONE = "-dropped"
#: ``.<file name>-new-<random>``: a collection's file while it is made, before it is moved into place.
_NEW = "-new-"


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


def _tombstone(path: str) -> str:
    """The tombstone of the collection file at ``path``: while it exists, that file is dropped."""
    folder, base = os.path.split(path)
    return os.path.join(folder, "." + base + _TOMBSTONE)


def _is_collection_file(path: str) -> bool:
    """Whether a (complete) collection file is at ``path``, not dropped."""
    return os.path.exists(path) and not os.path.exists(_tombstone(path))


def _leftover(entry: str) -> tuple[str, str] | None:
    """``("tombstone", file name)`` or ``("new", file name)`` for a folder entry a drop or the making of
    collection file ``file name`` leaves while it runs (or after a crash cut it off); else ``None``."""
    if not entry.startswith("."):
        return None
    base, suffix, tail = entry[1:].partition(SUFFIX)  # an encoded name has no dot: the first is the suffix's
    if not base or not suffix:
        return None
    if tail == _TOMBSTONE:
        return "tombstone", base + SUFFIX
    if tail.startswith(_NEW):
        return "new", base + SUFFIX
    return None


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
    def hold(self, *, exclusive: bool, wait: bool = True) -> Iterator[bool]:
        """Hold the lock for the block; it yields whether it is held.  With ``wait=False`` the block
        runs without the lock (``False``) unless it is granted at once; else it waits up to the timeout."""
        held = getattr(self._held, "mode", None)
        if fcntl is None or held == "exclusive" or (held == "shared" and not exclusive):
            yield True  # no flock here, or this thread already holds enough of it
            return
        fd = self._open()
        if fd is None:
            yield True
            return
        try:
            if not self._acquire(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, wait):
                yield False
                return
            self._held.mode = "exclusive" if exclusive else "shared"
            try:
                yield True
            finally:
                self._held.mode = held
        finally:
            os.close(fd)  # releases the lock

    def _acquire(self, fd: int, mode: int, wait: bool) -> bool:
        deadline = time.monotonic() + self.timeout
        delay = 0.0005
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if not wait:
                    return False
            except OSError:  # a file system without flock: go on without it
                return True
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
        self._tombstone = _tombstone(path)
        super().__init__(path, **options)

    def _connect(self) -> Any:
        with self._folder_lock.hold(exclusive=False):
            if self._identity is not None and not self.is_current():
                raise _dropped(self.path)
            conn = super()._connect()
            if self._identity is None:
                self._identity = _identity(self.path)
            return conn

    def is_current(self) -> bool:
        """Whether the path still is the file this store opened (not dropped, not made again)."""
        return (self._identity is not None and _identity(self.path) == self._identity
                and not os.path.exists(self._tombstone))

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
        self.timeout = timeout = validate_settings(durability, timeout)
        self._options: dict[str, Any] = {"serializer": serializer, "durability": durability,
                                         "timeout": timeout, "clock": clock, "readonly": readonly}
        self._default_serializer = _serializers.get(serializer)
        self._clock = clock
        if not os.path.isdir(self.path):
            if readonly:
                raise ReadOnlyError(f"folder {self.path!r} does not exist and the store is read-only")
            os.makedirs(self.path, exist_ok=True)
        self._folder_lock = _FolderLock(self.path, timeout, readonly)
        self._stores: dict[str, _FileStore] = {}
        # Stores of dropped files, kept (by their old collection objects only) so those raise
        # "dropped" instead of StoreClosed; closed with the folder store.
        self._retired: weakref.WeakSet[_FileStore] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        if not readonly:
            self._clean_up()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    def _file(self, name: str) -> str:
        return os.path.join(self.path, file_name(name))

    def _store(self, name: str, *, create: bool,
               serializer: str | _serializers.Serializer | None = None) -> _FileStore | None:
        """The store of collection ``name``'s current file (the caller holds the folder lock).

        ``None`` when there is no file and ``create`` is false, or when the file is
        dropped but not deleted yet (a crash cut its drop off: see :meth:`_finish_drop`).
        With ``create`` a missing file is made, the collection in it (see :meth:`_make_file`).
        """
        self._check_open()
        path = self._file(name)
        with self._lock:
            store = self._stores.get(name)
            if store is not None and not store.closed and store.is_current():
                return store
            if store is not None:  # its file was dropped (maybe made again) by another client
                del self._stores[name]
                self._retired.add(store)
            if os.path.exists(_tombstone(path)):
                return None
            if not os.path.exists(path):
                if not create:
                    return None
                self._make_file(name, path, serializer)
            store = self._stores[name] = _FileStore(path, self._folder_lock, **self._options)
            return store

    def _make_file(self, name: str, path: str, serializer: str | _serializers.Serializer | None) -> None:
        """Make the file of collection ``name`` at ``path`` (the caller holds the folder lock shared).

        It is made complete under a temporary name that is no collection file name:
        migrated, the collection registered in it, and closed, which checkpoints its
        WAL into it and deletes the WAL.  Then it is hard-linked to ``path``, which
        never replaces a file another client made there meanwhile (that one is used).
        A crash meanwhile leaves only the temporary file, which the next drop in the
        folder (or the next opening of the folder) deletes.
        """
        folder, base = os.path.split(path)
        temp = os.path.join(folder, f".{base}{_NEW}{os.urandom(8).hex()}")
        try:
            with Store(temp, **self._options) as fresh:
                fresh.collection(name, serializer=serializer)
            wal = temp + "-wal"
            if os.path.exists(wal) and os.path.getsize(wal) > 0:  # never moved away from its WAL
                raise KvliteError(f"cannot make collection {name!r}: SQLite left its WAL {wal!r} on closing")
            try:
                os.link(temp, path)
            except FileExistsError:
                return  # made by another client meanwhile
            except OSError:  # a file system without hard links
                if os.path.exists(path):
                    return
                try:
                    os.rename(temp, path)  # (a small window: made meanwhile by another client, it is replaced)
                except FileExistsError:  # Windows: made meanwhile
                    return
            self._sync_folder()
        except OSError as exc:
            raise KvliteError(f"cannot make the file of collection {name!r} in {folder!r}: {exc}") from exc
        finally:
            for suffix in ("-wal", "-shm", "-journal", ""):
                with contextlib.suppress(OSError):
                    os.remove(temp + suffix)

    def _sync_folder(self) -> None:
        """With ``durability="full"``: ``fsync`` the folder, so that a file made, moved or deleted in it
        stays so after a power loss (skipped where a folder cannot be opened, as on Windows)."""
        if self.durability != "full":
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)

    def now(self) -> float:
        return self._clock()

    def collection(self, name: str, *, serializer: str | _serializers.Serializer | None = None,
                   model: type | None = None) -> Collection:
        """The collection ``name`` in its own file (created on first use)."""
        validate_collection_name(name)
        self._check_open()
        path = self._file(name)
        while True:
            with self._folder_lock.hold(exclusive=False):
                if self.readonly and not _is_collection_file(path):
                    raise ReadOnlyError(f"collection {name!r} does not exist and the store is read-only")
                store = self._store(name, create=True, serializer=serializer)
                if store is not None:
                    return store.collection(name, serializer=serializer, model=model)
            # The name's old file is dropped but not deleted (a crash cut the drop off): finish that
            # drop before the name is made anew.
            with self._folder_lock.hold(exclusive=True):
                if not self._finish_drop(path):
                    raise KvliteError(f"collection {name!r} cannot be made again yet: the file {path!r} of the "
                                      "dropped one could not be deleted")

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
            entries = sorted(os.listdir(self.path))
            present = set(entries)
            for entry in entries:
                if not entry.endswith(SUFFIX) or entry.startswith("."):
                    continue  # the folder's own files (lock, tombstones, files being made) start with a dot
                if "." + entry + _TOMBSTONE in present:
                    continue  # dropped; a crash cut the drop off before the file was deleted
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
            self._remove_leftovers()  # what crashes left, this name's cut-off drop too
            store = self._store(name, create=False)
            if store is None:
                return False
            if not store._conn().getautocommit():
                raise KvliteError(f"cannot drop collection {name!r} inside a transaction() block of "
                                  "its own file: the file is deleted, which cannot be rolled back")
            self._drop_in_file(store)
            with self._lock:
                if self._stores.get(name) is store:
                    del self._stores[name]
                    self._retired.add(store)  # its old collection objects now raise "dropped"
            self._bury(path)
        return True

    def _drop_in_file(self, store: _FileStore) -> None:
        """The drop's one step (the caller holds the folder lock exclusively): in one write
        transaction on the file, delete its collection, and create its tombstone before committing.

        The write lock is held from the delete to the commit, so no other client writes into the
        file between the tombstone and the commit.  A crash before the tombstone leaves the
        collection as it was (the delete is rolled back); after it, the collection is dropped
        (:meth:`_finish_drop` deletes it inside the file again if the commit did not happen).
        """
        tombstone = store._tombstone
        names: list[str] = []
        made = False
        try:
            with store.transaction():
                # First inside the file, like any write: every connection that has it open sees
                # the collection gone.
                names = store.collections()
                for name in names:
                    store.drop_collection(name)
                os.close(os.open(tombstone, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644))
                made = True
                self._sync_folder()
        except BaseException as exc:
            if made:
                try:
                    rolled_back = set(names) <= set(store.collections())
                except BaseException:  # noqa: BLE001 - unknown: the tombstone stands, the drop is done
                    rolled_back = False
                if rolled_back:  # the drop did not happen: nor does its tombstone
                    with contextlib.suppress(OSError):
                        os.remove(tombstone)
            if isinstance(exc, OSError):
                raise KvliteError(f"cannot drop the collection of {store.path!r}: {exc}") from exc
            raise

    def _bury(self, path: str) -> bool:
        """Delete the files of the dropped collection file ``path``: ``-wal``, ``-shm``, the file,
        and last its tombstone, which stays if a file could not be deleted (tried again later)."""
        try:
            for suffix in ("-wal", "-shm", ""):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path + suffix)
            self._sync_folder()  # the files are gone before their tombstone is
            with contextlib.suppress(FileNotFoundError):
                os.remove(_tombstone(path))
        except OSError:
            return False
        return True

    def _finish_drop(self, path: str) -> bool:
        """Finish the drop of the file ``path`` if its tombstone stands (the caller holds the folder
        lock exclusively); ``False`` if its files could not all be deleted.

        A crash cut the drop off: the collection is dropped, but the file may still hold it
        (when the crash came before the drop's commit), with a WAL and other processes'
        connections to it.  While its WAL is there the collection is deleted inside the file
        (again), so that they see it gone; then the files are deleted.
        """
        if not os.path.exists(_tombstone(path)):
            return True
        if os.path.exists(path) and os.path.exists(path + "-wal"):
            try:
                with Store(path, **self._options) as dropped:
                    for name in dropped.collections():
                        dropped.drop_collection(name)
            except CorruptStore:
                pass  # a damaged file: nobody can use it, it only goes
        return self._bury(path)

    def _remove_leftovers(self) -> None:
        """Finish the drops crashes cut off, and delete files a crash left half made (the caller
        holds the folder lock exclusively, so nobody is making one now).  Errors leave them for later."""
        for entry in os.listdir(self.path):
            leftover = _leftover(entry)
            if leftover is None:
                continue
            with contextlib.suppress(KvliteError, OSError):
                if leftover[0] == "tombstone":
                    self._finish_drop(os.path.join(self.path, leftover[1]))
                else:
                    os.remove(os.path.join(self.path, entry))

    def _clean_up(self) -> None:
        """On opening: remove what crashes left (see :meth:`_remove_leftovers`), if there is any and
        the folder lock is free at once (else a later drop does it)."""
        if not any(_leftover(entry) for entry in os.listdir(self.path)):
            return
        with self._folder_lock.hold(exclusive=True, wait=False) as held:
            if held:
                self._remove_leftovers()

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
