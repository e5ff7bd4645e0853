"""Markdown tables from a results dict (as :func:`bench.runner.run` returns or results.json holds)."""

from __future__ import annotations

from typing import Any

from .stores import STORES

__all__ = ["markdown", "TARGETS", "check_targets"]

#: The targets: (workload, store, minimum ratio, what it means, the store the ratio is over:
#: ``None`` for the group's baseline).  Issue 5's first, then the RFC 9535 query targets.
TARGETS: list[tuple[str, str, float, str, str | None]] = [
    ("point_read", "kvlite", 0.8, "Collection.get >= 0.8x floor", None),
    ("point_read", "kvlite-dict", 0.7, "DictView d[k] >= 0.7x floor", None),
    ("bulk_write", "kvlite", 0.8, "put_many >= 0.8x floor executemany", None),
    ("single_write", "kvlite", 0.8, "single put (own transaction) >= 0.8x floor", None),
    ("iterate", "kvlite", 0.8, "full iteration with decode >= 0.8x floor", None),
    ("query_selective", "kvlite", 20.0, "selective filter, push-down >= 20x jsonpath-ng", None),
    ("query_selective", "kvlite+index", 150.0, "selective filter, indexed >= 150x jsonpath-ng", None),
    ("query_selective", "kvlite-jsonb", 20.0, "selective filter, push-down on jsonb >= 20x jsonpath-ng", None),
    ("query_selective", "kvlite-jsonb+index", 150.0, "selective filter, indexed jsonb >= 150x jsonpath-ng", None),
]
for _suffix, _docs in (("", "small docs"), ("_large", "large docs")):
    TARGETS += [
        (f"query_rfc_selective{_suffix}", "kvlite", 0.9,
         f"RFC 9535 selective (0.1%), {_docs}, json TEXT: kvlite >= 0.9x apsw running the same SQL", "apsw"),
        (f"query_rfc_selective{_suffix}", "kvlite-jsonb", 20.0,
         f"RFC 9535 selective (0.1%), {_docs}, jsonb push-down >= 20x jsonpath-rfc9535 reference", "rfc9535-ref"),
        (f"query_rfc_selective{_suffix}", "kvlite+index", 150.0,
         f"RFC 9535 selective (0.1%), {_docs}, create_index (json) >= 150x reference", "rfc9535-ref"),
        (f"query_rfc_selective{_suffix}", "kvlite-jsonb+index", 150.0,
         f"RFC 9535 selective (0.1%), {_docs}, create_index (jsonb) >= 150x reference", "rfc9535-ref"),
        (f"query_rfc_broad{_suffix}", "kvlite", 1.0,
         f"RFC 9535 broad (50%), {_docs}: default engine no slower than engine='jsonpath-ng'", "kvlite-ng"),
    ]
#: Peak RSS growth allowed for a scan query over 1M documents (MB), and for ``select`` streaming every
#: large document (``query_rfc_stream_large``, any N).
QUERY_RSS_LIMIT_MB = 32.0
#: Workloads whose kvlite cells are held to :data:`QUERY_RSS_LIMIT_MB` whatever their N.
STREAM_WORKLOADS = ("query_rfc_stream_large",)


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


def _speed(cell: dict[str, Any] | None, metric: str) -> float | None:
    if cell is None:
        return None
    return cell.get("ops_per_cpu_s" if metric == "cpu" else "ops_per_s")


def _doc_sizes(results: dict[str, Any], group: str) -> str:
    """One line giving the JSON size of each data set the group's workloads used."""
    seen: dict[str, dict[str, float]] = {}
    for meta in results["workloads"].values():
        if meta["group"] == group and "doc_bytes" in meta:
            seen.setdefault(meta.get("dataset", "small"), meta["doc_bytes"])
    if not seen:
        return ""
    return "Documents (JSON text): " + "; ".join(
        f"{name}: {b['min']:,.0f}-{b['max']:,.0f} bytes, {b['mean']:,.0f} on average" for name, b in seen.items()) + "."


def check_targets(results: dict[str, Any], metric: str = "wall") -> list[tuple[str, str, str]]:
    """``(target, measured, status)`` for every target (status: PASS / FAIL / not measured).

    A ratio is the store's median over the median of the target's baseline store in the same
    workload of the same run (the group's baseline unless the target names another)."""
    by_key = {(c["workload"], c["store"]): c for c in results["cells"]}
    rows = []
    for work, store, minimum, text, baseline in TARGETS:
        cell = by_key.get((work, store))
        if baseline is None:
            ratio = None if cell is None else cell.get("cpu_ratio" if metric == "cpu" else "ratio")
        else:
            mine, base = _speed(cell, metric), _speed(by_key.get((work, baseline)), metric)
            ratio = mine / base if mine is not None and base else None
        if ratio is None:
            rows.append((text, "-", "not measured"))
        else:
            rows.append((text, _ratio(ratio), "PASS" if ratio >= minimum else "FAIL"))
    kvlite_stores = ("kvlite", "kvlite+index", "kvlite-jsonb", "kvlite-jsonb+index")
    for name, meta in results["workloads"].items():
        if name in STREAM_WORKLOADS:
            what = f"{meta['n']:,} {meta.get('dataset', 'small')} docs"
        elif meta["group"] in ("query", "rfc9535") and meta["n"] >= 1_000_000:
            what = f"{meta['n']:,} docs"
        else:
            continue
        for store in kvlite_stores:
            cell = by_key.get((name, store))
            if cell and "rss_growth_mb" in cell:
                growth = cell["rss_growth_mb"]
                rows.append((f"{name} on {store}, {what}: peak RSS growth <= {QUERY_RSS_LIMIT_MB:.0f} MB",
                             f"{growth:.1f} MB", "PASS" if growth <= QUERY_RSS_LIMIT_MB else "FAIL"))
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
        ("rfc9535", "RFC 9535 query workloads: documents covered/s · speed-up over the jsonpath-rfc9535 reference"),
    ]
    for group, heading in sections:
        speed = _table(results, group, "speed", metric)
        if not speed:
            continue
        sizes = _doc_sizes(results, group)
        out += [f"### {heading}", "", *([sizes, ""] if sizes else []), *speed, "",
                "Peak RSS growth during the timed part (MB, over the measuring process's peak after "
                "opening the store and preparing the inputs):", "", *_table(results, group, "memory"), ""]
    failed = [c for c in results["cells"] if "error" in c]
    if failed:
        out += ["Failures:", ""] + [f"- {c['workload']} / {c['store']}: {c['error']}" for c in failed] + [""]
    targets = check_targets(results, metric)
    out += ["### Targets", "", "| target | measured | status |", "|---|---:|---|"]
    out += [f"| {t} | {m} | {s} |" for t, m, s in targets]
    return "\n".join(out) + "\n"
