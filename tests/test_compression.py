"""Compressed serializers: ``"json+zlib"``, ``"pickle+zlib"``, ``"json+zstd"``, ...

A compressed serializer is the inner serializer's output run through a codec,
recorded in the file under its whole name like any serializer.  Values are
stored as BLOBs, so queries run in Python (no push-down, which ``explain``
says) and must give exactly the answers the same data gives uncompressed.
"""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from pathlib import Path
from typing import Any, Callable

import apsw
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvlite
from kvlite.errors import (
    CorruptStore,
    KvliteError,
    NotSupported,
    SerializationError,
    SerializerMismatch,
    UnknownSerializer,
)


def _zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


needs_zstd = pytest.mark.skipif(not _zstd_available(), reason="needs zstandard (pip install zstandard)")

JSON_VALUES = [{"name": "Ada", "tags": ["x", "y"], "n": 1.5}, [1, 2, 3], "text é☃", 42, None, True,
               {"big": "kvlite " * 2000}]
PICKLE_VALUES = JSON_VALUES + [(1, "tuple"), {1, 2, 3}, b"\x00\xff" * 100, frozenset({"a"}),
                               {("tuple", "key"): {1: 2}}]


@pytest.mark.parametrize("name, values", [
    ("json+zlib", JSON_VALUES),
    ("pickle+zlib", PICKLE_VALUES),
    pytest.param("json+zstd", JSON_VALUES, marks=needs_zstd),
    pytest.param("pickle+zstd", PICKLE_VALUES, marks=needs_zstd),
])
def test_round_trip(open_store: Callable[..., kvlite.Store], name: str, values: list[Any]) -> None:
    store = open_store()
    coll = store.collection("c", serializer=name)
    assert coll.serializer.name == name
    coll.put_many(enumerate(values))
    assert coll.get_many(range(len(values))) == values
    assert list(coll.values()) == values
    assert coll.pop(0) == values[0]
    store.close()
    again = open_store(serializer=name)  # a store-wide default works too
    assert list(again.collection("c").values()) == values[1:]


def _raw(path: Path, collection: str) -> list[tuple[str, Any]]:
    conn = apsw.Connection(str(path))
    try:
        table, serializer = conn.execute(
            "SELECT table_name, serializer FROM kvlite_collections WHERE name = ?", (collection,)).fetchone()
        rows = conn.execute(f'SELECT typeof(value), value FROM "{table}" ORDER BY id').fetchall()
    finally:
        conn.close()
    return [(serializer, row) for row in rows]


def test_values_are_really_compressed(open_store: Callable[..., kvlite.Store], db_path: Path) -> None:
    store = open_store()
    doc = {"big": "kvlite " * 2000}
    store.collection("z", serializer="json+zlib").put("k", doc)
    store.collection("p", serializer="pickle+zlib").put("k", doc)
    store.collection("plain").put("k", doc)
    [(serializer, (kind, blob))] = _raw(db_path, "z")
    assert (serializer, kind) == ("json+zlib", "blob")
    # One marker byte (b"t": the inner serializer gave text), then its UTF-8 bytes, compressed.
    assert blob[:1] == b"t" and zlib.decompress(blob[1:]) == orjson.dumps(doc)
    assert len(blob) < len(orjson.dumps(doc)) // 10
    [(serializer, (kind, blob))] = _raw(db_path, "p")
    assert serializer == "pickle+zlib" and blob[:1] == b"b" and pickle.loads(zlib.decompress(blob[1:])) == doc
    [(serializer, (kind, _))] = _raw(db_path, "plain")
    assert (serializer, kind) == ("json", "text")


@needs_zstd
def test_zstd_frames(open_store: Callable[..., kvlite.Store], db_path: Path) -> None:
    import zstandard

    doc = {"big": "zstd " * 2000}
    open_store().collection("z", serializer="json+zstd").put("k", doc)
    [(serializer, (kind, blob))] = _raw(db_path, "z")
    assert (serializer, kind) == ("json+zstd", "blob")
    assert blob[:1] == b"t" and zstandard.ZstdDecompressor().decompress(blob[1:]) == orjson.dumps(doc)


