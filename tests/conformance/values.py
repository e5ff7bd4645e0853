"""Values and bad input on every engine: atomicity of ``put_many`` (a bad key, value, TTL or pair:
nothing written), the recorded serializer (``SerializerMismatch``), value fidelity per serializer
and per serializer output type, and typed errors for bad keys, TTLs, values and names."""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers_query import strict

import kvlite
from kvlite.errors import (
    InvalidCollectionName,
    InvalidKey,
    InvalidTTL,
    SerializationError,
    SerializerMismatch,
)

from .base import EngineTests, Point, StoreMaker


class UpperText(kvlite.Serializer):
    """A serializer that returns (non-JSON) text: every backend must give the text back as ``str``."""

    name = "conformance-upper-text"

    def dumps(self, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError("text only")
        return "<" + value.upper() + ">"

    def loads(self, data: str | bytes) -> Any:
        assert isinstance(data, str), f"a text serializer got {type(data).__name__} back"
        return data[1:-1]


class BytesJSON(kvlite.Serializer):
    """A JSON serializer whose dumps returns bytes (as orjson.dumps does)."""

    name = "conformance-bytes-json"
    json = True

    def dumps(self, value: Any) -> bytes:
        import orjson

        return orjson.dumps(value)

    def loads(self, data: str | bytes) -> Any:
        import orjson

        assert isinstance(data, bytes), f"a bytes serializer got {type(data).__name__} back"
        return orjson.loads(data)


class BadText(kvlite.Serializer):
    """A serializer returning text that is not valid Unicode (cannot be stored as UTF-8)."""

    name = "conformance-bad-text"

    def dumps(self, value: Any) -> str:
        return "ok" if value == "ok" else "\udcff"

    def loads(self, data: str | bytes) -> Any:
        return data


class ValuesAndErrors(EngineTests):
    """Atomic writes, serializers, value fidelity and typed errors."""

    def test_put_many_with_a_bad_entry_writes_nothing(self, store: Any) -> None:
        c = store.collection("atomic")
        c.put_many([("a", 1), ("b", 2)])

        def failing() -> Iterator[tuple[str, int]]:
            yield "c", 3
            raise RuntimeError("the source failed")

        bad_calls: list[tuple[Callable[[], Any], type[BaseException]]] = [
            (lambda: c.put_many([("a", 10), ("c", 3), ("d", object())]), SerializationError),
            (lambda: c.put_many({"a": 10, "c": 3, "d": {1, 2}}), SerializationError),
            (lambda: c.put_many([("a", 10), ("c", 3), ("d", float("nan"))]), SerializationError),
            (lambda: c.put_many([("a", 10), ("c", 3), (None, 4)]), InvalidKey),
            (lambda: c.put_many([("a", 10), ("c", 3), (2**64 + 1, 4)]), InvalidKey),
            (lambda: c.put_many([("a", 10), ("c", 3)], ttl=-1), InvalidTTL),
            (lambda: c.put_many([("a", 10), ("c", 3, "three")]), ValueError),
            (lambda: c.put_many(failing()), RuntimeError),
        ]
        for call, error in bad_calls:
            with pytest.raises(error):
                call()
            assert list(c.items()) == [("a", 1), ("b", 2)], error
            assert c.ttl("a") is None

    def test_serializer_is_recorded(self, make_store: StoreMaker) -> None:
        store = make_store()
        p = store.collection("p", serializer="pickle")
        value = (1, {2, 3}, b"raw", datetime.date(2024, 1, 2))
        p.put("k", value)
        assert p.get("k") == value and type(p.get("k")) is tuple
        store.collection("j").put("k", (1, 2))
        assert store.collection("j").get("k") == [1, 2]  # JSON: tuples come back as lists, on every backend
        with pytest.raises(SerializerMismatch) as raised:
            store.collection("p")
        default = make_store.location.options.get("serializer", "json")
        assert (raised.value.collection, raised.value.stored, raised.value.requested) == ("p", "pickle", default)
        with pytest.raises(SerializerMismatch):
            store.collection("j", serializer="pickle")
        assert store.serializer_of("p") == "pickle" and store.serializer_of("j") == default
        assert store.serializer_of("missing") is None
        if make_store.persistent:  # the record is in the store, not in the object
            store.close()
            again = make_store()
            with pytest.raises(SerializerMismatch):
                again.collection("p")
            assert again.collection("p", serializer="pickle").get("k") == value
            pickled = make_store(serializer="pickle")
            assert pickled.collection("p").get("k") == value
            with pytest.raises(SerializerMismatch):
                pickled.collection("j")
            assert pickled.serializer_of("j") == default

    def test_values_round_trip_exactly(self, store: Any) -> None:
        j = store.collection("json")
        docs = ["", "nul \x00 inside", "\u2028\u2029 é 日本 🎉", 2**63 - 1, -(2**63), 2**64 - 1, 1e308, 5e-324, -0.0,
                0.1, True, None, [], {}, {"nested": [{"a": [1, {"b": None}]}], "": "empty key"}, "x" * 2_000_000,
                [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]
        j.put_many((i, doc) for i, doc in enumerate(docs))
        assert strict(list(j.values())) == strict(docs)
        with pytest.raises(SerializationError):
            j.put("surrogate", "\ud800")
        p = store.collection("pickle", serializer="pickle")
        values = [(1, "tuple"), {1, 2}, frozenset({"a"}), b"\x00\xff", bytearray(b"ba"), 1 + 2j, 2**200, float("nan"),
                  datetime.datetime(2024, 1, 2, 3, 4, 5), Point(1, 2), {(1, 2): "tuple key"}, "str", b""]
        p.put_many((i, v) for i, v in enumerate(values))
        got = list(p.values())
        assert [type(v) for v in got] == [type(v) for v in values]
        assert got[:7] == values[:7] and got[8:] == values[8:] and math.isnan(got[7])
        t = store.collection("text", serializer=UpperText())
        t.put("k", "abc")
        t.put_many({"e": "", "u": "é\x00"})
        assert list(t.items()) == [("k", "ABC"), ("e", ""), ("u", "É\x00")]
        with pytest.raises(SerializationError):
            t.put("n", 1)

    @pytest.mark.parametrize("bad_key", [None, (1, 2), [1], frozenset(), object(), float("nan"), 2**63 + 1,
                                         -(2**63) - 1, "\ud800", "x" * ((1 << 20) + 1)], ids=repr)
    def test_bad_keys_raise_invalid_key_and_write_nothing(self, store: Any, bad_key: Any) -> None:
        c = store.collection("badkeys")
        c.put("ok", 1)
        for call in (lambda: c.put(bad_key, 1), lambda: c.get(bad_key), lambda: c.delete(bad_key),
                     lambda: c.ttl(bad_key), lambda: c.setdefault(bad_key, 1), lambda: c.get_many(["ok", bad_key]),
                     lambda: c.delete_many(["ok", bad_key]), lambda: c.ttl_many([bad_key]),
                     lambda: c.put_many([("a", 1), (bad_key, 2)])):
            with pytest.raises(InvalidKey):
                call()
        assert isinstance(InvalidKey(), TypeError)
        assert bad_key not in c and c.pop(bad_key, "d") == "d"
        assert list(c.items()) == [("ok", 1)]

    @pytest.mark.parametrize("bad_ttl", [0, -1, -0.5, float("nan"), math.inf, "10", True, datetime.timedelta(0),
                                         datetime.timedelta(seconds=-1), 10**400], ids=repr)
    def test_bad_ttls_raise_invalid_ttl_and_write_nothing(self, store: Any, bad_ttl: Any) -> None:
        c = store.collection("badttl")
        c.put("a", 1)
        for call in (lambda: c.put("a", 2, ttl=bad_ttl), lambda: c.put("b", 2, ttl=bad_ttl),
                     lambda: c.put_many({"b": 2}, ttl=bad_ttl), lambda: c.setdefault("b", 2, ttl=bad_ttl)):
            with pytest.raises(InvalidTTL):
                call()
        assert list(c.items()) == [("a", 1)] and c.ttl("a") is None

    @pytest.mark.parametrize("bad_value", [object(), {1, 2}, b"bytes", float("nan"), [math.inf], {1: "int key"}, 2**64,
                                           datetime.datetime(2024, 1, 1)], ids=repr)
    def test_values_json_cannot_keep_raise_serialization_error(self, store: Any, bad_value: Any) -> None:
        c = store.collection("badvalues")
        c.put("a", 1)
        for call in (lambda: c.put("a", bad_value), lambda: c.put("b", bad_value), lambda: c.setdefault("b", bad_value),
                     lambda: c.dict().__setitem__("b", bad_value)):
            with pytest.raises(SerializationError):
                call()
        assert isinstance(SerializationError(), ValueError)
        assert list(c.items()) == [("a", 1)]

    @pytest.mark.parametrize("bad_name", ["", "x" * 256, "a\x00b", "\ud800", 7, None], ids=repr)
    def test_bad_collection_names(self, store: Any, bad_name: Any) -> None:
        with pytest.raises(InvalidCollectionName):
            store.collection(bad_name)
        assert store.collections() == []

    def test_serializer_output_types_come_back_alike(self, store: Any) -> None:
        j = store.collection("j", serializer=BytesJSON())
        j.put("k", {"a": [1, "é"]})
        j.put_many({"m": 2})
        assert j.get("k") == {"a": [1, "é"]} and list(j.items()) == [("k", {"a": [1, "é"]}), ("m", 2)]
        assert [v for _, v in j.find("$[?(@.a)]")] == [{"a": [1, "é"]}]
        t = store.collection("t", serializer=BadText())
        t.put("good", "ok")
        for call in (lambda: t.put("k", 1), lambda: t.put_many({"x": 1}), lambda: t.setdefault("k", 1)):
            with pytest.raises(SerializationError):
                call()
        assert list(t.items()) == [("good", "ok")]
