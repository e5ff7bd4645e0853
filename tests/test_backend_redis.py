"""The Redis / Valkey backend (``kvlite.backends.redis``) against a real, throwaway server.

The server comes from the session fixture ``redis_url`` (``tests/server_redis.py``);
every test works in a namespace (``?prefix=``) of its own.  Oracles: a plain
``dict`` (with expiry applied) for the protocol and the dict view, CPython's
``test.mapping_tests`` for the mapping protocol, and a ``memory://`` store
holding the same data for queries.  TTLs run on a fake clock.
"""

from __future__ import annotations

import enum
import itertools
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from conftest import Clock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from test import mapping_tests  # ships with CPython; imported as a module so pytest does not collect its bases

import kvlite
from kvlite import DictView
from kvlite.backends import redis as kvredis
from kvlite.errors import (
    CollectionDropped,
    InvalidKey,
    KvliteError,
    NotSupported,
    ReadOnlyError,
    SerializationError,
    SerializerMismatch,
    StoreClosed,
    StoreFull,
)

STATEFUL_EXAMPLES = int(os.environ.get("KVLITE_REDIS_EXAMPLES", "25"))


def typed(items: Any) -> list[tuple[type, Any, Any]]:
    """Items with their key types, in order: ``1``, ``1.0`` and ``True`` are told apart."""
    return [(type(k), k, v) for k, v in items]


def raw_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url.split("?")[0])


@pytest.fixture
def rstore(redis_prefix_url: str, clock: Clock) -> Iterator[Any]:
    store = kvlite.open(redis_prefix_url, clock=clock)
    yield store
    store.close()


@pytest.fixture
def coll(rstore: Any) -> Any:
    return rstore.collection("c")


# -- URLs and opening ------------------------------------------------------------------------


def test_parse_url_takes_the_prefix_out_and_maps_valkey() -> None:
    assert kvredis.parse_url("redis://h:1/2") == ("redis://h:1/2", "kvlite")
    assert kvredis.parse_url("valkey://h/3?prefix=app&health_check_interval=5") == (
        "redis://h/3?health_check_interval=5", "app")
    assert kvredis.parse_url("valkeys://h?prefix=a%3Ab")[0] == "rediss://h"
    assert kvredis.parse_url("valkeys://h?prefix=a%3Ab")[1] == "a:b"
    with pytest.raises(ValueError):
        kvredis.parse_url("redis://h?prefix=")
    with pytest.raises(ValueError):
        kvredis.parse_url("redis://h?prefix=a&prefix=b")
    with pytest.raises(ValueError):
        kvredis.parse_url("http://h")


def test_password_is_not_shown() -> None:
    assert kvredis._redacted("redis://user:secret@host:7/0?prefix=p") == "redis://user:***@host:7/0?prefix=p"
    assert kvredis._redacted("redis://:secret@[::1]:7") == "redis://:***@[::1]:7"
    assert kvredis._redacted("redis://host:7") == "redis://host:7"


def test_open_dispatches_redis_and_valkey_urls(redis_prefix_url: str) -> None:
    for url in (redis_prefix_url, redis_prefix_url.replace("redis://", "valkey://", 1)):
        with kvlite.open(url) as store:
            assert isinstance(store.engine, kvredis.RedisEngine)
            store.collection("c").put("k", "v")
            assert store.collection("c").get("k") == "v"


def test_unreachable_server_is_a_kvlite_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(KvliteError, match="cannot reach"):
        kvlite.open(f"redis://127.0.0.1:{port}/0", timeout=2)


def test_bad_options_raise(redis_prefix_url: str) -> None:
    with pytest.raises(ValueError):
        kvlite.open(redis_prefix_url, durability="sometimes")
    with pytest.raises(ValueError):
        kvlite.open(redis_prefix_url, timeout=-1)


def test_durability_full_needs_an_fsync_always_server(redis_prefix_url: str) -> None:
    with pytest.raises(NotSupported, match="appendfsync"):
        kvlite.open(redis_prefix_url, durability="full")
    client = raw_client(redis_prefix_url)
    client.config_set("appendfsync", "always")
    client.config_set("appendonly", "yes")
    try:
        with kvlite.open(redis_prefix_url, durability="full") as store:
            store.collection("c").put("k", 1)
            assert store.collection("c").get("k") == 1
    finally:
        client.config_set("appendonly", "no")
        client.config_set("appendfsync", "everysec")
        client.close()


def test_server_out_of_memory_is_store_full_and_writes_nothing(rstore: Any, redis_prefix_url: str) -> None:
    coll = rstore.collection("c")
    coll.put("a", 1)
    client = raw_client(redis_prefix_url)
    saved = client.config_get("maxmemory*")
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    try:
        with pytest.raises(StoreFull):
            coll.put_many({"b": 2, "c": 3})
        with pytest.raises(StoreFull):
            coll.setdefault("d", 4)
        with pytest.raises(StoreFull):
            rstore.collection("new")
        assert list(coll.items()) == [("a", 1)]
        assert coll.pop("a") == 1  # deleting frees memory: allowed
    finally:
        client.config_set("maxmemory", saved["maxmemory"])
        client.config_set("maxmemory-policy", saved["maxmemory-policy"])
        client.close()
    assert len(coll) == 0 and rstore.collections() == ["c"]


