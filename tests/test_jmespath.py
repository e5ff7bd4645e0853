"""engine="jmespath": kvlite's answers against ``jmespath.search`` on the loaded collection.

The model: ``jmespath.search(path, {view_key(key): document})`` (insertion order) read as
matches -- a list's items, nothing for ``None``, else the one value -- or the exception it
raises, which kvlite raises as :class:`QueryEvaluationError`.  Hypothesis draws collections
(ints, floats, bools, ``None``, strings, nested objects and arrays, missing fields, some
documents that are not objects) and queries (filter projections over a few field names,
projections, whole-collection expressions) and runs them on SQLite (json, jsonb, with an
expression index) and on the memory engine.  The SQL translation of filter conditions is
also checked on its own, row by row: every document jmespath accepts or raises on passes,
a row SQL marks sure is accepted, and an exact condition passes nothing else.

``KVLITE_JMESPATH_EXAMPLES`` raises the number of examples.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

import apsw
import jmespath
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvlite
from kvlite.backends.sqlite import jmespath_sql
from kvlite.errors import QueryEvaluationError, QuerySyntaxError
from kvlite.keys import view as view_key
from kvlite.query import jmespath as qjm

EXAMPLES = int(os.environ.get("KVLITE_JMESPATH_EXAMPLES", "0")) or 150
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- data -------------------------------------------------------------------------------------

FIELDS = ("a", "b", "age", "name")
TEXTS = ("", "a", "Ada", "b", "x y", "é", "0", "30", "ß", "日本", "Bob")
BIG_INTS = (2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**63 + 1, 2**64 - 1)  # >= 2**63: a REAL to SQLite
FLOATS = (0.0, -0.0, 1.0, 30.0, 30.5, 0.1 + 0.2, 1e300, -2.5, 9.5, 2.0**63)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 45),
    st.sampled_from((0, 1, 30, 31)),
    st.sampled_from(BIG_INTS),
    st.sampled_from(FLOATS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(TEXTS),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(FIELDS), inner, max_size=3)),
    max_leaves=6,
)
DOCUMENTS = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=4),
    st.dictionaries(st.sampled_from(FIELDS), SCALARS, max_size=4),
    st.dictionaries(st.sampled_from(FIELDS), SCALARS, max_size=4),
    VALUES,  # a document that is not an object, now and then
)
COLLECTIONS = st.lists(st.tuples(st.text("kpqz", min_size=1, max_size=3), DOCUMENTS), max_size=8,
                       unique_by=lambda entry: entry[0])

# -- queries ----------------------------------------------------------------------------------


def _literal(value: Any) -> str:
    if isinstance(value, str) and not value.startswith("`"):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"`{json.dumps(value)}`"


LITERAL_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 45), st.sampled_from((0, 1, 30)),
                           st.sampled_from((0, 1, 30)), st.sampled_from(BIG_INTS + (2**64,)),
                           st.sampled_from(FLOATS), st.sampled_from(TEXTS),
                           st.sampled_from([[], {}, [1], {"a": 1}]))
LITERALS = st.one_of(LITERAL_VALUES.map(_literal), st.sampled_from(["`NaN`", "`1e400`", "`-1e400`"]))
CHAINS = st.sampled_from(FIELDS + ("age", "age", "name", "a.b", "a.age", "@.age", "@", "b.a.name"))
OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
# Conditions SQL leaves to Python: functions (which may raise), two fields, a list literal.
OTHERS = st.sampled_from(["length(name) > `1`", "a == b", "age < b", "contains(name, 'a')", "abs(age) > `3`",
                          "to_number(name) == `30`", "type(a) == 'object'", "a == `[1]`", "`1` < `2`",
                          "`1` < 'a'", "!`0`", "not_null(b)"])


@st.composite
def comparisons(draw: Any) -> str:
    chain, op, literal = draw(CHAINS), draw(OPS), draw(LITERALS)
    return f"{literal} {op} {chain}" if draw(st.booleans()) else f"{chain} {op} {literal}"


LEAVES = st.one_of(comparisons(), comparisons(), CHAINS, OTHERS)
CONDITIONS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]} && {pair[1]})"),
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]} || {pair[1]})"),
        inner.map(lambda cond: f"!({cond})"),
    ),
    max_leaves=5,
)
TAILS = st.sampled_from(["", ".name", ".a.b", ".age", ".[name, age]", ".{n: name, a: age}", ".a[*].b"])


@st.composite
def queries(draw: Any) -> str:
    cond, tail = draw(CONDITIONS), draw(TAILS)
    return draw(st.sampled_from([
        f"values(@)[?{cond}]{tail}",
        f"values(@)[?{cond}]{tail}",
        f"values(@)[?{cond}]{tail}",
        f"values(@)[?{cond}]",
        f"values(@)[*]{tail}",
        f"*{tail}",
        f"length(values(@)[?{cond}])",
        f"values(@)[?{cond}] | [0]",
        f"values(@)[?{cond}] | [-1]{tail}",
        "keys(@)",
        "values(@)[0]",
        "values(@)",
        f"values(@)[]{tail}",
    ]))


# -- the model --------------------------------------------------------------------------------


def strict(value: Any) -> Any:
    """``value`` in a form whose ``==`` also compares types (``1``, ``1.0``, ``True``) and dict order."""
    if isinstance(value, dict):
        return ("dict", tuple((k, strict(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", tuple(strict(v) for v in value))
    if isinstance(value, float) and value != value:
        return ("float", "nan")
    return (type(value).__name__, repr(value))


def loaded(coll: kvlite.Collection) -> tuple[dict[str, Any], dict[str, Any]]:
    mapping: dict[str, Any] = {}
    originals: dict[str, Any] = {}
    for key, doc in coll.items():
        mapping[view_key(key)] = doc
        originals[view_key(key)] = key
    return mapping, originals


def model(path: str, mapping: dict[str, Any]) -> list[Any] | type[Exception]:
    """What kvlite must answer: jmespath's result as matches, or the exception it raises."""
    try:
        result = jmespath.search(path, mapping)
    except Exception as exc:  # jmespath's own error while evaluating
        return type(exc)
    if result is None:
        return []
    return result if isinstance(result, list) else [result]


