"""Fuzz of the query entry points (issue 4, item 5).

Whatever text a caller passes as a path, ``find``/``select``/``count``/
``explain`` (both engines), ``order_by=`` and ``create_index``/``drop_index``
either work or raise a :class:`~kvlite.errors.QueryError` (``QuerySyntaxError``
for a path that does not parse, ``QueryEvaluationError`` for one whose engine
fails on the documents; ``order_by``
and index paths may also raise :class:`~kvlite.errors.NotSupported` for a
valid path they cannot use).  Nothing else escapes: not the engines' own
exceptions (``TypeError``, ``KeyError``, ``NotImplementedError``,
``re.error``, ``StopIteration``, ...), not an SQLite error.

The text comes from three sources: arbitrary Unicode, random sequences of
each engine's tokens (so most inputs get past the lexer and reach the
parser and the evaluator), and small mutations of valid paths.
``KVLITE_FUZZ_EXAMPLES`` raises the number of examples.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvlite
from kvlite.errors import NotSupported, QueryError

EXAMPLES = int(os.environ.get("KVLITE_FUZZ_EXAMPLES", "0")) or None

DOCS: dict[Any, Any] = {
    "u1": {"name": "Ada", "age": 36, "tags": ["a", "b"], "limits": {"cpu": 1, "ram": 4}},
    "u2": {"name": "Bob", "age": "25", "contact": {"email": "b@x"}, "score": None},
    3: {"name": None, "age": [1, 2], "tags": "x"},
    b"\xff": [1, "two", {"three": 3.0}],
    "s": "just a string",
    "n": 42,
    "t": True,
    "e": {},
}

JSONPATH_TOKENS = ["$", "@", ".", "..", "*", "[", "]", "(", ")", "?", "?(", ",", ":", "|", "&", "==", "=", "!=",
                   "<", "<=", ">", ">=", "=~", "~", "+", "-", "/", "'", '"', "`", "\\", " ", "\n", "0", "1", "-1",
                   "2.5", "name", "age", "tags", "limits", "u1", "u2", "3", "true", "false", "where", "wherenot",
                   "`this`", "`parent`", "`len`", "`keys`", "`str()`", "`sub(/a/, b)`", "`split(,, 0, -1)`",
                   "`sorted`", "[/age]", "[\\age]", "'('", "'[a'", "é", "\x00"]
OBJECTPATH_TOKENS = ["$", "@", ".", "..", "*", "[", "]", "(", ")", ",", ":", "and", "or", "not", "is", "is not",
                     "in", "not in", ">", "<", ">=", "<=", "+", "-", "*", "/", "%", "'", '"', " ", "\n", "0", "1",
                     "-1", "2.5", "name", "age", "tags", "u1", "true", "false", "null", "n", "count(", "sum(",
                     "max(", "min(", "avg(", "len(", "sort(", "reverse(", "type(", "str(", "int(", "array(",
                     "dateTime(", "matches", "$.*", "{", "}", "#", "é", "\x00"]
VALID = ["$[?(@.age > 30)].name", "$.u1.tags[*]", "$..name", "$[0]", "$[-1]", "$[1:3]", "$['u2','u1']",
         "($.u1.name) | ($.u2.name)", "$.*.limits[?(@ > 2)]", "$[?(@.name =~ 'A.*')]",
         "$.*[@.age > 30].name", "count($.*)", "sum($.*.age)", "$.u1.name", "$..*[@.age > 3]"]


def token_text(tokens: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(tokens), max_size=14).map("".join)


@st.composite
def mutated(draw: Any) -> str:
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(JSONPATH_TOKENS + OBJECTPATH_TOKENS))
        if op == "insert":
            text = text[:i] + piece + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1:]
        else:
            text = text[:i] + piece + text[i + 1:]
    return text


PATHS = st.one_of(st.text(max_size=30), token_text(JSONPATH_TOKENS), token_text(OBJECTPATH_TOKENS), mutated())


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, kvlite.Collection]]:
    store = kvlite.open(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    json_coll = store.collection("json")
    json_coll.put_many(DOCS)
    json_coll.create_index("$.age")
    pickled = store.collection("pickled", serializer="pickle")
    pickled.put_many(DOCS)
    yield {"json": json_coll, "pickle": pickled}
    store.close()


def outcome(run: Callable[[], Any], allowed: tuple[type[BaseException], ...] = (QueryError,)) -> str:
    """Run ``run``; any exception outside ``allowed`` fails the test (hypothesis shrinks the path)."""
    try:
        run()
    except allowed as exc:
        if isinstance(exc, QueryError):
            assert exc.engine in ("jsonpath", "objectpath")
        return type(exc).__name__
    return "ok"


SETTINGS = settings(max_examples=EXAMPLES or 300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@SETTINGS
@given(path=PATHS, engine=st.sampled_from(["jsonpath", "objectpath"]), kind=st.sampled_from(["json", "pickle"]))
def test_find_count_explain_raise_only_query_syntax_error(collections: dict[str, kvlite.Collection], path: str,
                                                          engine: str, kind: str) -> None:
    coll = collections[kind]
    results = {
        "find": outcome(lambda: list(coll.find(path, engine=engine))),
        "select": outcome(lambda: list(coll.select(path, engine=engine, limit=3, offset=1))),
        "count": outcome(lambda: coll.count(path, engine=engine)),
        "explain": outcome(lambda: coll.explain(path, engine=engine)),
    }
    # A path that does not parse fails the same way everywhere; explain only parses, so it may accept
    # a path whose evaluation fails on these documents.
    if results["explain"] == "QuerySyntaxError":
        assert results["find"] == results["count"] == "QuerySyntaxError"


@SETTINGS
@given(path=PATHS, desc=st.booleans())
def test_order_by_and_index_paths(collections: dict[str, kvlite.Collection], path: str, desc: bool) -> None:
    allowed = (QueryError, NotSupported)
    for coll in collections.values():
        outcome(lambda coll=coll: list(coll.find("$.*", order_by=path, desc=desc)), allowed)
        outcome(lambda coll=coll: coll.explain("$[0]", order_by=path), allowed)
    json_coll = collections["json"]
    created = outcome(lambda: json_coll.create_index(path), allowed)
    if created == "ok":
        assert json_coll.drop_index(path) is True
        json_coll.create_index("$.age")  # in case it was that one: the fixture's index stays
    outcome(lambda: json_coll.drop_index(path), allowed)
    outcome(lambda: collections["pickle"].create_index(path), allowed)