@pytest.mark.parametrize("other", ["json", "pickle", "json+zstd", "pickle+zlib"])
def test_the_codec_is_recorded_in_the_file(open_store: Callable[..., kvlite.Store], other: str) -> None:
    if "zstd" in other and not _zstd_available():
        pytest.skip("needs zstandard")
    store = open_store()
    store.collection("c", serializer="json+zlib").put("k", {"v": 1})
    store.close()
    again = open_store()
    with pytest.raises(SerializerMismatch) as info:
        again.collection("c", serializer=other)
    assert (info.value.stored, info.value.requested) == ("json+zlib", other)
    with pytest.raises(SerializerMismatch):
        again.collection("c")  # the store's default (json) is not what the file says
    assert again.collection("c", serializer="json+zlib").get("k") == {"v": 1}


@pytest.mark.parametrize("name", ["json+lz4", "json+", "pickle+gzip", "nope+zlib", "json+zlib+nope"])
def test_unknown_codec_or_base(store: kvlite.Store, name: str) -> None:
    with pytest.raises(UnknownSerializer):
        store.collection("c", serializer=name)
    with pytest.raises(ValueError):  # UnknownSerializer is a ValueError
        kvlite.open(":memory:", serializer=name)
    assert "c" not in store.collections()


def test_explain_says_no_push_down(store: kvlite.Store) -> None:
    packed = store.collection("packed", serializer="json+zlib")
    plain = store.collection("plain")
    for coll in (packed, plain):
        coll.put_many({"a": {"age": 10}, "b": {"age": 40}})
    path = "$[?(@.age > 30)]"
    packed_plan, plain_plan = packed.explain(path), plain.explain(path)
    assert plain_plan["steps"][0]["pushdown"] and not plain_plan["notes"]
    assert packed_plan["steps"][0]["pushdown"] == []
    assert any("json+zlib" in note and "push-down" in note for note in packed_plan["notes"])
    assert "json_extract" not in packed_plan["steps"][0]["sql"]
    assert list(packed.find(path)) == list(plain.find(path)) == [("b", {"age": 40})]
    with pytest.raises(NotSupported):
        packed.create_index("$.age")
    with pytest.raises(NotSupported):
        list(packed.find("$[*]", order_by="$.age"))


def test_corrupt_compressed_data_is_a_serialization_error(open_store: Callable[..., kvlite.Store],
                                                          db_path: Path) -> None:
    store = open_store()
    coll = store.collection("c", serializer="json+zlib")
    coll.put("k", {"v": 1})
    conn = apsw.Connection(str(db_path))
    table = conn.execute("SELECT table_name FROM kvlite_collections WHERE name = 'c'").fetchone()[0]
    conn.execute(f'UPDATE "{table}" SET value = x\'00112233\'')
    conn.close()
    with pytest.raises(SerializationError):
        coll.get("k")


def test_ttl_and_typed_collections_work_compressed(store: kvlite.Store, clock: Any) -> None:
    import dataclasses

    @dataclasses.dataclass
    class Doc:
        title: str
        words: int

    docs = store.collection("docs", serializer="json+zlib", model=Doc)
    docs.put("d1", Doc("one", 100), ttl=10)
    docs.put("d2", {"title": "two", "words": 5})
    assert docs.ttl("d1") == 10
    assert list(docs.find("$[?(@.words > 10)]")) == [("d1", Doc("one", 100))]
    clock.advance(10)
    assert docs.get("d1") is None
    assert list(docs.find("$[?(@.words > 0)]")) == [("d2", Doc("two", 5))]


# -- the decompression bound ------------------------------------------------------------------


def test_the_bound_is_the_largest_value_sqlite_keeps() -> None:
    """Compressed values are bounded like uncompressed ones: by SQLite's length limit for one
    value, which kvlite does not change (the bundled SQLite's default, SQLITE_MAX_LENGTH)."""
    conn = apsw.Connection(":memory:")
    try:
        assert kvlite.serializers.MAX_DECOMPRESSED_SIZE == conn.limit(apsw.SQLITE_LIMIT_LENGTH) == 1_000_000_000
    finally:
        conn.close()