def collections(entries: list[tuple[str, Any]]) -> Iterator[tuple[str, kvlite.Collection]]:
    """The same entries in every engine variant: SQLite json, jsonb, json with an index on
    ``$.age`` and ``$.a.b``, and the memory engine."""
    for name, url, serializer, indexes in [("json", ":memory:", "json", ()), ("jsonb", ":memory:", "jsonb", ()),
                                           ("indexed", ":memory:", "json", ("$.age", "$.a.b")),
                                           ("memory", "memory://", None, ())]:
        store = kvlite.open(url)
        try:
            coll = store.collection("c", serializer=serializer) if serializer else store.collection("c")
            for path in indexes:
                coll.create_index(path)
            for key, doc in entries:
                coll.put(key, doc)
            yield name, coll
        finally:
            store.close()


def check(coll: kvlite.Collection, path: str) -> None:
    mapping, originals = loaded(coll)
    expected = model(path, mapping)
    if not isinstance(expected, list):
        with pytest.raises(QueryEvaluationError):
            list(coll.select(path, engine="jmespath"))
        with pytest.raises(QueryEvaluationError):
            coll.count(path, engine="jmespath")
        return
    found = list(coll.find(path, engine="jmespath"))
    assert [strict(v) for _, v in found] == [strict(v) for v in expected]
    assert coll.count(path, engine="jmespath") == len(expected)
    parsed = qjm.parse(path)
    if parsed.rowwise:
        # Each match comes from the document named by its key: the model on that document alone.
        per_document = []
        for name, doc in mapping.items():
            one = model(path, {name: doc})
            assert isinstance(one, list)
            per_document += [(originals[name], strict(v)) for v in one]
        assert [(k, strict(v)) for k, v in found] == per_document
    else:
        by_identity = {id(doc): originals[name] for name, doc in mapping.items()
                       if isinstance(doc, (dict, list, str))}
        for key, value in found:
            if key is not None:
                assert strict(value) == strict(mapping[view_key(key)])
            else:
                assert not (isinstance(value, (dict, list, str)) and id(value) in by_identity
                            and strict(value) == strict(mapping[view_key(by_identity[id(value)])]))
    if len(expected) > 1:
        assert [strict(v) for v in coll.select(path, engine="jmespath", offset=1, limit=1)] == [strict(expected[1])]


