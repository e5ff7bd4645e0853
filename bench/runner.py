"""Runs the plan: every (workload, store) cell, each repeat in a fresh folder and a fresh process.

Order: for each workload, the repeats go round-robin over the stores (store
A, B, C, then A, B, C again...), so a slow drift of the machine touches every
store alike.  Stores that need the data set are filled once per (store, N,
data set) into a template folder, which each measurement copies into its own
fresh folder (query strategies that read the same file as another store, e.g.
``jsonpath-ng`` and ``kvlite``, share its template); in-memory stores (``dict``) fill themselves in the measuring process.
"""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .stores import STORES
from .workloads import BASELINES, WORKLOADS, Workload

__all__ = ["Settings", "run", "plan"]

#: The folder that holds the ``bench`` package (the child processes import it from there).
PACKAGE_PARENT = Path(__file__).resolve().parent.parent


@dataclass
class Settings:
    """Everything a run depends on (recorded in the results file)."""

    n: int = 100_000
    large_n: int | None = None
    repeats: int = 3
    ops: int = 50_000
    single_writes: int = 2_000
    mixed_ops: int = 10_000
    seed: int = 20240501
    max_seconds: float = 5.0
    stores: list[str] = field(default_factory=list)
    workloads: list[str] = field(default_factory=list)
    tmp: str | None = None
    timeout: float = 900.0

    def n_for(self, work: Workload) -> int:
        """N for ``work`` (the ``--large`` size for scan and query rows when asked)."""
        return self.large_n if (self.large_n and work.large) else self.n


def plan(settings: Settings) -> list[tuple[Workload, list[str]]]:
    """The cells to measure: each selected workload with the selected stores that can run it."""
    cells = []
    for name in settings.workloads:
        work = WORKLOADS[name]
        stores = [s for s in settings.stores if work.applies_to(STORES[s])]
        if stores:
            cells.append((work, stores))
    return cells


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    from .child import measure  # imported in the child only

    return measure(spec)


def _forked_entry(fn: Callable[[dict[str, Any]], dict[str, Any]], spec: dict[str, Any], conn: Any) -> None:
    try:
        conn.send(("ok", fn(spec)))
    except BaseException as exc:  # noqa: BLE001 - sent to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def forked(fn: Callable[[dict[str, Any]], dict[str, Any]], spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``fn(spec)`` in a forked child (a fresh process; no interpreter start-up), its result sent back."""
    mp = multiprocessing.get_context("fork")
    recv, send = mp.Pipe(duplex=False)
    proc = mp.Process(target=_forked_entry, args=(fn, spec, send))
    proc.start()
    send.close()
    try:
        if not recv.poll(timeout):
            proc.kill()
            raise RuntimeError(f"timed out after {timeout:.0f} s")
        try:
            status, payload = recv.recv()
        except EOFError:
            status, payload = "error", "the child died without a result"
    finally:
        proc.join()
        recv.close()
    if status != "ok":
        raise RuntimeError(payload if proc.exitcode == 0 else f"{payload} (exit {proc.exitcode})")
    return payload


