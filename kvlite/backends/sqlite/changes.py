"""The change log of an SQLite store: what ``Store.changes()`` reads.

Two tables, made the first time a collection turns its log on (a store that
never does has neither)::

    kvlite_changes       seq (AUTOINCREMENT: strictly increasing, never reused), collection
                         (name), serializer, key, key_type, op ('put' / 'delete'), value (the
                         stored data of a put, as the serializer wrote it), at (unix time)
    kvlite_change_state  collection (name), enabled, keep (changes kept per collection),
                         max_age (seconds), trimmed (the last seq trimmed from its log)

Changes are recorded by triggers on the collection's table, so every writer
of the file records them -- every thread, every process, whatever options it
opened the collection with -- in the transaction of the write itself: a change
exists exactly when its write committed, and ``seq`` follows commit order
(SQLite has one writer at a time).  The triggers name no user text: they read
the collection's name and serializer from the registry by its id.

Retention: each collection keeps its last ``keep`` changes and those younger
than ``max_age`` seconds (on the system clock, as ``at`` is); older ones are
trimmed by ``purge_expired()`` and every 1024 writes through a collection
object.  A read ``since`` a seq older than what a collection's log still
holds raises :class:`~kvlite.errors.ChangesTruncated`.
"""

from __future__ import annotations

from typing import Any

import apsw

from ...errors import ChangesTruncated, CorruptStore
from .errors import DB_ERRORS, translate_error

__all__ = ["enable", "disable", "page", "last_seq", "trim", "check_since",
           "before_drop", "enabled"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kvlite_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    serializer TEXT NOT NULL,
    key        ANY NOT NULL,
    key_type   INTEGER NOT NULL,
    op         TEXT NOT NULL,
    value      ANY,
    at         REAL NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS kvlite_changes_by_collection ON kvlite_changes(collection, seq);
CREATE TABLE IF NOT EXISTS kvlite_change_state (
    collection TEXT PRIMARY KEY,
    enabled    INTEGER NOT NULL,
    keep       INTEGER NOT NULL,
    max_age    REAL NOT NULL,
    trimmed    INTEGER NOT NULL DEFAULT 0
) STRICT;
"""


def _has_log(conn: apsw.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'kvlite_changes'").fetchone()
    return bool(row[0])


def _triggers(table_id: int, stored: str) -> list[str]:
    """The statements that make collection ``table_id``'s triggers (``stored``: how a row's value
    reads as the serializer wrote it, ``json(new.value)`` for jsonb)."""
    t = f'"kv_{table_id:d}"'
    source = f"FROM kvlite_collections WHERE id = {table_id:d}"
    now = "unixepoch('subsec')"
    put = (f"INSERT INTO kvlite_changes(collection, serializer, key, key_type, op, value, at) "
           f"SELECT name, serializer, new.key, new.key_type, 'put', {stored}, {now} {source};")
    return [
        f'CREATE TRIGGER IF NOT EXISTS "kv_{table_id:d}_log_insert" AFTER INSERT ON {t} BEGIN {put} END',
        f'CREATE TRIGGER IF NOT EXISTS "kv_{table_id:d}_log_update" AFTER UPDATE ON {t} BEGIN {put} END',
        f'CREATE TRIGGER IF NOT EXISTS "kv_{table_id:d}_log_delete" AFTER DELETE ON {t} BEGIN '
        f"INSERT INTO kvlite_changes(collection, serializer, key, key_type, op, value, at) "
        f"SELECT name, serializer, old.key, old.key_type, 'delete', NULL, {now} {source}; END",
    ]


def enabled(conn: apsw.Connection, table_id: int) -> bool:
    """Whether collection ``table_id`` records its changes."""
    row = conn.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name = ?",
                       (f"kv_{table_id:d}_log_insert",)).fetchone()
    return bool(row[0])


def enable(conn: apsw.Connection, name: str, table_id: int, jsonb: bool, keep: int, max_age: float) -> None:
    """Turn collection ``name``'s log on (or change its retention); inside a write transaction."""
    conn.execute(_SCHEMA)
    for statement in _triggers(table_id, "json(new.value)" if jsonb else "new.value"):
        conn.execute(statement)
    conn.execute("INSERT INTO kvlite_change_state(collection, enabled, keep, max_age) VALUES (?, 1, ?, ?) "
                 "ON CONFLICT (collection) DO UPDATE SET enabled = 1, keep = excluded.keep, "
                 "max_age = excluded.max_age", (name, keep, max_age))


