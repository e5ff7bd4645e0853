"""A hypothesis state machine: a file-backed DictView must stay indistinguishable from a ``dict``.

Keys mix ``str``/``bytes``/``int``/``float``/``bool`` and include the ones
``dict`` treats as equal (``1``, ``1.0``, ``True``, ``0``, ``-0.0``,
``False``), so key identity, key types and insertion order are all checked.
The file is closed and reopened, and read from a second connection, between
steps.  Heavier runs: ``KVLITE_STATEFUL_EXAMPLES=500 pytest tests/test_dictview_stateful.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import kvlite

MISSING = object()

COLLIDING = [1, 1.0, True, 0, -0.0, 0.0, False, "1", b"1", "", b"", "a", b"a"]

keys = st.one_of(
    st.sampled_from(COLLIDING),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.integers(-3, 3),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def typed(items: Any) -> list[tuple[type, Any, Any]]:
    return [(type(k), k, v) for k, v in items]


class DictViewMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="kvlite-stateful-")
        self.path = Path(self.tmp) / "machine.db"
        self.store = kvlite.open(self.path)
        self.view = self.store.dict("d")
        self.model: dict[Any, Any] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def both(self, op: Any) -> None:
        """Run ``op`` on the model and the view: same result, or the same exception type."""
        results = []
        for target in (self.model, self.view):
            try:
                results.append(("ok", op(target)))
            except KeyError as exc:
                results.append(("KeyError", exc.args))
        assert results[1] == results[0], results

    @rule(key=keys, value=json_values)
    def setitem(self, key: Any, value: Any) -> None:
        self.model[key] = value
        self.view[key] = value

    @rule(key=keys)
    def delitem(self, key: Any) -> None:
        def op(target: Any) -> None:
            del target[key]

        self.both(op)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delitem_existing(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(list(self.model)))
        self.both(lambda target: target.__delitem__(key))

    @rule(key=keys)
    def getitem(self, key: Any) -> None:
        self.both(lambda target: target[key])

    @rule(key=keys, default=st.none() | st.integers())
    def get(self, key: Any, default: Any) -> None:
        self.both(lambda target: target.get(key, default))
        self.both(lambda target: key in target)

    @rule(key=keys)
    def pop(self, key: Any) -> None:
        self.both(lambda target: target.pop(key))

    @rule(key=keys, default=json_values)
    def pop_with_default(self, key: Any, default: Any) -> None:
        self.both(lambda target: target.pop(key, default))

    @rule()
    def popitem(self) -> None:
        self.both(lambda target: target.popitem())

    @rule(key=keys, default=json_values)
    def setdefault(self, key: Any, default: Any) -> None:
        self.both(lambda target: target.setdefault(key, default))

    @rule(pairs=st.lists(st.tuples(keys, json_values), max_size=5),
          kwargs=st.dictionaries(st.sampled_from(["a", "b", "kw"]), json_values, max_size=2))
    def update(self, pairs: list[tuple[Any, Any]], kwargs: dict[str, Any]) -> None:
        self.model.update(pairs, **kwargs)
        self.view.update(pairs, **kwargs)

    @rule(other=st.dictionaries(keys, json_values, max_size=3))
    def ior(self, other: dict[Any, Any]) -> None:
        self.model |= other
        self.view |= other

    @precondition(lambda self: len(self.model) < 3)
    @rule()
    def clear(self) -> None:
        self.model.clear()
        self.view.clear()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = kvlite.open(self.path)
        self.view = self.store.dict("d")

    @rule()
    def second_connection(self) -> None:
        with kvlite.open(self.path) as other:
            view = other.dict("d")
            assert typed(view.items()) == typed(self.model.items())
            assert list(reversed(view)) == list(reversed(self.model))

    @invariant()
    def same_items_in_same_order_with_same_key_types(self) -> None:
        assert typed(self.view.items()) == typed(self.model.items())

    @invariant()
    def same_length(self) -> None:
        assert len(self.view) == len(self.model)
        assert bool(self.view) == bool(self.model)


DictViewMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("KVLITE_STATEFUL_EXAMPLES", "40")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDictViewMachine = DictViewMachine.TestCase
