"""Migrations: the schema a new file gets, the files kvlite refuses (untouched), and the installed wheel."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import apsw
import pytest

import kvlite
from kvlite.backends.sqlite import migrate
from kvlite.errors import CorruptStore, IncompatibleVersion, KvliteError

ROOT = Path(__file__).resolve().parent.parent
MIGRATION_FILES = sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` with its exact bytes (so a stray -wal/-shm file shows up too)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path))
    try:
        return [tuple(row) for row in conn.execute(sql)]
    finally:
        conn.close()


# -- a new file -----------------------------------------------------------------------------------


def test_shipped_migrations_are_numbered_files(tmp_path: Path) -> None:
    assert MIGRATION_FILES, "no migrations/NNNN_*.sql files"
    assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+\.sql", name) for name in MIGRATION_FILES)
    loaded = migrate.migrations()
    assert [f"{m.version:04d}_{m.name}.sql" for m in loaded] == MIGRATION_FILES
    assert [m.version for m in loaded] == list(range(1, len(MIGRATION_FILES) + 1))
    assert migrate.latest_version() == len(MIGRATION_FILES)


def test_new_file_gets_the_latest_schema(db_path: Path) -> None:
    kvlite.open(db_path).close()
    assert raw(db_path, "PRAGMA application_id") == [(migrate.APPLICATION_ID,)]
    assert raw(db_path, "PRAGMA user_version") == [(migrate.latest_version(),)]
    rows = raw(db_path, "SELECT version, name FROM kvlite_migrations ORDER BY version")
    assert rows == [(m.version, m.name) for m in migrate.migrations()]
    meta = dict(raw(db_path, "SELECT key, value FROM kvlite_meta"))
    assert meta["created_by"] == kvlite.__version__
    tables = {row[0] for row in raw(db_path, "SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert {"kvlite_meta", "kvlite_collections", "kvlite_migrations"} <= tables


def test_reopening_applies_nothing_again(db_path: Path) -> None:
    kvlite.open(db_path).close()
    before = raw(db_path, "SELECT version, name, applied_at FROM kvlite_migrations")
    with kvlite.open(db_path) as db:
        db.collection("c").put("k", 1)
    assert raw(db_path, "SELECT version, name, applied_at FROM kvlite_migrations") == before


def test_memory_store_is_migrated() -> None:
    with kvlite.open(":memory:") as db:
        conn = db.engine.connection()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == migrate.latest_version()
        assert conn.execute("PRAGMA application_id").fetchone()[0] == migrate.APPLICATION_ID


def test_empty_existing_file_becomes_a_store(db_path: Path) -> None:
    db_path.write_bytes(b"")  # SQLite treats a 0-byte file as a new, empty database
    with kvlite.open(db_path) as db:
        db.collection("c").put("k", 1)
    assert raw(db_path, "PRAGMA user_version") == [(migrate.latest_version(),)]


# -- the runner --------------------------------------------------------------------------------------


def test_pending_migrations_apply_in_order_and_are_recorded(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kvlite.open(db_path).close()
    current = migrate.migrations()
    extra = (
        migrate.Migration(len(current) + 1, "add_a", "CREATE TABLE test_a (x);"),
        migrate.Migration(len(current) + 2, "use_a", "INSERT INTO test_a VALUES (42);"),  # needs the one before
    )
    monkeypatch.setattr(migrate, "migrations", lambda: current + extra)
    with kvlite.open(db_path) as db:
        db.collection("c").put("k", 1)
    assert raw(db_path, "PRAGMA user_version") == [(len(current) + 2,)]
    assert raw(db_path, "SELECT version, name FROM kvlite_migrations ORDER BY version")[-2:] == [
        (len(current) + 1, "add_a"), (len(current) + 2, "use_a")]
    assert raw(db_path, "SELECT x FROM test_a") == [(42,)]


def test_every_statement_of_a_migration_runs(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A statement that returns rows (a PRAGMA, a SELECT) does not stop the rest of the file."""
    kvlite.open(db_path).close()
    current = migrate.migrations()
    script = "SELECT 1; PRAGMA table_info(kvlite_meta); CREATE TABLE test_after (x); INSERT INTO test_after VALUES (7);"
    monkeypatch.setattr(migrate, "migrations", lambda: current + (migrate.Migration(len(current) + 1, "rows", script),))
    kvlite.open(db_path).close()
    assert raw(db_path, "SELECT x FROM test_after") == [(7,)]


