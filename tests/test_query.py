"""Queries (issue 3): JSONPath and ObjectPath over a collection, by example.

The root ``$`` of a path is the collection seen as the mapping
``{view_key(key): document}`` in insertion order; every answer here is also
checked against the oracle (the engine run on that mapping in memory), so an
example can only pass if kvlite and the engine agree on it.

The examples written in jsonpath-ng's dialect (``&``, ``=~``, ``[0]`` on the root as
the first document, int coercion, its error positions) run with
``engine="jsonpath-ng"`` and its oracle; the rest use the default engine, RFC 9535
JSONPath, checked against ``jsonpath_rfc9535`` (the standard's reference
implementation) where an oracle is needed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Callable

import jsonpath_ng.ext
import jsonpath_rfc9535
import orjson
import pytest

import kvlite
from kvlite.errors import KvliteError, NotSupported, QuerySyntaxError
from kvlite.query import jsonpath as qjp
from kvlite.query import objectpath as qop
from kvlite.keys import view as view_key
from kvlite.serializers import JSONSerializer

PEOPLE: dict[str, Any] = {
    "u1": {"name": "Ada", "age": 36, "email": "ada@example.org", "tags": ["math", "engines"]},
    "u2": {"name": "Bob", "age": 25, "contact": {"email": "bob@example.org"}},
    "u3": {"name": "Cy", "age": 41, "tags": []},
    "u4": {"name": "Dee"},  # no age
}


@pytest.fixture
def users(store: kvlite.Store) -> kvlite.Collection:
    coll = store.collection("users")
    coll.put_many(PEOPLE)
    return coll


def oracle(coll: kvlite.Collection, path: str) -> list[Any]:
    """jsonpath-ng itself (``jsonpath_ng.ext.parse``) on the collection loaded as a dict."""
    return [m.value for m in jsonpath_ng.ext.parse(path).find({view_key(k): v for k, v in coll.items()})]


def rfc_oracle(coll: kvlite.Collection, path: str) -> list[Any]:
    """RFC 9535's reference implementation on the collection loaded as a dict."""
    return jsonpath_rfc9535.find(path, {view_key(k): v for k, v in coll.items()}).values()


def op_oracle(coll: kvlite.Collection, path: str) -> list[Any]:
    return qop.evaluate(qop.parse(path), {view_key(k): v for k, v in coll.items()})


# -- the examples of issue 3 ------------------------------------------------------------------

EXAMPLES: list[tuple[str, list[tuple[Any, Any]]]] = [
    ("$[?(@.age > 30)]", [("u1", PEOPLE["u1"]), ("u3", PEOPLE["u3"])]),
    ("$[?(@.age > 30)].name", [("u1", "Ada"), ("u3", "Cy")]),
    ("$[?(@.age > 30 & @.tags)].name", [("u1", "Ada"), ("u3", "Cy")]),
    ("$[?(@.age >= 25 & @.age < 40)].name", [("u1", "Ada"), ("u2", "Bob")]),
    ("$[?(@.name == 'Bob')].age", [("u2", 25)]),
    ("$[?(@.name != 'Bob')].name", [("u1", "Ada"), ("u3", "Cy"), ("u4", "Dee")]),
    ("$[?(@.contact.email)].name", [("u2", "Bob")]),
    ("$.u1.tags[*]", [("u1", "math"), ("u1", "engines")]),
    ("$.u1.tags[1]", [("u1", "engines")]),
    ("$.u1.name", [("u1", "Ada")]),
    ("$.nobody.name", []),
    ("$..email", [("u1", "ada@example.org"), ("u2", "bob@example.org")]),
    ("$.*.name", [("u1", "Ada"), ("u2", "Bob"), ("u3", "Cy"), ("u4", "Dee")]),
    ("$[*].age", [("u1", 36), ("u2", 25), ("u3", 41)]),
    # jsonpath-ng 1.16+ indexes and slices arrays only: on the collection (an object) they match nothing.
    ("$[0]", []),
    ("$[-1]", []),
    ("$[0].name", []),
    ("$[-2].name", []),
    ("$[9]", []),
    ("$[1:3].name", []),
    ("$[:2].name", []),
    ("$[-2:].name", []),
    ("$[::2].name", []),
    ("$[::-1].name", []),
    ("$['u3','u1'].name", [("u3", "Cy"), ("u1", "Ada")]),
    ("$[0,-1].name", []),
    ("($.u2.name) | ($[?(@.age > 40)].name)", [("u2", "Bob"), ("u3", "Cy")]),
    ("($..email) | ($.u1.name)", [("u1", "ada@example.org"), ("u2", "bob@example.org"), ("u1", "Ada")]),
    ("$.u1.name[0]", []),  # [n] on a string: nothing (jsonpath-ng 1.8 gave a character)
    ("$[?(@.age > 30 && @.tags)].name", [("u1", "Ada"), ("u3", "Cy")]),
    ("$[?@.age > 30 || @.contact].name", [("u1", "Ada"), ("u2", "Bob"), ("u3", "Cy")]),
    ("$[?(!@.age)].name", [("u4", "Dee")]),
    ("$[?(@.age == 36.0)].name", [("u1", "Ada")]),
]


