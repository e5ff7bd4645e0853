"""Engines: the storage under kvlite's one Store / Collection / DictView API.

The protocol every engine implements is in :mod:`kvlite.backends.base`.
``kvlite.open(target)`` picks one from ``target``:

================================ =============================================
``"app.db"``, ``"sqlite:///app.db"`` one SQLite file (the default, embedded)
``":memory:"``                    a private in-memory SQLite database
``"data/", layout="per-collection"`` a folder with one SQLite file per collection
``"memory://"``                   a pure-Python store in this process
``"null://"``                     accepts everything, keeps nothing
``"postgresql://..."``            PostgreSQL (the ``postgres`` extra)
``"redis://..."``, ``"valkey://..."`` Redis / Valkey (the ``redis`` extra)
``"lmdb://folder"``               an LMDB environment in a folder (the ``lmdb`` extra)
a py-key-value store object       any ``AsyncKeyValue`` store (the ``pykv`` extra)
================================ =============================================
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

from ..errors import KvliteError
from .base import Engine

__all__ = ["open_engine"]

_SCHEMES = {
    "memory": ("kvlite.backends.memory", "MemoryEngine"),
    "null": ("kvlite.backends.memory", "NullEngine"),
    "postgresql": ("kvlite.backends.postgres", "PostgresEngine"),
    "postgres": ("kvlite.backends.postgres", "PostgresEngine"),
    "redis": ("kvlite.backends.redis", "RedisEngine"),
    "rediss": ("kvlite.backends.redis", "RedisEngine"),
    "valkey": ("kvlite.backends.redis", "RedisEngine"),
    "valkeys": ("kvlite.backends.redis", "RedisEngine"),
    "lmdb": ("kvlite.backends.lmdb", "LMDBEngine"),
}


def is_pykv_store(target: object) -> bool:
    """Whether ``target`` looks like a py-key-value ``AsyncKeyValue`` store (its protocol's
    coroutine methods), checked without importing py-key-value."""
    return all(inspect.iscoroutinefunction(getattr(target, name, None))
               for name in ("get", "put", "delete", "ttl", "get_many", "put_many", "delete_many"))


def _sqlite_path(url: str) -> str:
    """The path of a ``sqlite:///path`` (or ``sqlite://path``) URL; the scheme in any case."""
    rest = url[len("sqlite://"):]
    return rest[1:] if rest.startswith("/") else rest


def open_engine(target: str | os.PathLike[str], *, layout: str = "single", **options: Any) -> Engine:
    """The engine for ``target`` (see the table above); ``options`` are :func:`kvlite.open`'s
    ``durability``, ``timeout``, ``clock`` and ``readonly``."""
    from .sqlite import SQLiteEngine

    if not isinstance(target, (str, os.PathLike)):
        if is_pykv_store(target):
            if layout != "single":
                raise ValueError("layout='per-collection' is a folder of SQLite files; it cannot be used "
                                 "with a py-key-value store")
            from .pykv import PyKVEngine

            return PyKVEngine(target, **options)
        raise TypeError(f"a store target is a path, a URL, an Engine or a py-key-value store, "
                        f"not {type(target).__name__}")
    text = os.fspath(target)
    if layout not in ("single", "per-collection"):
        raise ValueError(f"layout must be 'single' or 'per-collection', not {layout!r}")
    if layout == "per-collection":
        from .directory import DirectoryEngine

        scheme, sep, _ = text.partition("://")
        if sep and len(scheme) >= 2 and scheme.lower() != "sqlite":
            raise ValueError(f"layout='per-collection' is a folder of SQLite files; it cannot be used with "
                             f"a {scheme}:// URL (give a folder path, or leave layout at 'single')")
        return DirectoryEngine(_sqlite_path(text) if sep and len(scheme) >= 2 else text, **options)
    scheme, sep, _ = text.partition("://")
    if not sep or len(scheme) < 2:  # a plain path (a Windows drive letter is not a scheme)
        return SQLiteEngine(text, **options)
    scheme = scheme.lower()
    if scheme == "sqlite":
        return SQLiteEngine(_sqlite_path(text), **options)
    if scheme not in _SCHEMES:
        raise KvliteError(f"unknown store URL scheme {scheme!r}; known: sqlite, {', '.join(sorted(_SCHEMES))}")
    module_name, class_name = _SCHEMES[scheme]
    module = importlib.import_module(module_name)
    engine: Engine = getattr(module, class_name)(text, **options)
    return engine
