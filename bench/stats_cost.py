"""What the always-on ``stats()`` counters cost: their share of a ``get`` and a ``put``.

    python -m bench.stats_cost [--n N] [--repeats R]

The counters are plain attribute increments inside ``Collection.get``/``put``
(``_n_gets``, ``_n_hits``, ``_n_puts``); there is no switch to turn them off,
so this measures, in the same run, the median time of N ``get``/``put`` calls
and of N executions of exactly the increments those calls make, and prints
the increments' share.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Callable

import kvlite


def _median(fn: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stats_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, kvlite.open(os.path.join(tmp, "s.db")) as store:
        coll = store.collection("c")
        keys = [f"k{i}" for i in range(args.n)]
        coll.put_many((k, {"n": i}) for i, k in enumerate(keys))

        def gets() -> None:
            for key in keys:
                coll.get(key)

        def puts() -> None:
            with store.transaction():
                for i, key in enumerate(keys):
                    coll.put(key, {"n": i})

        def get_counters() -> None:
            for _ in keys:
                coll._n_gets += 1
                coll._n_hits += 1

        def put_counters() -> None:
            for _ in keys:
                coll._n_puts += 1

        def loop() -> None:
            for _ in keys:
                pass

        empty = _median(loop, args.repeats)
        rows = [("get", _median(gets, args.repeats), _median(get_counters, args.repeats) - empty),
                ("put (in one transaction)", _median(puts, args.repeats), _median(put_counters, args.repeats) - empty)]
    print(f"| operation (N={args.n:,}) | µs per call | counters, µs per call | counters' share |")
    print("|---|---:|---:|---:|")
    for name, total, counters in rows:
        print(f"| {name} | {total / args.n * 1e6:.2f} | {counters / args.n * 1e6:.3f} | {counters / total:.1%} |")


if __name__ == "__main__":
    main()
