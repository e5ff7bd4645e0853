"""TTL with an injected fake clock: expiry is immediate for every read, lazy on disk."""

from __future__ import annotations

import datetime
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvlite
from kvlite.errors import InvalidTTL

from conftest import Clock


@pytest.fixture
def coll(store: kvlite.Store) -> kvlite.Collection:
    return store.collection("c")


def test_ttl_counts_down_with_the_clock(coll: kvlite.Collection, clock: Clock) -> None:
    coll.put("k", "v", ttl=10)
    assert coll.ttl("k") == 10.0
    clock.advance(2.5)
    assert coll.ttl("k") == 7.5
    assert coll.get("k") == "v"


def test_timedelta_and_float_ttls(coll: kvlite.Collection, clock: Clock) -> None:
    coll.put("td", 1, ttl=datetime.timedelta(minutes=1, milliseconds=500))
    coll.put("f", 1, ttl=0.25)
    assert coll.ttl("td") == 60.5
    assert coll.ttl("f") == 0.25
    coll.put_many({"m": 1}, ttl=datetime.timedelta(seconds=3))
    assert coll.ttl("m") == 3.0


def test_expired_entry_is_invisible_to_every_read(coll: kvlite.Collection, clock: Clock) -> None:
    coll.put("keep", 1)
    coll.put("gone", 2, ttl=10)
    coll.put("later", 3)
    view = coll.dict()
    clock.advance(10)  # expiry is inclusive: at expires_at the entry is gone
    assert coll.get("gone") is None
    assert coll.get("gone", "dflt") == "dflt"
    assert "gone" not in coll
    assert "gone" not in view
    assert len(coll) == coll.count() == len(view) == 2
    assert list(coll.keys()) == ["keep", "later"]
    assert list(coll.keys(reverse=True)) == ["later", "keep"]
    assert list(coll.items()) == [("keep", 1), ("later", 3)]
    assert list(coll.values()) == [1, 3]
    assert coll.ttl("gone") is None
    assert coll.ttl_many(["gone", "keep"]) == [None, None]
    assert coll.get_many(["gone", "keep"]) == [None, 1]
    assert view.get("gone") is None
    with pytest.raises(KeyError):
        view["gone"]
    assert view == {"keep": 1, "later": 3}
    assert list(reversed(view)) == ["later", "keep"]


def test_entry_is_visible_until_its_expiry(coll: kvlite.Collection, clock: Clock) -> None:
    coll.put("k", 1, ttl=10)
    clock.advance(9.999)
    assert coll.get("k") == 1 and "k" in coll and len(coll) == 1
    clock.advance(0.001)
    assert coll.get("k") is None and "k" not in coll and len(coll) == 0


def test_expired_entry_cannot_be_deleted_or_popped(coll: kvlite.Collection, clock: Clock) -> None:
    coll.put("a", 1, ttl=1)
    coll.put("b", 2, ttl=1)
    coll.put("c", 3, ttl=1)
    coll.put("live", 0)
    clock.advance(1)
    assert coll.delete("a") is False
    assert coll.delete_many(["a", "b", "live"]) == 1
    with pytest.raises(KeyError):
        coll.pop("c")
    assert coll.pop("c", "dflt") == "dflt"
    with pytest.raises(KeyError):
        coll.popitem()
    with pytest.raises(KeyError):
        del coll.dict()["c"]


def test_popitem_skips_expired_tail(coll: kvlite.Collection, clock: Clock) -> None:
    coll.put("first", 1)
    coll.put("second", 2)
    coll.put("tail", 3, ttl=5)
    clock.advance(5)
    assert coll.popitem() == ("second", 2)
    assert list(coll.items()) == [("first", 1)]


def test_put_over_expired_key_is_a_new_key_at_the_end(coll: kvlite.Collection, clock: Clock) -> None:
    coll.put("a", 1, ttl=5)
    coll.put("b", 2)
    coll.put("c", 3)
    clock.advance(5)
    coll.put("a", 10)
    assert list(coll.items()) == [("b", 2), ("c", 3), ("a", 10)]
    assert coll.ttl("a") is None  # the new entry does not inherit the old TTL


def test_put_over_expired_key_takes_the_new_key_type(coll: kvlite.Collection, clock: Clock) -> None:
    coll.put(1, "int", ttl=5)
    coll.put("x", 0)
    clock.advance(5)
    coll.put(True, "bool")
    assert [(type(k), k, v) for k, v in coll.items()] == [(str, "x", 0), (bool, True, "bool")]


def test_put_over_live_key_keeps_position_and_replaces_ttl(coll: kvlite.Collection, clock: Clock) -> None:
    coll.put("a", 1, ttl=5)
    coll.put("b", 2)
    coll.put("a", 10, ttl=100)
    clock.advance(50)
    assert list(coll.items()) == [("a", 10), ("b", 2)]
    coll.put("a", 11)  # no ttl: never expires
    clock.advance(1000)
    assert coll.get("a") == 11 and coll.ttl("a") is None