@pytest.mark.parametrize("path,expected", EXAMPLES, ids=[p for p, _ in EXAMPLES])
def test_examples(users: kvlite.Collection, path: str, expected: list[tuple[Any, Any]]) -> None:
    # jsonpath-ng's dialect, checked against jsonpath-ng.
    assert list(users.find(path, engine="jsonpath-ng")) == expected
    assert list(users.select(path, engine="jsonpath-ng")) == [value for _, value in expected] == oracle(users, path)
    assert users.count(path, engine="jsonpath-ng") == len(expected)


def test_root_is_the_whole_mapping(users: kvlite.Collection) -> None:
    # "$" matches once: the mapping itself, which comes from no single document (key None).
    assert list(users.find("$")) == [(None, PEOPLE)]
    assert users.explain("$")["streaming"] is False


def test_a_union_needs_parentheses(users: kvlite.Collection) -> None:
    # jsonpath-ng reads "$.u1.name | $.u2.name" as $.u1.(name | $).u2.name: kvlite gives its answer.
    ng = "jsonpath-ng"
    assert list(users.select("$.u1.name | $.u2.name", engine=ng)) == oracle(users, "$.u1.name | $.u2.name") == ["Bob"]
    assert list(users.select("($.u1.name) | ($.u2.name)", engine=ng)) == ["Ada", "Bob"]


# -- adapter fixes ---------------------------------------------------------------------------------

def test_incomparable_values_do_not_match_and_do_not_raise(store: kvlite.Store) -> None:
    coll = store.collection("mixed")
    coll.put_many({"a": {"age": 36}, "b": {"age": None}, "c": {"age": "old"}, "d": {"age": [1]}, "e": {"age": 40.5}})
    # jsonpath-ng 1.16+ compares as RFC 9535 does: only two numbers or two strings are ordered.
    ng = "jsonpath-ng"
    assert list(coll.find("$[?(@.age > 30.5)]", engine=ng)) == [("a", {"age": 36}), ("e", {"age": 40.5})]
    # No int() coercion any more (1.8 had it): "40" and " 7 " are strings, never equal to a number.
    coll.put_many({"f": {"age": "40"}, "g": {"age": " 7 "}, "h": {"age": 36.9}, "i": {"age": "36"}})
    assert list(coll.select("$[?(@.age > 30)].age", engine=ng)) == [36, 40.5, 36.9] == oracle(coll, "$[?(@.age > 30)].age")
    assert list(coll.select("$[?(@.age == 7)].age", engine=ng)) == [] == oracle(coll, "$[?(@.age == 7)].age")
    assert list(coll.select("$[?(@.age == 36)].age", engine=ng)) == [36] == oracle(coll, "$[?(@.age == 36)].age")
    assert list(coll.select("$[?(@.age == '36')].age", engine=ng)) == ["36"] == oracle(coll, "$[?(@.age == '36')].age")


@pytest.mark.parametrize("index", [False, True])
def test_integers_beyond_64_bits_compare_exactly(store: kvlite.Store, index: bool) -> None:
    """JSON integers above 2**63-1 are rounded REALs to SQLite; push-down must not lose them."""
    coll = store.collection("big")
    coll.put_many({"a": {"v": 2**64 - 1}, "b": {"v": 2**63 + 1}, "c": {"v": 2**53 + 1}, "d": {"v": 2**63}})
    if index:
        coll.create_index("$.v")
    for path, keys in [("$[?(@.v < 18446744073709551616.0)]", ["a", "b", "c", "d"]),
                       ("$[?(@.v > 9223372036854775808.0)]", ["a", "b"]),
                       ("$[?(@.v <= 9223372036854775808.0)]", ["c", "d"]),
                       ("$[?(@.v == 9223372036854775808.0)]", ["d"]),
                       ("$[?(@.v > 9007199254740992.0)]", ["a", "b", "c", "d"]),
                       ("$[?(@.v == 9223372036854775809)]", ["b"]),
                       ("$[?(@.v > 9223372036854775806)]", ["a", "b", "d"])]:
        assert [k for k, _ in coll.find(path, engine="jsonpath-ng")] == keys, path
        assert list(coll.select(path, engine="jsonpath-ng")) == oracle(coll, path)
        # The same filter in the standard's spelling: exactly the reference implementation's answer.
        rfc = "$[?" + path[4:-2] + "]"
        assert list(coll.select(rfc)) == rfc_oracle(coll, rfc), rfc


