"""What the py-key-value bridge costs (issue 16): a py-key-value store used directly, and the same
store object used through ``kvlite.open(store)``.

    python -m bench.pykv_bridge              # 5 repeats, 10,000 ops per cell (~2 minutes)
    python -m bench.pykv_bridge --quick      # 3 repeats, 2,000 ops per cell (~20 s)
    python -m bench.pykv_bridge --stores MemoryStore --sizes small --workloads put,get

Standalone: it does not use the rest of ``bench``.  Everything runs in this process; each run
of a cell gets a new store object (``DiskStore``: in a new temporary folder, removed after), the
runs go round-robin over the three ways of a row (so a slow moment of the machine hits all of
them alike), and the tables show the median of the repeats.

Stores: py-key-value's ``MemoryStore`` and ``DiskStore`` (py-key-value-aio, the ``pykv``
extra).  Documents (pools of 100 distinct dicts; key ``"k%06d" % i`` holds ``pool[i % 100]``):
*small* ``{"id", "name", "email", "age", "active", "tags"}`` (~100 bytes of JSON), *large* the
same with a ``bio`` text (~5 KB).  The exact sizes are printed with the tables.

Workloads (ops = entries):

* ``put``: one ``put`` of a new key at a time;
* ``get``: one ``get`` of an existing key at a time (the store filled before the clock);
* ``put_many``: ``put_many`` of 100 new keys per call;
* ``get_many``: ``get_many`` of 100 existing keys per call.

Ways (the columns):

* ``direct async``: py-key-value as it is meant to be used: one event loop, each call awaited in
  turn inside one coroutine (``asyncio.run`` of the whole loop);
* ``direct sync``: what a sync program does without kvlite: one event loop kept open and
  ``loop.run_until_complete(store.put(...))`` per call (``asyncio.run`` per call would be slower
  still);
* ``kvlite``: ``kvlite.open(store).collection("bench")`` and its ``put``/``get``/``put_many``/
  ``get_many`` (JSON serializer: the same dict is stored).

Ratios: kvlite's ops/s divided by each direct way's.  Issue 16's target: the bridge costs at
most 30%, i.e. ``kvlite / direct async >= 0.7``.  After the clock every cell checks what it did
(the last value read equals the document written, or the store holds the keys written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

warnings.filterwarnings("ignore", message="A configured store is unstable")

BATCH = 100
POOL = 100
STORES = ["MemoryStore", "DiskStore"]
SIZES = ["small", "large"]
WORKLOADS = ["put", "get", "put_many", "get_many"]
WAYS = ["direct async", "direct sync", "kvlite"]


def documents(size: str) -> list[dict[str, Any]]:
    """The pool of documents of one size (see the module docstring)."""
    pool = []
    for i in range(POOL):
        doc: dict[str, Any] = {"id": i, "name": f"user {i}", "email": f"user{i}@example.org", "age": 20 + i % 50,
                               "active": i % 2 == 0, "tags": ["a", "b"][: i % 3]}
        if size == "large":
            doc["bio"] = (f"Biography of user {i}. " * 240)[:4900]
        pool.append(doc)
    return pool


class Cell:
    """One (store, size, workload) row: makes a store per run, and times one way on it."""

    def __init__(self, store: str, size: str, workload: str, ops: int) -> None:
        self.store, self.size, self.workload = store, size, workload
        self.ops = ops - ops % BATCH
        self.pool = documents(size)
        self.keys = [f"k{i:06d}" for i in range(self.ops)]
        self.folders: list[str] = []

    def make(self) -> Any:
        if self.store == "MemoryStore":
            from key_value.aio.stores.memory import MemoryStore

            return MemoryStore()
        from key_value.aio.stores.disk import DiskStore

        folder = tempfile.mkdtemp(prefix="kvlite-bench-pykv-")
        self.folders.append(folder)
        return DiskStore(directory=folder)

    def cleanup(self) -> None:
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)
        self.folders.clear()

    async def _fill(self, store: Any) -> None:
        for start in range(0, self.ops, BATCH):
            keys = self.keys[start:start + BATCH]
            await store.put_many(keys, [self.pool[i % POOL] for i in range(start, start + len(keys))],
                                 collection="bench")

    def _check(self, got: Any, i: int) -> None:
        if got != self.pool[i % POOL]:
            raise AssertionError(f"{self.store} {self.workload}: key {self.keys[i]} read back {got!r:.80}")

    def run(self, way: str) -> float:
        """Seconds for ``self.ops`` operations in ``way`` on a new store (filled first for reads)."""
        store = self.make()
        try:
            return {"direct async": self._direct_async, "direct sync": self._direct_sync,
                    "kvlite": self._kvlite}[way](store)
        finally:
            self.cleanup()

    def _direct_async(self, store: Any) -> float:
        keys, pool, ops, workload = self.keys, self.pool, self.ops, self.workload

        async def main() -> float:
            await store.setup()
            if workload.startswith("get"):
                await self._fill(store)
            else:  # the collection set up before the clock, as kvlite's is by collection()
                await store.setup_collection(collection="bench")
            start = time.perf_counter()
            if workload == "put":
                for i in range(ops):
                    await store.put(keys[i], pool[i % POOL], collection="bench")
            elif workload == "get":
                for i in range(ops):
                    got = await store.get(keys[i], collection="bench")
            elif workload == "put_many":
                for b in range(0, ops, BATCH):
                    await store.put_many(keys[b:b + BATCH], [pool[i % POOL] for i in range(b, b + BATCH)],
                                         collection="bench")
            else:
                for b in range(0, ops, BATCH):
                    many = await store.get_many(keys[b:b + BATCH], collection="bench")
                got = many[-1]
            seconds = time.perf_counter() - start
            if workload.startswith("get"):
                self._check(got, ops - 1)
            else:
                self._check(await store.get(keys[ops - 1], collection="bench"), ops - 1)
            if hasattr(store, "close"):
                await store.close()
            return seconds

        return asyncio.run(main())

    def _direct_sync(self, store: Any) -> float:
        keys, pool, ops, workload = self.keys, self.pool, self.ops, self.workload
        loop = asyncio.new_event_loop()
        run = loop.run_until_complete
        try:
            run(store.setup())
            if workload.startswith("get"):
                run(self._fill(store))
            else:
                run(store.setup_collection(collection="bench"))
            start = time.perf_counter()
            if workload == "put":
                for i in range(ops):
                    run(store.put(keys[i], pool[i % POOL], collection="bench"))
            elif workload == "get":
                for i in range(ops):
                    got = run(store.get(keys[i], collection="bench"))
            elif workload == "put_many":
                for b in range(0, ops, BATCH):
                    run(store.put_many(keys[b:b + BATCH], [pool[i % POOL] for i in range(b, b + BATCH)],
                                       collection="bench"))
            else:
                for b in range(0, ops, BATCH):
                    many = run(store.get_many(keys[b:b + BATCH], collection="bench"))
                got = many[-1]
            seconds = time.perf_counter() - start
            if workload.startswith("get"):
                self._check(got, ops - 1)
            else:
                self._check(run(store.get(keys[ops - 1], collection="bench")), ops - 1)
            if hasattr(store, "close"):
                run(store.close())
            return seconds
        finally:
            loop.close()

    def _kvlite(self, store: Any) -> float:
        import kvlite

        keys, pool, ops, workload = self.keys, self.pool, self.ops, self.workload
        db = kvlite.open(store)
        try:
            c = db.collection("bench")
            if workload.startswith("get"):
                db.engine.call(self._fill(store))
            start = time.perf_counter()
            if workload == "put":
                put = c.put
                for i in range(ops):
                    put(keys[i], pool[i % POOL])
            elif workload == "get":
                get = c.get
                for i in range(ops):
                    got = get(keys[i])
            elif workload == "put_many":
                for b in range(0, ops, BATCH):
                    c.put_many([(keys[i], pool[i % POOL]) for i in range(b, b + BATCH)])
            else:
                for b in range(0, ops, BATCH):
                    many = c.get_many(keys[b:b + BATCH])
                got = many[-1]
            seconds = time.perf_counter() - start
            self._check(got if workload.startswith("get") else c.get(keys[ops - 1]), ops - 1)
            return seconds
        finally:
            db.close()
            if hasattr(store, "close"):
                asyncio.run(store.close())


def measure(stores: list[str], sizes: list[str], workloads: list[str], ops: int, repeats: int,
            log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """One row per (store, size, workload): median seconds and ops/s per way, and the ratios."""
    rows = []
    for store in stores:
        for size in sizes:
            for workload in workloads:
                cell = Cell(store, size, workload, ops)
                times: dict[str, list[float]] = {way: [] for way in WAYS}
                for r in range(repeats):
                    order = WAYS[r % len(WAYS):] + WAYS[:r % len(WAYS)]  # rotated each repeat
                    for way in order:
                        times[way].append(cell.run(way))
                medians = {way: statistics.median(t) for way, t in times.items()}
                row: dict[str, Any] = {"store": store, "size": size, "workload": workload, "ops": cell.ops,
                                       "ops_per_s": {way: cell.ops / m for way, m in medians.items()},
                                       "runs": times}
                row["kvlite/async"] = row["ops_per_s"]["kvlite"] / row["ops_per_s"]["direct async"]
                row["kvlite/sync"] = row["ops_per_s"]["kvlite"] / row["ops_per_s"]["direct sync"]
                log(f"  {store:11} {size:5} {workload:8} kvlite/async {row['kvlite/async']:.2f}  "
                    f"kvlite/sync {row['kvlite/sync']:.2f}")
                rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    sizes = {size: len(json.dumps(documents(size)[0], separators=(",", ":"))) for size in SIZES}
    out = [f"Documents: small ~{sizes['small']} B, large ~{sizes['large']} B of JSON. Ops/s = entries per second "
           "(median of the repeats).", "",
           "| store | doc | workload | direct async ops/s | direct sync ops/s | kvlite ops/s | kvlite / async | "
           "kvlite / sync |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        speed = row["ops_per_s"]
        out.append(f"| {row['store']} | {row['size']} | {row['workload']} | {speed['direct async']:,.0f} | "
                   f"{speed['direct sync']:,.0f} | {speed['kvlite']:,.0f} | {row['kvlite/async']:.2f} | "
                   f"{row['kvlite/sync']:.2f} |")
    missed = [row for row in rows if row["kvlite/async"] < 0.7]
    out.append("")
    out.append("Target (kvlite / direct async >= 0.70): " + (
        "met in every row." if not missed else
        "missed in " + ", ".join(f"{r['store']}/{r['size']}/{r['workload']} ({r['kvlite/async']:.2f})"
                                 for r in missed) + "."))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pykv_bridge", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of 2,000 ops per cell")
    parser.add_argument("--ops", type=int, help="operations per cell (default 10,000; --quick: 2,000)")
    parser.add_argument("--repeats", type=int, help="runs per cell (default 5; --quick: 3)")
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated: " + ", ".join(STORES))
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: small, large")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: " + ", ".join(WORKLOADS))
    parser.add_argument("--out", help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)
    chosen = {"stores": args.stores.split(","), "sizes": args.sizes.split(","), "workloads": args.workloads.split(",")}
    for what, known in (("stores", STORES), ("sizes", SIZES), ("workloads", WORKLOADS)):
        unknown = set(chosen[what]) - set(known)
        if unknown:
            parser.error(f"unknown {what}: {', '.join(sorted(unknown))}")
    ops = args.ops or (2000 if args.quick else 10_000)
    repeats = args.repeats or (3 if args.quick else 5)
    print(f"py-key-value bridge: {ops} ops per cell, {repeats} repeats")
    rows = measure(chosen["stores"], chosen["sizes"], chosen["workloads"], max(ops, BATCH), repeats)
    print()
    print(table(rows))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