def test_prefixes_and_databases_are_separate(redis_url: str) -> None:
    a, b = f"t-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex}"
    with kvlite.open(f"{redis_url}?prefix={a}") as sa, kvlite.open(f"{redis_url}?prefix={b}") as sb, \
            kvlite.open(f"{redis_url[:-1]}1?prefix={a}") as sa1:
        sa.collection("x").put("k", "in a")
        assert sb.collections() == [] and sa1.collections() == []
        assert sb.collection("x").get("k") is None
        assert sa1.collection("x").get("k") is None
        assert sa.collection("x").get("k") == "in a"


def test_transactions_are_not_supported(rstore: Any) -> None:
    with pytest.raises(NotSupported), rstore.transaction():
        pass


def test_readonly_refuses_writes_but_reads(redis_prefix_url: str) -> None:
    with kvlite.open(redis_prefix_url) as rw:
        rw.collection("c").put("k", 1)
    with kvlite.open(redis_prefix_url, readonly=True) as ro:
        c = ro.collection("c")
        assert c.get("k") == 1 and len(c) == 1
        with pytest.raises(ReadOnlyError):
            c.put("k", 2)
        with pytest.raises(ReadOnlyError):
            c.delete("k")
        with pytest.raises(ReadOnlyError):
            ro.collection("new")
        with pytest.raises(ReadOnlyError):
            ro.drop_collection("c")
        assert c.get("k") == 1


def test_closed_store_refuses_calls(rstore: Any) -> None:
    c = rstore.collection("c")
    c.put("k", 1)
    rstore.close()
    with pytest.raises(StoreClosed):
        c.get("k")
    with pytest.raises(StoreClosed):
        c.put("k", 2)


# -- registry ---------------------------------------------------------------------------------


def test_collections_registry_order_drop_and_serializer_record(redis_prefix_url: str, clock: Clock) -> None:
    with kvlite.open(redis_prefix_url, clock=clock) as a, kvlite.open(redis_prefix_url, clock=clock) as b:
        for name in ("b", "a:{x}", "é ü", "c"):
            a.collection(name).put(1, name)
        assert a.collections() == ["b", "a:{x}", "é ü", "c"] == b.collections()
        assert b.collection("a:{x}").get(1) == "a:{x}"
        a.collection("p", serializer="pickle").put("t", (1, 2))
        with pytest.raises(SerializerMismatch):
            b.collection("p")
        assert b.collection("p", serializer="pickle").get("t") == (1, 2)
        assert b.serializer_of("p") == "pickle" and b.serializer_of("zz") is None
        assert b.drop_collection("b") is True
        assert b.drop_collection("b") is False
        assert a.collections() == ["a:{x}", "é ü", "c", "p"]


def test_collection_dropped_by_another_client(redis_prefix_url: str) -> None:
    with kvlite.open(redis_prefix_url) as a, kvlite.open(redis_prefix_url) as b:
        ca = a.collection("x")
        ca.put("k", 1)
        assert b.drop_collection("x")
        for call in (lambda: ca.get("k"), lambda: len(ca), lambda: list(ca.items()), lambda: ca.put("k", 2),
                     lambda: ca.clear(), lambda: ca.purge_expired(), lambda: ca.ttl_many(["k"])):
            with pytest.raises(CollectionDropped, match="dropped"):  # as on SQLite: the collection is gone
                call()
        fresh = a.collection("x")  # a new collection under the same name
        fresh.put("k", 3)
        assert b.collection("x").get("k") == 3
        assert raw_client(redis_prefix_url).keys(f"{a.engine.prefix}:c:{ca._table.number}:*") == []


def test_drop_removes_every_redis_key(redis_prefix_url: str, clock: Clock) -> None:
    with kvlite.open(redis_prefix_url, clock=clock) as s:
        c = s.collection("x")
        c.put_many({i: i for i in range(50)}, ttl=10)
        c.put("forever", 1)
        client = raw_client(redis_prefix_url)
        assert sorted(client.keys(f"{s.engine.prefix}:c:*")) == sorted(k.encode() for k in c._table._all_keys)
        s.drop_collection("x")
        assert client.keys(f"{s.engine.prefix}:c:*") == []
        assert client.hlen(f"{s.engine.prefix}:registry") == 0


# -- the collection protocol -------------------------------------------------------------------


