"""Counters and compare-and-set on every engine (issue 14, items 3 and 4): ``incr`` with and without
a path, its number rules and typed errors (nothing changed after each), TTLs kept, ``compare_and_set``
with Python equality and ``kvlite.ABSENT``, both against a ``dict`` model (Hypothesis), and real
concurrency: 4 processes (4 threads on the engines a second process cannot open) x 250 ``incr`` on
one field is exactly 1000; ``compare_and_set`` retry loops from 4 workers never double-apply."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock
from hypothesis import given, settings
from hypothesis import strategies as st

import kvlite
from kvlite.errors import InvalidTTL, InvalidValue, KvliteError, NotSupported, QuerySyntaxError, SerializationError

from .base import EXAMPLES, HYPOTHESIS, TTL_TOLERANCE, EngineTests, Point, StoreMaker

WORKER = Path(__file__).resolve().parents[1] / "helpers_counters.py"
WORKERS = 4


def _snapshot(c: Any) -> list[tuple[Any, Any, Any]]:
    """Every entry with its value's type and its TTL: what "nothing changed" compares."""
    return [(k, type(v), v, c.ttl(k)) for k, v in c.items()]


def _run_workers(make_store: StoreMaker, store: Any, tmp_path: Path, collection: str, key: str, mode: str,
                 count: int, path: str | None = None) -> list[dict[str, Any]]:
    """``WORKERS`` workers of ``helpers_counters.py`` started together on this test's store:
    separate processes when the engine's data outlives the store object, else threads sharing ``store``."""
    location = make_store.location
    go = tmp_path / f"go-{uuid.uuid4().hex}"
    specs = [{"target": location.target, "options": location.options, "collection": collection, "key": key,
              "mode": mode, "count": count, "path": path, "worker": n, "go": str(go),
              "ready": str(tmp_path / f"ready-{n}-{go.name}"), "report": str(tmp_path / f"report-{n}-{go.name}")}
             for n in range(WORKERS)]
    if location.persistent:
        procs = [subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)]) for spec in specs]
        try:
            deadline = time.monotonic() + 120
            while not all(Path(s["ready"]).exists() for s in specs):
                assert all(p.poll() is None for p in procs), "a worker died before starting"
                assert time.monotonic() < deadline, "the workers never got ready"
                time.sleep(0.01)
            go.write_text("go", encoding="utf-8")
            for proc in procs:
                assert proc.wait(timeout=180) == 0
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
    else:  # one process: the same worker code on threads sharing the store
        coll = store.collection(collection)
        errors: list[BaseException] = []

        def work(spec: dict[str, Any]) -> None:
            try:
                while not go.exists():
                    time.sleep(0.001)
                lost = 0
                for i in range(count):
                    if mode == "incr":
                        coll.incr(key, path=path)
                        continue
                    if mode == "patch":
                        coll.patch(key, {f"w{spec['worker']}-{i}": i})
                        continue
                    while True:
                        current = coll.get(key)
                        if coll.compare_and_set(key, current, [*current, f"{spec['worker']}-{i}"]):
                            break
                        lost += 1
                Path(spec["report"]).write_text(json.dumps({"lost": lost}), encoding="utf-8")
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(spec,)) for spec in specs]
        for thread in threads:
            thread.start()
        go.write_text("go", encoding="utf-8")
        for thread in threads:
            thread.join(180)
        assert not errors, errors
    return [json.loads(Path(s["report"]).read_text(encoding="utf-8")) for s in specs]


