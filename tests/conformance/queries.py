"""Queries on every engine: ``find``/``select``/``count`` for fixed and random JSONPath and
ObjectPath paths equal the oracle of tests/helpers_query.py (the engine run on the collection's
items loaded in a ``dict``), with and without an index where the engine has indexes; ``order_by``
(one exact order on every engine, JSON collections only); typed errors; bounded iteration.

JSONPath runs twice: the default engine (RFC 9535) on :data:`RFC_JSONPATHS` against the
standard's reference implementation, and jsonpath-ng's dialect (``engine="jsonpath-ng"``) on
:data:`JSONPATHS` and the random paths against its oracle."""

from __future__ import annotations

import uuid
from typing import Any

import helpers_query
import pytest
from conftest import Clock
from helpers_query import (
    ENTRIES,
    check_jsonpath,
    check_rfc9535,
    contains,
    jsonpaths,
    objectpaths,
    op_outcome,
    sqlite_order_key,
    strict,
)
import jsonpath_rfc9535
from hypothesis import given, settings
from hypothesis import strategies as st

from kvlite.errors import KvliteError, NotSupported, QuerySyntaxError
from kvlite.keys import view as view_key
from kvlite.query import jsonpath as qjp
from kvlite.query import objectpath as qop

from .base import EXAMPLES, HYPOTHESIS, EngineTests, StoreMaker, key_types

DOCS: list[tuple[Any, Any, float | None]] = [
    ("u1", {"name": "Ada", "age": 36, "email": "ada@x", "tags": ["a", "b"], "x": 1}, None),
    ("u2", {"name": "Bob", "age": 25, "address": {"x": 2, "email": "bob@x"}}, 100.0),
    (3, {"name": "Cy", "age": 41, "tags": [], "x": [{"x": 3}]}, None),
    (b"k4", {"name": "Di", "age": None}, None),
    ("gone", {"name": "Expired", "age": 99, "email": "old@x"}, 5.0),
    (4.5, [1, {"x": 4}], None),
    (True, "scalar", None),
    ("u7", {"name": "Ed", "age": 30.5, "email": None, "score": "12"}, 50.0),
    ("é", {"name": "Zoë", "age": 7, "tags": ["c"], "address": {"city": "Kraków"}}, None),
]
JSONPATHS = [
    "$", "$.*", "$[*]", "$..*", "$.u1", "$.u1.tags[*]", "$.u1.tags[0]", "$['3'].name", "$.*.name", "$..x",
    "$..email", "$[0]", "$[-1]", "$[1:3]", "$[::-1].name", "$[?(@.age > 30)]", "$[?(@.age > 30)].name",
    "$[?(@.age >= 25 & @.age < 41)]", "$[?(@.email)]", "$[?(@.name == 'Bob')].address.x", "$[?(@.age < 30)]",
    "$[?(@.name != 'Ada')].age", "$[?(@.score > 5)]", "$[?(@.address.city == 'Kraków')].name", "$.gone",
    "($.u1.name) | ($..city)", "$[?(@.age == 36.0)]", "$[?(@.tags)].tags[*]",
]
#: The default engine's queries (RFC 9535), checked against jsonpath_rfc9535.
RFC_JSONPATHS = [
    "$", "$.*", "$[*]", "$..*", "$.u1", "$.u1.tags[*]", "$.u1.tags[0]", "$['3'].name", "$.*.name", "$..x",
    "$..email", "$[0]", "$[-1]", "$[1:3]", "$.*[0]", "$[?@.age > 30]", "$[?@.age > 30].name",
    "$[?@.age >= 25 && @.age < 41]", "$[?@.email]", "$[?@.name == 'Bob'].address.x", "$[?@.age < 30]",
    "$[?@.name != 'Ada'].age", "$[?@.score > 5]", "$[?@.address.city == 'Kraków'].name", "$.gone",
    "$['u1', 'é'].name", "$[?@.age == 36.0]", "$[?@.tags].tags[*]", "$[?@.age > 40 || !@.age]",
    "$[?length(@.tags) > 0].name", "$[?match(@.name, 'A.*')].name", "$[?search(@.email, 'x')]",
    "$[?@.age == null].name", "$..[?@.x]", "$[?@.x[?@.x == 3]].name",
]
OBJECTPATHS = [
    "$.*", "$.*[@.age > 30]", "$.*[@.age > 30].name", "$.*[@.name is 'Bob'].address.x", "count($.*)",
    "len($.*[@.age >= 25])", "$..email", "$.u1.name", "$.*[0]", "$.*[-1]", "$.*[@.age < 30 or @.name is 'Ada']",
    "$.gone", "sum($.*[@.age > 0].age)",
]


def fill_docs(store: Any, clock: Clock, name: str = "docs", serializer: str = "json") -> tuple[Any, dict, dict]:
    """:data:`DOCS` in a new collection, one entry expired; ``(collection, oracle mapping, view key -> key)``."""
    coll = store.collection(name, serializer=serializer)
    for key, doc, ttl in DOCS:
        coll.put(key, doc, ttl=ttl)
    clock.advance(10)  # "gone" has expired
    live = [(k, d) for k, d, ttl in DOCS if ttl is None or ttl > 10]
    assert strict(list(coll.items())) == strict(live)
    return coll, {view_key(k): d for k, d in live}, {view_key(k): k for k, _ in live}


