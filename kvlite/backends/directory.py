"""``kvlite.open("data/", layout="per-collection")``: one SQLite file per collection.

Like py-key-value's MultiDiskStore: each collection lives in its own kvlite
file inside the folder, so writers on different collections never wait for
each other (each file has its own write lock), and dropping a collection
deletes its file.

File names: the collection name, percent-encoded (UTF-8) so any name is a
safe file name, plus ``.kvlite``; a name whose encoded form would be too long
for a file system gets a hash-based file name instead.  Each file is an
ordinary kvlite store holding that one collection.

What differs from a single-file store: ``transaction()`` on the folder raises
:class:`~kvlite.errors.NotSupported` (a transaction cannot span files); use
``collection.store.transaction()`` for atomic work inside one collection.
``collections()`` lists names in file-name order.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import string
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .. import serializers as _serializers
from ..errors import NotSupported, ReadOnlyError, StoreClosed
from ..store import Store, store_stats, validate_collection_name

if TYPE_CHECKING:
    from ..collection import Collection
    from ..dictview import DictView

__all__ = ["DirectoryStore"]

SUFFIX = ".kvlite"
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


class DirectoryStore:
    """A folder of kvlite files, one per collection (the ``per-collection`` layout)."""

    def __init__(self, path: str | os.PathLike[str], *, serializer: str | _serializers.Serializer = "json",
                 durability: str = "normal", timeout: float = 30.0, clock: Callable[[], float] = time.time,
                 readonly: bool = False) -> None:
        self.path = self.url = os.fspath(path)
        self.readonly = readonly
        self._options: dict[str, Any] = {"serializer": serializer, "durability": durability,
                                         "timeout": timeout, "clock": clock, "readonly": readonly}
        self._default_serializer = _serializers.get(serializer)
        self._clock = clock
        if not os.path.isdir(self.path):
            if readonly:
                raise ReadOnlyError(f"folder {self.path!r} does not exist and the store is read-only")
            os.makedirs(self.path, exist_ok=True)
        self._stores: dict[str, Store] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    def _file(self, name: str) -> str:
        return os.path.join(self.path, file_name(name))

    def _store(self, name: str) -> Store:
        self._check_open()
        with self._lock:
            store = self._stores.get(name)
            if store is None or store.closed:
                store = self._stores[name] = Store(self._file(name), **self._options)
            return store

    def now(self) -> float:
        return self._clock()

    def collection(self, name: str, *, serializer: str | _serializers.Serializer | None = None,
                   model: type | None = None) -> Collection:
        """The collection ``name`` in its own file (created on first use)."""
        validate_collection_name(name)
        if self.readonly and not os.path.exists(self._file(name)):
            raise ReadOnlyError(f"collection {name!r} does not exist and the store is read-only")
        return self._store(name).collection(name, serializer=serializer, model=model)

    def serializer_of(self, name: str) -> str | None:
        """The serializer recorded for collection ``name`` (``None`` if it does not exist)."""
        if not os.path.exists(self._file(name)):
            return None
        return self._store(name).serializer_of(name)

    def collections(self) -> list[str]:
        """Every collection in the folder, in file-name order."""
        self._check_open()
        names = []
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
        """Delete the collection's file; ``False`` if there was none."""
        self._check_open()
        validate_collection_name(name)
        if self.readonly:
            raise ReadOnlyError("the store was opened read-only")
        with self._lock:
            store = self._stores.pop(name, None)
        if store is not None:
            store.close()
        path = self._file(name)
        existed = os.path.exists(path)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path + suffix)
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

    def purge_expired(self) -> int:
        return sum(self._store(name).purge_expired() for name in self.collections())

    def stats(self) -> dict[str, Any]:
        per = {}
        for name in self.collections():
            per.update(self._store(name).stats()["collections"])
        return store_stats(self.path, per)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()

    def __enter__(self) -> DirectoryStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<kvlite.DirectoryStore {self.path!r}>"
