"""Shared fixtures for the kvlite test suite.

* :class:`Clock` - a fake clock to inject with ``kvlite.open(..., clock=...)``;
  TTL tests move it with :meth:`Clock.advance` instead of sleeping.
* ``clock`` - a fresh :class:`Clock`.
* ``db_path`` - a path for a new store file in the test's own temp dir.
* ``store`` - a :class:`kvlite.Store` on ``db_path`` driven by ``clock``,
  closed after the test.
* ``open_store`` - a factory ``open_store(path=db_path, **kwargs)`` for extra
  stores (default clock: ``clock``); every store it made is closed after the test.
* ``cli`` - a :class:`helpers_cli.Cli` running the installed ``kvlite`` script in the
  test's temp dir; ``any_cli`` - the same, once with the script and once with
  ``python -m kvlite`` (the same behaviour is expected of both).
* ``postgres_server``, ``postgres_url``, ``redis_url``, ``redis_prefix_url`` - the throwaway
  servers of ``server_postgres.py`` and ``server_redis.py``, loaded as plugins below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from helpers_cli import RUNNERS, Cli

import kvlite

# The throwaway servers' session fixtures (postgres_server, postgres_url; redis_url,
# redis_prefix_url), for every test module: no module imports a fixture by name.
pytest_plugins = ["server_postgres", "server_redis", "server_memcached"]
# Shared test code outside test_*.py files: pytest explains their failed asserts too.
pytest.register_assert_rewrite("conformance", "helpers_query")


class Clock:
    """A settable time source: ``clock()`` returns the current fake time in seconds."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds``; returns the new time."""
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def open_store(db_path: Path, clock: Clock) -> Iterator[Callable[..., kvlite.Store]]:
    opened: list[kvlite.Store] = []

    def factory(path: Any = None, **kwargs: Any) -> kvlite.Store:
        kwargs.setdefault("clock", clock)
        store = kvlite.open(db_path if path is None else path, **kwargs)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., kvlite.Store]) -> kvlite.Store:
    return open_store()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture(params=sorted(RUNNERS))
def any_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    """The console script and ``python -m kvlite``: the same behaviour is expected of both."""
    return Cli(tmp_path, request.param)
