"""Query hardening (issue 11): the same order on every engine, JSON data only, no SQL text from a
field name, and no error relabelled as a syntax error.

* ``order_by`` orders numbers by their exact value on every engine: SQLite's
  ``json_extract`` rounds an integer beyond 64 bits (``2**64-1``) to a REAL
  and tied it with its neighbours (``2**64-2``, the float ``2**64``), while
  ``memory://``, PostgreSQL and Redis sort in Python, exactly.  The order
  checked here is computed independently (:func:`exact_key`): missing and
  ``null`` first, then numbers by exact value (``true`` is 1), then text
  (strings; arrays and objects as their JSON text); ties keep insertion
  order, also with ``desc``.
* ObjectPath's ``.name`` on a string, a number, ``true`` or ``null`` read the
  Python attribute (``$.ada.name.__class__`` gave ``<class 'str'>``): now no
  match, on every engine.
* Only a field name that *fully* matches ``[A-Za-z_][A-Za-z0-9_]*`` is written
  into SQL text: ``re.match`` with a trailing ``$`` also took ``'x\\n'``.
* Only the engine's own error while evaluating is translated (into
  ``QueryEvaluationError``: a path that parsed is no syntax error); an exception of the caller
  (a signal handler, the objects of a pickle collection, one thrown into the
  iterator), kvlite's own errors and ``KeyboardInterrupt`` come out
  unchanged; Python's recursion limit on deep documents is ``NotSupported``.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

import apsw
import orjson
import pytest
from conftest import Clock
from helpers_engines import ENGINES, StoreMaker, new_location
from helpers_query import strict

import kvlite
from kvlite.errors import KvliteError, NotSupported, QueryError, QueryEvaluationError, QuerySyntaxError
from kvlite.query import jsonpath as qjp
from kvlite.query import objectpath as qop
from kvlite.keys import view as view_key

STDLIB = sys.stdlib_module_names


@pytest.fixture(params=ENGINES)
def engine_store(request: pytest.FixtureRequest, tmp_path: Any, clock: Clock) -> Any:
    maker = StoreMaker(new_location(request.param, request, tmp_path), clock)
    yield maker()
    maker.close_all()


# -- order_by: one exact order on every engine ---------------------------------------------------------

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


def test_exact_order_of_the_data_itself() -> None:
    """The expected order, spelled out once (so the key above is checked too)."""
    ordered = sorted(NEAR_2_64, key=lambda item: exact_key(item[1], "v"))
    assert "".join(k for k, _ in ordered) == "efmknpihjgcqtaosbrld"
    ordered = sorted(NEAR_2_64, key=lambda item: exact_key(item[1], "v"), reverse=True)
    assert "".join(k for k, _ in ordered) == "dlbraoscqtghjipknmef"


PATHS = ["$.*", "$[0]", "$[1]", "$[2]", "$[3]", "$[7]", "$[8]", "$[9]", "$[10]", "$[11]", "$[12]", "$[-1]",
         "$[-3]", "$[-5]", "$[-6]", "$[2:5]", "$[6:12]", "$[10:13]", "$[11:]", "$[:11]", "$[::-1]", "$[1::3]",
         "$[-8:-2]", "$[?(@.v > 1)]", "$[?(@.w)].w", "$..w", "($[10]) | ($[0])", "$"]


@pytest.mark.parametrize("indexed", [False, True])
def test_order_by_is_exact_and_the_same_on_every_engine(engine_store: Any, indexed: bool) -> None:
    coll = engine_store.collection("near")
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
        for path in PATHS:
            expected = [strict(v) for v in qjp.evaluate(qjp.parse(path), ordered)]
            got = [strict(v) for v in coll.select(path, order_by="$.v", desc=desc)]
            assert got == expected, (path, desc)
        for offset, limit in ((0, 1), (2, 1), (10, 3), (11, 4)):
            got = [k for k, _ in coll.find("$.*", order_by="-$.v" if desc else "$.v", offset=offset, limit=limit)]
            assert got == list(ordered)[offset:offset + limit]
        expected = qop.evaluate(qop.parse("$.*[@.w > 1]"), ordered)
        assert list(coll.select("$.*[@.w > 1]", engine="objectpath", order_by="$.v", desc=desc)) == expected
    # The first match, and $[n], name the same document on every engine.
    assert list(coll.find("$[?(@.v > 9223372036854775807)]", order_by="$.v"))[0][0] == "h"
    assert list(coll.find("$[0]", order_by="-$.v"))[0][0] == "d"
    assert list(coll.find("$[2]", order_by="-$.v"))[0][0] == "b"
    assert list(coll.find("$[10]", order_by="$.v"))[0][0] == "c"


def test_order_by_long_runs_of_tied_reals(engine_store: Any) -> None:
    """Many documents on one rounded REAL: every position and slice still follows the exact order."""
    coll = engine_store.collection("ties")
    values = [2**64 - 1 - (i * 7) % 5 for i in range(40)] + [2.0**64, 2**64 - 3, 2**63, 5, "x", None]
    entries = [(f"k{i:02d}", {"v": v}) for i, v in enumerate(values)]
    coll.put_many(entries)
    mapping = dict(entries)
    for desc in (False, True):
        ordered = dict(sorted(mapping.items(), key=lambda item: exact_key(item[1], "v"), reverse=desc))
        names = list(ordered)
        assert [k for k, _ in coll.find("$.*", order_by="$.v", desc=desc)] == names
        for i in range(-len(names), len(names)):
            assert [k for k, _ in coll.find(f"$[{i}]", order_by="$.v", desc=desc)] == [names[i]], (i, desc)
        for start, end in ((3, 9), (0, 1), (20, 45), (44, 46), (-10, -2)):
            got = [k for k, _ in coll.find(f"$[{start}:{end}]", order_by="$.v", desc=desc)]
            assert got == names[start:end], (start, end, desc)


# -- ObjectPath sees JSON data only ---------------------------------------------------------------------

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


def test_objectpath_does_not_reach_python_attributes(engine_store: Any) -> None:
    coll = engine_store.collection("people")
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


def test_objectpath_does_not_reach_attributes_of_pickled_values(tmp_path: Any) -> None:
    """A pickle collection holds Python objects (a tuple here); a query still reads no attribute."""
    with kvlite.open(tmp_path / "p.db") as db:
        pets = db.collection("pets", serializer="pickle")
        pets.put("rex", {"toys": ("ball", "rope"), "name": "Rex"})
        for path in ("$.rex.toys.count", "$.rex.toys.__class__", "$.rex.name.upper", "$.*.toys.index"):
            assert list(pets.select(path, engine="objectpath")) == [], path
        assert list(pets.select("$.rex.name", engine="objectpath")) == ["Rex"]


# -- only plain identifiers reach SQL text ------------------------------------------------------------------

NEWLINE_DOCS: dict[str, Any] = {"a": {"x\n": 1, "x": 10}, "b": {"x": 1}, "c": {"x\n": 5, "x": 1}, "d": {"x\n": 1},
                                "e": {"y": {"x\n": 1}}}


def test_a_field_name_with_a_trailing_newline_is_not_plain() -> None:
    for path in ("$['x\n']", "$.y['x\n']", "$['x\n'].y", "$['\nx']", "$['x\n\n']"):
        assert qjp.sql_path(qjp.parse(path)) is None, path
    assert qjp.sql_path(qjp.parse("$.y.x_1")) == "$.y.x_1"


def test_a_field_name_with_a_trailing_newline_never_reaches_sql(engine_store: Any) -> None:
    """``'x\\n'`` passed the identifier check (``re.match`` with ``$``) and was written into SQL
    text: on PostgreSQL its index was built on ``doc #> '{x}'`` (the array literal trims the
    newline), and a filter through that index lost documents."""
    coll = engine_store.collection("nl")
    coll.put_many(NEWLINE_DOCS)
    refused = []
    for bad in ("$['x\n']", "$.y['x\n']"):
        for run in (lambda: coll.create_index(bad), lambda: list(coll.find("$.*", order_by=bad))):
            try:
                run()
            except NotSupported:
                refused.append(True)
            else:
                refused.append(False)
    for path, keys in (("$[?(@['x\n'] == 1)]", ["a", "d"]), ("$[?(@['x\n'] > 2)]", ["c"]),
                       ("$[?(@.y['x\n'] == 1)]", ["e"]), ("$[?(@['x\n'])]", ["a", "c", "d"])):
        assert [k for k, _ in coll.find(path)] == keys, path
        for step in coll.explain(path)["steps"]:
            # PostgreSQL pushes the filter down with the name in a bound parameter, never in the SQL.
            assert "x\n" not in step.get("sql", ""), (path, step)
    assert refused == [True] * 4  # like any other name that is not a plain identifier
    assert coll.indexes() == []


def test_sqlite_never_sees_the_field_name(tmp_path: Any) -> None:
    """Every statement SQLite runs, traced: the name with a newline is in none of them (a plain
    name next to it is, so the trace works)."""
    statements: list[str] = []

    def trace(cursor: Any, sql: str, bindings: Any) -> bool:
        statements.append(sql)
        return True

    def hook(conn: Any) -> None:
        conn.exec_trace = trace

    apsw.connection_hooks.append(hook)
    try:
        with kvlite.open(tmp_path / "nl.db") as db:
            coll = db.collection("nl")
            coll.put_many(NEWLINE_DOCS)
            assert [k for k, _ in coll.find("$[?(@['mark\n'] == 1 & @.mark == 1)]")] == []
            assert [k for k, _ in coll.find("$[?(@['x\n'] == 1 & @.x == 10)]")] == ["a"]
            with pytest.raises(NotSupported):
                coll.create_index("$['mark\n']")
            with pytest.raises(NotSupported):
                list(coll.find("$[0]", order_by="$['mark\n']"))
    finally:
        apsw.connection_hooks.remove(hook)
    assert any("'$.mark'" in sql for sql in statements)
    assert not any("mark\n" in sql for sql in statements)


# -- only the engine's own errors are translated ----------------------------------------------------------


class Interrupted(Exception):
    """The caller's own exception (raised by its signal handler, or thrown into the iterator)."""