@SETTINGS
@given(entries=COLLECTIONS, path=queries())
def test_matches_jmespath_search_on_every_engine(entries: list[tuple[str, Any]], path: str) -> None:
    answers = {}
    for name, coll in collections(entries):
        check(coll, path)
        try:
            answers[name] = [strict(v) for v in coll.select(path, engine="jmespath")]
        except QueryEvaluationError:
            answers[name] = "raises"
    assert len({repr(a) for a in answers.values()}) == 1, answers


@SETTINGS
@given(entries=COLLECTIONS, cond=CONDITIONS, tail=TAILS, order=st.sampled_from(["$.age", "-$.age", "$.name"]))
def test_filter_projection_with_order_by(entries: list[tuple[str, Any]], cond: str, tail: str, order: str) -> None:
    """``order_by`` orders the documents first; the answer is the one on the memory engine
    (which sorts in Python), and, row-wise, the model on each document in that order."""
    path = f"values(@)[?{cond}]{tail}"
    answers = {}
    for name, coll in collections(entries):
        try:
            answers[name] = [(k, strict(v)) for k, v in coll.find(path, engine="jmespath", order_by=order)]
        except QueryEvaluationError:
            answers[name] = "raises"
        if answers[name] != "raises":
            ordered = [(k, d) for k, d in coll.find("values(@)[*]", engine="jmespath", order_by=order)]
            per_document = []
            for key, doc in ordered:
                one = model(path, {view_key(key): doc})
                assert isinstance(one, list)
                per_document += [(key, strict(v)) for v in one]
            assert answers[name] == per_document
    assert len({repr(a) for a in answers.values()}) == 1, answers


# -- the SQL translation alone -----------------------------------------------------------------

_DB = apsw.Connection(":memory:")


def _accepts(cond: str, doc: Any) -> bool | type[Exception]:
    """Whether jmespath's filter keeps ``doc`` (alone in a list), or the exception it raises."""
    try:
        # `.abs(`1`)`: 1 for a kept document (a kept null document would be left out as null)
        return jmespath.search(f"[?{cond}].abs(`1`)", [doc]) == [1]
    except Exception as exc:
        return type(exc)


@settings(max_examples=EXAMPLES * 4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cond=CONDITIONS, docs=st.lists(DOCUMENTS, min_size=1, max_size=6))
def test_sql_condition_lets_through_every_accepted_or_raising_document(cond: str, docs: list[Any]) -> None:
    parsed = qjm.parse(f"values(@)[?{cond}]")
    found, exact = jmespath_sql.conditions(parsed.condition)
    assert exact == (bool(found) and found[0].exact)
    if not found:
        return
    (condition,) = found
    assert condition.sql.count("?") == len(condition.params)
    assert condition.sure.count("?") == len(condition.sure_params)
    for doc in docs:
        text = orjson.dumps(doc).decode()
        # The loaded document, as SQLite collections decode it.
        doc = orjson.loads(text)
        for stored in ("?", "jsonb(?)"):
            sql = f"SELECT ({condition.sql}), ({condition.sure}) FROM (SELECT {stored} AS value)"
            passes, sure = _DB.execute(sql, condition.params + condition.sure_params + [text]).fetchone()
            accepted = _accepts(cond, doc)
            assert passes in (0, 1) and sure in (0, 1), (passes, sure)
            if accepted is not False:  # accepted, or raises: the Python re-check must see it
                assert passes == 1, (condition.sql, doc, accepted)
            if sure:
                assert accepted is True, (condition.sure, doc, accepted)
                assert passes == 1
            if exact:
                assert passes == (accepted is True), (condition.sql, doc, accepted)


