"""The ``kvlite`` command line, run as a user runs it: the installed console
script (and ``python -m kvlite``) in a subprocess, against real files.

Files are prepared and checked in-process through the library.  Expired
entries are made by writing through a store whose clock is far in the past,
so nothing here sleeps or depends on timing.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers_cli import Cli, json_lines, ok, one_error_line, past_clock
from hypothesis import given
from hypothesis import strategies as st

import kvlite
from kvlite.keys import from_json as key_from_json
from kvlite.keys import to_json as key_to_json

# -- put / get / delete / keys --------------------------------------------------------------


def test_put_get_delete_keys(any_cli: Cli, tmp_path: Path) -> None:
    db = "store.db"
    doc = {"name": "Ada", "tags": ["x", "ÿ"], "n": 1.5, "none": None}
    ok(any_cli("put", db, "users", "u1", orjson.dumps(doc).decode()))
    ok(any_cli("put", db, "users", "u2", '"second"'))
    ok(any_cli("put", db, "users", "u0", "[1, 2]"))
    assert orjson.loads(ok(any_cli("get", db, "users", "u1"))) == doc
    assert json_lines(ok(any_cli("keys", db, "users"))) == ["u1", "u2", "u0"]
    assert json_lines(ok(any_cli("keys", db, "users", "--limit", "2"))) == ["u1", "u2"]

    ok(any_cli("put", db, "users", "u1", "{}"))  # replace keeps the place in order
    assert json_lines(ok(any_cli("keys", db, "users"))) == ["u1", "u2", "u0"]
    assert ok(any_cli("delete", db, "users", "u2")) == ""
    assert json_lines(ok(any_cli("keys", db, "users"))) == ["u1", "u0"]
    one_error_line(any_cli("get", db, "users", "u2"), 1)
    one_error_line(any_cli("delete", db, "users", "u2"), 1)

    with kvlite.open(tmp_path / db) as store:
        assert dict(store.collection("users").items()) == {"u1": {}, "u0": [1, 2]}


def test_typed_keys_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    ok(cli("put", "s.db", "c", "5", '"int"', "--int-key"))
    ok(cli("put", "s.db", "c", "5", '"str"'))
    ok(cli("put", "s.db", "c", "00ff", '"bytes"', "--bytes-key"))
    ok(cli("put", "s.db", "c", "-9223372036854775808", '"min"', "--int-key"))
    assert orjson.loads(ok(cli("get", "s.db", "c", "5", "--int-key"))) == "int"
    assert orjson.loads(ok(cli("get", "s.db", "c", "5"))) == "str"
    assert orjson.loads(ok(cli("get", "s.db", "c", "00FF", "--bytes-key"))) == "bytes"
    assert json_lines(ok(cli("keys", "s.db", "c"))) == [
        {"int": 5}, "5", {"bytes": "00ff"}, {"int": -(2**63)}]
    with kvlite.open(tmp_path / "s.db") as store:
        items = list(store.collection("c").items())
    assert [(type(k), k, v) for k, v in items] == [
        (int, 5, "int"), (str, "5", "str"), (bytes, b"\x00\xff", "bytes"), (int, -(2**63), "min")]
    ok(cli("delete", "s.db", "c", "5", "--int-key"))
    assert json_lines(ok(cli("keys", "s.db", "c"))) == ["5", {"bytes": "00ff"}, {"int": -(2**63)}]


def test_put_with_ttl(cli: Cli, tmp_path: Path) -> None:
    before = time.time()
    ok(cli("put", "s.db", "c", "k", '{"a": 1}', "--ttl", "100"))
    after = time.time()
    # Judged at fixed instants, never by elapsed time: expires_at is in [before+100, after+100].
    with kvlite.open(tmp_path / "s.db", clock=lambda: before) as store:
        left = store.collection("c").ttl("k")
        assert left is not None and 100 - 1e-6 <= left <= 100 + (after - before) + 1e-6
    with kvlite.open(tmp_path / "s.db", clock=lambda: after + 100 + 1e-3) as store:
        assert store.collection("c").get("k") is None


def test_put_creates_the_file_but_reads_never_do(cli: Cli, tmp_path: Path) -> None:
    for args in (["get", "new.db", "c", "k"], ["keys", "new.db", "c"], ["delete", "new.db", "c", "k"],
                 ["collections", "new.db"], ["export", "new.db"], ["stats", "new.db"],
                 ["purge", "new.db"], ["vacuum", "new.db"]):
        assert "no such file" in one_error_line(cli(*args), 1)
        assert not (tmp_path / "new.db").exists()
    ok(cli("put", "new.db", "c", "k", "1"))
    assert (tmp_path / "new.db").exists()


def test_read_commands_do_not_write(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path) as store:
        store.collection("c").put("k", 1)
    before = path.read_bytes()  # closing checkpointed the WAL: the file alone holds every commit

    def reads() -> None:
        assert orjson.loads(ok(cli("get", "s.db", "c", "k"))) == 1
        assert "c" in ok(cli("collections", "s.db"))
        assert len(json_lines(ok(cli("export", "s.db")))) == 1
        assert json_lines(ok(cli("find", "s.db", "c", "$.*"))) == [{"key": "k", "value": 1}]
        assert ok(cli("count", "s.db", "c", "$.*")).strip() == "1"

    reads()
    assert path.read_bytes() == before
    wal = Path(f"{path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    # With the file read-only too (root ignores file permissions, so only for other users).
    path.chmod(0o444)
    try:
        if not os.access(path, os.W_OK):
            reads()
            one_error_line(cli("put", "s.db", "c", "k", "2"), 1)
    finally:
        path.chmod(0o644)


# -- collections / stats / purge / vacuum --------------------------------------------------


def _table(text: str) -> dict[str, tuple[int, int, str]]:
    lines = text.splitlines()
    assert lines[0].split() == ["COLLECTION", "ENTRIES", "EXPIRED", "SERIALIZER"]
    rows = {}
    for line in lines[1:]:
        name, live, expired, serializer = line.rsplit(maxsplit=3)
        rows[name.strip()] = (int(live), int(expired), serializer)
    return rows


def test_collections_stats_purge(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path, clock=past_clock) as old:
        old.collection("users").put_many({"gone1": 1, "gone2": 2}, ttl=10)
        old.collection("users").put("forever", 3)
    with kvlite.open(path) as store:
        store.collection("users").put("fresh", 4, ttl=3600)
        store.collection("blobs", serializer="pickle").put(b"k", {1, 2})
        store.collection("name with spaces ü")

    assert _table(ok(cli("collections", "s.db"))) == {
        "users": (2, 2, "json"), "blobs": (1, 0, "pickle"), "name with spaces ü": (0, 0, "json")}
    stats = ok(cli("stats", "s.db"))
    assert "collections:     3" in stats
    assert "entries:         3 live, 2 expired" in stats
    assert "schema version:  1" in stats

    assert ok(cli("purge", "s.db")).strip() == "purged 2 expired entries"
    assert _table(ok(cli("collections", "s.db")))["users"] == (2, 0, "json")
    assert ok(cli("purge", "s.db")).strip() == "purged 0 expired entries"
    with kvlite.open(path) as store:
        assert dict(store.collection("users").items()) == {"forever": 3, "fresh": 4}


def test_vacuum_shrinks_and_keeps_data(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path) as store:
        coll = store.collection("c")
        coll.put_many((f"k{i}", "x" * 2000) for i in range(500))
        coll.delete_many(f"k{i}" for i in range(1, 500))
    before = path.stat().st_size
    out = ok(cli("vacuum", "s.db"))
    assert out.startswith("vacuumed s.db: ")
    assert path.stat().st_size < before
    assert orjson.loads(ok(cli("get", "s.db", "c", "k0"))) == "x" * 2000


# -- export / import ------------------------------------------------------------------------


KEYS_OF_EVERY_TYPE: list[Any] = [
    "a", "", "ключ 🔑", 7, -(2**63), 2**63 - 1, b"\x00\xff", b"", 2.5, float("inf"), -1e-300, True,
]


def _fill_source(path: Path) -> None:
    with kvlite.open(path, clock=past_clock) as old:  # expired: must not be exported
        old.collection("docs").put("expired", "never seen", ttl=10)
        old.collection("docs").put(99, "expired int key", ttl=10)
    with kvlite.open(path) as store:
        docs = store.collection("docs")
        for i, key in enumerate(KEYS_OF_EVERY_TYPE):
            value = {"i": i, "nested": {"list": [1, 2.5, None, True, "ü"]}, "key": repr(key)}
            docs.put(key, value, ttl=3600 + i if i % 2 else None)
        other = store.collection("other")
        other.put_many({"x": [], "y": {}, "z": "plain"})
        store.collection("empty")


def _snapshot(path: Path, at: float) -> dict[str, list[tuple[type, str, Any, float | None]]]:
    """Every collection's live entries as (key type, key repr, value, ttl at ``at``), in order."""
    with kvlite.open(path, clock=lambda: at) as store:
        out = {}
        for name in store.collections():
            coll = store.collection(name)
            out[name] = [(type(k), repr(k), v, coll.ttl(k)) for k, v in coll.items()]
        return out


