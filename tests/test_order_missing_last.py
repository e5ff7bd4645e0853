"""``order_by`` with ``missing_last=True``: documents whose field is missing or ``null`` come
after every other, ascending or descending, on every engine; checked against a model."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvlite

FIELD_VALUES = st.one_of(
    st.none(), st.just("MISSING"), st.integers(-3, 3), st.sampled_from([2**63 - 1, 2**64 - 1, -(2**63), 2**53 + 1]),
    st.floats(-3, 3, allow_nan=False), st.sampled_from(["", "a", "b", "ä", "Z", "10"]))
ROWS = st.lists(FIELD_VALUES, max_size=12)

STORES = {"sqlite-json": (":memory:", "json", False), "sqlite-jsonb": (":memory:", "jsonb", False),
          "sqlite-indexed": (":memory:", "json", True), "memory": ("memory://", "json", False)}


def _model(rows: list[Any], desc: bool, missing_last: bool) -> list[str]:
    """The keys in order: numbers (exactly), then strings (by code point); descending reverses
    that; ties keep insertion order; missing/null first ascending, last descending or with
    ``missing_last``."""
    keys = [f"k{i}" for i in range(len(rows))]
    present = [(k, v) for k, v in zip(keys, rows) if v is not None and v != "MISSING"]
    absent = [k for k, v in zip(keys, rows) if v is None or v == "MISSING"]
    numbers = [(k, v) for k, v in present if not isinstance(v, str)]
    strings = [(k, v) for k, v in present if isinstance(v, str)]
    ordered = sorted(numbers, key=lambda kv: kv[1], reverse=desc)  # stable: ties keep insertion order
    text = sorted(strings, key=lambda kv: kv[1], reverse=desc)
    values = [k for k, _ in (text + ordered if desc else ordered + text)]
    if missing_last or desc:
        return values + absent
    return absent + values


@pytest.mark.parametrize("engine", list(STORES))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, desc=st.booleans(), missing_last=st.booleans())
def test_order_matches_the_model(engine: str, rows: list[Any], desc: bool, missing_last: bool) -> None:
    url, serializer, indexed = STORES[engine]
    with kvlite.open(url, serializer=serializer) as store:
        coll = store.collection("c")
        if indexed:
            coll.create_index("$.f")
        for i, value in enumerate(rows):
            coll.put(f"k{i}", {} if value == "MISSING" else {"f": value})
        expected = _model(rows, desc, missing_last)
        got = [k for k, _ in coll.find("$.*", order_by="$.f", desc=desc, missing_last=missing_last)]
        assert got == expected
        # jsonpath-ng's dialect walks the same order; positions on the root (an object) match
        # nothing in jsonpath-ng 1.16+, whatever the order.
        for path, want in (("$.*", expected), ("$[?(@)]", expected), ("$[-1]", []), ("$[1:3]", []),
                           ("$['k0']", expected[:0] + (["k0"] if rows else []))):
            found = [k for k, _ in coll.find(path, engine="jsonpath-ng", order_by="$.f", desc=desc,
                                             missing_last=missing_last)]
            assert found == want, path


def test_missing_last_needs_order_by() -> None:
    with kvlite.open(":memory:") as store:
        with pytest.raises(ValueError, match="order_by"):
            list(store.collection("c").find("$.*", missing_last=True))


def test_explain_shows_the_order() -> None:
    with kvlite.open(":memory:") as store:
        coll = store.collection("c")
        plan = coll.explain("$.*", order_by="$.age", missing_last=True)
        assert "IS NULL" in plan["steps"][0]["sql"]
