"""Bad input: every one gets a typed error from kvlite.errors, and nothing stored changes.

Each test takes a byte-for-byte snapshot of every table (registry included)
before the bad call and compares it after, so "nothing was written" is
asserted, not assumed.  Files that are not kvlite stores (not SQLite,
truncated, corrupted, from a newer schema, read-only) are checked to raise
the documented error and, where kvlite must not write, to be left unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import helpers_proc as hp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvlite
from kvlite import errors, keys
from kvlite.backends.sqlite import migrate
from kvlite.names import MAX_COLLECTION_NAME

# -- helpers -----------------------------------------------------------------------------


def snapshot(store: kvlite.Store) -> dict[str, Any]:
    """Every row of every table (and the schema itself), read through the store's own connection."""
    conn = store.engine.connection()
    schema = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name").fetchall()
    tables = [row[1] for row in schema if row[0] == "table"]
    out: dict[str, Any] = {"schema": schema}
    for table in tables:
        out[table] = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
    return out


@pytest.fixture
def filled(open_store: Callable[..., kvlite.Store]) -> kvlite.Store:
    """A store with a JSON and a pickle collection, some entries with TTLs."""
    store = open_store()
    docs = store.collection("docs")
    docs.put_many({"a": {"n": 1}, "b": [1, 2, 3], "c": "text"})
    docs.put("t", {"ttl": True}, ttl=100)
    store.collection("pick", serializer="pickle").put_many({"x": {1, 2}, "y": (1, b"z")})
    return store


def expect(error: type[BaseException], store: kvlite.Store, action: Callable[[], Any]) -> BaseException:
    """Run ``action``; it must raise ``error`` and leave every table of ``store`` as it was."""
    before = snapshot(store)
    with pytest.raises(error) as info:
        action()
    assert snapshot(store) == before
    return info.value


# -- unserializable values ---------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Custom:
    pass


NAN = float("nan")
INF = float("inf")

NOT_JSON = {
    "set": {1, 2},
    "frozenset": frozenset({1}),
    "object": object(),
    "custom": Custom(),
    "dataclass": Point(1, 2),
    "bytes": b"raw",
    "bytearray": bytearray(b"raw"),
    "complex": 1 + 2j,
    "decimal": decimal.Decimal("1.5"),
    "datetime": datetime.datetime(2024, 1, 1),
    "function": len,
    "nan": NAN,
    "inf": INF,
    "-inf": -INF,
    "nan in list": [1, NAN],
    "inf in nested dict": {"a": {"b": [INF]}},
    "nan in tuple": (1, (NAN,)),
    "int dict key": {1: "x"},
    "tuple dict key": {(1, 2): "x"},
    "int over 64 bits": 2**64,
    "int under -2**63": -(2**63) - 1,
    "lone surrogate": "\ud800",
    "surrogate in dict key": {"\udfff": 1},
}


@pytest.mark.parametrize("value", list(NOT_JSON.values()), ids=list(NOT_JSON))
def test_json_refuses_what_it_cannot_keep(filled: kvlite.Store, value: Any) -> None:
    docs = filled.collection("docs")
    view = docs.dict()
    for action in (
        lambda: docs.put("new", value),
        lambda: docs.put("a", value),  # an existing key keeps its old value
        lambda: docs.put_many([("n1", 1), ("n2", value), ("n3", 3)]),
        lambda: docs.put_many({"a": 0, "b": value}),
        lambda: docs.setdefault("new", value),
        lambda: view.__setitem__("a", value),
        lambda: view.update({"z": 1, "a": value}),
        lambda: view.update(a=1, new=value),
    ):
        exc = expect(errors.SerializationError, filled, action)
        assert isinstance(exc, ValueError)
    assert docs.get("a") == {"n": 1}
    assert "new" not in docs and "n1" not in docs


def test_json_keeps_every_json_value_exactly(filled: kvlite.Store) -> None:
    """The counterpart: values at the edges of JSON are accepted and come back equal."""
    docs = filled.collection("docs")
    edge = {"big": 2**63 - 1, "small": -(2**63), "float": 1e308, "tiny": 5e-324, "neg0": -0.0,
            "text": "\x00\u2028\U0001F600", "null": None, "nested": [[[[{}]]]], "str 'null'": "null"}
    docs.put("edge", edge)
    assert docs.get("edge") == edge


