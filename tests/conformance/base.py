"""What every topic of the conformance suite shares: :class:`EngineTests` (the ``engine`` hook and
the ``make_store``/``store`` fixtures built on it), Hypothesis settings, the TTL tolerance, and
helpers that tell ``1``, ``1.0`` and ``True`` apart."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import Clock
from helpers_engines import StoreMaker, new_location
from hypothesis import HealthCheck

__all__ = ["EXAMPLES", "HYPOTHESIS", "TTL_TOLERANCE", "EngineTests", "Point", "StoreMaker", "key_types", "typed"]

#: ``KVLITE_CONFORMANCE_EXAMPLES`` raises the number of Hypothesis examples.
EXAMPLES = int(os.environ.get("KVLITE_CONFORMANCE_EXAMPLES", "0"))
#: The settings of every Hypothesis test here.  ``differing_executors``: one ``@given`` method runs
#: once per engine subclass, each run on its own store from the fixtures, as intended.
HYPOTHESIS: dict[str, Any] = {"deadline": None, "suppress_health_check": [
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
    HealthCheck.differing_executors]}
TTL_TOLERANCE = 1e-5  # PostgreSQL keeps expiry times in microseconds


class EngineTests:
    """The base of every topic: a test takes ``make_store`` (or ``store``) and gets this engine's.

    A subclass names its engine in ``engine``, one of ``helpers_engines.ENGINES`` (which says where
    that engine's stores live).  Every store runs on the fake clock ``clock`` (``conftest.Clock``).
    """

    engine: ClassVar[str]

    @pytest.fixture
    def make_store(self, request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[StoreMaker]:
        """``make_store(**options)``: a store on this test's location of the engine; every call opens
        the same location (a persistent engine shows the earlier stores' data); all are closed after
        the test."""
        maker = StoreMaker(new_location(self.engine, request, tmp_path), clock)
        yield maker
        maker.close_all()

    @pytest.fixture
    def store(self, make_store: StoreMaker) -> Any:
        return make_store()


def typed(pairs: Any) -> list[tuple[type, Any, type, Any]]:
    """``(key type, key, value type, value)`` in order: ``1``, ``1.0`` and ``True`` are told apart."""
    return [(type(k), k, type(v), v) for k, v in pairs]


def key_types(keys: Any) -> list[tuple[type, Any]]:
    return [(type(k), k) for k in keys]


@dataclass
class Point:
    x: int
    y: int
