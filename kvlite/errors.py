"""Every exception a kvlite user can meet.

All of them derive from :class:`KvliteError`.  A few also derive from the
built-in exception a Python programmer would expect in the same situation
(``InvalidKey`` is a ``TypeError``, ``InvalidTTL`` a ``ValueError``), so code
written for ``dict`` keeps working.  The dict view raises plain ``KeyError``
wherever ``dict`` does.
"""

from __future__ import annotations

__all__ = [
    "KvliteError",
    "StoreClosed",
    "StoreLocked",
    "StoreFull",
    "TransactionLost",
    "CorruptStore",
    "IncompatibleVersion",
    "ReadOnlyError",
    "InvalidKey",
    "InvalidTTL",
    "InvalidValue",
    "InvalidRange",
    "InvalidCollectionName",
    "SerializationError",
    "SerializerMismatch",
    "UnknownSerializer",
    "QueryError",
    "QuerySyntaxError",
    "QueryEvaluationError",
    "NotSupported",
    "ValidationError",
    "UnsafeSerializer",
    "CollectionNotFound",
    "CollectionDropped",
    "ChangesTruncated",
    "InvalidBackupTarget",
]


class KvliteError(Exception):
    """Base class of every kvlite error."""


class StoreClosed(KvliteError):
    """The store was closed; open it again to use it."""


class StoreLocked(KvliteError):
    """Another connection held the write lock for longer than the busy timeout."""


class StoreFull(KvliteError):
    """The disk (or the configured ``max_page_count``) is full; nothing was written."""


class TransactionLost(KvliteError):
    """SQLite rolled a ``transaction()`` block back after an error inside it (for example
    :class:`StoreFull`) that the block's code caught: nothing of the block is committed, and
    every later write in it, and the end of the block, raise this."""


class CorruptStore(KvliteError):
    """The file is not an SQLite database, not a kvlite store, or is damaged."""


class IncompatibleVersion(KvliteError):
    """The file was written by a newer kvlite whose schema this version does not know."""


class ReadOnlyError(KvliteError):
    """A write was attempted on a store opened read-only, or on a file that cannot be written."""


class InvalidKey(KvliteError, TypeError):
    """The key's type (or size) cannot be stored.

    Supported key types are ``str``, ``bytes``, ``int`` (64-bit), ``float``
    (not NaN) and ``bool``.
    """


class InvalidTTL(KvliteError, ValueError):
    """A TTL that is not a positive, finite number of seconds."""


class InvalidValue(KvliteError, TypeError):
    """A value of the wrong kind for the operation; nothing was changed.

    Raised by :meth:`~kvlite.Collection.incr` when the stored value (or the member its ``path``
    names) is not a number (``bool`` is not one), when a member on the way to it is not a JSON
    object, when ``delta`` or ``default`` is not an ``int``/``float`` (or not finite), and when
    the result cannot be stored exactly (an ``int`` beyond 64 bits, a float that overflows).
    A ``TypeError`` too, as Python's own ``1 + "a"`` is.
    """


class InvalidRange(KvliteError, ValueError):
    """A key range that cannot be read: ``start`` after ``stop``, or bounds of different kinds
    (see :meth:`~kvlite.Collection.keys`); nothing is read."""


class InvalidCollectionName(KvliteError, ValueError):
    """A collection name that is empty, too long, or not valid text."""


class SerializationError(KvliteError, ValueError):
    """A value the collection's serializer cannot encode (nothing was written),
    or stored bytes it cannot decode."""


class SerializerMismatch(KvliteError):
    """The collection was written with a different serializer than the one asked for."""

    def __init__(self, collection: str, stored: str, requested: str) -> None:
        super().__init__(
            f"collection {collection!r} was written with serializer {stored!r}, "
            f"but was opened with serializer {requested!r}; "
            f"open it with serializer={stored!r}"
        )
        self.collection = collection
        self.stored = stored
        self.requested = requested


class UnknownSerializer(KvliteError, ValueError):
    """No serializer is registered under that name (or its optional package is missing)."""


class QueryError(KvliteError, ValueError):
    """A query kvlite cannot answer: it does not parse (:class:`QuerySyntaxError`) or its engine
    fails while evaluating it (:class:`QueryEvaluationError`).  ``path`` and ``engine`` say which."""

    def __init__(self, message: str, *, path: str = "", engine: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.engine = engine


class QuerySyntaxError(QueryError):
    """A JSONPath or ObjectPath expression that does not parse.

    ``position`` is the 0-based offset in ``path`` where parsing failed, when
    the engine reports one (else ``None``).
    """

    def __init__(self, message: str, *, path: str = "", engine: str = "", position: int | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"invalid {engine or 'query'} path {path!r}{where}: {message}", path=path, engine=engine)
        self.position = position


class QueryEvaluationError(QueryError):
    """A path that parsed, whose engine failed while evaluating it on the stored documents
    (``sorted`` over values of mixed types, a regular expression that does not compile, an
    ObjectPath function that does not exist, ``parent`` of the root).  Nothing was changed."""

    def __init__(self, message: str, *, path: str = "", engine: str = "") -> None:
        super().__init__(f"{engine or 'the query engine'} could not evaluate {path!r}: {message}",
                         path=path, engine=engine)


class NotSupported(KvliteError):
    """The operation cannot be given its guarantees on this store or collection."""


class ValidationError(KvliteError, ValueError):
    """A value that does not validate into the collection's model (nothing was written)."""


class UnsafeSerializer(KvliteError):
    """Reading the data would unpickle it (which runs code) and the caller did not allow that."""


class CollectionNotFound(KvliteError, KeyError):
    """A collection that was asked for by name does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CollectionDropped(KvliteError):
    """The collection behind a :class:`~kvlite.Collection` object was dropped (by this or another
    store or process) after the object was made; ``store.collection(name)`` gives the current one."""


class ChangesTruncated(KvliteError):
    """``Store.changes(since=...)`` was asked for changes older than the log still keeps (see the
    retention in ``docs/changes-and-backup.md``): the follower must resync from the collections,
    then follow from :meth:`~kvlite.Store.last_change_seq`.  ``since`` is what was asked,
    ``oldest`` the seq up to which changes were trimmed."""

    def __init__(self, message: str, *, since: int = 0, oldest: int = 0) -> None:
        super().__init__(message)
        self.since = since
        self.oldest = oldest


class InvalidBackupTarget(KvliteError, ValueError):
    """A ``Store.backup()`` destination that cannot be written: its folder does not exist, or it is
    the store's own file.  Nothing was written."""