NOT_PICKLABLE = {
    "lambda": lambda: 1,
    "lock": threading.Lock(),
    "generator": (i for i in range(3)),
}


@pytest.mark.parametrize("value", list(NOT_PICKLABLE.values()), ids=list(NOT_PICKLABLE))
def test_pickle_refuses_unpicklable_values(filled: kvlite.Store, value: Any) -> None:
    pick = filled.collection("pick", serializer="pickle")
    expect(errors.SerializationError, filled, lambda: pick.put("x", value))
    expect(errors.SerializationError, filled, lambda: pick.put_many({"new": 1, "x": value}))
    assert pick.get("x") == {1, 2}


# -- keys --------------------------------------------------------------------------------

BAD_KEYS = {
    "tuple": (1, 2),
    "None": None,
    "list": [1],
    "dict": {"a": 1},
    "set": {1},
    "frozenset": frozenset({1}),
    "object": object(),
    "complex": 1j,
    "decimal": decimal.Decimal(1),
    "int 2**63+1 (no float equals it)": 2**63 + 1,
    "int -2**63-1": -(2**63) - 1,
    "nan": NAN,
    "lone surrogate": "a\ud800b",
    "str over MAX_KEY_LENGTH": "k" * (keys.MAX_KEY_LENGTH + 1),
    "bytes over MAX_KEY_LENGTH": b"k" * (keys.MAX_KEY_LENGTH + 1),
}


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_unsupported_keys_raise_invalid_key(filled: kvlite.Store, key: Any) -> None:
    docs = filled.collection("docs")
    for action in (
        lambda: docs.put(key, 1),
        lambda: docs.get(key),
        lambda: docs.delete(key),
        lambda: docs.ttl(key),
        lambda: docs.setdefault(key, 1),
        lambda: docs.get_many(["a", key]),
        lambda: docs.put_many([("fine", 1), (key, 2)]),
        lambda: docs.delete_many(["a", key]),
        lambda: docs.ttl_many(["a", key]),
    ):
        exc = expect(errors.InvalidKey, filled, action)
        assert isinstance(exc, TypeError)
    assert key not in docs
    assert docs.pop(key, "default") == "default"
    assert docs.get("a") == {"n": 1}


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_dict_view_rejects_bad_keys_like_dict(filled: kvlite.Store, key: Any) -> None:
    """A TypeError to write (InvalidKey, or 'unhashable' as dict says); reads act like a missing key."""
    view = filled.collection("docs").dict()
    expect(TypeError, filled, lambda: view.__setitem__(key, 1))
    expect(TypeError, filled, lambda: view.update([(key, 1)]))
    try:
        hash(key)
    except TypeError:
        expect(TypeError, filled, lambda: view[key])
        return
    expect(KeyError, filled, lambda: view[key])
    expect(KeyError, filled, lambda: view.__delitem__(key))
    assert view.get(key, "d") == "d"
    assert key not in view


def test_keys_at_the_length_limit_work(filled: kvlite.Store) -> None:
    docs = filled.collection("docs")
    longest = "é" * keys.MAX_KEY_LENGTH  # the limit counts characters, not UTF-8 bytes
    docs.put(longest, 1)
    docs.put(b"\xff" * keys.MAX_KEY_LENGTH, 2)
    assert docs.get(longest) == 1 and docs.get(b"\xff" * keys.MAX_KEY_LENGTH) == 2
    assert longest in list(docs.keys())


# -- values at and over the size limit ---------------------------------------------------


def test_a_50_mb_value_round_trips(open_store: Callable[..., kvlite.Store]) -> None:
    store = open_store()
    big = store.collection("big")
    value = "v" * (50 * 1024 * 1024)
    big.put("k", value)
    assert big.get("k") == value


