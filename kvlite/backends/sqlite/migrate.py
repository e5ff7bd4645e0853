"""The migration runner: brings a file's schema up to the version this kvlite knows.

Migrations are the numbered files ``NNNN_name.sql`` of the ``migrations/``
folder (installed as the package ``kvlite.migrations``).  The file's version is
SQLite's ``user_version``; kvlite files are marked by ``application_id``.
Pending files are applied in order in one ``BEGIN IMMEDIATE`` transaction,
each recorded in ``kvlite_migrations``: either all of them land or none.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import apsw

from ...errors import CorruptStore, IncompatibleVersion
from ...version import __version__

#: SQLite ``application_id`` of a kvlite file: the bytes ``kvlt``.
APPLICATION_ID = 0x6B766C74

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _folder() -> Any:
    """Where the SQL files are: inside the installed package (``kvlite/migrations``, put there
    from the repository's top-level ``migrations/`` when the wheel is built), or, when kvlite
    runs from a source checkout, that top-level folder itself."""
    package = Path(__file__).resolve().parents[2]  # the kvlite package: kvlite/backends/sqlite/ -> kvlite/
    for candidate in (package / "migrations", package.parent / "migrations"):
        if candidate.is_dir() and any(candidate.glob("[0-9][0-9][0-9][0-9]_*.sql")):
            return candidate
    try:  # e.g. a zipped install, where the files are not on disk
        return resources.files("kvlite.migrations")
    except ModuleNotFoundError:
        raise RuntimeError("kvlite's migration files are missing from this installation") from None


@lru_cache(maxsize=1)
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with this kvlite, in version order."""
    folder = _folder()
    found = []
    for entry in folder.iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration numbers must be 1, 2, 3, ...; found {migration.version} at {expected}")
    return tuple(found)


def latest_version() -> int:
    return len(migrations())


def inspect(conn: apsw.Connection) -> int:
    """The schema version of the file behind ``conn``, or 0 for a new, empty file.

    Reads only (never writes).  Raises :class:`CorruptStore` for a file that is
    not SQLite or not kvlite, :class:`IncompatibleVersion` for a newer schema.
    """
    try:
        # One statement, so one snapshot: read one by one, another connection's first migration
        # could commit in between (tables, but no application_id yet: "not a kvlite store").
        app_id, version, tables = conn.execute(
            "SELECT (SELECT application_id FROM pragma_application_id()), "
            "(SELECT user_version FROM pragma_user_version()), (SELECT count(*) FROM sqlite_schema)").fetchone()
    except (apsw.NotADBError, apsw.CorruptError, apsw.SQLError) as exc:
        # SQLError here: a damaged header or schema ("unsupported file format", "malformed ...").
        raise CorruptStore(f"not an SQLite database, or damaged: {exc}") from exc
    if app_id == 0 and version == 0 and tables == 0:
        # SQLite takes some files shorter than its 100-byte header for empty
        # databases; such a file is someone else's data, never a new store.
        name = conn.filename
        if name and os.path.isfile(name) and 0 < os.path.getsize(name) < 100:
            raise CorruptStore("not an SQLite database: the file is shorter than an SQLite header")
        return 0
    if app_id != APPLICATION_ID:
        raise CorruptStore("this SQLite file is not a kvlite store (no kvlite application_id)")
    if version <= 0:  # upgrade() sets application_id and user_version together
        raise CorruptStore(f"damaged kvlite file: it has kvlite's application_id but schema version {version}")
    if version > latest_version():
        raise IncompatibleVersion(
            f"the file has kvlite schema version {version}, but this kvlite knows only up to "
            f"{latest_version()}; upgrade kvlite to open it"
        )
    try:
        registry = {row[0]: (row[1].upper(), row[2]) for row in
                    conn.execute("SELECT name, type, pk FROM pragma_table_info('kvlite_collections')")}
        strict = conn.execute("SELECT strict FROM pragma_table_list "
                              "WHERE schema = 'main' AND name = 'kvlite_collections'").fetchone()
    except (apsw.NotADBError, apsw.CorruptError, apsw.SQLError, UnicodeDecodeError) as exc:
        raise CorruptStore(f"damaged kvlite file: {exc}") from exc
    # Collection ids name tables (kv_<id>): only an INTEGER PRIMARY KEY (the rowid) is sure to
    # hold integers, whatever a hostile file put in its rows.  Names and serializers are only
    # sure to be text in a STRICT table that declares them TEXT (as kvlite's schema does).
    if (strict != (1,) or registry.get("id") != ("INTEGER", 1) or registry.get("name", ("",))[0] != "TEXT"
            or registry.get("serializer", ("",))[0] != "TEXT"):
        raise CorruptStore("damaged kvlite file: its collection registry (kvlite_collections) is missing or malformed")
    return version


def upgrade(conn: apsw.Connection) -> int:
    """Apply every pending migration in one transaction; returns the new version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = inspect(conn)  # again, under the write lock: another process may have migrated
        for migration in migrations()[current:]:
            # Step through every statement: apsw runs a script's next statement only once
            # the rows of the one before (a PRAGMA, a SELECT) have been read.
            for _ in conn.execute(migration.sql):
                pass
            conn.execute(
                "INSERT INTO kvlite_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
        if current < latest_version():
            conn.execute(
                "INSERT INTO kvlite_meta(key, value) VALUES ('created_by', ?) ON CONFLICT(key) DO NOTHING",
                (__version__,),
            )
            conn.execute(
                "INSERT INTO kvlite_meta(key, value) VALUES ('last_migrated_by', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (__version__,),
            )
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
            conn.execute(f"PRAGMA user_version = {latest_version():d}")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(apsw.Error):  # SQLite may have rolled back already (disk full)
            conn.execute("ROLLBACK")
        raise
    return latest_version()
