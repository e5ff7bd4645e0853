"""Documents changed where they are, on every engine (issue 14, items 1, 2, 5, 6): ``patch`` (RFC
7396) against :func:`kvlite.merge_patch.merge_patch` and a hand-written model of the RFC's own
examples; ``patch_where`` / ``delete_where`` against the standard's reference implementation
(``jsonpath_rfc9535``) choosing the documents and a ``dict`` model, for filters SQL decides
exactly and filters it does not; ``count_by`` against a model that compares values as JSON;
key ranges (``keys/items/values(prefix=, start=, stop=, reverse=)``) against a sorted model (or
``NotSupported`` where the engine documents it); typed errors with nothing changed; 4 processes
patching different members of one document lose none."""

from __future__ import annotations

import asyncio
import copy
import math
from pathlib import Path
from typing import Any

import jsonpath_rfc9535
import pytest
from conftest import Clock
from helpers_query import strict
from hypothesis import given, settings
from hypothesis import strategies as st

import kvlite
from kvlite.errors import (
    InvalidKey,
    InvalidRange,
    NotSupported,
    QuerySyntaxError,
    SerializationError,
    ValidationError,
)
from kvlite.merge_patch import merge_patch

from .base import EXAMPLES, HYPOTHESIS, EngineTests, StoreMaker
from .counters import WORKERS, _run_workers

#: Engines with no ordered index of keys (their docs list it): key ranges raise NotSupported.
NO_KEY_ORDER = ("redis", "postgresql")

NAMES = st.sampled_from(["a", "b", "c", "n", "tags"])
SCALAR = st.one_of(st.integers(-3, 5), st.sampled_from([1.0, 2.5, -0.0, 2**63 - 1, 2**64 - 1]), st.booleans(),
                   st.sampled_from(["", "x", "new", "é", "null"]))
VALUE = st.recursive(SCALAR | st.none(), lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(NAMES, inner, max_size=3), max_leaves=6)
DOCUMENT = st.dictionaries(NAMES, VALUE, max_size=4)
PATCH = st.one_of(st.dictionaries(NAMES, VALUE, max_size=4), VALUE)

#: Filters: some SQL decides exactly (one UPDATE/DELETE), some it does not (keys first, re-checked).
FILTERS = st.sampled_from([
    "$[?@.n > 1]", "$[?@.n == 1]", "$[?@.a]", "$[?!@.a]", "$[?@.a == 'new' || @.n <= 0]", "$[*]", "$.*",
    "$[?@.tags[0] == 1]", "$[?length(@.tags) >= 2]", "$[?match(@.a, 'n.*')]", "$[?@.n > @.c]",
    "$[?@.b.a == true]", "$[?@.a == @.b]", "$[?count(@.*) > 1]",
])


def _entries(c: Any) -> list[tuple[Any, Any, Any]]:
    return [(k, strict(v), c.ttl(k)) for k, v in c.items()]


def _json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: booleans are not numbers, members in any order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _facets_model(documents: list[Any], path: list[str]) -> list[tuple[Any, int]]:
    groups: list[list[Any]] = []  # [value, count, first]
    for position, document in enumerate(documents):
        node = document
        for name in path:
            if not isinstance(node, dict) or name not in node:
                break
            node = node[name]
        else:
            for group in groups:
                if _json_equal(group[0], node):
                    group[1] += 1
                    break
            else:
                groups.append([node, 1, position])
    groups.sort(key=lambda g: (-g[1], g[2]))
    return [(value, count) for value, count, _ in groups]