def test_values_and_keys_over_the_sqlite_length_limit_raise(filled: kvlite.Store) -> None:
    """SQLite's length limit (1e9 bytes by default) is lowered on this connection to test the path."""
    conn = filled.engine.connection()
    old = conn.limit(apsw.SQLITE_LIMIT_LENGTH, 100_000)
    try:
        docs = filled.collection("docs")
        pick = filled.collection("pick", serializer="pickle")
        expect(errors.SerializationError, filled, lambda: docs.put("a", "x" * 200_000))
        expect(errors.SerializationError, filled, lambda: docs.put_many({"n": 1, "b": "x" * 200_000}))
        expect(errors.SerializationError, filled, lambda: pick.put("x", b"x" * 200_000))
        expect(errors.SerializationError, filled, lambda: docs.put("k" * 200_000, 1))
        with pytest.raises(errors.SerializationError), filled.transaction():
            docs.put("in-tx", 1)
            docs.put("too-big", "x" * 200_000)
        assert "in-tx" not in docs
        docs.put("a", "x" * 90_000)  # under the limit still works
        assert docs.get("a") == "x" * 90_000
    finally:
        conn.limit(apsw.SQLITE_LIMIT_LENGTH, old)


# -- TTLs --------------------------------------------------------------------------------

BAD_TTLS = {
    "zero": 0,
    "negative": -1,
    "negative float": -0.5,
    "-0.0": -0.0,
    "nan": NAN,
    "inf": INF,
    "-inf": -INF,
    "str": "10",
    "bytes": b"10",
    "True": True,
    "False": False,
    "list": [10],
    "complex": 1j,
    "decimal": decimal.Decimal(10),
    "zero timedelta": datetime.timedelta(0),
    "negative timedelta": datetime.timedelta(seconds=-5),
    "int too large for a float": 10**400,
}


@pytest.mark.parametrize("ttl", list(BAD_TTLS.values()), ids=list(BAD_TTLS))
def test_invalid_ttls_raise_invalid_ttl(filled: kvlite.Store, ttl: Any) -> None:
    docs = filled.collection("docs")
    ttl_before = docs.ttl("t")
    for action in (
        lambda: docs.put("new", 1, ttl=ttl),
        lambda: docs.put("t", "replaced", ttl=ttl),
        lambda: docs.put_many({"a": 0, "new": 1}, ttl=ttl),
        lambda: docs.setdefault("new", 1, ttl=ttl),
        lambda: docs.setdefault("a", 1, ttl=ttl),  # invalid even when the key exists
    ):
        exc = expect(errors.InvalidTTL, filled, action)
        assert isinstance(exc, ValueError)
    assert docs.get("t") == {"ttl": True} and docs.ttl("t") == ttl_before


def test_ttl_range_edges(filled: kvlite.Store, clock: Any) -> None:
    """Any positive finite TTL is accepted; one below the clock's float resolution expires at once."""
    docs = filled.collection("docs")
    docs.put("huge", 1, ttl=1e300)
    docs.put("max", 1, ttl=datetime.timedelta.max)
    docs.put("tiny", 1, ttl=1e-300)
    assert docs.get("huge") == 1 and docs.ttl("huge") == pytest.approx(1e300)
    assert docs.get("max") == 1
    assert "tiny" not in docs


# -- collection names --------------------------------------------------------------------

BAD_NAMES = {
    "empty": "",
    "int": 1,
    "None": None,
    "bytes": b"docs",
    "list": ["docs"],
    "too long": "n" * (MAX_COLLECTION_NAME + 1),
    "NUL": "a\x00b",
    "only NUL": "\x00",
    "lone surrogate": "a\udc80",
}


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_invalid_collection_names(filled: kvlite.Store, name: Any) -> None:
    for action in (
        lambda: filled.collection(name),
        lambda: filled.dict(name),
        lambda: filled.drop_collection(name),
        lambda: filled.collection(name, serializer="pickle"),
    ):
        exc = expect(errors.InvalidCollectionName, filled, action)
        assert isinstance(exc, ValueError)
    assert filled.collections() == ["docs", "pick"]


def test_longest_collection_name_works(filled: kvlite.Store) -> None:
    name = "\U0001F600" * MAX_COLLECTION_NAME
    filled.collection(name).put("k", 1)
    assert filled.collections()[-1] == name
    assert filled.collection(name).get("k") == 1


