"""The command line under a second process and at the limits of what ``put()`` accepts (issue 11).

* A failed ``put`` / ``import`` / ``copy`` into a new file never removes a file
  another process opened (the command builds the store under a private temporary
  name and publishes it only when it succeeded).
* Every value ``put()`` accepts is exported, imported back and found.
* ``stats`` / ``collections`` on a damaged file say so.
* ``collections``, ``export`` and ``stats`` read the registry and every collection it
  names in one snapshot while another process drops and re-creates collections.

The concurrency tests race real processes: the command line runs as a subprocess
(or, for the many-runs loops, in this process) while this process or a churning
child process (``python test_cli_hardening.py churn ...``) works on the same file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import apsw
import orjson
import pytest
from helpers_cli import Cli, json_lines, ok, one_error_line

import kvlite

# -- helpers ----------------------------------------------------------------------------------------


def _leftovers(folder: Path, name: str) -> list[str]:
    """Temporary files a command left beside ``name`` (``.name.<random>.tmp`` and companions)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


# -- 1. a failed command into a new file never removes a file someone else opened --------------------


def race_failed_put(cli: Cli, folder: Path, rounds: int, seed: int = 11) -> dict[str, Any]:
    """Race ``kvlite put NEW.db c k VALUE`` (a real process) with this process, which waits
    for ``NEW.db`` to appear (or gives up waiting after a random delay and creates it
    itself), opens it and puts one entry.  Even rounds put a value the store refuses
    (the command fails), odd rounds a good one (it succeeds).

    Returns the figures: rounds, this process's acknowledged writes, how many of them
    are not in the file afterwards (lost), how many files are gone, how many times the
    file was there before this process gave up waiting, commands that exited with an
    unexpected code, and temporary files left behind.
    """
    rng = random.Random(seed)
    figures: dict[str, Any] = {"rounds": rounds, "acked": 0, "lost": 0, "files_gone": 0, "saw_file": 0,
                               "bad_exit": [], "cli_lost": 0, "leftovers": [], "b_errors": []}
    for number in range(rounds):
        name = f"new{number}.db"
        path = folder / name
        fails = number % 2 == 0
        value = "99999999999999999999999" if fails else '{"good": true}'
        proc = cli.popen("put", name, "c", "k", value, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Wait for the file the command makes, as another program would; give up after a
        # random delay (before, during or after the command's own run) and create it.
        deadline = time.monotonic() + rng.uniform(0.0, 0.5)
        while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.0005)
        if path.exists():
            figures["saw_file"] += 1
        acked = False
        try:
            with kvlite.open(path, timeout=60) as store:
                store.collection("b").put(f"r{number}", {"round": number})
            acked = True  # the call returned: the write is acknowledged
            figures["acked"] += 1
        except kvlite.errors.KvliteError as exc:  # not acknowledged (so not a loss), still a failure
            figures["b_errors"].append(f"{type(exc).__name__}: {exc}")
        _, err = proc.communicate(timeout=120)
        if proc.returncode != (1 if fails else 0):
            figures["bad_exit"].append((number, proc.returncode, err.decode().strip()))
        if not path.exists():
            figures["files_gone"] += 1
            figures["lost"] += acked
            continue
        with kvlite.open(path) as store:
            if acked and (store.serializer_of("b") is None
                          or store.collection("b").get(f"r{number}") != {"round": number}):
                figures["lost"] += 1
            if not fails and (store.serializer_of("c") is None or store.collection("c").get("k") != {"good": True}):
                figures["cli_lost"] += 1
        figures["leftovers"] += _leftovers(folder, name)
    return figures


def test_a_failed_put_into_a_new_file_never_removes_what_another_process_wrote(cli: Cli,
                                                                             tmp_path: Path) -> None:
    figures = race_failed_put(cli, tmp_path, rounds=30)
    assert figures["lost"] == 0 and figures["files_gone"] == 0 and figures["b_errors"] == [], figures
    assert figures["bad_exit"] == [] and figures["cli_lost"] == 0 and figures["leftovers"] == [], figures
    assert figures["acked"] == 30


