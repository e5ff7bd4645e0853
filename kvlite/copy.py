"""``kvlite.copy(src, dst)``: every collection, value and remaining TTL from one store to another.

Either side is a store URL / path (opened and closed here) or an open store
of any kind (SQLite file, ``:memory:``, ``memory://``, folder, PostgreSQL,
Redis).  Values are decoded with the source collection's recorded serializer
and re-encoded with ``serializer=`` (default: the same one), so copying is
also how a collection changes serializer.

Atomicity: when the destination supports transactions (SQLite stores and
``memory://``) the whole copy is one transaction — all of it lands or none.
Otherwise every batch is atomic and the copy is *resumable*: running it
again rewrites the same keys with the same values, so an interrupted copy is
finished by re-running it.

Safety: a source collection recorded as ``pickle`` (or ``pickle+...``) is
only read when ``trust_pickle=True``: loading a pickle runs code.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import Any, Callable, Iterator

from .collection import MISSING
from .errors import CollectionNotFound, NotSupported, UnsafeSerializer

__all__ = ["copy"]

Progress = Callable[[str, int], None]


def _open(target: Any, **options: Any) -> tuple[Any, bool]:
    if isinstance(target, (str, os.PathLike)):
        from .store import open as open_store

        if os.path.isdir(target):  # an existing folder is a per-collection store
            options["layout"] = "per-collection"
        return open_store(target, **options), True
    return target, False


def _terminal_progress(collection: str, done: int) -> None:
    sys.stderr.write(f"\rcopying {collection}: {done:,} entries")
    sys.stderr.flush()


def copy(src: Any, dst: Any, *, serializer: str | None = None, collections: list[str] | None = None,
         trust_pickle: bool = False, batch: int = 1000, progress: Progress | bool | None = None,
         layout: str = "single") -> dict[str, int]:
    """Copy collections from ``src`` to ``dst``; returns ``{collection: entries copied}``.

    :param serializer: serializer for the destination collections (default:
        each source collection's own).
    :param collections: names to copy (default: all).
    :param trust_pickle: allow reading pickle collections from ``src``.
    :param progress: a callback ``(collection, entries so far)``, ``True`` for
        a counter on stderr, or ``None`` for one only when stderr is a terminal.
    :param layout: the destination layout when ``dst`` is a path.
    :raises UnsafeSerializer: a source collection uses pickle and ``trust_pickle`` is false.
    """
    if batch < 1:
        raise ValueError("batch must be >= 1")
    if progress is None:
        progress = sys.stderr.isatty()
    report: Progress | None = _terminal_progress if progress is True else (progress or None)  # type: ignore[assignment]
    source, close_source = _open(src, readonly=True)
    target, close_target = _open(dst, layout=layout)
    try:
        # Everything is read in one snapshot of the source where its engine has them: a
        # collection dropped before the copy began is not copied, one dropped meanwhile is
        # copied as it was.
        with source.snapshot():
            counts = _copy_all(source, target, serializer, collections, trust_pickle, batch, report)
        if report is _terminal_progress:
            sys.stderr.write("\n")
        return counts
    finally:
        if close_source:
            source.close()
        if close_target:
            target.close()


def _copy_all(source: Any, target: Any, serializer: str | None, collections: list[str] | None,
              trust_pickle: bool, batch: int, report: Progress | None) -> dict[str, int]:
    names = source.collections() if collections is None else list(collections)
    plan = []
    for name in names:
        stored = source.serializer_of(name)
        if stored is None:
            if collections is None:
                continue  # listed, then dropped (an engine without snapshots): not there to copy
            raise CollectionNotFound(f"no collection {name!r} in the source store")
        if stored.split("+")[0] == "pickle" and not trust_pickle:
            raise UnsafeSerializer(
                f"collection {name!r} is stored with {stored!r}; reading it runs code from the file. "
                "Pass trust_pickle=True (--trust-pickle) if you trust the source")
        plan.append((name, stored))
    try:
        atomic = target.transaction()
        atomic.__enter__()
    except NotSupported:
        atomic = None
    counts: dict[str, int] = {}
    try:
        for name, stored in plan:
            counts[name] = _copy_collection(source.collection(name, serializer=stored),
                                            target.collection(name, serializer=serializer or stored),
                                            batch, report)
    except BaseException:
        if atomic is not None:
            atomic.__exit__(*sys.exc_info())
        raise
    if atomic is not None:
        atomic.__exit__(None, None, None)
    return counts


def _batches(iterator: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while True:
        chunk = list(itertools.islice(iterator, size))
        if not chunk:
            return
        yield chunk


def _copy_collection(source: Any, target: Any, batch: int, report: Progress | None) -> int:
    done = 0
    for keys in _batches(source.keys(), batch):
        # TTLs first, then the values: an entry that expires between the two reads is skipped
        # (get_many gives MISSING) instead of being copied as one that never expires.
        ttls = source.ttl_many(keys)
        values = source.get_many(keys, default=MISSING)
        chunk = [(key, value) for key, value in zip(keys, values)]
        # Entries go in source order (it is the collection's order): runs of entries without a
        # TTL as one put_many each, entries with one (each its own remaining TTL) one by one.
        run: list[tuple[Any, Any]] = []
        for (key, value), ttl in zip(chunk, ttls):
            if value is MISSING:
                continue
            if ttl is None:
                run.append((key, value))
                continue
            if run:
                target.put_many(run)
                run = []
            if ttl > 0:
                target.put(key, value, ttl=ttl)
        if run:
            target.put_many(run)
        done += len(keys)
        if report is not None:
            report(source.name, done)
    return done

