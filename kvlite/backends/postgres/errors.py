"""psycopg and pool errors as kvlite errors, and a batch write that fails cleanly.

:func:`translate` maps one error, :func:`translated` is the ``with`` block
every statement of the engine runs in, and :func:`executemany` sends a batch
in a pipeline that ends without psycopg logging anything when a row fails.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolClosed, PoolTimeout

from ...errors import (
    CollectionDropped,
    KvliteError,
    ReadOnlyError,
    SerializationError,
    StoreClosed,
    StoreFull,
    StoreLocked,
    TransactionLost,
)

__all__ = ["translate", "translated", "executemany", "DB_ERRORS"]

#: What a statement, the pool or a connection may raise (and :func:`translated` translates).
DB_ERRORS = (psycopg.Error, PoolClosed, PoolTimeout)


def translate(exc: BaseException) -> BaseException:
    """The :mod:`kvlite.errors` exception for a psycopg / pool error (or ``exc`` itself)."""
    if isinstance(exc, PoolClosed):
        return StoreClosed("the store is closed")
    if isinstance(exc, PoolTimeout):
        return StoreLocked(f"no PostgreSQL connection became free within the timeout: {exc}")
    if isinstance(exc, (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected)):
        return StoreLocked(f"a PostgreSQL lock was not granted within the timeout: {exc}")
    if isinstance(exc, pg_errors.SerializationFailure):
        return StoreLocked("another client changed a row this transaction also writes; the transaction "
                           f"was rolled back, retry it: {exc}")
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return ReadOnlyError(f"the store cannot be written: {exc}")
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return ReadOnlyError(f"the PostgreSQL user may not do this: {exc}")
    if isinstance(exc, (pg_errors.DiskFull, pg_errors.OutOfMemory)):
        return StoreFull(f"the PostgreSQL server is full; nothing was written: {exc}")
    if isinstance(exc, pg_errors.InFailedSqlTransaction):
        return TransactionLost("PostgreSQL aborted this transaction after an earlier error inside the block "
                               f"(caught by the code in it); nothing of the block is committed: {exc}")
    if isinstance(exc, pg_errors.UndefinedTable):
        return CollectionDropped("the collection was dropped (by this or another client): "
                                 f"{exc.diag.message_primary or exc}")
    if isinstance(exc, (pg_errors.ProgramLimitExceeded, pg_errors.DataError)):
        return SerializationError(f"PostgreSQL refused the data: {exc}")
    if isinstance(exc, psycopg.Error):
        return KvliteError(f"PostgreSQL error: {exc}")
    return exc


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """A block whose psycopg and pool errors are raised as kvlite errors (the original as ``__cause__``)."""
    try:
        yield
    except DB_ERRORS as exc:
        raise translate(exc) from exc


def executemany(conn: psycopg.Connection[Any], sql: str, rows: list[dict[str, Any]]) -> None:
    """``executemany(sql, rows)`` in a pipeline that ends cleanly when a row fails; the first
    error is then raised (a psycopg error, for :func:`translated`).

    psycopg sends the rows of ``executemany()`` in pipeline mode.  When one fails (the collection
    was dropped by another client, a lock timed out, PostgreSQL refused a value), the rows already
    sent after it come back "aborted"; a pipeline left by that error (psycopg's own, in
    ``executemany()``) cannot sync them, and psycopg logs "error ignored terminating
    <psycopg.Pipeline ...>: pipeline aborted" on its logger, which a program that configured no
    logging prints to stderr.  Here the pipeline is this function's: after a failure it is synced
    inside its block (collecting the aborted results), so it is left without an error to report.
    """
    failure: psycopg.Error | None = None
    try:
        with conn.pipeline() as pipeline, conn.cursor() as cur:
            try:
                cur.executemany(sql, rows)  # rides this pipeline instead of opening its own
            except psycopg.Error as exc:
                failure = exc
                for _ in range(3):  # normally once: the results up to this sync, all aborted
                    try:
                        pipeline.sync()
                        break
                    except pg_errors.PipelineAborted:
                        continue
                    except psycopg.Error:
                        break  # the connection itself failed: the pool discards it
    except psycopg.Error:
        if failure is None:  # an error reported when the pipeline ends (the rows' own, then)
            raise
        # else: ending the pipeline failed too, after the row's error: that is the one to raise
    if failure is not None:
        raise failure