def _fill_entries(store: Any, clock: Clock, entries: list[Any], serializer: str) -> tuple[Any, list[Any]]:
    """A new collection holding ``entries`` (some expired); ``(collection, its live items by a dict model)``.

    The model is a ``dict``, so equal keys (``1`` and ``True``) merge the way
    the collection must merge them: the first key, the last value and TTL."""
    coll = store.collection(f"q-{uuid.uuid4().hex[:12]}", serializer=serializer)
    model: dict[Any, tuple[Any, str]] = {}
    for key, doc, life in entries:
        coll.put(key, doc, ttl={"live": None, "ttl": 1000.0, "expired": 5.0}[life])
        model[key] = (doc, life)
    clock.advance(10)
    live = [(k, d) for k, (d, life) in model.items() if life != "expired"]
    assert strict(list(coll.items())) == strict(live)
    return coll, live


class Queries(EngineTests):
    """JSONPath and ObjectPath queries against the oracle, order_by, typed errors."""

    @pytest.mark.parametrize("serializer", ["json", "pickle"])
    def test_jsonpath_queries_match_the_oracle(self, store: Any, clock: Clock, serializer: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(helpers_query, "event", lambda *args: None)  # a Hypothesis-only statistic
        coll, mapping, originals = fill_docs(store, clock, serializer=serializer)
        for path in JSONPATHS:
            check_jsonpath(coll, path, mapping, originals, (1, 2))
        for path in RFC_JSONPATHS:
            check_rfc9535(coll, path, mapping, originals, (1, 2))
        indexed = []
        for path in ("$.age", "$.name", "$.address.city"):
            try:
                indexed.append(coll.create_index(path))
            except NotSupported:  # memory:// and Redis have no indexes; pickle collections neither
                pass
        assert sorted(coll.indexes()) == sorted(indexed)
        for path in JSONPATHS:
            check_jsonpath(coll, path, mapping, originals, (0, 3))
        for path in RFC_JSONPATHS:
            check_rfc9535(coll, path, mapping, originals, (0, 3))

    def test_objectpath_queries_match_the_oracle(self, store: Any, clock: Clock) -> None:
        coll, mapping, _ = fill_docs(store, clock)
        for path in OBJECTPATHS:
            parsed = qop.parse(path)
            expected = op_outcome(lambda parsed=parsed: qop.evaluate(parsed, mapping))
            assert op_outcome(lambda path=path: coll.select(path, engine="objectpath")) == expected, path
            if expected[0] == "ok":
                assert coll.count(path, engine="objectpath") == len(expected[1])
                if parsed.rowwise:
                    for key, value in coll.find(path, engine="objectpath"):
                        assert contains(mapping[view_key(key)], value), (path, key, value)

    def test_query_errors_are_typed(self, store: Any, clock: Clock) -> None:
        coll, _, _ = fill_docs(store, clock)
        for path, engine in (("$[?(@.age >", "jsonpath"), ("$[?@.age > 30 & @.name]", "jsonpath"),
                             ("$[?(@.age >", "jsonpath-ng"), ("$.*[", "objectpath")):
            with pytest.raises(QuerySyntaxError):
                list(coll.find(path, engine=engine))
        # jsonpath-ng 1.16+ compares numbers as they are (1.8 took int(value)): Ed's 30.5 is > 30.
        ng = "jsonpath-ng"
        assert list(coll.select("$[?(@.age > 30)].name", engine=ng)) == ["Ada", "Cy", "Ed"]
        assert list(coll.select("$[?(@.age > 30.0)].name", engine=ng)) == ["Ada", "Cy", "Ed"]
        assert list(coll.select("$[?(@.age > 30.0)].name", limit=1, engine=ng)) == ["Ada"]
        assert list(coll.select("$[?(@.age > 30.0)].name", offset=1, limit=5, engine=ng)) == ["Cy", "Ed"]
        assert coll.count("$[?(@.age > 30.0)]", engine=ng) == 3
        # RFC 9535 compares numbers as numbers: Ed's 30.5 is > 30.
        assert list(coll.select("$[?@.age > 30].name")) == ["Ada", "Cy", "Ed"]
        assert list(coll.select("$[?@.age > 30].name", limit=1)) == ["Ada"]
        assert list(coll.select("$[?@.age > 30].name", offset=1, limit=5)) == ["Cy", "Ed"]
        assert coll.count("$[?@.age > 30]") == 3

    def test_query_arguments_are_checked_alike(self, store: Any, clock: Clock) -> None:
        coll, _, _ = fill_docs(store, clock)
        bad_options: list[dict[str, Any]] = [{"limit": -1}, {"offset": -1}, {"limit": "2"}, {"engine": "xpath"}]
        for bad in bad_options:
            with pytest.raises((ValueError, KvliteError)):
                list(coll.find("$.*", **bad))
        with pytest.raises(NotSupported):  # order_by takes a plain field path
            list(coll.find("$.*", order_by="$..name"))

    def test_order_by(self, store: Any, clock: Clock) -> None:
        """``order_by`` sorts the documents the way SQLite's ``ORDER BY json_extract(value, path)`` does
        (missing/null, numbers, text; ties in insertion order), on every backend; JSON collections only."""
        coll, mapping, _ = fill_docs(store, clock)
        for order in ("$.age", "$.name", "$.address.city", "$.tags"):
            for desc in (False, True):
                ordered = dict(sorted(mapping.items(), key=lambda item: sqlite_order_key(item[1], order), reverse=desc))
                for path in ("$.*", "$[?(@.age > 20)].name", "$[0]", "$[-1]", "$[1:3]"):
                    expected = [strict(v) for v in qjp.evaluate(qjp.parse(path), ordered)]
                    got = coll.select(path, order_by=order, desc=desc, engine="jsonpath-ng")
                    assert [strict(v) for v in got] == expected, (order, path)
                for path in ("$.*", "$[?@.age > 20].name", "$.*.name", "$..email"):
                    expected = [strict(v) for v in jsonpath_rfc9535.find(path, ordered).values()]
                    assert [strict(v) for v in coll.select(path, order_by=order, desc=desc)] == expected, (order, path)
            assert key_types(coll.keys()) == key_types(k for k, _, ttl in DOCS if ttl is None or ttl > 10)  # unchanged
        pickled = store.collection("pickled", serializer="pickle")
        pickled.put("a", {"age": 2})
        pickled.put("b", {"age": 1})
        with pytest.raises(NotSupported):  # documented for Collection.find: JSON collections only
            list(pickled.find("$.*", order_by="$.age"))

    @settings(max_examples=EXAMPLES or 12, **HYPOTHESIS)
    @given(entries=ENTRIES, paths=st.lists(jsonpaths(), min_size=1, max_size=3),
           serializer=st.sampled_from(["json", "json", "pickle"]))
    def test_random_jsonpaths_match_the_oracle(self, store: Any, clock: Clock, entries: list[Any], paths: list[str],
                                               serializer: str) -> None:
        coll, live = _fill_entries(store, clock, entries, serializer)
        mapping, originals = {view_key(k): d for k, d in live}, {view_key(k): k for k, _ in live}
        for path in paths:
            try:
                qjp.parse(path)
            except QuerySyntaxError:
                continue
            check_jsonpath(coll, path, mapping, originals, (1, 2))
        store.drop_collection(coll.name)

    @settings(max_examples=EXAMPLES or 12, **HYPOTHESIS)
    @given(entries=ENTRIES, path=jsonpaths(), order=st.sampled_from(["$.a", "$.age", "$.a.b", "$.name", "$.tags"]),
           desc=st.booleans())
    def test_random_order_by_matches_sqlite_order(self, store: Any, clock: Clock, entries: list[Any], path: str,
                                                  order: str, desc: bool) -> None:
        """The oracle: the documents sorted as SQLite's ``json_extract`` sorts them, then the path on them."""
        coll, live = _fill_entries(store, clock, entries, "json")
        mapping = {view_key(k): d for k, d in live}
        ordered = dict(sorted(mapping.items(), key=lambda item: sqlite_order_key(item[1], order), reverse=desc))
        try:
            tree = qjp.parse(path)
        except QuerySyntaxError:
            return
        expected = [strict(v) for v in qjp.evaluate(tree, ordered)]
        got = coll.select(path, order_by=order, desc=desc, engine="jsonpath-ng")
        assert [strict(v) for v in got] == expected, (path, order, desc)
        store.drop_collection(coll.name)

    @settings(max_examples=EXAMPLES or 10, **HYPOTHESIS)
    @given(entries=ENTRIES, paths=st.lists(objectpaths(), min_size=1, max_size=3))
    def test_random_objectpaths_match_the_oracle(self, store: Any, clock: Clock, entries: list[Any],
                                                 paths: list[str]) -> None:
        coll, live = _fill_entries(store, clock, entries, "json")
        mapping = {view_key(k): d for k, d in live}
        for path in paths:
            parsed = qop.parse(path)
            expected = op_outcome(lambda parsed=parsed: qop.evaluate(parsed, mapping))
            assert op_outcome(lambda path=path: coll.select(path, engine="objectpath")) == expected, path
        store.drop_collection(coll.name)

    def test_a_query_never_reads_documents_added_while_it_runs(self, make_store: StoreMaker) -> None:
        """A pushed-down filter (SQL on SQLite and PostgreSQL) is bounded like plain iteration."""
        coll = make_store().collection("grow")
        coll.put_many((f"k{i:04d}", {"n": i}) for i in range(1500))
        seen = 0
        for key, _ in coll.find("$[?(@.n >= 0)]"):
            coll.put(key + "+", {"n": 1})
            seen += 1
        assert seen == 1500 and len(coll) == 3000
