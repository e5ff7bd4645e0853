"""What the change feed costs (issue 15): writes with and without ``collection(name, changes=True)``,
and reading the feed back.

    python -m bench.changes                    # 5 repeats (~5 minutes on an idle 2-core machine)
    python -m bench.changes --quick            # smaller counts, 3 repeats (~1 minute)
    python -m bench.changes --no-base          # skip the build before the feature
    python -m bench.changes --repeats 7 --workloads bulk,single

Standalone: it does not use the rest of ``bench``.  Every measurement runs in a new interpreter
(this file run as a script with ``PYTHONPATH`` set to the kvlite tree it measures), in a fresh
temporary folder; the repeats go round-robin over the cells of a row group (the order rotated
by one each repeat), and the tables show the median.

Documents (pools of 1000 distinct dicts; document ``j`` is ``pool[j % 1000]`` under key
``"k%08d" % j``): *small* ``{"id", "name", "email", "age", "active", "tags"}`` (~100 bytes of
JSON), *large* the same with a ``bio`` text (~5 KB).  The exact sizes are printed with the tables.

Variants of a write row (the collection written is always ``c``, JSON serializer):

* ``base``: the build before the feature (``--base REV``, default 61c894a), checked out with
  ``git worktree add`` into the temporary folder (removed at the end), ``collection("c")``;
* ``plain``: this build, no collection of the store records changes;
* ``other-logged``: this build, another collection of the same store has ``changes=True`` (and
  one change logged), ``c`` does not: requirement (1), the same cost as ``plain``/``base``;
* ``changes``: ``collection("c", changes=True)``: requirement (2).

Workloads:

* ``bulk``: ``put_many`` of 10,000 new keys per call (``--bulk-calls`` calls, fewer for large
  documents); ops = entries;
* ``single``: ``put`` of one new key at a time, each its own committed transaction (file store,
  default durability ``normal``: WAL, ``synchronous=NORMAL``); ``--single`` puts, a multiple
  of 1024 so the retention trim that runs every 1024 writes through a collection object is
  paid exactly as often as in the long run;
* ``steady``: the same single puts into a collection whose log is already full (the default
  retention keeps 100,000 changes; ``--steady-log`` changes made by 10,000-entry ``put_many``
  overwrites), against ``plain`` on the same documents without a log;
* ``read``: ``list(store.changes(since=0))`` of ``--steady-log`` changes (the ``steady``
  file, read in place); ops = changes.

Engines: a file store in a temporary folder, and ``memory://`` for contrast (filled in the
measuring process before the clock when a row needs data).  On a file store the time of a write
row ends after a ``PRAGMA wal_checkpoint(PASSIVE)`` from a second connection, so every variant
pays for copying the pages it wrote into the database file (SQLite checkpoints by itself after
1000 pages in the WAL; without this, whether a run pays the last checkpoint is luck).  Before
the clock each cell writes (or reads) once, so statements are prepared.  After the clock the
counts are checked (entries in ``c``, and ``last_change_seq()`` moved by exactly the writes), and
a read row checks the count and the last change's key and value.

CPU time (``time.process_time()`` of the measuring process over the timed part) is shown beside
wall time: on a shared, noisy machine it is the steadier of the two, though it misses time spent
waiting on the disk.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    # Run as a file (a measuring child): this file's folder must not shadow anything.
    sys.path.pop(0)

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

#: The folder holding the ``kvlite`` package measured by default (this repository).
PACKAGE_PARENT = Path(__file__).resolve().parent.parent
#: The commit before the change feed (issue 15).
DEFAULT_BASE = "61c894a"

BATCH = 10_000
POOL = 1000

WORKLOADS = ("bulk", "single", "steady", "read")
TITLES = {
    "bulk": "put_many, 10,000 new keys per call",
    "single": "put, one new key per transaction",
    "steady": "put, one new key per transaction, log already full",
    "read": "list(store.changes(since=0))",
}
UNITS = {"bulk": "entries", "single": "puts", "steady": "puts", "read": "changes"}
VARIANT_TITLES = {
    "base": "base (before the feature)",
    "plain": "plain (no log in the store)",
    "other": "other-logged (another collection logs)",
    "changes": "changes=True",
}


# -- documents ---------------------------------------------------------------------------------

_WORDS = ("change", "feed", "trigger", "store", "document", "value", "commit", "sequence", "follower",
          "snapshot", "retention", "journal", "page", "index", "collection", "writer", "reader", "key")


def pool(size: str) -> list[dict[str, Any]]:
    """The 1000 distinct documents of ``size`` (``small``: ~100 bytes of JSON, ``large``: ~5 KB)."""
    docs = []
    for i in range(POOL):
        doc: dict[str, Any] = {"id": i, "name": f"user{i:05d}", "email": f"user{i:05d}@example.com",
                               "age": i % 100, "active": i % 3 == 0, "tags": ["a", "b"]}
        if size == "large":
            rng = random.Random(i)
            target = 4600 + (i * 7919) % 800  # 4.6-5.4 KB of text
            words: list[str] = []
            length = 0
            while length < target:
                word = rng.choice(_WORDS)
                words.append(word)
                length += len(word) + 1
            doc["bio"] = " ".join(words)
        docs.append(doc)
    return docs


def doc_bytes(size: str) -> dict[str, float]:
    """Min, mean and max bytes of the pool's documents as JSON text (orjson)."""
    import orjson

    sizes = [len(orjson.dumps(d)) for d in pool(size)]
    return {"min": min(sizes), "mean": sum(sizes) / len(sizes), "max": max(sizes)}