def test_setdefault_over_expired_key_stores_default_at_the_end(coll: kvlite.Collection, clock: Clock) -> None:
    coll.put("a", "old", ttl=1)
    coll.put("b", 2)
    clock.advance(1)
    assert coll.setdefault("a", "new") == "new"
    assert list(coll.items()) == [("b", 2), ("a", "new")]
    assert coll.dict().setdefault("b", "ignored") == 2


def test_setdefault_with_ttl(coll: kvlite.Collection, clock: Clock) -> None:
    assert coll.setdefault("a", 1, ttl=3) == 1
    assert coll.ttl("a") == 3.0
    clock.advance(3)
    assert "a" not in coll


def test_put_many_ttl_applies_to_every_entry(coll: kvlite.Collection, clock: Clock) -> None:
    coll.put_many({"a": 1, "b": 2}, ttl=4)
    coll.put("c", 3)
    assert coll.ttl_many(["a", "b", "c"]) == [4.0, 4.0, None]
    clock.advance(4)
    assert list(coll.items()) == [("c", 3)]


def test_purge_expired_counts(store: kvlite.Store, clock: Clock) -> None:
    a, b = store.collection("a"), store.collection("b")
    a.put_many({"x": 1, "y": 2}, ttl=10)
    a.put("z", 3, ttl=100)
    a.put("forever", 4)
    b.put("x", 1, ttl=10)
    assert a.purge_expired() == 0
    clock.advance(10)
    assert a.purge_expired() == 2
    assert a.purge_expired() == 0
    clock.advance(90)
    assert store.purge_expired() == 2  # a's "z" and b's "x"
    assert store.purge_expired() == 0
    assert list(a.items()) == [("forever", 4)]
    assert list(b.items()) == []


def test_expired_rows_are_deleted_lazily(store: kvlite.Store, clock: Clock) -> None:
    coll = store.collection("c")
    coll.put("k", 1, ttl=1)
    clock.advance(1)
    assert len(coll) == 0
    # Still on disk until purged (the read did not delete it) ...
    assert coll.purge_expired() == 1


def test_expiry_is_seen_by_a_second_store_with_the_same_clock(open_store, clock: Clock) -> None:
    first = open_store().collection("c")
    second = open_store().collection("c")
    first.put("k", 1, ttl=5)
    assert second.ttl("k") == 5.0
    clock.advance(5)
    assert second.get("k") is None


BAD_TTLS = [0, 0.0, -1, -0.5, float("nan"), float("inf"), float("-inf"), "5", b"5", True, False, [5],
            datetime.timedelta(0), datetime.timedelta(seconds=-1), 1j]


@pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
def test_invalid_ttl_raises_and_writes_nothing(store: kvlite.Store, ttl: object) -> None:
    coll = store.collection("c")
    coll.put("existing", "old", ttl=50)
    attempts = [
        lambda: coll.put("new", 1, ttl=ttl),
        lambda: coll.put("existing", "new", ttl=ttl),
        lambda: coll.put_many({"new": 1, "existing": "new"}, ttl=ttl),
        lambda: coll.setdefault("new", 1, ttl=ttl),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidTTL):
            attempt()
    assert list(coll.items()) == [("existing", "old")]
    assert coll.ttl("existing") == 50.0
    assert issubclass(InvalidTTL, ValueError)


@settings(max_examples=60, deadline=None)
@given(entries=st.lists(st.tuples(st.sampled_from("abcdef"),
                                  st.one_of(st.none(), st.floats(0.001, 100, allow_nan=False))),
                        max_size=12),
       elapsed=st.floats(0, 120, allow_nan=False))
def test_visible_entries_match_a_model(entries: list[tuple[str, float | None]], elapsed: float) -> None:
    """After any puts (each with or without a TTL) and a jump of the clock,
    the collection shows exactly the entries whose expiry is still ahead."""
    clock = Clock(0.0)
    with kvlite.open(":memory:", clock=clock) as db:
        coll = db.collection("c")
        model: dict[str, tuple[int, float]] = {}  # key -> (value, expires_at)
        for i, (key, ttl) in enumerate(entries):
            coll.put(key, i, ttl=ttl)
            model[key] = (i, math.inf if ttl is None else ttl)
        clock.advance(elapsed)
        expected = {k: v for k, (v, expires) in model.items() if expires > elapsed}
        assert dict(coll.items()) == expected
        assert len(coll) == len(expected)
        assert [k for k in model if k in coll] == list(expected)
        for key, (_, expires) in model.items():
            remaining = coll.ttl(key)
            if key in expected and expires != math.inf:
                assert remaining == pytest.approx(expires - elapsed)
            else:
                assert remaining is None
