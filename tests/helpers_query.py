"""The query oracle: random collections, random paths and the reference answers they are checked
against (shared by tests/test_query_differential.py, the conformance suite and the engine tests).

The oracle is the path engine run on the collection loaded in memory as the
mapping ``{view_key(key): document}`` (insertion order, expired entries left
out): raw jsonpath-ng (``jsonpath_ng.ext.parse(path).find(mapping)``, its current release) for
jsonpath-ng's dialect (``engine="jsonpath-ng"``) and :func:`kvlite.query.objectpath.evaluate` for
ObjectPath.

* Data: :data:`ENTRIES` draws ``(key, document, life)`` lists (mixed JSON types, numeric
  strings, unicode, nested lists/dicts, missing fields, int/bytes/float keys, ``life`` one of
  ``"live"``, ``"ttl"``, ``"expired"``) with distinct view keys: ``1``, ``"1"`` and ``b"1"`` share
  the view key ``"1"``, and then the collection is no longer a ``dict`` (see docs/queries.md).
* Paths: :func:`jsonpaths`, :func:`filters`, :func:`conditions` (JSONPath from a small grammar)
  and :func:`objectpaths` (ObjectPath).
* Checks: :func:`check_jsonpath` (``find``/``select``/``count``/paging with
  ``engine="jsonpath-ng"`` against the oracle, owners of matches), :func:`check_rfc9535` (the same for the default engine, RFC 9535, against
  ``jsonpath_rfc9535``, the standard's reference implementation), :func:`op_outcome` (an ObjectPath answer
  or its error, comparable), :func:`strict` (``==`` that also compares types and dict order),
  :func:`contains`, :func:`sqlite_order_key` (the order ``order_by`` gives, computed
  independently).
"""

from __future__ import annotations

import copy
from typing import Any

import apsw
import jsonpath_rfc9535
import orjson
import pytest
from hypothesis import event
from hypothesis import strategies as st
from jsonpath_ng.ext.parser import ExtendedJsonPathParser

import kvlite
from kvlite.errors import QueryError
from kvlite.keys import view as view_key

FIELDS = ("a", "b", "age", "name", "tags", "x_1")
# Collection keys: the field names too (so "$.a" may name a document), plus
# names that need quoting, ints, floats, bools and bytes (addressed by view_key).
KEY_NAMES = FIELDS + ("k1", "k2", "A", "é", "a b", "7", "", "-1", "12", "1.5", "True", "bin", "\\xff", "café\\xfe")
KEYS = st.one_of(
    st.sampled_from(KEY_NAMES),
    st.integers(-3, 30),
    st.sampled_from([b"k1", b"bin", b"\xff", b"caf\xc3\xa9\xfe", 1.5, -0.5, True, False, 2**40]),
)

NUMERIC_STRINGS = ("40", " 7 ", "7", "-3", "4.5", "0", "", "abc", "Ada", "é", "日本", "ß", "a b", "٣", "1_0",
                   "true", "null", "{}", "[1]")
EXTREME_INTS = (2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**63 + 1, 2**64 - 1)  # > 2**63-1: a REAL to SQLite

SCALARS = st.one_of(
    st.integers(-5, 60),
    st.sampled_from(EXTREME_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([30.5, -0.5, 0.0, -0.0, 7.0, 40.0, 1e300]),
    st.booleans(),
    st.none(),
    st.sampled_from(NUMERIC_STRINGS),
    st.text(max_size=4),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4),
    max_leaves=8,
)
DOCUMENTS = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=5),  # mostly objects, fields often missing
    JSON,  # sometimes a list or a bare scalar
)

# An entry: (key, document, life) with life "live", "ttl" (expires later) or "expired".
ENTRIES = st.lists(
    st.tuples(KEYS, DOCUMENTS, st.sampled_from(["live", "live", "live", "ttl", "expired"])),
    max_size=12,
    unique_by=lambda entry: view_key(entry[0]),
)


# -- path grammar --------------------------------------------------------------------------

