"""Where each engine's test stores live: the one table of engine targets.

=================== ===============================================================================
``sqlite-file``     ``kvlite.open(<tmp>/store-N.db)``
``sqlite-jsonb``    ``kvlite.open(<tmp>/store-N.db, serializer="jsonb")`` (JSON stored as SQLite JSONB)
``sqlite-memory``   ``kvlite.open(":memory:")``
``per-collection``  ``kvlite.open(<tmp>/folder-N, layout="per-collection")``
``memory``          ``kvlite.open("memory://")``
``redis``           ``kvlite.open(redis_url + "?prefix=<unique>")``
``postgresql``      ``kvlite.open(<postgres_url in a new, empty schema>)``
``lmdb``            ``kvlite.open("lmdb://<tmp>/lmdb-N")`` (a folder holding an LMDB environment)
=================== ===============================================================================

The Redis and PostgreSQL servers are the session fixtures of ``tests/server_redis.py`` and
``tests/server_postgres.py`` (plugins loaded by ``tests/conftest.py``), asked for only when a
test needs one: a missing server skips those tests, and fails them under ``CI=true``.

Adding an engine: a name in :data:`ENGINES`, its target in :func:`new_location` (and in
:data:`PERSISTENT` when its data outlives the store object), and a subclass of
``StoreConformance`` in ``tests/test_conformance.py``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from server_postgres import new_schema_url

import kvlite

#: Every engine the conformance suite runs on, in the order its tests are reported.
ENGINES = ["sqlite-file", "sqlite-jsonb", "sqlite-memory", "per-collection", "memory", "redis", "postgresql",
           "lmdb"]
#: Engines whose data outlives the store object (a second ``open`` of the same target sees it).
PERSISTENT = {"sqlite-file", "sqlite-jsonb", "per-collection", "redis", "postgresql", "lmdb"}

_locations = itertools.count()


@dataclass
class Location:
    """One place an engine keeps a store: every :meth:`open` of it sees the same data
    (when the engine is persistent)."""

    backend: str
    target: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def persistent(self) -> bool:
        return self.backend in PERSISTENT

    def open(self, clock: Callable[[], float], **options: Any) -> Any:
        return kvlite.open(self.target, clock=clock, **{**self.options, **options})


def new_location(backend: str, request: pytest.FixtureRequest, folder: Path) -> Location:
    """A new, empty place for a store of ``backend`` (servers come from the session fixtures)."""
    n = next(_locations)
    if backend == "sqlite-file":
        return Location(backend, str(folder / f"store-{n}.db"))
    if backend == "sqlite-jsonb":  # a file whose JSON collections are stored as SQLite JSONB
        return Location(backend, str(folder / f"store-{n}.db"), {"serializer": "jsonb"})
    if backend == "sqlite-memory":
        return Location(backend, ":memory:")
    if backend == "per-collection":
        return Location(backend, str(folder / f"folder-{n}"), {"layout": "per-collection"})
    if backend == "memory":
        return Location(backend, "memory://")
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        return Location(backend, f"{url}?prefix=conformance-{uuid.uuid4().hex}")
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        return Location(backend, new_schema_url(url, "conf"))
    if backend == "lmdb":
        return Location(backend, f"lmdb://{folder / f'lmdb-{n}'}")
    raise AssertionError(f"unknown backend {backend!r}")


class StoreMaker:
    """``make_store(**options)``: a store on this test's location of one engine (fake clock).

    Every call opens the same location, so a persistent engine shows the
    data of the previous stores; :meth:`close_all` closes every store made.
    """

    def __init__(self, location: Location, clock: Callable[[], float]) -> None:
        self.location = location
        self.clock = clock
        self.opened: list[Any] = []

    @property
    def backend(self) -> str:
        return self.location.backend

    @property
    def persistent(self) -> bool:
        return self.location.persistent

    def __call__(self, **options: Any) -> Any:
        clock = options.pop("clock", self.clock)
        store = self.location.open(clock, **options)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        while self.opened:
            self.opened.pop().close()
