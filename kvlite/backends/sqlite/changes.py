"""The change log of an SQLite store: what ``Store.changes()`` reads.

Two tables, made the first time a collection turns its log on (a store that
never does has neither)::

    kvlite_changes       seq (the rowid: strictly increasing), collection (the collection's
                         registry id), key, key_type, op (1 put, 0 delete), at (unix time)
    kvlite_change_state  id (the collection's registry id, never reused), name, serializer,
                         enabled, keep (changes kept), max_age (seconds), trimmed (the last seq
                         trimmed from its log), counted (its changes in the log)

Changes are recorded by triggers on the collection's table, so every writer
of the file records them -- every thread, every process, whatever options it
opened the collection with -- in the transaction of the write itself: a change
exists exactly when its write committed, and ``seq`` follows commit order
(SQLite has one writer at a time).  A trigger inserts one row and nothing else
(no lookup, no secondary index, no copy of the value): the log costs one small
row per write.  A put's value is read from the collection when the change is
read: the key's value *then* (the latest), as CouchDB's feed gives the current
document.

``seq`` is never reused: it is the rowid, which SQLite makes one more than the
largest in the table, and trimming never deletes the newest row of the log.
Retention: each collection keeps its last ``keep`` changes and those younger
than ``max_age`` seconds (on the system clock, as ``at`` is); older ones are
trimmed by ``purge_expired()`` and every 1024 writes through a collection
object, reading only the rows added since the last trim and the rows it
deletes.  A read ``since`` a seq older than what a collection's log still
holds raises :class:`~kvlite.errors.ChangesTruncated`.
"""

from __future__ import annotations

import time
from typing import Any

import apsw

from ...errors import ChangesTruncated, CorruptStore
from .errors import DB_ERRORS, translate_error

