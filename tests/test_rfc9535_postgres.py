"""RFC 9535 JSONPath on PostgreSQL: the pushed-down answer is the reference implementation's.

PostgreSQL narrows the rows of a filter in SQL (kvlite/backends/postgres/rfc9535_sql.py)
and Python re-checks each one; these tests compare kvlite's answer with
``jsonpath_rfc9535.find`` on the collection loaded as ``{key: document}``, with and
without an index, and check that the filter really runs in PostgreSQL (``explain``).
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers_query import rfc9535_reference, strict
from server_postgres import new_schema_url

import kvlite

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

FIELDS = ["a", "b", "c"]
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(-3, 3), st.sampled_from([2**53, 2**53 + 1, 2**63 - 1, 2**64 - 1, -(2**63)]),
    st.floats(-4, 4, allow_nan=False).map(lambda f: round(f, 1)), st.sampled_from([0.1, 1e300, -0.0]),
    st.sampled_from(["", "a", "b", "ä", "A", "1", "true", "z\U0001f600"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(FIELDS), inner, max_size=3)),
                      max_leaves=6)
DOCUMENTS = st.one_of(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=3), SCALARS)
COLLECTIONS = st.dictionaries(st.text("kxyz", min_size=1, max_size=3), DOCUMENTS, max_size=10)


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value + "'"
    return repr(value) if isinstance(value, int) else repr(float(value)).replace("inf", "1e400")


@st.composite
def filters(draw: Any, depth: int = 0) -> str:
    kind = draw(st.integers(0, 5 if depth < 2 else 2))
    path = "@." + ".".join(draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=2)))
    if kind == 0:
        return path
    if kind in (1, 2):
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        literal = _literal(draw(SCALARS))
        return f"{path} {op} {literal}" if draw(st.booleans()) else f"{literal} {op} {path}"
    if kind == 3:
        return f"({draw(filters(depth + 1))} && {draw(filters(depth + 1))})"
    if kind == 4:
        return f"({draw(filters(depth + 1))} || {draw(filters(depth + 1))})"
    return f"!({draw(filters(depth + 1))})"


@pytest.fixture
def store(postgres_url: str) -> Iterator[Any]:
    with kvlite.open(new_schema_url(postgres_url)) as opened:
        yield opened


@SETTINGS
@given(docs=COLLECTIONS, condition=filters(), indexed=st.booleans(), tail=st.sampled_from(["", ".a", "..b"]))
def test_filters_answer_as_therfc9535_reference(store: Any, docs: dict[str, Any], condition: str, indexed: bool,
                                         tail: str) -> None:
    coll = store.collection("c")
    coll.clear()
    for path in coll.indexes():
        coll.drop_index(path)
    if indexed:
        coll.create_index("$.a")
    for key, doc in docs.items():
        coll.put(key, doc)
    query = f"$[?{condition}]{tail}"
    assert strict(list(coll.find(query))) == strict(rfc9535_reference(query, docs))
    assert coll.count(query) == len(rfc9535_reference(query, docs))


def test_a_filter_runs_in_postgresql(store: Any) -> None:
    coll = store.collection("people")
    coll.put("ada", {"age": 36, "name": "Ada"})
    coll.put("bob", {"age": "36", "name": "Bob"})
    coll.put("cy", {"age": 36.5})
    plan = coll.explain("$[?@.age == 36 && @.name]")
    (step,) = plan["steps"]
    assert step["kind"] == "scan"
    assert step["pushdown"] and "jsonb_path_exists" in step["sql"]
    assert list(coll.select("$[?@.age == 36 && @.name].name")) == ["Ada"]
    assert list(coll.select("$[?@.age > 36]")) == [{"age": 36.5}]


def test_an_index_serves_the_default_engines_filters(store: Any) -> None:
    coll = store.collection("people")
    for i in range(300):
        coll.put(f"p{i}", {"age": i % 90, "name": f"n{i}"} if i % 7 else {"age": str(i), "name": None})
    coll.create_index("$.age")
    for query in ("$[?@.age == 41]", "$[?@.age > 85]", "$[?@.age <= 2 && @.name]", "$[?@.age == '14']",
                  "$[?@.age]", "$[?@.age == null || @.age == true]"):
        (step,) = coll.explain(query)["steps"]
        assert any("(index)" in text for text in step["pushdown"]), (query, step["pushdown"])
        assert strict(list(coll.find(query))) == strict(rfc9535_reference(query, dict(coll.items()))), query