def test_bad_open_arguments(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with pytest.raises(errors.UnknownSerializer):
        kvlite.open(path, serializer="no-such-serializer")
    with pytest.raises(ValueError):
        kvlite.open(path, durability="sometimes")
    for timeout in (-1, float("nan"), float("inf"), "5"):
        with pytest.raises(ValueError):
            kvlite.open(path, timeout=timeout)
    with pytest.raises(errors.KvliteError):
        kvlite.open(tmp_path / "no-such-folder" / "s.db")
    with pytest.raises(errors.KvliteError):
        kvlite.open(tmp_path)  # a directory
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# -- files that are not (good) kvlite stores ---------------------------------------------


def make_store_file(path: Path, entries: int = 3000) -> dict[str, list[tuple[Any, Any]]]:
    """A closed, checkpointed kvlite file with several pages per collection; returns its contents."""
    with kvlite.open(path) as store:
        store.collection("docs").put_many((f"k{i}", {"i": i, "s": "v" * (i % 200)}) for i in range(entries))
        store.collection("more").put_many((i, [i, str(i)]) for i in range(entries // 3))
    assert not Path(f"{path}-wal").exists()
    return read_everything(path)


def read_everything(path: Path, *, consistent: bool = True, **kwargs: Any) -> dict[str, list[tuple[Any, Any]]]:
    """Open ``path`` and read every entry of every collection (items, reversed keys, count, gets).

    ``consistent``: also assert that those reads agree (not for randomly
    damaged files, where an index and its table may disagree silently).
    """
    with kvlite.open(path, **kwargs) as store:
        out = {}
        for name in store.collections():
            coll = store.collection(name)
            items = list(coll.items())
            backwards = list(coll.keys(reverse=True))
            count = coll.count()
            got = [coll.get(k) for k, _ in items[:50]]
            if consistent:
                assert backwards == [k for k, _ in reversed(items)]
                assert count == len(items)
                assert got == [v for _, v in items[:50]]
            out[name] = items
        return out


NOT_SQLITE = {
    "text": b"hello, this is my diary\n" * 10,
    "one byte": b"h",
    "short": b"SQLite",
    "random": bytes(range(256)) * 64,
    "sqlite magic then garbage": b"SQLite format 3\x00" + b"\xff" * 4080,
    "zip header": b"PK\x03\x04" + b"\x00" * 200,
}


@pytest.mark.parametrize("content", list(NOT_SQLITE.values()), ids=list(NOT_SQLITE))
@pytest.mark.parametrize("readonly", [False, True])
def test_a_file_that_is_not_sqlite_is_refused_and_untouched(tmp_path: Path, content: bytes,
                                                             readonly: bool) -> None:
    path = tmp_path / "not.db"
    path.write_bytes(content)
    with pytest.raises(errors.CorruptStore):
        kvlite.open(path, readonly=readonly)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not.db"]


def test_an_sqlite_file_of_another_application_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(errors.CorruptStore, match="not a kvlite store"):
        kvlite.open(path)
    assert path.read_bytes() == before


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    """Zero bytes is SQLite's empty database: kvlite adopts it (nothing can be lost)."""
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with kvlite.open(path) as store:
        store.collection("c").put("k", 1)
    assert read_everything(path) == {"c": [("k", 1)]}


def outcome(path: Path, original: dict[str, Any]) -> str:
    """'CorruptStore' (at open or on read), 'same' (the damage hit nothing kvlite reads) or 'changed'."""
    try:
        got = read_everything(path)
    except errors.CorruptStore:
        return "CorruptStore"
    return "same" if got == original else "changed"


def test_truncated_files_raise_corrupt_store(tmp_path: Path) -> None:
    base = tmp_path / "base.db"
    original = make_store_file(base)
    data = base.read_bytes()
    page = 4096
    assert len(data) > 20 * page
    results = {}
    for size in (2, 50, 99, 100, 101, page - 1, page, page + 1, 3 * page, len(data) // 2,
                 len(data) - page, len(data) - 1):
        copy = tmp_path / f"trunc-{size}.db"
        copy.write_bytes(data[:size])
        results[size] = outcome(copy, original)
    # Cutting only the very last byte may hit an unused byte: then nothing is lost.
    assert results.pop(len(data) - 1) in ("CorruptStore", "same")
    assert set(results.values()) == {"CorruptStore"}, results


def overwrite_pages(data: bytes, pages: list[int], filler: Callable[[int], bytes], page: int = 4096) -> bytes:
    out = bytearray(data)
    for number in pages:  # 1-based page numbers, as SQLite counts
        out[(number - 1) * page:number * page] = filler(number)
    return bytes(out)


def pages_of(path: Path) -> dict[str, list[int]]:
    """Page numbers of each table and index, from SQLite's dbstat."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        out: dict[str, list[int]] = {}
        for name, page in conn.execute("SELECT name, pageno FROM dbstat ORDER BY pageno"):
            out.setdefault(name, []).append(page)
        return out
    finally:
        conn.close()


@pytest.mark.parametrize("filler", [
    lambda n: bytes([0xA5]) * 4096,
    lambda n: bytes((n * 31 + i * 7) % 256 for i in range(4096)),
    lambda n: b"\x0d" + b"\xff" * 4095,  # claims to be a table leaf page, with nonsense cell counts
], ids=["constant", "pattern", "leaf-header"])
def test_overwritten_pages_raise_corrupt_store(tmp_path: Path, filler: Callable[[int], bytes]) -> None:
    """Damage to any page kvlite reads (schema, registry, a collection's table or key index) is reported.

    (Pages kvlite never reads, such as ``kvlite_meta``'s, are only checked by
    ``PRAGMA integrity_check``; see docs/limits.md.)
    """
    base = tmp_path / "base.db"
    original = make_store_file(base)
    data = base.read_bytes()
    pages = pages_of(base)
    docs, more = pages["kv_1"], pages["kv_2"]
    targets = {
        "schema (page 1)": [1],
        "registry": pages["kvlite_collections"],
        "registry name index": pages["sqlite_autoindex_kvlite_collections_1"],
        "docs root": docs[:1],
        "docs first leaf": docs[1:2],
        "docs middle leaf": [docs[len(docs) // 2]],
        "docs last leaf": docs[-1:],
        "docs key index": pages["sqlite_autoindex_kv_1_1"][-1:],
        "more, every page": more,
        "every 7th page": list(range(5, len(data) // 4096, 7)),
    }
    assert len(docs) > 10
    results = {}
    for label, numbers in targets.items():
        copy = tmp_path / f"{label}.db"
        copy.write_bytes(overwrite_pages(data, numbers, filler))
        results[label] = outcome(copy, original)
    assert set(results.values()) == {"CorruptStore"}, results


class FuzzBase:
    """A small kvlite file's bytes and contents (with a short repr for hypothesis' reports)."""

    def __init__(self, data: bytes, original: dict[str, Any]) -> None:
        self.data, self.original = data, original

    def __repr__(self) -> str:
        return f"<kvlite file of {len(self.data)} bytes>"


@pytest.fixture(scope="module")
def fuzz_base(tmp_path_factory: pytest.TempPathFactory) -> FuzzBase:
    path = tmp_path_factory.mktemp("fuzz") / "base.db"
    original = make_store_file(path, entries=600)
    return FuzzBase(path.read_bytes(), original)


FUZZ_EXAMPLES = int(os.environ.get("KVLITE_FUZZ_EXAMPLES", "150"))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(
    # Half the flips land in the first pages: header, schema, registry, the first tables' roots.
    st.one_of(st.integers(0, 12 * 4096), st.integers(0, 1 << 30)), st.integers(1, 255)), min_size=1, max_size=40))
def test_flipped_bytes_never_escape_as_raw_errors(tmp_path_factory: pytest.TempPathFactory,
                                                  fuzz_base: FuzzBase, flips: list[tuple[int, int]]) -> None:
    """Random damage may go unnoticed (SQLite keeps no checksums) or raise a kvlite error; nothing else.

    Allowed: ``CorruptStore`` (structure damaged), ``SerializationError`` (a
    stored value no longer decodes), ``SerializerMismatch`` /
    ``UnknownSerializer`` / ``InvalidCollectionName`` (the registry row was
    hit), ``IncompatibleVersion`` (the schema version was hit).  Never a raw apsw error, a ``UnicodeDecodeError`` or a crash.
    """
    damaged = bytearray(fuzz_base.data)
    for offset, xor in flips:
        damaged[offset % len(damaged)] ^= xor
    path = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())) / "fuzz.db"
    path.write_bytes(bytes(damaged))
    try:
        read_everything(path, consistent=False)
    except (errors.CorruptStore, errors.IncompatibleVersion, errors.SerializationError,
            errors.SerializerMismatch, errors.UnknownSerializer, errors.InvalidCollectionName):
        pass
    finally:
        shutil.rmtree(path.parent)


def test_a_newer_schema_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    original = make_store_file(path, entries=50)
    conn = apsw.Connection(str(path))
    conn.execute(f"PRAGMA user_version = {migrate.latest_version() + 1}")
    conn.close()
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(errors.IncompatibleVersion, match="upgrade kvlite"):
            kvlite.open(path, readonly=readonly)
    assert path.read_bytes() == before
    # Back at a known version, nothing was lost.
    conn = apsw.Connection(str(path))
    conn.execute(f"PRAGMA user_version = {migrate.latest_version()}")
    conn.close()
    assert read_everything(path) == original


# -- read-only stores, files and directories ---------------------------------------------


def test_readonly_store_refuses_every_write(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    original = make_store_file(path, entries=30)
    before = path.read_bytes()
    with kvlite.open(path, readonly=True) as store:
        docs = store.collection("docs")
        view = docs.dict()
        writes: dict[str, Callable[[], Any]] = {
            "put": lambda: docs.put("k1", 0),
            "put new": lambda: docs.put("brand new", 0),
            "put_many": lambda: docs.put_many({"k1": 0}),
            "delete": lambda: docs.delete("k1"),
            "delete missing": lambda: docs.delete("missing"),
            "delete_many": lambda: docs.delete_many(["k1"]),
            "pop": lambda: docs.pop("k1"),
            "popitem": lambda: docs.popitem(),
            "setdefault": lambda: docs.setdefault("new", 1),
            "clear": lambda: docs.clear(),
            "purge": lambda: docs.purge_expired(),
            "store purge": lambda: store.purge_expired(),
            "transaction": lambda: store.transaction().__enter__(),
            "new collection": lambda: store.collection("brand new"),
            "drop": lambda: store.drop_collection("docs"),
            "setitem": lambda: view.__setitem__("k1", 0),
            "delitem": lambda: view.__delitem__("k1"),
            "update": lambda: view.update({"k1": 0}),
        }
        for label, action in writes.items():
            try:
                action()
            except errors.ReadOnlyError:
                continue
            raise AssertionError(f"{label} did not raise ReadOnlyError")
        assert list(docs.items()) == original["docs"]
    assert path.read_bytes() == before
    assert read_everything(path) == original


def test_readonly_open_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(errors.ReadOnlyError):
        kvlite.open(tmp_path / "missing.db", readonly=True)
    assert list(tmp_path.iterdir()) == []


LAYOUTS = ["read-only directory", "read-only file", "read-only directory, unsaved WAL"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("layout", LAYOUTS)
def test_readonly_file_or_directory(layout: str) -> None:
    """Permissions are honoured: run in a child that is not root (it drops to uid 65534 when it is).

    In a read-only directory a WAL store is read as an immutable snapshot, unless
    a ``-wal`` file there holds commits the main file lacks: then reading it
    would silently miss them, so it is refused.
    """
    if os.geteuid() == 0 and not hasattr(os, "setuid"):
        pytest.skip("cannot drop root privileges here")
    base = Path(tempfile.mkdtemp(prefix="kvlite-ro-"))  # world-traversable, unlike pytest's tmp dirs
    folder = base / "store"
    folder.mkdir()
    path = folder / "s.db"
    try:
        original = make_store_file(path, entries=20)
        if layout.endswith("unsaved WAL"):
            # Copy the file and its WAL while a writer has commits only in the WAL.
            work = base / "s.db"
            shutil.copy(path, work)
            with kvlite.open(work) as writer:
                writer.engine.connection().execute("PRAGMA wal_autocheckpoint = 0")
                writer.collection("docs").put("only in the wal", 1)
                shutil.copy(work, path)
                shutil.copy(f"{work}-wal", f"{path}-wal")
                os.chmod(f"{path}-wal", 0o444)
        os.chmod(base, 0o755)
        os.chmod(path, 0o444)
        os.chmod(folder, 0o777 if layout == "read-only file" else 0o555)
        files_before = {p.name: p.read_bytes() for p in folder.iterdir()}
        proc = subprocess.run([sys.executable, str(Path(hp.__file__).resolve()), "readonly-check",
                               json.dumps({"path": str(path)})], capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["writable"] == ["ok", False]
        if layout.endswith("unsaved WAL"):
            assert report["read readonly"][0] == "kvlite.errors.ReadOnlyError", report
            assert "holds commits" in report["read readonly"][1]
        else:
            assert report["read readonly"][0] == "ok", report
            assert report["read readonly"][1] == {n: [list(kv) for kv in items] for n, items in original.items()}
        for label in ("write readonly", "new collection readonly", "write readwrite"):
            assert report[label][0] == "kvlite.errors.ReadOnlyError", (label, report[label])
        if layout != "read-only file":
            assert report["create in readonly dir"][0] == "kvlite.errors.ReadOnlyError", report
            assert {p.name: p.read_bytes() for p in folder.iterdir()} == files_before
        assert path.read_bytes() == files_before["s.db"]
    finally:
        for p in (base, folder):
            os.chmod(p, stat.S_IRWXU)
        shutil.rmtree(base)


# -- a full disk ----------------------------------------------------------------------------


def test_full_disk_raises_store_full_and_keeps_committed_data(open_store: Callable[..., kvlite.Store]) -> None:
    store = open_store()
    docs = store.collection("docs")
    docs.put_many((f"k{i}", "x" * 1000) for i in range(200))
    committed = list(docs.items())
    conn = store.engine.connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 3}")

    written = 0
    with pytest.raises(errors.StoreFull):
        while written < 1000:
            docs.put(f"more{written}", "y" * 3000)
            written += 1
    assert 0 < written < 1000
    before = snapshot(store)
    expect(errors.StoreFull, store, lambda: docs.put_many((f"batch{i}", "z" * 3000) for i in range(20)))
    expect(errors.StoreFull, store, lambda: docs.put("k0", "w" * 50_000))

    def transaction() -> None:
        with store.transaction():
            docs.put("tx small", 1)
            docs.put("tx big", "t" * 50_000)

    expect(errors.StoreFull, store, transaction)

    def caught_inside(nested: bool) -> None:
        """The block's code catches StoreFull and goes on: SQLite has rolled the whole
        transaction back, so the later writes must not commit one by one."""
        with store.transaction():
            docs.put("tx before", 1)
            try:
                if nested:
                    with store.transaction():
                        docs.put_many((f"tx big{i}", "t" * 3000) for i in range(20))
                else:
                    docs.put_many((f"tx big{i}", "t" * 3000) for i in range(20))
            except errors.StoreFull:
                pass
            with pytest.raises(errors.TransactionLost):
                docs.put("tx after", 2)
            with pytest.raises(errors.TransactionLost):
                docs.put_many({"tx after many": 3})
            docs.get("tx before")  # reads still work

    expect(errors.TransactionLost, store, lambda: caught_inside(False))
    expect(errors.TransactionLost, store, lambda: caught_inside(True))
    assert snapshot(store) == before
    assert list(docs.items())[:200] == committed
    assert [docs.get(f"more{i}") for i in range(written)] == ["y" * 3000] * written

    # Deleting frees pages for reuse...
    assert docs.delete_many(f"k{i}" for i in range(50)) == 50
    docs.put("after delete", "a" * 3000)
    assert docs.get("after delete") == "a" * 3000
    # ... and raising the limit makes room.
    conn.execute("PRAGMA max_page_count = 1000000")
    docs.put_many((f"batch{i}", "z" * 3000) for i in range(20))
    assert docs.count() == 150 + written + 1 + 20
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
