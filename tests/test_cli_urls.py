"""The command line on a store URL instead of a file: ``lmdb://`` (no server needed) for every
command that reads or writes entries, and ``stats`` on engines whose facts are not SQLite's."""

from __future__ import annotations

from pathlib import Path

from helpers_cli import Cli, json_lines, ok, one_error_line

import kvlite


def test_entry_commands_work_on_an_lmdb_url(cli: Cli, tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'data'}"
    ok(cli("put", url, "people", "ada", '{"name": "Ada", "age": 36}'))
    ok(cli("put", url, "people", "bob", '{"name": "Bob", "age": 25}', "--ttl", "3600"))
    assert ok(cli("get", url, "people", "ada")).strip() == '{"name":"Ada","age":36}'
    assert json_lines(ok(cli("keys", url, "people"))) == ["ada", "bob"]
    assert json_lines(ok(cli("find", url, "people", "$[?@.age > 30]"))) == [
        {"key": "ada", "value": {"name": "Ada", "age": 36}}]
    assert ok(cli("count", url, "people", "$[*]")).strip() == "2"
    exported = json_lines(ok(cli("export", url)))
    assert [(row["key"], row["ttl"] is None) for row in exported] == [("ada", True), ("bob", False)]
    ok(cli("delete", url, "people", "bob"))
    with kvlite.open(url, readonly=True) as store:  # what the commands wrote is the store's
        assert dict(store.collection("people").items()) == {"ada": {"name": "Ada", "age": 36}}


def test_stats_reports_the_engines_own_facts(cli: Cli, tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'data'}"
    ok(cli("put", url, "c", "k", "1"))
    out = ok(cli("stats", url))
    assert f"store:           {url}" in out and "map size:" in out and "entries:         1 live" in out
    out = ok(cli("stats", "memory://"))  # no file facts at all (info() is NotSupported)
    assert "collections:     0" in out


def test_reads_on_a_missing_lmdb_folder_fail_and_create_nothing(cli: Cli, tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'missing'}"
    for args in (["get", url, "c", "k"], ["keys", url, "c"], ["stats", url], ["export", url]):
        assert "does not exist" in one_error_line(cli(*args), 1)
    assert not (tmp_path / "missing").exists()
