"""Store: opening, settings, life cycle, collections registry, transactions, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import apsw
import pytest

import kvlite
from kvlite.errors import InvalidCollectionName, KvliteError, StoreClosed, StoreLocked


class Boom(Exception):
    """Raised by tests to abort a transaction block."""


def pragma(store: kvlite.Store, name: str) -> object:
    return store.engine.connection().execute(f"PRAGMA {name}").fetchone()[0]


# -- opening and settings ---------------------------------------------------------------


def test_open_file_creates_it_and_persists(db_path: Path) -> None:
    assert not db_path.exists()
    with kvlite.open(db_path) as db:
        db.collection("c").put("k", {"v": 1})
    assert db_path.exists()
    with kvlite.open(str(db_path)) as db:
        assert db.collection("c").get("k") == {"v": 1}


def test_file_store_uses_wal(store: kvlite.Store) -> None:
    assert pragma(store, "journal_mode") == "wal"
    raw = apsw.Connection(store.path)  # the mode is recorded in the file itself
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


@pytest.mark.parametrize(("durability", "level"), [("normal", 1), ("full", 2)])
def test_durability_sets_synchronous_on_every_connection(open_store, durability: str, level: int) -> None:
    db = open_store(durability=durability)
    assert db.durability == durability
    assert pragma(db, "synchronous") == level
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(pragma(db, "synchronous")))
    thread.start()
    thread.join()
    assert seen == [level]  # a second thread's own connection gets the same setting


def test_default_durability_is_normal(store: kvlite.Store) -> None:
    assert pragma(store, "synchronous") == 1


@pytest.mark.parametrize("durability", ["NORMAL", "off", "", None])
def test_invalid_durability_is_rejected(db_path: Path, durability: object) -> None:
    with pytest.raises(ValueError):
        kvlite.open(db_path, durability=durability)  # type: ignore[arg-type]
    assert not db_path.exists()


def test_memory_stores_are_private() -> None:
    with kvlite.open(":memory:") as a, kvlite.open() as b:
        a.collection("c").put("k", 1)
        assert a.collection("c").get("k") == 1
        assert b.collections() == []
        assert b.collection("c").get("k") is None


def test_memory_store_is_shared_by_threads() -> None:
    with kvlite.open(":memory:") as db:
        coll = db.collection("c")
        coll.put("from-main", 1)
        seen: list[object] = []

        def other() -> None:
            seen.append(coll.get("from-main"))
            coll.put("from-thread", 2)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert seen == [1]
        assert coll.get("from-thread") == 2


# -- life cycle -------------------------------------------------------------------------


def test_context_manager_closes(db_path: Path) -> None:
    with kvlite.open(db_path) as db:
        assert not db.closed
        coll = db.collection("c")
        coll.put("k", 1)
    assert db.closed
    with pytest.raises(StoreClosed):
        coll.get("k")


def test_context_manager_closes_on_error(db_path: Path) -> None:
    with pytest.raises(Boom):
        with kvlite.open(db_path) as db:
            raise Boom
    assert db.closed


def test_close_is_idempotent(store: kvlite.Store) -> None:
    store.close()
    store.close()
    assert store.closed


USE_AFTER_CLOSE = {
    "store.collection": lambda db, c, d: db.collection("c"),
    "store.collection(new)": lambda db, c, d: db.collection("new"),
    "store.collections": lambda db, c, d: db.collections(),
    "store.drop_collection": lambda db, c, d: db.drop_collection("c"),
    "store.dict": lambda db, c, d: db.dict("c"),
    "store.purge_expired": lambda db, c, d: db.purge_expired(),
    "store.transaction": lambda db, c, d: db.transaction().__enter__(),
    "coll.get": lambda db, c, d: c.get("k"),
    "coll.put": lambda db, c, d: c.put("k", 2),
    "coll.delete": lambda db, c, d: c.delete("k"),
    "coll.ttl": lambda db, c, d: c.ttl("k"),
    "coll.in": lambda db, c, d: "k" in c,
    "coll.get_many": lambda db, c, d: c.get_many(["k"]),
    "coll.put_many": lambda db, c, d: c.put_many({"k": 2}),
    "coll.delete_many": lambda db, c, d: c.delete_many(["k"]),
    "coll.keys": lambda db, c, d: list(c.keys()),
    "coll.items": lambda db, c, d: list(c.items()),
    "coll.count": lambda db, c, d: c.count(),
    "coll.pop": lambda db, c, d: c.pop("k"),
    "coll.popitem": lambda db, c, d: c.popitem(),
    "coll.setdefault": lambda db, c, d: c.setdefault("k", 2),
    "coll.clear": lambda db, c, d: c.clear(),
    "coll.purge_expired": lambda db, c, d: c.purge_expired(),
    "dict.getitem": lambda db, c, d: d["k"],
    "dict.setitem": lambda db, c, d: d.__setitem__("k", 2),
    "dict.delitem": lambda db, c, d: d.__delitem__("k"),
    "dict.len": lambda db, c, d: len(d),
    "dict.iter": lambda db, c, d: list(d),
    "dict.items": lambda db, c, d: list(d.items()),
    "dict.get": lambda db, c, d: d.get("k"),
    "dict.in": lambda db, c, d: "k" in d,
    "dict.update": lambda db, c, d: d.update(k=2),
    "dict.eq": lambda db, c, d: d == {"k": 1},
}


@pytest.mark.parametrize("use", list(USE_AFTER_CLOSE.values()), ids=list(USE_AFTER_CLOSE))
@pytest.mark.parametrize("where", ["file", "memory"])
def test_use_after_close_raises_store_closed(db_path: Path, where: str, use) -> None:
    db = kvlite.open(db_path if where == "file" else ":memory:")
    coll = db.collection("c")
    view = coll.dict()
    coll.put("k", 1)
    db.close()
    with pytest.raises(StoreClosed):
        use(db, coll, view)


def test_use_after_close_from_another_thread(store: kvlite.Store) -> None:
    coll = store.collection("c")
    coll.put("k", 1)
    store.close()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            coll.get("k")
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], StoreClosed)


def test_iteration_interrupted_by_close_raises_store_closed(store: kvlite.Store) -> None:
    coll = store.collection("c")
    coll.put_many((i, i) for i in range(2500))  # more than one page of rows
    keys = coll.keys()
    assert next(keys) == 0
    store.close()
    with pytest.raises(StoreClosed):
        list(keys)


def test_store_closed_is_a_kvlite_error() -> None:
    assert issubclass(StoreClosed, KvliteError)


# -- the registry of collections ----------------------------------------------------------


def test_collections_lists_names_oldest_first(store: kvlite.Store) -> None:
    assert store.collections() == []
    for name in ["zeta", "alpha", "Alpha", "mid"]:
        store.collection(name)
    assert store.collections() == ["zeta", "alpha", "Alpha", "mid"]


def test_collection_is_created_on_first_use_and_cached(store: kvlite.Store) -> None:
    first = store.collection("c")
    assert store.collection("c") is first
    assert store.collections() == ["c"]


def test_drop_collection_removes_data_and_recreate_is_empty(store: kvlite.Store, open_store) -> None:
    keep = store.collection("keep")
    keep.put("k", "kept")
    gone = store.collection("gone")
    gone.put_many({"a": 1, "b": 2})
    assert store.drop_collection("gone") is True
    assert store.collections() == ["keep"]
    assert store.drop_collection("gone") is False
    assert store.drop_collection("never-existed") is False
    again = store.collection("gone")
    assert again is not gone
    assert list(again.items()) == []
    assert again.get("a") is None
    again.put("c", 3)
    assert list(again.items()) == [("c", 3)]
    assert keep.get("k") == "kept"
    other = open_store()  # another connection sees the same registry and data
    assert other.collections() == ["keep", "gone"]
    assert list(other.collection("gone").items()) == [("c", 3)]


def test_stale_collection_object_after_drop_raises_kvlite_error(store: kvlite.Store) -> None:
    coll = store.collection("c")
    coll.put("k", 1)
    store.drop_collection("c")
    with pytest.raises(KvliteError):
        coll.get("k")


def test_drop_collection_validates_name(store: kvlite.Store) -> None:
    with pytest.raises(InvalidCollectionName):
        store.drop_collection("")


def test_dict_shortcut_is_the_collection_view(store: kvlite.Store) -> None:
    view = store.dict("c")
    view["k"] = 1
    assert store.collection("c").get("k") == 1
    assert view is store.collection("c").dict()


# -- transactions -------------------------------------------------------------------------


def test_transaction_commits_across_keys_and_collections(store: kvlite.Store, open_store) -> None:
    a, b = store.collection("a"), store.collection("b")
    with store.transaction() as tx:
        assert tx is store
        a.put("x", 1)
        a.put("y", 2)
        b.put("x", 3)
        assert a.get("x") == 1  # own writes are visible inside
    other = open_store()
    assert dict(other.collection("a").items()) == {"x": 1, "y": 2}
    assert dict(other.collection("b").items()) == {"x": 3}


def test_transaction_rolls_back_everything_on_error(store: kvlite.Store) -> None:
    a, b = store.collection("a"), store.collection("b")
    a.put("x", "old")
    with pytest.raises(Boom):
        with store.transaction():
            a.put("x", "new")
            a.put("y", 2)
            a.delete("x")
            b.put("x", 3)
            b.put_many({"m": 1, "n": 2})
            raise Boom
    assert list(a.items()) == [("x", "old")]
    assert list(b.items()) == []


def test_transaction_rolls_back_collection_created_inside(store: kvlite.Store) -> None:
    with pytest.raises(Boom):
        with store.transaction():
            store.collection("inner").put("k", 1)
            raise Boom
    assert "inner" not in store.collections()
    inner = store.collection("inner")  # created afresh, not a stale cached object
    inner.put("k", 2)
    assert list(inner.items()) == [("k", 2)]


def test_rolled_back_drop_keeps_the_collection(store: kvlite.Store) -> None:
    coll = store.collection("c")
    coll.put("k", 1)
    with pytest.raises(Boom):
        with store.transaction():
            assert store.drop_collection("c") is True
            raise Boom
    assert store.collections() == ["c"]
    assert store.collection("c").get("k") == 1


def test_nested_inner_failure_caught_rolls_back_only_inner(store: kvlite.Store) -> None:
    a, b = store.collection("a"), store.collection("b")
    with store.transaction():
        a.put("outer-before", 1)
        with pytest.raises(Boom):
            with store.transaction():
                a.put("inner", 2)
                b.put("inner", 2)
                a.put("outer-before", "changed")
                raise Boom
        a.put("outer-after", 3)
    assert list(a.items()) == [("outer-before", 1), ("outer-after", 3)]
    assert list(b.items()) == []


def test_nested_outer_failure_rolls_back_committed_inner(store: kvlite.Store) -> None:
    a = store.collection("a")
    with pytest.raises(Boom):
        with store.transaction():
            a.put("outer", 1)
            with store.transaction():
                a.put("inner", 2)
            assert a.get("inner") == 2
            raise Boom
    assert list(a.items()) == []


def test_nested_inner_failure_not_caught_rolls_back_everything(store: kvlite.Store) -> None:
    a = store.collection("a")
    with pytest.raises(Boom):
        with store.transaction():
            a.put("outer", 1)
            with store.transaction():
                with store.transaction():
                    a.put("deepest", 3)
                    raise Boom
    assert list(a.items()) == []


def test_many_operations_inside_transaction_join_it(store: kvlite.Store) -> None:
    a = store.collection("a")
    a.put("old", 0)
    with pytest.raises(Boom):
        with store.transaction():
            a.put_many({"x": 1, "y": 2})
            a.delete_many(["old"])
            a.setdefault("z", 3)
            raise Boom
    assert list(a.items()) == [("old", 0)]


def test_second_store_sees_committed_not_uncommitted(store: kvlite.Store, open_store) -> None:
    a = store.collection("a")
    other = open_store().collection("a")
    a.put("committed", 1)
    assert other.get("committed") == 1
    with store.transaction():
        a.put("pending", 2)
        a.put("committed", "changed")
        assert other.get("pending") is None
        assert other.get("committed") == 1
        assert list(other.keys()) == ["committed"]
        assert len(other) == 1
    assert other.get("pending") == 2
    assert other.get("committed") == "changed"


def test_second_store_never_sees_rolled_back_writes(store: kvlite.Store, open_store) -> None:
    a = store.collection("a")
    other = open_store().collection("a")
    with pytest.raises(Boom):
        with store.transaction():
            a.put("pending", 2)
            raise Boom
    assert other.get("pending") is None


def test_writer_blocked_by_open_transaction_gets_store_locked(store: kvlite.Store, open_store) -> None:
    a = store.collection("a")
    impatient = open_store(timeout=0).collection("a")
    with store.transaction():
        a.put("k", 1)
        with pytest.raises(StoreLocked):
            impatient.put("k", 2)
        with pytest.raises(StoreLocked):
            impatient.put_many({"x": 1})
    impatient.put("k", 3)  # once the lock is released the write goes through
    assert a.get("k") == 3


# -- threads ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["file", "memory"])
def test_threads_share_one_store(db_path: Path, where: str) -> None:
    n_threads, n_keys = 8, 60
    db = kvlite.open(db_path if where == "file" else ":memory:")
    try:
        coll = db.collection("c")
        counter = db.collection("counter")
        counter.put("n", 0)
        errors: list[BaseException] = []
        barrier = threading.Barrier(n_threads)

        def work(t: int) -> None:
            try:
                barrier.wait()
                for i in range(n_keys):
                    coll.put(f"{t}:{i}", [t, i])
                    assert coll.get(f"{t}:{i}") == [t, i]
                    with db.transaction():  # read-modify-write under the write lock
                        counter.put("n", counter.get("n") + 1)
                coll.put_many({f"{t}:bulk:{i}": i for i in range(20)})
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert counter.get("n") == n_threads * n_keys  # no lost update
        assert len(coll) == n_threads * (n_keys + 20)
        for t in range(n_threads):
            assert coll.get_many([f"{t}:{i}" for i in range(n_keys)]) == [[t, i] for i in range(n_keys)]
    finally:
        db.close()


def test_a_collection_made_in_a_rolled_back_block_never_reaches_another_collection(store: kvlite.Store) -> None:
    """Its table id returns to SQLite's sequence with the rollback and the next collection made
    gets it: the object made in the block raises CollectionDropped instead of reading or writing
    that other collection (also for a savepoint that rolls back inside a block that commits)."""
    from kvlite.errors import CollectionDropped

    with pytest.raises(RuntimeError):
        with store.transaction():
            undone = store.collection("undone")
            undone.put("secret", 1)
            raise RuntimeError("roll back")
    other = store.collection("other")
    other.put("k", "other's")
    assert other._table.table_id == undone._table.table_id  # the id was given again
    for call in (lambda: undone.get("k"), lambda: undone.put("x", 1), lambda: list(undone.items()),
                 lambda: list(undone.find("$.*")), lambda: len(undone)):
        with pytest.raises(CollectionDropped, match="rolled back"):
            call()
    assert list(other.items()) == [("k", "other's")]
    with store.transaction():
        with pytest.raises(ValueError):
            with store.transaction():
                inner = store.collection("inner")
                raise ValueError
        kept = store.collection("kept")
        kept.put("k", 1)
    with pytest.raises(CollectionDropped):
        inner.get("k")
    assert kept.get("k") == 1 and store.collections() == ["other", "kept"]
    assert store.collection("undone").get("secret") is None  # made again, empty
