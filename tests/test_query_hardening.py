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

This module holds what does not depend on the engine (the expected order itself, SQLite's
statements, pickle collections, signals, damaged files); the checks that run on every engine are
``QueryHardening`` in tests/conformance/query_hardening.py, part of the conformance suite.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

import apsw
import pytest
from conformance.query_hardening import NEAR_2_64, NEWLINE_DOCS, Interrupted, exact_key

import kvlite
from kvlite.errors import KvliteError, NotSupported, QuerySyntaxError
from kvlite.query import jsonpath as qjp

STDLIB = sys.stdlib_module_names


# -- order_by: one exact order on every engine ---------------------------------------------------------


def test_exact_order_of_the_data_itself() -> None:
    """The expected order, spelled out once (so the key, conformance.query_hardening.exact_key, is
    checked too)."""
    ordered = sorted(NEAR_2_64, key=lambda item: exact_key(item[1], "v"))
    assert "".join(k for k, _ in ordered) == "efmknpihjgcqtaosbrld"
    ordered = sorted(NEAR_2_64, key=lambda item: exact_key(item[1], "v"), reverse=True)
    assert "".join(k for k, _ in ordered) == "dlbraoscqtghjipknmef"


# -- ObjectPath sees JSON data only ---------------------------------------------------------------------


def test_objectpath_does_not_reach_attributes_of_pickled_values(tmp_path: Any) -> None:
    """A pickle collection holds Python objects (a tuple here); a query still reads no attribute."""
    with kvlite.open(tmp_path / "p.db") as db:
        pets = db.collection("pets", serializer="pickle")
        pets.put("rex", {"toys": ("ball", "rope"), "name": "Rex"})
        for path in ("$.rex.toys.count", "$.rex.toys.__class__", "$.rex.name.upper", "$.*.toys.index"):
            assert list(pets.select(path, engine="objectpath")) == [], path
        assert list(pets.select("$.rex.name", engine="objectpath")) == ["Rex"]


# -- only plain identifiers reach SQL text ------------------------------------------------------------------


def test_a_field_name_with_a_trailing_newline_is_not_plain() -> None:
    from kvlite.backends.sqlite.rfc9535_sql import sql_path
    from kvlite.query import rfc9535

    for path in ("$['x\\n']", "$.y['x\\n']", "$['x\\n'].y", "$['\\nx']", "$['x\\n\\n']"):
        assert sql_path(rfc9535.field_path(rfc9535.parse(path))) is None, path
    assert sql_path(rfc9535.field_path(rfc9535.parse("$.y.x_1"))) == "$.y.x_1"


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
            ng = "jsonpath-ng"
            assert [k for k, _ in coll.find("$[?(@['mark\n'] == 1 & @.mark == 1)]", engine=ng)] == []
            assert [k for k, _ in coll.find("$[?(@['x\n'] == 1 & @.x == 10)]", engine=ng)] == ["a"]
            # The same in RFC 9535's spelling (the newline as the escape \n).
            assert [k for k, _ in coll.find("$[?@['mark\\n'] == 1 && @.mark == 1]")] == []
            assert [k for k, _ in coll.find("$[?@['x\\n'] == 1 && @.x == 10]")] == ["a"]
            # Index and order_by paths are RFC 9535 queries too: the newline escaped is a name
            # that is not plain (refused), a raw newline in a string literal is a syntax error.
            with pytest.raises(NotSupported):
                coll.create_index("$['mark\\n']")
            with pytest.raises(NotSupported):
                list(coll.find("$.*", order_by="$['mark\\n']"))
            with pytest.raises(QuerySyntaxError):
                coll.create_index("$['mark\n']")
    finally:
        apsw.connection_hooks.remove(hook)
    assert any("'$.mark'" in sql for sql in statements)
    assert not any("mark\n" in sql for sql in statements)


# -- only the engine's own errors are translated ----------------------------------------------------------


