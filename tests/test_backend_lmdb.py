"""The LMDB engine (``lmdb://FOLDER``, kvlite/backends/lmdb.py) beyond the conformance suite.

What tests/test_conformance.py cannot check on every engine, on a real LMDB environment (no mocks):

* key encoding: memcmp order of the encodings is Python's order of the keys (numbers, str, bytes,
  and the kinds numbers < str < bytes), equal keys encode equal, decoding is exact, type included;
* long keys (encodings over 478 bytes, stored as a prefix + SHA-256): point operations, insertion
  order and key ranges against a sorted model, bounds inside runs of shared-prefix long keys, pages;
* map growth from a 64 KiB map: single puts, put_many, transaction() blocks, a block too big for the
  map (StoreFull, nothing of it), growth while another thread iterates;
* several processes: concurrent writers, readers, growth adopted, collections dropped or created;
* crash safety: kill -9 in a loop of acknowledged writes, and inside a transaction() block;
* one folder opened twice in a process (one read-only), typed errors for foreign/damaged folders,
  ``max_collections``, URL options;
* snapshots against concurrent commits, nested transactions, backup() during writes, durability.

Child processes run this file itself (``python tests/test_backend_lmdb.py COMMAND JSON``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

import kvlite
from kvlite import keys as _keys
from kvlite.errors import (
    CollectionDropped,
    CorruptStore,
    ReadOnlyError,
    StoreFull,
)

try:  # the child processes need only kvlite and lmdb
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - in a child process without hypothesis
    given = None  # type: ignore[assignment]

import lmdb

from kvlite.backends.lmdb import _PAGE, _PREFIX, _decode, _encode, _stored

HERE = Path(__file__).resolve()


def url(folder: Path | str, **options: Any) -> str:
    query = "&".join(f"{name}={value}" for name, value in options.items())
    return f"lmdb://{folder}" + (f"?{query}" if query else "")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def opened(folder: Path) -> Iterator[list[kvlite.Store]]:
    """Stores a test opened, closed after it."""
    stores: list[kvlite.Store] = []
    yield stores
    for store in stores:
        store.close()


def open_lmdb(stores: list[kvlite.Store], where: Path | str, **kwargs: Any) -> kvlite.Store:
    store = kvlite.open(str(where), **kwargs)
    stores.append(store)
    return store


# == 1. key encoding ===============================================================================

INT64 = st.integers(-(2**63), 2**63 - 1)
#: ints beyond 64 bits that equal a float exactly: valid keys (2**64, 10**20 is not one).
BIG_INTS = st.builds(lambda m, e, sign: sign * m * 2**e, st.integers(1, 2**53 - 1), st.integers(11, 970),
                     st.sampled_from([1, -1]))
FLOATS = st.floats(allow_nan=False)  # infinities, -0.0 and subnormals included
SMALL_FLOATS = st.floats(allow_nan=False, min_value=-4.0, max_value=4.0)  # around 0 and the integers
NEAR_ZERO = st.floats(min_value=-1e-12, max_value=1e-12)  # subnormals too: 1 + x is not exact there
NUMBERS = st.one_of(INT64, BIG_INTS, FLOATS, SMALL_FLOATS, NEAR_ZERO, st.booleans(),
                    st.sampled_from([0, -0.0, 1, -1, 2**63 - 1, -(2**63), 2**64, -(2**64), 2.0**64, 5e-324,
                                     -5e-324, 2.2250738585072014e-308, -2.2250738585072014e-308,
                                     math.inf, -math.inf, 0.5, -0.5, -1.5, -0.1, -1e-20, -1e-300,
                                     1.7976931348623157e308, -1.7976931348623157e308, True, False]))
TEXTS = st.text(st.characters(codec="utf-8"), max_size=12)  # non-BMP included, no lone surrogates
BYTES = st.binary(max_size=12)
KINDS = {"number": NUMBERS, "str": TEXTS, "bytes": BYTES}
ANY_KEY = st.one_of(NUMBERS, TEXTS, BYTES)


def sign(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


def encoded(key: Any) -> bytes:
    return _encode(_keys.normalize(key))[0]


if given is not None:

    @pytest.mark.parametrize("kind", list(KINDS))
    @settings(max_examples=400, deadline=None)
    @given(data=st.data())
    def test_encoding_sorts_as_the_keys(kind: str, data: Any) -> None:
        a = data.draw(KINDS[kind], label="a")
        b = data.draw(KINDS[kind], label="b")
        assert sign(encoded(a), encoded(b)) == sign(a, b), (a, b, encoded(a).hex(), encoded(b).hex())

    @settings(max_examples=400, deadline=None)
    @given(key=ANY_KEY)
    def test_decoding_gives_the_key_and_its_type(key: Any) -> None:
        normal = _keys.normalize(key)
        enc, code = _encode(normal)
        back = _decode(enc, code)
        assert back == key and type(back) is type(normal)
        if isinstance(normal, float):  # exactly: the sign of -0.0 is the only thing lost
            assert back.hex() == (normal + 0.0).hex()

    @settings(max_examples=300, deadline=None)
    @given(a=ANY_KEY, b=ANY_KEY)
    def test_kinds_sort_numbers_then_str_then_bytes(a: Any, b: Any) -> None:
        rank = {"number": 0, "str": 1, "bytes": 2}
        ka, kb = rank[_keys.kind_of(_keys.normalize(a))], rank[_keys.kind_of(_keys.normalize(b))]
        if ka != kb:
            assert sign(encoded(a), encoded(b)) == sign(ka, kb)
        # equal encodings exactly for keys Python finds equal (one dict key)
        assert (encoded(a) == encoded(b)) == (ka == kb and a == b)

    @settings(max_examples=200, deadline=None)
    @given(x=st.one_of(INT64, BIG_INTS, st.floats(allow_nan=False, allow_infinity=False)))
    def test_equal_numbers_encode_equal(x: Any) -> None:
        forms = {x}
        if isinstance(x, float) and x.is_integer():
            forms.add(int(x))
        if isinstance(x, int) and float(x) == x:
            forms.add(float(x))
        if x in (0, 1):
            forms.update({bool(x), float(x), int(x)})
        assert len({encoded(form) for form in forms}) == 1, forms


def test_encoding_examples() -> None:
    assert encoded(1) == encoded(1.0) == encoded(True)
    assert encoded(0) == encoded(-0.0) == encoded(False) == encoded(0.0)
    assert encoded(2**64) == encoded(2.0**64)
    # negative fractions close to 0 and to an integer stay exact and distinct (they once collided)
    values = [-1.0, -1 + 2**-52, -0.5, -0.1, -1e-20, -1e-300, -5e-324, 0.0, 5e-324, 0.1]
    encodings = [encoded(v) for v in values]
    assert encodings == sorted(encodings) and len(set(encodings)) == len(values)
    for v in values:
        assert _decode(*_encode(v)) == v
    assert _decode(*_encode(-0.1)) == -0.1
    assert type(_decode(*_encode(True))) is bool and type(_decode(*_encode(2**64))) is int


def test_negative_fractions_through_the_store(opened: list[kvlite.Store], folder: Path) -> None:
    coll = open_lmdb(opened, url(folder)).collection("n")
    for i, key in enumerate([-0.1, -1e-20, -1e-30, -5e-324, -0.75, -2.25]):
        coll.put(key, i)
    assert list(coll.keys()) == [-0.1, -1e-20, -1e-30, -5e-324, -0.75, -2.25]
    assert [coll.get(k) for k in (-0.1, -1e-20, -1e-30, -5e-324)] == [0, 1, 2, 3]
    assert list(coll.keys(start=-1.0, stop=0)) == [-0.75, -0.1, -1e-20, -1e-30, -5e-324]
    assert list(coll.keys(start=-3, stop=0, reverse=True)) == [-5e-324, -1e-30, -1e-20, -0.1, -0.75, -2.25]


def test_stored_form_of_long_keys() -> None:
    short = "s" * (_PREFIX - 1)  # 1 + 477 bytes: the longest encoding stored as itself
    assert _stored(encoded(short)) == encoded(short)
    long = short + "x"
    stored = _stored(encoded(long))
    assert len(stored) == _PREFIX + 32 <= 511 and stored[:_PREFIX] == encoded(long)[:_PREFIX]
    assert _stored(encoded(short + "y")) != stored and _stored(encoded(short + "y"))[:_PREFIX] == stored[:_PREFIX]


# == 2. long keys ==================================================================================

STEM = "p" * (_PREFIX - 1)  # a str key's encoding is 1 + its UTF-8: STEM + anything is long
BSTEM = b"q" * (_PREFIX - 1)
SUFFIX = st.text(st.sampled_from("ab\x00\u00e9\U0001f600"), max_size=4)
LONG_STR = st.one_of(
    st.builds(lambda s: STEM + s, SUFFIX),                      # one run of shared-prefix long keys
    st.builds(lambda s: STEM[:-1] + "\U0001f600" + s, SUFFIX),  # a character cut at the prefix's end
    st.builds(lambda s: STEM[:-3] + s, SUFFIX),                  # short keys around the run
    st.builds(lambda s: "p" * 300 + s, SUFFIX),
    st.builds(lambda s: STEM + "a" * 40 + s, SUFFIX),
    st.builds(lambda s: "o" + s, SUFFIX), st.builds(lambda s: "q" + s, SUFFIX))
LONG_BYTES = st.one_of(st.builds(lambda s: BSTEM + s, st.binary(max_size=3)),
                       st.builds(lambda s: BSTEM[:-2] + s, st.binary(max_size=3)),
                       st.builds(lambda s: BSTEM + b"\xff" * 40 + s, st.binary(max_size=2)))


def model_range(model: dict[Any, Any], kind: type, prefix: Any, start: Any, stop: Any, reverse: bool) -> list[Any]:
    keyrange = _keys.key_range(prefix, start, stop)
    assert keyrange is not None
    chosen = sorted(k for k in model if type(k) is kind and (keyrange.start is None or k >= keyrange.start)
                    and (keyrange.stop is None or k < keyrange.stop))
    return chosen[::-1] if reverse else chosen


if given is not None:

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow])
    @given(data=st.data())
    def test_long_keys_against_a_model(tmp_path: Path, data: Any) -> None:
        where = tmp_path / f"m{time.monotonic_ns()}"
        with kvlite.open(url(where)) as store:
            coll = store.collection("long")
            model: dict[Any, Any] = {}
            for step in range(data.draw(st.integers(1, 60), label="steps")):
                key = data.draw(st.one_of(LONG_STR, LONG_BYTES, st.integers(-3, 3)), label="key")
                action = data.draw(st.sampled_from(["put", "put", "put", "delete", "pop"]), label="action")
                if action == "put":
                    coll.put(key, step)
                    model[key] = step  # a live key keeps its place: dict does the same
                elif action == "delete":
                    assert coll.delete(key) == (key in model)
                    model.pop(key, None)
                else:
                    assert coll.pop(key, None) == model.pop(key, None)
                if data.draw(st.booleans(), label="check point"):
                    probe = data.draw(st.one_of(LONG_STR, LONG_BYTES), label="probe")
                    assert coll.get(probe) == model.get(probe)
                    assert (probe in coll) == (probe in model)
            assert list(coll.keys()) == list(model)
            assert list(coll.keys(reverse=True)) == list(model)[::-1]
            assert dict(coll.items()) == model and len(coll) == len(model)
            for _ in range(6):
                kind, bounds = data.draw(st.sampled_from([(str, LONG_STR), (bytes, LONG_BYTES)]), label="kind")
                prefix = data.draw(st.one_of(st.none(), st.sampled_from(
                    [STEM, STEM[:-3], STEM + "a", "p" * 300, "p", STEM[:-1] + "\U0001f600"] if kind is str
                    else [BSTEM, BSTEM[:-2], BSTEM + b"\xff" * 40, b"q"])), label="prefix")
                start = data.draw(st.one_of(st.none(), bounds), label="start")
                stop = data.draw(st.one_of(st.none(), bounds), label="stop")
                if prefix is None and start is None and stop is None:
                    start = kind()
                if start is not None and stop is not None and start > stop:
                    start, stop = stop, start
                reverse = data.draw(st.booleans(), label="reverse")
                want = model_range(model, kind, prefix, start, stop, reverse)
                got = list(coll.keys(prefix, start=start, stop=stop, reverse=reverse))
                assert got == want, (prefix, start, stop, reverse)
                assert [v for _, v in coll.items(prefix, start=start, stop=stop, reverse=reverse)] == \
                    [model[k] for k in want]


def test_long_key_point_operations(opened: list[kvlite.Store], folder: Path) -> None:
    coll = open_lmdb(opened, url(folder)).collection("c")
    keys = [STEM + s for s in ("", "a", "b", "ab", "\U0001f600")] + [BSTEM + b"\x00", BSTEM + b"\xff", b"short"]
    for i, key in enumerate(keys):
        coll.put(key, {"i": i})
    assert [coll.get(k)["i"] for k in keys] == list(range(len(keys)))
    assert coll.get(STEM + "c") is None and (STEM + "c") not in coll
    coll.put(STEM + "a", "again")  # an overwrite keeps the place
    assert list(coll.keys()) == keys and coll.get(STEM + "a") == "again"
    assert coll.pop(STEM + "b") == {"i": 2}
    assert coll.delete(BSTEM + b"\x00") and not coll.delete(BSTEM + b"\x00")
    assert coll.get_many([STEM + "ab", STEM + "b", BSTEM + b"\xff"]) == [{"i": 3}, None, {"i": 6}]
    assert coll.setdefault(STEM + "b", 5) == 5 and coll.get(STEM + "b") == 5
    assert coll.incr(STEM + "n", 2) == 2 and coll.incr(STEM + "n", 3) == 5
    assert coll.popitem() == (STEM + "n", 5)
    coll.put(STEM + "t", 1, ttl=60)
    assert 0 < coll.ttl(STEM + "t") <= 60
    rest = [k for k in keys if k not in (STEM + "b", BSTEM + b"\x00")] + [STEM + "b", STEM + "t"]
    assert list(coll.keys()) == rest


def test_long_key_ranges_over_many_pages(opened: list[kvlite.Store], folder: Path) -> None:
    """More than a page (256 entries) of long keys sharing one prefix, among short keys: every
    range, forwards and back, bounds inside the run."""
    coll = open_lmdb(opened, url(folder)).collection("pages")
    n = _PAGE * 2 + 37
    run = [STEM + f"{i:04d}" for i in range(n)]
    short = [f"{c}" for c in "abcxyz"] + [STEM[:-1], STEM]
    other = ["p" * 300 + f"{i:03d}" for i in range(40)] + [STEM + "~" + "z" * 500]
    everything = run[::-1] + short + other  # inserted out of order
    coll.put_many((k, i) for i, k in enumerate(everything))
    ordered = sorted(everything)
    assert list(coll.keys(start="")) == ordered
    assert list(coll.keys(start="", reverse=True)) == ordered[::-1]
    assert list(coll.keys()) == everything
    assert list(coll.keys(reverse=True)) == everything[::-1]
    for start, stop in [(run[10], run[400]), (run[255], run[256]), (STEM, run[300]), (run[511], None),
                        (None, run[3]), (STEM + "0100x", STEM + "0300x"), ("p", "q"), (run[-1], STEM + "~")]:
        want = [k for k in ordered if (start is None or k >= start) and (stop is None or k < stop)]
        assert list(coll.keys(start=start, stop=stop)) == want
        assert list(coll.keys(start=start, stop=stop, reverse=True)) == want[::-1]
    assert list(coll.keys(STEM + "02")) == [k for k in run if k.startswith(STEM + "02")]
    assert list(coll.keys(STEM, reverse=True)) == sorted([k for k in everything if k.startswith(STEM)])[::-1]
    # a key deleted two pages ahead of a ranged iteration is not seen; none is seen twice
    # (a run of long keys sharing a prefix is read at once, to be sorted: not for them)
    coll.put_many((f"k{i:04d}", i) for i in range(3 * _PAGE))
    it = coll.keys(start="k", stop="l")
    seen = [next(it) for _ in range(5)]
    gone = [f"k{i:04d}" for i in range(2 * _PAGE + 10, 2 * _PAGE + 30)]
    coll.delete_many(gone)
    coll.put("k0001", "overwritten")  # already seen: not again
    seen += list(it)
    assert len(seen) == len(set(seen)) == 3 * _PAGE - len(gone)
    assert not set(gone) & set(seen)


# == 3. map growth =================================================================================

BLOB = "x" * 4000


def test_map_grows_for_puts_put_many_and_blocks(opened: list[kvlite.Store], folder: Path) -> None:
    store = open_lmdb(opened, url(folder, map_size=65536))
    assert store.info()["map_size"] == 65536
    coll = store.collection("c")
    for i in range(400):  # 1.6 MB by single puts
        coll.put(i, BLOB + str(i))
    grown = store.info()["map_size"]
    assert grown >= 1_600_000
    coll.put_many((f"m{i}", BLOB + str(i)) for i in range(400))  # one call: retried once the map grew
    for block in range(4):
        with store.transaction():
            for i in range(200):
                coll.put(f"t{block}-{i}", BLOB)
            store.collection(f"made-in-block-{block}").put("k", block)
    assert store.info()["map_size"] > grown
    assert len(coll) == 400 + 400 + 800
    store.close()
    store = open_lmdb(opened, url(folder, map_size=65536))  # a smaller map than the data: LMDB takes the data's
    coll = store.collection("c")
    assert len(coll) == 1600 and store.info()["map_size"] >= store.info()["size"]
    assert coll.get(7) == BLOB + "7" and coll.get("m399") == BLOB + "399" and coll.get("t3-199") == BLOB
    assert [store.collection(f"made-in-block-{b}").get("k") for b in range(4)] == [0, 1, 2, 3]
    coll.put("after reopen", BLOB * 100)  # grows again
    assert coll.get("after reopen") == BLOB * 100


def test_a_block_bigger_than_the_map_lands_nothing(opened: list[kvlite.Store], folder: Path) -> None:
    store = open_lmdb(opened, url(folder, map_size=65536))
    coll = store.collection("c")
    coll.put("before", 1)

    def big_block() -> None:
        with store.transaction():
            coll.put("block-first", 1)
            store.collection("made-in-the-block").put("x", 1)
            for i in range(600):  # 2.4 MB into a 64 KiB map
                coll.put(f"big{i}", BLOB)

    with pytest.raises(StoreFull):
        big_block()
    assert list(coll.keys()) == ["before"] and "made-in-the-block" not in store.collections()
    coll.put("usable", 2)  # single writes still work (and grow the map)
    assert coll.get("usable") == 2
    # the map grows after each failed block: running it again eventually succeeds
    for attempt in range(30):
        try:
            big_block()
            break
        except StoreFull:
            assert "big0" not in coll and "made-in-the-block" not in store.collections()
    else:
        pytest.fail("the block never fitted: the map did not grow after it failed")
    assert len(coll) == 3 + 600 and store.collection("made-in-the-block").get("x") == 1

    # a nested block that fills the map rolls back alone; the outer one commits
    with store.transaction():
        coll.put("outer", 1)
        with pytest.raises(StoreFull):
            with store.transaction():
                coll.put("inner", 1)
                for i in range(3000):
                    coll.put(f"huge{i}", BLOB)
        coll.put("outer2", 2)
    assert "outer" in coll and "outer2" in coll and "inner" not in coll and "huge0" not in coll
    # a block that swallows StoreFull cannot commit half of itself
    with pytest.raises(kvlite.errors.KvliteError):
        with store.transaction():
            coll.put("swallowed", 1)
            with contextlib.suppress(StoreFull):
                for i in range(30000):
                    coll.put(f"huge{i}", BLOB)
            coll.put("swallowed2", 1)
    assert "swallowed" not in coll and "huge0" not in coll and "swallowed2" not in coll


def test_growth_while_another_thread_iterates(opened: list[kvlite.Store], folder: Path) -> None:
    store = open_lmdb(opened, url(folder, map_size=65536))
    coll = store.collection("c")
    coll.put_many((i, i) for i in range(3 * _PAGE))
    start_map = store.info()["map_size"]
    midway = threading.Event()
    grown = threading.Event()
    got: list[Any] = []
    errors: list[BaseException] = []

    def iterate() -> None:
        try:
            for n, (key, value) in enumerate(coll.items()):
                got.append(key)
                if n == 10:
                    midway.set()
                    assert grown.wait(30)
            ranged = coll.keys(start=0)
            got.append(next(ranged))
            midway.set()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    reader = threading.Thread(target=iterate)
    reader.start()
    assert midway.wait(30)
    writer = store.collection("w")
    for i in range(300):  # 1.2 MB: several growths while the reader's generator is mid-way
        writer.put(i, BLOB)
    assert store.info()["map_size"] > start_map
    grown.set()
    reader.join(30)
    assert not reader.is_alive() and not errors
    assert got == list(range(3 * _PAGE)) + [0]

    # the same with the generator mid-way in the writing thread itself, and a reader thread that
    # keeps iterating meanwhile
    stop = threading.Event()
    laps = []

    def keep_reading() -> None:
        try:
            while not stop.is_set():
                laps.append(sum(1 for _ in coll.keys()) + len(coll) + sum(1 for _ in coll.keys(start=0)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    reader = threading.Thread(target=keep_reading)
    reader.start()
    mine = coll.keys()
    first = [next(mine) for _ in range(5)]
    before = store.info()["map_size"]
    for i in range(300, 1500):
        writer.put(i, BLOB)
    stop.set()
    reader.join(30)
    assert not reader.is_alive() and not errors and laps and set(laps) == {3 * 3 * _PAGE}
    assert first + list(mine) == list(range(3 * _PAGE))
    assert store.info()["map_size"] > before


# == child processes ===============================================================================

#: The code every child process runs (``python -c CHILD COMMAND JSON``): kvlite and lmdb only.
CHILD = r'''
import json, os, sys, time
import kvlite


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.001)


def serve(args):
    """One request per stdin line (a JSON object with "op"), one JSON answer per line."""
    store = kvlite.open(args["url"])
    colls = {}
    reply({"ok": "ready"})
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "collection":  # (made and) cached, like a long-lived client
                colls[req["name"]] = store.collection(req["name"])
                result = None
            elif op == "put":
                store.collection(req["name"]).put(req["key"], req["value"])
                result = None
            elif op == "get":
                result = store.collection(req["name"]).get(req["key"])
            elif op == "cached-put":  # through the object cached by "collection"
                colls[req["name"]].put(req["key"], req["value"])
                result = None
            elif op == "cached-get":
                result = colls[req["name"]].get(req["key"])
            elif op == "keys":
                result = list(store.collection(req["name"]).keys())
            elif op == "fill":  # n values of size bytes, one put each
                coll = store.collection(req["name"])
                for i in range(req["n"]):
                    coll.put(req["prefix"] + str(i), "y" * req["size"])
                result = None
            elif op == "drop":
                result = store.drop_collection(req["name"])
            elif op == "collections":
                result = store.collections()
            elif op == "map_size":
                result = store.info()["map_size"]
            elif op == "exit":
                store.close()
                reply({"ok": None})
                return
            else:
                raise ValueError(op)
            reply({"ok": result})
        except Exception as exc:
            reply({"error": type(exc).__name__, "message": str(exc)})


def hammer(args):
    """After the start file appears: ``n`` incr of one shared key and ``n`` puts of keys of its own."""
    store = kvlite.open(args["url"])
    coll = store.collection("c")
    wait_for(args["start"])
    me = args["me"]
    for i in range(args["n"]):
        coll.incr("counter")
        coll.put(f"{me}:{i}", {"me": me, "i": i, "pad": "z" * args["pad"]})
        if i % 50 == 0:
            with store.transaction():
                coll.incr("in-blocks")
                store.collection("other").put(f"{me}:{i}", i)
    store.close()
    reply({"ok": me})


def writer(args):
    """Acknowledged writes until killed: each line on stdout follows a call that returned."""
    store = kvlite.open(args["url"])
    coll, other = store.collection("c"), store.collection("other")
    reply({"ok": "ready"})
    i = 0
    while True:
        i += 1
        kind = i % 4
        if kind == 0:
            coll.put(f"k{i}", {"i": i, "pad": "p" * (i % 3000)})
        elif kind == 1:
            coll.put_many({f"b{i}:{j}": j for j in range(5)})
        elif kind == 2:
            n = coll.incr("counter")
            reply({"ack": i, "counter": n})
            continue
        else:
            with store.transaction():
                coll.put(f"t{i}", i)
                other.put(f"t{i}", i)
        reply({"ack": i})


def in_block(args):
    """Writes inside a transaction() block, says so, and waits there to be killed."""
    store = kvlite.open(args["url"])
    coll = store.collection("c")
    coll.put("before", 1)
    with store.transaction():
        for i in range(args["n"]):
            coll.put(f"block{i}", "v" * 500)
        store.collection("made-in-block").put("x", 1)
        coll.delete("before")
        reply({"ok": "inside"})
        time.sleep(120)


def first_read_during_a_block(args):
    """A collection this process has not read yet is read by one thread while another holds a
    transaction() block open (with py-lmdb's own open_db this froze the whole process)."""
    import threading
    with kvlite.open(args["url"]) as store:
        store.collection("x").put("k", "v")
        store.collection("y").put("k", 1)
    store = kvlite.open(args["url"])  # anew: no database handle open yet
    inside, done = threading.Event(), threading.Event()
    y = store.collection("y")

    def block():
        with store.transaction():
            y.put("k", 2)
            inside.set()
            time.sleep(0.3)  # the main thread's first read comes now
        done.set()

    thread = threading.Thread(target=block)
    thread.start()
    inside.wait()
    got = store.collection("x").get("k")
    thread.join()
    reply({"ok": [got, done.is_set(), y.get("k")]})


{"serve": serve, "hammer": hammer, "writer": writer, "in-block": in_block,
 "first-read-during-a-block": first_read_during_a_block}[sys.argv[1]](json.loads(sys.argv[2]))
'''


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(HERE.parents[1])  # this checkout's kvlite first
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else root
    return env


def spawn(command: str, **args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, command, json.dumps(args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                            cwd=str(HERE.parents[1]))


def answer(proc: subprocess.Popen[str]) -> Any:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise AssertionError(f"the child exited ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}")
    return json.loads(line)


class Client:
    """Another process with the store open, answering requests (the ``serve`` child)."""

    def __init__(self, where: str) -> None:
        self.proc = spawn("serve", url=where)
        assert answer(self.proc) == {"ok": "ready"}

    def __call__(self, op: str, **fields: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        got = answer(self.proc)
        if "error" in got:
            raise AssertionError(f"the child raised {got['error']}: {got['message']}")
        return got["ok"]

    def error(self, op: str, **fields: Any) -> str:
        """The name of the error the request raised in the child."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        got = answer(self.proc)
        assert "error" in got, got
        return str(got["error"])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self("exit")
        with contextlib.suppress(Exception):
            self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def client(clients: list[Client], where: str) -> Client:
    made = Client(where)
    clients.append(made)
    return made


# == 4. several processes ==========================================================================

def test_concurrent_writer_processes(opened: list[kvlite.Store], folder: Path, tmp_path: Path) -> None:
    where = url(folder, map_size=65536)  # small: the processes grow the map while they contend
    store = open_lmdb(opened, where)
    store.collection("c").put("seed", 0)
    start = tmp_path / "go"
    n, procs = 300, 4
    children = [spawn("hammer", url=where, start=str(start), me=me, n=n, pad=1500) for me in range(procs)]
    try:
        time.sleep(0.3)
        start.touch()
        for proc in children:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        for proc in children:
            if proc.poll() is None:
                proc.kill()
    coll = store.collection("c")
    assert coll.get("counter") == procs * n
    assert coll.get("in-blocks") == procs * len(range(0, n, 50))
    for me in range(procs):
        assert [coll.get(f"{me}:{i}")["i"] for i in range(n)] == list(range(n))
    assert len(coll) == 3 + procs * n and len(store.collection("other")) == procs * len(range(0, n, 50))
    assert store.info()["map_size"] >= procs * n * 1500


def test_another_process_sees_commits_and_adopts_growth(opened: list[kvlite.Store], folder: Path,
                                                         clients: list[Client]) -> None:
    where = url(folder, map_size=65536)
    store = open_lmdb(opened, where)
    coll = store.collection("shared")
    coll.put("from parent", 1)
    other = client(clients, where)
    other("collection", name="shared")
    assert other("get", name="shared", key="from parent") == 1
    coll.put("from parent", 2)
    assert other("get", name="shared", key="from parent") == 2  # the newest commit, not a cached one
    other("put", name="shared", key="from child", value=[1, 2])
    assert coll.get("from child") == [1, 2]
    # the child grows the map (64 KiB -> MBs); this process adopts the new size on its next reads and writes
    parent_map = store.info()["map_size"]
    other("fill", name="shared", prefix="big", n=600, size=4000)
    child_map = other("map_size")
    assert child_map > 2_400_000 > parent_map
    assert coll.get("big599") == "y" * 4000  # data beyond the parent's old map
    assert len(coll) == 602 and list(coll.keys())[-1] == "big599"
    assert store.info()["map_size"] >= child_map or store.info()["map_size"] >= store.info()["size"]
    coll.put("after growth", "z" * 100_000)
    assert other("get", name="shared", key="after growth") == "z" * 100_000
    # a collection object made here before the child grew the map again, first used after that
    other("put", name="late", key="k", value=1)
    late = store.collection("late")
    other("fill", name="late", prefix="more", n=600, size=8000)
    assert other("map_size") > store.info()["map_size"]
    assert late.get("k") == 1 and late.get("more599") == "y" * 8000
    # a backup as the first thing after the child grew the map again
    other("fill", name="late", prefix="most", n=1000, size=8000)
    store.backup(folder.parent / "copy")
    with kvlite.open(url(folder.parent / "copy")) as copy:
        assert copy.collection("late").get("most999") == "y" * 8000 and len(copy.collection("late")) == 1601
    # and the other way round: the parent grows it, the child reads on
    store.collection("p").put_many((i, "w" * 4000) for i in range(1000))
    assert other("get", name="p", key=999) == "w" * 4000
    assert other("map_size") >= 4_000_000


def test_collections_dropped_or_made_in_another_process(opened: list[kvlite.Store], folder: Path,
                                                        clients: list[Client]) -> None:
    where = url(folder)
    store = open_lmdb(opened, where)
    doomed = store.collection("doomed")
    doomed.put_many({"a": 1, "b": 2})
    assert doomed.get("a") == 1 and list(doomed.keys()) == ["a", "b"]  # its handles are open here
    other = client(clients, where)
    other("collection", name="doomed")
    assert other("drop", name="doomed") is True
    with pytest.raises(CollectionDropped):
        doomed.get("a")
    with pytest.raises(CollectionDropped):
        doomed.put("c", 3)
    with pytest.raises(CollectionDropped):
        list(doomed.keys())
    with pytest.raises(CollectionDropped):
        len(doomed)
    # made again (another collection of that name): the old object still refuses, the new one is empty
    other("put", name="doomed", key="new", value=1)
    for call in (lambda: doomed.get("new"), lambda: doomed.put("x", 1), lambda: list(doomed.keys(start="")),
                 lambda: doomed.delete("new"), lambda: doomed.get_many(["new"])):
        with pytest.raises(CollectionDropped):
            call()
    fresh = store.collection("doomed")
    assert list(fresh.keys()) == ["new"] and fresh.get("a") is None
    # a collection the parent has open, dropped while the parent iterates it
    iterated = store.collection("iterated")
    iterated.put_many((i, i) for i in range(3 * _PAGE))
    it = iter(iterated.keys())
    assert next(it) == 0
    other("drop", name="iterated")
    with pytest.raises(CollectionDropped):
        list(it)
    # made in another process: visible here, both ways
    other("put", name="made there", key="k", value="v")
    assert "made there" in store.collections()
    assert store.collection("made there").get("k") == "v"
    store.collection("made here").put("k", "h")
    assert other("get", name="made here", key="k") == "h" and "made here" in other("collections")
    # the child's cached object for a collection this process dropped
    other("collection", name="made here")
    assert store.drop_collection("made here")
    assert other.error("cached-get", name="made here", key="k") == "CollectionDropped"
    assert other.error("cached-put", name="made here", key="k", value=1) == "CollectionDropped"
    assert other("get", name="made here", key="k") is None  # made again, empty


# == 5. crash safety ===============================================================================

def kill_after(proc: subprocess.Popen[str], acks: int) -> list[dict[str, Any]]:
    """Read the child's acknowledgements until ``acks`` of them, SIGKILL it mid-loop, and return
    every acknowledgement it wrote before it died."""
    got = [answer(proc)]
    assert got[0] == {"ok": "ready"}
    while len(got) <= acks:
        got.append(answer(proc))
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.stdout is not None
    rest = proc.stdout.read()  # through the buffer readline() filled (communicate() would skip it)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    got += [json.loads(line) for line in rest.splitlines()]
    return got[1:]


def check_acknowledged(store: kvlite.Store, acks: list[dict[str, Any]], base: int = 0) -> None:
    coll, other = store.collection("c"), store.collection("other")
    counters = [a["counter"] for a in acks if "counter" in a]
    assert counters == list(range(base + 1, base + len(counters) + 1))
    assert coll.get("counter") in (counters[-1], counters[-1] + 1)  # the kill may follow a commit not acked
    for a in acks:
        i = a["ack"]
        if i % 4 == 0:
            assert coll.get(f"k{i}") == {"i": i, "pad": "p" * (i % 3000)}
        elif i % 4 == 1:
            assert coll.get_many([f"b{i}:{j}" for j in range(5)]) == list(range(5))
        elif i % 4 == 3:
            assert coll.get(f"t{i}") == i and other.get(f"t{i}") == i
    # every transaction block landed whole: a key in one collection iff in the other
    assert {k for k in coll.keys() if str(k).startswith("t")} == set(other.keys())


def test_kill_9_during_acknowledged_writes(opened: list[kvlite.Store], folder: Path) -> None:
    where = url(folder, map_size=65536)  # the writer grows the map too
    acks = kill_after(spawn("writer", url=where), 400)
    store = open_lmdb(opened, where)  # a fresh environment in this process: opens cleanly
    check_acknowledged(store, acks)
    store.collection("c").put("after", 1)
    assert store.collection("c").get("after") == 1
    # again while this process keeps the environment open (the dead writer's lock is recovered)
    base = store.collection("c").get("counter")
    acks = kill_after(spawn("writer", url=where), 300)
    check_acknowledged(store, acks, base)
    store.collection("c").put("after 2", 2)
    assert store.collection("c").get("after 2") == 2


def test_kill_9_inside_a_transaction_block(opened: list[kvlite.Store], folder: Path) -> None:
    where = url(folder)
    store = open_lmdb(opened, where)  # kept open: the child dies holding LMDB's write lock
    coll = store.collection("c")
    coll.put("mine", 0)
    proc = spawn("in-block", url=where, n=2000)
    assert answer(proc) == {"ok": "inside"}
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert coll.get("before") == 1 and coll.get("block0") is None and "made-in-block" not in store.collections()
    start = time.monotonic()
    coll.put("after", 1)  # the dead process's write lock is taken over at once
    with store.transaction():
        coll.put("after block", 2)
    assert time.monotonic() - start < 10
    store.close()
    store = open_lmdb(opened, where)
    coll = store.collection("c")
    assert sorted(coll.keys()) == ["after", "after block", "before", "mine"]
    assert "made-in-block" not in store.collections()
    assert store.collection("fresh").put("x", 1) is None and store.collection("fresh").get("x") == 1


# == 6. one folder opened twice; typed errors ======================================================

def test_one_folder_opened_twice_in_a_process(opened: list[kvlite.Store], folder: Path) -> None:
    writer = open_lmdb(opened, url(folder))
    reader = open_lmdb(opened, url(folder), readonly=True)
    again = open_lmdb(opened, url(folder.parent / ".." / folder.parent.name / folder.name))  # another spelling
    w, r, a = writer.collection("c"), reader.collection("c"), again.collection("c")
    w.put("k", 1)
    assert r.get("k") == 1 and a.get("k") == 1
    a.put("k", 2)
    assert w.get("k") == 2 and r.get("k") == 2 and list(r.keys()) == ["k"]
    for write in (lambda: r.put("x", 1), lambda: r.delete("k"), lambda: r.incr("n"), lambda: reader.collection("new"),
                  lambda: reader.drop_collection("c"), lambda: r.put_many({"x": 1}), lambda: r.clear()):
        with pytest.raises(ReadOnlyError):
            write()
    with pytest.raises(ReadOnlyError):
        with reader.transaction():
            pass
    assert r.get("x") is None and list(w.keys()) == ["k"]
    writer.close()  # the others keep the shared environment
    assert r.get("k") == 2
    a.put("k", 3)
    assert r.get("k") == 3 and len(r) == 1
    again.close()
    assert r.get("k") == 3 and reader.collections() == ["c"]
    with pytest.raises(kvlite.errors.StoreClosed):
        w.get("k")
    reopened = open_lmdb(opened, url(folder))  # after the last writer closed, with the reader still open
    reopened.collection("c").put("k", 4)
    assert r.get("k") == 4


def test_readonly_store_on_a_readonly_folder(opened: list[kvlite.Store], folder: Path) -> None:
    with kvlite.open(url(folder)) as store:
        store.collection("c").put("k", 1)
    for name in os.listdir(folder):
        os.chmod(folder / name, 0o444)
    os.chmod(folder, 0o555)
    try:
        if os.access(folder, os.W_OK):  # root writes anywhere: nothing to check about permissions
            return
        with pytest.raises(ReadOnlyError):
            kvlite.open(url(folder))
        reader = open_lmdb(opened, url(folder), readonly=True)
        assert reader.collection("c").get("k") == 1
        with pytest.raises(ReadOnlyError):
            reader.collection("c").put("k", 2)
    finally:
        os.chmod(folder, 0o755)
        for name in os.listdir(folder):
            os.chmod(folder / name, 0o644)


def foreign_environment(where: Path, how: str) -> None:
    env = lmdb.open(str(where), max_dbs=4)
    with env.begin(write=True) as txn:
        if how == "plain keys":
            txn.put(b"hello", b"world")
        elif how == "kvlite is a plain key":
            txn.put(b"kvlite", b"not a database")
    if how == "other named databases":
        db = env.open_db(b"users")
        with env.begin(write=True) as txn:
            txn.put(b"a", b"1", db=db)
    elif how == "a registry without its order database":
        db = env.open_db(b"kvlite")
        with env.begin(write=True) as txn:
            txn.put(b"\x00format", b"1", db=db)
    elif how == "a registry without its format":
        env.open_db(b"kvlite")
        env.open_db(b"order")
    env.close()


@pytest.mark.parametrize("how", ["plain keys", "kvlite is a plain key", "other named databases",
                                 "a registry without its order database", "a registry without its format"])
@pytest.mark.parametrize("readonly", [False, True])
def test_a_foreign_lmdb_environment_is_corrupt_store(folder: Path, how: str, readonly: bool) -> None:
    foreign_environment(folder, how)
    before = {name: (folder / name).read_bytes() for name in ["data.mdb"]}
    with pytest.raises(CorruptStore):
        kvlite.open(url(folder), readonly=readonly)
    assert (folder / "data.mdb").read_bytes() == before["data.mdb"]  # left as it was
    with pytest.raises(CorruptStore):  # and again: nothing was left half-open in this process
        kvlite.open(url(folder))


@pytest.mark.parametrize("content", [b"garbage" * 1000, b"x" * 10, bytes(8192), os.urandom(3 * 4096)])
def test_a_garbage_data_file_is_corrupt_store(folder: Path, content: bytes) -> None:
    folder.mkdir()
    (folder / "data.mdb").write_bytes(content)
    for readonly in (False, True):
        with pytest.raises(CorruptStore):
            kvlite.open(url(folder), readonly=readonly)
    assert (folder / "data.mdb").read_bytes() == content


def test_damaged_pages_are_corrupt_store(folder: Path) -> None:
    """Pages past the two meta pages overwritten: a typed error, at open or at the first read."""
    with kvlite.open(url(folder)) as store:
        store.collection("c").put_many((f"k{i}", "v" * 100) for i in range(3000))
    data = bytearray((folder / "data.mdb").read_bytes())
    data[2 * 4096:] = bytes(len(data) - 2 * 4096)
    (folder / "data.mdb").write_bytes(bytes(data))
    with pytest.raises(CorruptStore):
        with kvlite.open(url(folder)) as store:
            coll = store.collection("c")
            [coll.get(f"k{i}") for i in range(3000)]


def test_max_collections(opened: list[kvlite.Store], folder: Path) -> None:
    store = open_lmdb(opened, url(folder, max_collections=2))
    store.collection("a").put("k", 1)
    store.collection("b").put("k", 2)
    with pytest.raises(StoreFull):
        store.collection("c")
    assert store.collections() == ["a", "b"]
    with pytest.raises(StoreFull):  # inside a block too; the block's other writes are rolled back with it
        with store.transaction():
            store.collection("a").put("in block", 1)
            store.collection("c")
    assert store.collection("a").get("in block") is None and store.collections() == ["a", "b"]
    assert store.collection("a").get("k") == 1
    # a dropped collection's slot is free again; the ids go on (never reused)
    assert store.drop_collection("a")
    store.collection("c").put("k", 3)
    assert store.collections() == ["b", "c"] and store.collection("c").get("k") == 3
    store.close()
    with kvlite.open(url(folder, max_collections=2)) as again:  # no handle open yet: the store's count decides
        assert again.collections() == ["b", "c"]
        with pytest.raises(StoreFull):
            again.collection("d")
        assert again.collections() == ["b", "c"]
        assert again.collection("b").get("k") == 2 and again.collection("c").get("k") == 3
    with kvlite.open(url(folder, max_collections=1)) as fewer:  # opened for fewer than it holds
        assert fewer.collection("b").get("k") == 2
        with pytest.raises(StoreFull):  # typed, naming the option
            fewer.collection("c").get("k")


@pytest.mark.parametrize("query", ["bogus=1", "map_size=abc", "map_size=0", "max_collections=-1", "map_size=",
                                   "max_collections=1.5"])
def test_bad_url_options(folder: Path, query: str) -> None:
    with pytest.raises(ValueError):
        kvlite.open(f"lmdb://{folder}?{query}")
    assert not folder.exists()


def test_readonly_on_a_missing_folder(folder: Path) -> None:
    with pytest.raises(ReadOnlyError):
        kvlite.open(url(folder), readonly=True)
    assert not folder.exists()


# == 7. snapshots, nested transactions, backup =====================================================

def test_first_read_of_a_collection_while_another_thread_writes(folder: Path) -> None:
    """Run in a child: a deadlock there would freeze this process (the GIL is held)."""
    proc = spawn("first-read-during-a-block", url=url(folder))
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the process froze: a first read while another thread held a transaction() block")
    assert proc.returncode == 0, err
    assert json.loads(out) == {"ok": ["v", True, 2]}


def test_snapshot_sees_the_start_while_another_thread_commits(opened: list[kvlite.Store], folder: Path) -> None:
    store = open_lmdb(opened, url(folder))
    coll = store.collection("c")
    coll.put_many((i, i) for i in range(2 * _PAGE + 10))
    store.collection("gone").put("k", 1)

    def commit_changes() -> None:
        c = store.collection("c")
        c.put("new", 1)
        c.delete(0)
        c.put(1, "changed")
        c.put_many((f"n{i}", i) for i in range(300))
        store.collection("made").put("x", 1)
        with store.transaction():
            c.put(2, "in a block")

    with store.snapshot():
        it = coll.items()
        assert next(it) == (0, 0)
        ranged = coll.keys(start=0)
        assert next(ranged) == 0
        other = threading.Thread(target=commit_changes)
        other.start()
        other.join(30)
        assert not other.is_alive()
        assert coll.get(0) == 0 and coll.get(1) == 1 and coll.get(2) == 2 and coll.get("new") is None
        assert len(coll) == 2 * _PAGE + 10 and coll.get_many([0, "n5"]) == [0, None]
        assert list(it) == [(i, i) for i in range(1, 2 * _PAGE + 10)]  # every page from the snapshot
        assert list(ranged) == list(range(1, 2 * _PAGE + 10))
        assert list(coll.keys(reverse=True))[:2] == [2 * _PAGE + 9, 2 * _PAGE + 8]
        assert store.collections() == ["c", "gone"]
        for write in (lambda: coll.put("x", 1), lambda: coll.delete(5), lambda: coll.incr("n"),
                      lambda: store.collection("c").put_many({"y": 1}), lambda: store.drop_collection("gone"),
                      lambda: store.collection("new in snapshot"), lambda: coll.pop(3)):
            with pytest.raises(ReadOnlyError):
                write()
        with pytest.raises(ReadOnlyError):
            with store.transaction():
                pass
    assert coll.get(0) is None and coll.get(1) == "changed" and coll.get(2) == "in a block"
    assert len(coll) == 2 * _PAGE + 10 - 1 + 1 + 300 and store.collections() == ["c", "gone", "made"]


def test_growth_waits_for_a_snapshot_of_another_thread(opened: list[kvlite.Store], folder: Path) -> None:
    """Growing remaps the file: it waits for this process's open snapshots, and gives up with
    StoreFull after the timeout (no deadlock); nothing of the failed write lands."""
    store = open_lmdb(opened, url(folder, map_size=65536), timeout=0.5)
    coll = store.collection("c")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.snapshot():
            assert coll.get("big") is None
            held.set()
            release.wait(30)
            assert coll.get("big") is None  # still the snapshot's view

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(30)
    try:
        start = time.monotonic()
        with pytest.raises(StoreFull):
            coll.put("big", "b" * 200_000)
        assert time.monotonic() - start < 10
    finally:
        release.set()
        holder.join(30)
    assert coll.get("big") is None
    coll.put("big", "b" * 200_000)  # the snapshot is over: the map grows
    assert coll.get("big") == "b" * 200_000


def test_nested_transactions_roll_back_alone(opened: list[kvlite.Store], folder: Path) -> None:
    store = open_lmdb(opened, url(folder))
    coll = store.collection("c")
    victim = store.collection("victim")
    victim.put_many((i, i) for i in range(5))
    with store.transaction():
        coll.put("outer", 1)
        with pytest.raises(RuntimeError):
            with store.transaction():
                coll.put("inner", 1)
                coll.delete("outer")
                store.collection("made inside").put("x", 1)
                assert store.drop_collection("victim")
                with store.transaction():
                    coll.put("innermost", 1)
                raise RuntimeError("undo the inner block")
        assert coll.get("outer") == 1 and coll.get("inner") is None and coll.get("innermost") is None
        assert "made inside" not in store.collections() and victim.get(3) == 3
        with store.transaction():
            coll.put("second inner", 2)
            store.collection("kept").put("x", 1)
    assert sorted(coll.keys()) == ["outer", "second inner"]
    assert store.collections() == ["c", "victim", "kept"]
    assert list(victim.keys()) == [0, 1, 2, 3, 4] and victim.get(4) == 4
    victim.put(5, 5)  # its databases are usable again after the rolled-back drop
    assert len(victim) == 6 and list(store.collection("victim").keys(start=0)) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(RuntimeError):  # the outermost block rolls back everything
        with store.transaction():
            coll.put("gone", 1)
            with store.transaction():
                coll.put("gone too", 1)
            raise RuntimeError
    assert sorted(coll.keys()) == ["outer", "second inner"]


def test_backup_while_another_thread_writes(opened: list[kvlite.Store], folder: Path, tmp_path: Path) -> None:
    store = open_lmdb(opened, url(folder, map_size=65536))
    coll, other = store.collection("c"), store.collection("other")
    coll.put_many((i, i) for i in range(500))
    stop = threading.Event()
    errors: list[BaseException] = []
    rounds = [0]

    def write() -> None:
        try:
            while not stop.is_set():
                n = rounds[0] = rounds[0] + 1
                with store.transaction():  # the invariant a consistent copy keeps: both or neither
                    coll.put(f"r{n}", "v" * 2000)
                    other.put(f"r{n}", n)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while rounds[0] < 50:
            time.sleep(0.005)
        copies = [tmp_path / f"copy{i}" for i in range(3)]
        for copy in copies:
            store.backup(copy)
    finally:
        stop.set()
        writer.join(30)
    assert not errors and rounds[0] > 50
    sizes = []
    for copy in copies:
        assert sorted(os.listdir(copy)) == ["data.mdb"] or "data.mdb" in os.listdir(copy)
        with kvlite.open(url(copy)) as restored:
            c, o = restored.collection("c"), restored.collection("other")
            assert [c.get(i) for i in range(500)] == list(range(500))
            rs = {k for k in c.keys() if isinstance(k, str)}
            assert rs == {f"r{n}" for n in o.values()} == set(o.keys())
            assert rs == {f"r{n}" for n in range(1, len(rs) + 1)}  # a prefix of the commits: one state
            sizes.append(len(rs))
            c.put("restored copy is writable", 1)
    assert sizes == sorted(sizes)
    assert not list(tmp_path.glob(".copy*"))  # no temporary folder left behind
    with pytest.raises(kvlite.errors.InvalidBackupTarget):
        store.backup(copies[0])


def test_durability_full(opened: list[kvlite.Store], folder: Path) -> None:
    store = open_lmdb(opened, url(folder), durability="full")
    assert store.durability == "full"
    coll = store.collection("c")
    coll.put("k", 1)
    with store.transaction():
        coll.put("b", 2)
    store.close()
    store = open_lmdb(opened, url(folder))
    assert store.durability == "normal" and store.collection("c").get_many(["k", "b"]) == [1, 2]
    with pytest.raises(ValueError):
        kvlite.open(url(folder), durability="paranoid")


def test_a_key_put_again_during_iteration_is_not_seen_twice(opened: list[kvlite.Store], folder: Path) -> None:
    coll = open_lmdb(opened, url(folder)).collection("c")
    coll.put_many((i, i) for i in range(2 * _PAGE))
    for reverse in (False, True):
        it = coll.keys(reverse=reverse)
        seen = [next(it) for _ in range(5)]
        newest = list(coll.keys(reverse=True))[0]
        coll.delete(newest)  # the newest goes: its sequence number must not be handed out again
        again = seen[2]
        coll.delete(again)
        coll.put(again, "again")  # moves last
        coll.put(newest, "back")
        seen += list(it)
        assert len(seen) == len(set(seen)), reverse
        assert list(coll.keys())[-2:] == [again, newest] and coll.popitem() == (newest, "back")
        coll.put(newest, newest)
    coll.clear()  # numbers go on after a clear: an iteration begun before it sees nothing twice
    coll.put_many((i, i) for i in range(2 * _PAGE))
    it = coll.keys()
    seen = [next(it) for _ in range(5)]
    coll.clear()
    coll.put_many((i, i) for i in range(2 * _PAGE))
    seen += list(it)
    assert len(seen) == len(set(seen)) and list(coll.keys()) == list(range(2 * _PAGE))


def test_a_damaged_value_is_corrupt_store_not_a_raw_decode_error(tmp_path: Path) -> None:
    """LMDB keeps no checksums: a value whose stored text is no longer UTF-8 raises CorruptStore
    (on the hot get path, in get_many and in iteration), and the other entries still read."""
    with kvlite.open(f"lmdb://{tmp_path / 'damaged'}") as store:
        c = store.collection("c")
        c.put("a", {"x": "é"})
        c.put("b", {"x": "fine"})
        engine = store.engine
        entries = engine._dbs[c._table.handle][1]
        with engine.env.begin(write=True) as txn:
            raw = bytearray(txn.get(b"\x04a", db=entries))
            raw[raw.index("é".encode()) + 1] = 0xFF  # break the two-byte sequence of "é"
            txn.put(b"\x04a", bytes(raw), db=entries)
        for read in (lambda: c.get("a"), lambda: c.get_many(["a"]), lambda: list(c.items())):
            with pytest.raises(CorruptStore, match="damaged"):
                read()
        assert c.get("b") == {"x": "fine"}


def test_read_only_on_an_empty_folder_creates_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ReadOnlyError, match="holds no LMDB store"):
        kvlite.open(f"lmdb://{folder}", readonly=True)
    assert list(folder.iterdir()) == []
