"""``kvlite import FILE COLL --key PATH [--ttl S]``: plain JSON records (JSON Lines, or one
JSON array of objects) stored whole, each under the value at PATH in it.

Most tests run the installed console script in a subprocess (the ``cli`` fixture); the
property test calls :func:`kvlite.cli.main` in-process, with stdin replaced, to afford many
examples.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers_cli import Cli, ok, one_error_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvlite
from kvlite.cli import main


def _lines(*records: Any) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)  # json: ints beyond 64 bits too


def _items(path: Path, name: str) -> list[tuple[Any, Any]]:
    with kvlite.open(path) as store:
        return list(store.collection(name).items())


# -- the two input forms -----------------------------------------------------------------------


def test_json_lines_records_are_stored_whole_under_their_key(cli: Cli, tmp_path: Path) -> None:
    stdin = (b'{"id": "u1", "name": "Ada", "langs": ["en"]}\n'
             b"\n"                                       # blank lines are skipped
             b'   {"id": "u2", "name": "Grace"}\n'
             b'{"name": "Cy", "id": "u3"}')              # no final newline
    result = cli("import", "s.db", "users", "--key", "$.id", stdin=stdin)
    ok(result)
    assert result.stderr.decode() == "imported 3 entries: 3 into 'users'\n"
    assert _items(tmp_path / "s.db", "users") == [
        ("u1", {"id": "u1", "name": "Ada", "langs": ["en"]}),
        ("u2", {"id": "u2", "name": "Grace"}),
        ("u3", {"name": "Cy", "id": "u3"}),
    ]


def test_a_json_array_of_records(cli: Cli, tmp_path: Path) -> None:
    records = [{"id": 3, "v": "c"}, {"id": 1, "v": "a"}, {"id": 2, "v": None}]
    stdin = b"\n  \n\t" + orjson.dumps(records, option=orjson.OPT_INDENT_2) + b"\n"  # over many lines
    ok(cli("import", "s.db", "c", "--key", "$.id", stdin=stdin))
    assert _items(tmp_path / "s.db", "c") == [(3, records[0]), (1, records[1]), (2, records[2])]
    ok(cli("import", "s.db", "c", "--key", "$.id", stdin=b"[]"))  # an empty array: nothing
    assert len(_items(tmp_path / "s.db", "c")) == 3


def test_int_float_and_bool_keys_keep_their_type(cli: Cli, tmp_path: Path) -> None:
    stdin = _lines({"k": 7}, {"k": -(2**63)}, {"k": 2.5}, {"k": True}, {"k": "7"})
    ok(cli("import", "s.db", "c", "--key", "$.k", stdin=stdin))
    with kvlite.open(tmp_path / "s.db") as store:
        keys = list(store.collection("c").keys())
    assert [(type(k), k) for k in keys] == [(int, 7), (int, -(2**63)), (float, 2.5), (bool, True), (str, "7")]


@pytest.mark.parametrize(("path", "records", "expected_keys"), [
    ("$.a.b", [{"a": {"b": "x"}}, {"a": {"b": 2, "c": 0}}], ["x", 2]),
    ("$.user.name", [{"user": {"name": "ada"}}], ["ada"]),
    ("$['odd key'].id", [{"odd key": {"id": 1}}], [1]),
    ("$.tags[0]", [{"tags": ["first", "second"]}], ["first"]),
    ("$.tags[-1]", [{"tags": ["first", "second"]}], ["second"]),
])
def test_nested_paths(cli: Cli, tmp_path: Path, path: str, records: list[Any], expected_keys: list[Any]) -> None:
    ok(cli("import", "s.db", "c", "--key", path, stdin=_lines(*records)))
    assert _items(tmp_path / "s.db", "c") == list(zip(expected_keys, records))


def test_a_later_record_with_the_same_key_wins(cli: Cli, tmp_path: Path) -> None:
    stdin = _lines({"id": "a", "v": 1}, {"id": "b", "v": 2}, {"id": "a", "v": 3})
    ok(cli("import", "s.db", "c", "--key", "$.id", stdin=stdin))
    # As in a dict: the last value, in the place of the first.
    assert _items(tmp_path / "s.db", "c") == [("a", {"id": "a", "v": 3}), ("b", {"id": "b", "v": 2})]


def test_records_are_added_to_an_existing_collection(cli: Cli, tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("c").put("old", {"id": "old"})
        store.collection("c").put("a", "replaced")
    ok(cli("import", "s.db", "c", "--key", "$.id", stdin=_lines({"id": "a"}, {"id": "b"})))
    assert _items(tmp_path / "s.db", "c") == [("old", {"id": "old"}), ("a", {"id": "a"}), ("b", {"id": "b"})]


def test_ttl_applies_to_every_record(cli: Cli, tmp_path: Path) -> None:
    before = time.time()
    ok(cli("import", "s.db", "c", "--key", "$.id", "--ttl", "100", stdin=_lines({"id": 1}, {"id": 2})))
    after = time.time()
    # Judged at fixed instants: each entry expires within [before + 100, after + 100].
    with kvlite.open(tmp_path / "s.db", clock=lambda: before) as store:
        for key in (1, 2):
            left = store.collection("c").ttl(key)
            assert left is not None and 100 - 1e-6 <= left <= 100 + (after - before) + 1e-6
    with kvlite.open(tmp_path / "s.db", clock=lambda: after + 100 + 1e-3) as store:
        assert store.collection("c").count() == 0
    ok(cli("import", "s.db", "c", "--key", "$.id", stdin=_lines({"id": 3})))  # without --ttl: never expires
    with kvlite.open(tmp_path / "s.db") as store:
        assert store.collection("c").ttl(3) is None


# -- bad records: an error naming the line (or element), and nothing imported ------------------------


BAD_RECORDS = [
    ({"other": 1}, "has no $.id"),
    ({"id": None}, "$.id is null"),
    ({"id": {"n": 1}}, "$.id is an object"),
    ({"id": [1]}, "$.id is an array"),
    (["id"], "must be a JSON object, not an array"),
    ("id", "must be a JSON object, not a string"),
    ({"id": 2**64 + 1}, "64 bits"),  # a key the store refuses
]


@pytest.mark.parametrize(("bad", "reason"), BAD_RECORDS)
@pytest.mark.parametrize("form", ["lines", "array"])
def test_a_bad_record_imports_nothing(cli: Cli, tmp_path: Path, bad: Any, reason: str, form: str) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path) as store:
        store.collection("c").put("kept", {"v": 1})
    records = [{"id": "a"}, {"id": 7}, bad, {"id": "z"}]
    if form == "lines":
        stdin, where = _lines(*records), "stdin line 3: "
    else:
        stdin, where = json.dumps(records).encode(), "stdin element $[2]: "
    line = one_error_line(cli("import", "s.db", "c", "--key", "$.id", stdin=stdin), 1)
    assert where in line and reason in line and line.endswith("nothing was imported"), line
    assert _items(path, "c") == [("kept", {"v": 1})]


def test_a_bad_record_creates_no_collection_and_no_file(cli: Cli, tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("other").put("k", 1)
    stdin = _lines({"id": 1}, {"id": 2}, {"name": "no id"})
    line = one_error_line(cli("import", "s.db", "new", "--key", "$.id", stdin=stdin), 1)
    assert "stdin line 3: the record has no $.id" in line
    with kvlite.open(tmp_path / "s.db") as store:
        assert store.collections() == ["other"]
    one_error_line(cli("import", "new.db", "c", "--key", "$.id", stdin=stdin), 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]


def test_line_numbers_count_blank_lines(cli: Cli, tmp_path: Path) -> None:
    stdin = b'{"id": 1}\n\n\n{"id": {}}\n'
    assert "stdin line 4: " in one_error_line(cli("import", "s.db", "c", "--key", "$.id", stdin=stdin), 1)


def test_json_lines_are_streamed(cli: Cli, tmp_path: Path) -> None:
    """A bad line stops the import at once, before the input ends: lines are read one by one."""
    proc = cli.popen("import", "s.db", "c", "--key", "$.id", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        proc.stdin.write(b'{"id": 1}\n{"no": "id"}\n')
        proc.stdin.flush()  # and stdin stays open
        assert proc.wait(timeout=60) == 1
        assert b"stdin line 2: the record has no $.id" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdin.close()
        proc.wait()
        proc.stderr.close()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize(("stdin", "reason"), [
    (b'[{"id": 1}, ', "a JSON array of records expected: not valid JSON"),
    (b'[{"id": 1}]\n[{"id": 2}]\n', "a JSON array of records expected: not valid JSON"),  # JSON Lines of arrays
    (b'{"id": 1}\n{"id": 2', "stdin line 2: not valid JSON"),
    (b'{"id": "caf\xe9"}\n', "stdin line 1: not UTF-8 text"),
])
def test_input_that_is_not_json(cli: Cli, tmp_path: Path, stdin: bytes, reason: str) -> None:
    line = one_error_line(cli("import", "new.db", "c", "--key", "$.id", stdin=stdin), 1)
    assert reason in line and "nothing was imported" in line, line
    assert not (tmp_path / "new.db").exists()


# -- usage errors: found before any input is read -----------------------------------------------------


@pytest.mark.parametrize(("path", "reason"), [
    ("$..id", "not a singular query"),
    ("$[*]", "not a singular query"),
    ("$.*", "not a singular query"),
    ("$.a[0:1]", "not a singular query"),
    ("$['a','b']", "not a singular query"),
    ("$[?@.id]", "not a singular query"),
    ("$", "the whole record"),
    ("$.[", "invalid jsonpath path"),
    ("id", "invalid jsonpath path"),
])
def test_a_key_path_that_is_not_a_singular_query_is_a_usage_error(cli: Cli, tmp_path: Path, path: str,
                                                                  reason: str) -> None:
    line = one_error_line(cli("import", "new.db", "c", "--key", path, stdin=_lines({"id": 1})), 2)
    assert "--key" in line and reason in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ttl", ["0", "-1", "x", "nan", "inf"])
def test_a_bad_ttl_is_a_usage_error(cli: Cli, tmp_path: Path, ttl: str) -> None:
    line = one_error_line(cli("import", "new.db", "c", "--key", "$.id", f"--ttl={ttl}", stdin=_lines({"id": 1})), 2)
    assert "--ttl" in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "reason"), [
    (["import", "new.db", "--key", "$.id"], "--key needs COLL"),
    (["import", "new.db", "c", "--ttl", "5"], "--ttl needs --key"),
    (["import", "new.db", "--ttl", "5"], "--ttl needs --key"),
])
def test_options_that_need_another(cli: Cli, tmp_path: Path, args: list[str], reason: str) -> None:
    line = one_error_line(cli(*args, stdin=b'{"collection": "c", "key": "k", "value": 1, "id": 1}\n'), 2)
    assert reason in line, line
    assert list(tmp_path.iterdir()) == []


def test_without_key_the_lines_are_kvlite_own(cli: Cli, tmp_path: Path) -> None:
    """The records' form is read only with --key: without it a line is {"key", "value", ...}, and
    an array is not read as records."""
    ok(cli("import", "s.db", "c", stdin=b'{"key": {"int": 1}, "value": {"id": "x"}}\n'))
    assert _items(tmp_path / "s.db", "c") == [(1, {"id": "x"})]
    line = one_error_line(cli("import", "s.db", "c", stdin=b'[{"key": "a", "value": 1}]\n'), 1)
    assert "stdin line 1: each line must be a JSON object" in line
    line = one_error_line(cli("import", "s.db", "c", stdin=b'{"id": "x"}\n'), 1)
    assert "stdin line 1: unknown field 'id'" in line


# -- the property: the collection is the dict of the records by key ---------------------------------------


def _main(*args: str, stdin: bytes) -> tuple[int, str]:
    """Run the command line in this process; ``(exit code, stderr)``."""
    err = io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        sys.stdin = old_stdin
    return code, err.getvalue()


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=8,
)
# Small pools of ids, so records with the same id (the later one wins) come up often.
_ids = st.integers(-3, 3) | st.sampled_from([-(2**63), 2**63 - 1]) | st.sampled_from(["a", "b", "", "é\n", "1"])
_records = st.lists(st.fixed_dictionaries({"id": _ids}, optional={"v": _json, "w": _json}), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=_records, form=st.sampled_from(["lines", "array", "indented array"]),
       ttl=st.none() | st.sampled_from(["3600", "1e6"]))
def test_the_collection_is_the_dict_of_the_records(tmp_path: Path, records: list[dict[str, Any]], form: str,
                                                   ttl: str | None) -> None:
    path = tmp_path / "model.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if form == "lines":
        stdin = _lines(*records)
    else:
        stdin = orjson.dumps(records, option=orjson.OPT_INDENT_2 if form == "indented array" else 0)
    code, err = _main("import", str(path), "c", "--key", "$.id", *(["--ttl", ttl] if ttl else []), stdin=stdin)
    assert code == 0, err
    model = {record["id"]: record for record in records}
    with kvlite.open(path) as store:
        coll = store.collection("c")
        items = list(coll.items())
        assert items == list(model.items())
        assert [type(key) for key, _ in items] == [type(key) for key in model]
        for key in model:
            left = coll.ttl(key)
            assert left is None if ttl is None else 0 < left <= float(ttl)