class Touchy:
    """A pickled value whose comparison raises the caller's own exception."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def __gt__(self, other: Any) -> bool:
        raise self.error("the caller's own comparison failed")

    __lt__ = __ge__ = __le__ = __eq__ = __ne__ = __gt__
    __hash__ = None  # type: ignore[assignment]


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
        # jsonpath-ng (1.16+) orders only numbers and strings; for anything else every comparison
        # is decided by an equality test (RFC 9535), which calls the objects' `!=`.
        ng = "jsonpath-ng"
        for path in ("$[?(@.v == 1.5)]", "$[?(@.v != 'a')]", "$.*[?(@ == 0.5)]", "$[?(@.v >= 1)]", "$[?(@.v > 1)]"):
            with pytest.raises(error, match="the caller's own"):
                list(coll.find(path, engine=ng))
        assert list(coll.find("$[?(@.w > 1)]", engine=ng)) == []


def test_a_kvlite_error_while_a_query_runs_stays_itself(tmp_path: Any) -> None:
    with kvlite.open(tmp_path / "s.db") as db:
        coll = db.collection("c")
        coll.put_many({"a": {"n": 1}, "b": {"n": 2}})
        conn = db.engine.connection()
        table = conn.execute("SELECT table_name FROM kvlite_collections WHERE name = 'c'").fetchone()[0]
        conn.execute(f'UPDATE "{table}" SET value = ? WHERE key = ?', ("{not json", "b"))
        for path, engine in (("$.*", "jsonpath"), ("$[?@.n > 0]", "jsonpath"), ("$..n", "jsonpath"),
                             ("$.b", "jsonpath"), ("$[?@.n > 0 && match(@.x, 'a.*')]", "jsonpath"),
                             ("$.*", "jsonpath-ng"), ("$[?(@.n > 0)]", "jsonpath-ng"), ("$..n", "jsonpath-ng"),
                             ("$['b']", "jsonpath-ng")):
            with pytest.raises(KvliteError) as info:
                list(coll.find(path, engine=engine))
            assert not isinstance(info.value, QuerySyntaxError), (path, info.value)


def test_python_s_recursion_limit_on_deep_documents_is_not_a_syntax_error(tmp_path: Any) -> None:
    """A document nested deeper than the engines can walk (a file written by other means) is no
    fault of the path: NotSupported, not QuerySyntaxError."""
    deep = '{"a":' * 1000 + '{"x":1}' + "}" * 1000
    with kvlite.open(tmp_path / "s.db") as db:
        coll = db.collection("c")
        coll.put("shallow", {"x": 2})
        conn = db.engine.connection()
        table = conn.execute("SELECT table_name FROM kvlite_collections WHERE name = 'c'").fetchone()[0]
        conn.execute(f'UPDATE "{table}" SET value = ? WHERE key = ?', (deep, "shallow"))
        with pytest.raises(NotSupported, match="recursion limit"):
            list(coll.find("$..x", engine="objectpath"))
        # jsonpath-ng 1.16+ walks descendants without recursion: it answers.
        assert list(coll.select("$..x", engine="jsonpath-ng")) == [1]
        assert list(coll.select("$.*.a.a.a.a", limit=1)) != []
        assert list(coll.select("$.*.a.a.a.a", limit=1, engine="jsonpath-ng")) != []


def test_python_s_recursion_limit_on_deep_documents_is_not_supported_by_the_default_engine(tmp_path: Any) -> None:
    deep = '{"a":' * 1000 + '{"x":1}' + "}" * 1000
    with kvlite.open(tmp_path / "s.db") as db:
        coll = db.collection("c")
        coll.put("shallow", {"x": 2})
        conn = db.engine.connection()
        table = conn.execute("SELECT table_name FROM kvlite_collections WHERE name = 'c'").fetchone()[0]
        conn.execute(f'UPDATE "{table}" SET value = ? WHERE key = ?', (deep, "shallow"))
        with pytest.raises(NotSupported, match="recursion limit"):
            list(coll.find("$..x"))
