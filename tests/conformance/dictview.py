"""The dict view on every engine: a Hypothesis state machine against a plain ``dict`` model with
expiry, and the basics next to a ``dict``.  (CPython's own mapping-protocol TestCase, one per
engine, is generated in tests/test_conformance.py: a unittest TestCase cannot be a mixin here.)"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest
from conftest import Clock
from helpers_query import strict
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from .base import EXAMPLES, HYPOTHESIS, TTL_TOLERANCE, EngineTests, key_types, typed

MODEL_KEYS = st.sampled_from(["a", "b", "", "é", b"a", b"", 0, 1, -1, 1.0, 0.0, 2.5, True, False, 2**40])
MODEL_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5)
TTLS = st.sampled_from([0.25, 1.0, 2.5])  # multiples of 0.25: exact on every engine's clock
MISSING = "<missing>"


class DictModelMachine(RuleBasedStateMachine):
    """A DictView (and its collection) against ``{key: (value, expires_at)}`` in a plain ``dict``.

    The model keeps expired entries until they are overwritten, deleted,
    popped or purged, exactly as the backends do; the live part (in order,
    with the first key stored) must equal the view after every step.
    """

    store: ClassVar[Any] = None
    clock: ClassVar[Clock | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.coll = type(self).store.collection(f"machine-{uuid.uuid4().hex[:12]}")
        self.view = self.coll.dict()
        self.model: dict[Any, tuple[Any, float | None]] = {}

    @property
    def now(self) -> float:
        assert self.clock is not None
        return self.clock.now

    def _expires(self, key: Any) -> float | None:
        return self.model[key][1]

    def _live(self, key: Any) -> bool:
        if key not in self.model:
            return False
        expires = self._expires(key)
        return expires is None or expires > self.now

    def _set(self, key: Any, value: Any, expires: float | None) -> None:
        if key in self.model and not self._live(key):
            del self.model[key]  # an expired key counts as new
        self.model[key] = (value, expires)

    def live_items(self) -> list[tuple[Any, Any]]:
        return [(k, v) for k, (v, e) in self.model.items() if e is None or e > self.now]

    @rule(key=MODEL_KEYS, value=MODEL_VALUES)
    def set_item(self, key: Any, value: Any) -> None:
        self.view[key] = value
        self._set(key, value, None)

    @rule(key=MODEL_KEYS, value=MODEL_VALUES, ttl=TTLS)
    def put_with_ttl(self, key: Any, value: Any, ttl: float) -> None:
        self.coll.put(key, value, ttl=ttl)
        self._set(key, value, self.now + ttl)

    @rule(key=MODEL_KEYS)
    def del_item(self, key: Any) -> None:
        live = self._live(key)
        if live:
            del self.view[key]
        else:
            with pytest.raises(KeyError):
                del self.view[key]
        self.model.pop(key, None)

    @rule(key=MODEL_KEYS)
    def pop(self, key: Any) -> None:
        expected = self.model[key][0] if self._live(key) else MISSING
        assert strict(self.view.pop(key, MISSING)) == strict(expected)
        self.model.pop(key, None)

    @rule()
    def popitem(self) -> None:
        live = self.live_items()
        if not live:
            with pytest.raises(KeyError):
                self.view.popitem()
            return
        assert strict(self.view.popitem()) == strict(live[-1])
        del self.model[live[-1][0]]

    @rule(key=MODEL_KEYS, value=MODEL_VALUES)
    def setdefault(self, key: Any, value: Any) -> None:
        expected = self.model[key][0] if self._live(key) else value
        assert strict(self.view.setdefault(key, value)) == strict(expected)
        if not self._live(key):
            self._set(key, value, None)

    @rule(pairs=st.lists(st.tuples(MODEL_KEYS, MODEL_VALUES), max_size=4))
    def update(self, pairs: list[tuple[Any, Any]]) -> None:
        self.view.update(pairs)
        for key, value in pairs:
            self._set(key, value, None)

    @rule(keys=st.lists(MODEL_KEYS, max_size=4))
    def delete_many(self, keys: list[Any]) -> None:
        removed = 0
        for key in keys:
            removed += self._live(key)
            self.model.pop(key, None)
        assert self.coll.delete_many(keys) == removed

    @rule(keys=st.lists(MODEL_KEYS, max_size=4))
    def get_many(self, keys: list[Any]) -> None:
        expected = [self.model[k][0] if self._live(k) else MISSING for k in keys]
        assert strict(self.coll.get_many(keys, default=MISSING)) == strict(expected)
        assert [k in self.view for k in keys] == [self._live(k) for k in keys]

    @rule(seconds=st.sampled_from([0.25, 1.0, 3.0]))
    def advance(self, seconds: float) -> None:
        assert self.clock is not None
        self.clock.advance(seconds)

    @rule()
    def purge(self) -> None:
        expired = [k for k in self.model if not self._live(k)]
        # Backends may delete expired entries earlier (Redis does on every write): at most this many.
        assert 0 <= self.coll.purge_expired() <= len(expired)
        for key in expired:
            del self.model[key]
        assert self.coll.purge_expired() == 0

    @invariant()
    def same_as_model(self) -> None:
        live = self.live_items()
        assert strict(list(self.view.items())) == strict(live)
        assert len(self.view) == len(live)
        assert key_types(reversed(self.view)) == key_types(k for k, _ in reversed(live))
        keys = list(self.model)
        expected_ttls: list[float | None] = []
        for k in keys:
            expires = self._expires(k)
            expected_ttls.append(None if not self._live(k) or expires is None else expires - self.now)
        got = self.coll.ttl_many(keys)
        assert [t is None for t in got] == [t is None for t in expected_ttls]
        assert [t for t in got if t is not None] == pytest.approx([t for t in expected_ttls if t is not None],
                                                                   abs=TTL_TOLERANCE)


class DictViews(EngineTests):
    """DictView against a dict model, and next to a dict."""

    def test_dict_view_against_a_dict_model(self, store: Any, clock: Clock) -> None:
        DictModelMachine.store, DictModelMachine.clock = store, clock
        try:
            run_state_machine_as_test(DictModelMachine, settings=settings(
                max_examples=EXAMPLES or 8, stateful_step_count=20, **HYPOTHESIS))
        finally:
            DictModelMachine.store = DictModelMachine.clock = None

    def test_dict_view_basics(self, store: Any) -> None:
        d = store.dict("view")
        ref: dict[Any, Any] = {}
        targets: tuple[Any, ...] = (d, ref)
        for target in targets:
            target.update([(1, "a"), ("x", [1]), (b"y", None)], z=2)
            target[True] = "b"
            del target["x"]
            target["x"] = 5
            target |= {2.5: "f"}
        assert d == ref and typed(d.items()) == typed(ref.items())
        assert list(reversed(d)) == list(reversed(ref)) and list(d.values()) == list(ref.values())
        assert d.pop("z") == ref.pop("z") and d.popitem() == ref.popitem()
        with pytest.raises(KeyError):
            d["nope"]
        with pytest.raises(KeyError):
            del d[(1, 2)]
        with pytest.raises(TypeError):
            d[[1]] = 0  # unhashable, as in dict
        assert d.get((1, 2), "default") == "default" and (1, 2) not in d