def test_put_get_delete_and_counts(coll: Any) -> None:
    assert coll.get("missing") is None and coll.get("missing", 7) == 7
    coll.put("a", {"x": 1})
    coll.put("b", [1, "two", None])
    assert coll.get("a") == {"x": 1} and coll.get("b") == [1, "two", None]
    assert len(coll) == coll.count() == 2 and "a" in coll and "z" not in coll
    assert coll.delete("a") is True and coll.delete("a") is False
    assert list(coll.keys()) == ["b"]
    assert coll.put_many([("c", 3), ("d", 4)]) == 2
    assert coll.get_many(["d", "nope", "c"], default=0) == [4, 0, 3]
    assert coll.delete_many(["c", "d", "nope"]) == 2
    assert coll.pop("b") == [1, "two", None]
    with pytest.raises(KeyError):
        coll.pop("b")
    assert coll.pop("b", "dflt") == "dflt"
    with pytest.raises(KeyError):
        coll.popitem()
    coll.put_many({"x": 1, "y": 2})
    coll.clear()
    assert len(coll) == 0 and list(coll.items()) == []
    coll.put("after-clear", 1)
    assert list(coll.keys()) == ["after-clear"]


def test_insertion_order_update_keeps_place_reinsert_moves(coll: Any) -> None:
    coll.put_many([("a", 1), ("b", 2), ("c", 3)])
    coll.put("a", 10)
    assert list(coll.items()) == [("a", 10), ("b", 2), ("c", 3)]
    coll.delete("a")
    coll.put("a", 11)
    assert list(coll.keys()) == ["b", "c", "a"]
    assert list(coll.keys(reverse=True)) == ["a", "c", "b"]
    assert list(coll.values(reverse=True)) == [11, 3, 2]
    assert coll.popitem() == ("a", 11)
    assert coll.setdefault("d", 4) == 4 and coll.setdefault("d", 5) == 4
    assert list(coll.keys()) == ["b", "c", "d"]


class Color(str, enum.Enum):
    RED = "red"


def test_key_types_and_equal_keys(coll: Any) -> None:
    coll.put(True, "bool")
    coll.put(1.0, "float")  # the same key: True stays the stored key
    coll.put(1, "int")
    assert typed(coll.items()) == [(bool, True, "int")]
    coll.put(b"1", "bytes")
    coll.put("1", "str")
    coll.put(-0.0, "zero")
    coll.put(0, "int zero")
    coll.put(2**63 - 1, "big")
    coll.put(-(2**63), "small")
    coll.put(1.5, "float")
    coll.put(float("inf"), "inf")
    coll.put(b"\x00\xff", "binary")
    coll.put("", "empty")
    coll.put("é\n:s:", "unicode")
    coll.put(Color.RED, "enum")
    assert typed(coll.items()) == [
        (bool, True, "int"), (bytes, b"1", "bytes"), (str, "1", "str"), (float, -0.0, "int zero"),
        (int, 2**63 - 1, "big"), (int, -(2**63), "small"), (float, 1.5, "float"), (float, float("inf"), "inf"),
        (bytes, b"\x00\xff", "binary"), (str, "", "empty"), (str, "é\n:s:", "unicode"), (str, "red", "enum")]
    assert type(next(iter(coll.keys()))) is bool
    assert coll.get(1) == coll.get(1.0) == coll.get(True) == "int"
    assert coll.get(0) == coll.get(False) == "int zero"
    assert coll.delete(1.0) is True
    coll.put(1, "back")
    assert typed(coll.items())[-1] == (int, 1, "back")
    with pytest.raises(InvalidKey):
        coll.put((1, 2), "tuple key")
    with pytest.raises(InvalidKey):
        coll.put(float("nan"), "nan")
    assert (1, 2) not in coll


def test_json_values_are_stored_as_the_serializer_wrote_them(rstore: Any, redis_prefix_url: str) -> None:
    coll = rstore.collection("c")
    value = {"b": "é😀\u2028", "a": [1.5, -0.0, 2**63 - 1, None, True], "nested": {"x": ""}}
    coll.put("k", value)
    text = kvlite.serializers.get("json").dumps(value)
    client = raw_client(redis_prefix_url)
    assert client.hget(coll._table._all_keys[2], "s:k") == text.encode("utf-8")  # plain JSON text in Redis
    found = coll._table.get("k")
    assert found == text and type(found) is str
    assert coll._table.entry("k", rstore.now()) == ("k", text)
    assert coll.get("k") == value


class _UpperText(kvlite.Serializer):
    """A non-JSON serializer that writes text: it must get ``str`` back, not ``bytes``."""

    name = "redis-test-upper"

    def dumps(self, value: Any) -> str:
        return str(value).upper()

    def loads(self, data: Any) -> Any:
        assert type(data) is str
        return data