def test_a_failing_migration_applies_nothing(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = migrate.migrations()
    broken = migrate.Migration(len(current) + 1, "broken", "CREATE TABLE test_b (x); CREATE TABLE kvlite_meta (y);")
    monkeypatch.setattr(migrate, "migrations", lambda: current + (broken,))
    with pytest.raises((apsw.Error, KvliteError)):
        kvlite.open(db_path)
    # All of it was one transaction: not even the first migrations landed.
    assert raw(db_path, "PRAGMA user_version") == [(0,)]
    assert raw(db_path, "SELECT count(*) FROM sqlite_schema") == [(0,)]
    monkeypatch.undo()
    with kvlite.open(db_path) as db:  # the real migrations still apply cleanly afterwards
        db.collection("c").put("k", 1)


# -- files kvlite refuses, byte for byte untouched --------------------------------------------------------

NOT_SQLITE = {
    "text": b"hello, this is not a database\n" * 50,
    "random": bytes((i * 7919 + 13) % 256 for i in range(8192)),
    "sqlite-header-then-junk": b"SQLite format 3\x00" + b"\xff" * 4080,
    "short": b"SQL",
}


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize("content", list(NOT_SQLITE.values()), ids=list(NOT_SQLITE))
def test_non_sqlite_file_raises_corrupt_store_and_is_unchanged(tmp_path: Path, content: bytes,
                                                              readonly: bool) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    before = snapshot(tmp_path)
    with pytest.raises(CorruptStore):
        kvlite.open(path, readonly=readonly)
    assert snapshot(tmp_path) == before


def make_foreign(path: Path, *, wal: bool, application_id: int = 0) -> None:
    conn = apsw.Connection(str(path))
    if wal:
        conn.execute("PRAGMA journal_mode = WAL").fetchall()
    conn.execute("CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada');")
    if application_id:
        conn.execute(f"PRAGMA application_id = {application_id:d}")
    conn.close()


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
@pytest.mark.parametrize("application_id", [0, 0x12345678], ids=["no-app-id", "other-app-id"])
def test_non_kvlite_sqlite_file_raises_corrupt_store_and_is_unchanged(tmp_path: Path, wal: bool,
                                                                     application_id: int) -> None:
    path = tmp_path / "other.db"
    make_foreign(path, wal=wal, application_id=application_id)
    before = snapshot(tmp_path)
    assert list(before) == ["other.db"]
    with pytest.raises(CorruptStore) as info:
        kvlite.open(path)
    assert "kvlite" in str(info.value)
    assert snapshot(tmp_path) == before
    assert raw(path, "SELECT name FROM people") == [("ada",)]


def make_newer(path: Path, version: int) -> None:
    with kvlite.open(path) as db:
        db.collection("c").put("k", "written by a 'newer' kvlite")
    conn = apsw.Connection(str(path))
    conn.execute(f"PRAGMA user_version = {version:d}")
    conn.close()  # the last connection checkpoints the WAL and removes it


@pytest.mark.parametrize("delta", [1, 1000])
def test_newer_schema_raises_incompatible_version_and_is_unchanged(tmp_path: Path, delta: int) -> None:
    path = tmp_path / "newer.db"
    newer = migrate.latest_version() + delta
    make_newer(path, newer)
    before = snapshot(tmp_path)
    assert list(before) == ["newer.db"]  # no -wal/-shm to begin with
    with pytest.raises(IncompatibleVersion) as info:
        kvlite.open(path)
    assert str(newer) in str(info.value) and str(migrate.latest_version()) in str(info.value)
    assert snapshot(tmp_path) == before  # same bytes, and no -wal or -shm left behind
    assert raw(path, "PRAGMA user_version") == [(newer,)]


def test_newer_schema_opened_readonly_is_refused_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    make_newer(path, migrate.latest_version() + 1)
    before = path.read_bytes()
    with pytest.raises(IncompatibleVersion):
        kvlite.open(path, readonly=True)
    assert path.read_bytes() == before
    wal = tmp_path / "newer.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # a read-only reader may leave an empty WAL, never data


def test_a_second_store_refuses_while_first_is_open(tmp_path: Path) -> None:
    """The check also holds when another connection has the file open (a -wal file exists)."""
    path = tmp_path / "newer.db"
    make_newer(path, migrate.latest_version() + 1)
    holder = apsw.Connection(str(path))
    try:
        holder.execute("SELECT count(*) FROM kvlite_meta").fetchall()
        before = path.read_bytes()
        with pytest.raises(IncompatibleVersion):
            kvlite.open(path)
        assert path.read_bytes() == before
    finally:
        holder.close()


# -- from an installed wheel -------------------------------------------------------------------------


def _pip(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def build_wheel(tmp_path: Path) -> Path:
    """Build kvlite's wheel from a copy of the checkout (so no build/ or egg-info lands in it).

    Skipped (outside CI only) when pip could not install the build backend - the one
    thing that is impossible offline; every other failure fails the test.
    """
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache", "*.db", "*.db-*",
        "tests", ".venv", "venv"))
    out = tmp_path / "wheelhouse"
    isolated = _pip("wheel", "--no-deps", "--wheel-dir", str(out), str(src), cwd=tmp_path)
    log = isolated.stdout + isolated.stderr
    if isolated.returncode != 0:
        offline = re.search(r"Installing build dependencies: finished with status 'error'", log)
        if os.environ.get("CI", "").lower() in ("", "0", "false") and offline:
            fallback = _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(src),
                            cwd=tmp_path)
            if fallback.returncode != 0:
                pytest.skip("cannot build a wheel offline (no build backend available):\n"
                            + (fallback.stdout + fallback.stderr)[-2000:])
        else:
            pytest.fail(f"building the wheel failed:\n{log[-4000:]}")
    wheels = list(out.glob("kvlite-*.whl"))
    assert len(wheels) == 1, log
    return wheels[0]


