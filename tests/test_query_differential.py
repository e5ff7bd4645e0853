"""Differential tests: kvlite's streaming, pushed-down queries against the oracle.

The JSONPath tests here are about jsonpath-ng's dialect (the grammar draws its ``&&``, ``||``,
``!``, positions on the root, ...) and its oracle, jsonpath-ng itself: they query with
``engine="jsonpath-ng"``.

The oracle, the random data and the path grammar are in ``tests/helpers_query.py``: the path
engine run on the collection loaded in memory as the mapping ``{view_key(key): document}``
(insertion order, expired entries left out).  Hypothesis draws random collections and random
paths, for JSON, JSONB and pickle collections, with and without expression indexes, and checks
that

* ``select(path)`` gives the oracle's values, in the oracle's order, with
  the same types (``1``, ``1.0`` and ``True`` are told apart);
* ``find(path)`` names, for every match, the key of the document it came from;
* ``count``/``limit``/``offset`` agree with the same list;
* where jsonpath-ng raises on the data, kvlite raises a :class:`~kvlite.errors.QueryError`;
* a path kvlite refuses to parse, jsonpath-ng cannot run either;
* with ``order_by``, the answer is the oracle's on the mapping sorted the way
  SQLite orders ``json_extract`` values (NULL, numbers, text; ties in
  insertion order) but with numbers by their exact value (an integer beyond
  64 bits is not rounded), computed here independently.

Keys are drawn with distinct view keys: ``1``, ``"1"`` and ``b"1"`` share
the view key ``"1"``, and then the collection is no longer a ``dict`` (see
docs/queries.md).

``KVLITE_DIFF_EXAMPLES`` raises the number of examples (default: a few
hundred per test, well under the suite's time budget).
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest
from helpers_query import (
    ENTRIES,
    check_jsonpath,
    conditions,
    conjunction,
    contains,
    fill,
    jsonpaths,
    loaded,
    objectpaths,
    op_outcome,
    raw_jsonpath_ng,
    sqlite_order_key,
    strict,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvlite
from kvlite.errors import QuerySyntaxError
from kvlite.keys import view as view_key
from kvlite.query import jsonpath as qjp
from kvlite.query import objectpath as qop

EXAMPLES = int(os.environ.get("KVLITE_DIFF_EXAMPLES", "0")) or None


@pytest.fixture
def make_store() -> Iterator[Any]:
    """A factory of in-memory stores, each with its own fake clock ``[now]``.

    The fixture lives for the whole hypothesis run, so making a store closes
    the previous example's one (each example makes one); the last is closed
    after the test.
    """
    opened: list[kvlite.Store] = []

    def factory() -> tuple[kvlite.Store, list[float]]:
        while opened:
            opened.pop().close()
        clock = [1_000_000.0]
        store = kvlite.open(clock=lambda: clock[0])
        opened.append(store)
        return store, clock

    yield factory
    while opened:
        opened.pop().close()


# -- JSONPath ----------------------------------------------------------------------------------

@settings(max_examples=EXAMPLES or 300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(entries=ENTRIES, paths=st.lists(jsonpaths(), min_size=1, max_size=4),
       serializer=st.sampled_from(["json", "json", "jsonb", "pickle"]),
       index_paths=st.lists(st.sampled_from(["$.a", "$.age", "$.name", "$.a.b", "$.b"]), unique=True, max_size=3),
       paging=st.tuples(st.integers(0, 3), st.integers(0, 4)))
def test_jsonpath_matches_oracle(make_store: Any, entries: list[Any], paths: list[str], serializer: str,
                                 index_paths: list[str], paging: tuple[int, int]) -> None:
    store, clock = make_store()
    if serializer == "pickle":
        index_paths = []
    coll = fill(store, clock, "docs", serializer, entries, index_paths)
    mapping, originals = loaded(coll)
    for path in paths:
        try:
            qjp.parse(path)
        except QuerySyntaxError:
            # the grammar can make things jsonpath-ng rejects (e.g. "[::2]" spellings)
            assert raw_jsonpath_ng(path, mapping) is None, path
            continue
        check_jsonpath(coll, path, mapping, originals, paging)


@settings(max_examples=EXAMPLES or 250, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(entries=ENTRIES, conds=st.lists(conditions(), min_size=1, max_size=3), tail=st.sampled_from(
    ["", ".name", ".a.b", "[*]", ".tags[0]", "..a"]))
def test_filters_with_and_without_index(make_store: Any, entries: list[Any], conds: list[str], tail: str) -> None:
    """The same filter on five copies of the data: JSON text and JSONB, each with and without an index
    on every field it reads, and pickle (no push-down); all five equal the oracle."""
    path = "$[?(" + conjunction(conds) + ")]" + tail
    store, clock = make_store()
    fields = sorted({c.split()[0][1:] for c in conds if c.split()[0] != "@"})
    plain = fill(store, clock, "plain", "json", entries, [])
    indexed = fill(store, clock, "indexed", "json", entries, ["$" + f for f in fields])
    binary = fill(store, clock, "binary", "jsonb", entries, [])
    binary_indexed = fill(store, clock, "binary indexed", "jsonb", entries, ["$" + f for f in fields])
    pickled = fill(store, clock, "pickled", "pickle", entries, [])
    mapping, originals = loaded(plain)
    copies = (plain, indexed, binary, binary_indexed, pickled)
    assert all(strict(loaded(coll)[0]) == strict(mapping) for coll in copies)
    for coll in copies:
        check_jsonpath(coll, path, mapping, originals, (0, 2))


# -- order_by -----------------------------------------------------------------------------------

@settings(max_examples=EXAMPLES or 200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(entries=ENTRIES, paths=st.lists(jsonpaths(), min_size=1, max_size=3),
       order=st.sampled_from(["$.a", "$.age", "$.a.b", "$.name"]), desc=st.booleans(), indexed=st.booleans(),
       paging=st.tuples(st.integers(0, 3), st.one_of(st.none(), st.integers(0, 4))),
       serializer=st.sampled_from(["json", "jsonb"]))
def test_order_by_matches_oracle(make_store: Any, entries: list[Any], paths: list[str], order: str, desc: bool,
                                 indexed: bool, paging: tuple[int, int | None], serializer: str) -> None:
    """``order_by`` orders the documents, then the path runs on them in that order: positions,
    negative indexes, slices, filters and unions all see the same ordered mapping."""
    store, clock = make_store()
    coll = fill(store, clock, "docs", serializer, entries, [order] if indexed else [])
    mapping, _ = loaded(coll)
    ordered = dict(sorted(mapping.items(), key=lambda item: sqlite_order_key(item[1], order), reverse=desc))
    offset, limit = paging
    for path in paths:
        try:
            qjp.parse(path)
        except QuerySyntaxError:
            continue
        raw = raw_jsonpath_ng(path, ordered)
        if raw is None:  # jsonpath-ng raises on these documents (check_jsonpath covers that)
            continue
        expected = [strict(v) for v in raw]
        got = [strict(v) for v in coll.select(path, order_by=order, desc=desc, engine="jsonpath-ng")]
        assert got == expected, (path, order, desc)
        paged = coll.select(path, order_by=("-" + order) if desc else order, offset=offset, limit=limit,
                            engine="jsonpath-ng")
        assert [strict(v) for v in paged] == expected[offset:None if limit is None else offset + limit]


# -- ObjectPath ---------------------------------------------------------------------------------

@settings(max_examples=EXAMPLES or 200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(entries=ENTRIES, paths=st.lists(objectpaths(), min_size=1, max_size=4),
       serializer=st.sampled_from(["json", "jsonb", "pickle"]))
def test_objectpath_matches_oracle(make_store: Any, entries: list[Any], paths: list[str], serializer: str) -> None:
    store, clock = make_store()
    coll = fill(store, clock, "docs", serializer, entries, [])
    mapping, _ = loaded(coll)
    for path in paths:
        parsed = qop.parse(path)
        expected = op_outcome(lambda parsed=parsed: qop.evaluate(parsed, mapping))
        got = op_outcome(lambda path=path: coll.select(path, engine="objectpath"))
        assert got == expected, (path, parsed.rowwise)
        if expected[0] == "ok" and parsed.rowwise:
            for key, value in coll.find(path, engine="objectpath"):
                name = view_key(key)
                assert name in mapping and contains(mapping[name], value), (path, key, value)
