"""The public ``Store`` methods the command line is built on, instead of kvlite's internals:

* ``Store.existing_collection(name, decode=...)`` - an existing collection or ``None``, never
  created; with ``decode=False`` any recorded serializer, even one this process does not know,
  and no value is ever decoded (``keys``, ``delete``, ``collections``, ``stats``);
* ``Store.info()`` - the file's facts (``stats``);
* ``Store.vacuum()`` - compact the file (``vacuum``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import apsw
import pytest

import kvlite
from kvlite import errors, serializers
from kvlite.backends.sqlite import migrate

UNKNOWN = "test-store-api-unknown"


def _file_with_an_unknown_serializer(path: Path) -> None:
    """``path`` with a collection ``odd`` whose serializer (``UNKNOWN``) only another process knows."""
    script = textwrap.dedent(f"""
        import sys, kvlite

        class Odd(kvlite.Serializer):
            name = {UNKNOWN!r}
            def dumps(self, value): return repr(value)
            def loads(self, data): raise AssertionError("decoded")

        with kvlite.open(sys.argv[1]) as store:
            odd = store.collection("odd", serializer=Odd())
            odd.put("a", 1)
            odd.put(5, 2)
            odd.put("gone", 3, ttl=0.001)
    """)
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=120)


# -- existing_collection -----------------------------------------------------------------------------


def test_existing_collection_never_creates_one(tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("c").put("k", {"v": 1})
        assert store.existing_collection("nope") is None
        assert store.existing_collection("nope", decode=False) is None
        assert store.collections() == ["c"]
        found = store.existing_collection("c")
        assert isinstance(found, kvlite.Collection) and found.get("k") == {"v": 1}
        with pytest.raises(errors.InvalidCollectionName):
            store.existing_collection("")
    with kvlite.open(tmp_path / "s.db", readonly=True) as store:  # a read-only store can look too
        assert store.existing_collection("nope") is None
        coll = store.existing_collection("c")
        assert coll is not None and coll.get("k") == {"v": 1}


def test_existing_collection_opens_with_the_recorded_serializer(tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("b", serializer="jsonb").put("k", [1])
    with kvlite.open(tmp_path / "s.db", serializer="pickle") as store:  # another default: no mismatch
        coll = store.existing_collection("b")
        assert coll is not None and coll.serializer.name == "jsonb" and coll.get("k") == [1]


def test_existing_collection_without_decoding_reads_what_needs_no_decoding(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _file_with_an_unknown_serializer(path)
    with kvlite.open(path) as store:
        with pytest.raises(errors.UnknownSerializer):
            store.existing_collection("odd")  # decoding would need the serializer
        coll = store.existing_collection("odd", decode=False)
        assert coll is not None and coll.serializer.name == UNKNOWN
        assert len(coll) == 2 and list(coll.keys()) == ["a", 5] and "a" in coll
        assert coll.ttl("a") is None
        stats = coll.stats()
        assert (stats["rows"], stats["expired_pending"], stats["serializer"]) == (2, 1, UNKNOWN)
        with pytest.raises(errors.SerializationError):
            coll.get("a")
        with pytest.raises(errors.SerializationError):
            coll.put("b", 1)
        assert coll.delete(5) and list(coll.keys()) == ["a"]
        assert coll.purge_expired() == 1
        assert UNKNOWN not in serializers.names()  # the stand-in was not registered
        with pytest.raises(errors.SerializerMismatch):
            store.collection("odd")  # nor cached: collection() still never decodes it with another one
    with kvlite.open(path) as store:
        assert store.stats()["collections"]["odd"]["rows"] == 1


def test_existing_collection_without_decoding_never_unpickles(tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("p", serializer="pickle").put("k", {1, 2})
    with kvlite.open(tmp_path / "s.db") as store:
        coll = store.existing_collection("p", decode=False)
        assert coll is not None and list(coll.keys()) == ["k"]
        with pytest.raises(errors.SerializationError):
            coll.get("k")
        assert store.collection("p", serializer="pickle").get("k") == {1, 2}  # the cached one still decodes


def test_existing_collection_with_its_table_missing_is_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path) as store:
        store.collection("c").put("k", 1)
    conn = apsw.Connection(str(path))
    conn.execute("DROP TABLE kv_1")
    conn.close()
    with kvlite.open(path) as store:
        for decode in (True, False):
            with pytest.raises(errors.CorruptStore, match="kv_1") as caught:
                store.existing_collection("c", decode=decode)
            assert "damaged" in str(caught.value) and "dropped" not in str(caught.value)


def test_existing_collection_made_in_a_rolled_back_block_is_turned_away(tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.collection("new").put("k", 1)
            coll = store.existing_collection("new", decode=False)
            assert coll is not None and len(coll) == 1
            raise RuntimeError("roll back")
        assert store.existing_collection("new") is None
        store.collection("other").put("x", 1)  # may get the rolled-back table id
        with pytest.raises(errors.KvliteError):
            len(coll)


def test_existing_collection_reads_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path) as store, kvlite.open(path) as other:
        store.collection("c").put("k", 1)
        with store.snapshot():
            assert store.collections() == ["c"]  # SQLite takes the snapshot at the first read
            assert other.drop_collection("c")
            coll = store.existing_collection("c", decode=False)  # as it was when the snapshot began
            assert coll is not None and len(coll) == 1
        assert store.existing_collection("c") is None


# -- info ------------------------------------------------------------------------------------------


def test_info_gives_the_file_facts(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path) as store:
        store.collection("c").put("k", 1)
        info = store.info()
        assert set(info) == {"path", "size", "wal_size", "schema_version", "created_by", "page_size", "pages",
                             "free_pages", "journal_mode"}
        assert info["path"] == str(path)
        assert info["size"] == os.path.getsize(path) and info["wal_size"] == os.path.getsize(f"{path}-wal")
        assert info["schema_version"] == migrate.latest_version()
        assert info["created_by"] == kvlite.__version__
        assert info["page_size"] > 0 and info["pages"] > 0 and info["free_pages"] >= 0
        assert info["journal_mode"] == "wal"
        with store.snapshot():
            assert store.info()["schema_version"] == info["schema_version"]
    with kvlite.open(path, readonly=True) as store:
        assert store.info()["created_by"] == kvlite.__version__


def test_info_of_an_in_memory_store() -> None:
    with kvlite.open(":memory:") as store:
        info = store.info()
        assert (info["size"], info["wal_size"]) == (0, 0) and info["pages"] > 0
        assert info["schema_version"] == migrate.latest_version()


def test_info_of_a_file_without_kvlite_meta_says_it_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path) as store:
        store.collection("c").put("k", 1)
    conn = apsw.Connection(str(path))
    conn.execute("DROP TABLE kvlite_meta")
    conn.close()
    with kvlite.open(path, readonly=True) as store, pytest.raises(errors.CorruptStore) as caught:
        store.info()
    message = str(caught.value)
    assert "kvlite_meta" in message and "damaged" in message and "not a kvlite store" in message


# -- vacuum ----------------------------------------------------------------------------------------


def test_vacuum_gives_free_pages_back_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path) as store:
        coll = store.collection("c")
        coll.put_many((f"k{i}", {"n": i, "pad": "x" * 2000}) for i in range(300))
        coll.put("t", 1, ttl=3600)
        coll.create_index("$.n")
        coll.delete_many(f"k{i}" for i in range(1, 300))
        store.info()  # a read does not hold the file open against the vacuum
        before = store.info()
        store.vacuum()
        after = store.info()
        assert after["pages"] < before["pages"] and after["free_pages"] == 0 and after["wal_size"] == 0
        assert coll.get("k0") == {"n": 0, "pad": "x" * 2000} and list(coll.keys()) == ["k0", "t"]
        ttl = coll.ttl("t")
        assert ttl is not None and 3500 < ttl <= 3600
        assert coll.indexes() == ["$.n"]
    with kvlite.open(":memory:") as memory:
        memory.collection("c").put("k", 1)
        memory.vacuum()
        assert memory.collection("c").get("k") == 1


def test_vacuum_is_refused_where_it_cannot_run(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path) as store:
        store.collection("c").put("k", 1)
        with store.transaction():
            with pytest.raises(errors.NotSupported):
                store.vacuum()
            store.collection("c").put("k2", 2)  # the block goes on and commits
        with store.snapshot(), pytest.raises(errors.ReadOnlyError):
            store.vacuum()
        assert list(store.collection("c").keys()) == ["k", "k2"]
    with kvlite.open(path, readonly=True) as store, pytest.raises(errors.ReadOnlyError):
        store.vacuum()