# -- the measuring child -----------------------------------------------------------------------

def _open_collection(store: Any, variant: str, docs: list[dict[str, Any]]) -> Any:
    if variant == "other":
        store.collection("logged", changes=True).put("x", docs[0])
    if variant == "changes":
        return store.collection("c", changes=True)
    return store.collection("c")  # the only form the base build knows


def _fill(coll: Any, docs: list[dict[str, Any]], changes: int) -> None:
    """``changes`` writes to ``c``: ``put_many`` of keys k00000000.. in batches of 10,000, over
    and over the same (at most 10,000) keys."""
    keys = min(changes, BATCH)
    done = 0
    while done < changes:
        coll.put_many([(f"k{j:08d}", docs[j % POOL]) for j in range(min(keys, changes - done))])
        done += min(keys, changes - done)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """One cell in this (fresh) process; see the module docstring."""
    import gc

    import kvlite

    where = os.path.realpath(kvlite.__file__)
    if not where.startswith(os.path.realpath(spec["root"]) + os.sep):
        raise RuntimeError(f"kvlite imported from {where}, not from {spec['root']}")
    docs = pool(spec["size"])
    work, engine, variant = spec["workload"], spec["engine"], spec["variant"]
    path = os.path.join(spec["folder"], "store.db")
    store = kvlite.open(path if engine == "file" else "memory://")

    if work == "populate":  # a template file for steady/read
        coll = _open_collection(store, variant, docs)
        _fill(coll, docs, spec["log"])
        store.close()
        return {"kvlite": where}

    coll = _open_collection(store, variant, docs)
    if engine == "memory" and work in ("steady", "read"):
        _fill(coll, docs, spec["log"])
    logged = variant == "changes"

    checkpoint = None
    if engine == "file" and work != "read":
        import apsw

        checkpoint = apsw.Connection(path)

    # Inputs, and one untimed call of the same kind (statements prepared, code paths warm).
    if work == "bulk":
        batches = [[(f"n{j:08d}", docs[j % POOL]) for j in range(c * BATCH, (c + 1) * BATCH)]
                   for c in range(spec["calls"])]
        coll.put_many([("warm", docs[0])])
    elif work in ("single", "steady"):
        pairs = [(f"n{j:08d}", docs[j % POOL]) for j in range(spec["puts"])]
        coll.put("warm", docs[0])
    else:
        last = store.last_change_seq()
        list(store.changes(since=max(0, last - 1)))
    count_before = len(coll)
    seq_before = store.last_change_seq() if logged else 0
    gc.collect()

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if work == "bulk":
        put_many = coll.put_many
        for batch in batches:
            put_many(batch)
    elif work in ("single", "steady"):
        put = coll.put
        for key, value in pairs:
            put(key, value)
    else:
        got = list(store.changes(since=0))
    if checkpoint is not None:
        checkpoint.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - cpu0

    if work == "read":
        ops = len(got)
        if ops != spec["log"] or got[-1].seq != store.last_change_seq():
            raise RuntimeError(f"read {ops} changes (last seq {got[-1].seq if got else None}), "
                               f"expected {spec['log']} (last seq {store.last_change_seq()})")
        j = (spec["log"] % BATCH or min(spec["log"], BATCH)) - 1  # the last key _fill wrote
        if got[-1].key != f"k{j:08d}" or got[-1].op != "put" or got[-1].value != docs[j % POOL]:
            raise RuntimeError(f"the last change is not what was written: {got[-1]!r:.200}")
    else:
        ops = sum(len(b) for b in batches) if work == "bulk" else len(pairs)
        if len(coll) != count_before + ops:
            raise RuntimeError(f"{len(coll) - count_before} entries added, expected {ops}")
        if logged and store.last_change_seq() - seq_before != ops:
            raise RuntimeError(f"{store.last_change_seq() - seq_before} changes logged, expected {ops}")
    if checkpoint is not None:
        checkpoint.close()
    store.close()
    return {"ops": ops, "seconds": seconds, "cpu_seconds": cpu_seconds, "kvlite": where}


