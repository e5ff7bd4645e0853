"""``python -m bench``: measure every store on every workload and print a Markdown table.

Run from the repository root.  ``--quick`` is a smoke run (N=5000) that
finishes in well under a minute; the default is N=100k.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Mapping

from .report import markdown
from .runner import Settings, run
from .stores import STORES, default_stores
from .workloads import WORKLOADS

DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"


def _names(text: str, known: Mapping[str, object], what: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=None, help="documents in the data set (default 100000)")
    p.add_argument("--quick", action="store_true", help="smoke run: N=5000, fewer ops, 3 repeats")
    p.add_argument("--large", nargs="?", const=1_000_000, type=int, default=None, metavar="N",
                   help="use N (default 1000000) documents for the scan and query rows")
    p.add_argument("--repeats", type=int, default=3, help="runs per cell; the median is reported (default 3)")
    p.add_argument("--ops", type=int, default=None,
                   help="reads/writes for point_read, get_many_100, put_many_100 (default min(N, 50000))")
    p.add_argument("--single-writes", type=int, default=None, help="writes in single_write (default min(N, 2000))")
    p.add_argument("--mixed-ops", type=int, default=None,
                   help="operations per worker in the mixed workloads (default min(N, 10000))")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="time cap of each repeated-operation cell (default 5; 0.5 with --quick)")
    p.add_argument("--stores", default=None, help=f"comma-separated (default: {','.join(default_stores())})")
    p.add_argument("--workloads", default=None, help="comma-separated (default: all)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON file (default bench/results.json)")
    p.add_argument("--tmp", default=None, help="folder for the temporary stores (default: the system temp dir)")
    p.add_argument("--seed", type=int, default=20240501)
    p.add_argument("--metric", choices=("wall", "cpu"), default="wall",
                   help="tables in ops per wall-clock second (default) or per CPU second of the measuring process")
    p.add_argument("--list", action="store_true", help="list stores and workloads, then exit")
    p.add_argument("--report", type=Path, default=None, metavar="RESULTS_JSON",
                   help="print the tables of an existing results file, then exit")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """The run's settings from the command line."""
    n = args.n if args.n is not None else (5_000 if args.quick else 100_000)
    stores = _names(args.stores, STORES, "store") if args.stores else default_stores()
    workloads = _names(args.workloads, WORKLOADS, "workload") if args.workloads else list(WORKLOADS)
    cap = 5_000 if args.quick else 50_000
    return Settings(
        n=n,
        large_n=args.large,
        repeats=args.repeats,
        ops=args.ops if args.ops is not None else min(n, cap),
        single_writes=args.single_writes if args.single_writes is not None else min(n, 500 if args.quick else 2_000),
        mixed_ops=args.mixed_ops if args.mixed_ops is not None else min(n, 1_000 if args.quick else 10_000),
        seed=args.seed,
        max_seconds=args.max_seconds if args.max_seconds is not None else (0.5 if args.quick else 5.0),
        stores=stores,
        workloads=workloads,
        tmp=args.tmp,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, cls in STORES.items():
            print(f"store     {name:18} {'default' if cls.default else 'optional':8} {cls.describe()}")
        for name, work in WORKLOADS.items():
            print(f"workload  {name:18} {work.group:8} {work.title}")
        return 0
    if args.report is not None:
        print(markdown(json.loads(args.report.read_text()), args.metric))
        return 0
    settings = settings_from(args)
    if settings.repeats < 1 or settings.n < 1:
        raise SystemExit("--repeats and --n must be at least 1")
    results = run(settings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results, args.metric))
    print(f"results: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
