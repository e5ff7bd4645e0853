"""``kvlite.copy`` from every engine to every other: values, key types, remaining TTLs and order
are kept, the serializer changes on the way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import Clock
from helpers_engines import ENGINES, new_location
from helpers_query import strict

import kvlite
from kvlite.errors import SerializerMismatch

from .base import TTL_TOLERANCE, EngineTests, key_types, typed


def _source_entries() -> list[tuple[Any, Any, float | None]]:
    return [
        ("plain", {"name": "Ada", "tags": ["a"]}, None),
        (2, [1, 2.5, None], 100.0),
        (b"\x00k", "bytes key", None),
        (True, {"bool": "key"}, 5.0),  # expires before the copy
        (2.5, None, 40.0),
        ("é", 0, None),
    ]


class Copying(EngineTests):
    """kvlite.copy from this engine to each other one."""

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """``target``: every other engine (pytest calls this hook of a test class for its tests)."""
        if "target" in metafunc.fixturenames:
            targets = [engine for engine in ENGINES if engine != self.engine]
            metafunc.parametrize("target", targets, ids=[f"{self.engine}->{target}" for target in targets])

    def test_copy_between_backends(self, request: pytest.FixtureRequest, tmp_path: Path, clock: Clock,
                                   target: str) -> None:
        source = self.engine
        src = new_location(source, request, tmp_path).open(clock)
        dst = new_location(target, request, tmp_path).open(clock)
        try:
            users = src.collection("users")
            for key, value, ttl in _source_entries():
                users.put(key, value, ttl=ttl)
            src.collection("empty")
            clock.advance(10)
            expected = [(k, v) for k, v, ttl in _source_entries() if ttl is None or ttl > 10]
            counts = kvlite.copy(src, dst, serializer="pickle", progress=False)
            assert counts == {"users": len(expected), "empty": 0}
            assert sorted(dst.collections()) == ["empty", "users"]
            assert dst.serializer_of("users") == "pickle" and dst.serializer_of("empty") == "pickle"
            with pytest.raises(SerializerMismatch):
                dst.collection("users")  # the copy is recorded as pickle, not the source's json
            copied = dst.collection("users", serializer="pickle")
            assert sorted(typed(copied.items()), key=repr) == sorted(typed(expected), key=repr)  # values and key types
            keys = [k for k, _ in expected]
            assert copied.ttl_many(keys) == [None if t is None else pytest.approx(t, abs=TTL_TOLERANCE)
                                             for t in users.ttl_many(keys)]  # remaining TTLs
            assert key_types(copied.keys()) == key_types(keys)  # insertion order
            clock.advance(30)  # the remaining TTLs run on in the copy
            assert copied.get(2.5) is None and copied.get(2) == [1, 2.5, None]
            assert strict(list(users.items())) == strict([e for e in expected if e[0] != 2.5])  # source untouched
        finally:
            src.close()
            dst.close()
