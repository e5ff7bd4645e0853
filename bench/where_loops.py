"""``patch_where`` against the Python loops an application writes instead (issue 14).

``python -m bench.where_loops [--n 100000] [--repeats 3]``: 100k small (~100 B) documents, 1% selected
by ``$[?@.group == 7]`` (SQL decides it exactly), patched with ``{"status": "seen"}``, on a fresh copy
of the file each run, without and with an index on ``$.group``:

- ``patch_where``: one ``UPDATE ... json_patch`` statement;
- ``find + put, one transaction``: the loop inside ``store.transaction()`` (what bench.documents
  compares with: the fair loop);
- ``find + put, a commit per put``: the loop as written without a transaction (each ``put`` its own
  commit: what an application gets by default, and the lost-update risk ``patch_where`` removes).

Medians of the repeats, wall time, including a WAL checkpoint after the call.  ``--durability full``
syncs every commit to disk, which the loop without a transaction pays once per document.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import apsw

import kvlite

QUERY = "$[?@.group == 7]"
PATCH = {"status": "seen"}


def _fill(path: Path, n: int, index: bool) -> None:
    with kvlite.open(path) as db:
        coll = db.collection("docs")
        coll.put_many((f"k{i:07d}", {"id": i, "group": i % 100, "status": "new", "name": f"n{i}"}) for i in range(n))
        if index:
            coll.create_index("$.group")


def _run(path: Path, how: str, durability: str) -> float:
    with kvlite.open(path, durability=durability) as db:
        coll = db.collection("docs")
        started = time.perf_counter()
        if how == "patch_where":
            coll.patch_where(QUERY, PATCH)
        elif how == "one transaction":
            with db.transaction():
                for key, doc in coll.find(QUERY):
                    coll.put(key, {**doc, **PATCH})
        else:
            for key, doc in list(coll.find(QUERY)):
                coll.put(key, {**doc, **PATCH})
        side = apsw.Connection(str(path))
        side.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        side.close()
        elapsed = time.perf_counter() - started
        assert coll.count("$[?@.status == 'seen']") == len(coll) // 100
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--durability", choices=("normal", "full"), default="normal",
                        help="full: every commit is synced to disk (the loop without a transaction pays it per put)")
    args = parser.parse_args()
    hows = ("patch_where", "one transaction", "a commit per put")
    print(f"{args.n:,} documents of ~100 B, 1% selected, durability={args.durability}; median of "
          f"{args.repeats} (wall, with a checkpoint)\n")
    print("| index | patch_where | find + put, one transaction | find + put, a commit per put "
          "| speed-up vs one transaction | speed-up vs a commit per put |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for index in (False, True):
            template = Path(tmp) / f"template-{index}.db"
            _fill(template, args.n, index)
            times: dict[str, list[float]] = {how: [] for how in hows}
            for _ in range(args.repeats):
                for how in hows:
                    copy = Path(tmp) / "run.db"
                    shutil.copyfile(template, copy)
                    times[how].append(_run(copy, how, args.durability))
                    for suffix in ("", "-wal", "-shm"):
                        Path(str(copy) + suffix).unlink(missing_ok=True)
            med = {how: statistics.median(values) for how, values in times.items()}
            print(f"| {'$.group' if index else 'none'} | {med['patch_where'] * 1000:.1f} ms "
                  f"| {med['one transaction'] * 1000:.1f} ms | {med['a commit per put'] * 1000:.1f} ms "
                  f"| {med['one transaction'] / med['patch_where']:.2f}x "
                  f"| {med['a commit per put'] / med['patch_where']:.1f}x |")


if __name__ == "__main__":
    main()
