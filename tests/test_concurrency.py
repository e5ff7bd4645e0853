"""Concurrency: several processes and threads on one file lose no update and never see 'database is locked'.

``test_processes_and_threads_lose_no_update``: ``PROCESSES`` processes with
``THREADS`` threads each (threads of a process share one Store) run for
``SECONDS`` seconds after a common start signal, mixing

* atomic increments ``with store.transaction(): c.put(k, c.get(k, 0) + 1)``,
* ``setdefault`` races for the same keys,
* ``pop`` races over a pool of pre-loaded tokens,
* ``put_many`` batches,
* transfers between accounts (read two balances, write both, in one transaction).

Afterwards the totals must be exact: each counter equals the number of
increments reported, each setdefault key has exactly one winner whose value
is stored, each token was popped at most once and popped + remaining = pool,
every batch is whole, the accounts still sum to their starting total, and no
worker met any error (``StoreLocked`` included: the busy timeout is generous).

``test_streaming_reader_and_writers_both_progress``: one process streams
``items()`` over a large collection and, half-way through, waits for the
writer processes to commit more; the writers append and update the same
collection.  Every entry that existed before is seen exactly once, in
insertion order, and the writers got through while the reader was suspended
in the middle of its iteration.

``KVLITE_CONCURRENCY_SECONDS`` (default 3) sets the hammering time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import helpers_proc as hp
import pytest

import kvlite

PROCESSES = 4
THREADS = 8  # per process: the issue asks for >= 4 processes and >= 8 threads
SECONDS = float(os.environ.get("KVLITE_CONCURRENCY_SECONDS", "3"))
HELPER = Path(hp.__file__).resolve()


def spawn(command: str, args: dict[str, Any]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(HELPER), command, json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(procs: list[subprocess.Popen[bytes]], limit: float = 180) -> None:
    """Wait for every process; fail with its stderr if one failed."""
    failures = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0:
            failures.append(err.decode())
    assert not failures, "\n".join(failures)


def start_together(tmp_path: Path, ready: list[Path], procs: list[subprocess.Popen[bytes]]) -> None:
    """Release every worker at once (each waits for the ``go`` file after opening the store)."""
    for path in ready:
        while not path.exists():
            if any(proc.poll() is not None for proc in procs):  # a worker died before the start
                finish(procs)
                raise AssertionError("a worker exited before the start signal")
            time.sleep(0.01)
    (tmp_path / "go").write_text("go")


def test_processes_and_threads_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "hammer.db"
    with kvlite.open(path) as store:
        store.collection("pool").put_many((f"tok{i}", i) for i in range(hp.POOL_SIZE))
        store.collection("accounts").put_many((f"a{i}", hp.ACCOUNT_START) for i in range(hp.ACCOUNTS))
        for name in ("counters", "defaults", "batches"):
            store.collection(name)

    procs, ready, outs = [], [], []
    for p in range(PROCESSES):
        ready.append(tmp_path / f"ready-{p}")
        outs.append(tmp_path / f"out-{p}.json")
        procs.append(spawn("hammer", {
            "path": str(path), "tag": f"p{p}", "threads": THREADS, "seconds": SECONDS, "seed": 4,
            "ready": str(ready[-1]), "go": str(tmp_path / "go"), "out": str(outs[-1])}))
    start_together(tmp_path, ready, procs)
    finish(procs)
    threads = [result for out in outs for result in json.loads(out.read_text())]
    assert len(threads) == PROCESSES * THREADS

    errors = [e for t in threads for e in t["errors"]]
    assert errors == []

    with kvlite.open(path) as store:
        counters = dict(store.collection("counters").items())
        defaults = dict(store.collection("defaults").items())
        pool = dict(store.collection("pool").items())
        batches = list(store.collection("batches").items())
        accounts = dict(store.collection("accounts").items())
        assert store.engine.connection().execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    # Atomic read-modify-write: no lost increment.
    increments: dict[str, int] = {}
    for t in threads:
        for key, n in t["incr"].items():
            increments[key] = increments.get(key, 0) + n
    assert counters == increments

    # setdefault: exactly one winner per key, and the stored value is the winner's.
    winners: dict[str, list[str]] = {}
    for t in threads:
        for key in t["won"]:
            winners.setdefault(key, []).append(t["token"])
    assert all(len(w) == 1 for w in winners.values()), {k: w for k, w in winners.items() if len(w) > 1}
    assert defaults == {key: w[0] for key, w in winners.items()}

    # pop: no token popped twice; popped and remaining partition the pool.
    popped = [i for t in threads for i in t["popped"]]
    assert len(popped) == len(set(popped))
    remaining = {int(k[3:]) for k in pool}
    assert remaining.isdisjoint(popped)
    assert remaining | set(popped) == set(range(hp.POOL_SIZE))
    assert all(pool[f"tok{i}"] == i for i in remaining)

    # put_many: every reported batch is there, whole, and nothing else.
    expected = {f"{name}:{j}": {"batch": name, "n": n} for t in threads for name, n in t["batches"] for j in range(n)}
    assert dict(batches) == expected
    assert len(batches) == len(expected)

    # Transfers in transactions keep the total.
    assert sum(accounts.values()) == hp.ACCOUNTS * hp.ACCOUNT_START

    ops = {op: sum(t["ops"].get(op, 0) for t in threads)
           for op in ("incr", "setdefault", "pop", "put_many", "transfer")}
    print(f"\n[concurrency] {PROCESSES} processes x {THREADS} threads, {SECONDS}s: ops={ops} "
          f"increments={sum(increments.values())} popped={len(popped)} batch entries={len(expected)} lost=0")
    assert all(n > 0 for n in ops.values()), ops  # every kind of operation really raced


def test_streaming_reader_and_writers_both_progress(tmp_path: Path) -> None:
    rows = 12_000  # twelve pages of iteration
    path = tmp_path / "stream.db"
    with kvlite.open(path) as store:
        store.collection("stream").put_many((f"k{i}", {"orig": i, "ver": 0}) for i in range(rows))
        store.collection("progress")

    go, stop = tmp_path / "go", tmp_path / "stop"
    writers, ready, outs = [], [], []
    for w in range(3):
        ready.append(tmp_path / f"ready-w{w}")
        outs.append(tmp_path / f"out-w{w}.json")
        writers.append(spawn("stream-writer", {
            "path": str(path), "tag": f"w{w}", "rows": rows, "ready": str(ready[-1]), "go": str(go),
            "stop": str(stop), "out": str(outs[-1])}))
    ready.append(tmp_path / "ready-r")
    reader_out = tmp_path / "out-r.json"
    reader = spawn("stream-reader", {
        "path": str(path), "rows": rows, "wait_for_writes": 200, "ready": str(ready[-1]), "go": str(go),
        "out": str(reader_out)})
    try:
        start_together(tmp_path, ready, writers + [reader])
        finish([reader])
    finally:
        stop.write_text("stop")
        finish(writers)

    result = json.loads(reader_out.read_text())
    assert result["bad"] == []
    # Writers committed while the reader was parked half-way through its iteration.
    assert result["during"] >= result["before"] + 200
    # Every entry that existed before was seen exactly once, in insertion order; new ones only after them.
    seen = result["seen"]
    assert seen[:rows] == [f"k{i}" for i in range(rows)]
    assert len(seen) == len(set(seen))
    assert all(k.startswith("new:") for k in seen[rows:])
    written = sum(json.loads(out.read_text())["writes"] for out in outs)
    assert written >= 200
    with kvlite.open(path) as store:
        assert store.collection("progress").count() == 3
        assert sum(v for _, v in store.collection("progress").items()) == written


@pytest.mark.parametrize("target", [":memory:", "file"])
def test_compound_writes_read_the_clock_once_they_hold_the_write_lock(tmp_path: Any, target: str) -> None:
    """An entry that expires while setdefault/pop/popitem/delete_many/purge_expired wait for another
    writer's lock is expired for them, as for every read made after the wait."""
    db = kvlite.open(":memory:" if target == ":memory:" else tmp_path / "c.db")
    c = db.collection("c")
    held = threading.Event()

    def hold_the_lock() -> None:
        with db.transaction():
            held.set()
            time.sleep(0.6)

    def while_locked(call: Any) -> Any:
        c.clear()
        c.put("k", "old", ttl=0.3)
        held.clear()
        other = threading.Thread(target=hold_the_lock)
        other.start()
        held.wait()
        try:
            return call()
        finally:
            other.join()

    assert while_locked(lambda: c.setdefault("k", "new")) == "new" and c.get("k") == "new"
    assert while_locked(lambda: c.pop("k", "default")) == "default"
    with pytest.raises(KeyError):
        while_locked(c.popitem)
    assert while_locked(lambda: c.delete_many(["k"])) == 0
    assert while_locked(db.purge_expired) == 1
    db.close()