def test_a_filter_on_an_object_does_not_change_the_data(store: kvlite.Store) -> None:
    """jsonpath-ng 1.8 wrote a filtered object's values back into the data; kvlite's oracle does not."""
    coll = store.collection("limits")
    coll.put("u1", {"limits": {"cpu": 1, "ram": 4}})
    mapping = {"u1": {"limits": {"cpu": 1, "ram": 4}}}
    assert qjp.evaluate(qjp.parse("$.u1.limits[?(@ > 2)]"), mapping) == [4]
    assert mapping == {"u1": {"limits": {"cpu": 1, "ram": 4}}}
    path = "($.u1.limits[?(@ > 2)]) | ($.u1.limits)"
    assert list(coll.select(path, engine="jsonpath-ng")) == [4, {"cpu": 1, "ram": 4}] == oracle(coll, path)


def test_and_between_bare_paths_is_a_syntax_error(users: kvlite.Collection) -> None:
    # jsonpath-ng parses "@.a & @.b" as a path intersection it cannot run (NotImplementedError).
    with pytest.raises(QuerySyntaxError, match="intersection") as info:
        users.count("$[?(@.tags & @.age)]", engine="jsonpath-ng")
    assert info.value.engine == "jsonpath-ng"
    assert list(users.select("$[?(@.age > 0 & @.tags)].name", engine="jsonpath-ng")) == ["Ada", "Cy"]


# -- paging and ordering -----------------------------------------------------------------------------

def test_limit_and_offset(users: kvlite.Collection) -> None:
    assert list(users.select("$.*.name", limit=2)) == ["Ada", "Bob"]
    assert list(users.select("$.*.name", offset=1, limit=2)) == ["Bob", "Cy"]
    assert list(users.select("$.*.name", offset=3)) == ["Dee"]
    assert list(users.select("$.*.name", offset=9)) == []
    assert list(users.select("$.*.name", limit=0)) == []
    # Paging counts matches, not documents.
    assert list(users.select("$.u1.tags[*]", offset=1, limit=5)) == ["engines"]
    for bad in ({"limit": -1}, {"offset": -1}, {"limit": 1.5}):
        with pytest.raises(ValueError):
            list(users.find("$.*", **bad))


def test_order_by(users: kvlite.Collection) -> None:
    # Ascending: a missing value (or null) sorts first; ties keep insertion order.
    assert [k for k, _ in users.find("$.*", order_by="$.age")] == ["u4", "u2", "u1", "u3"]
    assert [k for k, _ in users.find("$.*", order_by="$.age", desc=True)] == ["u3", "u1", "u2", "u4"]
    assert [k for k, _ in users.find("$.*", order_by="-$.age")] == ["u3", "u1", "u2", "u4"]
    # The path runs on the documents in that order: filters, limit and offset too.
    assert list(users.select("$.*.name", order_by="-$.age", limit=1)) == ["Cy"]
    assert list(users.select("$.*.name", order_by="-$.age", offset=3)) == ["Dee"]
    assert list(users.select("$[?@.age > 30].name", order_by="$.age", desc=True)) == ["Cy", "Ada"]
    # jsonpath-ng's dialect sees the documents in that order too; positions on the root (an object)
    # match nothing in jsonpath-ng 1.16+, whatever the order.
    assert list(users.select("$.*.name", order_by="-$.age", engine="jsonpath-ng")) == ["Cy", "Ada", "Bob", "Dee"]
    assert list(users.select("$[0].name", order_by="-$.age", engine="jsonpath-ng")) == []
    assert list(users.select("$.*.name", order_by="$.name", desc=True, offset=1, limit=2)) == ["Cy", "Bob"]


def test_order_by_ties_and_mixed_types(store: kvlite.Store) -> None:
    coll = store.collection("mixed")
    coll.put_many({"a": {"v": 3}, "b": {"v": "10"}, "c": {}, "d": {"v": None}, "e": {"v": 2.5},
                   "f": {"v": True}, "g": {"v": 3}})
    # SQLite's order of json_extract values: NULL (missing, null), numbers (true is 1), text.
    assert [k for k, _ in coll.find("$.*", order_by="$.v")] == ["c", "d", "f", "e", "a", "g", "b"]
    assert [k for k, _ in coll.find("$.*", order_by="$.v", desc=True)] == ["b", "a", "g", "e", "f", "c", "d"]
    # jsonpath-ng's dialect walks the same ordered mapping.
    assert [k for k, _ in coll.find("$.*", order_by="$.v", desc=True, engine="jsonpath-ng")] == [
        "b", "a", "g", "e", "f", "c", "d"]


def test_order_by_needs_a_plain_field_path_on_json(store: kvlite.Store, users: kvlite.Collection) -> None:
    for bad in ("$..age", "$.tags[0]", "$[?(@.a)]"):
        with pytest.raises(NotSupported):
            list(users.find("$.*", order_by=bad))
    pickled = store.collection("pickled", serializer="pickle")
    pickled.put("a", {"age": 1})
    with pytest.raises(NotSupported):
        list(pickled.find("$.*", order_by="$.age"))


# -- what a query sees -------------------------------------------------------------------------------