# -- the parent --------------------------------------------------------------------------------

def _child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run :func:`measure` in a new interpreter importing kvlite from ``spec["root"]``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (spec["root"], env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                          cwd=spec["folder"], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"exit {proc.returncode}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=PACKAGE_PARENT, capture_output=True, text=True, timeout=120,
                          check=False)


def _cells(work: str, engines: list[str], base: bool) -> list[tuple[str, str]]:
    """The (engine, variant) cells of a row group."""
    variants = {"bulk": ["base", "plain", "other", "changes"], "single": ["base", "plain", "other", "changes"],
                "steady": ["plain", "changes"], "read": ["changes"]}[work]
    return [(e, v) for e in engines for v in variants if base or v != "base"]


def run(args: argparse.Namespace, log: Any = lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="kvlite-bench-changes-", dir=args.tmp))
    base_root = None
    notes: list[str] = []
    results: list[dict[str, Any]] = []
    started = time.time()
    try:
        if args.base:
            base_root = root / "base"
            added = _git("worktree", "add", "--detach", str(base_root), args.base)
            if added.returncode != 0:
                notes.append(f"no base build: git worktree add failed: {added.stderr.strip()}")
                log(notes[-1])
                base_root = None
        templates: dict[tuple[str, str], Path] = {}
        for work in args.workloads:
            for size in args.sizes:
                cells = _cells(work, args.engines, base_root is not None)
                if work in ("steady", "read") and "file" in args.engines:
                    for variant in {v for e, v in cells if e == "file"}:
                        if (variant, size) in templates:
                            continue
                        folder = root / "templates" / f"{variant}-{size}"
                        folder.mkdir(parents=True)
                        log(f"  filling a {variant} file with {args.steady_log:,} {size} changes")
                        _child({"workload": "populate", "engine": "file", "variant": variant, "size": size,
                                "log": args.steady_log, "folder": str(folder), "root": str(PACKAGE_PARENT)},
                               args.timeout)
                        templates[(variant, size)] = folder
                runs: dict[tuple[str, str], list[dict[str, Any]]] = {c: [] for c in cells}
                errors: dict[tuple[str, str], str] = {}
                for rep in range(args.repeats):
                    shift = rep % len(cells)
                    for engine, variant in cells[shift:] + cells[:shift]:
                        if (engine, variant) in errors:
                            continue
                        spec = {"workload": work, "engine": engine, "variant": variant, "size": size,
                                "calls": args.bulk_calls if size == "small" else args.bulk_calls_large,
                                "puts": args.single, "log": args.steady_log,
                                "root": str(base_root if variant == "base" else PACKAGE_PARENT)}
                        folder = root / "cells" / f"{work}-{size}-{engine}-{variant}-{rep}"
                        own = True
                        if engine == "file" and work == "steady":
                            shutil.copytree(templates[(variant, size)], folder)
                        elif engine == "file" and work == "read":
                            folder, own = templates[(variant, size)], False  # read in place
                        else:
                            folder.mkdir(parents=True)
                        spec["folder"] = str(folder)
                        try:
                            out = _child(spec, args.timeout)
                        except (RuntimeError, subprocess.TimeoutExpired) as exc:
                            errors[(engine, variant)] = str(exc)
                            log(f"  {work} {size} {engine} {variant}: FAILED: {exc}")
                            continue
                        finally:
                            if own:
                                shutil.rmtree(folder, ignore_errors=True)
                        out["ops_per_s"] = out["ops"] / out["seconds"]
                        out["ops_per_cpu_s"] = out["ops"] / out["cpu_seconds"] if out["cpu_seconds"] > 0 else None
                        runs[(engine, variant)].append(out)
                        log(f"  {work} {size} {engine} {variant} #{rep + 1}: {out['ops_per_s']:,.0f} "
                            f"{UNITS[work]}/s ({out['ops_per_cpu_s'] or 0:,.0f} per CPU s)")
                results.extend(_summarize(work, size, cells, runs, errors))
    finally:
        if base_root is not None:
            removed = _git("worktree", "remove", "--force", str(base_root))
            if removed.returncode != 0:
                log(f"git worktree remove failed: {removed.stderr.strip()}")
            _git("worktree", "prune")
        shutil.rmtree(root, ignore_errors=True)
    return {"meta": _meta(args, started, notes), "cells": results}


