"""``kvlite changes`` and ``kvlite backup``: the command line over ``Store.changes`` and
``Store.backup``, compared with the Python calls on the same files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import kvlite
from helpers_cli import Cli, json_lines, ok, one_error_line


def _fill(path: Path) -> None:
    with kvlite.open(path) as db:
        c = db.collection("jobs", changes=True)
        c.put("j1", {"state": "queued"})
        c.put(2, [1, 2])
        c.delete("j1")
        db.collection("quiet").put("q", 1)


def test_changes_prints_what_store_changes_yields(cli: Cli, tmp_path: Path) -> None:
    _fill(tmp_path / "f.db")
    with kvlite.open(tmp_path / "f.db") as db:
        expected = [{"seq": ch.seq, "collection": ch.collection, "key": kvlite.keys.to_json(ch.key), "op": ch.op,
                     "value": None if ch.value is kvlite.ABSENT else ch.value} for ch in db.changes()]
    assert json_lines(ok(cli("changes", "f.db"))) == expected
    assert json_lines(ok(cli("changes", "f.db", "jobs", "--since", "2"))) == expected[2:]
    assert expected[1]["key"] == {"int": 2}


def test_changes_follow_sees_another_process(cli: Cli, tmp_path: Path) -> None:
    _fill(tmp_path / "f.db")

    def later() -> None:
        time.sleep(0.5)
        with kvlite.open(tmp_path / "f.db") as db:
            db.collection("jobs").put("late", 1)

    writer = threading.Thread(target=later)
    writer.start()
    out = ok(cli("changes", "f.db", "--since", "3", "--follow", "--timeout", "3"))
    writer.join()
    assert [(r["key"], r["op"], r["value"]) for r in json_lines(out)] == [("late", "put", 1)]


def test_changes_errors(cli: Cli, tmp_path: Path) -> None:
    _fill(tmp_path / "f.db")
    assert "nope" in one_error_line(cli("changes", "f.db", "nope"), 1)
    one_error_line(cli("changes", "f.db", "--since", "-1"), 2)
    assert "--follow" in one_error_line(cli("changes", "f.db", "--timeout", "1"), 1)
    one_error_line(cli("changes", "missing.db"), 1)


def test_backup_copies_and_refuses_bad_targets(cli: Cli, tmp_path: Path) -> None:
    _fill(tmp_path / "f.db")
    result = cli("backup", "f.db", "copy.db")
    assert result.returncode == 0 and b"backed up f.db to copy.db" in result.stderr
    with kvlite.open(tmp_path / "copy.db", readonly=True) as copy:
        assert copy.collection("jobs").get(2) == [1, 2] and copy.collection("quiet").get("q") == 1
        assert [ch.key for ch in copy.changes()] == ["j1", 2, "j1"]
    assert "onto itself" in one_error_line(cli("backup", "f.db", "f.db"), 1)
    assert "does not exist" in one_error_line(cli("backup", "f.db", "no/such/folder.db"), 1)
    one_error_line(cli("backup", "missing.db", "x.db"), 1)
    assert not (tmp_path / "x.db").exists()