def test_expired_entries_never_appear(store: kvlite.Store, clock: Any) -> None:
    coll = store.collection("ttl")
    coll.put("keep", {"age": 50, "email": "k@x"})
    coll.put("gone", {"age": 60, "email": "g@x"}, ttl=10)
    coll.put("last", {"age": 20}, ttl=100)
    coll.create_index("$.age")
    clock.advance(11)  # "gone" is expired but still in the table (nothing purged it)
    assert list(coll.find("$.*")) == [("keep", {"age": 50, "email": "k@x"}), ("last", {"age": 20})]
    assert list(coll.find("$[?@.age > 40]")) == [("keep", {"age": 50, "email": "k@x"})]
    assert list(coll.select("$.gone")) == []
    assert list(coll.select("$..email")) == ["k@x"]
    assert list(coll.select("$.*.age", offset=1)) == [20]
    assert list(coll.select("$.*.age", engine="jsonpath-ng")) == [50, 20]
    assert list(coll.select("$[?(@.age < 30)].age", engine="jsonpath-ng")) == [20]
    assert list(coll.select("$", engine="jsonpath")) == [{"keep": {"age": 50, "email": "k@x"}, "last": {"age": 20}}]
    assert list(coll.select("count($.*)", engine="objectpath")) == [2]
    assert list(coll.select("$.*[@.age > 40].email", engine="objectpath")) == ["k@x"]
    assert coll.count("$.*") == 2
    clock.advance(100)
    assert list(coll.find("$.*")) == [("keep", {"age": 50, "email": "k@x"})]


def test_non_str_keys_are_addressed_by_view_key(store: kvlite.Store) -> None:
    coll = store.collection("keys")
    coll.put_many([(7, {"num": 1}), (b"k", {"num": 2}), (b"\xff", {"num": 3}), (1.5, {"num": 4}),
                   (True, {"num": 5})])
    assert [view_key(k) for k in coll.keys()] == ["7", "k", "\\xff", "1.5", "True"]
    # find() yields the real key (its type kept), whatever addressed it.
    assert list(coll.find("$['7'].num")) == [(7, 1)]
    assert list(coll.find("$.k")) == [(b"k", {"num": 2})]
    assert list(coll.find(r"$['\\xff']")) == [(b"\xff", {"num": 3})]
    assert list(coll.find("$['1.5'].num")) == [(1.5, 4)]
    assert list(coll.find("$.True.num")) == [(True, 5)]
    assert list(coll.find("$[?@.num > 2].num")) == [(b"\xff", 3), (1.5, 4), (True, 5)]
    assert list(coll.find("$['k']", engine="jsonpath-ng")) == [(b"k", {"num": 2})]
    assert list(coll.find("$[1]", engine="jsonpath-ng")) == []  # jsonpath-ng 1.16+: [n] on arrays only
    assert [k for k, _ in coll.find("$.*[@.num > 3]", engine="objectpath")] == [1.5, True]
    assert list(coll.select('$."7".num', engine="objectpath")) == [1] == op_oracle(coll, '$."7".num')


def test_objectpath_reads_some_names_as_literals(store: kvlite.Store) -> None:
    """objectpath parses the names t, f, n, true, false, none, null, nil as literals: quote them."""
    coll = store.collection("short")
    coll.put_many({"a": {"n": 1}, "b": {"n": 4}})
    assert list(coll.select("$.*[@.n > 3]", engine="objectpath")) == [] == op_oracle(coll, "$.*[@.n > 3]")
    assert list(coll.select('$.*[@."n" > 3]', engine="objectpath")) == [{"n": 4}]


PICKLE_PATHS = ["$[?(@.age > 30)].name", "$.u1.tags[*]", "$..email", "$[-1]", "$['u3','u1']", "$[1:3]",
                "$[?(@.name == 'Bob')]"]


def test_a_pickle_collection_is_queried_in_python(store: kvlite.Store, users: kvlite.Collection) -> None:
    pickled = store.collection("pickled", serializer="pickle")
    pickled.put_many(PEOPLE)
    for path in PICKLE_PATHS:
        assert list(pickled.find(path)) == list(users.find(path)), path
    plan = pickled.explain("$[?(@.age > 30)].name")
    assert all(step["pushdown"] == [] for step in plan["steps"])
    assert "json_extract" not in plan["steps"][0]["sql"]
    assert any("no SQL push-down" in note for note in plan["notes"])
    assert users.explain("$[?(@.age > 30)].name")["steps"][0]["pushdown"] != []
    # Values only pickle can keep still flow through the path engines.
    pickled.put("u5", {"name": "Eve", "age": 50, "tags": ("a", "b")})
    assert list(pickled.select("$[?(@.age > 45)].tags")) == [("a", "b")]
    assert list(pickled.select("$.*[@.age > 45].name", engine="objectpath")) == ["Eve"]


# -- explain -------------------------------------------------------------------------------------------

