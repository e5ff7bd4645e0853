"""One measurement, run in its own process.

Each (store, workload, repeat) runs in a fresh process so its peak RSS
(``ru_maxrss``) belongs to that workload alone; the growth reported is the
peak during the timed part over the peak before it (after the store was
opened, the data loaded for in-memory stores and the inputs prepared).

The runner forks a child per measurement and calls :func:`measure` in it
(where ``fork`` exists), or runs ``python -m bench.child '<json spec>'``.

Spec keys: ``mode`` ("populate" or "run"), ``store``, ``folder``, ``n``,
``dataset`` (optional, default "small"); for "run" also ``workload``, ``ops``, ``single_writes``, ``mixed_ops``, ``seed``, ``max_seconds``.
Prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import data
from .stores import STORES
from .workloads import WORKLOADS, Context


def populate(spec: dict[str, Any]) -> dict[str, Any]:
    """Write the N documents into ``folder`` (the template every measurement copies)."""
    store = STORES[spec["store"]](Path(spec["folder"]), autocommit=False)
    try:
        store.bulk_write(data.items(0, spec["n"], spec.get("dataset", "small")))
        store.after_populate()
        count = store.count()
    finally:
        store.close()
    if count != spec["n"]:
        raise AssertionError(f"{spec['store']}: populated {count} entries, expected {spec['n']}")
    return {"count": count}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Time one workload on one store; returns ops, seconds and peak-RSS growth."""
    work = WORKLOADS[spec["workload"]]
    cls = STORES[spec["store"]]
    folder = Path(spec["folder"])
    store = cls(folder, autocommit=work.autocommit)
    try:
        if cls.in_memory and work.needs_data:
            store.bulk_write(data.items(0, spec["n"], work.dataset))
            store.after_populate()
        ctx = Context(folder=folder, n=spec["n"], ops=spec["ops"], single_writes=spec["single_writes"],
                      mixed_ops=spec["mixed_ops"], seed=spec["seed"], max_seconds=spec["max_seconds"])
        ops = work.run(store, ctx)
    finally:
        store.close()
    return {"ops": ops, "seconds": ctx.probe.seconds, "cpu_seconds": ctx.probe.cpu_seconds,
            "rss_growth_kb": ctx.probe.growth_kb}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """:func:`populate` or :func:`run`, as ``spec["mode"]`` says."""
    return populate(spec) if spec["mode"] == "populate" else run(spec)


def main(argv: list[str]) -> int:
    result = measure(json.loads(argv[1]))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
