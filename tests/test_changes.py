"""The change feed and online backups (issue 15).

``Store.changes`` on every engine that keeps a log (SQLite file, ``":memory:"``, ``memory://``):
each kind of write is recorded with its value, in commit order, only for collections that asked,
never for a rolled-back block; ``since`` resumes exactly after any seq (against the full list);
retention trims and then raises ``ChangesTruncated``; ``wait=True`` wakes on another writer; bad
input is typed.  Real processes: a follower applying changes ends equal to the collection after two
writers made 1,000 mixed puts and deletes; backups taken while a process moves units between keys
in transactions always hold the same total; a SIGKILL during a backup leaves nothing at the
destination.  Engines without a log raise ``NotSupported``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock
from hypothesis import given, settings
from hypothesis import strategies as st

import kvlite
from kvlite import ABSENT
from kvlite.errors import (
    ChangesTruncated,
    CollectionNotFound,
    InvalidBackupTarget,
    InvalidValue,
    NotSupported,
)

WORKER = Path(__file__).resolve().parent / "helpers_changes.py"
ENGINES = ["file", "sqlite-memory", "memory"]


def _open(engine: str, tmp_path: Path, **options: Any) -> kvlite.Store:
    target = {"file": str(tmp_path / "feed.db"), "sqlite-memory": ":memory:", "memory": "memory://"}[engine]
    return kvlite.open(target, **options)


def _spawn(spec: dict[str, Any]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)])


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, "the worker died before it was ready"
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_write_is_recorded_with_the_latest_value(engine: str, tmp_path: Path, clock: Clock) -> None:
    db = _open(engine, tmp_path, clock=clock)
    c = db.collection("users", changes=True)
    quiet = db.collection("quiet")
    seen = [0]

    def new() -> list[tuple[Any, str, Any]]:
        got = list(db.changes(since=seen[0]))
        if got:
            seen[0] = got[-1].seq
        assert all(ch.collection == "users" for ch in got)
        return [(ch.key, ch.op, ch.value) for ch in got]

    c.put("a", {"n": 1})
    assert new() == [("a", "put", {"n": 1})]
    c.put_many([(5, "five"), (b"\x00", [1])])
    quiet.put("x", 1)  # not recorded: its collection did not ask
    assert new() == [(5, "put", "five"), (b"\x00", "put", [1])]
    c.patch("a", {"m": 2})
    c.incr("count")
    assert new() == [("a", "put", {"n": 1, "m": 2}), ("count", "put", 1)]
    assert c.pop(5) == "five"
    assert new() == [(5, "delete", ABSENT)]
    c.put("short", 1, ttl=1)
    clock.advance(2)
    db.purge_expired()  # the expired entry is removed: a delete
    assert new() == [("short", "put", ABSENT), ("short", "delete", ABSENT)]  # the put's value is gone
    c.delete_where("$[?@.n == 1]")
    assert new() == [("a", "delete", ABSENT)]
    if db.supports_transactions:
        with db.transaction():
            c.put("kept", True)
        with pytest.raises(RuntimeError):
            with db.transaction():
                c.put("rolled-back", 1)
                raise RuntimeError
        assert new() == [("kept", "put", True)]
    c.put("count", 10)
    assert new() == [("count", "put", 10)]
    c.put("null", None)  # a stored null is None, never ABSENT
    assert new() == [("null", "put", None)]
    first = list(db.changes())
    assert [(ch.key, ch.value) for ch in first if ch.key == "count"] == [("count", 10), ("count", 10)]  # latest
    c.clear()
    cleared = new()
    assert sorted(cleared, key=repr) == sorted([(k, "delete", ABSENT) for k in c_keys_before(first)], key=repr)
    seqs = [ch.seq for ch in db.changes()]
    assert seqs == sorted(set(seqs)) and db.last_change_seq() == seqs[-1]
    assert {type(ch.key) for ch in db.changes() if ch.key in (5, b"\x00")} == {int, bytes}
    db.close()


def c_keys_before(changes: list[Any]) -> list[Any]:
    """The keys live after ``changes`` (applied in order)."""
    live: dict[Any, None] = {}
    for ch in changes:
        if ch.op == "put":
            live[ch.key] = None
        else:
            live.pop(ch.key, None)
    return list(live)


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=30, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["put", "delete"]), st.integers(0, 5), st.integers(-1000, 1000)), max_size=30),
       cut=st.integers(0, 40))
def test_since_resumes_exactly_after_any_seq(engine: str, tmp_path_factory: pytest.TempPathFactory,
                                            ops: list[tuple[str, int, int]], cut: int) -> None:
    db = _open(engine, tmp_path_factory.mktemp("since"))
    c = db.collection("c", changes=True)
    model: dict[int, int] = {}
    for op, key, value in ops:
        if op == "put":
            c.put(key, value)
            model[key] = value
        else:
            c.delete(key)
            model.pop(key, None)
    every = list(db.changes())
    since = every[min(cut, len(every)) - 1].seq if cut and every else 0
    assert list(db.changes(since=since)) == [ch for ch in every if ch.seq > since]
    replayed: dict[Any, Any] = {}
    for ch in every:
        if ch.op == "put":
            replayed[ch.key] = ch.value
        else:
            replayed.pop(ch.key, None)
    assert replayed == model == dict(c.items())
    db.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_retention_and_turning_off(engine: str, tmp_path: Path) -> None:
    db = _open(engine, tmp_path)
    c = db.collection("c", changes=True, changes_keep=5)
    other = db.collection("other", changes=True)
    for i in range(20):
        c.put(i, i)
    other.put("o", 1)
    db.purge_expired()  # trims the logs to their retention
    with pytest.raises(ChangesTruncated) as caught:
        list(db.changes(since=0))
    assert caught.value.oldest >= 15
    assert [ch.key for ch in db.changes(since=15, collections=["c"])] == [15, 16, 17, 18, 19]
    assert [ch.key for ch in db.changes(since=0, collections=["other"])] == ["o"]  # its log is whole
    last = db.last_change_seq()
    db.collection("c", changes=False)
    c.put("after", 1)
    assert list(db.changes(since=last)) == []
    with pytest.raises(ChangesTruncated):
        list(db.changes(since=15, collections=["c"]))
    db.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_input_is_typed(engine: str, tmp_path: Path) -> None:
    db = _open(engine, tmp_path)
    db.collection("c", changes=True).put("a", 1)
    for since in (-1, "1", True, 1.5, None):
        with pytest.raises(InvalidValue):
            db.changes(since)  # type: ignore[arg-type]
    with pytest.raises(CollectionNotFound):
        db.changes(collections=["nope"])
    with pytest.raises(InvalidValue):
        db.changes(collections="c")
    with pytest.raises(InvalidValue):
        db.changes(wait=True, timeout=-1)
    for keep, age in ((0, None), (None, 0), ("5", None), (None, float("inf"))):
        with pytest.raises(ValueError):
            db.collection("c", changes=True, changes_keep=keep, changes_max_age=age)
    with pytest.raises(ValueError):
        db.collection("c", changes_keep=5)
    assert [ch.key for ch in db.changes()] == ["a"]
    db.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_wait_wakes_on_a_new_change(engine: str, tmp_path: Path) -> None:
    db = _open(engine, tmp_path)
    c = db.collection("c", changes=True)
    c.put("first", 1)
    start = db.last_change_seq()
    writer = threading.Timer(0.3, lambda: c.put("later", 2))
    writer.start()
    began = time.monotonic()
    got = []
    for change in db.changes(since=start, wait=True, timeout=10):
        got.append(change.key)
        break
    assert got == ["later"] and time.monotonic() - began < 5
    began = time.monotonic()
    assert list(db.changes(since=db.last_change_seq(), wait=True, timeout=0.2)) == []
    assert 0.15 < time.monotonic() - began < 5
    db.close()


def test_engines_without_a_log_say_so(tmp_path: Path) -> None:
    db = kvlite.open(tmp_path / "folder", layout="per-collection")
    db.collection("c", changes=True).put("a", 1)
    with pytest.raises(NotSupported, match="one change log per collection file"):
        db.changes()  # a per-collection folder is read one collection at a time
    with pytest.raises(NotSupported):
        db.last_change_seq()
    assert [ch.key for ch in db.changes(collections=["c"])] == ["a"]
    db.close()
    with kvlite.open("memory://") as mem, pytest.raises(NotSupported):
        mem.backup(tmp_path / "copy.db")
    with kvlite.open(":memory:") as mem:  # an in-memory SQLite store can be saved to a file
        mem.collection("c").put("a", 1)
        mem.backup(tmp_path / "saved.db")
    with kvlite.open(tmp_path / "saved.db") as saved:
        assert saved.collection("c").get("a") == 1


def test_a_follower_process_ends_equal_to_the_collection(tmp_path: Path) -> None:
    target = str(tmp_path / "feed.db")
    db = kvlite.open(target)
    coll = db.collection("data", changes=True)
    coll.put("k0", "before")
    follower = _spawn({"target": target, "mode": "follower", "collection": "data", "since": 0, "writers": 2,
                       "ready": str(tmp_path / "ready"), "report": str(tmp_path / "report.json")})
    _wait_for(tmp_path / "ready", follower)
    writers = [_spawn({"target": target, "mode": "writer", "collection": "data", "seed": seed, "count": 500})
               for seed in (1, 2)]
    for proc in writers:
        assert proc.wait(timeout=180) == 0
    assert follower.wait(timeout=180) == 0
    seen = {key: value for key, value in json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))}
    assert seen == dict(coll.items())  # the follower's dict is the collection
    assert len(seen) > 10 and sum(ch.key == "__done__" for ch in db.changes()) == 2
    db.close()


def test_backups_during_transfers_always_hold_the_same_total(tmp_path: Path) -> None:
    target = str(tmp_path / "bank.db")
    db = kvlite.open(target)
    accounts = db.collection("accounts")
    accounts.put_many({f"acct{n}": 100 for n in range(20)})
    accounts.put_many({f"pad{n}": "x" * 2000 for n in range(2000)})  # a few MB: many backup steps
    mover = _spawn({"target": target, "mode": "mover", "collection": "accounts", "seed": 7,
                    "ready": str(tmp_path / "ready"), "stop": str(tmp_path / "stop")})
    try:
        _wait_for(tmp_path / "ready", mover)
        for n in range(8):
            copy = tmp_path / f"copy-{n}.db"
            steps: list[tuple[int, int]] = []
            db.backup(copy, progress=lambda done, total: steps.append((done, total)))
            with kvlite.open(copy, readonly=True) as restored:
                got = restored.collection("accounts")
                assert sum(got.get(f"acct{a}") for a in range(20)) == 2000
                assert len(got) == 2020
            assert steps and steps[-1][0] == steps[-1][1]
    finally:
        (tmp_path / "stop").write_text("stop", encoding="utf-8")
        assert mover.wait(timeout=60) == 0
    assert not list(tmp_path.glob(".copy-*.tmp*"))
    db.close()


def test_a_killed_backup_leaves_nothing_at_the_destination(tmp_path: Path) -> None:
    target = str(tmp_path / "big.db")
    with kvlite.open(target) as db:
        db.collection("c").put_many({n: "x" * 4000 for n in range(3000)})
    for attempt in range(3):
        dst = tmp_path / f"dst-{attempt}.db"
        proc = _spawn({"target": target, "mode": "backup", "dst": str(dst), "ready": str(tmp_path / f"r{attempt}")})
        _wait_for(tmp_path / f"r{attempt}", proc)
        time.sleep(0.1 + 0.1 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL  # killed mid-copy, not after
        assert not dst.exists()
    with kvlite.open(target) as db:
        db.backup(tmp_path / "dst-0.db")
        with kvlite.open(tmp_path / "dst-0.db", readonly=True) as restored:
            assert len(restored.collection("c")) == 3000


def test_backup_refuses_bad_targets(tmp_path: Path) -> None:
    target = tmp_path / "s.db"
    with kvlite.open(target) as db:
        db.collection("c").put("a", 1)
        with pytest.raises(InvalidBackupTarget):
            db.backup(tmp_path / "missing-folder" / "x.db")
        with pytest.raises(InvalidBackupTarget):
            db.backup(target)
        with pytest.raises(InvalidBackupTarget):
            db.backup(str(tmp_path / "." / "s.db"))
        assert db.collection("c").get("a") == 1
        (tmp_path / "old.db").write_text("not a store", encoding="utf-8")
        db.backup(tmp_path / "old.db")  # a file there is replaced, once the copy is complete
    with kvlite.open(tmp_path / "old.db") as restored:
        assert restored.collection("c").get("a") == 1


def test_a_per_collection_folder_logs_per_file(tmp_path: Path) -> None:
    db = kvlite.open(tmp_path / "folder", layout="per-collection")
    c = db.collection("c", changes=True)
    other = db.collection("o", changes=True)
    c.put("a", 1)
    other.put("x", 1)
    c.delete("a")
    assert [(ch.key, ch.op) for ch in db.changes(collections=["c"])] == [("a", "put"), ("a", "delete")]
    assert [ch.key for ch in db.changes(collections=["o"])] == ["x"]
    before = db.last_change_seq("c")
    writer = threading.Timer(0.3, lambda: c.put("later", 2))
    writer.start()
    assert [ch.key for ch in db.changes(before, collections=["c"], wait=True, timeout=5)][:1] == ["later"]
    writer.join()
    old = db.last_change_seq("c")
    db.drop_collection("c")
    again = db.collection("c", changes=True)  # a new file: its log starts past the old one's seqs
    again.put("new", 1)
    assert db.last_change_seq("c") > old
    with pytest.raises(ChangesTruncated, match="made anew"):
        list(db.changes(old, collections=["c"]))  # a follower of the old file must resync
    assert [ch.key for ch in db.changes(0, collections=["c"])] == ["new"]
    db.close()


def test_a_per_collection_folder_is_backed_up_file_by_file(tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "folder", layout="per-collection") as db:
        db.collection("a").put(1, "x")
        db.collection("b/é").put_many({f"k{n}": n for n in range(500)})
        steps: list[tuple[int, int]] = []
        db.backup(tmp_path / "copy", progress=lambda done, total: steps.append((done, total)))
        assert steps[-1][0] == steps[-1][1]
        with pytest.raises(InvalidBackupTarget):
            db.backup(tmp_path / "copy")  # a per-collection backup is a new folder
        with pytest.raises(InvalidBackupTarget):
            db.backup(tmp_path / "folder")
    with kvlite.open(tmp_path / "copy", layout="per-collection") as copy:
        assert sorted(copy.collections()) == ["a", "b/é"]
        assert copy.collection("a").get(1) == "x" and len(copy.collection("b/é")) == 500
    assert not list(tmp_path.glob(".copy.*"))


def test_async_follow(tmp_path: Path) -> None:
    import asyncio

    import kvlite.aio

    async def main() -> None:
        db = await kvlite.aio.open(str(tmp_path / "a.db"))
        try:
            c = await db.collection("c", changes=True)
            await c.put("a", 1)

            async def later() -> None:
                await asyncio.sleep(0.2)
                await c.put("b", 2)

            task = asyncio.create_task(later())
            got = [(ch.key, ch.value) async for ch in db.changes(wait=True, timeout=1.0)]
            await task
            assert got == [("a", 1), ("b", 2)] and await db.last_change_seq() == 2
            await db.backup(str(tmp_path / "b.db"))
        finally:
            await db.close()

    asyncio.run(main())


@pytest.mark.parametrize("damage", ["UPDATE kvlite_changes SET op = 7", "UPDATE kvlite_changes SET key_type = 7"])
def test_a_damaged_log_is_corrupt_store(tmp_path: Path, damage: str) -> None:
    import apsw

    from kvlite.errors import CorruptStore

    path = tmp_path / "h.db"
    with kvlite.open(path) as db:
        db.collection("c", changes=True).put("a", 1)
    raw = apsw.Connection(str(path))
    raw.execute(damage)
    raw.close()
    with kvlite.open(path) as db, pytest.raises(CorruptStore):
        list(db.changes())


def test_retention_keeps_its_bound_under_concurrent_writers(tmp_path: Path) -> None:
    """Three processes writing a logged collection each trim its log every 1024 writes: the
    counting must not interleave (else a trim counts rows twice and keeps fewer than ``keep``;
    without the trim's write transaction this failed about one run in five)."""
    target = str(tmp_path / "busy.db")
    with kvlite.open(target) as db:
        db.collection("data", changes=True, changes_keep=500)
    writers = [_spawn({"target": target, "mode": "writer", "collection": "data", "seed": seed, "count": 4000})
               for seed in (3, 4, 5)]
    for proc in writers:
        assert proc.wait(timeout=180) == 0
    with kvlite.open(target) as db:
        db.purge_expired()
        last = db.last_change_seq()
        kept = list(db.changes(since=last - 500))  # the last 500 are all there ...
        assert len(kept) == 500 and kept[-1].seq == last
        with pytest.raises(ChangesTruncated):  # ... and no more than the bound
            list(db.changes(since=last - 502))