def _json_text_bomb(codec: str, size: int, *, declared: int | None = None) -> bytes:
    """A stored value (marker byte, then compressed data) whose JSON text, a string of ``size``
    bytes, is compressed without ever being built whole.  ``declared``: a zstd frame header
    that says the content is that long (a lie)."""
    piece, left = b"a" * (1 << 20), size - 2
    if codec == "zlib":
        packer = zlib.compressobj(9)
        parts = [packer.compress(b'"')]
        while left:
            parts.append(packer.compress(piece[:left]))
            left -= min(left, len(piece))
        parts.append(packer.compress(b'"') + packer.flush())
        return b"t" + b"".join(parts)
    import zstandard

    zpacker = zstandard.ZstdCompressor(level=3).compressobj(size=size)
    parts = [zpacker.compress(b'"')]
    while left:
        parts.append(zpacker.compress(piece[:left]))
        left -= min(left, len(piece))
    frame = b"".join(parts) + zpacker.compress(b'"') + zpacker.flush()
    if declared is not None:  # rewrite the frame header's content size (RFC 8878, 3.1.1.1)
        descriptor = frame[4]
        assert descriptor >> 6 == 2, "a 4-byte content size"
        at = 5 + (0 if descriptor & 0x20 else 1) + (0, 1, 2, 4)[descriptor & 3]  # window byte, dictionary id
        assert struct.unpack("<I", frame[at:at + 4]) == (size,)
        frame = frame[:at] + struct.pack("<I", declared) + frame[at + 4:]
    return b"t" + frame


def _store_raw(path: Path, collection: str, key: str, value: bytes) -> None:
    """Overwrite ``key``'s stored value in the file, as a hostile writer would."""
    conn = apsw.Connection(str(path))
    try:
        table = conn.execute("SELECT table_name FROM kvlite_collections WHERE name = ?", (collection,)).fetchone()[0]
        conn.execute(f'UPDATE "{table}" SET value = ? WHERE key = ?', (value, key))
    finally:
        conn.close()


BOMB_LIMIT = 4_000_000
BOMB_SIZE = 64_000_000


@pytest.mark.parametrize("codec, declared", [
    ("zlib", None),
    pytest.param("zstd", None, marks=needs_zstd),  # the frame says how large: refused before decoding
    pytest.param("zstd", 1_000_000, marks=needs_zstd),  # the frame lies: decoding stops at its size
], ids=["zlib", "zstd", "zstd-header-says-less"])
def test_a_compression_bomb_is_refused_without_being_decompressed(
        open_store: Callable[..., kvlite.Store], db_path: Path, monkeypatch: pytest.MonkeyPatch,
        codec: str, declared: int | None) -> None:
    """A hostile file's value that expands beyond the bound raises CorruptStore, and reading it
    takes about the bound in memory at most, not what the value would expand to."""
    monkeypatch.setattr(kvlite.serializers, "MAX_DECOMPRESSED_SIZE", BOMB_LIMIT, raising=False)
    coll = open_store().collection("c", serializer=f"json+{codec}")
    coll.put_many({"bomb": "placeholder", "fine": {"v": 1}})
    bomb = _json_text_bomb(codec, BOMB_SIZE, declared=declared)
    assert len(bomb) < BOMB_SIZE // 500
    _store_raw(db_path, "c", "bomb", bomb)
    if declared is None:  # the serializer itself says CorruptStore
        with pytest.raises(CorruptStore, match="MAX_DECOMPRESSED_SIZE"):
            coll.serializer.loads(bomb)
    reads: list[Callable[[], Any]] = [lambda: coll.get("bomb"), lambda: list(coll.items()),
                                      lambda: coll.get_many(["fine", "bomb"]), lambda: list(coll.find("$[?(@.v == 1)]"))]
    for read in reads:
        tracemalloc.start()
        try:
            with pytest.raises(KvliteError) as info:
                read()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert declared is not None or isinstance(info.value, CorruptStore), info.value
        assert peak < 3 * BOMB_LIMIT, f"{peak:,} bytes allocated to refuse the value"
    assert coll.get("fine") == {"v": 1}


