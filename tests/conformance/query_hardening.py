"""Query hardening (issue 11) on every engine: one exact ``order_by`` order (numbers by their exact
value, also beyond 64 bits), ObjectPath never reaches Python attributes, a field name that is not
a plain identifier never reaches SQL text, and only the engine's own errors are translated.  The
engine-independent half is in tests/test_query_hardening.py."""

from __future__ import annotations

from typing import Any

import jsonpath_rfc9535
import orjson
import pytest
from helpers_query import strict

from kvlite.errors import (
    NotSupported,
    QueryError,
    QueryEvaluationError,
    QuerySyntaxError,
)
from kvlite.keys import view as view_key
from kvlite.query import jsonpath as qjp
from kvlite.query import objectpath as qop

from .base import EngineTests

#: Inserted in this order; SQLite's json_extract gives 2**63 and 2**63+1 one REAL, and 2**64-2, 2**64-1
#: and the float 2**64 another.
NEAR_2_64: list[tuple[str, Any]] = [
    ("a", {"v": 2**64 - 1}),
    ("b", {"v": 2.0**64}),
    ("c", {"v": 2**64 - 2}),
    ("d", {"v": "text"}),
    ("e", {}),
    ("f", {"v": None}),
    ("g", {"v": 2**63 + 1}),
    ("h", {"v": 2**63}),
    ("i", {"v": 2**63 - 1}),
    ("j", {"v": float(2**63)}),
    ("k", {"v": True}),
    ("l", {"v": [2**64 - 1]}),
    ("m", {"v": -(2**63)}),
    ("n", {"v": 1}),
    ("o", {"v": 2**64 - 1}),
    ("p", {"v": 1.5}),
    ("q", {"v": 2**64 - 2, "w": 1}),
    ("r", {"v": 2.0**64, "w": 2}),
    ("s", {"v": 2**64 - 1, "w": 3}),
    ("t", {"v": 2**64 - 2, "w": 4}),
]


