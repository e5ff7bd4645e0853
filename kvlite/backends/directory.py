"""``kvlite.open("data/", layout="per-collection")``: one SQLite file per collection.

Like py-key-value's MultiDiskStore: each collection lives in its own kvlite
file inside the folder, so writers on different collections never wait for
each other (each file has its own write lock), and dropping a collection
deletes its file.

:class:`DirectoryEngine` is the folder; each collection file it opens gets an
SQLite engine of its own (``_FileEngine``, an
:class:`~kvlite.backends.sqlite.SQLiteEngine` that only ever connects to the
file it first opened), and a collection's table is that engine's table.  A
collection's handle is its file's engine with its table id: a file dropped and
made again gets a new engine, so a collection object made for the old file is
never handed out for the new one.

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
:class:`~kvlite.errors.NotSupported` (a transaction cannot span files); each
single call, the ``_many`` ones included, is atomic on its own.  ``snapshot()``
is no snapshot across files (each call reads its own), and ``info()`` and
``vacuum()`` raise :class:`~kvlite.errors.NotSupported` (there is no one file).
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
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from .. import serializers as _serializers
from ..errors import (
    CollectionDropped,
    CorruptStore,
    KvliteError,
    NotSupported,
    ReadOnlyError,
    StoreLocked,
)
from .base import MISSING, Engine, backup_folder
from .sqlite import SQLiteEngine
from .sqlite.table import SQLiteTable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "SUFFIX", "DirectoryEngine", "file_name"]

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


class _FileEngine(SQLiteEngine):
    """The SQLite engine of one collection file: every connection is to the file first opened.

    SQLite opens a path; after a drop the path is gone (or is a new file), and a
    new connection (a new thread) of an engine that had the old file open must not
    create or open that one.  The old file cannot be freed (so its inode cannot be
    reused) while the engine lives: one connection to it is always open until
    :meth:`close` (SQLiteEngine makes a thread's new connection before it closes
    those of threads that have ended).
    """

    #: A collection dropped and made again is a new file: its log starts past the old one's seqs.
    change_origin = True

    def __init__(self, path: str, folder_lock: _FolderLock, **options: Any) -> None:
        self._folder_lock = folder_lock
        self._identity: tuple[int, int] | None = None
        self.tombstone = _tombstone(path)
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
        """Whether the path still is the file this engine opened (not dropped, not made again)."""
        return (self._identity is not None and _identity(self.path) == self._identity
                and not os.path.exists(self.tombstone))

    def open_collection(self, name: str, serializer: str, known: Any = MISSING) -> tuple[int, str]:
        # Never make a collection again in a dropped file, whoever asks.
        with self._folder_lock.hold(exclusive=False):
            if not self.is_current():
                raise _dropped(self.path)
            return super().open_collection(name, serializer, known)

    def create(self, name: str, serializer: str) -> tuple[int, str]:
        with self._folder_lock.hold(exclusive=False):
            if not self.is_current():
                raise _dropped(self.path)
            return super().create(name, serializer)


class _Handle(NamedTuple):
    """A collection of the folder as this engine knows it: the engine of its file, and its table
    in that file.  A file dropped and made again has a new engine, so a new handle."""

    file: _FileEngine
    table_id: int


class DirectoryEngine(Engine):
    """A folder of kvlite files, one per collection (the ``per-collection`` layout).

    ``transaction()`` raises :class:`~kvlite.errors.NotSupported`: a transaction cannot
    span the files of a folder.
    """

    #: ``transaction()`` cannot span collections (files); see :meth:`transaction`.
    supports_transactions = False
    #: Each collection is an SQLite file of its own, with its indexes.
    supports_indexes = True

    def __init__(self, path: str | os.PathLike[str], *, durability: str = "normal", timeout: float = 30.0,
                 clock: Callable[[], float] = time.time, readonly: bool = False) -> None:
        # The settings are checked (by Engine) before the folder is made.
        super().__init__(os.fspath(path), clock=clock, readonly=readonly, durability=durability, timeout=timeout)
        self._options: dict[str, Any] = {"durability": durability, "timeout": self.timeout, "clock": clock,
                                         "readonly": readonly}
        if not os.path.isdir(self.path):
            if readonly:
                raise ReadOnlyError(f"folder {self.path!r} does not exist and the store is read-only")
            os.makedirs(self.path, exist_ok=True)
        self._folder_lock = _FolderLock(self.path, self.timeout, readonly)
        self._engines: dict[str, _FileEngine] = {}
        # Engines of dropped files, kept (by their old collection objects only) so those raise
        # "dropped" instead of StoreClosed; closed with the folder's engine.
        self._retired: weakref.WeakSet[_FileEngine] = weakref.WeakSet()
        self._lock = threading.Lock()
        if not readonly:
            self._clean_up()

    def _file(self, name: str) -> str:
        return os.path.join(self.path, file_name(name))

    def _engine(self, name: str, *, make_with: str | None = None) -> _FileEngine | None:
        """The engine of collection ``name``'s current file (the caller holds the folder lock).

        ``None`` when there is no file and ``make_with`` is ``None``, or when the file is
        dropped but not deleted yet (a crash cut its drop off: see :meth:`_finish_drop`).
        With ``make_with`` (a serializer name) a missing file is made, the collection in it
        recording that serializer (see :meth:`_make_file`).
        """
        self.check_open()
        path = self._file(name)
        with self._lock:
            engine = self._engines.get(name)
            if engine is not None and not engine.closed and engine.is_current():
                return engine
            if engine is not None:  # its file was dropped (maybe made again) by another client
                del self._engines[name]
                self._retired.add(engine)
            if os.path.exists(_tombstone(path)):
                return None
            if not os.path.exists(path):
                if make_with is None:
                    return None
                self._make_file(name, path, make_with)
            engine = self._engines[name] = _FileEngine(path, self._folder_lock, **self._options)
            return engine

    def _make_file(self, name: str, path: str, serializer: str) -> None:
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
            fresh = SQLiteEngine(temp, **self._options)
            try:
                fresh.create(name, serializer)
            finally:
                fresh.close()
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

    # -- the registry of collections: the folder's files -------------------------------------

    def lookup(self, name: str) -> tuple[_Handle, str] | None:
        """The collection in ``name``'s current file (``None``: no file, or a dropped one)."""
        with self._folder_lock.hold(exclusive=False):
            engine = self._engine(name)
            found = None if engine is None else engine.lookup(name)
        if engine is None or found is None:
            return None
        return _Handle(engine, found[0]), found[1]

    def open_collection(self, name: str, serializer: str, known: Any = MISSING) -> tuple[_Handle, str]:
        """The collection in ``name``'s own file, made (file and collection) when there is none."""
        path = self._file(name)
        while True:
            with self._folder_lock.hold(exclusive=False):
                if self.readonly and not _is_collection_file(path):
                    raise ReadOnlyError(f"collection {name!r} does not exist and the store is read-only")
                engine = self._engine(name, make_with=serializer)
                if engine is not None:
                    same_file = isinstance(known, _Handle) and known.file is engine
                    table_id, stored = engine.open_collection(name, serializer,
                                                              known.table_id if same_file else MISSING)
                    return _Handle(engine, table_id), stored
            # The name's old file is dropped but not deleted (a crash cut the drop off): finish that
            # drop before the name is made anew.
            with self._folder_lock.hold(exclusive=True):
                if not self._finish_drop(path):
                    raise KvliteError(f"collection {name!r} cannot be made again yet: the file {path!r} of the "
                                      "dropped one could not be deleted")

    def create(self, name: str, serializer: str) -> tuple[_Handle, str]:
        self.check_writable()
        return self.open_collection(name, serializer)

    def same_handle(self, cached: Any, current: Any) -> bool:
        """The same file (this engine's object for it) and the same table in it."""
        return (isinstance(cached, _Handle) and isinstance(current, _Handle) and cached.file is current.file
                and cached.table_id == current.table_id)

    def table(self, name: str, handle: Any, serializer: _serializers.Serializer) -> SQLiteTable:
        """The table of the collection in its file's engine."""
        return handle.file.table(name, handle.table_id, serializer)  # type: ignore[no-any-return]

    def names(self) -> list[str]:
        """Every collection in the folder, in file-name order."""
        self.check_open()
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
                    hashed = SQLiteEngine(os.path.join(self.path, entry), readonly=True)
                    try:
                        names.extend(hashed.names())
                    finally:
                        hashed.close()
                else:
                    names.append(urllib.parse.unquote(stem))
        return names

    def drop(self, name: str) -> bool:
        """Delete the collection and its file; ``False`` if there was none (see the module doc)."""
        self.check_writable()
        path = self._file(name)
        with self._folder_lock.hold(exclusive=True):
            self._remove_leftovers()  # what crashes left, this name's cut-off drop too
            engine = self._engine(name)
            if engine is None:
                return False
            if not engine.connection().getautocommit():
                raise KvliteError(f"cannot drop collection {name!r} inside a transaction() block of "
                                  "its own file: the file is deleted, which cannot be rolled back")
            self._drop_in_file(engine)
            with self._lock:
                if self._engines.get(name) is engine:
                    del self._engines[name]
                    self._retired.add(engine)  # its old collection objects now raise "dropped"
            self._bury(path)
        return True

    def _drop_in_file(self, engine: _FileEngine) -> None:
        """The drop's one step (the caller holds the folder lock exclusively): in one write
        transaction on the file, delete its collection, and create its tombstone before committing.

        The write lock is held from the delete to the commit, so no other client writes into the
        file between the tombstone and the commit.  A crash before the tombstone leaves the
        collection as it was (the delete is rolled back); after it, the collection is dropped
        (:meth:`_finish_drop` deletes it inside the file again if the commit did not happen).
        """
        tombstone = engine.tombstone
        names: list[str] = []
        made = False
        try:
            with engine.transaction():
                # First inside the file, like any write: every connection that has it open sees
                # the collection gone.
                names = engine.names()
                for name in names:
                    engine.drop(name)
                os.close(os.open(tombstone, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644))
                made = True
                self._sync_folder()
        except BaseException as exc:
            if made:
                try:
                    rolled_back = set(names) <= set(engine.names())
                except BaseException:  # noqa: BLE001 - unknown: the tombstone stands, the drop is done
                    rolled_back = False
                if rolled_back:  # the drop did not happen: nor does its tombstone
                    with contextlib.suppress(OSError):
                        os.remove(tombstone)
            if isinstance(exc, OSError):
                raise KvliteError(f"cannot drop the collection of {engine.path!r}: {exc}") from exc
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
                dropped = SQLiteEngine(path, **self._options)
                try:
                    for name in dropped.names():
                        dropped.drop(name)
                finally:
                    dropped.close()
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

    # -- blocks ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``transaction()`` raises NotSupported: a transaction cannot span the files of a folder."""
        raise NotSupported("a transaction cannot span the files of a per-collection store; each single "
                           "call (including the _many ones) is atomic on its own")
        yield  # pragma: no cover

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """No snapshot spans the files of a folder: each call reads its own."""
        return contextlib.nullcontext()

    # -- the whole folder --------------------------------------------------------------------

    def purge_expired(self, now: float) -> dict[str, int]:
        """Purge each collection's file in turn (each its own transaction)."""
        purged: dict[str, int] = {}
        for name in self.names():
            with self._folder_lock.hold(exclusive=False):
                engine = self._engine(name)
            if engine is not None:
                purged.update(engine.purge_expired(now))
        return purged

    # -- the change log: one per collection file --------------------------------------------

    def set_changes(self, name: str, handle: Any, enabled: bool, keep: int, max_age: float) -> None:
        handle.file.set_changes(name, handle.table_id, enabled, keep, max_age)

    def _log_of(self, names: list[str] | None) -> _FileEngine | None:
        """The engine of the one collection file whose log is asked for (``None``: no such file)."""
        if names is None or len(names) != 1:
            raise NotSupported("a per-collection folder keeps one change log per collection file, each with "
                               "its own seq: follow one collection, changes(collections=[name]) and "
                               "last_change_seq(name)")
        with self._folder_lock.hold(exclusive=False):
            return self._engine(names[0])

    def changes_after(self, since: int, names: list[str] | None, limit: int) -> list[tuple[Any, ...]]:
        engine = self._log_of(names)
        return [] if engine is None else engine.changes_after(since, names, limit)

    def last_change_seq(self, name: str | None = None) -> int:
        engine = self._log_of(None if name is None else [name])
        return 0 if engine is None else engine.last_change_seq()

    def wait_for_changes(self, after: int, timeout: float, names: list[str] | None = None) -> None:
        engine = self._log_of(names)
        if engine is None:
            time.sleep(min(timeout, 0.05))
        else:
            engine.wait_for_changes(after, timeout, names)

    def backup(self, path: str, progress: Callable[[int, int], None] | None) -> None:
        """A new folder at ``path`` holding a backup of each collection file (each file's own
        snapshot: consistent file by file, not across them), made in a temporary folder beside
        it and renamed to ``path`` once every file is copied."""
        with backup_folder(path, f"the folder {self.path!r}", "a per-collection backup") as temp:
            names = self.names()
            for number, name in enumerate(names):
                with self._folder_lock.hold(exclusive=False):
                    engine = self._engine(name)
                if engine is None:
                    continue  # dropped meanwhile

                def step(done: int, total: int, number: int = number) -> None:
                    if progress is not None:  # whole files done, plus this one's share
                        progress(number * 1000 + (1000 * done // total if total else 1000), len(names) * 1000)

                engine.backup(os.path.join(temp, os.path.basename(self._file(name))), step)

    def info(self) -> dict[str, Any]:
        raise NotSupported("a per-collection folder is not one file: info() has nothing to report on; "
                           "see stats(), or open one collection's file with kvlite.open(file)")

    def vacuum(self) -> None:
        raise NotSupported("vacuum() works on one SQLite file, not on a per-collection folder; "
                           "open one collection's file with kvlite.open(file) to vacuum it")

    def close(self) -> None:
        """Close the engine of every collection file this engine opened (dropped ones too)."""
        super().close()
        with self._lock:
            engines, self._engines = [*self._engines.values(), *self._retired], {}
            self._retired = weakref.WeakSet()
        for engine in engines:
            engine.close()
