"""Changing and counting documents where they are (issue 14): ``patch_where``, ``delete_where``
and ``count_by`` against what you would write without them, and against raw apsw.

    python -m bench.documents                  # N=100k small and large documents, count_by over 1M
    python -m bench.documents --quick          # N=5000, count_by over 50k, 3 repeats (~30 s)
    python -m bench.documents --parts count --count-n 1000000 --count-repeats 5

Two parts (``--parts where,count``); ``bench/README.md`` has the details.

``where``: N documents ``{"id": i, "group": i % 100, "batch": i * 100 // N, "status": "new",
"name": ..., "payload": ...}``; *small* ones carry a few words of payload (~100 bytes of JSON in
all), *large* ones a nested payload (~5 KB).  Each row changes (``patch``: the merge patch
``{"status": "seen"}``) or removes (``delete``) the 1% a filter selects, each of these ways on a
fresh copy of the same file:

* ``kvlite``: ``coll.patch_where(q, patch)`` / ``coll.delete_where(q)``;
* ``find+put``: ``with store.transaction(): for k, doc in coll.find(q): coll.put(k, {**doc,
  "status": "seen"})`` / ``with store.transaction(): coll.delete_many([k for k, _ in
  coll.find(q)])`` (what one writes without them; no TTLs anywhere);
* ``find``: ``sum(1 for _ in coll.find(q))``, the filter alone (the part both of the above pay);
* ``apsw``: the floor, raw apsw on the suite's floor table (``key TEXT PRIMARY KEY, value TEXT``
  ``WITHOUT ROWID``, the same pragmas), one ``UPDATE kv SET value = json_patch(value, ?) WHERE
  <kvlite's exact condition>`` (or ``DELETE``) in ``BEGIN IMMEDIATE`` ... ``COMMIT``; only for
  filters SQL decides.

Filters (what SQL does with each is checked against ``coll.explain`` in every run):

* ``exact``: ``$[?@.group == 7]``: SQL decides it, so ``patch_where`` is one ``UPDATE``;
* ``narrowed``: ``$[?@.group == 7 && count(@.*) == 6]``: SQL narrows to ``group == 7``, Python
  checks ``count()`` on those rows, so ``patch_where`` takes the per-document path (keys first,
  then each document read, checked again, patched and written);
* ``python``: ``$[?@.group == 7 || count(@.*) == 99]``: SQL can neither decide nor narrow it (any
  document might pass the second branch): every document is decoded and checked in Python;
* ``clustered``: ``$[?@.batch == 7]``: decided by SQL like ``exact``, but the 1% are neighbours
  (consecutive keys, so they share pages) instead of one document in a hundred.

``exact`` and ``narrowed`` run without and with ``create_index("$.group")`` (the floor with the
same expression index), ``clustered`` with ``create_index("$.batch")``.  The time is of the call
(or the loop) from an open, warmed-up store to the commit, plus a WAL checkpoint (see
:func:`_checkpoint`); the call alone is kept too.  Every repeat runs in a freshly forked process;
the result is checked afterwards (how many changed; the selected documents and their neighbours
read back by key; how many are left).

``count``: ``count_by("$.status")`` (10 distinct values) and ``count_by("$.user")`` (N/10
distinct: 100,000 at N=1M) over ``--count-n`` documents of ~90 bytes, by:

* ``kvlite``: a SQLite ``json`` collection: one ``GROUP BY``;
* ``apsw``: the floor running the same ``GROUP BY`` (``value -> ?``) on its table, rows decoded;
* ``items+Counter``: ``Counter(doc[field] for _, doc in coll.items())``, what one writes without it;
* ``memory``: ``count_by`` on a ``memory://`` store (kvlite's Python path; the documents are put in
  the measuring process before the clock, and the RSS they take is reported as "data in memory").

Memory: the growth of the measuring process's peak RSS over the timed part.  On Linux the peak is
reset just before the clock (``/proc/self/clear_refs``, ``VmHWM``), so a larger peak during set-up
(loading ``memory://``) cannot hide it; elsewhere ``ru_maxrss``.  For ``count`` a separate,
untimed run of each cell reports ``tracemalloc``'s peak (Python objects only, not SQLite's).

Results go to ``--out`` (default ``bench/results-documents.json``, git-ignored) and a Markdown
report is printed; ``--report FILE`` prints the report of an existing file.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import apsw
import orjson

import kvlite

from .runner import forked

__all__ = ["Settings", "run", "markdown", "main", "WHERE_FILTERS", "where_doc", "count_doc"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results-documents.json"

#: The merge patch ``patch`` rows apply, and what ``find+put`` writes instead.
PATCH = {"status": "seen"}
#: The group the filters select (each group is 1% of the documents).
GROUP = 7
GROUPS = 100
#: Required speed-up of ``patch_where`` over find + put on the filter SQL decides (issue 14).
TARGET = 5.0

#: Filter name -> (path, what ``explain`` must say Python does with it: a prefix of
#: ``steps[0]["python"]``, and whether SQL narrows it, i.e. its push-down list is not empty).
WHERE_FILTERS: dict[str, tuple[str, str, bool]] = {
    "exact": (f"$[?@.group == {GROUP}]", "nothing", True),
    "narrowed": (f"$[?@.group == {GROUP} && count(@.*) == 6]", "the filter re-checked", True),
    "python": (f"$[?@.group == {GROUP} || count(@.*) == 99]", "the filter re-checked", False),
    "clustered": (f"$[?@.batch == {GROUP}]", "nothing", True),
}
#: The field each filter selects on (its index; its 1% of the documents).
FILTER_FIELD = {"exact": "group", "narrowed": "group", "python": "group", "clustered": "batch"}
#: The workloads of the ``where`` part: (op, filter, indexed).
WHERE_ROWS: list[tuple[str, str, bool]] = [
    ("patch", "exact", False), ("patch", "exact", True),
    ("patch", "narrowed", False), ("patch", "narrowed", True),
    ("patch", "python", False),
    ("delete", "exact", False), ("delete", "exact", True),
    ("delete", "narrowed", False),
    ("patch", "clustered", True),
]
WHERE_STRATEGIES = ("kvlite", "find+put", "find", "apsw")

#: ``count`` part: the fields counted (10 values; N/10 values).
STATUSES = ("new", "open", "pending", "active", "paused", "review", "approved", "shipped", "closed", "archived")
COUNT_PATHS = {"status": "$.status", "user": "$.user"}
COUNT_STRATEGIES = ("kvlite", "apsw", "items+Counter", "memory")

COLLECTION = "docs"
KVLITE_FILE = "kvlite.db"
FLOOR_FILE = "floor.db"
CHUNK = 10_000


# -- data ------------------------------------------------------------------------------------

_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
          "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua")


def _words(seed: int, count: int) -> str:
    return " ".join(_WORDS[(seed * 7 + w * 13 + w * w) % len(_WORDS)] for w in range(count))


#: Payloads cycle through 101 of each (so they do not line up with the groups).
_PAYLOADS = 101


def _large_payload(j: int) -> dict[str, Any]:
    return {
        "text": _words(j, 40 + j % 20),
        "items": [{"sku": f"s{j:03d}-{e:02d}", "qty": (j + e) % 9 + 1, "price": round((j * 31 + e * 7) % 500 * 0.37, 2),
                   "ok": (j + e) % 4 != 0, "note": _words(j + e, 6 + (j + e) % 5)}
                  for e in range(34 + j % 12)],
    }


_SMALL = [_words(j, 4 + j % 3) for j in range(_PAYLOADS)]
#: One word fewer for the where part's small documents (they have one field more), ~100 bytes in all.
_SMALL_WHERE = [_words(j, 3 + j % 3) for j in range(_PAYLOADS)]
_LARGE: list[dict[str, Any]] = []


def where_doc(i: int, dataset: str, n: int) -> dict[str, Any]:
    """Document ``i`` of the ``where`` part (``dataset`` "small" or "large") of ``n``: ``group`` is
    ``i % 100`` (a group's documents are spread over the whole table), ``batch`` ``i * 100 // n``
    (a batch's documents are neighbours)."""
    if dataset == "large":
        if not _LARGE:
            _LARGE.extend(_large_payload(j) for j in range(_PAYLOADS))
        payload: Any = _LARGE[i % _PAYLOADS]
    else:
        payload = _SMALL_WHERE[i % _PAYLOADS]
    return {"id": i, "group": i % GROUPS, "batch": i * GROUPS // n, "status": "new", "name": f"n{i:06d}",
            "payload": payload}


def count_doc(i: int, distinct: int) -> dict[str, Any]:
    """Document ``i`` of the ``count`` part: ``status`` has 10 values, ``user`` ``distinct``."""
    return {"id": i, "status": STATUSES[i % len(STATUSES)], "user": f"u{i % distinct:06d}",
            "payload": _SMALL[i % _PAYLOADS]}


def key(i: int) -> str:
    return f"k{i:08d}"


def _sizes(docs: Iterator[dict[str, Any]]) -> dict[str, float]:
    sizes = [len(orjson.dumps(d)) for d in docs]
    return {"min": min(sizes), "mean": sum(sizes) / len(sizes), "max": max(sizes)}


def where_sizes(dataset: str) -> dict[str, float]:
    """JSON sizes of the ``where`` documents (min, mean, max bytes; one full cycle of payloads)."""
    return _sizes(where_doc(i, dataset, 100_000) for i in range(90_000, 90_000 + _PAYLOADS * GROUPS))


# -- measuring ------------------------------------------------------------------------------


def _proc_status(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0); False when it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


@dataclass
class Probe:
    """Wall and CPU time and peak-RSS growth of the timed part."""

    seconds: float = 0.0
    lap_seconds: float = 0.0
    cpu_seconds: float = 0.0
    growth_kb: int = 0
    _t0: float = 0.0
    _cpu0: float = 0.0
    _rss0: int = 0
    _hwm: bool = False

    def start(self) -> None:
        self._hwm = _reset_peak() and _proc_status("VmHWM") is not None
        self._rss0 = (_proc_status("VmHWM") or 0) if self._hwm else _maxrss_kb()
        self._cpu0 = time.process_time()
        self._t0 = time.perf_counter()

    def lap(self) -> None:
        """Mark the end of the call itself (``lap_seconds``); :meth:`stop` ends the timed part."""
        self.lap_seconds = time.perf_counter() - self._t0

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.cpu_seconds = time.process_time() - self._cpu0
        rss1 = (_proc_status("VmHWM") or 0) if self._hwm else _maxrss_kb()
        self.growth_kb = max(0, rss1 - self._rss0)


def in_child(fn: Callable[[dict[str, Any]], dict[str, Any]], spec: dict[str, Any],
             timeout: float = 1800.0) -> dict[str, Any]:
    """``fn(spec)`` in a freshly forked process (its own peak RSS); in this process where there is no fork."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return fn(spec)
    return forked(fn, spec, timeout)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# -- stores ---------------------------------------------------------------------------------


def _open_kvlite(folder: Path) -> tuple[Any, Any]:
    store = kvlite.open(str(folder / KVLITE_FILE))
    return store, store.collection(COLLECTION)


def _open_floor(folder: Path) -> apsw.Connection:
    """The suite's floor connection (``bench.stores.ApswFloor``): same file layout and pragmas."""
    conn = apsw.Connection(str(folder / FLOOR_FILE), statementcachesize=512)
    conn.set_busy_timeout(30_000)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
    return conn


def _checkpoint(conn: apsw.Connection) -> list[int]:
    """``PRAGMA wal_checkpoint(PASSIVE)``: copy what the timed call left in the WAL into the
    database file, inside the timed part, for every strategy alike.

    SQLite checkpoints by itself at the first commit that leaves >= 1000 pages in the WAL.  The
    calls here write about that many (1% of 100k small documents, each on its own page), so
    whether the commit pays for a checkpoint (~15 ms here) depends on a few pages: kvlite's
    ``UPDATE`` reached the threshold and paid, the floor's wrote 990-999 pages and did not.
    Checkpointing after every strategy makes each pay for moving its own pages into the file
    (when its commit already did, this one has little to do).
    Returns ``[busy, frames in the WAL, frames checkpointed]``."""
    return list(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())  # type: ignore[arg-type]


def _floor_condition(field_name: str) -> str:
    """kvlite's exact push-down condition for ``@.<field> == <number>`` (see ``coll.explain``)."""
    return (f"json_type(value, '$.{field_name}') IN ('integer', 'real') "
            f"AND json_extract(value, '$.{field_name}') = ?")


def _pairs(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    n = spec["n"]
    if spec["part"] == "where":
        dataset = spec["dataset"]
        return ((key(i), where_doc(i, dataset, n)) for i in range(n))
    distinct = spec["distinct"]
    return ((key(i), count_doc(i, distinct)) for i in range(n))


def _chunked(pairs: Iterator[tuple[str, Any]], size: int = CHUNK) -> Iterator[list[tuple[str, Any]]]:
    chunk: list[tuple[str, Any]] = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def populate(spec: dict[str, Any]) -> dict[str, Any]:
    """Fill ``spec["folder"]`` with the part's documents: kvlite's file and the floor's (put_many in chunks)."""
    folder = Path(spec["folder"])
    store, coll = _open_kvlite(folder)
    try:
        for chunk in _chunked(_pairs(spec)):
            coll.put_many(chunk)
        count = coll.count()
    finally:
        store.close()
    conn = _open_floor(folder)
    try:
        for chunk in _chunked(_pairs(spec)):
            with conn:
                conn.executemany("INSERT INTO kv (key, value) VALUES (?, ?)",
                                 [(k, orjson.dumps(v).decode()) for k, v in chunk])
        (floor_count,) = conn.execute("SELECT count(*) FROM kv").fetchone()  # type: ignore[misc]
    finally:
        conn.close()
    _check(count == spec["n"] and floor_count == spec["n"], f"populated {count} / {floor_count}, not {spec['n']}")
    return {"bytes": {name: (folder / name).stat().st_size for name in (KVLITE_FILE, FLOOR_FILE)}}


def add_index(spec: dict[str, Any]) -> dict[str, Any]:
    """``create_index("$.<field>")`` on kvlite's file, the same expression index on the floor's."""
    folder, field_name = Path(spec["folder"]), spec["field"]
    store, coll = _open_kvlite(folder)
    try:
        coll.create_index(f"$.{field_name}")
    finally:
        store.close()
    conn = _open_floor(folder)
    try:
        conn.execute(f"CREATE INDEX kv_{field_name} ON kv(json_extract(value, '$.{field_name}'))")
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return {}


# -- the where part -------------------------------------------------------------------------


def _members(filt: str, n: int, value: int) -> list[int]:
    """The documents whose filter field (``group`` or ``batch``) is ``value``."""
    field_name = FILTER_FIELD[filt]
    return [i for i in range(n) if where_doc(i, "small", n)[field_name] == value]


def _warm_up_where(strategy: str, op: str, query: str, dataset: str) -> None:
    """The same call once on a throwaway in-memory SQLite store of 200 documents, so the timed
    call pays no first-call costs (lazy imports, statement preparation) a long-lived process would not."""
    with kvlite.open(":memory:") as scratch:
        coll = scratch.collection(COLLECTION)
        coll.put_many((key(i), where_doc(i, dataset, 200)) for i in range(200))
        if strategy == "kvlite":
            coll.patch_where(query, PATCH) if op == "patch" else coll.delete_where(query)
        elif strategy == "find":
            sum(1 for _ in coll.find(query))
        elif op == "patch":
            with scratch.transaction():
                for k, doc in coll.find(query):
                    coll.put(k, {**doc, "status": "seen"})
        else:
            with scratch.transaction():
                coll.delete_many([k for k, _ in coll.find(query)])


def run_where(spec: dict[str, Any]) -> dict[str, Any]:
    """One timed ``patch``/``delete`` of the 1% by one strategy, on the copy in ``spec["folder"]``."""
    folder, op, strategy = Path(spec["folder"]), spec["op"], spec["strategy"]
    query, python_prefix, narrowed = WHERE_FILTERS[spec["filter"]]
    n, dataset = spec["n"], spec["dataset"]
    sel, nb = _members(spec["filter"], n, GROUP), _members(spec["filter"], n, GROUP + 1)
    want = len(sel)
    sel_keys, nb_keys = [key(i) for i in sel], [key(i) for i in nb]
    probe = Probe()
    out: dict[str, Any] = {}
    if strategy == "apsw":
        _check(python_prefix == "nothing", "the floor runs only filters SQL decides")
        conn = _open_floor(folder)
        try:
            where = _floor_condition(FILTER_FIELD[spec["filter"]])
            sql = (f"UPDATE kv SET value = json_patch(value, ?) WHERE {where}" if op == "patch"
                   else f"DELETE FROM kv WHERE {where}")
            params: tuple[Any, ...] = (orjson.dumps(PATCH).decode(), GROUP) if op == "patch" else (GROUP,)
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            probe.start()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, params)
            changed = conn.changes()
            conn.execute("COMMIT")
            probe.lap()
            out["checkpoint"] = _checkpoint(conn)
            probe.stop()
            out["plan"] = plan
            (left,) = conn.execute("SELECT count(*) FROM kv").fetchone()  # type: ignore[misc]

            def read(keys: list[str]) -> list[Any]:
                found = []
                for k in keys:
                    row = conn.execute("SELECT value FROM kv WHERE key = ?", (k,)).fetchone()
                    found.append(None if row is None else orjson.loads(row[0]))
                return found

            selected, neighbours = read(sel_keys), read(nb_keys)
        finally:
            conn.close()
    else:
        store, coll = _open_kvlite(folder)
        closers: list[Callable[[], None]] = [store.close]
        try:
            explained = coll.explain(query)["steps"][0]
            out["python"] = explained["python"]
            out["plan"] = explained.get("query_plan")
            _check(explained["python"].startswith(python_prefix),
                   f"{query}: explain says Python does {explained['python']!r}, expected {python_prefix!r}...")
            _check(bool(explained["pushdown"]) == narrowed,
                   f"{query}: explain's push-down is {explained['pushdown']!r}")
            _warm_up_where(strategy, op, query, dataset)
            side = apsw.Connection(str(folder / KVLITE_FILE))  # checkpoints what the call wrote (see _checkpoint)
            closers.append(side.close)
            if strategy == "kvlite":
                probe.start()
                changed = coll.patch_where(query, PATCH) if op == "patch" else coll.delete_where(query)
            elif strategy == "find":  # the filter alone: the part find + put and patch_where share
                probe.start()
                changed = sum(1 for _ in coll.find(query))
            elif op == "patch":
                probe.start()
                changed = 0
                with store.transaction():
                    for k, doc in coll.find(query):
                        coll.put(k, {**doc, "status": "seen"})
                        changed += 1
            else:
                probe.start()
                with store.transaction():
                    changed = coll.delete_many([k for k, _ in coll.find(query)])
            probe.lap()
            out["checkpoint"] = _checkpoint(side)
            probe.stop()
            left = coll.count()
            selected, neighbours = coll.get_many(sel_keys), coll.get_many(nb_keys)
        finally:
            for close in reversed(closers):
                close()
    # Checked on the selected documents and their neighbours (group 8), read by key: cheap even at 100k
    # large documents, where a scan for the check would cost more than the call.
    _check(changed == want, f"{strategy}: {op} changed {changed} documents, expected {want}")
    before = [where_doc(i, dataset, n) for i in sel]
    if strategy == "find":
        _check(left == n and selected == before, "find changed documents")
    elif op == "patch":
        _check(left == n, f"{strategy}: {left} documents after patch, not {n}")
        _check(selected == [{**d, **PATCH} for d in before], f"{strategy}: a selected document is not patched")
    else:
        _check(left == n - want and selected == [None] * want, f"{strategy}: {left} documents left after delete")
    _check(neighbours == [where_doc(i, dataset, n) for i in nb], f"{strategy}: an unselected document changed")
    return {**out, "docs": changed, "seconds": probe.seconds, "cpu_seconds": probe.cpu_seconds,
            "op_seconds": probe.lap_seconds, "rss_growth_kb": probe.growth_kb}


# -- the count part -------------------------------------------------------------------------


def _expected_counts(n: int, distinct: int, name: str) -> collections.Counter[Any]:
    docs = (count_doc(i, distinct) for i in range(n))
    return collections.Counter(d[name] for d in docs)


def _warm_up_count(strategy: str, name: str) -> None:
    """As :func:`_warm_up_where`: the same count once over 200 documents of a throwaway store."""
    if strategy == "apsw":
        return
    with kvlite.open("memory://" if strategy == "memory" else ":memory:") as scratch:
        coll = scratch.collection(COLLECTION)
        coll.put_many((key(i), count_doc(i, 20)) for i in range(200))
        path = COUNT_PATHS[name]
        if strategy == "items+Counter":
            collections.Counter(doc[name] for _, doc in coll.items()).most_common()
        else:
            coll.count_by(path)


def run_count(spec: dict[str, Any]) -> dict[str, Any]:
    """One ``count_by`` by one strategy over the template in ``spec["folder"]`` (read only)."""
    folder, strategy, name = Path(spec["folder"]), spec["strategy"], spec["field"]
    path = COUNT_PATHS[name]
    probe = Probe()
    traced = spec.get("tracemalloc", False)
    out: dict[str, Any] = {}
    closers: list[Callable[[], None]] = []
    try:
        if strategy == "apsw":
            conn = _open_floor(folder)
            closers.append(conn.close)
            sql = "SELECT value -> ?1, count(*) FROM kv WHERE value -> ?1 IS NOT NULL GROUP BY 1"

            def count() -> list[tuple[Any, int]]:
                rows = [(orjson.loads(text), c) for text, c in conn.execute(sql, (path,))]
                rows.sort(key=lambda row: -row[1])
                return rows
        elif strategy == "memory":
            rss0 = _proc_status("VmRSS")
            store = kvlite.open("memory://")
            closers.append(store.close)
            coll = store.collection(COLLECTION)
            for chunk in _chunked(_pairs(spec)):
                coll.put_many(chunk)
            rss1 = _proc_status("VmRSS")
            if rss0 is not None and rss1 is not None:
                out["loaded_kb"] = rss1 - rss0

            def count() -> list[tuple[Any, int]]:
                return coll.count_by(path)
        else:
            store, coll = _open_kvlite(folder)
            closers.append(store.close)
            if strategy == "kvlite":
                def count() -> list[tuple[Any, int]]:
                    return coll.count_by(path)
            else:
                def count() -> list[tuple[Any, int]]:
                    return collections.Counter(doc[name] for _, doc in coll.items()).most_common()
        _warm_up_count(strategy, name)
        if traced:
            tracemalloc.start()
            result = count()
            out["tracemalloc_peak_kb"] = tracemalloc.get_traced_memory()[1] // 1024
            tracemalloc.stop()
        else:
            probe.start()
            result = count()
            probe.stop()
        groups = len(result)
        answer = dict(result)
    finally:
        for close in closers:
            close()
    want = _expected_counts(spec["n"], spec["distinct"], name)
    _check(answer == dict(want) and groups == len(want), f"{strategy}: count_by({path}) gave a wrong answer")
    return {**out, "docs": spec["n"], "groups": groups, "seconds": probe.seconds,
            "cpu_seconds": probe.cpu_seconds, "rss_growth_kb": probe.growth_kb}


# -- the plan -------------------------------------------------------------------------------


@dataclass
class Settings:
    """Everything a run depends on (recorded in the results file)."""

    n: int = 100_000
    count_n: int = 1_000_000
    repeats: int = 5
    count_repeats: int = 3
    parts: list[str] = field(default_factory=lambda: ["where", "count"])
    datasets: list[str] = field(default_factory=lambda: ["small", "large"])
    tmp: str | None = None
    tracemalloc: bool = True

    @property
    def distinct(self) -> int:
        """Distinct ``user`` values of the count part (100,000 at 1M documents)."""
        return max(1, self.count_n // 10)


def _stat(runs: list[dict[str, Any]]) -> dict[str, Any]:
    extra = {"op_seconds": statistics.median(r["op_seconds"] for r in runs)} if "op_seconds" in runs[0] else {}
    return {
        **extra,
        "seconds": statistics.median(r["seconds"] for r in runs),
        "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "rss_growth_mb": max(r["rss_growth_kb"] for r in runs) / 1024,
    }


def _where_cells(settings: Settings, root: Path,
                 log: Callable[[str], None]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    cells: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    for dataset in settings.datasets:
        base = root / f"where-{dataset}"
        indexed = {f: root / f"where-{dataset}-{f}" for f in sorted(set(FILTER_FIELD.values()))}
        base.mkdir(parents=True)
        log(f"filling {settings.n:,} {dataset} documents (kvlite and floor)")
        t0 = time.perf_counter()
        filled = in_child(populate, {"part": "where", "folder": str(base), "n": settings.n, "dataset": dataset})
        for field_name, folder in indexed.items():
            shutil.copytree(base, folder)
            in_child(add_index, {"folder": str(folder), "field": field_name})
        data[dataset] = {"doc_bytes": where_sizes(dataset), "file_bytes": filled["bytes"],
                         "fill_seconds": time.perf_counter() - t0}
        for op, filt, index in WHERE_ROWS:
            strategies = [s for s in WHERE_STRATEGIES
                          if (s != "apsw" or WHERE_FILTERS[filt][1] == "nothing") and (s != "find" or op == "patch")]
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in strategies}
            errors: dict[str, str] = {}
            for rep in range(settings.repeats):
                for strategy in strategies:
                    if strategy in errors:
                        continue
                    folder = root / "cell"
                    folder.mkdir()
                    name = FLOOR_FILE if strategy == "apsw" else KVLITE_FILE
                    template = indexed[FILTER_FIELD[filt]] if index else base
                    shutil.copyfile(template / name, folder / name)
                    spec = {"folder": str(folder), "op": op, "filter": filt, "strategy": strategy,
                            "n": settings.n, "dataset": dataset}
                    try:
                        runs[strategy].append(in_child(run_where, spec))
                    except RuntimeError as exc:
                        errors[strategy] = str(exc)
                        log(f"  {dataset} {op} {filt} index={index} / {strategy}: FAILED: {exc}")
                    finally:
                        shutil.rmtree(folder, ignore_errors=True)
                    if runs[strategy] and strategy not in errors:
                        log(f"  {dataset} {op} {filt}{' +index' if index else ''} / {strategy} #{rep + 1}: "
                            f"{runs[strategy][-1]['seconds'] * 1000:.1f} ms")
            for strategy in strategies:
                cell: dict[str, Any] = {"part": "where", "dataset": dataset, "op": op, "filter": filt,
                                        "query": WHERE_FILTERS[filt][0], "index": index, "strategy": strategy,
                                        "runs": runs[strategy]}
                if runs[strategy]:
                    cell.update(_stat(runs[strategy]))
                    cell["docs"] = runs[strategy][0]["docs"]
                    cell["python"] = runs[strategy][0].get("python")
                    cell["plan"] = runs[strategy][0].get("plan")
                if strategy in errors:
                    cell["error"] = errors[strategy]
                cells.append(cell)
        shutil.rmtree(base, ignore_errors=True)
        for folder in indexed.values():
            shutil.rmtree(folder, ignore_errors=True)
    return cells, data


def _count_cells(settings: Settings, root: Path,
                 log: Callable[[str], None]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    folder = root / "count"
    folder.mkdir(parents=True)
    log(f"filling {settings.count_n:,} documents for count_by (kvlite and floor)")
    t0 = time.perf_counter()
    base = {"part": "count", "folder": str(folder), "n": settings.count_n, "distinct": settings.distinct}
    filled = in_child(populate, base)
    data = {"n": settings.count_n, "distinct": settings.distinct,
            "doc_bytes": _sizes(count_doc(i, settings.distinct) for i in range(10_000)),
            "file_bytes": filled["bytes"], "fill_seconds": time.perf_counter() - t0}
    cells: list[dict[str, Any]] = []
    for name in COUNT_PATHS:
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in COUNT_STRATEGIES}
        errors: dict[str, str] = {}
        for rep in range(settings.count_repeats):
            for strategy in COUNT_STRATEGIES:
                if strategy in errors:
                    continue
                try:
                    runs[strategy].append(in_child(run_count, {**base, "strategy": strategy, "field": name}))
                    log(f"  count_by {COUNT_PATHS[name]} / {strategy} #{rep + 1}: "
                        f"{runs[strategy][-1]['seconds']:.2f} s, +{runs[strategy][-1]['rss_growth_kb'] / 1024:.1f} MB")
                except RuntimeError as exc:
                    errors[strategy] = str(exc)
                    log(f"  count_by {COUNT_PATHS[name]} / {strategy}: FAILED: {exc}")
        for strategy in COUNT_STRATEGIES:
            cell: dict[str, Any] = {"part": "count", "field": name, "path": COUNT_PATHS[name], "strategy": strategy,
                                    "runs": runs[strategy]}
            if runs[strategy]:
                cell.update(_stat(runs[strategy]))
                cell["groups"] = runs[strategy][0]["groups"]
                if "loaded_kb" in runs[strategy][0]:
                    cell["loaded_mb"] = statistics.median(r["loaded_kb"] for r in runs[strategy]) / 1024
                if settings.tracemalloc and strategy not in errors:
                    traced = in_child(run_count, {**base, "strategy": strategy, "field": name, "tracemalloc": True})
                    cell["tracemalloc_peak_mb"] = traced["tracemalloc_peak_kb"] / 1024
            if strategy in errors:
                cell["error"] = errors[strategy]
            cells.append(cell)
    shutil.rmtree(folder, ignore_errors=True)
    return cells, data


def _versions() -> dict[str, str]:
    return {"kvlite": kvlite.__version__, "apsw": apsw.apsw_version(), "sqlite": apsw.sqlite_lib_version(),
            "orjson": orjson.__version__}


def _git_revision() -> str | None:
    import subprocess

    try:
        proc = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return proc.stdout.strip() or None


def _preload() -> None:
    """Every warm-up once in this process before any child is forked: the children inherit the
    modules kvlite imports lazily, so they all run the same code even if the source changes meanwhile."""
    for op in ("patch", "delete"):
        for strategy in WHERE_STRATEGIES[:-1]:
            for query, _, _ in WHERE_FILTERS.values():
                _warm_up_where(strategy, op, query, "small")
    for strategy in COUNT_STRATEGIES:
        for name in COUNT_PATHS:
            _warm_up_count(strategy, name)


def run(settings: Settings, log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)) -> dict[str, Any]:
    """Measure the selected parts; returns the results (the ``--out`` file's content)."""
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    _preload()
    root = Path(tempfile.mkdtemp(prefix="kvlite-bench-documents-", dir=settings.tmp))
    cells: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    try:
        if "where" in settings.parts:
            found, data["where"] = _where_cells(settings, root, log)
            cells += found
        if "count" in settings.parts:
            found, data["count"] = _count_cells(settings, root, log)
            cells += found
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "meta": {"started": started.isoformat(timespec="seconds"), "python": platform.python_version(),
                 "platform": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg(),
                 "git": _git_revision(), "versions": _versions(), "settings": asdict(settings),
                 "seconds": time.perf_counter() - t0},
        "data": data,
        "cells": cells,
    }


# -- report ---------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.3g} ms" if ms < 1000 else f"{seconds:.2f} s"


def _x(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def speedups(results: dict[str, Any], metric: str = "seconds") -> list[dict[str, Any]]:
    """One row per ``where`` workload: median times, ``find+put`` ÷ ``kvlite`` and ``apsw`` ÷ ``kvlite``."""
    by_row: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for cell in results["cells"]:
        if cell["part"] == "where":
            by_row.setdefault((cell["dataset"], cell["op"], cell["filter"], cell["index"]), {})[cell["strategy"]] = cell
    rows = []
    for (dataset, op, filt, index), strategies in by_row.items():
        times = {s: c.get(metric) for s, c in strategies.items()}
        mine, loop, floor = times.get("kvlite"), times.get("find+put"), times.get("apsw")
        kv = strategies.get("kvlite", {})
        rows.append({"dataset": dataset, "op": op, "filter": filt, "index": index, "times": times,
                     "docs": kv.get("docs"), "python": kv.get("python"),
                     "rss_mb": {s: c.get("rss_growth_mb") for s, c in strategies.items()},
                     "speedup": loop / mine if mine and loop else None,
                     "of_floor": floor / mine if mine and floor else None,
                     "errors": {s: c["error"] for s, c in strategies.items() if "error" in c}})
    return rows


def markdown(results: dict[str, Any], metric: str = "seconds") -> str:
    """The report: the ``where`` table per data set (target rows marked), then the ``count`` table."""
    meta = results["meta"]
    v = meta["versions"]
    s = meta["settings"]
    out = [f"Python {meta['python']}, {meta['cpus']} CPUs, load {', '.join(f'{x:.1f}' for x in meta['load'])} at "
           f"the start, SQLite {v['sqlite']}, apsw {v['apsw']}, orjson {v['orjson']}, kvlite {v['kvlite']}"
           + (f" ({meta['git']})" if meta.get("git") else "") + f"; {'CPU' if metric == 'cpu_seconds' else 'wall'} "
           f"time, median of {s['repeats']} runs (count_by: {s['count_repeats']}); the run took "
           f"{meta['seconds'] / 60:.1f} min.", ""]
    where = results["data"].get("where", {})
    rows = speedups(results, metric)
    cpu = {(r["dataset"], r["op"], r["filter"], r["index"]): r for r in speedups(results, "cpu_seconds")}
    calls = {(r["dataset"], r["op"], r["filter"], r["index"]): r for r in speedups(results, "op_seconds")}
    for dataset, info in where.items():
        b = info["doc_bytes"]
        files = info["file_bytes"]
        out += [f"### {dataset.capitalize()} documents: {s['n']:,} of {b['min']:,.0f}-{b['max']:,.0f} bytes of JSON "
                f"({b['mean']:,.0f} on average; kvlite file {files[KVLITE_FILE] / 2**20:,.0f} MB, floor "
                f"{files[FLOOR_FILE] / 2**20:,.0f} MB), 1% selected", "",
                "Median time of the call (or loop) and a WAL checkpoint after it.  Speed-up: find + put (or find "
                "+ delete_many) ÷ kvlite's `*_where`, by wall time, by CPU time of the process, and by wall time "
                "of the call alone (no checkpoint).  kvlite ÷ floor: kvlite's time over the floor's (wall / CPU).",
                "",
                "| op | filter | index | kvlite `*_where` | find + put / delete_many | find only | apsw floor "
                "| speed-up | per CPU | call only | kvlite ÷ floor | RSS MB kvlite / loop |",
                "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in rows:
            if row["dataset"] != dataset:
                continue
            t = row["times"]
            ident = (row["dataset"], row["op"], row["filter"], row["index"])
            target = row["op"] == "patch" and row["filter"] == "exact"
            speed = _x(row["speedup"])
            if target and row["speedup"] is not None:
                speed = f"**{speed}** ({'PASS' if row['speedup'] >= TARGET else 'FAIL'} ≥{TARGET:.0f}x)"
            c = cpu.get(ident, {})
            floor = "-"
            if row["of_floor"] and c.get("of_floor"):
                floor = f"{_x(1 / row['of_floor'])} / {_x(1 / c['of_floor'])}"
            rss = row["rss_mb"]
            index = f"`$.{FILTER_FIELD[row['filter']]}`" if row["index"] else "none"
            out.append(
                f"| {row['op']} | `{WHERE_FILTERS[row['filter']][0]}` ({row['filter']}) | "
                f"{index} | "
                f"{_ms(t.get('kvlite'))} | {_ms(t.get('find+put'))} | {_ms(t.get('find'))} | {_ms(t.get('apsw'))} | "
                f"{speed} | {_x(c.get('speedup'))} | {_x(calls.get(ident, {}).get('speedup'))} | {floor} | "
                f"{rss.get('kvlite') or 0:.1f} / {rss.get('find+put') or 0:.1f} |")
            for strategy, error in row["errors"].items():
                out.append(f"| | | | {strategy} FAILED: {error} | | | | | | | | |")
        out.append("")
    count = results["data"].get("count")
    if count:
        b = count["doc_bytes"]
        files = count["file_bytes"]
        json_mb = count["n"] * b["mean"] / 2**20
        out += [f"### count_by over {count['n']:,} documents ({b['min']:,.0f}-{b['max']:,.0f} bytes of JSON, "
                f"{json_mb:,.0f} MB in all; kvlite file {files[KVLITE_FILE] / 2**20:,.0f} MB)", "",
                "| path (distinct values) | strategy | time | docs/s | peak RSS growth MB | tracemalloc peak MB "
                "| data in memory MB |",
                "|---|---|---:|---:|---:|---:|---:|"]
        titles = {"kvlite": "kvlite `count_by` (SQLite json: GROUP BY)", "apsw": "apsw floor: the same GROUP BY",
                  "items+Counter": "`Counter` over `coll.items()`",
                  "memory": "kvlite `count_by` on `memory://` (Python)"}
        for cell in results["cells"]:
            if cell["part"] != "count":
                continue
            if "error" in cell:
                out.append(f"| `{cell['path']}` | {titles[cell['strategy']]} | FAILED: {cell['error']} | | | | |")
                continue
            secs = cell[metric]
            traced = cell.get("tracemalloc_peak_mb")
            loaded = cell.get("loaded_mb")
            out.append(f"| `{cell['path']}` ({cell['groups']:,}) | {titles[cell['strategy']]} | {_ms(secs)} | "
                       f"{count['n'] / secs / 1e6:.2f}M | {cell['rss_growth_mb']:.1f} | "
                       f"{'-' if traced is None else f'{traced:.1f}'} | {'-' if loaded is None else f'{loaded:.0f}'} |")
        out.append("")
    return "\n".join(out) + "\n"


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.documents", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="N=5000, count_by over 50k, 3 repeats")
    p.add_argument("--n", type=int, default=None, help="documents of the where part (default 100000)")
    p.add_argument("--count-n", type=int, default=None, help="documents of the count part (default 1000000)")
    p.add_argument("--repeats", type=int, default=None, help="runs per where cell (default 5; --quick 3)")
    p.add_argument("--count-repeats", type=int, default=None, help="runs per count cell (default 3)")
    p.add_argument("--parts", default="where,count", help="where,count (default both)")
    p.add_argument("--datasets", default="small,large", help="where part's documents: small,large (default both)")
    p.add_argument("--no-tracemalloc", action="store_true", help="skip the untimed tracemalloc run of each count cell")
    p.add_argument("--metric", choices=("wall", "cpu"), default="wall", help="report wall (default) or CPU time")
    p.add_argument("--tmp", default=None, help="folder for the temporary files (default: the system temp dir)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON (default bench/results-documents.json)")
    p.add_argument("--report", type=Path, default=None, metavar="RESULTS_JSON",
                   help="print the report of an existing results file, then exit")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    datasets = [x.strip() for x in args.datasets.split(",") if x.strip()]
    if not set(parts) <= {"where", "count"} or not set(datasets) <= {"small", "large"}:
        raise SystemExit("--parts takes where,count; --datasets small,large")
    return Settings(
        n=args.n if args.n is not None else (5_000 if args.quick else 100_000),
        count_n=args.count_n if args.count_n is not None else (50_000 if args.quick else 1_000_000),
        repeats=args.repeats if args.repeats is not None else (3 if args.quick else 5),
        count_repeats=args.count_repeats if args.count_repeats is not None else 3,
        parts=parts, datasets=datasets, tmp=args.tmp, tracemalloc=not args.no_tracemalloc,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    metric = "cpu_seconds" if args.metric == "cpu" else "seconds"
    if args.report is not None:
        print(markdown(json.loads(args.report.read_text()), metric))
        return 0
    settings = settings_from(args)
    if settings.repeats < 1 or settings.count_repeats < 1 or settings.n < GROUPS or settings.count_n < 10:
        raise SystemExit("--repeats must be at least 1, --n at least 100, --count-n at least 10")
    results = run(settings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results, metric))
    print(f"results: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