def _summarize(work: str, size: str, cells: list[tuple[str, str]], runs: dict[tuple[str, str], list[dict[str, Any]]],
               errors: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    out = []
    for engine, variant in cells:
        got = runs[(engine, variant)]
        cell: dict[str, Any] = {"workload": work, "size": size, "engine": engine, "variant": variant, "runs": got}
        if got:
            cell["ops"] = got[0]["ops"]
            cell["ops_per_s"] = statistics.median(r["ops_per_s"] for r in got)
            if all(r["ops_per_cpu_s"] for r in got):
                cell["ops_per_cpu_s"] = statistics.median(r["ops_per_cpu_s"] for r in got)
            rates = [r["ops_per_s"] for r in got]
            cell["spread"] = (max(rates) - min(rates)) / cell["ops_per_s"]
        if (engine, variant) in errors:
            cell["error"] = errors[(engine, variant)]
        out.append(cell)
    return out


def _meta(args: argparse.Namespace, started: float, notes: list[str]) -> dict[str, Any]:
    import platform
    from importlib.metadata import version

    import apsw

    rev = _git("describe", "--always", "--dirty").stdout.strip() or None
    dirty = [line[3:] for line in _git("status", "--porcelain", "--untracked-files=no").stdout.splitlines()]
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "minutes": (time.time() - started) / 60,
        "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
        "git": rev, "modified": dirty, "base": args.base,
        "versions": {"apsw": version("apsw"), "orjson": version("orjson"), "sqlite": apsw.sqlite_lib_version()},
        "doc_bytes": {s: doc_bytes(s) for s in args.sizes},
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "out")},
        "notes": notes,
    }


# -- the report --------------------------------------------------------------------------------

def _find(cells: list[dict[str, Any]], work: str, size: str, engine: str, variant: str) -> dict[str, Any] | None:
    for c in cells:
        if (c["workload"], c["size"], c["engine"], c["variant"]) == (work, size, engine, variant):
            return c if "ops_per_s" in c else None
    return None


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
    if a is None or b is None or not a.get(key) or not b.get(key):
        return None
    return a[key] / b[key]


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "n/a" if x is None else format(x, spec)


#: The targets of issue 15: (title, workload, engine, variant, reference variant, at least).
TARGETS = [
    (f"(1) other-logged ÷ plain, {w}", w, "file", "other", "plain", 0.97) for w in ("bulk", "single")
] + [
    (f"(1) plain ÷ base, {w}", w, "file", "plain", "base", 0.97) for w in ("bulk", "single")
] + [
    (f"(1) other-logged ÷ base, {w}", w, "file", "other", "base", 0.97) for w in ("bulk", "single")
] + [
    ("(2) changes ÷ plain, bulk", "bulk", "file", "changes", "plain", 0.5),
    ("(2) changes ÷ plain, single", "single", "file", "changes", "plain", 0.7),
    ("(2) changes ÷ plain, single, log full", "steady", "file", "changes", "plain", 0.7),
]