def test_value_types_round_trip_for_other_serializers(rstore: Any) -> None:
    p = rstore.collection("p", serializer="pickle")
    value = {"t": (1, 2), "s": {1, 2}, "b": b"\x00\xff"}
    p.put(b"k", value)
    assert p.get(b"k") == value and type(p._table.get(b"k")) is bytes
    u = rstore.collection("u", serializer=_UpperText())
    u.put("k", "shout")
    assert u.get("k") == "SHOUT"
    assert list(u.items()) == [("k", "SHOUT")] and u.pop("k") == "SHOUT"
    # the value kind follows the value, also when an entry is overwritten with the other kind
    m = rstore.collection("m", serializer="pickle")
    m.put("k", 1)
    m._table.put("k", "text now", rstore.now(), None)
    assert m._table.get("k") == "text now" and type(m._table.get("k")) is str
    assert list(m._table.items(False, lambda data: data)) == [("k", "text now")]



class _Picky(kvlite.Serializer):
    """Text values; the stored text ``"bad"`` cannot be decoded."""

    name = "redis-test-picky"

    def dumps(self, value: Any) -> str:
        return str(value)

    def loads(self, data: Any) -> Any:
        if data == "bad":
            raise ValueError("cannot read 'bad'")
        return data


def test_pop_and_popitem_decode_before_they_remove(rstore: Any) -> None:
    c = rstore.collection("picky", serializer=_Picky())
    c.put("a", "ok")
    c.put("b", "bad")
    with pytest.raises(SerializationError):
        c.pop("b")
    with pytest.raises(SerializationError):
        c.popitem()  # "b" is the newest
    assert list(c.keys()) == ["a", "b"] and c.ttl("b") is None
    c.put("b", "fine")
    assert c.popitem() == ("b", "fine") and c.pop("a") == "ok" and len(c) == 0


def test_pop_and_popitem_take_the_entry_as_it_is_when_it_changed_after_the_read(rstore: Any) -> None:
    """The remove is a compare-and-delete: an entry changed between the read and the remove is read again."""
    c = rstore.collection("cas")
    c.put("k", "old")
    c.put("other", 1)
    calls: list[Any] = []

    def decode_and_overwrite(data: Any) -> Any:
        calls.append(data)
        if len(calls) == 1:
            c.put("k", "new")  # another client writes between pop's read and its remove
        return kvlite.serializers.get("json").loads(data)

    assert c._table.pop("k", rstore.now(), decode_and_overwrite) == "new"
    assert calls == ['"old"', '"new"'] and "k" not in c
    calls.clear()
    c.put("k2", "a")

    def decode_and_insert(data: Any) -> Any:
        calls.append(data)
        if len(calls) == 1:
            c.put("newer", "n")  # popitem must remove the newest entry as it is at the remove
        return kvlite.serializers.get("json").loads(data)

    assert c._table.popitem(rstore.now(), decode_and_insert) == ("newer", "n")
    assert list(c.keys()) == ["other", "k2"]


def test_lone_surrogate_keys_are_invalid(coll: Any) -> None:
    for call in (lambda: coll.get("\ud800"), lambda: coll.put("\ud800", 1), lambda: coll.ttl("\ud800"),
                 lambda: coll._table.get("\ud800"), lambda: coll._table.expiry("\ud800", 0.0),
                 lambda: coll._table.put("\ud800", "1", 0.0, None)):
        with pytest.raises(InvalidKey):
            call()
    assert "\ud800" not in coll and coll.pop("\ud800", 7) == 7 and len(coll) == 0

def test_put_many_is_all_or_nothing(coll: Any) -> None:
    coll.put_many({"a": 1, "b": 2})
    with pytest.raises(SerializationError):
        coll.put_many([("a", 10), ("bad", {1, 2}), ("c", 3)])
    with pytest.raises(InvalidKey):
        coll.put_many([("a", 10), (object(), 1), ("c", 3)])
    with pytest.raises(SerializationError):
        coll.put_many([("a", 10), ("nan", float("nan"))])
    assert list(coll.items()) == [("a", 1), ("b", 2)]


def test_iteration_pages_through_large_collections(coll: Any, clock: Clock) -> None:
    n = 2 * kvredis.PAGE + 37
    coll.put_many((i, i * 2) for i in range(n))
    coll.put_many(((i, -1) for i in range(0, n, 7)), ttl=5)  # updates keep their place
    coll.delete_many(range(3, n, 11))
    expected = {i: i * 2 if i % 7 else -1 for i in range(n) if not (i >= 3 and (i - 3) % 11 == 0)}
    assert list(coll.items()) == list(expected.items())
    assert list(coll.keys(reverse=True)) == list(reversed(expected))
    clock.advance(6)
    expected = {k: v for k, v in expected.items() if v != -1}
    assert list(coll.items()) == list(expected.items())
    assert list(coll.items(reverse=True)) == list(reversed(expected.items()))
    assert len(coll) == len(expected)
    assert coll.get_many(list(range(20))) == [expected.get(i) for i in range(20)]


# -- TTL on the store's clock ------------------------------------------------------------------