def _check_rows(cond: str, docs: list[Any]) -> bool:
    """The SQL of ``cond`` on each of ``docs`` (stored as json and as jsonb) against jmespath;
    whether ``cond`` is pushed down at all."""
    parsed = qjm.parse(f"values(@)[?{cond}]")
    found, exact = jmespath_sql.conditions(parsed.condition)
    if not found:
        return False
    (condition,) = found
    for doc in docs:
        text = orjson.dumps(doc).decode()
        accepted = _accepts(cond, doc)
        for stored in ("?", "jsonb(?)"):
            sql = f"SELECT ({condition.sql}), ({condition.sure}) FROM (SELECT {stored} AS value)"
            passes, sure = _DB.execute(sql, condition.params + condition.sure_params + [text]).fetchone()
            if accepted is not False:
                assert passes == 1, (cond, doc, accepted)
            if sure:
                assert accepted is True, (cond, doc, accepted)
            if exact:
                assert passes == (accepted is True), (cond, doc, accepted)
    return True


GRID_VALUES = [None, True, False, 0, 1, -1, 0.0, -0.0, 1.0, 30, 31, 29.5, 30.5, 2**53 + 1, 2**63 - 1, -(2**63), 2**63,
               2**63 + 1, 2**64 - 1, 1e300, "", "a", "b", "30", "Ada", "é", [], [0], [""], {}, {"a": 1}, {"age": 30}]
GRID_LITERALS = ["`null`", "`true`", "`false`", "`0`", "`1`", "`-1`", "`0.0`", "`1.0`", "`30`", "`30.5`",
                 "`9223372036854775807`", "`9223372036854775808`", "`18446744073709551615`", "`1e300`", "`NaN`",
                 "`1e400`", "''", "'a'", "'30'", "'Ada'", "`[]`", "`{}`", "`[0]`"]
BIG_LITERALS = ("`9223372036854775808`", "`18446744073709551615`", "`1e300`", "`1e400`")


def test_every_comparison_on_a_grid_of_values() -> None:
    """Each operator, each literal on either side, against each kind of stored value (or none)."""
    docs: list[Any] = [{}, {"age": None}, "text", 5, None, [1]] + [{"age": v} for v in GRID_VALUES]
    for op in ("==", "!=", "<", "<=", ">", ">="):
        for literal in GRID_LITERALS:
            # Left to Python: == and != with a non-empty list, != with a number json_extract rounds;
            # != NaN holds everywhere: nothing to narrow.
            python = ((op in ("==", "!=") and literal == "`[0]`")
                      or (op == "!=" and literal in BIG_LITERALS + ("`NaN`",)))
            assert _check_rows(f"age {op} {literal}", docs) != python, (op, literal)
            assert _check_rows(f"{literal} {op} age", docs) != python, (op, literal)
    for cond in ("age", "!age", "!!age", "@", "!@", "@.age", "age || name", "!age && !name"):
        assert _check_rows(cond, docs + [{"age": v, "name": w} for v in GRID_VALUES for w in ("", "x", 0, None)])


def test_error_and_order_of_evaluation_on_a_grid() -> None:
    """``&&``/``||``/``!`` around comparisons that raise on some rows (a number against a string)."""
    docs = [{"age": a, "name": n} for a in (None, 5, 31, "x", "", True) for n in (None, "Ada", 3, "")] + [{}]
    leaves = ["age > `30`", "name == 'Ada'", "name < 'b'", "age", "!name", "length(name) > `1`", "a == b"]
    for left in leaves:
        for right in leaves:
            for cond in (f"{left} && {right}", f"{left} || {right}", f"!({left} && {right})",
                         f"!({left} || {right})", f"({left} || {right}) && age > `3`"):
                parsed = qjm.parse(f"values(@)[?{cond}]")
                if jmespath_sql.conditions(parsed.condition)[0]:
                    _check_rows(cond, docs)