def exact_key(document: Any, field: str) -> tuple[int, Any]:
    """Where ``order_by`` puts ``document``: missing/null, then numbers by exact value, then text."""
    value = document.get(field) if isinstance(document, dict) else None
    if value is None:
        return (0, 0)
    if isinstance(value, (bool, int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value.encode())
    return (2, orjson.dumps(value))


PATHS = ["$.*", "$[0]", "$[1]", "$[2]", "$[3]", "$[7]", "$[8]", "$[9]", "$[10]", "$[11]", "$[12]", "$[-1]",
         "$[-3]", "$[-5]", "$[-6]", "$[2:5]", "$[6:12]", "$[10:13]", "$[11:]", "$[:11]", "$[::-1]", "$[1::3]",
         "$[-8:-2]", "$[?(@.v > 1)]", "$[?(@.w)].w", "$..w", "($[10]) | ($[0])", "$"]
#: The default engine's (RFC 9535) queries on the ordered documents, checked against jsonpath_rfc9535.
RFC_PATHS = ["$.*", "$[?@.v > 1]", "$[?@.w].w", "$..w", "$", "$[?@.v == 18446744073709551615]", "$.*.v",
             "$[?@.v < 1.0 || @.v == 'text']"]


ATTRIBUTE_PATHS = ["$.ada.name.__class__", "$.ada.name.upper", "$.ada.name.__len__", "$.ada.name['__class__']",
                   "$.ada.n.real", "$.ada.n.__class__.__mro__", "$.ada.z.__class__", "$.ada.b.__doc__",
                   "$.ada.f.hex", "$.ada.l[0].__class__", "$.ada.l[1].upper", "$.*.name.upper", "$.*.name.__class__",
                   "$.ada.name.x", "$.ada.d.k.__class__", "$.ada.name.__class__.__subclasses__"]


def is_json(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(is_json(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


NEWLINE_DOCS: dict[str, Any] = {"a": {"x\n": 1, "x": 10}, "b": {"x": 1}, "c": {"x\n": 5, "x": 1}, "d": {"x\n": 1},
                                "e": {"y": {"x\n": 1}}}


class Interrupted(Exception):
    """The caller's own exception (raised by its signal handler, or thrown into the iterator)."""


class QueryHardening(EngineTests):
    """order_by, ObjectPath attributes, SQL text and errors, on every engine."""

    @pytest.mark.parametrize("indexed", [False, True])
    def test_order_by_is_exact_and_the_same_on_every_engine(self, store: Any, indexed: bool) -> None:
        coll = store.collection("near")
        if indexed:
            try:
                coll.create_index("$.v")
            except NotSupported:  # an engine without indexes says so (memory://, Redis): nothing to order by
                assert coll.indexes() == []
                return
        coll.put_many(NEAR_2_64)
        mapping = {view_key(k): d for k, d in NEAR_2_64}
        for desc in (False, True):
            ordered = dict(sorted(mapping.items(), key=lambda item: exact_key(item[1], "v"), reverse=desc))
            assert [k for k, _ in coll.find("$.*", order_by="$.v", desc=desc)] == list(ordered)
            for path in PATHS:  # jsonpath-ng's dialect, on the ordered mapping (positions on it: nothing)
                expected = [strict(v) for v in qjp.evaluate(qjp.parse(path), ordered)]
                got = [strict(v) for v in coll.select(path, order_by="$.v", desc=desc, engine="jsonpath-ng")]
                assert got == expected, (path, desc)
            for path in RFC_PATHS:
                expected = [strict(v) for v in jsonpath_rfc9535.find(path, ordered).values()]
                got = [strict(v) for v in coll.select(path, order_by="$.v", desc=desc)]
                assert got == expected, (path, desc)
            for offset, limit in ((0, 1), (2, 1), (10, 3), (11, 4)):
                got = [k for k, _ in coll.find("$.*", order_by="-$.v" if desc else "$.v", offset=offset, limit=limit)]
                assert got == list(ordered)[offset:offset + limit]
            expected = qop.evaluate(qop.parse("$.*[@.w > 1]"), ordered)
            assert list(coll.select("$.*[@.w > 1]", engine="objectpath", order_by="$.v", desc=desc)) == expected
        # The first match names the same document on every engine; jsonpath-ng 1.16+'s $[n] on the
        # root (an object) is nothing, whatever the order.
        ng = "jsonpath-ng"
        assert list(coll.find("$[?(@.v > 9223372036854775807)]", order_by="$.v", engine=ng))[0][0] == "h"
        assert [k for k, _ in coll.find("$.*", order_by="-$.v", engine=ng)][::2][:2] == ["d", "b"]
        assert list(coll.find("$[0]", order_by="-$.v", engine=ng)) == []
        # The default engine: the first match and the n-th document (offset) on every engine.
        ordered = dict(sorted(mapping.items(), key=lambda item: exact_key(item[1], "v")))
        path = "$[?@.v > 9223372036854775807]"
        assert [strict(v) for v in coll.select(path, order_by="$.v")] == [
            strict(v) for v in jsonpath_rfc9535.find(path, ordered).values()]
        assert [k for k, _ in coll.find("$.*", order_by="-$.v", limit=1)] == ["d"]
        assert [k for k, _ in coll.find("$.*", order_by="-$.v", offset=2, limit=1)] == ["b"]
        assert [k for k, _ in coll.find("$.*", order_by="$.v", offset=10, limit=1)] == ["c"]

    def test_order_by_long_runs_of_tied_reals(self, store: Any) -> None:
        """Many documents on one rounded REAL: every position and slice still follows the exact order."""
        coll = store.collection("ties")
        values = [2**64 - 1 - (i * 7) % 5 for i in range(40)] + [2.0**64, 2**64 - 3, 2**63, 5, "x", None]
        entries = [(f"k{i:02d}", {"v": v}) for i, v in enumerate(values)]
        coll.put_many(entries)
        mapping = dict(entries)
        for desc in (False, True):
            ordered = dict(sorted(mapping.items(), key=lambda item: exact_key(item[1], "v"), reverse=desc))
            names = list(ordered)
            assert [k for k, _ in coll.find("$.*", order_by="$.v", desc=desc)] == names
            # jsonpath-ng's dialect walks the same order; its positions and slices on the root (an
            # object) select nothing since jsonpath-ng 1.16.
            assert [k for k, _ in coll.find("$.*", order_by="$.v", desc=desc, engine="jsonpath-ng")] == names
            for path in ("$[0]", "$[-1]", "$[3:9]", "$[-10:-2]"):
                assert list(coll.find(path, order_by="$.v", desc=desc, engine="jsonpath-ng")) == [], (path, desc)
            # The default engine pages with offset and limit.
            for start, end in ((3, 9), (0, 1), (20, 45), (44, 46)):
                got = [k for k, _ in coll.find("$.*", order_by="$.v", desc=desc, offset=start, limit=end - start)]
                assert got == names[start:end], (start, end, desc)

    def test_objectpath_does_not_reach_python_attributes(self, store: Any) -> None:
        coll = store.collection("people")
        coll.put("ada", {"name": "Ada", "n": 3, "f": 1.5, "l": [1, "x"], "d": {"k": "v"}, "z": None, "b": True})
        coll.put("bob", {"name": "Bob"})
        for path in ATTRIBUTE_PATHS:
            for run in (lambda: list(coll.select(path, engine="objectpath")),
                        lambda: list(coll.select(path, engine="objectpath", order_by="$.name"))):
                try:
                    found = run()
                except QueryError:  # objectpath reads n and f as null and false: null.real fails
                    continue
                assert found == [], (path, found)
        # The same selectors on JSON data still work.
        assert list(coll.select("$.ada.name", engine="objectpath")) == ["Ada"]
        assert list(coll.select("$.*[@.name is 'Bob'].name", engine="objectpath")) == ["Bob"]
        assert list(coll.select("$.ada.d.k", engine="objectpath")) == ["v"]
        assert list(coll.select("$.ada.d['k']", engine="objectpath")) == ["v"]
        assert list(coll.select("$.ada.l[1]", engine="objectpath")) == ["x"]
        assert all(is_json(v) for v in coll.select("$..*", engine="objectpath"))

    def test_a_field_name_with_a_trailing_newline_never_reaches_sql(self, store: Any) -> None:
        """``'x\\n'`` passed the identifier check (``re.match`` with ``$``) and was written into SQL
        text: on PostgreSQL its index was built on ``doc #> '{x}'`` (the array literal trims the
        newline), and a filter through that index lost documents."""
        coll = store.collection("nl")
        coll.put_many(NEWLINE_DOCS)
        refused = []
        # Index and order_by paths are RFC 9535 queries: the newline is written as the escape \n.
        for bad in ("$['x\\n']", "$.y['x\\n']"):
            for run in (lambda: coll.create_index(bad), lambda: list(coll.find("$.*", order_by=bad))):
                try:
                    run()
                except NotSupported:
                    refused.append(True)
                else:
                    refused.append(False)
        # jsonpath-ng's dialect takes the newline as it is; RFC 9535 spells it as the escape \n.
        for path, keys, engine in (("$[?(@['x\n'] == 1)]", ["a", "d"], "jsonpath-ng"),
                                   ("$[?(@['x\n'] > 2)]", ["c"], "jsonpath-ng"),
                                   ("$[?(@.y['x\n'] == 1)]", ["e"], "jsonpath-ng"),
                                   ("$[?(@['x\n'])]", ["a", "c", "d"], "jsonpath-ng"),
                                   ("$[?@['x\\n'] == 1]", ["a", "d"], "jsonpath"),
                                   ("$[?@['x\\n'] > 2]", ["c"], "jsonpath"),
                                   ("$[?@.y['x\\n'] == 1]", ["e"], "jsonpath"),
                                   ("$[?@['x\\n']]", ["a", "c", "d"], "jsonpath")):
            assert [k for k, _ in coll.find(path, engine=engine)] == keys, path
            for step in coll.explain(path, engine=engine)["steps"]:
                # PostgreSQL pushes the filter down with the name in a bound parameter, never in the SQL.
                assert "x\n" not in step.get("sql", ""), (path, step)
        assert refused == [True] * 4  # like any other name that is not a plain identifier
        assert coll.indexes() == []

    def test_an_exception_thrown_in_by_the_consumer_passes_through(self, store: Any) -> None:
        coll = store.collection("people")
        coll.put_many({f"k{i}": {"num": i} for i in range(5)})
        for path, engine in (("$.*", "jsonpath-ng"), ("$[?(@.num > 1)]", "jsonpath-ng"),
                             ("$.*[@.num > 1]", "objectpath"), ("$..num", "jsonpath-ng"), ("$['k1','k2']", "jsonpath-ng"),
                             ("$.*.num", "objectpath")):
            for error in (Interrupted("mine"), ValueError("mine"), KeyboardInterrupt()):
                matches = coll.find(path, engine=engine)
                next(matches)
                with pytest.raises(type(error)) as info:
                    matches.throw(error)
                assert info.value is error, (path, engine, info.value)

    def test_an_exception_thrown_in_by_the_consumer_passes_through_the_default_engine(self, store: Any) -> None:
        coll = store.collection("people")
        coll.put_many({f"k{i}": {"num": i} for i in range(5)})
        for path in ("$.*", "$[?@.num > 1]", "$..num", "$['k1', 'k2']"):
            for error in (Interrupted("mine"), ValueError("mine"), KeyboardInterrupt()):
                matches = coll.find(path)
                next(matches)
                with pytest.raises(type(error)) as info:
                    matches.throw(error)
                assert info.value is error, (path, info.value)

    def test_engine_errors_are_still_query_errors_on_every_engine(self, store: Any) -> None:
        """An error of the engine itself while evaluating is a QueryEvaluationError ("could not
        evaluate"), not a syntax error, everywhere (PostgreSQL's push-down path let jsonpath-ng's
        TypeError out)."""
        coll = store.collection("mixed")
        coll.put_many({"a": {"tags": [1, "x", None]}, "b": {"tags": ["y"]}})
        for path, engine in (("$.a.tags.`sorted`", "jsonpath-ng"), ("$.*.tags.`sorted`", "jsonpath-ng"),
                             ("$[?(@.tags)].tags.`sorted`", "jsonpath-ng"), ("coun($.*)", "objectpath")):
            with pytest.raises(QueryEvaluationError, match="could not evaluate") as info:
                list(coll.find(path, engine=engine))
            assert not isinstance(info.value, QuerySyntaxError)
            assert info.value.engine == engine and info.value.path == path