def test_ttl_counts_down_and_expires_everywhere(coll: Any, clock: Clock) -> None:
    coll.put("t", 1, ttl=10)
    coll.put("forever", 2)
    assert coll.ttl("t") == 10.0 and coll.ttl("forever") is None and coll.ttl("nope") is None
    clock.advance(4)
    assert coll.ttl("t") == 6.0 and coll.ttl_many(["t", "forever", "x"]) == [6.0, None, None]
    clock.advance(6)  # expires_at <= now: gone
    assert coll.get("t") is None and "t" not in coll and coll.ttl("t") is None
    assert len(coll) == 1 and list(coll.keys()) == ["forever"]
    assert coll.delete("t") is False and coll.pop("t", None) is None
    assert coll.get_many(["t", "forever"]) == [None, 2]


def test_put_over_expired_key_is_new_and_takes_the_new_key(coll: Any, clock: Clock) -> None:
    coll.put(True, "a", ttl=1)
    coll.put("b", "b")
    clock.advance(1)
    coll.put(1, "again")
    assert typed(coll.items()) == [(str, "b", "b"), (int, 1, "again")]
    assert coll.ttl(1) is None


def test_put_over_live_key_keeps_position_and_replaces_ttl(coll: Any, clock: Clock) -> None:
    coll.put("a", 1, ttl=5)
    coll.put("b", 2)
    coll.put("a", 3)  # no ttl: never expires now
    clock.advance(100)
    assert list(coll.items()) == [("a", 3), ("b", 2)]
    coll.put("b", 4, ttl=1)
    assert coll.ttl("b") == 1.0


def test_setdefault_and_popitem_skip_expired(coll: Any, clock: Clock) -> None:
    coll.put("a", 1)
    coll.put("b", 2, ttl=1)
    coll.put("c", 3, ttl=1)
    assert coll.setdefault("b", 20, ttl=3) == 2
    clock.advance(1)
    assert coll.setdefault("b", 20, ttl=3) == 20
    assert coll.ttl("b") == 3.0 and list(coll.keys()) == ["a", "b"]
    assert coll.popitem() == ("b", 20)
    assert coll.popitem() == ("a", 1)
    with pytest.raises(KeyError):
        coll.popitem()


def test_expired_entries_are_purged_lazily_and_by_purge_expired(rstore: Any, redis_prefix_url: str,
                                                                 clock: Clock) -> None:
    coll = rstore.collection("c")
    client = raw_client(redis_prefix_url)
    order, meta, data, exp, _ = coll._table._all_keys
    coll.put_many({i: i for i in range(kvredis.PURGE_BATCH + 20)}, ttl=1)
    coll.put("keep", 1)
    clock.advance(2)
    stats = coll.stats()
    assert (stats["rows"], stats["expired_pending"]) == (1, kvredis.PURGE_BATCH + 20)
    coll.put("write", 1)  # a write deletes up to PURGE_BATCH expired entries first
    assert client.hlen(data) == 2 + 20 and client.zcard(order) == 2 + 20 and client.hlen(meta) == 22
    assert rstore.purge_expired() == 20
    assert client.hlen(data) == 2 and client.zcard(exp) == 0
    assert coll.purge_expired() == 0
    assert list(coll.keys()) == ["keep", "write"]


def test_expired_entries_beyond_one_purge_batch_still_follow_the_rules(coll: Any, clock: Clock) -> None:
    """More expired entries than one write purges: the rules must not depend on the lazy purge."""
    coll.put("first", 0)
    filler = 5 * kvredis.PURGE_BATCH
    coll.put_many({f"f{i}": i for i in range(filler)}, ttl=1)  # purged first (earliest expiry)
    coll.put_many({"a": 1, "b": 2, "c": 3, "d": 4}, ttl=2)  # expired, but after the filler
    clock.advance(3)
    coll.put("a", "new")  # a purge batch runs; "a" is still stored, expired: it must count as new
    coll.put("z", 26)
    assert coll.setdefault("b", "default") == "default"
    assert coll.delete("c") is False
    assert coll.pop("d", "gone") == "gone"
    assert list(coll.items()) == [("first", 0), ("a", "new"), ("z", 26), ("b", "default")]
    assert coll.popitem() == ("b", "default")
    coll.put_many({"p": 1, "q": 2}, ttl=1)
    coll.put_many({f"g{i}": i for i in range(filler)}, ttl=0.5)
    clock.advance(2)
    assert coll.popitem() == ("z", 26)  # the newest entries ("q", "p") expired and are skipped
    assert len(coll) == 2


def test_stats_bytes_are_value_bytes(coll: Any) -> None:
    coll.put("a", "é")  # '"é"' is 4 bytes of UTF-8
    coll.put("b", [1])
    stats = coll.stats()
    assert (stats["rows"], stats["bytes"], stats["puts"]) == (2, 4 + 3, 2)


# -- a hypothesis state machine against a dict model, with TTLs and a fake clock ----------------

COLLIDING = [1, 1.0, True, 0, -0.0, False, "1", b"1", "", b"", "a", b"a"]
KEYS = st.one_of(st.sampled_from(COLLIDING), st.text(max_size=3), st.binary(max_size=3),
                 st.integers(-3, 3), st.floats(allow_nan=False, width=32))
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=4)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)
TTLS = st.sampled_from([None, None, 1, 2.5, 5])