CHECK_INSTALLED = textwrap.dedent("""
    import json, sys
    from importlib import resources
    from pathlib import Path

    import kvlite
    from kvlite.backends.sqlite import migrate

    folder = resources.files("kvlite.migrations")
    with kvlite.open(sys.argv[1]) as db:
        db.collection("c").put("k", {"v": [1, 2]})
        value = db.collection("c").get("k")
        version = db.engine.connection().execute("PRAGMA user_version").fetchone()[0]
    print(json.dumps({
        "prefix": str(Path(sys.prefix).resolve()),
        "kvlite": str(Path(kvlite.__file__).resolve()),
        "migrations_folder": str(Path(str(folder)).resolve()),
        "sql_files": sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql")),
        "latest": migrate.latest_version(),
        "user_version": version,
        "value": value,
    }))
""")


def test_installed_wheel_ships_migrations_and_opens_a_store(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"kvlite/migrations/{name}" for name in MIGRATION_FILES} <= names
    assert "kvlite/py.typed" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / ("python.exe" if os.name == "nt" else "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH")}
    # The running environment's site-packages provide the dependencies (apsw, orjson, ...) and pip, so
    # nothing is downloaded.  A .pth line puts them after the venv's own site-packages, so the installed
    # wheel wins, and .pth files inside them (such as an editable install's finder) are not run.
    venv_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, env=env, timeout=60).stdout.strip()
    # (Every site-packages folder on the path: a virtual environment made with --system-site-packages
    # finds its dependencies in the base interpreter's.)
    outer = dict.fromkeys([sysconfig.get_paths()[key] for key in ("purelib", "platlib")]
                          + [entry for entry in sys.path if os.path.basename(entry) in ("site-packages", "dist-packages")])
    Path(venv_site, "outer_env.pth").write_text("\n".join(outer) + "\n", encoding="utf-8")
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                              str(wheel)], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert install.returncode == 0, install.stdout + install.stderr

    # cwd is not the checkout, so the checkout cannot be imported by accident.
    run = subprocess.run([str(python), "-c", CHECK_INSTALLED, str(tmp_path / "fresh.db")], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    venv_dir = Path(found["prefix"])
    assert venv_dir == venv.resolve()
    assert Path(found["kvlite"]).is_relative_to(venv_dir), found  # the wheel, not the editable checkout
    assert Path(found["migrations_folder"]).is_relative_to(venv_dir), found
    assert found["sql_files"] == MIGRATION_FILES
    assert found["latest"] == found["user_version"] == len(MIGRATION_FILES)
    assert found["value"] == {"v": [1, 2]}


def test_many_first_opens_of_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Openers racing the first migration of a new file: each reads the file's header and
    tables in one snapshot, so none sees the tables without the application_id (it did), and
    the switch to WAL, which SQLite refuses at once while another opener holds the file, is
    retried (it raised StoreLocked)."""
    import threading

    for round_ in range(40):
        path = tmp_path / f"race-{round_}.db"
        start = threading.Barrier(6)
        errors: list[BaseException] = []

        def open_it() -> None:
            start.wait(10)
            try:
                kvlite.open(path).close()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors, errors
        assert raw(path, "PRAGMA user_version") == [(migrate.latest_version(),)]


def test_a_source_tree_that_is_not_installed_finds_its_migrations(tmp_path: Path) -> None:
    """``python -m kvlite`` run from a checkout imports the checkout's ``kvlite/``, which has no
    ``migrations`` package inside: the files are found in the checkout's top-level ``migrations/``
    (CI's demo step runs exactly so; it failed with "migration files are missing")."""
    repo = Path(__file__).resolve().parents[1]
    copy = tmp_path / "checkout"
    shutil.copytree(repo / "kvlite", copy / "kvlite", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(repo / "migrations", copy / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH")}
    script = ("import json, kvlite; from kvlite.backends.sqlite import migrate; "
              "print(json.dumps([kvlite.__file__, str(migrate._folder()), migrate.latest_version()]))")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=copy, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    module, folder, latest = json.loads(run.stdout)
    assert Path(module).resolve().is_relative_to(copy.resolve())
    assert Path(folder).resolve() == (copy / "migrations").resolve()
    assert latest == len(MIGRATION_FILES)
    demo = subprocess.run([sys.executable, "-m", "kvlite", "demo"], capture_output=True, text=True, cwd=copy,
                          env=env, timeout=300)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert (copy / "kvlite-demo.db").stat().st_size > 0
