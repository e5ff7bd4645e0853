"""TTLs on every engine, on the fake clock: an entry is invisible at once (at ``expires_at == now``),
a put over an expired key moves it to the end, ``purge_expired`` counts, ``ttl`` values, TTLs from
a millisecond to ``1e300`` seconds (kept and copied)."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
from conftest import Clock

import kvlite

from .base import TTL_TOLERANCE, EngineTests, StoreMaker, typed


class Expiry(EngineTests):
    """TTL and expiry, the same on every engine."""

    def test_ttl_values_and_expiry_at_once(self, store: Any, clock: Clock) -> None:
        c = store.collection("ttl")
        c.put("a", 1, ttl=10)
        c.put("b", 2, ttl=datetime.timedelta(seconds=2.5))
        c.put("forever", 3)
        assert c.ttl("a") == pytest.approx(10, abs=TTL_TOLERANCE)
        assert c.ttl("b") == pytest.approx(2.5, abs=TTL_TOLERANCE)
        assert c.ttl("forever") is None and c.ttl("missing") is None
        clock.advance(2.5)  # b's expiry time is now: it is gone at once
        assert c.ttl("a") == pytest.approx(7.5, abs=TTL_TOLERANCE)
        assert c.get("b") is None and c.get("b", "x") == "x" and "b" not in c and c.ttl("b") is None
        assert c.get_many(["a", "b"], default="x") == [1, "x"] and c.ttl_many(["b"]) == [None]
        assert list(c.keys()) == ["a", "forever"] and len(c) == 2 and c.count() == 2
        assert list(c.items(reverse=True)) == [("forever", 3), ("a", 1)]
        assert c.pop("b", "gone") == "gone" and c.delete("b") is False
        clock.advance(7.5)
        assert c.get("a") is None and list(c.items()) == [("forever", 3)]
        assert c.popitem() == ("forever", 3)
        with pytest.raises(KeyError):
            c.popitem()  # only expired entries are left

    def test_put_keeps_or_replaces_the_ttl(self, store: Any, clock: Clock) -> None:
        c = store.collection("ttl2")
        c.put("a", 1, ttl=10)
        c.put("a", 2)  # no ttl: never expires any more
        assert c.ttl("a") is None
        c.put("a", 3, ttl=5)
        clock.advance(4)
        assert c.ttl("a") == pytest.approx(1, abs=TTL_TOLERANCE)
        c.put_many({"a": 4, "b": 5}, ttl=20)
        assert c.ttl_many(["a", "b"]) == [pytest.approx(20, abs=TTL_TOLERANCE)] * 2
        assert c.setdefault("a", 0, ttl=1) == 4 and c.ttl("a") == pytest.approx(20, abs=TTL_TOLERANCE)
        clock.advance(20)
        assert len(c) == 0 and c.setdefault("a", 6) == 6 and c.ttl("a") is None

    def test_put_over_an_expired_key_moves_it_to_the_end_with_its_new_type(self, store: Any, clock: Clock) -> None:
        c = store.collection("revive")
        c.put(1, "one", ttl=5)
        c.put("b", "b")
        c.put("c", "c", ttl=50)
        clock.advance(5)
        c.put(True, "revived")  # 1 had expired: True is a new key, at the end
        c.put("c", "updated")  # c is live: it keeps its place
        assert typed(c.items()) == typed([("b", "b"), ("c", "updated"), (True, "revived")])
        assert c.ttl("c") is None and c.ttl(1) is None
        c.put("x", 0, ttl=1)
        clock.advance(1)
        assert c.setdefault("x", "new") == "new"  # setdefault over an expired key also counts as new
        assert list(c.keys()) == ["b", "c", True, "x"]

    def test_pop_of_an_expired_key_gives_the_default_and_removes_the_entry(self, store: Any, clock: Clock) -> None:
        c = store.collection("c")
        c.put("k", 1, ttl=1)
        clock.advance(5)
        assert c.pop("k", "D") == "D"
        with pytest.raises(KeyError):
            c.pop("k")
        assert c.stats()["expired_pending"] == 0  # as SQLite's DELETE ... RETURNING

    def test_purge_expired_counts(self, make_store: StoreMaker, clock: Clock) -> None:
        store = make_store()
        a, b = store.collection("a"), store.collection("b")
        a.put_many({1: 1, 2: 2, 3: 3}, ttl=5)
        a.put("live", 0)
        b.put_many({1: 1, 2: 2}, ttl=10)
        assert a.purge_expired() == 0 and store.purge_expired() == 0
        clock.advance(5)
        assert a.purge_expired() == 3 and a.purge_expired() == 0
        assert list(a.items()) == [("live", 0)]
        clock.advance(5)
        assert store.purge_expired() == 2 and store.purge_expired() == 0
        assert len(b) == 0 and len(a) == 1

    def test_long_and_short_ttls(self, store: Any, clock: Clock) -> None:
        c = store.collection("ttl-range")
        c.put("year", 1, ttl=datetime.timedelta(days=365))
        c.put("century", 2, ttl=100 * 365 * 86400.0)
        c.put("ms", 3, ttl=0.001)
        assert c.ttl_many(["year", "century", "ms"]) == [pytest.approx(365 * 86400.0, abs=TTL_TOLERANCE),
                                                         pytest.approx(100 * 365 * 86400.0, abs=TTL_TOLERANCE),
                                                         pytest.approx(0.001, abs=TTL_TOLERANCE)]
        clock.advance(0.001)
        assert list(c.keys()) == ["year", "century"]
        clock.advance(365 * 86400.0)
        assert list(c.keys()) == ["century"]

    def test_a_huge_ttl_is_kept_and_copied(self, store: Any, clock: Clock) -> None:
        """ttl=1e300 (SQLite keeps it as it is): accepted everywhere, never expires, ttl() is a finite
        number kvlite accepts as a TTL again (PostgreSQL caps it at the year ~293,500: documented), so
        kvlite.copy works from and to every backend."""
        c = store.collection("c")
        c.put("k", 1, ttl=1e300)
        c.put_many({"m": 2}, ttl=1e300)
        left = c.ttl("k")
        assert math.isfinite(left) and left > 7e12
        c.put("again", 3, ttl=left)  # what kvlite.copy does with it
        clock.advance(1e12)
        assert c.get("k") == 1 and c.get("m") == 2 and c.get("again") == 3
        copy = kvlite.open("memory://", clock=clock)
        try:
            assert kvlite.copy(store, copy, serializer="json", progress=False) == {"c": 3}
            assert copy.collection("c").ttl("k") > 7e12
        finally:
            copy.close()
        source = kvlite.open("memory://", clock=clock)
        try:
            source.collection("far").put("k", 1, ttl=1e300)
            kvlite.copy(source, store, progress=False)
            far = store.collection("far", serializer="json")
            assert far.get("k") == 1 and far.ttl("k") > 7e12
        finally:
            source.close()