class ChangingDocuments(EngineTests):
    """``patch``, ``patch_where``, ``delete_where``, ``count_by`` and key ranges."""

    # -- patch -----------------------------------------------------------------------------------

    def test_patch_follows_the_rfc_7396_examples(self, store: Any) -> None:
        c = store.collection("rfc")
        # RFC 7396, Appendix A: (original, patch, result)
        cases = [
            ({"a": "b"}, {"a": "c"}, {"a": "c"}), ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
            ({"a": "b"}, {"a": None}, {}), ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
            ({"a": ["b"]}, {"a": "c"}, {"a": "c"}), ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
            ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
            ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}), (["a", "b"], ["c", "d"], ["c", "d"]),
            ({"a": "b"}, ["c"], ["c"]), ({"a": "foo"}, None, None), ({"a": "foo"}, "bar", "bar"),
            ({"e": None}, {"a": 1}, {"e": None, "a": 1}), ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
            ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ]
        for n, (original, patch, result) in enumerate(cases):
            c.put(n, original)
            assert c.patch(n, patch) == result, (original, patch)
            assert c.get(n) == result

    @settings(max_examples=EXAMPLES or 40, **HYPOTHESIS)
    @given(documents=st.lists(DOCUMENT, min_size=1, max_size=4), patch=PATCH, serializer=st.sampled_from(
        ["json", "jsonb", "pickle"]))
    def test_patch_equals_the_merge_patch_of_the_document(self, store: Any, clock: Clock, documents: list[Any],
                                                          patch: Any, serializer: str) -> None:
        if serializer == "jsonb" and self.engine != "sqlite-file":
            serializer = "json"
        c = store.collection(f"patch-{serializer}", serializer=serializer)
        c.clear()
        for n, document in enumerate(documents):
            c.put(f"k{n}", document, ttl=100 if n % 2 else None)
        clock.advance(1)
        before = _entries(c)
        expected = merge_patch(copy.deepcopy(documents[0]), patch)
        assert strict(c.patch("k0", patch)) == strict(expected)
        assert strict(c.get("k0")) == strict(expected)
        after = _entries(c)
        assert [k for k, _, _ in after] == [k for k, _, _ in before]  # the place is kept
        assert after[1:] == before[1:] and after[0][2] == before[0][2]  # the rest and the TTL too

    def test_patch_missing_key_and_create(self, store: Any, clock: Clock) -> None:
        c = store.collection("missing")
        with pytest.raises(KeyError):
            c.patch("nope", {"a": 1})
        assert "nope" not in c
        c.put("gone", {"a": 1}, ttl=1)
        clock.advance(2)
        with pytest.raises(KeyError):  # expired is missing
            c.patch("gone", {"b": 1})
        assert c.patch("new", {"a": {"b": 1, "c": None}}, create=True) == {"a": {"b": 1}}
        assert c.ttl("new") is None and c.get("new") == {"a": {"b": 1}}

    @pytest.mark.parametrize("bad", [{"a": {1, 2}}, {"a": math.nan}, {1: "x"}, b"x", object()])
    def test_a_patch_that_is_not_json_changes_nothing(self, store: Any, bad: Any) -> None:
        c = store.collection("bad")
        c.put("k", {"a": 1})
        with pytest.raises(SerializationError):
            c.patch("k", bad)
        with pytest.raises(SerializationError):
            c.patch_where("$[*]", bad)
        assert c.get("k") == {"a": 1}

    def test_patch_in_a_typed_collection_validates(self, store: Any) -> None:
        from .base import Point

        c = store.collection("points", model=Point)
        c.put("p", Point(1, 2))
        assert c.patch("p", {"y": 5}) == Point(1, 5)
        with pytest.raises(ValidationError):
            c.patch("p", {"x": None})
        with pytest.raises(ValidationError):
            c.patch_where("$[*]", {"x": None})
        assert c.get("p") == Point(1, 5)
        assert c.patch_where("$[?@.x == 1]", {"x": 3}) == 1 and c.get("p") == Point(3, 5)

    # -- patch_where / delete_where ------------------------------------------------------------------

    @settings(max_examples=EXAMPLES or 40, **HYPOTHESIS)
    @given(documents=st.lists(DOCUMENT, max_size=8), query=FILTERS, patch=PATCH, delete=st.booleans(),
           indexed=st.booleans())
    def test_where_changes_what_the_standard_selects(self, store: Any, clock: Clock, documents: list[Any],
                                                     query: str, patch: Any, delete: bool, indexed: bool) -> None:
        c = store.collection("where")
        c.clear()
        if indexed and store.engine.supports_indexes and "n" not in [p[2:] for p in c.indexes()]:
            c.create_index("$.n")
        for n, document in enumerate(documents):
            c.put(f"k{n}", document, ttl=50 if n % 3 == 0 else None)
        c.put("old", {"n": 9}, ttl=1)
        clock.advance(2)  # "old" expired: never selected, never counted
        model = {f"k{n}": copy.deepcopy(d) for n, d in enumerate(documents)}
        ttls = {k: c.ttl(k) for k in model}
        chosen = {name for name, _ in ((node.location[0], None) for node in jsonpath_rfc9535.find(query, model))}
        if delete:
            assert c.delete_where(query) == len(chosen)
            expected = {k: v for k, v in model.items() if k not in chosen}
        else:
            assert c.patch_where(query, patch) == len(chosen)
            expected = {k: (merge_patch(v, patch) if k in chosen else v) for k, v in model.items()}
        assert [k for k, _ in c.items()] == list(expected)
        assert [strict(v) for v in c.values()] == [strict(v) for v in expected.values()]
        assert {k: c.ttl(k) for k in expected} == {k: ttls[k] for k in expected}

    @pytest.mark.parametrize("query", ["$.*.a", "$..a", "$['k1']", "$[?@.n > $.k1.n]", "$[?@.a].b", "$[0]",
                                       "$[?@.n, ?@.a]", "$[?@.a]['a']"])
    def test_where_refuses_queries_that_do_not_select_documents(self, store: Any, query: str) -> None:
        c = store.collection("refuse")
        c.put("k1", {"a": 1, "n": 2})
        for call in (lambda: c.patch_where(query, {"a": 2}), lambda: c.delete_where(query),
                     lambda: c.count_by("$.a", query)):
            with pytest.raises(QuerySyntaxError, match="selects whole documents|select documents"):
                call()
        with pytest.raises(QuerySyntaxError):
            c.delete_where("$[?@.a ==")
        assert c.get("k1") == {"a": 1, "n": 2}

    def test_where_through_other_serializers(self, store: Any) -> None:
        c = store.collection("pickled", serializer="pickle")
        c.put_many({"a": {"n": 1}, "b": {"n": 2}, "c": {"m": 1}})
        assert c.patch_where("$[?@.n >= 1]", {"seen": True}) == 2
        assert dict(c.items()) == {"a": {"n": 1, "seen": True}, "b": {"n": 2, "seen": True}, "c": {"m": 1}}
        assert c.delete_where("$[?@.seen]") == 2 and list(c.keys()) == ["c"]

    # -- count_by ------------------------------------------------------------------------------------

    @settings(max_examples=EXAMPLES or 40, **HYPOTHESIS)
    @given(documents=st.lists(DOCUMENT, max_size=10), path=st.sampled_from(["$.a", "$.b.a", "$.tags", "$.n"]),
           query=st.one_of(st.none(), FILTERS))
    def test_count_by_counts_json_values(self, store: Any, documents: list[Any], path: str,
                                          query: str | None) -> None:
        c = store.collection("facets")
        c.clear()
        for n, document in enumerate(documents):
            c.put(n, document)
        model = {str(n): d for n, d in enumerate(documents)}
        chosen = documents if query is None else [model[node.location[0]]
                                                  for node in jsonpath_rfc9535.find(query, model)]
        chosen = [d for d in documents if any(d is x for x in chosen)]  # in insertion order
        expected = _facets_model(chosen, path[2:].split("."))
        found = c.count_by(path, query)
        assert [count for _, count in found] == [count for _, count in expected]
        assert all(_json_equal(a, b) for (a, _), (b, _) in zip(found, expected)), (found, expected)

    def test_count_by_examples_and_errors(self, store: Any) -> None:
        c = store.collection("facet-examples")
        c.put_many([(1, {"s": "new", "v": 1}), (2, {"s": "old", "v": 1.0}), (3, {"s": "new", "v": True}),
                    (4, {"v": {"a": 1, "b": 2}}), (5, {"s": None, "v": {"b": 2, "a": 1}}), (6, {"s": "new"})])
        assert c.count_by("$.s") == [("new", 3), ("old", 1), (None, 1)]
        assert c.count_by("$.v") == [(1, 2), ({"a": 1, "b": 2}, 2), (True, 1)]
        assert c.count_by("$.s", "$[?@.v]") == [("new", 2), ("old", 1), (None, 1)]  # 6 has no v
        assert c.count_by("$.s", "$[?@.v == 1]") == [("new", 1), ("old", 1)]  # true is not 1
        assert c.count_by("$.nothing") == []
        c.put_many([(7, {"s": "nul\x00", "t": [1, 2]}), (8, {"t": [3, 2]})])  # NUL: no jsonb on PostgreSQL
        assert c.count_by("$.s")[-1] == ("nul\x00", 1)
        assert c.count_by("$.t[-1]") == [(2, 2)] and c.count_by("$.t[0]") == [(1, 1), (3, 1)]
        for bad in ("$..s", "$.*", "$[?@.s]", "s"):
            with pytest.raises(QuerySyntaxError):
                c.count_by(bad)

    # -- key ranges ------------------------------------------------------------------------------------

    KEY = st.one_of(st.text(alphabet="ab\x00é\U0010ffff", max_size=3), st.binary(max_size=2),
                    st.integers(-3, 3), st.sampled_from([1.5, -0.5, 2**64, float("inf")]))
    BOUND = st.one_of(st.none(), KEY)

    @settings(max_examples=EXAMPLES or 60, **HYPOTHESIS)
    @given(keys=st.lists(KEY, max_size=12), prefix=st.one_of(st.none(), st.text(alphabet="ab\U0010ffff", max_size=2),
                                                              st.binary(max_size=1)),
           start=BOUND, stop=BOUND, reverse=st.booleans())
    def test_key_ranges_match_a_sorted_model(self, store: Any, keys: list[Any], prefix: Any, start: Any,
                                             stop: Any, reverse: bool) -> None:
        c = store.collection("ranges")
        c.clear()
        model: dict[Any, Any] = {}
        for key in keys:
            c.put(key, repr(key))
            model.setdefault(key, repr(key))
            model[key] = repr(key)
        kinds = {kvlite.keys.kind_of(b) for b in (prefix, start, stop) if b is not None}
        if self.engine in NO_KEY_ORDER:
            if prefix is None and start is None and stop is None:
                return
            with pytest.raises((NotSupported, InvalidRange)):
                list(c.keys(prefix, start=start, stop=stop))
            return
        if len(kinds) > 1 or (start is not None and stop is not None and len(kinds) == 1 and start > stop):
            with pytest.raises(InvalidRange):
                list(c.keys(prefix, start=start, stop=stop))
            return
        if not kinds:
            assert list(c.keys(reverse=reverse)) == list(reversed(model) if reverse else model)
            return
        (kind,) = kinds
        selected = sorted(
            (k for k in model if kvlite.keys.kind_of(k) == kind
             and (prefix is None or k.startswith(prefix)) and (start is None or k >= start)
             and (stop is None or k < stop)), reverse=reverse)
        assert [(type(k), k) for k in c.keys(prefix, start=start, stop=stop, reverse=reverse)] == \
            [(type(k), k) for k in selected]
        assert list(c.items(prefix, start=start, stop=stop, reverse=reverse)) == [(k, model[k]) for k in selected]
        assert list(c.values(prefix, start=start, stop=stop, reverse=reverse)) == [model[k] for k in selected]

    def test_key_ranges_read_pages_and_skip_expired(self, store: Any, clock: Clock) -> None:
        if self.engine in NO_KEY_ORDER:
            with pytest.raises(NotSupported, match="ordered index of keys"):
                list(store.collection("pages").keys("a"))
            return
        c = store.collection("pages")
        c.put_many({f"u:{n:05d}": n for n in range(2500)})
        c.put_many({f"v:{n}": n for n in range(10)})
        c.put("u:00007", "short", ttl=1)
        clock.advance(2)
        got = list(c.keys("u:"))
        assert got == [f"u:{n:05d}" for n in range(2500) if n != 7]
        assert list(c.keys("u:", reverse=True)) == got[::-1]
        assert list(c.values(start="u:02498")) == [2498, 2499] + list(range(10))
        assert list(c.keys(start="u:00100", stop="u:00103")) == ["u:00100", "u:00101", "u:00102"]
        c.put("u:00000a", 1)  # a new key lands in the order at once
        c.delete("u:00001")
        assert list(c.keys("u:0000"))[:3] == ["u:00000", "u:00000a", "u:00002"]
        assert list(c.keys(start=5, stop=5)) == []

    def test_key_range_errors(self, store: Any) -> None:
        c = store.collection("range-errors")
        c.put("a", 1)
        with pytest.raises(InvalidKey):
            c.keys(prefix=1)
        with pytest.raises(InvalidKey):
            c.keys(start=[1])
        with pytest.raises(InvalidRange):
            c.keys(start="b", stop="a")
        with pytest.raises(InvalidRange):
            c.items(start="a", stop=b"b")
        with pytest.raises(InvalidRange):
            c.values("a", start=1)
        assert list(c.keys()) == ["a"] and c.dict().keys() == {"a"}

    # -- concurrency and asyncio ---------------------------------------------------------------------

    def test_concurrent_patches_of_different_members_lose_none(self, make_store: StoreMaker,
                                                                tmp_path: Path) -> None:
        store = make_store()
        c = store.collection("patch-race")
        c.put("doc", {"title": "x"})
        _run_workers(make_store, store, tmp_path, "patch-race", "doc", "patch", 60)
        doc = c.get("doc")
        assert doc == {"title": "x", **{f"w{w}-{i}": i for w in range(WORKERS) for i in range(60)}}

    def test_async_wrappers(self, make_store: StoreMaker, clock: Clock) -> None:
        import kvlite.aio

        location = make_store.location

        async def main() -> None:
            store = await kvlite.aio.open(location.target, clock=clock, **location.options)
            try:
                c = await store.collection("aio-docs")
                await c.put_many({"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 2}})
                assert await c.patch("a", {"m": 1}) == {"n": 1, "m": 1}
                assert await c.patch_where("$[?@.n == 2]", {"two": True}) == 2
                assert await c.count_by("$.n") == [(2, 2), (1, 1)]
                assert await c.delete_where("$[?@.two]") == 2
                if self.engine not in NO_KEY_ORDER:
                    assert [k async for k in c.keys("a")] == ["a"]
                    assert [v async for v in c.values(start="a", reverse=True)] == [{"n": 1, "m": 1}]
            finally:
                await store.close()

        asyncio.run(main())