@pytest.mark.parametrize("cond", [
    "age > `30`", "age == `30`", "age != `30`", "age == 'x'", "age == `true`", "age == `null`", "age",
    "!age", "age < 'm'", "a.b >= `2`", "age > `30` && name == 'Ada'", "age == `1` || !name",
    "@.age <= `2.5`", "`30` < age", "age > `null`", "age > `true`",
])
def test_simple_conditions_are_pushed_down(cond: str) -> None:
    parsed = qjm.parse(f"values(@)[?{cond}].name")
    found, exact = jmespath_sql.conditions(parsed.condition)
    assert found, cond
    # SQL proves the rows it accepts (`age > null` accepts none: the condition is "0")
    assert found[0].sure != "0" or found[0].sql == "0", cond
    assert (found[0].sql == "0") == (cond in ("age > `null`", "age > `true`")), cond
    # Only ordering between a field and a number or a string can raise (TypeError): not exact.
    raises = any(op in cond for op in ("<", ">")) and not cond.endswith(("`null`", "`true`"))
    assert exact == (not raises), cond


@pytest.mark.parametrize("cond", ["length(name) > `1`", "a == b", "contains(name, 'a')", "\"a b\" == `1`"])
def test_conditions_left_to_python(cond: str) -> None:
    parsed = qjm.parse(f"values(@)[?{cond}]")
    assert jmespath_sql.conditions(parsed.condition) == ([], False)


# -- examples ---------------------------------------------------------------------------------

PEOPLE = [
    ("u1", {"name": "Ada", "age": 36, "city": "London"}),
    ("u2", {"name": "Bob", "age": 30}),
    ("u3", {"name": "Cy", "age": 41.5, "tags": ["x"]}),
    ("u4", {"name": "Dee"}),
    ("u5", {"name": "Eve", "age": True}),
]


@pytest.fixture(params=["json", "jsonb", "indexed", "memory"])
def people(request: Any) -> Iterator[kvlite.Collection]:
    for name, coll in collections(PEOPLE):
        if name == request.param:
            yield coll


def test_issue_example(people: kvlite.Collection) -> None:
    path = "values(@)[?age > `30`].name"
    mapping, _ = loaded(people)
    assert list(people.select(path, engine="jmespath")) == jmespath.search(path, mapping)
    assert list(people.find(path, engine="jmespath")) == [("u1", "Ada"), ("u3", "Cy")]
    assert people.count(path, engine="jmespath") == 2


def test_find_keys(people: kvlite.Collection) -> None:
    assert [k for k, _ in people.find("values(@)[?!age]", engine="jmespath")] == ["u4"]
    assert [k for k, _ in people.find("*.name", engine="jmespath")] == ["u1", "u2", "u3", "u4", "u5"]
    # a whole-collection query: the key of a match that is a loaded document, else None
    assert list(people.find("u2", engine="jmespath")) == [("u2", {"name": "Bob", "age": 30})]
    assert list(people.find("max_by(values(@)[?age > `0`], &age)", engine="jmespath"))[0][0] == "u3"
    assert list(people.find("length(@)", engine="jmespath")) == [(None, 5)]
    assert list(people.find("u2.name", engine="jmespath")) == [(None, "Bob")]


def test_none_result_yields_nothing(people: kvlite.Collection) -> None:
    assert list(people.find("nobody", engine="jmespath")) == []
    assert people.count("nobody.name", engine="jmespath") == 0
    # a projection leaves nulls out, as jmespath does; a list result's null items are matches
    assert list(people.select("values(@)[*].city", engine="jmespath")) == ["London"]
    assert list(people.select("[u4.age, u1.age]", engine="jmespath")) == [None, 36]
    assert list(people.select("[[u4.age, u1.age]]", engine="jmespath")) == [[None, 36]]


def test_limit_offset(people: kvlite.Collection) -> None:
    assert list(people.select("*.name", engine="jmespath", offset=1, limit=2)) == ["Bob", "Cy"]


def test_explain_shows_pushdown_and_index() -> None:
    for name, coll in collections(PEOPLE):
        plan = coll.explain("values(@)[?age > `30`].name", engine="jmespath")
        assert plan["engine"] == "jmespath" and plan["streaming"] is True
        (step,) = plan["steps"]
        assert step["kind"] == "scan"
        if name == "memory":
            assert step["pushdown"] == []
            continue
        assert step["pushdown"] == ["age > `30`"]
        assert "json_extract(value, '$.age') > ?" in step["sql"]
        if name == "indexed":
            assert step["indexes"] == ["$.age"]
            assert any("INDEX on $.age" in row for row in step["query_plan"])
        exact_plan = coll.explain("values(@)[?age == `30`]", engine="jmespath")["steps"][0]
        assert exact_plan["python"].startswith("nothing for the filter")
        whole = coll.explain("sort_by(values(@)[?age], &age)", engine="jmespath")
        assert whole["streaming"] is False and whole["steps"][0]["kind"] == "fallback"


