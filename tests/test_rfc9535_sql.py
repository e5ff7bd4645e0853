"""The SQLite push-down of RFC 9535 filters (kvlite/backends/sqlite/rfc9535_sql.py): which
conditions are exact, that ``count`` is one SQL ``COUNT`` when they all are, and that the
answer is the reference implementation's either way."""

from __future__ import annotations

from typing import Any

import jsonpath_rfc9535
import pytest

import kvlite
from kvlite.backends.sqlite import rfc9535_sql
from kvlite.query import rfc9535

DOCS: dict[str, Any] = {
    "a": {"age": 30, "name": "Ada", "tags": ["x", "y"], "ok": True},
    "b": {"age": 30.5, "name": "Bob", "tags": [], "ok": False},
    "c": {"age": "30", "name": "Cy", "ok": None},
    "d": {"age": True, "name": "Dee"},
    "e": {"age": 2**64 - 1, "name": "Eve", "tags": {"k": 1}},
    "f": {"name": "Fay", "age": None},
    "g": 7,
}


def _conditions(query: str) -> tuple[list[rfc9535_sql.Condition], bool]:
    (step,) = rfc9535.plan(rfc9535.parse(query)).steps
    assert step.filter is not None
    return rfc9535_sql.conditions(step.filter, '"kv_1"')


@pytest.mark.parametrize(("query", "exact"), [
    ("$[?@.age == 30]", True),
    ("$[?@.age != 30]", True),
    ("$[?@.age > 30 && @.name < 'C']", True),
    ("$[?@.age == true || @.ok == null]", True),
    ("$[?!@.ok]", True),
    ("$[?length(@.tags) >= 1]", True),
    ("$[?match(@.name, 'A.*')]", True),
    ("$[?search(@.name, 'y')]", True),
    ("$[?value(@.age) == 30]", True),
    ("$[?@.age == 18446744073709551615]", False),  # beyond 64 bits: widened, re-checked
    ("$[?@.age == @.other]", False),  # two queries: Python
    ("$[?@.age == 30 && @.tags[*]]", False),  # one side pushed, the other in Python
    ("$[?@['a b'] == 1]", False),  # a name SQL text cannot hold as it is
])
def test_exactness(query: str, exact: bool) -> None:
    where, is_exact = _conditions(query)
    assert is_exact is exact
    with kvlite.open(":memory:") as store:
        coll = store.collection("c")
        for key, doc in DOCS.items():
            coll.put(key, doc)
        expected = [node.value for node in jsonpath_rfc9535.find(query, DOCS)]
        assert list(coll.select(query)) == expected
        assert coll.count(query) == len(expected)
        counted = coll._table.count_matches("jsonpath", rfc9535.parse(query))
        assert (counted is not None) is exact


def test_count_is_one_sql_count_when_sql_decides() -> None:
    with kvlite.open(":memory:") as store:
        coll = store.collection("c", serializer="jsonb")
        for i in range(200):
            coll.put(f"k{i}", {"n": i, "even": i % 2 == 0})
        assert coll.count("$[?@.n >= 50 && @.even == true]") == 75
        assert coll._table.count_matches("jsonpath", rfc9535.parse("$[?@.n >= 50 && @.even == true]")) == 75
        assert coll.count("$[?@.n >= 150]") == 50


def test_match_and_search_run_in_sql_with_the_standards_regex() -> None:
    with kvlite.open(":memory:") as store:
        coll = store.collection("c")
        coll.put("a", {"s": "ab\nc"})
        coll.put("b", {"s": "abc"})
        coll.put("c", {"s": 3})
        plan = coll.explain("$[?match(@.s, 'a.c')]")
        assert "kvlite_rfc9535_match" in plan["steps"][0]["sql"]
        for query in ("$[?match(@.s, 'a.c')]", "$[?search(@.s, 'b.')]", "$[?match(@.s, 'a[')]"):
            docs = dict(coll.items())
            assert list(coll.select(query)) == [n.value for n in jsonpath_rfc9535.find(query, docs)]


@pytest.mark.parametrize("n", [10, 150, 250, 450])
def test_long_and_deep_filters_stay_within_sqlites_depth_limit(n: int) -> None:
    """SQLite refuses an expression nested 1000 deep: past MAX_DEPTH the filter is Python's."""
    docs = {str(i): {"a": i} for i in range(8)}
    queries = ["$[?" + " || ".join(f"@.a == {i}" for i in range(n)) + "]",
               "$[?" + " && ".join(f"@.a != {i + 3}" for i in range(n)) + "]",
               "$[?" + "!(" * min(n, 200) + "@.a == 1" + ")" * min(n, 200) + "]"]
    with kvlite.open(":memory:") as store:
        coll = store.collection("c")
        coll.put_many(docs)
        for query in queries:
            assert list(coll.select(query)) == [node.value for node in jsonpath_rfc9535.find(query, docs)]