class Touchy:
    """A pickled value whose comparison raises the caller's own exception."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def __gt__(self, other: Any) -> bool:
        raise self.error("the caller's own comparison failed")

    __lt__ = __ge__ = __le__ = __gt__


def test_an_exception_thrown_in_by_the_consumer_passes_through(engine_store: Any) -> None:
    coll = engine_store.collection("people")
    coll.put_many({f"k{i}": {"num": i} for i in range(5)})
    for path, engine in (("$.*", "jsonpath"), ("$[?(@.num > 1)]", "jsonpath"), ("$.*[@.num > 1]", "objectpath"),
                         ("$..num", "jsonpath"), ("$[1:]", "jsonpath"), ("$.*.num", "objectpath")):
        for error in (Interrupted("mine"), ValueError("mine"), KeyboardInterrupt()):
            matches = coll.find(path, engine=engine)
            next(matches)
            with pytest.raises(type(error)) as info:
                matches.throw(error)
            assert info.value is error, (path, engine, info.value)


def test_the_callers_exception_from_a_signal_handler_passes_through(tmp_path: Any) -> None:
    """SIGALRM lands while queries run (kvlite's query code, SQL, the engines): its handler's
    exception comes out of ``find`` as it is, wherever it landed.

    The handler raises only when it interrupts kvlite's query code, an engine or the standard
    library they call; elsewhere it sets the alarm again: in kvlite's decoding (out of this
    file's scope) and in a weakref callback run by the garbage collector, whose exceptions
    Python itself ignores."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("no setitimer")
    docs = {f"k{i}": {"n": i, "deep": {"a": [{"b": i}, {"c": [1, 2, {"d": "x" * 50}]}]}} for i in range(3000)}
    landed: list[str] = []

    def handler(signum: int, frame: Any) -> None:
        name = frame.f_globals.get("__name__", "") if frame is not None else ""
        ours = name.startswith(("kvlite.query", "jsonpath_ng", "objectpath"))
        if (ours or name.partition(".")[0] in STDLIB) and name not in ("_weakrefset", "weakref"):
            landed.append(name)
            raise Interrupted("alarm")
        signal.setitimer(signal.ITIMER_REAL, 0.0005)

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        for target in (tmp_path / "s.db", "memory://"):
            with kvlite.open(target) as db:
                coll = db.collection("c")
                coll.put_many(docs)
                for path, engine in (("$..d", "jsonpath"), ("$[?(@.n > 10)].deep.a[*]", "jsonpath"),
                                     ("$.*.deep.a", "objectpath"), ("$.*", "jsonpath"), ("$..b", "objectpath")):
                    # Parsed once first: ply swallows any exception while it builds jsonpath-ng's
                    # parser (the first jsonpath query of a process), a library's own behaviour.
                    coll.explain(path, engine=engine)
                    for delay in (0.003, 0.011, 0.029):
                        deadline = time.monotonic() + 30
                        signal.setitimer(signal.ITIMER_REAL, delay)
                        try:
                            with pytest.raises(Interrupted):
                                while time.monotonic() < deadline:  # until the alarm: whole queries
                                    for _ in coll.find(path, engine=engine):
                                        pass
                        finally:
                            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    # The alarms landed inside kvlite's query code and the engines.
    assert any(name.startswith(("jsonpath_ng", "objectpath")) for name in landed), landed
    assert any(name.startswith("kvlite.query") for name in landed), landed


@pytest.mark.parametrize("error", [Interrupted, ValueError, TypeError])
def test_the_callers_objects_raise_their_own_errors(tmp_path: Any, error: type[Exception]) -> None:
    """In a pickle collection the engine compares the caller's objects; what their methods raise is
    theirs: it is neither relabelled nor taken for "incomparable" (no match)."""
    with kvlite.open(tmp_path / "p.db") as db:
        coll = db.collection("objects", serializer="pickle")
        coll.put("a", {"v": Touchy(error)})
        # (A float or string literal: with an int literal the engine compares int(value), and
        # int() of such an object fails in the engine: incomparable, no match.)
        for path in ("$[?(@.v > 1.5)]", "$[?(@.v < 1.5)]", "$[?(@.v >= 'a')]", "$.*[?(@ > 0.5)]"):
            with pytest.raises(error, match="the caller's own"):
                list(coll.find(path))
        assert list(coll.find("$[?(@.v > 1)]")) == []


def test_engine_errors_are_still_query_errors_on_every_engine(engine_store: Any) -> None:
    """An error of the engine itself while evaluating is a QueryEvaluationError ("could not
    evaluate"), not a syntax error, everywhere (PostgreSQL's push-down path let jsonpath-ng's
    TypeError out)."""
    coll = engine_store.collection("mixed")
    coll.put_many({"a": {"tags": [1, "x", None]}, "b": {"tags": ["y"]}})
    for path, engine in (("$.a.tags.`sorted`", "jsonpath"), ("$.*.tags.`sorted`", "jsonpath"),
                         ("$[?(@.tags)].tags.`sorted`", "jsonpath"), ("coun($.*)", "objectpath")):
        with pytest.raises(QueryEvaluationError, match="could not evaluate") as info:
            list(coll.find(path, engine=engine))
        assert not isinstance(info.value, QuerySyntaxError)
        assert info.value.engine == engine and info.value.path == path


def test_a_kvlite_error_while_a_query_runs_stays_itself(tmp_path: Any) -> None:
    with kvlite.open(tmp_path / "s.db") as db:
        coll = db.collection("c")
        coll.put_many({"a": {"n": 1}, "b": {"n": 2}})
        conn = db._conn()
        table = conn.execute("SELECT table_name FROM kvlite_collections WHERE name = 'c'").fetchone()[0]
        conn.execute(f'UPDATE "{table}" SET value = ? WHERE key = ?', ("{not json", "b"))
        for path in ("$.*", "$[?(@.n > 0)]", "$..n", "$[1]"):
            with pytest.raises(KvliteError) as info:
                list(coll.find(path))
            assert not isinstance(info.value, QuerySyntaxError), (path, info.value)


def test_python_s_recursion_limit_on_deep_documents_is_not_a_syntax_error(tmp_path: Any) -> None:
    """A document nested deeper than the engines can walk (a file written by other means) is no
    fault of the path: NotSupported, not QuerySyntaxError."""
    deep = '{"a":' * 1000 + '{"x":1}' + "}" * 1000
    with kvlite.open(tmp_path / "s.db") as db:
        coll = db.collection("c")
        coll.put("shallow", {"x": 2})
        conn = db._conn()
        table = conn.execute("SELECT table_name FROM kvlite_collections WHERE name = 'c'").fetchone()[0]
        conn.execute(f'UPDATE "{table}" SET value = ? WHERE key = ?', (deep, "shallow"))
        for path, engine in (("$..x", "jsonpath"), ("$..x", "objectpath")):
            with pytest.raises(NotSupported, match="recursion limit"):
                list(coll.find(path, engine=engine))
        assert list(coll.select("$.*.a.a.a.a", limit=1)) != []