def _quote(name: str) -> str:
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _dq(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _member(name: str) -> str:
    """``.name`` when jsonpath-ng lexes it as a plain identifier, else ``['name']``."""
    if name and name.isascii() and (name[0].isalpha() or name[0] == "_") and name.replace("_", "").isalnum() \
            and not name.startswith(("true", "false")) and name not in ("where", "wherenot", "id"):
        return "." + name
    return "[" + _quote(name) + "]"


INT_LITERALS = st.one_of(st.integers(-5, 60), st.sampled_from([2**53, 2**62, 2**63 - 1, 2**63, 2**64, -(2**63)]))
FLOAT_LITERALS = st.sampled_from(["30.5", "-0.5", "0.0", "7.0", "40.0", "1.5", "-3.25", "9007199254740993.0",
                                  "9223372036854775808.0", "18446744073709551616.0"])
STR_LITERALS = st.sampled_from(NUMERIC_STRINGS + ("Bob", "a", "x y", "é")).map(_dq)
LITERALS = st.one_of(INT_LITERALS.map(str), FLOAT_LITERALS, st.sampled_from(["true", "false"]), STR_LITERALS,
                     st.sampled_from(FIELDS))  # a bare word is a string literal too
OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "="])


@st.composite
def conditions(draw: Any) -> str:
    target = "@" + "".join(_member(f) for f in draw(st.lists(st.sampled_from(FIELDS), min_size=0, max_size=2)))
    if target == "@" and draw(st.booleans()):
        target = "@.age"
    if draw(st.integers(0, 4)) == 0:
        return target  # existence test
    return f"{target} {draw(OPS)} {draw(LITERALS)}"


def conjunction(conds: list[str]) -> str:
    """``c1 && c2 ...``: jsonpath-ng's conjunction (1.16+; its older ``&`` is deprecated)."""
    return " && ".join(conds)


@st.composite
def filters(draw: Any) -> str:
    conds = draw(st.lists(conditions(), min_size=1, max_size=3))
    form = draw(st.integers(0, 4))
    if form == 0 and len(conds) > 1:  # || binds less tightly than &&
        return "[?(" + conds[0] + " || " + conjunction(conds[1:]) + ")]"
    if form == 1:
        return "[?(!" + conds[0].split(" ")[0] + (" && " + conjunction(conds[1:]) if conds[1:] else "") + ")]"
    if form == 2:
        return "[?" + conjunction(conds) + "]"  # RFC 9535's form, without parentheses
    return "[?(" + conjunction(conds) + ")]"


def _slice(draw: Any) -> str:
    part = st.one_of(st.none(), st.integers(-4, 4))
    start, end = draw(part), draw(part)
    text = f"{'' if start is None else start}:{'' if end is None else end}"
    step = draw(st.one_of(st.none(), st.sampled_from([1, 2, -1, -2])))
    return "[" + text + ("" if step is None else f":{step}") + "]"


@st.composite
def steps(draw: Any, first: bool) -> str:
    names = KEY_NAMES if first else FIELDS
    kind = draw(st.sampled_from(["field", "field", "star", "bracket_star", "index", "indexes", "slice",
                                 "names", "descend", "descend_star", "filter", "filter"]))
    if kind == "field":
        return _member(draw(st.sampled_from(names)))
    if kind == "star":
        return ".*"
    if kind == "bracket_star":
        return "[*]"
    if kind == "index":
        return f"[{draw(st.integers(-4, 4))}]"
    if kind == "indexes":
        return "[" + ",".join(str(i) for i in draw(st.lists(st.integers(-3, 3), min_size=2, max_size=3))) + "]"
    if kind == "slice":
        return _slice(draw)
    if kind == "names":
        chosen = draw(st.lists(st.sampled_from(names), min_size=2, max_size=3))
        return "[" + ",".join(_quote(n) for n in chosen) + "]"
    if kind == "descend":
        return ".." + draw(st.sampled_from(FIELDS))
    if kind == "descend_star":
        return "..*"
    return draw(filters())


@st.composite
def simple_paths(draw: Any) -> str:
    count = draw(st.integers(1, 4))
    return "$" + "".join(draw(steps(first=i == 0)) for i in range(count))


@st.composite
def jsonpaths(draw: Any) -> str:
    if draw(st.integers(0, 6)) == 0:
        return f"({draw(simple_paths())}) | ({draw(simple_paths())})"
    return draw(simple_paths())


# -- helpers --------------------------------------------------------------------------------