def test_explain_says_what_runs_where(users: kvlite.Collection) -> None:
    scan = users.explain("$[?(@.age > 30)].name")
    assert scan["engine"] == "jsonpath" and scan["streaming"] is True
    [step] = scan["steps"]
    assert step["kind"] == "scan"
    assert "json_extract(value, '$.age')" in step["sql"] and step["pushdown"]
    assert step["query_plan"] and all(isinstance(line, str) for line in step["query_plan"])
    assert [s["kind"] for s in users.explain("$.u1.name")["steps"]] == ["keys"]
    # jsonpath-ng 1.16+ indexes arrays only: on the collection, [n] is no step at all.
    assert users.explain("$[-1]", engine="jsonpath-ng")["steps"] == [] and list(users.find("$[-1]", engine="jsonpath-ng")) == []
    ng = users.explain("$[?(@.age > 30)].name", engine="jsonpath-ng")
    assert [s["kind"] for s in ng["steps"]] == ["scan"] and ng["steps"][0]["pushdown"] == []
    assert [s["kind"] for s in users.explain("$..email")["steps"]] == ["keys", "descend"]
    assert [s["kind"] for s in users.explain("$")["steps"]] == ["fallback"]
    # An index selects nothing of the collection object under RFC 9535: no step at all.
    assert users.explain("$[-1]")["steps"] == [] and list(users.find("$[-1]")) == []
    # Filters that cannot be compiled are still right: they run in Python.
    regex = users.explain("$[?(@.name =~ 'A.*')]", engine="jsonpath-ng")
    assert regex["streaming"] is True
    assert list(users.select("$[?(@.name =~ 'A.*')].name", engine="jsonpath-ng")) == ["Ada"]


def test_explain_objectpath(users: kvlite.Collection) -> None:
    rowwise = users.explain("$.*[@.age > 30].name", engine="objectpath")
    assert rowwise["engine"] == "objectpath" and rowwise["streaming"] is True
    for aggregate in ("count($.*)", "sum($.*.age)", "$.*[0]", "$.u1.name"):
        plan = users.explain(aggregate, engine="objectpath")
        assert plan["streaming"] is False, aggregate
        assert plan["steps"][0]["kind"] == "fallback"


# -- indexes ---------------------------------------------------------------------------------------------

def test_create_drop_and_list_indexes(store: kvlite.Store, users: kvlite.Collection) -> None:
    assert users.indexes() == []
    assert users.create_index("$.age") == "$.age"
    assert users.create_index("$.age") == "$.age"  # idempotent
    assert users.create_index("$.contact.email") == "$.contact.email"
    assert sorted(users.indexes()) == ["$.age", "$.contact.email"]
    assert list(users.select("$[?(@.age > 30)].name")) == ["Ada", "Cy"]  # same answer with the index
    assert users.drop_index("$.age") is True
    assert users.drop_index("$.age") is False
    assert users.indexes() == ["$.contact.email"]
    other = store.collection("other")
    assert other.indexes() == []  # indexes belong to one collection
    for bad in ("$..age", "$.tags[0]", "$.*", "$['a b']"):
        with pytest.raises(NotSupported):
            users.create_index(bad)
    with pytest.raises(QuerySyntaxError):
        users.create_index("$[")
    pickled = store.collection("pickled", serializer="pickle")
    with pytest.raises(NotSupported):
        pickled.create_index("$.age")


def test_explain_shows_the_index_in_use(store: kvlite.Store) -> None:
    coll = store.collection("many")
    coll.put_many((f"k{i}", {"age": i % 1000, "name": f"n{i}"}) for i in range(3000))
    path = "$[?@.age == 123].name"
    before = coll.explain(path)["steps"][0]["query_plan"]
    assert not any("USING INDEX" in line or "USING COVERING INDEX" in line for line in before), before
    coll.create_index("$.age")
    plan = coll.explain(path)["steps"][0]["query_plan"]
    # explain names the index by its path ("USING INDEX on $.age"), not by its SQL name.
    assert any("INDEX on $.age" in line for line in plan), plan
    assert not any("_ix_" in line for line in plan), plan
    assert list(coll.select(path)) == ["n123", "n1123", "n2123"] == rfc_oracle(coll, path)
    assert any("INDEX" in line for line in coll.explain("$[?@.age > 990]")["steps"][0]["query_plan"])
    assert coll.count("$[?@.age > 990]") == 27
    coll.drop_index("$.age")
    assert not any("INDEX on $.age" in line for line in coll.explain(path)["steps"][0]["query_plan"])


# -- bad paths --------------------------------------------------------------------------------------------

BAD_JSONPATHS = [("$[?(@.age > )]", 12), ("$.a#", 3), ("$.a , $.b", 6), ("$[", 2), ("", 0),
                 ('$[?(@.name == "Ada)]', 20)]
BAD_OBJECTPATHS = ["$.*[", "$..[", "", "$.a +", "foo(", "$.*[@.age == 3]"]