def _published_by_another_process_first(monkeypatch: pytest.MonkeyPatch, path: Path, *,
                                        pickle_c: bool = False) -> None:
    """Make another process create ``path`` (one entry in collection ``theirs``; with
    ``pickle_c`` also a ``pickle`` collection ``c``) just before the command publishes its new
    file: the destination "appeared meanwhile"."""
    import kvlite.cli.common as cli_common  # where a new file is published

    publish = cli_common._publish
    script = ("import kvlite, sys; s = kvlite.open(sys.argv[1]); s.collection('theirs').put('t', 1); "
              + ("s.collection('c', serializer='pickle').put('p', {1}); " if pickle_c else "") + "s.close()")

    def late(temp: str, target: str) -> bool:
        subprocess.run([sys.executable, "-c", script, str(path)], check=True)
        return publish(temp, target)

    monkeypatch.setattr(cli_common, "_publish", late)


def _main(*args: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
    """``kvlite.cli.main(args)`` in this process: ``(exit code, stdout, stderr)``."""
    from kvlite.cli import main

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        sys.stdin = old_stdin
    out.flush()
    return code, out.buffer.getvalue(), err.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", ["put", "import", "copy"])
def test_a_file_that_appears_meanwhile_is_written_into_never_replaced(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "new.db"
    monkeypatch.chdir(tmp_path)
    _published_by_another_process_first(monkeypatch, target)
    if command == "put":
        code, _, err = _main("put", "new.db", "c", "k", '{"v": 1}')
    elif command == "import":
        code, _, err = _main("import", "new.db", stdin=b'{"collection": "c", "key": "k", "value": {"v": 0}}\n'
                                                        b'{"collection": "d", "key": "k2", "value": [2], "ttl": 3600}\n'
                                                        b'{"collection": "c", "key": "k", "value": {"v": 1}}\n')
    else:
        with kvlite.open(tmp_path / "src.db") as src:
            src.collection("c").put("k", {"v": 1})
        code, _, err = _main("copy", "src.db", "new.db")
    assert code == 0, err
    if command == "import":
        assert err == "imported 3 entries: 2 into 'c', 1 into 'd'\n"
    with kvlite.open(target) as store:
        assert store.collection("theirs").get("t") == 1            # theirs is kept...
        assert store.collection("c").get("k") == {"v": 1}          # ...and the command's entry added
        if command == "import":
            left = store.collection("d").ttl("k2")
            assert left is not None and 3500 < left <= 3600
    assert _leftovers(tmp_path, "new.db") == []


@pytest.mark.parametrize("command", ["put", "import"])
def test_a_failed_command_on_a_file_that_appeared_meanwhile_keeps_it(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command is applied to the file that appeared; it fails there, and the file stays."""
    target = tmp_path / "new.db"
    monkeypatch.chdir(tmp_path)
    # The other process makes "c", where the command writes, a pickle collection.
    _published_by_another_process_first(monkeypatch, target, pickle_c=True)
    if command == "put":
        code, _, err = _main("put", "new.db", "c", "k", "1")
    else:
        code, _, err = _main("import", "new.db", "c", stdin=b'{"key": "k", "value": 1}\n')
    assert code == 1 and "'pickle' serializer" in err, err
    with kvlite.open(target) as store:
        assert store.collection("theirs").get("t") == 1
        assert dict(store.collection("c", serializer="pickle").items()) == {"p": {1}}
    assert _leftovers(tmp_path, "new.db") == []


def test_a_new_file_is_made_with_the_usual_permissions(cli: Cli, tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    ok(cli("put", "new.db", "c", "k", "1"))
    with kvlite.open(tmp_path / "plain.db") as store:  # what kvlite itself makes
        store.collection("c").put("k", 1)
    assert (tmp_path / "new.db").stat().st_mode == (tmp_path / "plain.db").stat().st_mode
    assert _leftovers(tmp_path, "new.db") == []
    assert not (tmp_path / "new.db-wal").exists() or (tmp_path / "new.db-wal").stat().st_size == 0


def test_a_new_file_in_a_missing_folder_is_one_error_naming_it(cli: Cli, tmp_path: Path) -> None:
    line = one_error_line(cli("put", "nowhere/new.db", "c", "k", "1"), 1)
    assert "nowhere/new.db" in line and ".tmp" not in line
    assert list(tmp_path.iterdir()) == []


# -- 2. everything put() accepts is exported, imported back and found -------------------------------


def _nested_list(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _nested_dict(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _deepest_accepted(coll: kvlite.Collection, make: Any, limit: int = 1100) -> int:
    """The deepest ``make(depth)`` that ``coll.put`` accepts (searched up to ``limit``)."""
    low, high = 1, limit
    while low < high:
        middle = (low + high + 1) // 2
        try:
            coll.put("probe", make(middle))
        except kvlite.errors.SerializationError:
            high = middle - 1
        else:
            low = middle
    coll.delete("probe")
    return low


@pytest.mark.parametrize("serializer", ["json", "jsonb"])
def test_the_deepest_value_put_accepts_is_exported_imported_and_found(cli: Cli, tmp_path: Path,
                                                                      serializer: str) -> None:
    values: dict[str, Any] = {}
    with kvlite.open(tmp_path / "s.db") as store:
        coll = store.collection("deep", serializer=serializer)
        for label, make in (("list", _nested_list), ("dict", _nested_dict)):
            depth = _deepest_accepted(coll, make)
            assert depth >= 200
            values[label] = make(depth)
            coll.put(label, values[label])
            assert coll.get(label) == values[label]
    exported = ok(cli("export", "s.db"))
    assert len(exported.splitlines()) == 2
    ok(cli("import", "back.db", stdin=exported.encode()))
    with kvlite.open(tmp_path / "back.db") as store:
        assert dict(store.collection("deep").items()) == values
    assert ok(cli("export", "back.db")) == exported

    def parsed(text: str) -> list[Any]:
        from kvlite.cli import loads_json

        return [loads_json(line.encode()) for line in text.splitlines()]

    found = parsed(ok(cli("find", "s.db", "deep", "$.*")))
    assert found == [{"key": "list", "value": values["list"]}, {"key": "dict", "value": values["dict"]}]
    assert parsed(ok(cli("query", "s.db", "deep", "$.*"))) == [values["list"], values["dict"]]
    assert parsed(ok(cli("find", "s.db", "deep", "$.dict", "--engine", "objectpath"))) == [
        {"key": "dict", "value": values["dict"]}]
    assert parsed(ok(cli("get", "s.db", "deep", "list"))) == [values["list"]]


def test_export_lines_stay_compact_json_objects(cli: Cli, tmp_path: Path) -> None:
    """The record is still one compact object per line, fields in order, keys tagged, 64-bit integers exact."""
    with kvlite.open(tmp_path / "s.db") as store:
        coll = store.collection("c")
        coll.put("k", {"a": [1, 2.5, None, True, "ü\n"]})
        coll.put(7, "seven", ttl=3600)
        coll.put("big", [18446744073709551615])
    lines = ok(cli("export", "s.db")).splitlines()
    assert lines[0] == '{"collection":"c","key":"k","value":{"a":[1,2.5,null,true,"ü\\n"]},"ttl":null}'
    second = orjson.loads(lines[1])
    assert list(second) == ["collection", "key", "value", "ttl"] and second["key"] == {"int": 7}
    assert 3500 < second["ttl"] <= 3600
    assert lines[2] == '{"collection":"c","key":"big","value":[18446744073709551615],"ttl":null}'
    assert json_lines(ok(cli("find", "s.db", "c", "$.k.a[4]"))) == [{"key": "k", "value": "ü\n"}]


# -- 3. a file without kvlite_meta (or a registered table) is damaged, not "dropped" ------------------


def _damaged(path: Path, sql: str) -> None:
    with kvlite.open(path) as store:
        store.collection("c").put("k", 1)
    conn = apsw.Connection(str(path))
    conn.execute(sql)
    conn.close()


def test_stats_on_a_file_without_kvlite_meta_says_it_is_damaged(cli: Cli, tmp_path: Path) -> None:
    _damaged(tmp_path / "s.db", "DROP TABLE kvlite_meta")
    line = one_error_line(cli("stats", "s.db"), 1)
    assert "kvlite_meta" in line and "damaged" in line and "not a kvlite store" in line, line
    assert "dropped" not in line


@pytest.mark.parametrize("command", ["stats", "collections"])
def test_a_registered_table_that_is_missing_is_damage_not_a_drop(cli: Cli, tmp_path: Path,
                                                                 command: str) -> None:
    _damaged(tmp_path / "s.db", "DROP TABLE kv_1")
    line = one_error_line(cli(command, "s.db"), 1)
    assert "damaged" in line and "kv_1" in line and "dropped" not in line, line


# -- 4. whole-store reads are one snapshot while another process drops and re-creates collections ----

#: Collections the churning process drops and re-creates, and ones it never touches.
CHURNED = ("t1", "t2", "t3")
STEADY = ("s0", "s9")
#: Entries per collection (each one is written in full by one transaction).
SIZE = 20


def churn(args: dict[str, Any]) -> None:
    """Drop and re-create the ``CHURNED`` collections until ``args["stop"]`` exists: half the
    time drop and re-create in one transaction, half the time in separate ones (so there are
    moments when the collection is missing or empty).  Writes the number of rounds to ``out``."""
    store = kvlite.open(args["path"], timeout=120.0)
    stop = Path(args["stop"])
    Path(args["ready"]).write_text("ready")
    generation = 0
    while not stop.exists():
        for name in CHURNED:
            generation += 1
            entries = {f"k{j}": {"gen": generation, "j": j} for j in range(SIZE)}
            if generation % 2:
                with store.transaction():
                    store.drop_collection(name)
                    store.collection(name).put_many(entries)
            else:
                store.drop_collection(name)
                coll = store.collection(name)
                coll.put_many(entries)
    store.close()
    Path(args["out"]).write_text(json.dumps({"rounds": generation}))


@contextlib.contextmanager
def churning(folder: Path) -> Iterator[Path]:
    """A store whose ``CHURNED`` collections a child process drops and re-creates meanwhile."""
    path = folder / "churn.db"
    with kvlite.open(path) as store:
        for name in (*STEADY[:1], *CHURNED, *STEADY[1:]):
            store.collection(name).put_many({f"k{j}": {"gen": 0, "j": j} for j in range(SIZE)})
    files = {what: folder / f"churn.{what}" for what in ("stop", "ready", "out")}
    child = subprocess.Popen([sys.executable, __file__, "churn",
                              json.dumps({"path": str(path), **{k: str(v) for k, v in files.items()}})],
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not files["ready"].exists():
            assert child.poll() is None and time.monotonic() < deadline, "the churning process did not start"
            time.sleep(0.01)
        yield path
    finally:
        files["stop"].write_text("stop")
        _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode()
    assert json.loads(files["out"].read_text())["rounds"] > 0


def _consistent(command: str, out: bytes) -> str | None:
    """What is wrong with one command's output under the churn (``None``: nothing)."""
    text = out.decode()
    if command == "collections":
        rows = {line.split()[0]: int(line.split()[1]) for line in text.splitlines()[1:]}
        if not set(STEADY) <= set(rows) or not set(rows) <= {*STEADY, *CHURNED}:
            return f"collections listed: {sorted(rows)}"
        if any(count not in (0, SIZE) for count in rows.values()):
            return f"counts: {rows}"
    elif command == "export":
        seen: dict[str, list[int]] = {}
        for line in text.splitlines():
            record = orjson.loads(line)
            seen.setdefault(record["collection"], []).append(record["value"]["gen"])
        if not set(STEADY) <= set(seen):
            return f"collections exported: {sorted(seen)}"
        for name, generations in seen.items():
            if len(generations) != SIZE or len(set(generations)) != 1:
                return f"{name}: {len(generations)} entries of generations {sorted(set(generations))}"
    else:
        fields = dict(line.split(":", 1) for line in text.splitlines())
        collections = int(fields["collections"])
        live = int(fields["entries"].split()[0].replace(",", ""))
        if not len(STEADY) <= collections <= len(STEADY) + len(CHURNED) or live % SIZE:
            return f"stats: {collections} collections, {live} live entries"
    return None


def whole_store_reads_under_churn(folder: Path, runs: int) -> dict[str, dict[str, Any]]:
    """Run ``collections``, ``export`` and ``stats`` ``runs`` times each (in this process, through
    ``kvlite.cli.main``) while a child process churns; per command: runs, failed runs (exit code
    not 0, with the first few messages) and inconsistent outputs."""
    figures: dict[str, dict[str, Any]] = {}
    with churning(folder) as path:
        for command in ("collections", "export", "stats"):
            failed: list[str] = []
            inconsistent: list[str] = []
            for _ in range(runs):
                code, out, err = _main(command, str(path))
                if code != 0:
                    failed.append(err.strip())
                    continue
                problem = _consistent(command, out)
                if problem is not None:
                    inconsistent.append(problem)
            figures[command] = {"runs": runs, "failed": len(failed), "inconsistent": len(inconsistent),
                                "examples": (failed + inconsistent)[:3]}
    return figures


def test_whole_store_reads_are_one_snapshot_under_concurrent_drops(tmp_path: Path) -> None:
    figures = whole_store_reads_under_churn(tmp_path, runs=150)
    for command, result in figures.items():
        assert result["failed"] == 0 and result["inconsistent"] == 0, (command, result)


def test_the_command_line_itself_under_concurrent_drops(cli: Cli, tmp_path: Path) -> None:
    """The same, with the installed ``kvlite`` script as separate processes (fewer runs)."""
    with churning(tmp_path) as path:
        for command in ("collections", "export", "stats"):
            for _ in range(8):
                result = cli(command, path.name)
                assert result.returncode == 0, (command, result.stderr.decode())
                assert _consistent(command, result.stdout) is None, command


def test_a_collection_dropped_before_the_export_began_is_not_included(cli: Cli, tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("a").put("k", 1)
        store.collection("b").put("k", 2)
        store.drop_collection("a")
    assert [row["collection"] for row in json_lines(ok(cli("export", "s.db")))] == ["b"]
    assert "no collection named 'a'" in one_error_line(cli("export", "s.db", "a"), 1)


def test_export_reads_a_collection_dropped_while_it_runs_as_it_was(cli: Cli, tmp_path: Path) -> None:
    """The export began (it wrote its first line, so its snapshot is open, and it now waits for
    its reader) when this process drops a collection: it still writes every entry of it."""
    path = tmp_path / "s.db"
    with kvlite.open(path) as store:
        for name in ("a", "b"):
            store.collection(name).put_many((f"k{i}", "x" * 100) for i in range(2000))
    proc = cli.popen("export", "s.db", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # ~300 KB more wait in a full pipe: the export is blocked mid-way
    with kvlite.open(path) as store:
        assert store.drop_collection("b")
    # Read on through the same buffered reader: communicate() reads the pipe itself and would
    # skip what readline() buffered.  (stderr holds a line or two at most: no deadlock.)
    out = proc.stdout.read()
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err.decode()
    rows = [orjson.loads(line) for line in (first + out).splitlines()]
    assert [(row["collection"], row["key"]) for row in rows] == [
        (name, f"k{i}") for name in ("a", "b") for i in range(2000)]
    with kvlite.open(path) as store:
        assert store.collections() == ["a"]


COMMANDS = {"churn": churn}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](json.loads(sys.argv[2]))
