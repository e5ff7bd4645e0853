"""``kvlite facets FILE COLL PATH [--query Q] [--limit N]``: ``Collection.count_by`` on the command
line, compared with the Python call on the same file."""

from __future__ import annotations

from pathlib import Path

import kvlite
from helpers_cli import Cli, json_lines, ok, one_error_line


def _fill(path: Path) -> None:
    with kvlite.open(path) as db:
        c = db.collection("orders")
        c.put_many({f"o{n}": {"status": ["new", "paid", "sent"][n % 3] if n % 7 else None, "total": n,
                              "tags": ["a", "b"] if n % 2 else ["b", "a"]} for n in range(40)})
        c.put("no-status", {"total": 1})


def test_facets_prints_what_count_by_returns(cli: Cli, tmp_path: Path) -> None:
    _fill(tmp_path / "shop.db")
    with kvlite.open(tmp_path / "shop.db") as db:
        c = db.collection("orders")
        expected = c.count_by("$.status")
        filtered = c.count_by("$.status", "$[?@.total >= 20]")
        tags = c.count_by("$.tags")
    assert json_lines(ok(cli("facets", "shop.db", "orders", "$.status"))) == \
        [{"value": value, "count": count} for value, count in expected]
    assert sum(count for _, count in expected) == 40 and expected[0][1] >= expected[-1][1]
    got = json_lines(ok(cli("facets", "shop.db", "orders", "$.status", "--query", "$[?@.total >= 20]",
                            "--limit", "2")))
    assert got == [{"value": value, "count": count} for value, count in filtered[:2]]
    assert json_lines(ok(cli("facets", "shop.db", "orders", "$.tags"))) == [{"value": ["b", "a"], "count": 20},
                                                                           {"value": ["a", "b"], "count": 20}]
    assert tags == [(["b", "a"], 20), (["a", "b"], 20)]  # lists keep their order: two values
    assert ok(cli("facets", "shop.db", "orders", "$.missing")) == ""


def test_facets_errors(cli: Cli, tmp_path: Path) -> None:
    _fill(tmp_path / "shop.db")
    assert "singular query" in one_error_line(cli("facets", "shop.db", "orders", "$..status"), 2)
    assert "selects whole documents" in one_error_line(
        cli("facets", "shop.db", "orders", "$.status", "--query", "$.*.total"), 2)
    assert "nope" in one_error_line(cli("facets", "shop.db", "nope", "$.status"), 1)
    one_error_line(cli("facets", "shop.db", "orders", "$.status", "--limit", "-1"), 2)
    one_error_line(cli("facets", "missing.db", "orders", "$.status"), 1)