@pytest.mark.parametrize("path,position", BAD_JSONPATHS)
def test_bad_jsonpath(users: kvlite.Collection, path: str, position: int) -> None:
    """jsonpath-ng's error positions."""
    ng = "jsonpath-ng"
    for run in (lambda: list(users.find(path, engine=ng)), lambda: users.count(path, engine=ng),
                lambda: users.explain(path, engine=ng), lambda: list(users.select(path, engine=ng))):
        with pytest.raises(QuerySyntaxError) as info:
            run()
        assert info.value.engine == "jsonpath-ng" and info.value.path == path
        assert info.value.position == position
        assert "jsonpath" in str(info.value) and f"position {position}" in str(info.value)
        assert isinstance(info.value, (KvliteError, ValueError))


@pytest.mark.parametrize("path", BAD_OBJECTPATHS)
def test_bad_objectpath(users: kvlite.Collection, path: str) -> None:
    for run in (lambda: list(users.find(path, engine="objectpath")),
                lambda: users.count(path, engine="objectpath"),
                lambda: users.explain(path, engine="objectpath")):
        with pytest.raises(QuerySyntaxError) as info:
            run()
        assert info.value.engine == "objectpath" and info.value.path == path
        assert "objectpath" in str(info.value)


def test_a_path_nested_too_deeply_is_a_syntax_error(users: kvlite.Collection) -> None:
    # jsonpath-ng's parser recurses once per segment.
    deep = "$" + ".a" * 5000
    for run in (lambda: list(users.find(deep, engine="jsonpath-ng")),
                lambda: users.explain(deep, engine="jsonpath-ng")):
        with pytest.raises(QuerySyntaxError, match="nests too deeply"):
            run()
    assert list(users.find("$.u1" + ".a" * 200, engine="jsonpath-ng")) == []  # long but evaluable paths still run
    # The standard's parser recurses on nested expressions.
    deep = "$[?" + "(" * 5000 + "@.age" + ")" * 5000 + "]"
    for run in (lambda: list(users.find(deep)), lambda: users.explain(deep), lambda: users.count(deep)):
        with pytest.raises(QuerySyntaxError, match="nests too deeply"):
            run()
    assert list(users.find("$.u1" + ".a" * 200)) == []


def test_a_filter_with_many_conditions_runs_in_python(users: kvlite.Collection) -> None:
    """jsonpath-ng's dialect is not pushed down: a long conjunction is checked in Python only, and
    the answer is the engine's."""
    conditions = ["@.age > 30"] * 300 + ["@.name == 'Ada'"]
    path = "$[?(" + " && ".join(conditions) + ")]"
    assert [key for key, _ in users.find(path, engine="jsonpath-ng")] == ["u1"]
    assert list(users.select(path, engine="jsonpath-ng")) == oracle(users, path)
    assert users.explain(path, engine="jsonpath-ng")["steps"][0]["pushdown"] == []


def test_unknown_engine(users: kvlite.Collection) -> None:
    with pytest.raises(ValueError, match="engine"):
        list(users.find("$.*", engine="xpath"))


# -- ObjectPath ---------------------------------------------------------------------------------------------

def test_objectpath_selector_on_every_document(users: kvlite.Collection) -> None:
    # Plain objectpath on the dict matches nothing here ($.* is the dict, the selector walks its keys);
    # kvlite runs "$.*" as "every document".
    path = "$.*[@.age > 30].name"
    assert list(users.find(path, engine="objectpath")) == [("u1", "Ada"), ("u3", "Cy")]
    assert list(users.select(path, engine="objectpath")) == op_oracle(users, path) == ["Ada", "Cy"]
    assert list(users.select("$.*[@.name is 'Bob'].age", engine="objectpath")) == [25]
    assert list(users.select("$.*[@.age > 30 and @.age < 40].name", engine="objectpath")) == ["Ada"]
    assert list(users.select("$.*.name", engine="objectpath", limit=2)) == ["Ada", "Bob"]


@pytest.mark.parametrize("path,expected", [
    ("count($.*)", [4]),
    ("sum($.*.age)", [102]),
    ("max($.*.age)", [41]),
    ("len($.*[@.age > 30])", [2]),
    ("$.u2.contact.email", ["bob@example.org"]),
    ("$.*[0].name", ["Ada"]),
    ("$..email", ["ada@example.org", "bob@example.org"]),
])
def test_objectpath_whole_collection_expressions(users: kvlite.Collection, path: str, expected: list[Any]) -> None:
    assert list(users.select(path, engine="objectpath")) == expected == op_oracle(users, path)
    assert users.count(path, engine="objectpath") == len(expected)
    if path.startswith(("count", "sum", "max", "len")):
        assert list(users.find(path, engine="objectpath")) == [(None, expected[0])]  # no single source


# -- streaming ------------------------------------------------------------------------------------------------

class CountingJSON(JSONSerializer):
    """JSON that counts how many stored values were decoded."""

    name = "json-counting-test"

    def __init__(self) -> None:
        self.decoded = 0

    def loads(self, data: str | bytes) -> Any:
        self.decoded += 1
        return super().loads(data)