def test_explain_pickle_collection_has_no_pushdown() -> None:
    with kvlite.open(":memory:") as store:
        coll = store.collection("p", serializer="pickle")
        coll.put("u1", {"age": 40})
        plan = coll.explain("values(@)[?age > `30`]", engine="jmespath")
        assert plan["steps"][0]["pushdown"] == []
        assert list(coll.select("values(@)[?age > `30`]", engine="jmespath")) == [{"age": 40}]


@pytest.mark.parametrize("path", ["values(@)[?age >]", "", "a[", "$.x", "foo(", "[?a=1]", "a ||"])
def test_syntax_errors(people: kvlite.Collection, path: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        list(people.find(path, engine="jmespath"))
    assert caught.value.engine == "jmespath"
    with pytest.raises(jmespath.exceptions.JMESPathError):
        jmespath.compile(path)


def test_syntax_error_position() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        qjm.parse("values(@)[?age >]")
    assert caught.value.position == 16
    with pytest.raises(TypeError):
        qjm.parse(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [
    "values(@)[?length(age) > `1`]",     # length() of a number
    "abs(u1.name)",                      # a function on a wrong type
    "values(@)[?age > 'a']",             # a number against a string
    "values(@)[?nope(age)]",             # an unknown function
    "sort_by(values(@), &age)",          # missing ages: null among numbers
])
def test_evaluation_errors(people: kvlite.Collection, path: str) -> None:
    mapping, _ = loaded(people)
    with pytest.raises(jmespath.exceptions.JMESPathError if "nope" in path or "length" in path or "abs" in path
                       or "sort_by" in path else TypeError):
        jmespath.search(path, mapping)
    with pytest.raises(QueryEvaluationError) as caught:
        list(people.select(path, engine="jmespath"))
    assert caught.value.engine == "jmespath"


def test_error_on_a_row_sql_would_have_skipped() -> None:
    """``age > `30` && name == 'x'``: jmespath raises on a string age before reading name."""
    for _, coll in collections(PEOPLE + [("u6", {"name": "Fay", "age": "old"})]):
        with pytest.raises(QueryEvaluationError):
            list(coll.select("values(@)[?age > `30` && name == 'x']", engine="jmespath"))
        # ... while a filter that reads the string age only where it cannot raise is fine
        assert list(coll.select("values(@)[?name == 'x' && age > `30`]", engine="jmespath")) == []


def test_typed_collection_gets_models() -> None:
    from dataclasses import dataclass

    @dataclass
    class Person:
        name: str
        age: int = 0

    with kvlite.open(":memory:") as store:
        coll = store.collection("people", model=Person)
        coll.put("a", Person("Ada", 36))
        coll.put("b", Person("Bob", 20))
        assert list(coll.select("values(@)[?age > `30`]", engine="jmespath")) == [Person("Ada", 36)]
        assert list(coll.select("values(@)[?age > `30`].name", engine="jmespath")) == ["Ada"]


@pytest.mark.parametrize("url", [":memory:", "memory://"])
def test_an_exception_the_consumer_throws_in_passes_through(url: str) -> None:
    """Also where the expression runs on the whole collection (its generator yields in kvlite's
    adapter, which must not pass for the engine failing)."""
    with kvlite.open(url) as store:
        coll = store.collection("c")
        coll.put_many({f"k{i}": {"num": i} for i in range(5)})
        for path in ("values(@)[*].num", "values(@)[?num > `1`]", "*", "sort_by(values(@), &num)[*].num"):
            for error in (ValueError("mine"), KeyboardInterrupt()):
                matches = coll.find(path, engine="jmespath")
                next(matches)
                with pytest.raises(type(error)) as info:
                    matches.throw(error)
                assert info.value is error, path
