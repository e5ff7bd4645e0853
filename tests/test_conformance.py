"""The conformance suite on every engine: one subclass of ``StoreConformance`` per engine.

The tests are in ``tests/conformance/`` (one module per topic; what each checks is in its
``__init__``); where each engine's stores live is in ``tests/helpers_engines.py``.  Adding an
engine = its target there + one subclass here, which also gets CPython's mapping-protocol
``TestCase`` below.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from conformance import StoreConformance
from conftest import Clock
from helpers_dictview import DocumentedSetdefault
from helpers_engines import new_location
from test import (
    mapping_tests,  # ships with CPython; imported as a module so pytest does not collect its bases
)

import kvlite
from kvlite import DictView
from kvlite.errors import NotSupported, SerializerMismatch


class TestSqliteFile(StoreConformance):
    engine = "sqlite-file"


class TestSqliteJsonb(StoreConformance):
    engine = "sqlite-jsonb"


class TestSqliteMemory(StoreConformance):
    engine = "sqlite-memory"


class TestPerCollection(StoreConformance):
    engine = "per-collection"


class TestMemory(StoreConformance):
    engine = "memory"


class TestRedis(StoreConformance):
    engine = "redis"


class TestPostgres(StoreConformance):
    engine = "postgresql"


class TestLMDB(StoreConformance):
    engine = "lmdb"


# -- the dict view: CPython's mapping protocol, one TestCase per engine ---------------------------
# (a unittest TestCase, so a class of its own next to each engine's class, not a method of it)

_view_names = itertools.count()


class _EngineDictView(DictView):
    """Each instance is a new collection in the store its test class opened (``store``)."""

    store: ClassVar[Any] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        store = type(self).store
        assert store is not None, "the class-scoped fixture opens the store"
        self._collection = store.collection(f"view-{next(_view_names)}")
        if args or kwargs:
            self.update(*args, **kwargs)


@pytest.fixture(scope="class")
def _mapping_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    view_type = request.cls.type2test
    location = new_location(request.cls.engine, request, tmp_path_factory.mktemp("mapping"))
    view_type.store = location.open(Clock())
    yield
    view_type.store.close()
    view_type.store = None


def _mapping_case(engine: str) -> type:
    ident = engine.replace("-", "_")
    view_type = type(f"DictView_{ident}", (_EngineDictView,), {"store": None})

    def _reference(self: Any) -> dict[str, Any]:
        # The default reference holds a tuple, which JSON stores as a list; same shape, JSON-invariant.
        return {"1": "2", "key1": "value1", "key2": [1, 2, 3]}

    case = type(f"TestMappingProtocol_{ident}", (DocumentedSetdefault, mapping_tests.TestMappingProtocol), {
        "type2test": view_type, "engine": engine, "_reference": _reference,
        "__doc__": f"CPython's mapping protocol on DictViews over {engine} collections (a new one per call).",
        "__module__": __name__})
    return pytest.mark.usefixtures("_mapping_store")(case)


for _engine_tests in StoreConformance.__subclasses__():
    _case = _mapping_case(_engine_tests.engine)
    globals()[_case.__name__] = _case
del _engine_tests, _case


# -- null://: keeps nothing, so not an engine of the suite -------------------------------------------


def test_null_store_keeps_nothing_and_refuses_full_durability(clock: Clock) -> None:
    with kvlite.open("null://", clock=clock) as null:
        c = null.collection("c")
        assert null.collection("c") is c
        c.put("k", 1)
        assert c.get("k") is None and len(c) == 0 and null.collections() == []
        with pytest.raises(SerializerMismatch):
            null.collection("c", serializer="pickle")
        assert null.drop_collection("c") is False
        c.put("k", 2)  # still usable: there was nothing to drop
    with pytest.raises(NotSupported, match="durability"):
        kvlite.open("null://", durability="full")
    with pytest.raises(ValueError):
        kvlite.open("memory://", durability="sometimes")