def test_limit_stops_reading_early(store: kvlite.Store) -> None:
    serializer = CountingJSON()
    coll = store.collection("counted", serializer=serializer)
    coll.put_many((f"k{i}", {"age": i, "name": f"n{i}"}) for i in range(2000))
    serializer.decoded = 0
    assert list(coll.select("$[?(@.age >= 0)].name", limit=5)) == [f"n{i}" for i in range(5)]
    assert serializer.decoded == 5
    serializer.decoded = 0
    assert list(coll.select("$.*.name", offset=10, limit=3)) == ["n10", "n11", "n12"]
    assert serializer.decoded == 13
    serializer.decoded = 0
    matches = coll.find("$..name")
    assert next(matches) == ("k0", "n0")
    assert serializer.decoded <= 1  # one document read, not 2000
    del matches


@pytest.fixture
def big_file_store(open_store: Callable[..., kvlite.Store]) -> kvlite.Store:
    store = open_store(timeout=5.0)
    store.collection("docs").put_many((f"k{i:05d}", {"i": i, "pad": "x" * 50}) for i in range(3000))
    return store


def test_a_suspended_query_does_not_block_a_writer_thread(big_file_store: kvlite.Store,
                                                          open_store: Callable[..., kvlite.Store]) -> None:
    coll = big_file_store.collection("docs")
    matches = coll.select("$[?(@.i >= 0)].i")
    assert [next(matches) for _ in range(10)] == list(range(10))  # a read cursor is open, mid-way
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            other = big_file_store.collection("docs")  # same Store, another thread: its own connection
            other.put("new", {"i": -1})
            other.put_many({f"w{i}": {"i": -2} for i in range(100)})
            with big_file_store.transaction():
                other.put("k00000", {"i": 0, "changed": True})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(60)  # a safety net only: a blocked writer fails with StoreLocked after timeout=5
    assert not thread.is_alive() and errors == []
    # Committed: another connection sees it now, while the query is still suspended.
    fresh = open_store().collection("docs")
    assert fresh.get("new") == {"i": -1} and fresh.get("k00000") == {"i": 0, "changed": True}
    rest = list(matches)  # the query finishes normally
    assert rest[:5] == [10, 11, 12, 13, 14] and len(rest) >= 2990
    assert coll.get("new") == {"i": -1}


