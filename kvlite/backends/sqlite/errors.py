"""What SQLite raises, as kvlite errors: the one place apsw's exceptions are translated."""

from __future__ import annotations

import apsw

from ...errors import (
    CollectionDropped,
    CorruptStore,
    InvalidKey,
    KvliteError,
    ReadOnlyError,
    SerializationError,
    StoreClosed,
    StoreFull,
    StoreLocked,
)

__all__ = ["DB_ERRORS", "STATEMENT_ERRORS", "translate_error", "needs_wal_index"]

#: What reading rows can raise besides kvlite errors: apsw's errors, and
#: ``UnicodeDecodeError`` when a TEXT column holds invalid UTF-8 (only a damaged
#: or hostile file does).  Catch these around reads and pass them to :func:`translate_error`.
DB_ERRORS = (apsw.Error, UnicodeDecodeError)
#: What a statement that binds a key can raise: also a ``str`` key that is not valid Unicode
#: (a lone surrogate cannot be encoded to UTF-8 for SQLite), which is an ``InvalidKey``.
STATEMENT_ERRORS = (*DB_ERRORS, UnicodeEncodeError)

#: The table a table object made in a rolled-back block is pointed at: it never exists.
ROLLED_BACK_TABLE = '"kvlite_rolled_back"'


def translate_error(exc: Exception) -> Exception:
    """The :mod:`kvlite.errors` exception for an apsw error, a ``UnicodeDecodeError`` from a
    read or a ``UnicodeEncodeError`` from binding a key (any other exception is returned as it is)."""
    if isinstance(exc, UnicodeEncodeError):
        return InvalidKey(f"str key is not valid Unicode text: {exc}")
    if isinstance(exc, UnicodeDecodeError):
        return CorruptStore(f"the file holds text that is not valid UTF-8 (damaged, or not written by kvlite): {exc}")
    if isinstance(exc, (apsw.BusyError, apsw.LockedError)):
        return StoreLocked(f"the store is locked by another connection (busy timeout expired): {exc}")
    if isinstance(exc, apsw.ReadOnlyError):
        return ReadOnlyError(f"the store cannot be written: {exc}")
    if isinstance(exc, (apsw.CorruptError, apsw.NotADBError)):
        return CorruptStore(f"the file is damaged or not a database: {exc}")
    if isinstance(exc, apsw.FullError):
        return StoreFull(f"the disk or the store's size limit is full; nothing was written: {exc}")
    if isinstance(exc, apsw.TooBigError):
        return SerializationError(f"value or key too large for SQLite: {exc}")
    if isinstance(exc, (apsw.ConnectionClosedError, apsw.CursorClosedError)):
        return StoreClosed("the store is closed")
    if isinstance(exc, apsw.SQLError) and "malformed JSON" in str(exc):
        # SQLite's JSON functions met a stored value that is not JSON text / JSONB: kvlite only
        # stores what its serializer produced, so the file was damaged or written by something else.
        return CorruptStore(f"a stored value is not valid JSON (the file is damaged, or was not written "
                            f"by kvlite): {exc}")
    if isinstance(exc, apsw.SQLError) and "no such table: kvlite_rolled_back" in str(exc):
        return CollectionDropped("the collection was created inside a transaction() block that rolled "
                                 "back, so it does not exist; store.collection(name) makes it again")
    if isinstance(exc, apsw.SQLError) and "no such table" in str(exc):
        return CollectionDropped(f"the collection was dropped (by this or another connection): {exc}")
    if isinstance(exc, apsw.Error):
        # Anything else from SQLite (e.g. a trigger in a hostile file raising, or refused
        # load_extension()) still reaches the user as a kvlite error; the cause is chained.
        return KvliteError(f"SQLite error: {exc}")
    return exc


def needs_wal_index(exc: BaseException) -> bool:
    """True when ``exc`` comes from SQLite being unable to create a WAL file's ``-shm`` index
    (``SQLITE_READONLY_DIRECTORY`` / ``_CANTINIT``, or ``SQLITE_CANTOPEN`` when a ``-wal`` file
    exists: a WAL store in a folder this process cannot write)."""
    cause = exc.__cause__
    if isinstance(cause, apsw.CantOpenError):
        return True
    return isinstance(cause, apsw.ReadOnlyError) and getattr(cause, "extendedresult", None) in (
        apsw.SQLITE_READONLY_DIRECTORY, apsw.SQLITE_READONLY_CANTINIT)
