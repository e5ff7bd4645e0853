"""Smoke tests of the benchmark suite itself: ``python -m pytest bench`` (a few seconds).

They check that every cell of a tiny run produces a result, that ratios are
relative to the floor, that the tables show every store, and that a store
giving wrong answers fails its cell instead of being timed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from bench import report, runner
from bench.__main__ import main
from bench.stores import STORES, PlainDict
from bench.workloads import QUERIES, WORKLOADS, expected_matches

SMALL = dict(n=300, repeats=1, ops=200, single_writes=50, mixed_ops=100, max_seconds=5.0)


def _settings(stores: list[str], workloads: list[str], tmp_path: Path) -> runner.Settings:
    return runner.Settings(stores=stores, workloads=workloads, tmp=str(tmp_path), **SMALL)  # type: ignore[arg-type]


def test_every_kv_cell_measures_and_ratios_are_relative_to_the_floor(tmp_path: Path) -> None:
    kv = [name for name, w in WORKLOADS.items() if w.group == "kv"]
    results = runner.run(_settings(["apsw", "kvlite", "kvlite-dict", "dict"], kv, tmp_path), log=lambda m: None)
    cells = {(c["workload"], c["store"]): c for c in results["cells"]}
    for name in kv:
        assert cells[(name, "apsw")]["ratio"] == pytest.approx(1.0)
        for store in ("kvlite", "kvlite-dict"):
            cell = cells[(name, store)]
            assert "error" not in cell, cell.get("error")
            assert cell["ops_per_s"] > 0 and cell["ratio"] > 0
    # dict lives in one process: it has no multi-process cell.
    assert ("mixed_processes", "dict") not in cells
    assert cells[("point_read", "dict")]["runs"][0]["ops"] == SMALL["ops"]
    table = report.markdown(results)
    for title in ("apsw floor", "kvlite Collection", "kvlite DictView", "dict (ceiling)"):
        assert title in table
    assert "| Collection.get >= 0.8x floor |" in table
    assert not list(tmp_path.iterdir())  # every temporary store was removed


def test_query_strategies_agree_on_the_match_count(tmp_path: Path) -> None:
    results = runner.run(_settings(["jsonpath-ng", "python-loop", "apsw", "apsw+index"], list(
        f"query_{q}" for q in QUERIES), tmp_path), log=lambda m: None)
    assert results["cells"]
    for cell in results["cells"]:
        assert "error" not in cell, cell.get("error")
    assert expected_matches(QUERIES["selective"], 300) == 3
    assert expected_matches(QUERIES["broad"], 300) == 150


class _WrongDict(PlainDict):
    """A dict store whose reads return the wrong value."""

    name = "wrong-dict"

    def getter(self) -> Callable[[str], Any]:
        return lambda key: {"wrong": key}


def test_a_store_with_wrong_answers_fails_its_cell(tmp_path: Path) -> None:
    STORES[_WrongDict.name] = _WrongDict
    try:
        results = runner.run(_settings(["apsw", "wrong-dict"], ["point_read"], tmp_path), log=lambda m: None)
    finally:
        del STORES[_WrongDict.name]
    cell = next(c for c in results["cells"] if c["store"] == "wrong-dict")
    assert "wrong value read" in cell["error"]
    assert "ops_per_s" not in cell


def test_command_line_writes_results_and_prints_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    assert main(["--n", "200", "--repeats", "1", "--stores", "apsw,kvlite", "--workloads", "point_read,iterate",
                 "--out", str(out), "--tmp", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert {c["store"] for c in saved["cells"]} == {"apsw", "kvlite"}
    assert "random point reads (N=200)" in printed
    assert main(["--report", str(out), "--metric", "cpu"]) == 0
    assert "per CPU second" in capsys.readouterr().out


def test_each_kvlite_store_uses_its_serializer(tmp_path: Path) -> None:
    for name, serializer in [("kvlite", "json"), ("kvlite-jsonb", "jsonb"), ("kvlite-jsonb+index", "jsonb")]:
        folder = tmp_path / name
        folder.mkdir()
        adapter = STORES[name](folder)
        try:
            assert adapter.coll.serializer.name == serializer  # type: ignore[attr-defined]
        finally:
            adapter.close()


def test_rfc9535_strategies_agree_and_targets_are_computed(tmp_path: Path) -> None:
    names = [f"query_{q}" for q, spec in QUERIES.items() if spec.group == "rfc9535"]
    stores = ["apsw", "kvlite", "kvlite-jsonb", "kvlite+index", "kvlite-ng", "rfc9535-ref"]
    results = runner.run(_settings(stores, names, tmp_path), log=lambda m: None)
    for cell in results["cells"]:
        assert "error" not in cell, (cell["workload"], cell["store"], cell.get("error"))
    assert expected_matches(QUERIES["rfc_selective_large"], 3000) == 3
    assert results["workloads"]["query_rfc_selective_large"]["doc_bytes"]["mean"] > 4000
    rows = {text: status for text, _, status in report.check_targets(results)}
    assert rows["RFC 9535 broad (50%), small docs: default engine no slower than engine='jsonpath-ng'"] in (
        "PASS", "FAIL")
    assert any(text.startswith("query_rfc_stream_large on kvlite,") for text in rows)
    assert "RFC 9535 query workloads" in report.markdown(results)


def test_documents_where_and_count_by_cells_measure_and_check(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from bench import documents

    settings = documents.Settings(n=300, count_n=400, repeats=1, count_repeats=1, tmp=str(tmp_path))
    results = documents.run(settings, log=lambda m: None)
    for cell in results["cells"]:
        assert "error" not in cell, (cell.get("op"), cell.get("filter"), cell["strategy"], cell.get("error"))
    where = [c for c in results["cells"] if c["part"] == "where"]
    assert {c["dataset"] for c in where} == {"small", "large"}
    floor = {f for f, (_, python, _) in documents.WHERE_FILTERS.items() if python == "nothing"}
    assert len(where) == 2 * sum(2 + (f in floor) + (op == "patch") for op, f, _ in documents.WHERE_ROWS)
    assert all(c["docs"] == 3 for c in where)  # 1% of 300
    exact = next(c for c in where if c["strategy"] == "kvlite" and c["filter"] == "exact")
    assert exact["python"].startswith("nothing")
    counted = {(c["field"], c["strategy"]): c for c in results["cells"] if c["part"] == "count"}
    assert counted[("status", "kvlite")]["groups"] == 10 and counted[("user", "memory")]["groups"] == 40
    assert results["data"]["where"]["large"]["doc_bytes"]["mean"] > 4000
    assert not list(tmp_path.iterdir())  # every temporary file was removed
    report = documents.markdown(results)
    assert "≥5x)" in report and "count_by over 400 documents" in report
    out = tmp_path / "documents.json"
    out.write_text(json.dumps(results))
    assert documents.main(["--report", str(out), "--metric", "cpu"]) == 0
    assert "CPU time" in capsys.readouterr().out


def test_pykv_bridge_cells_measure_and_check() -> None:
    """bench.pykv_bridge: every way of a tiny row measures (each checks what it read or wrote) and
    the table shows the ratios."""
    from bench import pykv_bridge

    rows = pykv_bridge.measure(["MemoryStore", "DiskStore"], ["small"], pykv_bridge.WORKLOADS, 200, 1,
                               log=lambda m: None)
    assert len(rows) == 2 * len(pykv_bridge.WORKLOADS)
    for row in rows:
        assert all(speed > 0 for speed in row["ops_per_s"].values()) and row["kvlite/async"] > 0
    text = pykv_bridge.table(rows)
    assert "kvlite / async" in text and "Target" in text
