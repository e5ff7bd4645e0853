"""Markdown tables from a results dict (as :func:`bench.runner.run` returns or results.json holds)."""

from __future__ import annotations

from typing import Any

from .stores import STORES

__all__ = ["markdown", "TARGETS", "check_targets"]

#: Issue 5's targets: (workload, store, minimum ratio to the group baseline, what it means).
TARGETS: list[tuple[str, str, float, str]] = [
    ("point_read", "kvlite", 0.8, "Collection.get >= 0.8x floor"),
    ("point_read", "kvlite-dict", 0.7, "DictView d[k] >= 0.7x floor"),
    ("bulk_write", "kvlite", 0.8, "put_many >= 0.8x floor executemany"),
    ("single_write", "kvlite", 0.8, "single put (own transaction) >= 0.8x floor"),
    ("iterate", "kvlite", 0.8, "full iteration with decode >= 0.8x floor"),
    ("query_selective", "kvlite", 20.0, "selective filter, push-down >= 20x jsonpath-ng"),
    ("query_selective", "kvlite+index", 150.0, "selective filter, indexed >= 150x jsonpath-ng"),
    ("query_selective", "kvlite-jsonb", 20.0, "selective filter, push-down on jsonb >= 20x jsonpath-ng"),
    ("query_selective", "kvlite-jsonb+index", 150.0, "selective filter, indexed jsonb >= 150x jsonpath-ng"),
]
#: Peak RSS growth allowed for a scan query over 1M documents (MB).
QUERY_RSS_LIMIT_MB = 32.0


def _rate(value: float) -> str:
    """Three significant digits with k/M suffixes: 1234567 -> '1.23M'."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= div:
            scaled = value / div
            return f"{scaled:.3g}{suffix}" if scaled < 1000 else f"{scaled:.0f}{suffix}"
    return f"{value:.3g}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def _stores_in(cells: list[dict[str, Any]], group: str, workloads: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    for cell in cells:
        if workloads[cell["workload"]]["group"] == group and cell["store"] not in seen:
            seen.append(cell["store"])
    order = list(STORES)
    return sorted(seen, key=lambda s: order.index(s) if s in order else len(order))


def _title(store: str) -> str:
    cls = STORES.get(store)
    return cls.title if cls is not None else store


def _table(results: dict[str, Any], group: str, value: str, metric: str = "wall") -> list[str]:
    workloads = results["workloads"]
    cells = results["cells"]
    stores = _stores_in(cells, group, workloads)
    if not stores:
        return []
    by_key = {(c["workload"], c["store"]): c for c in cells}
    lines = ["| workload | " + " | ".join(_title(s) for s in stores) + " |",
             "|---|" + "---:|" * len(stores)]
    for name, meta in workloads.items():
        if meta["group"] != group:
            continue
        row = [f"{meta['title']} (N={meta['n']:,})"]
        for store in stores:
            cell = by_key.get((name, store))
            if cell is None:
                row.append("n/a")
            elif "ops_per_s" not in cell:
                row.append("failed")
            elif value == "speed" and metric == "cpu":
                if "ops_per_cpu_s" in cell:
                    row.append(f"{_rate(cell['ops_per_cpu_s'])}/s · {_ratio(cell.get('cpu_ratio'))}")
                else:
                    row.append("n/a")
            elif value == "speed":
                row.append(f"{_rate(cell['ops_per_s'])}/s · {_ratio(cell.get('ratio'))}")
            else:
                row.append(f"{cell['rss_growth_mb']:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def check_targets(results: dict[str, Any], metric: str = "wall") -> list[tuple[str, str, str]]:
    """``(target, measured, status)`` for every target of issue 5 (status: met / NOT met / not measured)."""
    by_key = {(c["workload"], c["store"]): c for c in results["cells"]}
    rows = []
    for work, store, minimum, text in TARGETS:
        cell = by_key.get((work, store))
        ratio = None if cell is None else cell.get("cpu_ratio" if metric == "cpu" else "ratio")
        if ratio is None:
            rows.append((text, "-", "not measured"))
        else:
            rows.append((text, _ratio(ratio), "met" if ratio >= minimum else "NOT met"))
    for name, meta in results["workloads"].items():
        if meta["group"] == "query" and meta["n"] >= 1_000_000:
            for store in ("kvlite", "kvlite+index", "kvlite-jsonb", "kvlite-jsonb+index"):
                cell = by_key.get((name, store))
                if cell and "rss_growth_mb" in cell:
                    growth = cell["rss_growth_mb"]
                    rows.append((f"{name} on {store}, 1M docs: peak RSS growth <= {QUERY_RSS_LIMIT_MB:.0f} MB",
                                 f"{growth:.1f} MB", "met" if growth <= QUERY_RSS_LIMIT_MB else "NOT met"))
    return rows


def markdown(results: dict[str, Any], metric: str = "wall") -> str:
    """The whole report: speed and memory tables per group, then the targets.

    ``metric="wall"`` reports operations per wall-clock second (the default);
    ``"cpu"`` per CPU second of the measuring process, which a busy machine
    disturbs less (not available for the multi-process workload).
    """
    meta = results["meta"]
    settings = meta["settings"]
    versions = meta["versions"]
    out = [
        f"Python {meta['python']}, {meta['cpus']} CPUs, SQLite {versions['sqlite']}, apsw {versions['apsw']}, "
        f"orjson {versions['orjson']}; median of {settings['repeats']} runs; "
        f"{'per CPU second' if metric == 'cpu' else 'wall clock'}; kvlite {versions['kvlite']}"
        + (f" ({meta['git']})" if meta.get("git") else "") + ".",
        "",
    ]
    sections = [
        ("kv", "Key-value workloads: ops/s · ratio to the apsw floor"),
        ("query", "Query workloads: documents covered/s · speed-up over jsonpath-ng"),
    ]
    for group, heading in sections:
        speed = _table(results, group, "speed", metric)
        if not speed:
            continue
        out += [f"### {heading}", "", *speed, "",
                "Peak RSS growth during the timed part (MB, over the measuring process's peak after "
                "opening the store and preparing the inputs):", "", *_table(results, group, "memory"), ""]
    failed = [c for c in results["cells"] if "error" in c]
    if failed:
        out += ["Failures:", ""] + [f"- {c['workload']} / {c['store']}: {c['error']}" for c in failed] + [""]
    targets = check_targets(results, metric)
    out += ["### Targets (issue 5)", "", "| target | measured | status |", "|---|---:|---|"]
    out += [f"| {t} | {m} | {s} |" for t, m, s in targets]
    return "\n".join(out) + "\n"
