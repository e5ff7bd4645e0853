"""Commands that inspect and maintain a whole file: ``collections``, ``stats``, ``purge`` and
``vacuum``.

``collections`` and ``stats`` read the list of collections and every collection on it in one
snapshot (``store.snapshot()``), with a frozen clock: while another process drops and creates
collections they show the store as it was at one instant.  They never decode a value, so a
collection whose serializer this process does not know is counted too.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..errors import InvalidCollectionName, NotSupported
from ..store import Store
from .common import CliError, Subparsers, add_command, file_arg, file_size, open_file
from .text import printable, shown_name

__all__ = ["setup_collections", "setup_purge", "setup_stats", "setup_vacuum"]


def _collection_rows(store: Store) -> list[tuple[str, int, int, str]]:
    """``(name, live entries, expired entries not yet purged, serializer)`` of every collection,
    oldest first.  Call it inside ``store.snapshot()``: the list and every collection on it are
    then read at once, and a collection's table that is missing is a damaged file
    (:class:`~kvlite.errors.CorruptStore`), never a collection dropped meanwhile."""
    rows = []
    for name in store.collections():
        try:
            coll = store.existing_collection(name, decode=False)
        except InvalidCollectionName as exc:
            raise CliError(f"{store.path}: damaged registry: collection {name!r}: {exc}") from None
        if coll is not None:  # always, in one snapshot
            stats = coll.stats()
            rows.append((name, stats["rows"], stats["expired_pending"], stats["serializer"]))
    return rows


def setup_collections(sub: Subparsers) -> None:
    p = add_command(sub, "collections", "list collections with their counts and serializer",
                    handler=_run_collections,
                    description="One line per collection, oldest first: name, live entries, expired entries "
                                "not yet purged, serializer.")
    file_arg(p)


def _run_collections(args: argparse.Namespace) -> int:
    started = time.time()  # every entry judged live or expired at one instant
    with open_file(args.file, write=False, clock=lambda: started) as store, store.snapshot():
        rows = [(shown_name(name), live, expired, printable(serializer))
                for name, live, expired, serializer in _collection_rows(store)]
    header = ("COLLECTION", "ENTRIES", "EXPIRED", "SERIALIZER")
    width = max([len(header[0])] + [len(r[0]) for r in rows])
    lines = [f"{header[0]:<{width}}  {header[1]:>8}  {header[2]:>8}  {header[3]}"]
    lines += [f"{name:<{width}}  {live:>8}  {expired:>8}  {ser}" for name, live, expired, ser in rows]
    print("\n".join(lines))
    return 0


def setup_stats(sub: Subparsers) -> None:
    p = add_command(sub, "stats", "show file size, schema version and totals (another engine: its facts)",
                    handler=_run_stats)
    file_arg(p)


def _run_stats(args: argparse.Namespace) -> int:
    started = time.time()  # every entry judged live or expired at one instant
    with open_file(args.file, write=False, clock=lambda: started) as store, store.snapshot():
        try:
            info: dict[str, Any] = store.info()
        except NotSupported:  # a server store: no file facts
            info = {}
        rows = _collection_rows(store)
    live = sum(row[1] for row in rows)
    expired = sum(row[2] for row in rows)
    if "schema_version" in info:  # an SQLite file
        made = "" if info["created_by"] is None else f" (created by kvlite {printable(str(info['created_by']))})"
        facts = [
            f"file:            {printable(args.file)}",
            f"size:            {info['size']:,} bytes (+ {info['wal_size']:,} bytes of WAL)",
            f"schema version:  {info['schema_version']}{made}",
            f"pages:           {info['pages']:,} of {info['page_size']:,} bytes ({info['free_pages']:,} free)",
            f"journal mode:    {printable(str(info['journal_mode']))}",
        ]
    else:  # another engine: what its info() reports, as it names it
        facts = [f"store:           {printable(args.file)}"] + [
            f"{(name.replace('_', ' ') + ':'):<17}{value:,}" if type(value) is int else
            f"{(name.replace('_', ' ') + ':'):<17}{printable(str(value))}"
            for name, value in info.items() if name != "path"]
    print("\n".join([
        *facts,
        f"collections:     {len(rows)}",
        f"entries:         {live:,} live, {expired:,} expired (not yet purged)",
    ]))
    return 0


def setup_purge(sub: Subparsers) -> None:
    p = add_command(sub, "purge", "delete expired entries now", handler=_run_purge,
                    description="Delete the expired entries of every collection (reads never see them anyway).")
    file_arg(p)


def _run_purge(args: argparse.Namespace) -> int:
    with open_file(args.file, write=True) as store:
        purged = store.purge_expired()
    print(f"purged {purged} expired {'entry' if purged == 1 else 'entries'}")
    return 0


def setup_vacuum(sub: Subparsers) -> None:
    p = add_command(sub, "vacuum", "compact the file (SQLite VACUUM)", handler=_run_vacuum,
                    description="Rebuild the file without free pages and fold the WAL into it. "
                                "Needs free disk space about the size of the file.")
    file_arg(p)


def _run_vacuum(args: argparse.Namespace) -> int:
    before = file_size(args.file) + file_size(args.file + "-wal")
    with open_file(args.file, write=True) as store:
        store.vacuum()
    after = file_size(args.file) + file_size(args.file + "-wal")
    print(f"vacuumed {printable(args.file)}: {before:,} -> {after:,} bytes")
    return 0