def _pipe(cli: Cli, export_args: list[str], import_args: list[str]) -> None:
    """``kvlite export ... | kvlite import ...`` through a real OS pipe."""
    producer = cli.popen("export", *export_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    consumer = cli.popen("import", *import_args, stdin=producer.stdout,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert producer.stdout is not None
    producer.stdout.close()  # the consumer holds the read end now
    _, import_err = consumer.communicate(timeout=120)
    export_err = producer.stderr.read() if producer.stderr else b""
    producer.wait(timeout=120)
    assert producer.returncode == 0, export_err.decode()
    assert consumer.returncode == 0, import_err.decode()


def test_export_import_roundtrip_between_files(any_cli: Cli, tmp_path: Path) -> None:
    _fill_source(tmp_path / "src.db")
    t0 = time.time()
    _pipe(any_cli, ["src.db"], ["dst.db"])
    t1 = time.time()

    at = t1 + 1
    src, dst = _snapshot(tmp_path / "src.db", at), _snapshot(tmp_path / "dst.db", at)
    # "empty" exports no line, so it is not recreated; everything else is, in order.
    assert list(dst) == ["docs", "other"]
    for name in dst:
        assert [row[:3] for row in dst[name]] == [row[:3] for row in src[name]]
        for (*_, ttl_src), (*_, ttl_dst) in zip(src[name], dst[name]):
            assert (ttl_src is None) == (ttl_dst is None)
            if ttl_src is not None:
                # Exported as "seconds left" and re-based at import: it can only move by the
                # time between export and import, and never backwards.
                assert -1e-6 <= ttl_dst - ttl_src <= (t1 - t0) + 1e-6
    assert len(dst["docs"]) == len(KEYS_OF_EVERY_TYPE)

    # The exports of both files agree line for line, apart from the seconds left.
    def strip_ttl(text: str) -> list[Any]:
        return [{**row, "ttl": row["ttl"] is not None} for row in json_lines(text)]

    assert strip_ttl(ok(any_cli("export", "dst.db"))) == strip_ttl(ok(any_cli("export", "src.db")))


def test_export_one_collection_into_another_name(cli: Cli, tmp_path: Path) -> None:
    _fill_source(tmp_path / "src.db")
    lines = json_lines(ok(cli("export", "src.db", "other")))
    assert lines == [
        {"collection": "other", "key": "x", "value": [], "ttl": None},
        {"collection": "other", "key": "y", "value": {}, "ttl": None},
        {"collection": "other", "key": "z", "value": "plain", "ttl": None},
    ]
    _pipe(cli, ["src.db", "other"], ["dst.db", "renamed"])
    with kvlite.open(tmp_path / "dst.db") as store:
        assert store.collections() == ["renamed"]
        assert dict(store.collection("renamed").items()) == {"x": [], "y": {}, "z": "plain"}


def test_export_lines_tag_typed_keys(cli: Cli, tmp_path: Path) -> None:
    _fill_source(tmp_path / "src.db")
    keys = [row["key"] for row in json_lines(ok(cli("export", "src.db", "docs")))]
    assert keys == ["a", "", "ключ 🔑", {"int": 7}, {"int": -(2**63)}, {"int": 2**63 - 1},
                    {"bytes": "00ff"}, {"bytes": ""}, {"float": "2.5"}, {"float": "inf"},
                    {"float": "-1e-300"}, {"bool": True}]


@pytest.mark.parametrize("bad_line, reason", [
    (b'{"key": "b", "value": ', "not valid JSON"),
    (b'{"key": "b"}', '"key" and a "value"'),
    (b'["b", 2]', "JSON object"),
    (b'{"key": {"int": "seven"}, "value": 1}', "a key must be"),
    (b'{"key": {"bytes": "zz"}, "value": 1}', "not hex"),
    (b'{"key": "b", "value": 1, "ttl": -5}', "ttl"),
    (b'{"key": "b", "value": 1, "ttl": "soon"}', "ttl"),
    (b'{"key": "b", "value": 1, "extra": 0}', "unknown field"),
    (b'{"key": "b", "value": 1}', "no collection"),  # no COLL argument and no "collection"
])
def test_import_with_a_bad_line_imports_nothing(cli: Cli, tmp_path: Path, bad_line: bytes,
                                                reason: str) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path) as store:
        store.collection("c").put("kept", {"v": 1})
    good = b'{"collection": "c", "key": "a", "value": 1}\n{"collection": "new", "key": "n", "value": 2}\n'
    stdin = good + bad_line + b"\n" + b'{"collection": "c", "key": "z", "value": 3}\n'
    args = ["import", "s.db"] if reason == "no collection" else ["import", "s.db", "c"]
    if reason == "no collection":
        stdin = good + bad_line + b"\n"
    line = one_error_line(cli(*args, stdin=stdin), 1)
    assert "line 3" in line and reason in line and "nothing was imported" in line
    with kvlite.open(path) as store:
        assert store.collections() == ["c"]
        assert dict(store.collection("c").items()) == {"kept": {"v": 1}}


def test_import_skips_blank_lines_and_reports_counts(cli: Cli, tmp_path: Path) -> None:
    stdin = b'\n{"key": "a", "value": 1, "ttl": null}\n   \n{"key": {"int": 2}, "value": [2]}\n'
    result = cli("import", "s.db", "c", stdin=stdin)
    ok(result)
    assert result.stderr.decode().strip() == "imported 2 entries: 2 into 'c'"
    with kvlite.open(tmp_path / "s.db") as store:
        assert list(store.collection("c").items()) == [("a", 1), (2, [2])]


def test_values_of_non_json_collections_are_refused(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with kvlite.open(path) as store:
        store.collection("p", serializer="pickle").put("k", {"a", "set"})
        store.collection("j").put("k", 1)
    for args in (["export", "s.db"], ["export", "s.db", "p"], ["get", "s.db", "p", "k"],
                 ["put", "s.db", "p", "k", "1"]):
        result = cli(*args)
        assert "'pickle' serializer" in one_error_line(result, 1)
        assert result.stdout == b""
    one_error_line(cli("import", "s.db", "p", stdin=b'{"key": "x", "value": 1}\n'), 1)
    # Keys can be listed and deleted without decoding (or unpickling) any value.
    assert json_lines(ok(cli("keys", "s.db", "p"))) == ["k"]
    ok(cli("delete", "s.db", "p", "k"))
    with kvlite.open(path, serializer="pickle") as store:
        assert store.collection("p").count() == 0


def test_export_into_a_closed_pipe_stops_quietly(cli: Cli, tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("c").put_many((f"k{i}", "v" * 100) for i in range(20_000))
    proc = cli.popen("export", "s.db", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert orjson.loads(first)["key"] == "k0"
    assert proc.returncode == 141  # 128 + SIGPIPE, as a shell reports a process killed by it
    assert err == b""


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    [],
    ["nope"],
    ["get"],
    ["get", "s.db", "c"],
    ["get", "s.db", "c", "x", "--int-key"],
    ["get", "s.db", "c", " 7", "--int-key"],
    ["get", "s.db", "c", "7 ", "--int-key"],
    ["get", "s.db", "c", "1_000", "--int-key"],
    ["get", "s.db", "c", "\u0663", "--int-key"],     # ARABIC-INDIC DIGIT THREE: int() takes it
    ["get", "s.db", "c", "+7", "--int-key"],
    ["get", "s.db", "c", "zz", "--bytes-key"],
    ["get", "s.db", "c", "0 0", "--bytes-key"],
    ["get", "s.db", "c", "0", "--bytes-key"],
    ["get", "s.db", "c", "nan", "--float-key"],
    ["get", "s.db", "c", "1_0.5", "--float-key"],
    ["get", "s.db", "c", " 1.5", "--float-key"],
    ["get", "s.db", "c", "True", "--bool-key"],
    ["get", "s.db", "c", "1", "--bool-key"],
    ["get", "s.db", "c", "k", "--json-key"],            # not JSON: "k" would be
    ["get", "s.db", "c", '{"str": "k"}', "--json-key"],
    ["get", "s.db", "c", "1", "--int-key", "--bytes-key"],
    ["get", "s.db", "c", "1", "--float-key", "--bool-key"],
    ["put", "s.db", "c", "k", "{bad json"],
    ["put", "s.db", "c", "k", "1", "extra"],
    ["put", "s.db", "c", "k", "1", "--ttl", "0"],
    ["put", "s.db", "c", "k", "1", "--ttl", "nan"],
    ["keys", "s.db", "c", "--limit", "-1"],
    ["demo", "x.db", "--tmp"],
    ["export", "s.db", "c", "extra"],
    ["find", "s.db", "c", "$.*", "--desc"],                      # --desc without --order-by
    ["query", "s.db", "c", "$.*", "--order-by=-$.k", "--desc"],  # both say descending
    ["explain", "s.db", "c", "$.*", "--order-by=-$.k", "--desc"],
    ["explain", "s.db", "c", "$.*", "--desc"],
    ["find", "s.db", "c", "$.*", "--order-by", "-$.k"],          # argparse: '-$.k' is an option
    ["find", "s.db", "c", "$[?(@.k >"],
    ["count", "s.db", "c", "$.*[", "--engine", "objectpath"],
])
def test_usage_errors_exit_2_with_one_line(cli: Cli, tmp_path: Path, args: list[str]) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("c").put("k", 1)
    result = cli(*args)
    one_error_line(result, 2)
    assert result.stdout == b""
    with kvlite.open(tmp_path / "s.db") as store:
        assert dict(store.collection("c").items()) == {"k": 1}


def test_errors_exit_1_with_one_line(any_cli: Cli, tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("c").put("k", 1)
    (tmp_path / "junk.db").write_bytes(b"this is not a database at all" * 100)

    assert "no such file" in one_error_line(any_cli("get", "missing.db", "c", "k"), 1)
    assert "junk.db" in one_error_line(any_cli("get", "junk.db", "c", "k"), 1)
    assert "no collection named 'x'" in one_error_line(any_cli("keys", "s.db", "x"), 1)
    assert "no key 'nope'" in one_error_line(any_cli("get", "s.db", "c", "nope"), 1)
    assert "64 bits" in one_error_line(any_cli("put", "s.db", "c", str(2**64 + 1), "1", "--int-key"), 1)
    assert "cannot be empty" in one_error_line(any_cli("put", "s.db", "", "k", "1"), 1)
    assert one_error_line(any_cli("put", "junk.db", "c", "k", "1"), 1)
    assert (tmp_path / "junk.db").read_bytes() == b"this is not a database at all" * 100


def test_version(any_cli: Cli) -> None:
    assert ok(any_cli("--version")).strip() == f"kvlite {kvlite.__version__}"


# -- demo ----------------------------------------------------------------------------------


def test_demo_narrates_and_leaves_what_it_says(any_cli: Cli, tmp_path: Path) -> None:
    out = ok(any_cli("demo"))
    path = tmp_path / "kvlite-demo.db"
    assert path.exists()
    for expected in [
        "kvlite-demo.db",
        "users.put_many(",
        "ttl=60",
        "d = users.dict()",
        "list(d)",
        "['u1', 'u2', 'u3', 'u4']",
        "'u9' in d",
        "users.get_many(['u1', 'u9'])",
        "['Grace', 'Guido']",
        "sessions.get('s-ada')",
        "db.purge_expired()",
        "kvlite collections kvlite-demo.db",
    ]:
        assert expected in out, expected
    lines = out.splitlines()

    def result_of(code: str) -> str:
        [line] = [ln for ln in lines if ln.strip().startswith(code)]
        return line.split("->", 1)[1].split("#")[0].strip()

    assert result_of("sessions.get('s-ada')") == "None"
    assert result_of("len(sessions)") == "1"
    assert result_of("db.purge_expired()") == "1"
    assert result_of("len(d)") == "4"

    with kvlite.open(path) as store:
        users = store.collection("users")
        assert list(users.keys()) == ["u1", "u2", "u3", "u5"]
        assert users.get("u1") == {"name": "Ada", "age": 36, "langs": ["en", "fr"]}
        sessions = store.collection("sessions")
        assert list(sessions.keys()) == ["s-grace"]
        left = sessions.ttl("s-grace")
        assert left is not None and 0 < left <= 600

    # Running it again starts over on its own file.
    again = ok(any_cli("demo"))
    assert "previous demo" in again
    with kvlite.open(path) as store:
        assert list(store.collection("users").keys()) == ["u1", "u2", "u3", "u5"]


def test_demo_refuses_other_files(cli: Cli, tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "mine.db") as store:
        store.collection("users").put("precious", 1)
    line = one_error_line(cli("demo", "mine.db"), 1)
    assert "not made by 'kvlite demo'" in line
    with kvlite.open(tmp_path / "mine.db") as store:
        assert store.collections() == ["users"]
        assert dict(store.collection("users").items()) == {"precious": 1}


def test_demo_in_a_temp_folder(cli: Cli, tmp_path: Path) -> None:
    out = ok(cli("demo", "--tmp"))
    assert not (tmp_path / "kvlite-demo.db").exists()
    made = [p for p in tmp_path.glob("kvlite-demo-*/kvlite-demo.db")]  # TMPDIR is tmp_path
    assert len(made) == 1 and str(made[0]) in out


# -- keys as JSON (in-process, property-based) ------------------------------------------------

keys_strategy = st.one_of(
    st.text(),
    st.binary(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
)


@given(keys_strategy)
def test_key_json_roundtrip_is_exact(key: Any) -> None:
    encoded = orjson.loads(orjson.dumps(key_to_json(key)))
    back = key_from_json(encoded)
    assert type(back) is type(key)
    if isinstance(key, float):
        assert repr(back) == repr(key)  # -0.0 and inf too
    else:
        assert back == key
    assert isinstance(encoded, str) == isinstance(key, str)


@pytest.mark.parametrize("obj", [
    None, 1, 1.5, True, [], ["a"], {}, {"int": 1, "bool": True}, {"int": True}, {"int": "1"},
    {"bool": 1}, {"bytes": "0"}, {"bytes": 1}, {"float": "x"}, {"float": None}, {"str": "a"},
])
def test_key_from_json_rejects_anything_else(obj: Any) -> None:
    with pytest.raises(ValueError):
        key_from_json(obj)


def test_float_key_given_as_a_json_number() -> None:
    assert key_from_json({"float": 2}) == 2.0 and type(key_from_json({"float": 2})) is float
    assert math.isinf(key_from_json({"float": "-inf"}))


# -- queries, indexes, copy --------------------------------------------------------------------


def _people(path: Path) -> dict[str, dict[str, Any]]:
    docs = {
        "u1": {"name": "Ada", "age": 36, "tags": ["math"]},
        "u2": {"name": "Bob", "age": 20},
        "u3": {"name": "Cy", "age": 50, "tags": ["ops", "math"]},
        "u4": {"name": "Di"},
    }
    with kvlite.open(str(path)) as store:
        store.collection("people").put_many(docs)
    return docs


def test_find_query_count_match_the_python_api(any_cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    _people(db)
    path = "$[?(@.age > 30)]"
    with kvlite.open(str(db)) as store:
        expected = list(store.collection("people").find(path))
    found = json_lines(ok(any_cli("find", str(db), "people", path)))
    assert found == [{"key": k, "value": v} for k, v in expected]
    assert json_lines(ok(any_cli("query", str(db), "people", "$.*.name"))) == ["Ada", "Bob", "Cy", "Di"]
    assert ok(any_cli("count", str(db), "people", "$..tags[*]")).strip() == "3"
    assert json_lines(ok(any_cli("query", str(db), "people", "$.*[@.age > 30].name",
                                 "--engine", "objectpath"))) == ["Ada", "Cy"]
    # RFC 9535 is the default; jsonpath-ng's dialect is --engine jsonpath-ng.
    assert json_lines(ok(any_cli("query", str(db), "people", "$[?@.age > 30 && @.name].name"))) == ["Ada", "Cy"]
    assert json_lines(ok(any_cli("query", str(db), "people", "$[?(@.age > 30 && @.name)].name",
                                 "--engine", "jsonpath-ng"))) == ["Ada", "Cy"]
    # jsonpath-ng 1.16+ indexes arrays only: $[0] of the collection (an object) is nothing there too.
    assert json_lines(ok(any_cli("query", str(db), "people", "$[0].name", "--engine", "jsonpath-ng"))) == []
    assert json_lines(ok(any_cli("query", str(db), "people", "$[0].name"))) == []


def test_query_paging_and_order(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    _people(db)
    names = json_lines(ok(cli("query", str(db), "people", "$.*.name", "--order-by", "$.age", "--desc")))
    assert names == ["Cy", "Ada", "Bob", "Di"]      # a missing age sorts last when descending
    same = json_lines(ok(cli("query", str(db), "people", "$.*.name", "--order-by=-$.age")))
    assert same == names
    page = json_lines(ok(cli("query", str(db), "people", "$.*.name", "--offset", "1", "--limit", "2")))
    assert page == ["Bob", "Cy"]


def test_index_and_explain(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    with kvlite.open(str(db)) as store:
        store.collection("people").put_many({f"u{i}": {"age": i % 90} for i in range(3000)})
    before = ok(cli("explain", str(db), "people", "$[?(@.age == 42)]"))
    assert "USING INDEX" not in before and "in SQL:" in before
    assert ok(cli("index", str(db), "people", "--create", "$.age")).split() == ["$.age"]
    after = ok(cli("explain", str(db), "people", "$[?(@.age == 42)]"))
    assert "USING INDEX" in after
    assert ok(cli("count", str(db), "people", "$[?(@.age == 42)]")).strip() == "33"
    assert ok(cli("index", str(db), "people", "--drop", "$.age")).strip() == ""
    one_error_line(cli("index", str(db), "people", "--drop", "$.age"), 1)


def test_bad_query_is_one_line_error(any_cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    _people(db)
    # A PATH that does not parse is a bad argument, like bad JSON: exit 2.
    for command in ("find", "query", "count", "explain"):
        line = one_error_line(any_cli(command, str(db), "people", "$[?(@.age >"), 2)
        assert "jsonpath" in line
    assert "objectpath" in one_error_line(any_cli("query", str(db), "people", "$.*[", "--engine",
                                                  "objectpath"), 2)
    one_error_line(any_cli("find", str(db), "nobody", "$.*"), 1)
    assert "jsonpath" in one_error_line(any_cli("query", str(db), "people", "$[?(@.age > 1 & @.name",
                                                "--engine", "jsonpath-ng"), 2)
    # too deep for Python's recursion limit: still one line (RFC 9535's parser recurses on nested
    # expressions, jsonpath-ng's on segments)
    deep = "$[?" + "(" * 1000 + "@.age" + ")" * 1000 + "]"
    assert "too deeply" in one_error_line(any_cli("query", str(db), "people", deep), 2)
    deep = "$" + ".a" * 1000
    assert "too deeply" in one_error_line(any_cli("query", str(db), "people", deep, "--engine", "jsonpath-ng"), 2)


def test_copy_between_files_with_a_new_serializer(cli: Cli, tmp_path: Path) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    docs = _people(src)
    out = ok(cli("copy", str(src), str(dst), "--serializer", "msgpack"))
    assert out.strip() == "people: 4 entries"
    with kvlite.open(str(dst)) as store:
        assert store.serializer_of("people") == "msgpack"
        assert dict(store.collection("people", serializer="msgpack").items()) == docs
    with kvlite.open(str(src), serializer="pickle") as store:
        store.collection("secret").put("k", {1, 2})
    line = one_error_line(cli("copy", str(src), str(tmp_path / "other.db")), 1)
    assert "trust" in line


# -- closed standard streams --------------------------------------------------------------------


def _run_with_closed(cli: Cli, fd: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run the command line with file descriptor ``fd`` closed, as ``>&-`` (1) or ``<&-`` (0) do;
    stderr (and stdout unless it is the one closed) are captured."""
    def close() -> None:
        os.close(fd)

    return subprocess.run([*cli.prefix, *args], check=False, capture_output=True, cwd=cli.cwd,
                          env=cli.env, timeout=120, preexec_fn=close)


@pytest.mark.skipif(os.name != "posix", reason="closing a descriptor for the child needs POSIX")
@pytest.mark.parametrize("args", [
    ["get", "s.db", "c", "k"],
    ["keys", "s.db", "c"],
    ["collections", "s.db"],
    ["stats", "s.db"],
    ["find", "s.db", "c", "$.*"],
    ["query", "s.db", "c", "$.*"],
    ["count", "s.db", "c", "$.*"],
    ["explain", "s.db", "c", "$.*"],
    ["index", "s.db", "c"],
    ["index", "s.db", "c", "--create", "$.a"],
    ["export", "s.db"],
    ["purge", "s.db"],
    ["copy", "s.db", "copy.db"],
    ["demo", "demo.db"],
])
def test_closed_stdout_is_one_line_and_changes_nothing(any_cli: Cli, tmp_path: Path, args: list[str]) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("c").put("k", {"a": 1})
    before = (tmp_path / "s.db").read_bytes()
    line = one_error_line(_run_with_closed(any_cli, 1, *args), 1)
    assert "stdout is closed" in line
    assert (tmp_path / "s.db").read_bytes() == before
    assert not (tmp_path / "copy.db").exists() and not (tmp_path / "demo.db").exists()
    with kvlite.open(tmp_path / "s.db") as store:
        assert store.collection("c").indexes() == []


@pytest.mark.skipif(os.name != "posix", reason="closing a descriptor for the child needs POSIX")
def test_put_and_delete_need_no_stdout(cli: Cli, tmp_path: Path) -> None:
    assert _run_with_closed(cli, 1, "put", "s.db", "c", "k", "[1]").returncode == 0
    assert orjson.loads(ok(cli("get", "s.db", "c", "k"))) == [1]
    assert _run_with_closed(cli, 1, "delete", "s.db", "c", "k").returncode == 0
    # The file did not get descriptor 1: nothing but SQLite's own writes went into it.
    with kvlite.open(tmp_path / "s.db") as store:
        assert store.collection("c").count() == 0


@pytest.mark.skipif(os.name != "posix", reason="closing a descriptor for the child needs POSIX")
def test_closed_stdin_import_is_one_line_and_creates_nothing(any_cli: Cli, tmp_path: Path) -> None:
    line = one_error_line(_run_with_closed(any_cli, 0, "import", "x.db", "c"), 1)
    assert "stdin is closed" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="closing a descriptor for the child needs POSIX")
def test_closed_stderr_keeps_the_exit_code(cli: Cli, tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("c").put("k", 1)
    assert _run_with_closed(cli, 2, "get", "s.db", "c", "nope").returncode == 1
    assert _run_with_closed(cli, 2, "get", "s.db", "c", "k", "--int-key").returncode == 2
    result = _run_with_closed(cli, 2, "get", "s.db", "c", "k")
    assert result.returncode == 0 and orjson.loads(result.stdout) == 1


def test_any_unexpected_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    """A bug (or a RecursionError from a library) still prints one line, never a traceback."""
    from kvlite import cli as cli_module
    from kvlite.cli import entries  # where the handler of 'keys' lives

    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("c").put("k", 1)
    for exc, words in [(RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
                       (ZeroDivisionError("division by zero"), "unexpected ZeroDivisionError"),
                       (kvlite.errors.StoreLocked("database is locked"), "database is locked")]:
        def boom(args: Any, exc: BaseException = exc) -> int:
            raise exc

        monkeypatch.setattr(entries, "_run_keys", boom)
        assert cli_module.main(["keys", str(tmp_path / "s.db"), "c"]) == 1
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith("kvlite: error: ") and words in err
    def bug(args: Any) -> int:
        return 1 // 0

    monkeypatch.setattr(entries, "_run_keys", bug)
    monkeypatch.setenv("KVLITE_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        cli_module.main(["keys", str(tmp_path / "s.db"), "c"])


def test_help_into_a_closed_pipe_is_quiet(cli: Cli) -> None:
    proc = cli.popen("--help", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert err == b"" and proc.returncode in (0, 141)


# -- integers beyond 64 bits ------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "99999999999999999999999",
    "18446744073709551616",          # 2**64: one past what orjson keeps as an int
    "-9223372036854775809",          # -2**63 - 1
    '{"deep": [1, {"n": -99999999999999999999}]}',
    "1" + "0" * 5000,                # more digits than Python's int() reads by default
])
def test_put_refuses_integers_beyond_64_bits(any_cli: Cli, tmp_path: Path, text: str) -> None:
    line = one_error_line(any_cli("put", "s.db", "c", "k", text), 1)
    assert "json cannot encode" in line
    assert list(tmp_path.iterdir()) == []  # the file it would have created is not left behind
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("c").put("k", "kept")
    one_error_line(any_cli("put", "s.db", "c", "k", text), 1)
    one_error_line(any_cli("put", "s.db", "new", "k", text), 1)
    with kvlite.open(tmp_path / "s.db") as store:
        assert store.collections() == ["c"]  # no empty collection left behind either
        assert store.collection("c").get("k") == "kept"


@pytest.mark.parametrize("text, value", [
    ("18446744073709551615", 2**64 - 1),     # the json serializer holds these, as in Python
    ("-9223372036854775808", -(2**63)),
    ('"99999999999999999999999"', "99999999999999999999999"),   # digits in a string
    ("12345678901234567890123.5", 12345678901234567890123.5),   # a float stays a float
    ("1e300", 1e300),
    ('{"id": 99999999999999999999e-2}', {"id": 999999999999999999.99}),
])
def test_long_numbers_that_json_holds_are_stored_exactly(cli: Cli, tmp_path: Path, text: str, value: Any) -> None:
    ok(cli("put", "s.db", "c", "k", text))
    with kvlite.open(tmp_path / "s.db") as store:
        got = store.collection("c").get("k")
    assert got == value and type(got) is type(value)


def test_import_refuses_integers_beyond_64_bits(cli: Cli, tmp_path: Path) -> None:
    stdin = (b'{"key": "a", "value": 1}\n'
             b'{"key": "b", "value": {"n": 123456789012345678901234567890}}\n')
    line = one_error_line(cli("import", "new.db", "c", stdin=stdin), 1)
    assert "line 2" in line and "json cannot encode" in line and "nothing was imported" in line
    assert list(tmp_path.iterdir()) == []
    ok(cli("import", "new.db", "c", stdin=b'{"key": "big", "value": [18446744073709551615, "1234567890123456789012"]}\n'))
    with kvlite.open(tmp_path / "new.db") as store:
        assert store.collection("c").get("big") == [2**64 - 1, "1234567890123456789012"]


def test_loads_json_is_exact_and_strict() -> None:
    from kvlite.cli import loads_json

    assert loads_json(b'{"a": [1, 2.5, null, true, "x"]}') == {"a": [1, 2.5, None, True, "x"]}
    assert loads_json(b"99999999999999999999999") == 99999999999999999999999
    assert type(loads_json(b"1" + b"0" * 30 + b".0")) is float
    for bad, words in [(b"NaN", "not valid JSON"), (b"[1,]", "not valid JSON"),
                       (b'"\xff"', "byte 2 (0xff) is not valid UTF-8"), (b"1e400", "infinity"),
                       (b'"\xef\xbb\xbf"x', "not valid JSON")]:
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            loads_json(bad)


# -- keys of every type are reachable ------------------------------------------------------------


def test_every_key_keys_prints_can_be_read_and_deleted(any_cli: Cli, tmp_path: Path) -> None:
    """``keys`` prints a key's JSON form; --json-key takes exactly that form back, and the
    --int/--bytes/--float/--bool-key flags take its text."""
    _fill_source(tmp_path / "s.db")
    printed = ok(any_cli("keys", "s.db", "docs")).splitlines()
    assert len(printed) == len(KEYS_OF_EVERY_TYPE)
    for line, key in zip(printed, KEYS_OF_EVERY_TYPE):
        value = orjson.loads(ok(any_cli("get", "s.db", "docs", line, "--json-key")))
        assert value["key"] == repr(key)
        form = orjson.loads(line)
        if isinstance(form, dict):
            ((tag, text),) = form.items()
            text = {True: "true", False: "false"}.get(text, text) if tag == "bool" else str(text)
            # A KEY that starts with '-' (-1e-300, -inf) must follow '--', or argparse takes it for an option.
            got = orjson.loads(ok(any_cli("get", "s.db", "docs", f"--{tag}-key", "--", text)))
            assert got["key"] == repr(key)
    for line in printed:
        ok(any_cli("delete", "s.db", "docs", line, "--json-key"))
    assert ok(any_cli("keys", "s.db", "docs")) == ""


@pytest.mark.parametrize("flag, text, key", [
    ("--float-key", "2.5", 2.5), ("--float-key", "-0.0", -0.0), ("--float-key", "inf", float("inf")),
    ("--float-key", "-inf", float("-inf")), ("--float-key", "1e-300", 1e-300), ("--float-key", "7", 7.0),
    ("--bool-key", "true", True), ("--bool-key", "false", False),
    ("--int-key", "-0", 0), ("--int-key", "007", 7),
    ("--bytes-key", "", b""), ("--bytes-key", "00FFab", b"\x00\xff\xab"),
    ("--json-key", '"7"', "7"), ("--json-key", '{"int": 7}', 7), ("--json-key", '{"float": "nan"}', None),
])
def test_typed_key_flags(cli: Cli, tmp_path: Path, flag: str, text: str, key: Any) -> None:
    if key is None:  # NaN cannot be a key
        one_error_line(cli("put", "s.db", "c", text, "1", flag), 1)
        return
    ok(cli("put", "s.db", "c", flag, "--", text, '"v"'))
    with kvlite.open(tmp_path / "s.db") as store:
        [(stored, value)] = list(store.collection("c").items())
    assert value == "v" and type(stored) is type(key) and repr(stored) == repr(key)


def test_a_non_utf8_argument_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("arguments are bytes only on POSIX")
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("c").put("k", 1)
    bad = os.fsdecode(b"k\xff")
    for args, name in [(["get", "s.db", "c", bad], "KEY"), (["get", "s.db", bad, "k"], "COLL"),
                       (["put", "s.db", "c", "k", os.fsdecode(b'"\xfe"')], "JSON"),
                       (["find", "s.db", "c", bad], "PATH"), (["get", bad, "c", "k"], "FILE"),
                       (["find", "s.db", "c", "$.*", "--order-by", bad], "--order-by")]:
        line = one_error_line(cli(*args), 2)
        assert f"{name} is not valid UTF-8" in line and "surrogates" not in line


def test_import_names_the_line_that_is_not_utf8(cli: Cli, tmp_path: Path) -> None:
    stdin = b'{"key": "a", "value": "fine"}\n{"key": "b", "value": "caf\xe9"}\n'
    line = one_error_line(cli("import", "s.db", "c", stdin=stdin), 1)
    assert "line 2" in line and "not UTF-8" in line and "0xe9" in line and "surrogates" not in line


def test_big_int_keys_are_written_exactly(cli: Cli, tmp_path: Path) -> None:
    """A key the library accepts beyond 64 bits (an int a float equals) is printed exactly."""
    with kvlite.open(tmp_path / "s.db") as store:
        try:
            store.collection("c").put(2**64, "big")
        except kvlite.errors.InvalidKey:
            pytest.skip("this kvlite keeps int keys within 64 bits")
    assert json_lines(ok(cli("keys", "s.db", "c"))) == [{"int": 2**64}]
    assert json_lines(ok(cli("export", "s.db")))[0]["key"] == {"int": 2**64}
    assert orjson.loads(ok(cli("get", "s.db", "c", str(2**64), "--int-key"))) == "big"


# -- serializers the command line does not read, and jsonb ------------------------------------------


def test_keys_and_delete_work_with_a_serializer_this_process_does_not_know(any_cli: Cli, tmp_path: Path) -> None:
    class Reversed(kvlite.Serializer):
        name = "test-cli-reversed"

        def dumps(self, value: Any) -> str:
            return orjson.dumps(value).decode()[::-1]

        def loads(self, data: Any) -> Any:
            return orjson.loads(data[::-1])

    with kvlite.open(tmp_path / "s.db") as store:
        coll = store.collection("custom", serializer=Reversed())
        coll.put_many({"a": 1, 5: [2], b"\x01": {"x": 3}})
    assert json_lines(ok(any_cli("keys", "s.db", "custom"))) == ["a", {"int": 5}, {"bytes": "01"}]
    assert json_lines(ok(any_cli("keys", "s.db", "custom", "--limit", "1"))) == ["a"]
    ok(any_cli("delete", "s.db", "custom", "5", "--int-key"))
    assert json_lines(ok(any_cli("keys", "s.db", "custom"))) == ["a", {"bytes": "01"}]
    assert _table(ok(any_cli("collections", "s.db")))["custom"] == (2, 0, "test-cli-reversed")
    for args in (["get", "s.db", "custom", "a"], ["put", "s.db", "custom", "a", "1"],
                 ["find", "s.db", "custom", "$.*"], ["export", "s.db"]):
        assert "'test-cli-reversed' serializer" in one_error_line(any_cli(*args), 1)
    with kvlite.open(tmp_path / "s.db") as store:
        assert list(store.collection("custom", serializer=Reversed()).items()) == [("a", 1), (b"\x01", {"x": 3})]


def test_every_value_command_accepts_jsonb(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with kvlite.open(db) as store:
        store.collection("events", serializer="jsonb").put_many({"e1": {"ms": 12}, "e2": {"ms": 40}})
    ok(cli("put", "s.db", "events", "e3", '{"ms": 30}'))
    assert orjson.loads(ok(cli("get", "s.db", "events", "e3"))) == {"ms": 30}
    assert json_lines(ok(cli("query", "s.db", "events", "$[?(@.ms > 20)].ms"))) == [40, 30]
    assert json_lines(ok(cli("find", "s.db", "events", "$.*.ms", "--order-by", "$.ms", "--desc"))) == [
        {"key": "e2", "value": 40}, {"key": "e3", "value": 30}, {"key": "e1", "value": 12}]
    assert ok(cli("count", "s.db", "events", "$[?(@.ms > 20)]")).strip() == "2"
    assert ok(cli("index", "s.db", "events", "--create", "$.ms")).split() == ["$.ms"]
    assert "USING INDEX" in ok(cli("explain", "s.db", "events", "$[?(@.ms == 40)]"))
    ok(cli("import", "s.db", "events", stdin=b'{"key": "e4", "value": {"ms": 1}}\n'))
    exported = json_lines(ok(cli("export", "s.db", "events")))
    assert [(row["key"], row["value"]) for row in exported] == [
        ("e1", {"ms": 12}), ("e2", {"ms": 40}), ("e3", {"ms": 30}), ("e4", {"ms": 1})]
    assert _table(ok(cli("collections", "s.db")))["events"] == (4, 0, "jsonb")
    with kvlite.open(db) as store:
        assert store.serializer_of("events") == "jsonb"
        assert store.collection("events", serializer="jsonb").get("e4") == {"ms": 1}


# -- names on a terminal ----------------------------------------------------------------------------


def test_collections_escapes_names_that_could_fake_rows(cli: Cli, tmp_path: Path) -> None:
    names = ["plain", "name with spaces ü 🏙", "evil\nfake   99   0  json", "\x1b[2J\x1b[31mred",
             "rtl\u202eevil", "c1\x9b2J", "line\u2028sep", 'quo"te', "back\\slash", " padded ", "tab\there"]
    with kvlite.open(tmp_path / "s.db") as store:
        for name in names:
            store.collection(name).put("k", 1)
    out = ok(cli("collections", "s.db"))
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) == len(names) + 2   # one line per collection, no more
    assert all(line.isprintable() for line in lines)
    shown = [line.rsplit(maxsplit=3)[0].rstrip() for line in lines[1:-1]]
    assert shown[:2] == ["plain", "name with spaces ü 🏙"]   # printable names are shown as they are
    # The others are JSON strings that read back as the exact name.
    assert [orjson.loads(s) for s in shown[2:]] == names[2:]
    # copy prints names the same way.
    copied = ok(cli("copy", "s.db", "copy.db")).splitlines()
    assert all(line.isprintable() for line in copied) and len(copied) == len(names)


def test_error_lines_are_printable(cli: Cli, tmp_path: Path) -> None:
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("c").put("k", 1)
    line = one_error_line(cli("get", "s.db", "c", "\x1b[2J\u202e"), 1)
    assert line.isprintable()


# -- files a failed command created are removed --------------------------------------------------------


def test_a_failed_import_into_a_new_file_leaves_nothing(any_cli: Cli, tmp_path: Path) -> None:
    stdin = b'{"key": "a", "value": 1}\n{"key": "b", "value": 1, "ttl": -1}\n'
    one_error_line(any_cli("import", "new.db", "c", stdin=stdin), 1)
    assert list(tmp_path.iterdir()) == []
    one_error_line(any_cli("import", "new.db", stdin=b'{"key": "a", "value": 1}\n'), 1)  # no collection
    assert list(tmp_path.iterdir()) == []
    # An existing file is kept as it was, even an empty one.
    with kvlite.open(tmp_path / "old.db"):
        pass
    one_error_line(any_cli("import", "old.db", "c", stdin=stdin), 1)
    with kvlite.open(tmp_path / "old.db") as store:
        assert store.collections() == []


def test_a_failed_put_or_copy_into_a_new_file_leaves_nothing(cli: Cli, tmp_path: Path) -> None:
    one_error_line(cli("put", "new.db", "", "k", "1"), 1)    # an empty collection name
    assert list(tmp_path.iterdir()) == []
    with kvlite.open(tmp_path / "src.db", serializer="pickle") as store:
        store.collection("p").put("k", {1})
    one_error_line(cli("copy", "src.db", "dst.db"), 1)       # pickle needs --trust-pickle
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("src.db")) == []


# -- ordering flags ---------------------------------------------------------------------------------


def test_explain_takes_desc_and_the_order_flags_never_cancel(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    _people(db)
    plan = ok(cli("explain", str(db), "people", "$.*", "--order-by", "$.age", "--desc"))
    assert plan == ok(cli("explain", str(db), "people", "$.*", "--order-by=-$.age"))
    assert plan != ok(cli("explain", str(db), "people", "$.*", "--order-by", "$.age"))
    line = one_error_line(cli("find", str(db), "people", "$.*", "--order-by=-$.age", "--desc"), 2)
    assert "already means descending" in line
    assert "--desc needs --order-by" in one_error_line(cli("query", str(db), "people", "$.*", "--desc"), 2)
    line = one_error_line(cli("query", str(db), "people", "$.*", "--order-by", "-$.age"), 2)
    assert "--order-by=-$.age" in line


# -- the documented exit codes ------------------------------------------------------------------------


def test_exit_codes_are_the_documented_ones() -> None:
    """docs/cli.md's exit-code table is kvlite.cli.EXIT_CODES, row for row."""
    from kvlite.cli import EXIT_CODES

    text = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| code")]
    # A cell is the text between the row's second and last "|"; "\|" is a "|" inside it.
    documented = {int(row.split("|")[1]): row.split("|", 2)[2].rsplit("|", 1)[0].strip().replace("\\|", "|")
                  for row in rows}
    assert documented == EXIT_CODES


def test_import_holds_the_write_lock_until_it_ends(cli: Cli, tmp_path: Path) -> None:
    """As documented: other writers wait (here: time out at once) for the whole import."""
    with kvlite.open(tmp_path / "s.db") as store:
        store.collection("probe").put("p", 0)
    proc = cli.popen("import", "s.db", "c", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(b'{"key": "a", "value": 1}\n')
    proc.stdin.flush()
    locked = False
    deadline = time.monotonic() + 60
    with kvlite.open(tmp_path / "s.db", timeout=0) as store:
        while not locked and time.monotonic() < deadline:
            try:
                store.collection("probe").put("p", 1)
            except kvlite.errors.StoreLocked:
                locked = True
            else:
                time.sleep(0.02)  # the import has not opened the file yet
        assert locked, "the import never took the write lock"
        assert store.collection("probe").get("p") in (0, 1)  # reads are not blocked
        proc.stdin.write(b'{"key": "b", "value": 2}\n')
        proc.stdin.close()
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 0, err.decode()
        store.collection("probe").put("p", 2)  # free again
        assert dict(store.collection("c").items()) == {"a": 1, "b": 2}
