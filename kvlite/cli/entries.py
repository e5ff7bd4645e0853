"""Commands that read and write entries: ``get``, ``put``, ``delete``, ``keys``, ``export``,
``import`` and ``copy``.

Values on the command line and in JSON Lines are JSON; only ``json`` and ``jsonb``
collections have their values read or written.  ``keys`` and ``delete`` never decode a
value, so they work on any collection, even one whose serializer this process does not
know.  Keys in JSON output are JSON: a ``str`` key is a JSON string, other keys carry a
type tag (``{"int": 5}``, see :func:`kvlite.keys.to_json`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson

from .. import keys as _keys
from ..collection import Collection
from ..copy import copy
from ..errors import KvliteError, QuerySyntaxError, SerializationError
from ..keys import Key
from ..query import rfc9535
from .common import (
    CliError,
    Subparsers,
    UsageError,
    add_command,
    file_arg,
    into_new_or_existing,
    key_args,
    non_negative_int,
    open_collection,
    open_file,
    parse_key,
    positive_seconds,
)
from .text import (
    Progress,
    json_line,
    loads_json,
    record_line,
    shown_name,
    stdout,
    write_out,
)

__all__ = ["setup_copy", "setup_delete", "setup_export", "setup_get", "setup_import", "setup_keys", "setup_put"]

_MISSING: Any = object()

# -- get / put / delete / keys -------------------------------------------------------------


def setup_get(sub: Subparsers) -> None:
    p = add_command(sub, "get", "print the value of one key as JSON",
                    handler=_run_get,
                    description="Print the value stored under KEY as one line of JSON. "
                                "Exit code 1 when the key is missing or expired.")
    file_arg(p)
    key_args(p)


def _run_get(args: argparse.Namespace) -> int:
    key = parse_key(args.key, args)
    with open_file(args.file, write=False) as store:
        value = open_collection(store, args.collection, values=True).get(key, _MISSING)
    if value is _MISSING:
        raise CliError(f"no key {key!r} in collection {args.collection!r}")
    write_out(json_line(value))
    return 0


def setup_put(sub: Subparsers) -> None:
    p = add_command(sub, "put", "store a JSON value under a key",
                    handler=_run_put,
                    description="Store the JSON value under KEY, replacing any previous value and TTL. "
                                "Creates the file and the collection (as a JSON collection) when missing.",
                    stdout=False)
    file_arg(p)
    key_args(p)
    p.add_argument("json", metavar="JSON", help="the value, as JSON text (quote it for the shell)")
    p.add_argument("--ttl", type=positive_seconds, metavar="S", help="expire after S seconds")


def _run_put(args: argparse.Namespace) -> int:
    key = parse_key(args.key, args)
    try:
        value = loads_json(args.json.encode("utf-8"))
    except SerializationError:
        raise  # well-formed JSON the json serializer cannot hold, as in the Python API: exit 1
    except ValueError as exc:
        raise UsageError(f"JSON: {exc}") from None

    def put_into(target: str) -> None:
        with open_file(target, write=True, create=True, shown=args.file) as store:
            with store.transaction():  # a refused value does not leave a new, empty collection behind
                open_collection(store, args.collection, values=True, create=True).put(key, value, ttl=args.ttl)

    into_new_or_existing(args.file, put_into)
    return 0


def setup_delete(sub: Subparsers) -> None:
    p = add_command(sub, "delete", "delete one key",
                    handler=_run_delete,
                    description="Delete KEY. Exit code 1 when there was no such (live) key.", stdout=False)
    file_arg(p)
    key_args(p)


def _run_delete(args: argparse.Namespace) -> int:
    key = parse_key(args.key, args)
    with open_file(args.file, write=True) as store:
        deleted = open_collection(store, args.collection, values=False).delete(key)
    if not deleted:
        raise CliError(f"no key {key!r} in collection {args.collection!r}")
    return 0


def setup_keys(sub: Subparsers) -> None:
    p = add_command(sub, "keys", "list the keys of a collection",
                    handler=_run_keys,
                    description="Print every live key, in insertion order, one JSON value per line "
                                "(str keys as JSON strings, other types tagged: {\"int\": 5}).")
    file_arg(p)
    p.add_argument("collection", metavar="COLL", help="collection name")
    p.add_argument("--limit", type=non_negative_int, metavar="N", help="print at most N keys")


def _run_keys(args: argparse.Namespace) -> int:
    with open_file(args.file, write=False) as store:
        keys: Iterator[Key] = open_collection(store, args.collection, values=False).keys()
        if args.limit is not None:
            keys = itertools.islice(keys, args.limit)
        out = stdout()
        for key in keys:
            out.write(json_line(_keys.to_json(key)))
    return 0


# -- export / import ------------------------------------------------------------------------


def setup_export(sub: Subparsers) -> None:
    p = add_command(sub, "export", "write entries as JSON Lines to stdout", handler=_run_export,
                    description="Write one JSON object per live entry to stdout: "
                                '{"collection": ..., "key": ..., "value": ..., "ttl": seconds left or null}. '
                                "Keys other than str are tagged ({\"int\": 5}). One read snapshot, streamed: "
                                "memory does not grow with the store. Every exported collection must use the "
                                "json serializer.")
    file_arg(p)
    p.add_argument("collection", metavar="COLL", nargs="?", help="only this collection (default: all)")


def _run_export(args: argparse.Namespace) -> int:
    started = time.time()
    # A frozen clock: every entry is judged live/expired, and its TTL measured, at one instant.
    # One snapshot for the registry, every collection it names and every page of them: a
    # collection dropped before it began is not exported, one dropped meanwhile is, as it was.
    with open_file(args.file, write=False, clock=lambda: started) as store, store.snapshot():
        names = [args.collection] if args.collection is not None else store.collections()
        collections = [open_collection(store, name, values=True) for name in names]  # all checked first
        out = stdout()
        progress = Progress("exported")
        for coll in collections:
            collection = (b'"collection"', coll.name)
            for chunk in _chunks(coll.items(), 500):
                ttls = coll.ttl_many([key for key, _ in chunk])
                for (key, value), ttl in zip(chunk, ttls):
                    out.write(record_line(collection, (b'"key"', _keys.to_json(key)), (b'"value"', value),
                                          (b'"ttl"', ttl)))
                    progress.step()
        out.flush()
        progress.done()
    return 0


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while True:
        chunk = list(itertools.islice(items, size))
        if not chunk:
            return
        yield chunk


_IMPORT_FIELDS = {"collection", "key", "value", "ttl"}


def setup_import(sub: Subparsers) -> None:
    p = add_command(sub, "import", "read JSON Lines from stdin into a collection", handler=_run_import,
                    description="Read lines like those 'kvlite export' writes from stdin and store them, "
                                "all in one transaction: a bad line stores nothing. With COLL every entry goes "
                                "into COLL; without it each line names its collection. 'ttl' (seconds, optional) "
                                "counts from the moment of import. With --key PATH, stdin holds plain JSON "
                                "records instead (JSON Lines, one object per line, or one JSON array of objects, "
                                "read whole): each record is stored whole in COLL under the key found at PATH in "
                                "it (a later record with the same key replaces an earlier one). Creates the file "
                                "and JSON collections when missing. Holds the write lock until it ends: other "
                                "writers wait (up to their busy timeout) for the whole import.",
                    stdout=False, stdin=True)
    file_arg(p)
    p.add_argument("collection", metavar="COLL", nargs="?",
                   help="store every entry here (default: each line's \"collection\"; required with --key)")
    p.add_argument("--key", metavar="PATH",
                   help="stdin holds plain JSON records; each one's key is at PATH, a JSONPath singular "
                        "query such as $.id or $.user.name (its value: a string, a number or true/false)")
    p.add_argument("--ttl", type=positive_seconds, metavar="S",
                   help="with --key: every record expires S seconds after the import")


def _run_import(args: argparse.Namespace) -> int:
    key_path = _key_path(args)  # before anything is read or created
    progress = Progress("imported")

    def import_again(temp: str, target: str, written: dict[str, int]) -> dict[str, int]:
        _import_store(temp, target, args.file)
        return written

    written = into_new_or_existing(args.file, lambda target: _import_lines(target, args, key_path, progress),
                                   again=import_again)
    progress.done()
    total = sum(written.values())
    where = ", ".join(f"{n} into {name!r}" for name, n in written.items()) or "nothing"
    sys.stderr.write(f"imported {total} {'entry' if total == 1 else 'entries'}: {where}\n")
    return 0


def _key_path(args: argparse.Namespace) -> list[str | int] | None:
    """The member names and indexes of ``--key PATH`` (``None`` without it); a usage error for
    a PATH that is not a singular query, or for options that need --key or COLL."""
    if args.key is None:
        if args.ttl is not None:
            raise UsageError("--ttl needs --key: kvlite's own lines carry their own \"ttl\"")
        return None
    if args.collection is None:
        raise UsageError("--key needs COLL, the collection the records go into")
    try:
        parts = rfc9535.field_path(rfc9535.parse(args.key))
    except QuerySyntaxError as exc:
        raise UsageError(f"--key: {exc}") from None
    if parts is None:
        raise UsageError(f"--key {args.key!r} is not a singular query of member names and indexes, such as "
                         "$.id or $.user.name (no wildcards, filters, slices or descendants)")
    if not parts:
        raise UsageError(f"--key {args.key!r} is the whole record, an object; name a member, such as $.id")
    return parts


def _import_lines(target: str, args: argparse.Namespace, key_path: list[str | int] | None,
                  progress: Progress) -> dict[str, int]:
    """Store the lines (or, with ``key_path``, the records) of stdin in ``target``, in one
    transaction; ``{collection: entries}``."""
    written: dict[str, int] = {}
    with open_file(target, write=True, create=True, shown=args.file) as store:
        collections: dict[str, Collection] = {}
        with store.transaction():
            for where, raw in _stdin_items(sys.stdin.buffer, arrays=key_path is not None):
                try:
                    if key_path is None:
                        name, key, value, ttl = _parse_import_line(raw, args.collection)
                    else:
                        name, ttl = args.collection, args.ttl
                        value = loads_json(raw) if isinstance(raw, bytes) else raw
                        key = _record_key(value, key_path, args.key)
                    coll = collections.get(name)
                    if coll is None:
                        coll = collections[name] = open_collection(store, name, values=True, create=True)
                    coll.put(key, value, ttl=ttl)
                except (ValueError, CliError, KvliteError) as exc:
                    raise CliError(f"stdin {where}: {exc}; nothing was imported") from None
                written[name] = written.get(name, 0) + 1
                progress.step()
    return written


def _stdin_items(stream: Any, *, arrays: bool) -> Iterator[tuple[str, Any]]:
    """``(where, item)`` for each non-blank line of ``stream``, streamed (``item``: the line's
    bytes, ``where``: ``line N``).  With ``arrays``, input whose first non-blank byte is ``[``
    is one JSON array instead: it is read whole and each element given as the value it is
    (``where``: ``element $[i]``)."""
    first = True
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        if first and arrays and line.lstrip().startswith(b"["):
            yield from _array_items(line + stream.read())
            return
        first = False
        yield f"line {number}", line


def _array_items(data: bytes) -> Iterator[tuple[str, Any]]:
    try:
        items = loads_json(data)
    except (ValueError, SerializationError) as exc:
        raise CliError(f"stdin: a JSON array of records expected: {exc}; nothing was imported") from None
    for index, item in enumerate(items):  # a list: the text starts with "[" and is JSON
        yield f"element $[{index}]", item


def _record_key(record: Any, parts: list[str | int], path: str) -> Key:
    """The key of a plain JSON record: its value at ``path`` (whose names and indexes are
    ``parts``); ``ValueError`` when the record has nothing there or something that is no key."""
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, not {_json_kind(record)}")
    node: Any = record
    for part in parts:  # a name selects in an object only, an index in an array only (RFC 9535)
        if isinstance(part, str):
            found = isinstance(node, dict) and part in node
        else:
            found = isinstance(node, list) and -len(node) <= part < len(node)
        if not found:
            raise ValueError(f"the record has no {path} (the key of each record)")
        node = node[part]
    if node is None or isinstance(node, (dict, list)):
        raise ValueError(f"{path} is {_json_kind(node)}, not a key (a string, a number, true or false)")
    return node  # type: ignore[no-any-return]


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    return "a string" if isinstance(value, str) else "a number"


def _import_store(source_path: str, target: str, shown: str) -> None:
    """Import what an import built in the new store ``source_path`` into the store ``target``
    (which another process created meanwhile), as importing the same lines into it would:
    in one transaction, into its existing collections (``json``/``jsonb`` only) or new
    ``json`` ones, every entry with the same expiry time."""
    started = time.time()

    def frozen() -> float:  # both sides measure TTLs at one instant: expiry times are kept
        return started

    with open_file(source_path, write=False, clock=frozen, shown=shown) as source, \
            open_file(target, write=True, create=True, clock=frozen, shown=shown) as store:
        with store.transaction():
            for name in source.collections():
                try:
                    coll = open_collection(store, name, values=True, create=True)
                    entries = open_collection(source, name, values=True)
                    for chunk in _chunks(entries.items(), 500):
                        ttls = entries.ttl_many([key for key, _ in chunk])
                        for (key, value), ttl in zip(chunk, ttls):
                            coll.put(key, value, ttl=ttl)
                except (CliError, KvliteError) as exc:
                    raise CliError(f"{shown} (created by another process meanwhile): {exc}; "
                                   "nothing was imported") from None


def _parse_import_line(line: bytes, collection: str | None) -> tuple[str, Key, Any, float | None]:
    """``(collection, key, value, ttl)`` from one JSON Lines record; ``ValueError`` if malformed."""
    record = loads_json(line)
    if not isinstance(record, dict):
        raise ValueError("each line must be a JSON object with \"key\" and \"value\"")
    unknown = sorted(set(record) - _IMPORT_FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (known: collection, key, value, ttl)")
    if "key" not in record or "value" not in record:
        raise ValueError("each line needs a \"key\" and a \"value\"")
    name = collection if collection is not None else record.get("collection")
    if not isinstance(name, str):
        raise ValueError("no collection: give COLL or a \"collection\" string on every line")
    ttl = record.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
        raise ValueError(f"\"ttl\" must be a number of seconds or null, not {orjson.dumps(ttl).decode()}")
    return name, _keys.from_json(record["key"]), record["value"], ttl


# -- copy ------------------------------------------------------------------------------------------


def setup_copy(sub: Subparsers) -> None:
    p = add_command(sub, "copy", "copy every collection, value and TTL from one store to another",
                    handler=_run_copy,
                    description="Copy SRC to DST (files or store URLs: memory://, postgresql://..., redis://...), "
                                "optionally re-encoding with another serializer. All-or-nothing when DST "
                                "supports transactions, else resumable (re-run it).")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--serializer", help="serializer for the copied collections (default: keep each one's)")
    p.add_argument("--collection", action="append", dest="collections", metavar="COLL",
                   help="copy only this collection (repeatable)")
    p.add_argument("--trust-pickle", action="store_true", help="allow reading pickle collections from SRC")


def _run_copy(args: argparse.Namespace) -> int:
    if "://" not in args.src and not os.path.exists(args.src):
        raise CliError(f"no such file: {args.src!r}")

    def copy_into(target: str) -> dict[str, int]:
        return copy(args.src, target, serializer=args.serializer, collections=args.collections,
                    trust_pickle=args.trust_pickle)

    counts = into_new_or_existing(args.dst, copy_into)
    for name, count in counts.items():
        print(f"{shown_name(name)}: {count} {'entry' if count == 1 else 'entries'}")
    return 0