class Counters(EngineTests):
    """``incr`` and ``compare_and_set``: the same answers, errors and atomicity on every engine."""

    # -- incr ----------------------------------------------------------------------------------

    def test_incr_the_value_itself(self, store: Any) -> None:
        c = store.collection("counters")
        assert c.incr("hits") == 1 and c.incr("hits") == 2 and c.incr("hits", 10) == 12
        assert c.incr("hits", -20) == -8 and c.get("hits") == -8 and type(c.get("hits")) is int
        assert c.incr("from", 2, default=100) == 102  # a missing key starts at default
        assert c.incr("from", default=5) == 103       # default only counts for a missing key
        assert c.incr("f", 0.5) == 0.5 and type(c.get("f")) is float
        assert c.incr("hits", 0.5) == -7.5 and type(c.get("hits")) is float  # int + float: float
        c.put("one", 1.0)
        assert c.incr("one") == 2.0 and type(c.get("one")) is float
        assert list(c.keys()) == ["hits", "from", "f", "one"]  # new keys last, updates keep their place
        assert c.stats()["puts"] >= 7

    def test_incr_a_path_creates_members_and_keeps_the_rest(self, store: Any) -> None:
        c = store.collection("docs")
        c.put("p1", {"title": "Hello", "stats": {"likes": 3}})
        assert c.incr("p1", path="$.stats.views") == 1
        assert c.incr("p1", 2, path="$.stats.likes") == 5
        assert c.incr("p1", path="$['stats'].views") == 2  # any spelling of a singular name query
        assert c.get("p1") == {"title": "Hello", "stats": {"likes": 5, "views": 2}}
        assert c.incr("new", path="$.a.b.c", default=10) == 11  # a missing key is the document {}
        assert c.get("new") == {"a": {"b": {"c": 11}}}
        c.put("plain", 5)
        assert c.incr("plain", path="$") == 6 and c.get("plain") == 6  # "$" is the value itself

    def test_incr_keeps_the_ttl_and_the_place(self, store: Any, clock: Clock) -> None:
        c = store.collection("ttl")
        c.put("a", 1, ttl=10)
        c.put("doc", {"n": 1}, ttl=20)
        c.put("z", 0)
        clock.advance(4)
        assert c.incr("a") == 2 and c.incr("doc", path="$.n") == 2
        assert c.ttl("a") == pytest.approx(6, abs=TTL_TOLERANCE)
        assert c.ttl("doc") == pytest.approx(16, abs=TTL_TOLERANCE)
        assert list(c.keys()) == ["a", "doc", "z"]
        clock.advance(6)  # "a" expired: incr starts again from default, as a new key without TTL
        assert c.incr("a", default=100) == 101 and c.ttl("a") is None
        assert list(c.keys()) == ["doc", "z", "a"]

    @pytest.mark.parametrize("stored, delta, path", [
        ("text", 1, None), (True, 1, None), (None, 1, None), ([1], 1, None), ({"n": 1}, 1, None),
        ({"n": "1"}, 1, "$.n"), ({"n": False}, 1, "$.n"), ({"n": None}, 1, "$.n"), ({"n": [1]}, 1, "$.n"),
        ({"n": {"m": 1}}, 1, "$.n"), ({"a": 1}, 1, "$.a.b"), ({"a": [1]}, 1, "$.a.b"), ([1, 2], 1, "$.a"),
        ("text", 1, "$.a"), (5, 1, "$.a"),
        (1, True, None), (1, "1", None), (1, None, None), (1, math.inf, None), (1, math.nan, None),
        ({"n": 1}, False, "$.n"), (2**63 - 1, 1, None), (-(2**63), -1, None), ({"n": 2**63 - 2}, 2, "$.n"),
        (1.5e308, 1e308, None),
    ])
    def test_incr_refuses_what_is_not_a_number_and_changes_nothing(self, store: Any, stored: Any, delta: Any,
                                                                    path: str | None) -> None:
        c = store.collection("bad")
        c.clear()
        c.put("k", stored, ttl=50)
        c.put("other", 1)
        before = _snapshot(c)
        with pytest.raises(InvalidValue) as info:
            c.incr("k", delta, path=path)
        assert isinstance(info.value, TypeError) and isinstance(info.value, KvliteError)
        assert _snapshot(c) == before

    @pytest.mark.parametrize("default", [True, "0", None, math.inf, [0]])
    def test_incr_refuses_a_default_that_is_not_a_number(self, store: Any, default: Any) -> None:
        c = store.collection("bad-default")
        with pytest.raises(InvalidValue):
            c.incr("k", default=default)
        with pytest.raises(InvalidValue):
            c.incr("k", path="$.n", default=default)
        assert len(c) == 0

    def test_incr_stays_exact_up_to_64_bits(self, store: Any) -> None:
        c = store.collection("big")
        top = 2**63 - 1
        assert c.incr("k", top - 1) == top - 1 and c.incr("k") == top and c.get("k") == top
        assert c.incr("k", -top) == 0
        assert c.incr("m", -(2**63)) == -(2**63) and type(c.get("m")) is int
        assert c.incr("d", 2**62, path="$.n") == 2**62 and c.incr("d", 2**62 - 1, path="$.n") == top
        assert c.get("d") == {"n": top}
        with pytest.raises(InvalidValue, match="64-bit"):
            c.incr("d", path="$.n")
        assert c.get("d") == {"n": top}

    @pytest.mark.parametrize("path, error", [
        ("$..n", QuerySyntaxError), ("$.*", QuerySyntaxError), ("$[?@.n]", QuerySyntaxError),
        ("$.a[0]", NotSupported), ("n", QuerySyntaxError), ("$.", QuerySyntaxError), ("$['a','b']", QuerySyntaxError),
    ])
    def test_incr_refuses_a_path_that_is_not_a_singular_name_query(self, store: Any, path: str,
                                                                   error: type) -> None:
        c = store.collection("paths")
        c.put("k", {"n": 1, "a": [1]})
        with pytest.raises(error):
            c.incr("k", path=path)
        assert c.get("k") == {"n": 1, "a": [1]}

    def test_incr_through_other_serializers(self, store: Any, clock: Clock) -> None:
        c = store.collection("pickled", serializer="pickle")
        c.put("doc", {"stats": {"views": 1}, "when": (1, 2)}, ttl=30)
        assert c.incr("doc", path="$.stats.views") == 2
        assert c.get("doc") == {"stats": {"views": 2}, "when": (1, 2)}  # the rest as pickle keeps it
        assert c.ttl("doc") == pytest.approx(30, abs=TTL_TOLERANCE)
        assert c.incr("n", 3) == 3 and c.incr("n", 0.25) == 3.25
        c.put("set", {1, 2})
        with pytest.raises(InvalidValue):
            c.incr("set", path="$.a")  # not a JSON object (a document a path can walk)
        assert c.get("set") == {1, 2}

    def test_incr_in_a_typed_collection(self, store: Any) -> None:
        points = store.collection("points", model=Point)
        points.put("p", Point(1, 2))
        assert points.incr("p", 5, path="$.x") == 6 and points.get("p") == Point(6, 2)
        with pytest.raises(InvalidValue):
            points.incr("p")  # the values are documents: a path is needed
        with pytest.raises(KvliteError):
            points.incr("q", path="$.x")  # {"x": 1} alone is not a valid Point
        assert "q" not in points and points.get("p") == Point(6, 2)

    # -- compare_and_set ---------------------------------------------------------------------------

    def test_compare_and_set_and_absent(self, store: Any, clock: Clock) -> None:
        c = store.collection("cas")
        assert repr(kvlite.ABSENT) == "kvlite.ABSENT"
        assert c.compare_and_set("k", kvlite.ABSENT, {"v": 1}) is True
        assert c.compare_and_set("k", kvlite.ABSENT, {"v": 2}) is False and c.get("k") == {"v": 1}
        assert c.compare_and_set("k", {"v": 2}, {"v": 3}) is False and c.get("k") == {"v": 1}
        assert c.compare_and_set("k", {"v": 1}, {"v": 3}, ttl=10) is True and c.get("k") == {"v": 3}
        assert c.ttl("k") == pytest.approx(10, abs=TTL_TOLERANCE)
        assert c.compare_and_set("missing", None, 1) is False and "missing" not in c  # None is a value
        c.put("n", None)
        assert c.compare_and_set("n", kvlite.ABSENT, 1) is False
        assert c.compare_and_set("n", None, 1) is True and c.get("n") == 1 and c.ttl("n") is None
        clock.advance(10)  # "k" expired: it counts as missing
        assert c.compare_and_set("k", {"v": 3}, 0) is False
        assert c.compare_and_set("k", kvlite.ABSENT, "again", ttl=5) is True
        assert list(c.keys()) == ["n", "k"] and c.ttl("k") == pytest.approx(5, abs=TTL_TOLERANCE)

    def test_compare_and_set_uses_python_equality(self, store: Any) -> None:
        c = store.collection("equality")
        c.put("one", 1)
        assert c.compare_and_set("one", True, "was 1") is True  # 1 == True
        c.put("one", 1)
        assert c.compare_and_set("one", 1.0, "was 1") is True   # 1 == 1.0
        c.put("t", True)
        assert c.compare_and_set("t", 1, "was True") is True
        c.put("doc", {"a": 1, "b": [1, 2]})
        assert c.compare_and_set("doc", {"b": [1, 2], "a": 1.0}, "x") is True  # key order is not looked at
        c.put("list", [1, 2])
        assert c.compare_and_set("list", (1, 2), "x") is False  # JSON gives a list back: not a tuple
        assert c.compare_and_set("list", [2, 1], "x") is False and c.compare_and_set("list", [1, 2], "x") is True
        c.put("s", "1")
        assert c.compare_and_set("s", 1, "x") is False and c.get("s") == "1"
        p = store.collection("points", model=Point)
        p.put("p", Point(1, 2))
        assert p.compare_and_set("p", Point(1, 3), Point(0, 0)) is False
        assert p.compare_and_set("p", Point(1, 2), Point(0, 0)) is True and p.get("p") == Point(0, 0)

    def test_compare_and_set_errors_change_nothing(self, store: Any) -> None:
        c = store.collection("cas-errors")
        c.put("k", 1, ttl=7)
        before = _snapshot(c)
        with pytest.raises(SerializationError):
            c.compare_and_set("k", 1, object())
        with pytest.raises(InvalidTTL):
            c.compare_and_set("k", 1, 2, ttl=-1)
        with pytest.raises(kvlite.errors.InvalidKey):
            c.compare_and_set(["no"], 1, 2)
        assert _snapshot(c) == before

    # -- against a dict model -----------------------------------------------------------------------

    @settings(max_examples=EXAMPLES or 25, **HYPOTHESIS)
    @given(ops=st.lists(st.one_of(
        st.tuples(st.just("incr"), st.sampled_from("abc"), st.one_of(st.integers(-5, 5), st.sampled_from([0.5, -1.25])),
                  st.sampled_from([None, "$.n", "$.m.n"]), st.integers(-3, 3)),
        st.tuples(st.just("cas"), st.sampled_from("abc"),
                  st.one_of(st.just(kvlite.ABSENT), st.integers(-3, 3), st.just({"n": 1}), st.just("model")),
                  st.one_of(st.integers(-3, 3), st.just({"n": 0}), st.just([1, True])), st.none()),
        st.tuples(st.just("put"), st.sampled_from("abc"), st.one_of(st.integers(-3, 3), st.just({"n": 2.5}),
                                                                  st.just("s")), st.none(), st.none()),
    ), max_size=25))
    def test_incr_and_compare_and_set_match_a_dict(self, store: Any, ops: list[tuple[Any, ...]]) -> None:
        c = store.collection("model")
        c.clear()
        model: dict[str, Any] = {}
        for op, key, a, b, d in ops:
            if op == "put":
                c.put(key, a)
                model[key] = copy.deepcopy(a)
            elif op == "cas":
                expected = model.get(key, kvlite.ABSENT) if a == "model" else a
                same = (key not in model) if expected is kvlite.ABSENT else (key in model and model[key] == expected)
                assert c.compare_and_set(key, expected, b) is same
                if same:
                    model[key] = copy.deepcopy(b)
            else:
                names = [] if b is None else b[2:].split(".")
                doc = copy.deepcopy(model.get(key, {} if names else d))
                try:
                    node = doc
                    for name in names[:-1]:
                        if not isinstance(node, dict):
                            raise InvalidValue("not an object")
                        node = node.setdefault(name, {}) if isinstance(node, dict) else node
                    if names and not isinstance(node, dict):
                        raise InvalidValue("not an object")
                    current = node.get(names[-1], d) if names else doc
                    if isinstance(current, bool) or not isinstance(current, (int, float)):
                        raise InvalidValue("not a number")
                except InvalidValue:
                    with pytest.raises(InvalidValue):
                        c.incr(key, a, path=b, default=d)
                    continue
                assert c.incr(key, a, path=b, default=d) == current + a
                if names:
                    node[names[-1]] = current + a
                    model[key] = doc
                else:
                    model[key] = current + a
            assert dict(c.items()) == model
            assert [type(v) for v in c.values()] == [type(v) for v in model.values()]

    # -- concurrency: real processes where the engine allows ------------------------------------------

    def test_incr_from_4_workers_loses_nothing(self, make_store: StoreMaker, tmp_path: Path) -> None:
        store = make_store()
        c = store.collection("race")
        c.put("doc", {"title": "x", "stats": {"likes": 7}})  # (the workers' clock is the real one)
        _run_workers(make_store, store, tmp_path, "race", "doc", "incr", 250, "$.stats.views")
        assert c.get("doc") == {"title": "x", "stats": {"likes": 7, "views": WORKERS * 250}}
        _run_workers(make_store, store, tmp_path, "race", "plain", "incr", 50)
        assert c.get("plain") == WORKERS * 50

    def test_compare_and_set_retry_loops_never_double_apply(self, make_store: StoreMaker, tmp_path: Path) -> None:
        store = make_store()
        c = store.collection("cas-race")
        c.put("log", [])
        reports = _run_workers(make_store, store, tmp_path, "cas-race", "log", "cas", 30)
        log = c.get("log")
        assert len(log) == WORKERS * 30 and sorted(log) == sorted(f"{w}-{i}" for w in range(WORKERS)
                                                                   for i in range(30))
        for w in range(WORKERS):  # each worker's appends in its own order
            assert [e for e in log if e.startswith(f"{w}-")] == [f"{w}-{i}" for i in range(30)]
        assert all(r["lost"] >= 0 for r in reports)

    # -- asyncio ------------------------------------------------------------------------------------

    def test_async_wrappers(self, make_store: StoreMaker, clock: Clock) -> None:
        import asyncio

        import kvlite.aio

        location = make_store.location

        async def main() -> None:
            store = await kvlite.aio.open(location.target, clock=clock, **location.options)
            try:
                c = await store.collection("aio")
                assert await c.incr("n") == 1 and await c.incr("n", 2.5) == 3.5
                assert await c.incr("d", path="$.a.b", default=1) == 2
                assert await c.compare_and_set("d", {"a": {"b": 2}}, "x", ttl=5) is True
                assert await c.compare_and_set("e", kvlite.ABSENT, 1) is True
                assert await c.compare_and_set("e", kvlite.ABSENT, 2) is False
                with pytest.raises(InvalidValue):
                    await c.incr("d")
                assert await c.get("d") == "x" and await c.get("e") == 1
            finally:
                await store.close()

        asyncio.run(main())