class RedisCollectionMachine(RuleBasedStateMachine):
    """The collection and a ``dict`` of ``key -> (value, expires_at)`` minus the expired entries."""

    url: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.store = kvlite.open(self.url, clock=self.clock)
        self.coll = self.store.collection(f"m-{uuid.uuid4().hex}")
        self.view = self.coll.dict()
        self.model: dict[Any, tuple[Any, float | None]] = {}

    def teardown(self) -> None:
        self.store.drop_collection(self.coll.name)
        self.store.close()

    def live(self) -> dict[Any, tuple[Any, float | None]]:
        """The model after expiry (an expired key is gone, so a put makes it new, at the end)."""
        now = self.clock()
        for key in [k for k, (_, exp) in self.model.items() if exp is not None and exp <= now]:
            del self.model[key]
        return self.model

    def expires(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + float(ttl)

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def put(self, key: Any, value: Any, ttl: float | None) -> None:
        self.live()[key] = (value, self.expires(ttl))
        self.coll.put(key, value, ttl=ttl)

    @rule(pairs=st.lists(st.tuples(KEYS, VALUES), max_size=5), ttl=TTLS)
    def put_many(self, pairs: list[tuple[Any, Any]], ttl: float | None) -> None:
        model = self.live()
        for key, value in pairs:
            model[key] = (value, self.expires(ttl))
        assert self.coll.put_many(pairs, ttl=ttl) == len(pairs)

    @rule(key=KEYS)
    def delete(self, key: Any) -> None:
        assert self.coll.delete(key) == (self.live().pop(key, None) is not None)

    @rule(keys=st.lists(KEYS, max_size=4))
    def delete_many(self, keys: list[Any]) -> None:
        model = self.live()
        assert self.coll.delete_many(keys) == sum(model.pop(k, None) is not None for k in keys)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def pop_existing(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(list(self.model)))
        expected = self.live().pop(key, (None, None))[0]
        assert self.coll.pop(key, None) == expected

    @rule()
    def popitem(self) -> None:
        model = self.live()
        if not model:
            with pytest.raises(KeyError):
                self.view.popitem()
            return
        key, (value, _) = model.popitem()
        got = self.view.popitem()
        assert (type(got[0]), got) == (type(key), (key, value))

    @rule(key=KEYS, default=VALUES, ttl=TTLS)
    def setdefault(self, key: Any, default: Any, ttl: float | None) -> None:
        model = self.live()
        expected = model.setdefault(key, (default, self.expires(ttl)))[0]
        assert self.coll.setdefault(key, default, ttl=ttl) == expected

    @rule(key=KEYS)
    def read(self, key: Any) -> None:
        model = self.live()
        entry = model.get(key)
        assert self.coll.get(key, "<none>") == ("<none>" if entry is None else entry[0])
        assert (key in self.view) == (entry is not None)
        expected_ttl = None if entry is None or entry[1] is None else entry[1] - self.clock()
        assert self.coll.ttl(key) == expected_ttl

    @rule(seconds=st.sampled_from([0.5, 1, 2, 4]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def purge(self) -> None:
        pending = self.coll.stats()["expired_pending"]  # expired, not yet deleted by a write
        assert self.coll.purge_expired() == pending
        assert self.coll.stats()["expired_pending"] == 0

    @invariant()
    def same_entries_in_the_same_order(self) -> None:
        model = self.live()
        assert typed(self.view.items()) == typed((k, v) for k, (v, _) in model.items())
        assert list(reversed(self.view)) == list(reversed(model))
        assert len(self.coll) == len(model)
        now = self.clock()
        assert self.coll.ttl_many(list(model)) == [None if e is None else e - now for _, e in model.values()]


@pytest.fixture
def machine_url(redis_prefix_url: str) -> str:
    return redis_prefix_url


def test_collection_state_machine(machine_url: str) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    RedisCollectionMachine.url = machine_url
    run_state_machine_as_test(RedisCollectionMachine, settings=settings(
        max_examples=STATEFUL_EXAMPLES, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))


# -- CPython's mapping-protocol tests on a DictView over a Redis collection ---------------------


class RedisDictView(DictView):
    """Each instance is a new collection in the test server."""

    store: ClassVar[Any] = None
    _names = itertools.count()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        assert RedisDictView.store is not None
        self._collection = RedisDictView.store.collection(f"view-{next(self._names)}")
        if args or kwargs:
            self.update(*args, **kwargs)


@pytest.fixture(scope="module")
def _redis_views(redis_url: str) -> Iterator[None]:
    RedisDictView.store = kvlite.open(f"{redis_url}?prefix=views-{uuid.uuid4().hex}")
    yield
    RedisDictView.store.close()
    RedisDictView.store = None


@pytest.mark.usefixtures("_redis_views")
class TestRedisDictViewMapping(mapping_tests.TestMappingProtocol):
    """``TestMappingProtocol`` unmodified, except ``test_setdefault`` (values are stored copies)."""

    type2test = RedisDictView

    def _reference(self) -> dict[str, Any]:
        # The default reference holds a tuple, which JSON stores as a list; same shape, JSON-invariant.
        return {"1": "2", "key1": "value1", "key2": [1, 2, 3]}

    def test_setdefault(self) -> None:
        mapping_tests.BasicTestMappingProtocol.test_setdefault(self)
        d = self._empty_mapping()
        first = d.setdefault("key", [])
        first.append(3)  # a copy: the stored value stays []
        self.assertEqual(d["key"], [])
        self.assertEqual(d.setdefault("key", [9]), [])


def test_dict_view_over_redis_matches_dict(coll: Any) -> None:
    d = coll.dict()
    model: dict[Any, Any] = {}
    for target in (d, model):
        target.update([(1, "a"), ("x", [1]), (b"y", None)], z=2)
        target[True] = "b"
        del target["x"]
        target["x"] = 5
        target |= {2.5: "f"}
    assert typed(d.items()) == typed(model.items())
    assert d == model and list(reversed(d)) == list(reversed(model))
    assert d.pop("z") == model.pop("z") and d.popitem() == model.popitem()
    with pytest.raises(KeyError):
        d["nope"]
    with pytest.raises(KeyError):
        del d[(1, 2)]


# -- queries: the same answers as a memory:// store with the same data ---------------------------

DOCS = [
    ("u1", {"name": "Ada", "age": 36, "email": "ada@x", "tags": ["a", "b"], "x": 1}),
    ("u2", {"name": "Bob", "age": 25, "address": {"x": 2, "email": "bob@x"}}),
    (3, {"name": "Cy", "age": 41, "tags": [], "x": [{"x": 3}]}),
    (b"k4", {"name": "Di", "age": None}),
    (4.5, [1, {"x": 4}]),
    (True, "scalar"),
    ("u7", {"name": "Ed", "age": 30.5, "email": None}),
]
PATHS = [
    "$[?(@.age > 30)]", "$[?(@.age > 30)].name", "$[?@.age >= 25 && @.age < 41]", "$[?(@.email)]",
    "$..x", "$..email", "$.u1.tags[*]", "$.*.name", "$[*]", "$..*", "$[?(@.name == 'Bob')].address.x",
]


@pytest.fixture
def twins(rstore: Any, clock: Clock) -> Iterator[tuple[Any, Any, Any]]:
    """The same entries (two with TTLs, one expired) in Redis, ``memory://`` and SQLite ``:memory:``."""
    memory = kvlite.open("memory://", clock=clock)
    sqlite = kvlite.open(":memory:", clock=clock)
    triple = (rstore.collection("q"), memory.collection("q"), sqlite.collection("q"))
    for c in triple:
        for key, doc in DOCS:
            c.put(key, doc)
        c.put("gone", {"age": 99, "x": 9}, ttl=1)
        c.put("later", {"age": 50, "x": 8}, ttl=100)
    clock.advance(2)
    yield triple
    sqlite.close()


@pytest.mark.parametrize("path", PATHS)
def test_find_matches_memory_store(twins: tuple[Any, Any, Any], path: str) -> None:
    redis_coll, memory_coll, sqlite_coll = twins
    expected = list(memory_coll.find(path))
    assert list(redis_coll.find(path)) == expected
    assert list(sqlite_coll.find(path)) == expected  # the reference store agrees too
    assert redis_coll.count(path) == len(expected)
    assert list(redis_coll.find(path, limit=2, offset=1)) == expected[1:3]


def test_queries_with_order_and_objectpath_match_memory_store(twins: tuple[Any, Any, Any]) -> None:
    redis_coll, memory_coll, _ = twins
    for options in ({"order_by": "$.age"}, {"order_by": "-$.age"}, {"order_by": "$.name", "limit": 3}):
        assert list(redis_coll.find("$[*]", **options)) == list(memory_coll.find("$[*]", **options))
    for path in ("$.*[@.age > 30].name", "count($.*)"):
        assert list(redis_coll.find(path, engine="objectpath")) == list(memory_coll.find(path, engine="objectpath"))
    assert any(match[0] == "later" for match in redis_coll.find("$..x"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(st.tuples(st.sampled_from(["a", "b", "c", 1, 2, b"z", 1.5]),
                               st.dictionaries(st.sampled_from(["x", "age", "n"]),
                                               st.integers(0, 50) | st.text(max_size=2) | st.none(),
                                               max_size=3)), max_size=8))
def test_random_documents_query_like_memory(redis_url: str, docs: list[tuple[Any, Any]]) -> None:
    store = kvlite.open(f"{redis_url}?prefix=q-{uuid.uuid4().hex}")
    try:
        memory = kvlite.open("memory://")
        a, b = store.collection("q"), memory.collection("q")
        a.put_many(docs)
        b.put_many(docs)
        for path in ("$[?(@.age > 20)]", "$..x", "$[?(@.n)].n", "$.*"):
            assert list(a.find(path)) == list(b.find(path))
    finally:
        store.drop_collection("q")
        store.close()


# -- concurrency: atomic compound operations from several threads --------------------------------

THREADS = 4


def _run_threads(target: Any, n: int = THREADS) -> None:
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]


def test_pop_hands_a_token_to_exactly_one_thread(rstore: Any) -> None:
    coll = rstore.collection("token")
    coll.put("token", 0)
    rounds = 50
    seen: list[int] = []

    def worker(_: int) -> None:
        got = misses = 0
        while got < rounds:
            value = coll.pop("token", None)
            if value is None:
                misses += 1
                assert misses < 200_000, "the token was lost"
                continue
            seen.append(value)
            coll.put("token", value + 1)
            got += 1

    _run_threads(worker)
    assert coll.get("token") == THREADS * rounds  # no increment lost
    assert sorted(seen) == list(range(THREADS * rounds))  # no value handed out twice



def test_popitem_hands_each_entry_to_exactly_one_thread(rstore: Any) -> None:
    coll = rstore.collection("drain")
    coll.put_many({i: i for i in range(200)})
    taken: list[list[tuple[Any, Any]]] = [[] for _ in range(THREADS)]

    def worker(i: int) -> None:
        while True:
            try:
                taken[i].append(coll.popitem())
            except KeyError:
                return

    _run_threads(worker)
    everything = sorted(item for items in taken for item in items)
    assert everything == [(i, i) for i in range(200)] and len(coll) == 0
    for items in taken:  # each thread took the newest entry each time: decreasing keys
        assert [k for k, _ in items] == sorted((k for k, _ in items), reverse=True)

def test_setdefault_has_one_winner_per_key(rstore: Any) -> None:
    coll = rstore.collection("race")
    barrier = threading.Barrier(THREADS)
    results: dict[int, list[Any]] = {i: [] for i in range(THREADS)}

    def worker(i: int) -> None:
        for k in range(30):
            if k % 10 == 0:
                barrier.wait()
            results[i].append(coll.setdefault(f"k{k}", i))

    _run_threads(worker)
    for k in range(30):
        winners = {results[i][k] for i in range(THREADS)}
        assert len(winners) == 1 and coll.get(f"k{k}") in winners


def test_readers_never_see_half_a_put_many(rstore: Any) -> None:
    coll = rstore.collection("batch")
    keys = [f"k{i}" for i in range(200)]
    stop = threading.Event()
    observed: list[tuple[int, int, int]] = []

    def writer() -> None:
        try:
            for round_ in range(15):
                coll.put_many({k: round_ for k in keys})
                coll.delete_many(keys)
        finally:
            stop.set()

    def reader() -> None:
        while not stop.is_set():
            values = coll.get_many(keys)
            present = {v for v in values if v is not None}
            observed.append((len(coll), sum(v is not None for v in values), len(present)))

    _run_threads(lambda i: writer() if i == 0 else reader(), n=3)
    assert observed
    for count, present, distinct in observed:
        assert count in (0, 200) and present in (0, 200) and distinct <= 1


def test_clear_of_a_collection_another_client_dropped_raises(redis_prefix_url: str) -> None:
    """clear() is one script that checks the collection still exists, like every write."""
    with kvlite.open(redis_prefix_url) as a, kvlite.open(redis_prefix_url) as b:
        ca = a.collection("x")
        ca.put("k", 1)
        b.drop_collection("x")
        with pytest.raises(CollectionDropped, match="dropped"):
            ca.clear()
        assert b.collections() == [] and raw_client(redis_prefix_url).keys(f"{a.engine.prefix}:c:*") == []
        fresh = b.collection("x")
        fresh.put("k", 2)
        with pytest.raises(CollectionDropped, match="dropped"):
            ca.clear()  # not the new collection's entries either
        assert fresh.get("k") == 2
        fresh.clear()
        assert len(fresh) == 0 and b.collections() == ["x"]


# -- the examples of docs/backends/redis.md run against the test server ----------------------

DOCS_URL = "redis://localhost:6379/0?prefix=myapp"


def test_docs_examples_run(redis_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import types
    from pathlib import Path

    from helpers_docs import code_blocks

    page = Path(__file__).resolve().parent.parent / "docs" / "backends" / "redis.md"
    blocks = [b for b in code_blocks(page.read_text(encoding="utf-8")) if b.runs]
    assert blocks, "docs/backends/redis.md has no runnable example"
    monkeypatch.chdir(tmp_path)
    url = f"{redis_url}?prefix=docs-{uuid.uuid4().hex}"
    namespace = types.ModuleType("redis_docs_examples").__dict__
    for block in blocks:
        assert DOCS_URL in block.code, f"line {block.line}: examples open {DOCS_URL}"
        code = compile("\n" * (block.line - 1) + block.code.replace(DOCS_URL, url), str(page), "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation
