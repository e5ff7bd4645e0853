"""The workloads: what is timed, on which stores, and how many operations count.

A workload is a function ``run(store, ctx) -> int`` registered with
:func:`workload`.  It gets an open :class:`~bench.stores.Adapter` (already
holding the data set when ``needs_data``), prepares its inputs, calls
``ctx.probe.start()`` just before the timed part and ``ctx.probe.stop()``
just after, checks the store's answers outside the timed part, and returns
the number of operations done (the unit of its ops/s).

Workloads that repeat one operation (reads, single writes, batches, mixed)
work in chunks of :data:`CHUNK` and stop early once ``ctx.max_seconds`` have
passed, so a slow peer costs seconds, not minutes; ops/s is computed over the
operations actually done.  Bulk write and iteration always cover all N.

Groups: ``kv`` workloads are compared with the ``apsw`` floor, ``query``
workloads with the ``jsonpath-ng`` scan, ``rfc9535`` workloads (RFC 9535
JSONPath, kvlite's default query language) with the ``jsonpath-rfc9535``
reference implementation (see :data:`BASELINES`); ``bench.report`` computes
the other ratios its targets need.

Add a workload: write the function, decorate it with :func:`workload`; add a
query: add a :class:`~bench.stores.QuerySpec` to :data:`QUERIES` (every
query becomes a ``query_<name>`` workload).
"""

from __future__ import annotations

import multiprocessing
import random
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import data
from .stores import STORES, Adapter, QuerySpec

__all__ = ["Context", "Probe", "Workload", "WORKLOADS", "QUERIES", "BASELINES", "workload", "maxrss_kb"]

#: The store every ratio in a group is relative to.
BASELINES = {"kv": "apsw", "query": "jsonpath-ng", "rfc9535": "rfc9535-ref"}

#: Batch size of the get_many/put_many workloads.
BATCH = 100
#: Operations between two looks at the clock in the time-capped workloads.
CHUNK = 100
#: Workers of the mixed workloads.
WORKERS = 2
#: A timed query is repeated until it has run this long (fast indexed queries are too short to time once).
MIN_QUERY_SECONDS = 0.2


def maxrss_kb() -> int:
    """This process's peak resident set size so far, in KiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


@dataclass
class Probe:
    """Wall time and peak-RSS growth of the timed part of one workload."""

    t0: float = 0.0
    t1: float = 0.0
    cpu0: float = 0.0
    cpu1: float = 0.0
    rss0_kb: int = 0
    rss1_kb: int = 0
    #: Set by workloads whose work runs in other processes (the largest growth among them).
    child_growth_kb: int | None = None

    def start(self) -> None:
        self.rss0_kb = maxrss_kb()
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        self.t1 = time.perf_counter()
        self.cpu1 = time.process_time()
        self.rss1_kb = maxrss_kb()

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    @property
    def cpu_seconds(self) -> float | None:
        """CPU time of this process (all its threads) in the timed part; ``None`` when the work ran elsewhere."""
        return None if self.child_growth_kb is not None else self.cpu1 - self.cpu0

    @property
    def growth_kb(self) -> int:
        """Peak RSS over the baseline taken at :meth:`start` (0 if the peak was reached before)."""
        if self.child_growth_kb is not None:
            return self.child_growth_kb
        return max(0, self.rss1_kb - self.rss0_kb)


@dataclass
class Context:
    """What a workload is told: sizes, the seed and the folder of the store."""

    folder: Path
    n: int
    ops: int
    single_writes: int
    mixed_ops: int
    seed: int
    #: Time cap of the repeated-operation workloads (seconds of timed work).
    max_seconds: float = float("inf")
    probe: Probe = field(default_factory=Probe)


@dataclass(frozen=True)
class Workload:
    """A registered workload."""

    name: str
    title: str
    group: str
    run: Callable[[Adapter, Context], int]
    #: The store must hold the N documents before the workload starts.
    needs_data: bool
    #: Passed to the adapter (sqlitedict: one commit per write, or one per batch).
    autocommit: bool
    #: Uses N = ``--large`` size when ``--large`` is given (scan and query rows).
    large: bool
    #: What one "op" is, for the tables.
    unit: str
    #: Extra condition on the store class (``None``: every store of the group).
    supports: Callable[[type[Adapter]], bool] | None = None
    #: The documents it needs (:data:`bench.data.DATASETS`).
    dataset: str = "small"

    def applies_to(self, cls: type[Adapter]) -> bool:
        """True when ``cls`` can run this workload."""
        if self.group not in cls.groups:
            return False
        return self.supports is None or self.supports(cls)


#: Every workload by name, in table order.
WORKLOADS: dict[str, Workload] = {}


def workload(name: str, title: str, *, group: str = "kv", needs_data: bool = True, autocommit: bool = True,
             large: bool = False, unit: str = "ops",
             supports: Callable[[type[Adapter]], bool] | None = None, dataset: str = "small"
             ) -> Callable[[Callable[[Adapter, Context], int]], Callable[[Adapter, Context], int]]:
    """Decorator registering ``run(store, ctx) -> ops`` as workload ``name``."""

    def deco(run: Callable[[Adapter, Context], int]) -> Callable[[Adapter, Context], int]:
        if name in WORKLOADS:
            raise ValueError(f"workload {name!r} is registered twice")
        WORKLOADS[name] = Workload(name, title, group, run, needs_data, autocommit, large, unit, supports, dataset)
        return run

    return deco


def _chunks(seq: list[Any], size: int = CHUNK) -> list[list[Any]]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# -- key-value workloads ----------------------------------------------------------------


@workload("bulk_write", "bulk write (one transaction)", needs_data=False, autocommit=False, unit="docs")
def bulk_write(store: Adapter, ctx: Context) -> int:
    """Write N new documents in one transaction (``put_many``, ``executemany``, ``update``...)."""
    pairs = data.items(0, ctx.n)
    ctx.probe.start()
    store.bulk_write(pairs)
    ctx.probe.stop()
    _check(store.count() == ctx.n, f"{store.name}: count after bulk write is not {ctx.n}")
    _check(store.getter()(data.key(ctx.n - 1)) == data.doc(ctx.n - 1), f"{store.name}: wrong value read back")
    return ctx.n


@workload("single_write", "single durable writes (own transaction each)", unit="writes")
def single_write(store: Adapter, ctx: Context) -> int:
    """Insert ``single_writes`` new keys into the N-document store, each put its own committed transaction."""
    chunks = _chunks(list(data.items(ctx.n, ctx.n + ctx.single_writes)))
    put = store.putter()
    clock = time.perf_counter
    done = 0
    ctx.probe.start()
    deadline = ctx.probe.t0 + ctx.max_seconds
    for chunk in chunks:
        for k, v in chunk:
            put(k, v)
        done += len(chunk)
        if clock() > deadline:
            break
    ctx.probe.stop()
    last = ctx.n + done - 1
    _check(store.getter()(data.key(last)) == data.doc(last), f"{store.name}: wrong value read back")
    return done


@workload("point_read", "random point reads", unit="reads")
def point_read(store: Adapter, ctx: Context) -> int:
    """``ops`` reads of random existing keys (values decoded)."""
    return _point_reads(store, ctx, "small")


@workload("point_read_large", "random point reads, large docs", unit="reads", dataset="large")
def point_read_large(store: Adapter, ctx: Context) -> int:
    """``point_read`` over the large documents (~5.9 KB: the per-row overhead weighs less)."""
    return _point_reads(store, ctx, "large")


def _point_reads(store: Adapter, ctx: Context, dataset: str) -> int:
    indexes = data.random_indexes(ctx.ops, ctx.n, ctx.seed)
    chunks = _chunks(data.keys_for(indexes))
    get = store.getter()
    clock = time.perf_counter
    done = 0
    ctx.probe.start()
    deadline = ctx.probe.t0 + ctx.max_seconds
    for chunk in chunks:
        for k in chunk:
            get(k)
        done += len(chunk)
        if clock() > deadline:
            break
    ctx.probe.stop()
    _check(get(data.key(indexes[-1])) == data.doc(indexes[-1], dataset), f"{store.name}: wrong value read")
    return done


@workload("iterate", "full iteration with decode", large=True, unit="docs")
def iterate(store: Adapter, ctx: Context) -> int:
    """Read and decode every ``(key, value)`` once."""
    ctx.probe.start()
    count = store.iterate()
    ctx.probe.stop()
    _check(count == ctx.n, f"{store.name}: iteration gave {count} entries, not {ctx.n}")
    return count


@workload("get_many_100", f"get_many, batches of {BATCH}", unit="reads")
def get_many(store: Adapter, ctx: Context) -> int:
    """``ops`` random reads, ``BATCH`` keys per call (one read snapshot per batch where the store has it)."""
    indexes = data.random_indexes(ctx.ops, ctx.n, ctx.seed)
    keys = data.keys_for(indexes)
    batches = _chunks(keys, BATCH)
    get_many_ = store.get_many
    clock = time.perf_counter
    done = 0
    ctx.probe.start()
    deadline = ctx.probe.t0 + ctx.max_seconds
    for batch in batches:
        get_many_(batch)
        done += len(batch)
        if clock() > deadline:
            break
    ctx.probe.stop()
    _check(get_many_(batches[-1])[-1] == data.doc(indexes[-1]), f"{store.name}: wrong value read")
    return done


@workload("put_many_100", f"put_many, batches of {BATCH}", autocommit=False, unit="writes")
def put_many(store: Adapter, ctx: Context) -> int:
    """``ops`` overwrites of random existing keys, ``BATCH`` per transaction."""
    indexes = data.random_indexes(ctx.ops, ctx.n, ctx.seed)
    rng = random.Random(ctx.seed + 1)
    # New values are other documents, so every write really changes the row.
    pairs = [(data.key(i), data.doc(rng.randrange(data.POOL_SIZE))) for i in indexes]
    batches = _chunks(pairs, BATCH)
    put_many_ = store.put_many
    clock = time.perf_counter
    done = 0
    ctx.probe.start()
    deadline = ctx.probe.t0 + ctx.max_seconds
    for batch in batches:
        put_many_(batch)
        done += len(batch)
        if clock() > deadline:
            break
    ctx.probe.stop()
    written = dict(pairs[:done])  # the last write of each key wins
    k = pairs[done - 1][0]
    _check(store.getter()(k) == written[k], f"{store.name}: wrong value read back")
    return done


# -- mixed read/write from threads and processes -------------------------------------------

Op = tuple[bool, str, Any]


def _mixed_ops(n: int, count: int, seed: int) -> list[Op]:
    """``count`` operations alternating a read and a write, of random existing keys."""
    rng = random.Random(seed)
    ops: list[Op] = []
    for j in range(count):
        i = rng.randrange(n)
        if j % 2:
            ops.append((True, data.key(i), data.doc(rng.randrange(data.POOL_SIZE))))
        else:
            ops.append((False, data.key(i), None))
    return ops


def _run_ops(get: Callable[[str], Any], put: Callable[[str, Any], None], ops: list[Op], deadline: float) -> int:
    """Run ``ops`` in chunks until done or past ``deadline`` (``perf_counter`` time); returns how many ran."""
    clock = time.perf_counter
    done = 0
    for chunk in _chunks(ops):
        for is_write, k, v in chunk:
            if is_write:
                put(k, v)
            else:
                get(k)
        done += len(chunk)
        if clock() > deadline:
            break
    return done


def _locked(fn: Callable[..., Any], lock: threading.Lock) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        with lock:
            return fn(*args)

    return call


@workload("mixed_threads", f"50/50 read/write, {WORKERS} threads", unit="ops",
          supports=lambda cls: cls.threads is not None)
def mixed_threads(store: Adapter, ctx: Context) -> int:
    """``WORKERS`` threads, each doing ``mixed_ops`` alternating random reads and single writes."""
    barrier = threading.Barrier(WORKERS + 1)
    errors: list[BaseException] = []
    counts: list[int] = []

    def worker(w: int) -> None:
        try:
            handle = type(store)(ctx.folder, autocommit=True) if store.threads == "per-thread" else store
            get, put = handle.getter(), handle.putter()
            if store.threads == "lock":
                lock = getattr(store, "lock")
                get, put = _locked(get, lock), _locked(put, lock)
            ops = _mixed_ops(ctx.n, ctx.mixed_ops, ctx.seed + w)
            get(ops[0][1])  # connect/warm up outside the timed part
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            barrier.abort()
            return
        try:
            barrier.wait()
            counts.append(_run_ops(get, put, ops, time.perf_counter() + ctx.max_seconds))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            if handle is not store:
                handle.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    ctx.probe.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join()
    ctx.probe.stop()
    if errors:
        raise errors[0]
    return sum(counts)


def _process_worker(store_name: str, folder: str, n: int, count: int, seed: int, max_seconds: float,
                    barrier: Any, results: Any) -> None:
    """Body of one process of :func:`mixed_processes` (module level so ``spawn`` can import it)."""
    try:
        handle = STORES[store_name](Path(folder), autocommit=True)
        get, put = handle.getter(), handle.putter()
        ops = _mixed_ops(n, count, seed)
        get(ops[0][1])
        rss0 = maxrss_kb()
    except BaseException as exc:  # noqa: BLE001
        barrier.abort()
        results.put(("error", repr(exc)))
        return
    try:
        barrier.wait()
        done = _run_ops(get, put, ops, time.perf_counter() + max_seconds)
        results.put(("ok", (done, max(0, maxrss_kb() - rss0))))
    except BaseException as exc:  # noqa: BLE001
        results.put(("error", repr(exc)))
    finally:
        handle.close()


@workload("mixed_processes", f"50/50 read/write, {WORKERS} processes", unit="ops",
          supports=lambda cls: cls.processes)
def mixed_processes(store: Adapter, ctx: Context) -> int:
    """``WORKERS`` processes opening the same store, each doing ``mixed_ops`` alternating reads and writes."""
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(WORKERS + 1)
    results = mp.Queue()
    procs = [
        mp.Process(target=_process_worker,
                   args=(store.name, str(ctx.folder), ctx.n, ctx.mixed_ops, ctx.seed + w, ctx.max_seconds,
                         barrier, results))
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    ctx.probe.start()
    try:
        barrier.wait(timeout=120)
    except threading.BrokenBarrierError:
        pass
    outcomes = [results.get(timeout=600) for _ in procs]
    ctx.probe.stop()
    for p in procs:
        p.join()
    failed = [detail for status, detail in outcomes if status != "ok"]
    if failed:
        raise RuntimeError(f"{store.name}: a worker process failed: {failed[0]}")
    ctx.probe.child_growth_kb = max(growth for _, (_, growth) in outcomes)
    return sum(done for _, (done, _) in outcomes)


# -- queries ---------------------------------------------------------------------------


def _age(doc: Any) -> Any:
    """``doc["age"]`` when it is a number (not a bool), else ``None``: the fields a JSONPath comparison sees."""
    age = doc.get("age") if isinstance(doc, dict) else None
    return age if isinstance(age, (int, float)) and not isinstance(age, bool) else None


def _age_at_least_50(doc: Any) -> bool:
    age = _age(doc)
    return age is not None and age >= 50


def _age_at_least_0(doc: Any) -> bool:
    age = _age(doc)
    return age is not None and age >= 0


def _id_is_421(doc: Any) -> bool:
    value = doc.get("id") if isinstance(doc, dict) else None
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 421


#: The condition kvlite's RFC 9535 push-down writes for ``@.<field> <op> <number>`` (exact: no Python re-check).
def _rfc_sql(field: str, op: str) -> str:
    return (f"json_type(value, '$.{field}') IN ('integer', 'real') AND json_extract(value, '$.{field}') {op} ?")


def _rfc_specs(dataset: str, suffix: str) -> tuple[QuerySpec, ...]:
    """The RFC 9535 queries over ``dataset``: selective (0.1%), broad (50%) and a streaming ``select`` (100%)."""
    return (
        QuerySpec(
            name=f"rfc_selective{suffix}", jsonpath="$[?@.id == 421]", ng_path="$[?(@.id == 421)]",
            predicate=_id_is_421, sql=_rfc_sql("id", "="), params=(421,),
            index_path="$.id", index_sql="json_extract(value, '$.id')", group="rfc9535", dataset=dataset,
        ),
        QuerySpec(
            name=f"rfc_broad{suffix}", jsonpath="$[?@.age >= 50]", ng_path="$[?(@.age >= 50)]",
            predicate=_age_at_least_50, sql=_rfc_sql("age", ">="), params=(50,),
            index_path="$.age", index_sql="json_extract(value, '$.age')", group="rfc9535", dataset=dataset,
        ),
    )


#: The query workloads (each becomes ``query_<name>``): a selective (~1%) and a broad (~50%) filter in
#: the ``query`` group; in the ``rfc9535`` group, a selective (0.1%) and a broad (50%) RFC 9535 filter on
#: the small and the large documents, and ``select`` streaming every large document.
QUERIES: dict[str, QuerySpec] = {
    spec.name: spec
    for spec in (
        QuerySpec(
            name="selective",
            jsonpath="$[?(@.age == 42)]",
            predicate=lambda doc: _age(doc) == 42,
            sql="json_extract(value, '$.age') = 42",
            index_path="$.age",
            index_sql="json_extract(value, '$.age')",
        ),
        QuerySpec(
            name="broad",
            jsonpath="$[?(@.age >= 50)]",
            predicate=_age_at_least_50,
            sql="json_extract(value, '$.age') >= 50",
            index_path="$.age",
            index_sql="json_extract(value, '$.age')",
        ),
        *_rfc_specs("small", ""),
        *_rfc_specs("large", "_large"),
        QuerySpec(
            name="rfc_stream_large", jsonpath="$[?@.age >= 0]", ng_path="$[?(@.age >= 0)]",
            predicate=_age_at_least_0, sql=_rfc_sql("age", ">="), params=(0,),
            index_path="$.age", index_sql="json_extract(value, '$.age')", group="rfc9535", dataset="large",
            select=True,
        ),
    )
}


def expected_matches(spec: QuerySpec, n: int) -> int:
    """How many of the N benchmark documents ``spec`` selects."""
    docs = data.pool(spec.dataset)
    full, rest = divmod(n, data.POOL_SIZE)
    per_pool = sum(1 for d in docs if spec.predicate(d))
    return full * per_pool + sum(1 for d in docs[:rest] if spec.predicate(d))


def _query_workload(spec: QuerySpec) -> Callable[[Adapter, Context], int]:
    def run(store: Adapter, ctx: Context) -> int:
        query = store.querier(spec)  # parses and imports what it needs: not part of the memory growth
        want = expected_matches(spec, ctx.n)
        found: list[int] = []
        ctx.probe.start()
        while True:
            found.append(query())
            if time.perf_counter() - ctx.probe.t0 >= MIN_QUERY_SECONDS:
                break
        ctx.probe.stop()
        _check(set(found) == {want}, f"{store.name}: query {spec.name} found {found[0]} matches, expected {want}")
        return len(found) * ctx.n

    run.__doc__ = f"Run {spec.jsonpath} over the N documents (ops = documents covered)."
    return run


def _query_title(spec: QuerySpec) -> str:
    what = f"select {spec.jsonpath}" if spec.select else f"query {spec.jsonpath}"
    return what + (", large docs" if spec.dataset == "large" else "")


for _spec in QUERIES.values():
    # Large documents (~6 KB) stay at --n: --large's 1M of them would be ~6 GB per store.
    workload(f"query_{_spec.name}", _query_title(_spec), group=_spec.group, large=_spec.dataset == "small",
             unit="docs", supports=lambda cls: cls.supports_query(), dataset=_spec.dataset)(_query_workload(_spec))