def disable(conn: apsw.Connection, name: str, table_id: int) -> None:
    """Turn collection ``name``'s log off and drop what it holds (a follower asking for it from
    before now gets :class:`ChangesTruncated`); inside a write transaction."""
    for suffix in ("insert", "update", "delete"):
        conn.execute(f'DROP TRIGGER IF EXISTS "kv_{table_id:d}_log_{suffix}"')
    if _has_log(conn):
        _trim_to(conn, name, _last(conn))
        conn.execute("UPDATE kvlite_change_state SET enabled = 0 WHERE collection = ?", (name,))


def before_drop(conn: apsw.Connection, table_id: int) -> None:
    """Before collection ``table_id``'s table is dropped: when it records changes, every entry is
    deleted first, so a follower sees each removal (the registry row must still exist)."""
    if enabled(conn, table_id):
        conn.execute(f'DELETE FROM "kv_{table_id:d}"')


def _last(conn: apsw.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kvlite_changes'").fetchone()
    return 0 if row is None else int(row[0])


def last_seq(conn: apsw.Connection) -> int:
    """The seq of the newest change ever recorded (0: none)."""
    try:
        return _last(conn) if _has_log(conn) else 0
    except DB_ERRORS as exc:
        raise translate_error(exc) from exc


def _trim_to(conn: apsw.Connection, name: str, upto: int) -> int:
    """Delete ``name``'s changes up to seq ``upto`` and remember it: how many went."""
    conn.execute("DELETE FROM kvlite_changes WHERE collection = ? AND seq <= ?", (name, upto))
    gone = conn.changes()
    conn.execute("UPDATE kvlite_change_state SET trimmed = max(trimmed, ?) WHERE collection = ?", (upto, name))
    return int(gone)


def trim(conn: apsw.Connection, now: float, only: str | None = None) -> int:
    """Trim every log (or collection ``only``'s) to its retention: how many changes went."""
    if not _has_log(conn):
        return 0
    trimmed = 0
    sql = "SELECT collection, keep, max_age FROM kvlite_change_state"
    rows = conn.execute(sql + (" WHERE collection = ?" if only is not None else ""),
                        (only,) if only is not None else ()).fetchall()
    for name, keep, max_age in rows:
        by_count = conn.execute("SELECT seq FROM kvlite_changes WHERE collection = ? ORDER BY seq DESC "
                                "LIMIT 1 OFFSET ?", (name, keep)).fetchone()
        by_age = conn.execute("SELECT max(seq) FROM kvlite_changes WHERE collection = ? AND at < ?",
                              (name, now - max_age)).fetchone()
        upto = max(by_count[0] if by_count else 0, by_age[0] or 0)
        if upto:
            trimmed += _trim_to(conn, name, upto)
    return trimmed


def check_since(conn: apsw.Connection, since: int, names: list[str] | None) -> None:
    """Raise :class:`ChangesTruncated` when a wanted collection's log no longer holds every change
    after ``since``."""
    if not _has_log(conn):
        return
    sql = "SELECT collection, trimmed FROM kvlite_change_state WHERE trimmed > ?"
    params: list[Any] = [since]
    if names is not None:
        sql += f" AND collection IN ({', '.join('?' for _ in names)})"
        params += names
    row = conn.execute(sql + " ORDER BY trimmed DESC LIMIT 1", params).fetchone()
    if row is not None:
        raise ChangesTruncated(f"changes of {row[0]!r} up to seq {row[1]} are no longer kept (retention); "
                               f"since={since} is older: resync from the collection, then follow from "
                               "Store.last_change_seq()", since=since, oldest=int(row[1]))


def page(conn: apsw.Connection, since: int, names: list[str] | None, limit: int) -> list[tuple[Any, ...]]:
    """Up to ``limit`` changes after ``since``: ``(seq, collection, serializer, key, key_type, op,
    value)`` in seq order."""
    if not _has_log(conn):
        return []
    sql = "SELECT seq, collection, serializer, key, key_type, op, value FROM kvlite_changes WHERE seq > ?"
    params: list[Any] = [since]
    if names is not None:
        sql += f" AND collection IN ({', '.join('?' for _ in names)})"
        params += names
    rows = conn.execute(sql + " ORDER BY seq LIMIT ?", [*params, limit]).fetchall()
    for row in rows:  # (a hostile file may hold a table of that name that is not STRICT)
        if row[5] not in ("put", "delete") or type(row[0]) is not int or type(row[1]) is not str \
                or type(row[2]) is not str:
            raise CorruptStore("damaged change log: a change kvlite never writes (the file is damaged "
                               "or was not written by kvlite)")
    return rows