__all__ = ["enable", "disable", "page", "last_seq", "trim", "check_since", "before_drop", "enabled"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kvlite_changes (
    seq        INTEGER PRIMARY KEY,
    collection INTEGER NOT NULL,
    key        ANY NOT NULL,
    key_type   INTEGER NOT NULL,
    op         INTEGER NOT NULL,
    at         REAL NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS kvlite_change_state (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    serializer TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    keep       INTEGER NOT NULL,
    max_age    REAL NOT NULL,
    trimmed    INTEGER NOT NULL DEFAULT 0,
    counted    INTEGER NOT NULL DEFAULT 0
) STRICT;
"""

#: kvlite_meta's key for the seq up to which kvlite_change_state.counted has counted.
_COUNTED = "changes_counted_upto"
#: kvlite_meta's key for the first seq of a per-collection file's log (see :func:`enable`).
_ORIGIN = "changes_origin"
#: The newest row of the log, which no trim deletes (so its seq is never given out again).
_NEWEST = "(SELECT max(seq) FROM kvlite_changes)"


def _has_log(conn: apsw.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'kvlite_changes'").fetchone()
    return bool(row[0])


def _triggers(table_id: int) -> list[str]:
    """The statements that make collection ``table_id``'s triggers."""
    t, n = f'"kv_{table_id:d}"', f"{table_id:d}"
    now = "unixepoch('subsec')"
    put = (f"INSERT INTO kvlite_changes(collection, key, key_type, op, at) "
           f"VALUES ({n}, new.key, new.key_type, 1, {now});")
    return [
        f'CREATE TRIGGER IF NOT EXISTS "kv_{n}_log_insert" AFTER INSERT ON {t} BEGIN {put} END',
        f'CREATE TRIGGER IF NOT EXISTS "kv_{n}_log_update" AFTER UPDATE ON {t} BEGIN {put} END',
        f'CREATE TRIGGER IF NOT EXISTS "kv_{n}_log_delete" AFTER DELETE ON {t} BEGIN '
        f"INSERT INTO kvlite_changes(collection, key, key_type, op, at) "
        f"VALUES ({n}, old.key, old.key_type, 0, {now}); END",
    ]


def enabled(conn: apsw.Connection, table_id: int) -> bool:
    """Whether collection ``table_id`` records its changes."""
    row = conn.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name = ?",
                       (f"kv_{table_id:d}_log_insert",)).fetchone()
    return bool(row[0])


def enable(conn: apsw.Connection, name: str, table_id: int, serializer: str, keep: int, max_age: float,
           origin: bool = False) -> None:
    """Turn collection ``name``'s log on (or change its retention); inside a write transaction.

    With ``origin`` (a per-collection file, whose collection may be dropped and made again as a
    new file), a new log starts its seqs at the current time in microseconds, past every seq the
    collection's earlier files gave out, and remembers it: a follower asking from a seq before it
    (of an earlier file) gets :class:`ChangesTruncated`."""
    new_log = not _has_log(conn)
    conn.execute(_SCHEMA)
    if new_log and origin:
        start = int(time.time() * 1_000_000)
        # A row of no collection (the readers' join drops it; no trim deletes it) holds the start.
        conn.execute("INSERT INTO kvlite_changes(seq, collection, key, key_type, op, at) VALUES (?, 0, '', 0, 0, ?)",
                     (start, time.time()))
        conn.execute("INSERT INTO kvlite_meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                     "SET value = excluded.value", (_ORIGIN, start))
    for statement in _triggers(table_id):
        conn.execute(statement)
    conn.execute("INSERT INTO kvlite_change_state(id, name, serializer, enabled, keep, max_age) "
                 "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (id) DO UPDATE SET enabled = 1, keep = excluded.keep, "
                 "max_age = excluded.max_age", (table_id, name, serializer, keep, max_age))


def disable(conn: apsw.Connection, table_id: int) -> None:
    """Turn collection ``table_id``'s log off and drop what it holds (a follower asking for it from
    before now gets :class:`ChangesTruncated`); inside a write transaction."""
    for suffix in ("insert", "update", "delete"):
        conn.execute(f'DROP TRIGGER IF EXISTS "kv_{table_id:d}_log_{suffix}"')
    if _has_log(conn):
        _count(conn)
        _trim_to(conn, table_id, _last(conn))
        conn.execute("UPDATE kvlite_change_state SET enabled = 0, trimmed = max(trimmed, ?) WHERE id = ?",
                     (_last(conn), table_id))


def before_drop(conn: apsw.Connection, table_id: int) -> None:
    """Before collection ``table_id``'s table is dropped: when it records changes, every entry is
    deleted first, so a follower sees each removal."""
    if enabled(conn, table_id):
        conn.execute(f'DELETE FROM "kv_{table_id:d}"')
        conn.execute("UPDATE kvlite_change_state SET enabled = 0 WHERE id = ?", (table_id,))


def _last(conn: apsw.Connection) -> int:
    return int(conn.execute(f"SELECT coalesce({_NEWEST}, 0)").fetchone()[0])


def last_seq(conn: apsw.Connection) -> int:
    """The seq of the newest change recorded (0: none)."""
    try:
        return _last(conn) if _has_log(conn) else 0
    except DB_ERRORS as exc:
        raise translate_error(exc) from exc


def _count(conn: apsw.Connection) -> None:
    """Add the changes logged since the last count to each collection's ``counted``."""
    row = conn.execute("SELECT value FROM kvlite_meta WHERE key = ?", (_COUNTED,)).fetchone()
    upto = row[0] if row is not None and type(row[0]) is int else 0
    newest = _last(conn)
    if newest <= upto:
        return
    for collection, added in conn.execute("SELECT collection, count(*) FROM kvlite_changes WHERE seq > ? "
                                          "GROUP BY collection", (upto,)).fetchall():
        conn.execute("UPDATE kvlite_change_state SET counted = counted + ? WHERE id = ?", (added, collection))
    conn.execute("INSERT INTO kvlite_meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                 "SET value = excluded.value", (_COUNTED, newest))


def _trim_to(conn: apsw.Connection, table_id: int, upto: int) -> int:
    """Delete collection ``table_id``'s changes up to seq ``upto`` (never the log's newest row) and
    remember it: how many went."""
    conn.execute(f"DELETE FROM kvlite_changes WHERE seq <= ? AND collection = ? AND seq < {_NEWEST}",
                 (upto, table_id))
    gone = int(conn.changes())
    conn.execute("UPDATE kvlite_change_state SET trimmed = max(trimmed, ?), counted = max(counted - ?, 0) "
                 "WHERE id = ?", (upto, gone, table_id))
    return gone


def trim(conn: apsw.Connection, now: float, only: int | None = None) -> int:
    """Trim every log (or collection ``only``'s, by registry id) to its retention: how many
    changes went.  Reads the rows logged since the last trim, and from the oldest row on only
    as far as it deletes (plus the other collections' rows in between)."""
    if not _has_log(conn):
        return 0
    _count(conn)
    sql = "SELECT id, keep, max_age, counted FROM kvlite_change_state WHERE counted > 0"
    rows = conn.execute(sql + (" AND id = ?" if only is not None else ""),
                        (only,) if only is not None else ()).fetchall()
    gone = 0
    for table_id, keep, max_age, counted in rows:
        upto = 0
        if counted > keep:  # the oldest counted - keep of its changes
            found = conn.execute("SELECT seq FROM kvlite_changes WHERE collection = ? ORDER BY seq "
                                 "LIMIT 1 OFFSET ?", (table_id, counted - keep - 1)).fetchone()
            upto = found[0] if found else 0
        # The first change young enough to keep: every one before it is older (``at`` grows with
        # ``seq``, as far as the system clock does).
        young = conn.execute("SELECT seq FROM kvlite_changes WHERE at >= ? ORDER BY seq LIMIT 1",
                             (now - max_age,)).fetchone()
        older = conn.execute("SELECT max(seq) FROM kvlite_changes WHERE collection = ? AND seq < ?",
                             (table_id, young[0] if young else _last(conn) + 1)).fetchone()[0]
        upto = max(upto, older or 0)
        if upto:
            gone += _trim_to(conn, table_id, upto)
    return gone


def check_since(conn: apsw.Connection, since: int, names: list[str] | None) -> None:
    """Raise :class:`ChangesTruncated` when a wanted collection's log no longer holds every change
    after ``since``."""
    if not _has_log(conn):
        return
    origin = conn.execute("SELECT value FROM kvlite_meta WHERE key = ?", (_ORIGIN,)).fetchone()
    if origin is not None and type(origin[0]) is int and 0 < since < origin[0]:
        raise ChangesTruncated(f"this collection's log began at seq {origin[0]} (its file was made anew: the "
                               f"collection was dropped and created again); since={since} is from before: "
                               "resync", since=since, oldest=origin[0])
    sql = "SELECT name, trimmed FROM kvlite_change_state WHERE trimmed > ?"
    params: list[Any] = [since]
    if names is not None:
        sql += f" AND name IN ({', '.join('?' for _ in names)})"
        params += names
    row = conn.execute(sql + " ORDER BY trimmed DESC LIMIT 1", params).fetchone()
    if row is not None:
        raise ChangesTruncated(f"changes of {row[0]!r} up to seq {row[1]} are no longer kept (retention); "
                               f"since={since} is older: resync from the collection, then follow from "
                               "Store.last_change_seq()", since=since, oldest=int(row[1]))


def page(conn: apsw.Connection, since: int, names: list[str] | None, limit: int) -> list[tuple[Any, ...]]:
    """Up to ``limit`` changes after ``since``: ``(seq, collection name, serializer, key, key_type,
    op, registry id)`` in seq order (``op`` as ``"put"``/``"delete"``)."""
    if not _has_log(conn):
        return []
    sql = ("SELECT c.seq, s.name, s.serializer, c.key, c.key_type, c.op, c.collection FROM kvlite_changes AS c "
           "JOIN kvlite_change_state AS s ON s.id = c.collection WHERE c.seq > ?")
    params: list[Any] = [since]
    if names is not None:
        sql += f" AND s.name IN ({', '.join('?' for _ in names)})"
        params += names
    rows = conn.execute(sql + " ORDER BY c.seq LIMIT ?", [*params, limit]).fetchall()
    out = []
    for seq, name, serializer, key, key_type, op, table_id in rows:
        # (a hostile file may hold tables of these names that are not kvlite's STRICT ones)
        if op not in (0, 1) or type(seq) is not int or type(name) is not str or type(serializer) is not str:
            raise CorruptStore("damaged change log: a change kvlite never writes (the file is damaged "
                               "or was not written by kvlite)")
        out.append((seq, name, serializer, key, key_type, "put" if op == 1 else "delete", table_id))
    return out