@pytest.mark.parametrize("codec", ["zlib", pytest.param("zstd", marks=needs_zstd)])
def test_values_up_to_the_bound_are_written_and_read_and_no_larger(
        store: kvlite.Store, monkeypatch: pytest.MonkeyPatch, codec: str) -> None:
    """What a compressed collection accepts, it reads back: dumps() refuses more than the bound."""
    monkeypatch.setattr(kvlite.serializers, "MAX_DECOMPRESSED_SIZE", 100_000, raising=False)
    monkeypatch.setattr(kvlite.serializers, "_INFLATE_PIECE", 7_000, raising=False)  # many pieces
    coll = store.collection("c", serializer=f"json+{codec}")
    text = "".join(f"{i:x}" for i in range(30_000))[:100_000 - 2]  # its JSON is exactly the bound
    coll.put("max", text)
    assert coll.get("max") == text
    with pytest.raises(SerializationError, match="MAX_DECOMPRESSED_SIZE"):
        coll.put("max", text + "x")
    with pytest.raises(SerializationError):
        coll.put_many({"other": 1, "over": text + "x"})
    assert coll.get("max") == text and list(coll.keys()) == ["max"]


def test_inflating_in_pieces_keeps_zlib_decompress_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kvlite.serializers, "_INFLATE_PIECE", 1_000, raising=False)
    serializer = kvlite.serializers.get("pickle+zlib")
    value = [list(range(i)) for i in range(200)]
    blob = serializer.dumps(value)
    assert serializer.loads(blob) == value
    assert serializer.loads(blob + b"trailing bytes") == value  # ignored, as zlib.decompress does
    for cut in (1, 2, len(blob) // 2, len(blob) - 1):
        with pytest.raises(zlib.error):  # truncated: zlib.decompress's error
            serializer.loads(blob[:cut])


@needs_zstd
def test_zstd_collections_can_be_used_from_many_threads(tmp_path: Path) -> None:
    """python-zstandard contexts are not thread-safe: one shared by every thread crashed the
    process (segmentation fault or "double free") within a few hundred calls."""
    script = textwrap.dedent(f"""
        import os, threading, kvlite
        store = kvlite.open({str(tmp_path / "z.db")!r})
        coll = store.collection("c", serializer="pickle+zstd")
        values = [os.urandom(20_000) * 10 for _ in range(4)]
        def work(i):
            for n in range(200):
                coll.put(i, values[i])
                assert coll.get(i) == values[i]
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]


_DOCS = st.lists(
    st.fixed_dictionaries({"age": st.integers(0, 100), "name": st.sampled_from(["ada", "bob", "cy"])},
                          optional={"tags": st.lists(st.sampled_from(["x", "y", "z"]), max_size=3),
                                    "nested": st.fixed_dictionaries({"n": st.integers(-5, 5)})}),
    max_size=12)
_PATHS = ["$[?(@.age > 50)]", "$[?(@.name == 'bob')].age", "$[?@.age >= 10 && @.age < 60].name",
          "$[*].tags[*]", "$..n", "$[?(@.nested.n > 0)]", "$[?(@.tags)]", "$[1:3]", "$.*.tags[1:3]"]


@settings(max_examples=30, deadline=None)
@given(docs=_DOCS)
def test_queries_match_the_uncompressed_collection(docs: list[dict[str, Any]]) -> None:
    with kvlite.open(":memory:") as store:
        plain = store.collection("plain")
        packed = store.collection("packed", serializer="pickle+zlib")
        entries = {f"k{i}": doc for i, doc in enumerate(docs)}
        plain.put_many(entries)
        packed.put_many(entries)
        for path in _PATHS:
            assert list(packed.find(path)) == list(plain.find(path)), path
            assert packed.count(path) == plain.count(path)
