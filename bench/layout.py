"""Two writers on two collections: one SQLite file vs one file per collection.

    python -m bench.layout [--writes N] [--repeats R]

Each of two processes writes N entries, one transaction each, to its *own*
collection, at the same time.  In one file the two share one write lock; in
the ``per-collection`` layout each collection is its own file with its own
lock, so they do not wait for each other.  Prints a Markdown table of the
median total throughput (both writers together) for each layout.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time

import kvlite


def _writer(target: str, layout: str, collection: str, writes: int, start: multiprocessing.Event) -> None:
    store = kvlite.open(target, layout=layout)
    coll = store.collection(collection)
    doc = {"name": "x" * 40, "n": 0}
    start.wait()
    for i in range(writes):
        with coll.transaction():
            coll.put(i, doc)
    store.close()


def run_once(layout: str, writes: int) -> float:
    """Entries per second written by both writers together."""
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "one.db") if layout == "single" else os.path.join(tmp, "folder")
        with kvlite.open(target, layout=layout) as store:  # create both collections up front
            store.collection("a")
            store.collection("b")
        ctx = multiprocessing.get_context("fork")
        start = ctx.Event()
        procs = [ctx.Process(target=_writer, args=(target, layout, name, writes, start)) for name in ("a", "b")]
        for proc in procs:
            proc.start()
        time.sleep(0.2)  # both opened their store
        began = time.perf_counter()
        start.set()
        for proc in procs:
            proc.join()
            if proc.exitcode != 0:
                raise RuntimeError(f"a writer failed with exit code {proc.exitcode}")
        return 2 * writes / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.layout", description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=5000, help="transactions per writer")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results = {}
    for layout in ("single", "per-collection"):
        results[layout] = statistics.median(run_once(layout, args.writes) for _ in range(args.repeats))
    print(f"| layout (2 processes, {args.writes} transactions each, own collection) | writes/s | ratio |")
    print("|---|---:|---:|")
    for layout, rate in results.items():
        print(f"| {layout} | {rate:,.0f} | {rate / results['single']:.2f} |")


if __name__ == "__main__":
    main()
