"""Regression tests for the hardening issue: whole-store reads under concurrent drops, hostile
files that must give kvlite errors, and the small promises (reprs, counts, folders).

The concurrency tests run a real second process that drops and re-creates collections in a
loop while this process reads; each counts the reads that failed and asserts none did.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import kvlite
from kvlite import errors

# -- whole-store reads while another process drops and re-creates collections ----------------

#: The child: drops and re-creates t0..t3 (each with a few entries) until it is told to stop.
_CHURN = """
import sys, kvlite
path, stop = sys.argv[1], sys.argv[2]
import os
with kvlite.open(path) as db:
    n = 0
    while not os.path.exists(stop):
        name = f"t{n % 4}"
        db.drop_collection(name)
        db.collection(name).put_many({f"k{i}": {"n": n, "i": i} for i in range(5)})
        n += 1
"""


@pytest.fixture
def churned(tmp_path: Path) -> Iterator[Path]:
    """A store whose collections t0..t3 another process keeps dropping and re-creating."""
    path = tmp_path / "churn.db"
    with kvlite.open(path) as db:
        for i in range(4):
            db.collection(f"t{i}").put("k", 1)
        db.collection("steady").put_many({f"s{i}": i for i in range(10)})
    stop = tmp_path / "stop"
    child = subprocess.Popen([sys.executable, "-c", _CHURN, str(path), str(stop)])
    try:
        yield path
    finally:
        stop.touch()
        assert child.wait(timeout=60) == 0


def _failures(call: Any, seconds: float) -> tuple[int, list[str]]:
    """Call ``call()`` for ``seconds``; ``(calls, the errors it raised)``."""
    calls, failed = 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        calls += 1
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - counted and shown
            failed.append(f"{type(exc).__name__}: {exc}")
    return calls, failed


def test_collection_reads_its_registry_row_and_table_in_one_snapshot(churned: Path) -> None:
    with kvlite.open(churned) as db:
        def call() -> None:
            for i in range(4):
                db.collection(f"t{i}")  # made again when it is missing: never an error

        calls, failed = _failures(call, 3.0)
    assert calls > 50 and failed == [], f"{len(failed)} of {calls}: {failed[:3]}"


def test_store_stats_is_one_snapshot(churned: Path) -> None:
    with kvlite.open(churned) as db:
        def call() -> None:
            stats = db.stats()
            assert stats["collections"]["steady"]["rows"] == 10
            assert set(stats["collections"]) <= {"t0", "t1", "t2", "t3", "steady"}

        calls, failed = _failures(call, 3.0)
    assert calls > 50 and failed == [], f"{len(failed)} of {calls}: {failed[:3]}"


def test_copy_reads_the_source_in_one_snapshot(churned: Path) -> None:
    def call() -> None:
        with kvlite.open("memory://") as target:
            counts = kvlite.copy(str(churned), target)
            assert counts["steady"] == 10
            for name, count in counts.items():
                assert count == len(target.collection(name))

    calls, failed = _failures(call, 3.0)
    assert calls > 20 and failed == [], f"{len(failed)} of {calls}: {failed[:3]}"


def test_a_snapshot_sees_one_state_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "snap.db"
    with kvlite.open(path) as db, kvlite.open(path) as other:
        db.collection("a").put("k", 1)
        with db.snapshot():
            assert db.collection("a").get("k") == 1
            other.collection("a").put("k", 2)
            other.collection("b").put("k", 3)
            assert db.collection("a").get("k") == 1
            assert db.collections() == ["a"]
            for write in (lambda: db.collection("a").put("k", 4), lambda: db.collection("a").put_many({"k": 4}),
                          lambda: db.collection("new"), lambda: db.drop_collection("a")):
                with pytest.raises(errors.ReadOnlyError):
                    write()
        assert db.collection("a").get("k") == 2
        assert db.collections() == ["a", "b"]


# -- hostile files: only kvlite errors, never TypeError / ValueError / AttributeError ---------


def _make(path: Path) -> None:
    with kvlite.open(path) as db:
        db.collection("c").put_many({"a": {"x": 1}, "b": {"x": 2}})
        db.collection("d").put("k", "v")


def _loosen_table(conn: apsw.Connection, table: str) -> None:
    """Rebuild ``table`` without STRICT (and without column types), keeping its rows."""
    conn.execute(f"""
        ALTER TABLE {table} RENAME TO old;
        CREATE TABLE {table} (id INTEGER PRIMARY KEY, key UNIQUE NOT NULL, key_type, value NOT NULL,
                              created_at, updated_at, expires_at);
        INSERT INTO {table} SELECT * FROM old;
        DROP TABLE old;""")


@pytest.mark.parametrize("damage", ["expires_at = 'soon'", "created_at = x'00'", "key_type = 'x'"])
def test_a_collection_table_that_is_not_strict_is_corrupt(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "loose.db"
    _make(path)
    conn = apsw.Connection(str(path))
    _loosen_table(conn, "kv_1")
    conn.execute(f"UPDATE kv_1 SET {damage}")
    conn.close()
    with kvlite.open(path) as db:
        with pytest.raises(errors.CorruptStore, match="'c'"):
            db.collection("c")
        assert db.collection("d").get("k") == "v"


@pytest.mark.parametrize("stored, key_type", [("text", 2), ("text", 1), (5, 1), (1.5, 2), (5, 7), (b"x", 1)])
def test_a_key_kvlite_never_writes_is_corrupt(tmp_path: Path, stored: Any, key_type: int) -> None:
    path = tmp_path / "keys.db"
    _make(path)
    conn = apsw.Connection(str(path))
    conn.execute("UPDATE kv_1 SET key = ?, key_type = ? WHERE key = 'b'", (stored, key_type))
    conn.close()
    with kvlite.open(path) as db:
        c = db.collection("c")
        for read in (lambda: list(c.keys()), lambda: list(c.items()), lambda: dict(c.dict()),
                     lambda: list(c.keys(reverse=True)), lambda: list(c.find("$.*")),
                     lambda: list(c.find("$[?(@.x >= 1)]")), c.popitem):
            with pytest.raises(errors.CorruptStore, match="key type"):
                read()
        assert c.get("a") == {"x": 1} and len(c) == 2  # popitem() took nothing


@pytest.mark.parametrize("name", ["42", "x'6869'", "NULL", "3.5"])
def test_a_registry_with_names_that_are_not_text_is_corrupt(tmp_path: Path, name: str) -> None:
    path = tmp_path / "names.db"
    _make(path)
    conn = apsw.Connection(str(path))
    conn.execute("""
        ALTER TABLE kvlite_collections RENAME TO old_registry;
        CREATE TABLE kvlite_collections (id INTEGER PRIMARY KEY AUTOINCREMENT, name, table_name TEXT,
                                         serializer TEXT, created_at REAL, options TEXT);
        INSERT INTO kvlite_collections SELECT * FROM old_registry;
        DROP TABLE old_registry;""")
    conn.execute(f"UPDATE kvlite_collections SET name = {name} WHERE id = 1")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(errors.CorruptStore, match="registry"):
        kvlite.open(path)
    with pytest.raises(errors.CorruptStore, match="registry"):
        kvlite.copy(str(path), "memory://")
    assert path.read_bytes() == before


# -- small promises --------------------------------------------------------------------------


def test_put_many_counts_its_own_writes_only(store: kvlite.Store) -> None:
    c, log = store.collection("c"), store.collection("log")

    def pairs() -> Iterator[tuple[str, int]]:
        for i in range(5):
            log.put(f"fed {i}", i)  # writes made by the iterable feeding put_many
            yield f"k{i}", i

    assert c.put_many(pairs()) == 5
    c.put("k0", "existing")
    assert c.put_many(pairs()) == 5  # the first pair updates an existing key (the upsert path)
    assert len(c) == 5 and len(log) == 5


@pytest.mark.parametrize("target", ["file", "memory://"])
def test_repr_of_a_dict_view_never_raises(tmp_path: Path, target: str) -> None:
    db = kvlite.open(tmp_path / "r.db" if target == "file" else target)
    view = db.dict("c")
    view["a"] = 1
    assert repr(view) == "{'a': 1}"
    db.close()
    for shown in (repr(view), str(view)):
        assert "StoreClosed" in shown and "'c'" in shown
    assert "closed" in repr(db)


def test_opening_a_folder_as_a_file_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(errors.KvliteError, match="is a folder.*layout='per-collection'") as raised:
        kvlite.open(tmp_path)
    assert not isinstance(raised.value, errors.ReadOnlyError)
    with pytest.raises(errors.KvliteError, match="is a folder"):
        kvlite.open(tmp_path, readonly=True)