def report(results: dict[str, Any]) -> str:
    meta, cells = results["meta"], results["cells"]
    sizes = meta["doc_bytes"]
    s = meta["settings"]
    lines = [
        (f"kvlite change feed (issue 15): {meta['git']} ({', '.join(meta['modified']) or 'no modified files'}), "
         f"base {meta['base'] or 'not measured'}; Python {meta['python']}, SQLite {meta['versions']['sqlite']}, "
         f"{meta['cpus']} CPUs; median of {s['repeats']} runs; {meta['minutes']:.1f} min"),
        "",
        "Documents: " + "; ".join(f"{k} {v['min']:,.0f}-{v['max']:,.0f} B of JSON ({v['mean']:,.0f} on average)"
                                  for k, v in sizes.items()),
        (f"Counts: bulk {s['bulk_calls']} x 10,000 small / {s['bulk_calls_large']} x 10,000 large entries; "
         f"single {s['single']:,} puts; log full = {s['steady_log']:,} changes (read the same)."),
        "",
        "| workload | docs | engine | variant | ops | median ops/s | ÷ plain | median ops/CPU s | CPU ÷ plain | spread |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        ref = _find(cells, c["workload"], c["size"], c["engine"], "plain")
        if "ops_per_s" not in c:
            lines.append(f"| {TITLES[c['workload']]} | {c['size']} | {c['engine']} | {VARIANT_TITLES[c['variant']]} "
                         f"| | FAILED: {c.get('error', '?')[:80]} | | | | |")
            continue
        lines.append(
            f"| {TITLES[c['workload']]} | {c['size']} | {c['engine']} | {VARIANT_TITLES[c['variant']]} "
            f"| {c['ops']:,} | {_fmt(c['ops_per_s'])} | {_fmt(_ratio(c, ref, 'ops_per_s'), '.3f')} "
            f"| {_fmt(c.get('ops_per_cpu_s'))} | {_fmt(_ratio(c, ref, 'ops_per_cpu_s'), '.3f')} "
            f"| {c['spread'] * 100:.0f}% |")
    lines += ["", "Spread: (fastest - slowest run) / median.", "",
              "| target | docs | engine | ratio (wall) | ratio (CPU) | needed | verdict (wall) | verdict (CPU) |",
              "|---|---|---|---:|---:|---:|---|---|"]
    for title, work, engine, variant, reference, least in TARGETS:
        for size in sizes:
            a, b = _find(cells, work, size, engine, variant), _find(cells, work, size, engine, reference)
            wall, cpu = _ratio(a, b, "ops_per_s"), _ratio(a, b, "ops_per_cpu_s")
            if wall is None:
                continue
            verdicts = ["n/a" if r is None else "PASS" if r >= least else "FAIL" for r in (wall, cpu)]
            lines.append(f"| {title} | {size} | {engine} | {wall:.3f} | {_fmt(cpu, '.3f')} "
                         f"| >= {least} | {verdicts[0]} | {verdicts[1]} |")
    for note in meta["notes"]:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.changes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts, 3 repeats (a smoke run)")
    p.add_argument("--repeats", type=int, default=None, help="runs per cell (default 5; --quick 3)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="bulk,single,steady,read (default all)")
    p.add_argument("--sizes", default="small,large", help="small,large (default both)")
    p.add_argument("--engines", default="file,memory", help="file,memory (default both)")
    p.add_argument("--bulk-calls", type=int, default=None, help="put_many calls of small documents (default 10)")
    p.add_argument("--bulk-calls-large", type=int, default=None, help="... of large documents (default 3)")
    p.add_argument("--single", type=int, default=None, help="single puts per run (default 4096; --quick 1024)")
    p.add_argument("--steady-log", type=int, default=None,
                   help="changes in the full log of steady/read (default 100000, the default retention)")
    p.add_argument("--base", default=DEFAULT_BASE, help=f"the build before the feature (default {DEFAULT_BASE})")
    p.add_argument("--no-base", dest="base", action="store_const", const=None, help="skip the base build")
    p.add_argument("--tmp", default=None, help="folder for the temporary files (default: the system temp dir)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement (default 600)")
    p.add_argument("--out", type=Path, default=None, help="also write the results (every run) to this JSON file")
    p.add_argument("--report", type=Path, default=None, metavar="RESULTS_JSON",
                   help="print the tables of a results file written with --out and exit")
    args = p.parse_args(argv)
    q = args.quick
    args.repeats = args.repeats or (3 if q else 5)
    args.bulk_calls = args.bulk_calls or (2 if q else 10)
    args.bulk_calls_large = args.bulk_calls_large or (1 if q else 3)
    args.single = args.single or (1024 if q else 4096)
    args.steady_log = args.steady_log or (20_000 if q else 100_000)
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.engines = [e for e in args.engines.split(",") if e]
    for name, got, known in (("workload", args.workloads, WORKLOADS), ("size", args.sizes, ("small", "large")),
                             ("engine", args.engines, ("file", "memory"))):
        bad = [x for x in got if x not in known]
        if bad:
            p.error(f"unknown {name} {bad[0]!r} (known: {', '.join(known)})")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(measure(json.loads(argv[1]))))
        return 0
    args = parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    results = run(args)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    print(report(results))
    return 0 if all("error" not in c for c in results["cells"]) else 1


if __name__ == "__main__":
    sys.exit(main())