def test_a_suspended_query_does_not_block_a_writer_process(big_file_store: kvlite.Store, db_path: Path,
                                                           open_store: Callable[..., kvlite.Store]) -> None:
    coll = big_file_store.collection("docs")
    matches = coll.select("$.*.i")
    assert [next(matches) for _ in range(10)] == list(range(10))
    script = textwrap.dedent("""
        import sys, kvlite
        with kvlite.open(sys.argv[1], timeout=5.0) as db:
            docs = db.collection("docs")
            docs.put("from-process", {"i": -3})
            docs.put_many({f"p{i}": {"i": -4} for i in range(100)})
        print("committed")
    """)
    done = subprocess.run([sys.executable, "-c", script, str(db_path)], check=False, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "committed"
    assert open_store().collection("docs").get("from-process") == {"i": -3}
    assert len(list(matches)) >= 2990
    assert coll.get("from-process") == {"i": -3}


def test_streaming_reads_documents_one_at_a_time(store: kvlite.Store) -> None:
    """Between two matches only the documents they need have been decoded (no list of the collection)."""
    serializer = CountingJSON()
    coll = store.collection("counted", serializer=serializer)
    coll.put_many((f"k{i}", {"age": i}) for i in range(500))
    serializer.decoded = 0
    seen = 0
    for _, age in coll.find("$.*.age"):
        seen += 1
        assert serializer.decoded == seen == age + 1
    serializer.decoded = 0
    # A fallback path ("$") loads the collection, and explain says so.
    assert coll.explain("$")["streaming"] is False
    assert len(next(coll.select("$"))) == 500 and serializer.decoded == 500


def test_documents_are_plain_json(users: kvlite.Collection) -> None:
    """find() yields values equal to what the dict view holds, for every document."""
    for key, doc in users.find("$.*"):
        assert orjson.dumps(doc) == orjson.dumps(users.get(key))


# -- writing while a query runs, and other edges found in review ---------------------------------------


def test_a_query_on_a_file_store_reads_one_snapshot(store: kvlite.Store) -> None:
    """Writes the iterating thread makes are not seen by the running query: no new key comes
    back (no endless loop), no updated document comes again, even through an index walk."""
    coll = store.collection("c")
    coll.put_many((f"k{i}", {"n": i}) for i in range(3))
    copied = []
    for key, doc in coll.find("$.*"):
        coll.put(key + "+", doc)
        copied.append(key)
    assert copied == ["k0", "k1", "k2"] and len(coll) == 6
    coll.create_index("$.n")
    seen = []
    for key, doc in coll.find("$[?(@.n < 100)]", order_by="$.n"):
        coll.put(key, {"n": doc["n"] + 10})
        seen.append(key)
    assert sorted(seen) == sorted(coll.keys()) and len(seen) == 6
    assert store.engine._readers, "the snapshot connection is kept for the next query"


def test_a_query_inside_a_transaction_sees_the_blocks_writes_but_no_key_added_after_it_started(
        store: kvlite.Store) -> None:
    coll = store.collection("c")
    coll.put_many({"a": 1, "b": 2})
    with store.transaction():
        coll.put("c", 3)
        found = []
        for key, value in coll.find("$.*"):
            coll.put(key * 2, value)
            found.append(key)
    assert found == ["a", "b", "c"] and dict(coll.items()) == {"a": 1, "b": 2, "c": 3, "aa": 1, "bb": 2, "cc": 3}


def test_positions_and_limits_beyond_64_bits(users: kvlite.Collection) -> None:
    mapping = dict(users.items())
    for path in ["$[99999999999999999999]", "$[-9223372036854775809]", "$[0:99999999999999999999]",
                 "$[:99999999999999999999].name", "$[-99999999999999999999:]"]:
        assert list(users.select(path, engine="jsonpath-ng")) == qjp.evaluate(qjp.parse(path), mapping), path
    assert len(list(users.find("$.*", limit=2**64))) == len(PEOPLE)
    assert list(users.find("$.*", offset=2**64)) == []


def test_desc_needs_order_by(users: kvlite.Collection) -> None:
    with pytest.raises(ValueError, match="order_by"):
        list(users.find("$.*", desc=True))
    with pytest.raises(ValueError, match="order_by"):
        users.explain("$.*", desc=True)


def test_objectpath_dollar_star_is_every_document_in_any_expression(users: kvlite.Collection) -> None:
    names_over_30 = [doc["name"] for doc in PEOPLE.values() if doc.get("age", 0) > 30]
    assert list(users.select("[$.*[@.age > 30].name, $.u1.name]", engine="objectpath")) == [
        names_over_30, "Ada"]
    assert list(users.select("len($.*) + len($.u1)", engine="objectpath")) == [len(PEOPLE) + len(PEOPLE["u1"])]
    # Matches from one document name it, as in JSONPath; aggregates have no single source.
    assert list(users.find("$.u1.name", engine="objectpath")) == [("u1", "Ada")]
    assert list(users.find("$.*[0]", engine="objectpath")) == [("u1", PEOPLE["u1"])]
    assert list(users.find("count($.*)", engine="objectpath")) == [(None, len(PEOPLE))]


def test_index_and_filters_on_tuples_of_a_pickle_collection(store: kvlite.Store) -> None:
    pets = store.collection("pets", serializer="pickle")
    pets.put_many({"rex": {"kind": "dog", "toys": ("ball", "rope"), "w": float("inf")},
                   "tom": {"kind": "cat", "toys": ["yarn"], "w": 4.0}})
    # jsonpath-ng indexes a tuple like a list.
    ng = "jsonpath-ng"
    assert list(pets.select("$.rex.toys[0]", engine=ng)) == ["ball"]
    assert list(pets.select("$.*.toys[-1]", engine=ng)) == ["rope", "yarn"]
    assert list(pets.select("$[?(@.toys[0] == 'ball')].kind", engine=ng)) == ["dog"]
    # inf is a number greater than 3 (jsonpath-ng 1.8 failed on int(inf)).
    assert list(pets.select("$[?(@.w > 3)].kind", engine=ng)) == ["dog", "cat"]
    # RFC 9535: a tuple is not a JSON array (nothing to index), inf is a number greater than 3.
    mapping = dict(pets.items())
    for path, expected in [("$.rex.toys[0]", []), ("$.*.toys[-1]", ["yarn"]),
                           ("$[?@.toys[0] == 'ball'].kind", []), ("$[?@.w > 3].kind", ["dog", "cat"])]:
        assert list(pets.select(path)) == expected == jsonpath_rfc9535.find(path, mapping).values(), path


def test_a_bytes_key_holding_backslash_x_text_is_found_by_name(store: kvlite.Store) -> None:
    coll = store.collection("c")
    keys = [b"\\x80\xff", b"\\x80", b"\x80", b"a\\xffb\xfe"]
    for i, key in enumerate(keys):
        coll.put(key, i)
    mapping = {view_key(k): v for k, v in coll.items()}
    owners = {view_key(k): k for k in coll.keys()}  # b"\\x80" and b"\x80" look alike: the last one wins
    for key in keys:
        name = view_key(key)
        path = "$['" + name.replace("\\", "\\\\") + "']"
        assert list(coll.find(path)) == [(owners[name], mapping[name])], path


def test_an_int_key_beyond_64_bits_is_found_by_name(store: kvlite.Store) -> None:
    coll = store.collection("c")
    coll.put(2**64, {"big": True})
    assert list(coll.find("$['18446744073709551616']")) == [(2**64, {"big": True})]
    assert list(coll.find("$['99999999999999999999999']")) == []  # no float equals it: no such key
