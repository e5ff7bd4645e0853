"""Hostile files and hostile names: kvlite never runs what a file or a name says.

* A file can claim a collection uses ``pickle`` and hold a pickle that runs code
  when loaded.  Unless the caller passes ``serializer="pickle"`` itself, every
  way of opening and reading it raises ``SerializerMismatch`` (or
  ``SerializationError``) and the payload never runs: the marker file it would
  create never appears.  The test then loads it *with* ``serializer="pickle"``
  to prove the payload is live.
* Collection names, keys and values that look like SQL are stored as data:
  every kvlite table survives, other collections are untouched.
* The registry's ``table_name`` column is never used as SQL: kvlite names
  tables ``kv_<integer id>``, so a hostile ``table_name`` runs nothing and
  points nowhere.
* A collection table that is missing, a view, or has other columns gives
  ``CorruptStore``, not a raw SQLite error.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvlite
from kvlite import errors
from kvlite.names import MAX_COLLECTION_NAME

# -- a pickle that runs code ---------------------------------------------------------------


class Payload:
    """Unpickling this calls ``exec`` with code that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def hostile_pickle_file(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A kvlite file whose ``evil`` collection is registered as pickle and holds a code-running pickle.

    Also: ``evil-json``, registered as json, whose value is the same pickle as a BLOB.
    Returns (path, marker, payload bytes).
    """
    marker = tmp_path / "marker"
    payload = pickle.dumps(Payload(marker))
    assert b"exec" in payload and not marker.exists()
    path = tmp_path / "hostile.db"
    with kvlite.open(path) as store:
        store.collection("evil", serializer="pickle").put_many({"k": "harmless", "k2": "harmless"})
        store.collection("evil-json").put("k", "harmless")
        store.collection("plain").put("k", {"ok": True})
    conn = apsw.Connection(str(path))
    for name in ("evil", "evil-json"):
        (table_id,) = conn.execute("SELECT id FROM kvlite_collections WHERE name = ?", (name,)).fetchone()
        conn.execute(f"UPDATE kv_{table_id} SET value = ?", (payload,))
    conn.close()
    return path, marker, payload


def test_a_file_cannot_make_kvlite_unpickle(tmp_path: Path) -> None:
    path, marker, _ = hostile_pickle_file(tmp_path)
    store = kvlite.open(path)  # default serializer: json
    try:
        assert store.collections() == ["evil", "evil-json", "plain"]
        refusals: dict[str, Callable[[], Any]] = {
            "collection": lambda: store.collection("evil"),
            "collection json": lambda: store.collection("evil", serializer="json"),
            "dict": lambda: store.dict("evil"),
            "dict json": lambda: store.dict("evil", serializer="json"),
        }
        for label, action in refusals.items():
            with pytest.raises(errors.SerializerMismatch) as info:
                action()
            assert info.value.stored == "pickle" and info.value.requested == "json", label

        # Registered as json, holding pickle bytes: decoding fails as JSON; never unpickled.
        evil_json = store.collection("evil-json")
        view = evil_json.dict()
        reads: dict[str, Callable[[], Any]] = {
            "get": lambda: evil_json.get("k"),
            "get_many": lambda: evil_json.get_many(["k"]),
            "items": lambda: list(evil_json.items()),
            "values": lambda: list(evil_json.values()),
            "setdefault": lambda: evil_json.setdefault("k", 1),
            "view get": lambda: view["k"],
            "view items": lambda: list(view.items()),
            "view eq": lambda: view == {"k": 1},
            "view copy": lambda: view.copy(),
            "pop": lambda: evil_json.pop("k"),
            "pop default": lambda: evil_json.pop("k", None),
            "popitem": lambda: evil_json.popitem(),
            "view pop": lambda: view.pop("k"),
            "view popitem": lambda: view.popitem(),
        }
        for label, action in reads.items():
            with pytest.raises(errors.SerializationError):
                action()
            assert not marker.exists(), label

        # What does not decode values still works on the hostile collections.
        assert store.purge_expired() == 0
        # A value that cannot be decoded is not removed by pop/popitem (they decode before committing).
        assert list(evil_json.keys()) == ["k"] and evil_json.count() == 1
        assert store.collection("plain").get("k") == {"ok": True}
        if hasattr(store, "stats"):
            store.stats()
        assert not marker.exists()
    finally:
        store.close()

    # A store whose *default* is pickle still refuses a json collection, and vice versa.
    with kvlite.open(path, serializer="pickle") as pickled, pytest.raises(errors.SerializerMismatch):
        pickled.collection("plain")
    assert not marker.exists()

    # Only an explicit request decodes it - and then the payload is live (this is the danger).
    with kvlite.open(path) as store:
        store.collection("evil", serializer="pickle").get("k")
    assert marker.read_text() == "pwned"


def test_the_command_line_never_unpickles(tmp_path: Path) -> None:
    pytest.importorskip("kvlite.cli")
    path, marker, _ = hostile_pickle_file(tmp_path)
    commands = [
        ["get", str(path), "evil", "k"], ["get", str(path), "evil-json", "k"],
        ["export", str(path)], ["export", str(path), "evil"], ["export", str(path), "evil-json"],
        ["keys", str(path), "evil"], ["collections", str(path)], ["stats", str(path)],
        ["purge", str(path)],
    ]
    for argv in commands:
        proc = subprocess.run([sys.executable, "-m", "kvlite", *argv], capture_output=True, text=True, timeout=60, check=False)
        assert not marker.exists(), argv
        assert "pwned" not in proc.stdout
        assert "Traceback" not in proc.stderr, (argv, proc.stderr)


# -- names, keys and values that look like SQL -----------------------------------------------

INJECTIONS = [
    'x"; DROP TABLE kvlite_collections; --',
    "x'; DROP TABLE kvlite_meta; --",
    "'); DELETE FROM kv_1; --",
    '"',
    "'",
    "''",
    '""',
    "[",
    "]",
    "[kv_1]",
    "`kv_1`",
    "kv_1",
    "kv_2",
    "kvlite_collections",
    "kvlite_meta",
    "sqlite_schema",
    "sqlite_sequence",
    "main.kv_1",
    "kv_1 WHERE 1=1; --",
    "?",
    "?1",
    ":name",
    "@x",
    "$x",
    "%s",
    "{0}",
    "\\",
    ";",
    "--",
    "/*",
    "*/",
    " ",
    "\t\n\r",
    "\u202e",  # right-to-left override
    "\U0001F4A3",
    "a" * MAX_COLLECTION_NAME,
]


def schema_of(store: kvlite.Store) -> list[tuple[Any, ...]]:
    return store.engine.connection().execute("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name").fetchall()


def kvlite_tables_intact(store: kvlite.Store) -> None:
    conn = store.engine.connection()
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert {"kvlite_meta", "kvlite_migrations", "kvlite_collections", "sqlite_sequence"} <= names
    assert conn.execute("SELECT count(*) FROM kvlite_meta").fetchone()[0] >= 1
    assert conn.execute("SELECT count(*) FROM kvlite_migrations").fetchone()[0] >= 1
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_sql_injection_names_are_just_names(open_store: Callable[..., kvlite.Store], db_path: Path) -> None:
    store = open_store()
    base = store.collection("base")
    base.put_many({"a": 1, "b": [2]})
    for name in INJECTIONS:
        coll = store.collection(name)
        coll.put(name, {"name": name})  # the name as key and inside the value too
        coll.put("k", name)
        kvlite_tables_intact(store)
    assert store.collections() == ["base", *INJECTIONS]
    assert list(base.items()) == [("a", 1), ("b", [2])]
    store.close()

    with kvlite.open(db_path) as again:
        assert again.collections() == ["base", *INJECTIONS]
        for name in INJECTIONS:
            assert list(again.collection(name).items()) == [(name, {"name": name}), ("k", name)]
        # Dropping one drops only it.
        for name in INJECTIONS[:5]:
            assert again.drop_collection(name) is True
            kvlite_tables_intact(again)
        assert again.collections() == ["base", *INJECTIONS[5:]]
        assert list(again.collection("base").items()) == [("a", 1), ("b", [2])]
        assert again.collection("kv_1").get("k") == "kv_1"


names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                min_size=1, max_size=MAX_COLLECTION_NAME)
sql_fragments = st.lists(st.sampled_from(
    ['"', "'", "`", "[", "]", ";", "--", "/*", "*/", "DROP TABLE ", "kvlite_collections", "kv_1", " OR 1=1",
     "?", ":a", "\\", ")", "("]), min_size=1, max_size=8).map("".join)


@settings(max_examples=150, deadline=None)
@given(name=st.one_of(names, sql_fragments).filter(lambda n: len(n) <= MAX_COLLECTION_NAME and n != "base"))
def test_any_valid_name_is_stored_as_data(name: str) -> None:
    with kvlite.open(":memory:") as store:
        store.collection("base").put("k", "v")
        before = schema_of(store)
        store.collection(name).put(name, name)
        assert store.collections() == ["base", name]
        assert store.collection(name).get(name) == name
        assert store.drop_collection(name) is True
        assert schema_of(store) == before
        assert store.collections() == ["base"]
        assert store.collection("base").get("k") == "v"
        kvlite_tables_intact(store)


# -- a hostile registry -------------------------------------------------------------------------


def two_collections(path: Path) -> None:
    with kvlite.open(path) as store:
        store.collection("a").put_many({"a1": 1, "a2": 2})
        store.collection("b").put_many({"b1": 1, "b2": 2})


@pytest.mark.parametrize("table_name", [
    "kvlite_meta; DROP TABLE kvlite_meta; --",
    '"kv_2"',  # b's table: kvlite must not follow it
    "kvlite_collections",
    "x\"; DELETE FROM kv_2; --",
])
def test_registry_table_name_is_never_used_as_sql(tmp_path: Path, table_name: str) -> None:
    path = tmp_path / "registry.db"
    two_collections(path)
    conn = apsw.Connection(str(path))
    conn.execute("UPDATE kvlite_collections SET table_name = ? WHERE name = 'a'", (table_name,))
    conn.close()
    with kvlite.open(path) as store:
        a, b = store.collection("a"), store.collection("b")
        assert list(a.items()) == [("a1", 1), ("a2", 2)]
        a.put("a3", 3)
        a.delete("a1")
        assert a.pop("a2") == 2
        assert list(a.items()) == [("a3", 3)]
        store.purge_expired()
        a.clear()
        assert a.count() == 0
        assert list(b.items()) == [("b1", 1), ("b2", 2)]
        kvlite_tables_intact(store)
        assert store.drop_collection("a") is True
        kvlite_tables_intact(store)
        assert store.collections() == ["b"]
        assert list(store.collection("b").items()) == [("b1", 1), ("b2", 2)]
        tables = {row[0] for row in store.engine.connection().execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        assert "kv_1" not in tables and "kv_2" in tables


@pytest.mark.parametrize("damage", [
    "DROP TABLE kv_1",
    ("DROP TABLE kv_1; CREATE VIEW kv_1 AS SELECT 1 AS id, 'k' AS key, 0 AS key_type, '1' AS value, "
     "0.0 AS created_at, 0.0 AS updated_at, NULL AS expires_at"),
    "DROP TABLE kv_1; CREATE TABLE kv_1(x)",
    "ALTER TABLE kv_1 RENAME COLUMN value TO v",
    "ALTER TABLE kv_1 DROP COLUMN expires_at",
    "UPDATE kvlite_collections SET id = 99 WHERE name = 'a'",
])
def test_a_collection_table_of_the_wrong_shape_is_corrupt(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "shape.db"
    two_collections(path)
    conn = apsw.Connection(str(path))
    if "DROP COLUMN expires_at" in damage:
        conn.execute("DROP INDEX kv_1_expires")
    conn.execute(damage)
    conn.close()
    with kvlite.open(path) as store:
        with pytest.raises(errors.CorruptStore, match="'a'"):
            store.collection("a")
        with pytest.raises(errors.CorruptStore):
            store.dict("a")
        assert list(store.collection("b").items()) == [("b1", 1), ("b2", 2)]


def test_a_registry_name_clash_is_a_kvlite_error(tmp_path: Path) -> None:
    """A registry row squatting the next table name blocks creating a collection - with a kvlite error."""
    path = tmp_path / "clash.db"
    two_collections(path)
    conn = apsw.Connection(str(path))
    conn.execute("UPDATE kvlite_collections SET table_name = 'kv_3' WHERE name = 'a'")
    conn.close()
    with kvlite.open(path) as store:
        before = store.engine.connection().execute("SELECT * FROM kvlite_collections").fetchall()
        with pytest.raises(errors.KvliteError):
            store.collection("c")
        assert store.engine.connection().execute("SELECT * FROM kvlite_collections").fetchall() == before
        assert list(store.collection("a").items()) == [("a1", 1), ("a2", 2)]


def test_a_damaged_registry_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    two_collections(path)
    conn = apsw.Connection(str(path))
    conn.execute("ALTER TABLE kvlite_collections RENAME COLUMN serializer TO s")
    conn.close()
    with pytest.raises(errors.CorruptStore, match="registry"):
        kvlite.open(path)


@pytest.mark.parametrize("bad_id", ["'1; DROP TABLE kv_1'", "1.5", "NULL"])
def test_a_registry_whose_ids_may_not_be_integers_is_corrupt(tmp_path: Path, bad_id: str) -> None:
    """Collection ids name tables: a registry rebuilt without ``INTEGER PRIMARY KEY`` could hold
    text or a float (``int(1.5)`` would name another collection's table), so it is refused."""
    path = tmp_path / "registry.db"
    two_collections(path)
    conn = apsw.Connection(str(path))
    conn.execute("""
        ALTER TABLE kvlite_collections RENAME TO old_registry;
        CREATE TABLE kvlite_collections (id ANY, name TEXT, table_name TEXT, serializer TEXT,
                                         created_at REAL, options TEXT);
        INSERT INTO kvlite_collections SELECT * FROM old_registry;
        DROP TABLE old_registry;""")
    conn.execute(f"UPDATE kvlite_collections SET id = {bad_id} WHERE name = 'b'")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(errors.CorruptStore, match="registry"):
        kvlite.open(path)
    assert path.read_bytes() == before


def test_a_hostile_trigger_only_reaches_its_own_file(tmp_path: Path) -> None:
    """Documented limit: triggers in a hostile file run when kvlite writes, but only SQL, on that file.

    ``load_extension`` (the one way SQL could load code) is refused, and the
    error reaches the caller as a kvlite error, not a raw SQLite one.
    """
    path = tmp_path / "trigger.db"
    two_collections(path)
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TRIGGER t1 AFTER INSERT ON kv_1 BEGIN SELECT load_extension('/nonexistent/x'); END")
    conn.execute("CREATE TRIGGER t2 AFTER INSERT ON kv_2 BEGIN DELETE FROM kv_2 WHERE key = 'b1'; END")
    conn.close()
    with kvlite.open(path) as store:
        a, b = store.collection("a"), store.collection("b")
        with pytest.raises(errors.KvliteError):
            a.put("new", 1)
        assert list(a.items()) == [("a1", 1), ("a2", 2)]
        b.put("new", 1)  # the file's own trigger deletes b1 - inside the file, as SQL only
        assert list(b.items()) == [("b2", 2), ("new", 1)]