def strict(value: Any) -> Any:
    """A form of ``value`` whose ``==`` also compares types (``1 != 1.0 != True``) and dict order."""
    if isinstance(value, dict):
        return ("dict", tuple((k, strict(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(strict(v) for v in value))
    return (type(value).__name__, repr(value))


def contains(container: Any, value: Any) -> bool:
    """True when ``value`` is ``container`` or sits somewhere inside it (or is a character of a string in it)."""
    if strict(container) == strict(value):
        return True
    if isinstance(container, dict):
        return any(contains(v, value) for v in container.values()) or any(strict(k) == strict(value)
                                                                         for k in container)
    if isinstance(container, list):
        return any(contains(v, value) for v in container)
    if isinstance(container, str) and isinstance(value, str):
        return value in container
    return False


def fill(store: kvlite.Store, clock: list[float], name: str, serializer: str, entries: list[Any],
         index_paths: list[str]) -> kvlite.Collection:
    coll = store.collection(name, serializer=serializer)
    for path in index_paths:
        coll.create_index(path)
    for key, doc, life in entries:
        ttl = {"live": None, "ttl": 1000.0, "expired": 5.0}[life]
        coll.put(key, doc, ttl=ttl)
    clock[0] += 10.0  # every "expired" entry is now past its TTL (still in the table until purged)
    return coll


def loaded(coll: kvlite.Collection) -> tuple[dict[str, Any], dict[str, Any]]:
    """The oracle's input: ``{view_key(key): document}`` and the real key for each view key."""
    mapping: dict[str, Any] = {}
    originals: dict[str, Any] = {}
    for key, doc in coll.items():
        mapping[view_key(key)] = doc
        originals[view_key(key)] = key
    assert len(mapping) == coll.count(), "test setup: view keys must be distinct"
    return mapping, originals


_RAW_PARSER = ExtendedJsonPathParser()  # one parser: building ply's tables per path costs ~30 ms


def raw_jsonpath_ng(path: str, mapping: dict[str, Any]) -> list[Any] | None:
    """jsonpath-ng itself (its extended parser, as ``jsonpath_ng.ext.parse``) on ``mapping``;
    ``None`` when it raises."""
    try:
        return [m.value for m in _RAW_PARSER.parse(path).find(mapping)]
    except Exception:
        return None


def oracle(path: str, mapping: dict[str, Any]) -> list[Any] | None:
    """What kvlite must answer for ``path`` with ``engine="jsonpath-ng"``: jsonpath-ng's own answer
    on the loaded mapping (a copy: it must not change its input either); ``None`` when it raises."""
    data = copy.deepcopy(mapping)
    found = raw_jsonpath_ng(path, data)
    assert strict(data) == strict(mapping), f"jsonpath-ng changed its input: {path}"
    return found


#: The paths generated here are jsonpath-ng's dialect, and the oracle is jsonpath-ng: kvlite runs
#: them with that engine (the default engine, RFC 9535, has its own tests).
NG = "jsonpath-ng"


def check_jsonpath(coll: kvlite.Collection, path: str, mapping: dict[str, Any], originals: dict[str, Any],
                   paging: tuple[int, int]) -> None:
    expected = oracle(path, mapping)
    if expected is None:  # jsonpath-ng raises on this data: kvlite reports an error of its own
        event("jsonpath-ng raised")
        with pytest.raises(QueryError):
            list(coll.find(path, engine=NG))
        return
    event("compared with jsonpath-ng")
    found = list(coll.find(path, engine=NG))
    assert [strict(v) for _, v in found] == [strict(v) for v in expected], (path, coll.explain(path, engine=NG))
    # Owners: the key of the document each match came from (None only for the root mapping itself).
    for key, value in found:
        if key is None:
            assert strict(value) == strict(mapping), (path, value)
        else:
            name = view_key(key)
            assert name in mapping and strict(originals[name]) == strict(key), (path, key)
            assert contains(mapping[name], value) or contains(name, value), (path, key, value)
    assert coll.count(path, engine=NG) == len(expected)
    offset, limit = paging
    assert [strict(v) for v in coll.select(path, offset=offset, limit=limit, engine=NG)] == \
        [strict(v) for v in expected[offset:offset + limit]]


def rfc9535_reference(query: str, mapping: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """``(key of the document, value)`` of each match of the reference implementation,
    ``jsonpath_rfc9535``, on the collection loaded as ``mapping``."""
    return [(node.location[0] if node.location else None, node.value)
            for node in jsonpath_rfc9535.find(query, mapping)]


def check_rfc9535(coll: kvlite.Collection, path: str, mapping: dict[str, Any], originals: dict[str, Any],
                  paging: tuple[int, int]) -> None:
    """The default engine (RFC 9535 JSONPath) against the standard's reference implementation,
    ``jsonpath_rfc9535.find``, on ``mapping``: ``find``/``select``/``count``/paging and owners."""
    before = strict(mapping)
    expected = jsonpath_rfc9535.find(path, mapping).values()
    assert strict(mapping) == before, f"the reference changed its input: {path}"
    found = list(coll.find(path))
    assert [strict(v) for _, v in found] == [strict(v) for v in expected], (path, coll.explain(path))
    for key, value in found:
        if key is None:
            assert strict(value) == strict(mapping), (path, value)
        else:
            name = view_key(key)
            assert name in mapping and strict(originals[name]) == strict(key), (path, key)
            assert contains(mapping[name], value) or contains(name, value), (path, key, value)
    assert coll.count(path) == len(expected)
    offset, limit = paging
    assert [strict(v) for v in coll.select(path, offset=offset, limit=limit)] == \
        [strict(v) for v in expected[offset:offset + limit]]


# -- order_by -----------------------------------------------------------------------------------

_SQLITE = apsw.Connection(":memory:")


def sqlite_order_key(document: Any, path: str) -> tuple[int, Any]:
    """Where ``order_by`` puts ``document``, computed here: SQLite's classes of ``json_extract``
    values -- NULL (missing or null) first, then numbers (``true`` is 1), then text (strings;
    objects and arrays as their JSON text), text in code point order, as in Python -- with numbers
    compared by their exact value (``json_extract`` rounds an integer beyond 64 bits to a REAL,
    which ``order_by`` does not: issue 11)."""
    value, kind, text = _SQLITE.execute("SELECT json_extract(?1, ?2), typeof(json_extract(?1, ?2)), ?1 -> ?2",
                                        (orjson.dumps(document).decode(), path)).fetchone()
    rank = {"null": 0, "integer": 1, "real": 1, "text": 2}[kind]
    if rank == 1:
        value = orjson.loads(text)  # the number exactly as the document holds it
    return rank, (0 if value is None else value)


# -- ObjectPath ---------------------------------------------------------------------------------

OP_LITERALS = st.one_of(st.integers(-5, 60).map(str), st.sampled_from(["30.5", "true", "false", "null"]),
                        st.sampled_from(NUMERIC_STRINGS + ("Bob",)).map(_dq))
OP_OPS = st.sampled_from([">", "<", ">=", "<=", "is", "is not", "in"])


@st.composite
def op_selectors(draw: Any) -> str:
    conds = []
    for _ in range(draw(st.integers(1, 2))):
        op = draw(OP_OPS)
        literal = draw(OP_LITERALS)
        if op == "in":
            literal = "[" + literal + ", " + draw(OP_LITERALS) + "]"
        conds.append(f"@.{draw(st.sampled_from(FIELDS))} {op} {literal}")
        if draw(st.integers(0, 5)) == 0:
            conds[-1] = "not " + conds[-1]
    joiner = draw(st.sampled_from([" and ", " or "]))
    return "[" + joiner.join(conds) + "]"


@st.composite
def objectpaths(draw: Any) -> str:
    """Row-wise chains on ``$.*`` and whole-collection expressions (aggregates, positions, keys)."""
    chain = "$.*"
    for _ in range(draw(st.integers(0, 3))):
        chain += draw(st.one_of(op_selectors(), st.sampled_from(FIELDS).map(lambda f: "." + f)))
    kind = draw(st.sampled_from(["chain", "chain", "chain", "count", "len", "position", "key", "descend",
                                 "sum"]))
    if kind == "chain":
        return chain
    if kind == "count":
        return f"count({chain})"
    if kind == "len":
        return f"len({chain})"
    if kind == "sum":
        return f"sum({chain}.age)"
    if kind == "position":
        return f"{chain}[{draw(st.integers(-2, 2))}]"
    if kind == "key":
        return f"$.{draw(st.sampled_from(['a', 'k1', 'A', 'name']))}" + draw(st.sampled_from(["", ".name", ".a"]))
    return f"$..{draw(st.sampled_from(FIELDS))}"


def op_outcome(run: Any) -> Any:
    try:
        return "ok", [strict(v) for v in run()]
    except QueryError as exc:  # a syntax error, or the engine failing on these documents
        return "error", type(exc).__name__, exc.engine