def _child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One measurement in a fresh process: forked where possible, else a new interpreter."""
    if "fork" in multiprocessing.get_all_start_methods():
        return forked(_measure, spec, timeout)
    return _subprocess(spec, timeout)


def _subprocess(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.child", json.dumps(spec)],
        cwd=PACKAGE_PARENT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"exit {proc.returncode}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("kvlite", "apsw", "orjson", "diskcache", "sqlitedict", "jsonpath-ng", "jsonpath-rfc9535"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    import apsw

    out["sqlite"] = apsw.sqlite_lib_version()
    return out


def _git_revision() -> str | None:
    try:
        proc = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=PACKAGE_PARENT,
                              capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return proc.stdout.strip() or None


def run(settings: Settings, log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)) -> dict[str, Any]:
    """Measure every cell of :func:`plan`; returns the results (see ``bench/README.md`` for the format)."""
    cells = plan(settings)
    root = Path(tempfile.mkdtemp(prefix="kvlite-bench-", dir=settings.tmp))
    templates: dict[tuple[str, int, str], Path] = {}
    results: list[dict[str, Any]] = []
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        for work, stores in cells:
            n = settings.n_for(work)
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in stores}
            errors: dict[str, str] = {}
            template_of = {s: (STORES[s].template or s, n, work.dataset) for s in stores}
            for store in stores:
                key = template_of[store]
                if work.needs_data and not STORES[store].in_memory and key not in templates:
                    folder = root / "templates" / f"{key[0]}-{n}-{work.dataset}"
                    folder.mkdir(parents=True)
                    log(f"  filling {key[0]} with {n:,} {work.dataset} documents")
                    try:
                        _child({"mode": "populate", "store": key[0], "folder": str(folder), "n": n,
                                "dataset": work.dataset}, settings.timeout)
                        templates[key] = folder
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        errors[store] = f"populate failed: {exc}"
                        shutil.rmtree(folder, ignore_errors=True)
            for rep in range(settings.repeats):
                for store in stores:
                    if store in errors:
                        continue
                    folder = root / "cells" / f"{work.name}-{store}-{rep}"
                    if template_of[store] in templates:
                        shutil.copytree(templates[template_of[store]], folder)
                    else:
                        folder.mkdir(parents=True)
                    spec = {
                        "mode": "run", "store": store, "workload": work.name, "folder": str(folder), "n": n,
                        "ops": settings.ops, "single_writes": settings.single_writes,
                        "mixed_ops": settings.mixed_ops, "seed": settings.seed + rep,
                        "max_seconds": settings.max_seconds, "dataset": work.dataset,
                    }
                    try:
                        out = _child(spec, settings.timeout)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        errors[store] = str(exc)
                        log(f"  {work.name} / {store}: FAILED: {exc}")
                        continue
                    finally:
                        shutil.rmtree(folder, ignore_errors=True)
                    out["ops_per_s"] = out["ops"] / out["seconds"] if out["seconds"] > 0 else float("inf")
                    runs[store].append(out)
                    log(f"  {work.name} / {store} #{rep + 1}: {out['ops_per_s']:,.0f} {work.unit}/s, "
                        f"+{out['rss_growth_kb'] / 1024:.1f} MB")
            results.extend(_summarize(work, n, stores, runs, errors))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "meta": {
            "started": started.isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "git": _git_revision(),
            "versions": _versions(),
            "stores": {s: STORES[s].describe() for s in settings.stores},
            "baselines": BASELINES,
            "settings": asdict(settings),
        },
        "workloads": {w.name: {"title": w.title, "group": w.group, "unit": w.unit, "n": settings.n_for(w),
                               "dataset": w.dataset, "doc_bytes": _doc_bytes(w.dataset)}
                      for w, _ in cells},
        "cells": results,
    }


def _doc_bytes(dataset: str) -> dict[str, float]:
    """Size of the data set's documents as JSON text (orjson): min, mean, max bytes."""
    import orjson

    from . import data

    sizes = [len(orjson.dumps(d)) for d in data.pool(dataset)]
    return {"min": min(sizes), "mean": sum(sizes) / len(sizes), "max": max(sizes)}


def _summarize(work: Workload, n: int, stores: list[str], runs: dict[str, list[dict[str, Any]]],
               errors: dict[str, str]) -> list[dict[str, Any]]:
    """One result per store for ``work``: median ops/s (wall and per CPU second), ratios to the
    group's baseline, and the largest peak-RSS growth over the repeats."""
    medians = {s: statistics.median(r["ops_per_s"] for r in runs[s]) for s in stores if runs[s]}
    cpu_medians = {
        s: statistics.median(r["ops"] / r["cpu_seconds"] for r in runs[s])
        for s in stores
        if runs[s] and all(r.get("cpu_seconds") for r in runs[s])
    }
    base = medians.get(BASELINES[work.group])
    cpu_base = cpu_medians.get(BASELINES[work.group])
    out = []
    for store in stores:
        cell: dict[str, Any] = {"workload": work.name, "store": store, "n": n, "runs": runs[store]}
        if store in medians:
            cell["ops_per_s"] = medians[store]
            cell["ratio"] = medians[store] / base if base else None
            cell["rss_growth_mb"] = max(r["rss_growth_kb"] for r in runs[store]) / 1024
        if store in cpu_medians:
            cell["ops_per_cpu_s"] = cpu_medians[store]
            cell["cpu_ratio"] = cpu_medians[store] / cpu_base if cpu_base else None
        if store in errors:
            cell["error"] = errors[store]
        out.append(cell)
    return out
