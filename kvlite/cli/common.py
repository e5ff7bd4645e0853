"""What every command group of the command line shares.

* Errors: :class:`CliError` (exit code 1) and :class:`UsageError` (exit code 2).
* Adding a command: :func:`add_command`, :func:`file_arg`, :func:`key_args`.
* Arguments: :func:`parse_key` (a KEY under ``--int-key``, ``--bytes-key``, ...),
  :func:`positive_seconds`, :func:`non_negative_int`.
* Stores: :func:`open_file` (read-only unless the command writes), :func:`into_new_or_existing`
  (a new file is built under a temporary name and published only when the command
  succeeded), :func:`open_collection` (an existing collection, its values read only when it uses
  ``json`` or ``jsonb``).

Only kvlite's public API is used: ``kvlite.open``, ``Store``, ``Collection``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .. import keys as _keys
from .. import open as open_store
from ..collection import Collection
from ..errors import KvliteError
from ..keys import Key
from ..names import validate_collection_name
from ..store import Store
from .text import loads_json

__all__ = [
    "CliError",
    "Handler",
    "Subparsers",
    "UsageError",
    "add_command",
    "file_arg",
    "file_size",
    "into_new_or_existing",
    "key_args",
    "non_negative_int",
    "open_collection",
    "open_file",
    "parse_key",
    "positive_seconds",
]


class CliError(Exception):
    """An error the command line reports as one line on stderr, exit code 1."""

    exit_code = 1


class UsageError(CliError):
    """Bad command-line arguments: one line on stderr, exit code 2."""

    exit_code = 2


# -- adding a command -------------------------------------------------------------------

#: A command's handler: ``handler(args) -> exit code``.
Handler = Callable[[argparse.Namespace], int]
#: What ``ArgumentParser.add_subparsers()`` returns (``argparse._SubParsersAction``, which is private).
Subparsers = Any


def add_command(sub: Subparsers, name: str, summary: str, handler: Handler, *,
                description: str | None = None, stdout: bool = True,
                stdin: bool = False) -> argparse.ArgumentParser:
    """Add subcommand ``name``, run by ``handler``.  ``stdout``: it prints its result (so a
    closed stdout is an error before it does anything); ``stdin``: it reads its input from stdin."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=description or summary)
    parser.set_defaults(handler=handler, needs_stdout=stdout, needs_stdin=stdin)
    return parser


def file_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the kvlite store (an SQLite file)")


def key_args(parser: argparse.ArgumentParser) -> None:
    """``COLL KEY`` and the flags that say KEY's type (read back by :func:`parse_key`)."""
    parser.add_argument("collection", metavar="COLL", help="collection name")
    parser.add_argument("key", metavar="KEY", help="the key: a string unless a --X-key flag says otherwise "
                                                   "(a KEY starting with '-' goes after '--')")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--int-key", dest="key_type", action="store_const", const="int",
                      help="KEY is an integer (7, -7)")
    kind.add_argument("--bytes-key", dest="key_type", action="store_const", const="bytes",
                      help="KEY is bytes, written in hex (00ff)")
    kind.add_argument("--float-key", dest="key_type", action="store_const", const="float",
                      help="KEY is a float (2.5, -0.0, inf)")
    kind.add_argument("--bool-key", dest="key_type", action="store_const", const="bool",
                      help="KEY is a bool (true or false)")
    kind.add_argument("--json-key", dest="key_type", action="store_const", const="json",
                      help="KEY is written as 'keys' prints it ('\"u1\"', '{\"float\": \"2.5\"}')")


# -- arguments --------------------------------------------------------------------------

# Typed keys on the command line: each --X-key flag, its pattern (the whole text must match) and
# what it means.  Strict on purpose: int(" 7"), int("1_000") and int("٣") all succeed in Python.
_INT_KEY = re.compile(r"-?[0-9]+")
_HEX_KEY = re.compile(r"(?:[0-9A-Fa-f]{2})*")
_FLOAT_KEY = re.compile(r"[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|inf|infinity)",
                        re.ASCII | re.IGNORECASE)
_KEY_TYPES = {
    "int": "an integer (-?[0-9]+)",
    "bytes": "hex digit pairs, like 00ff",
    "float": "a float as 'keys' prints it (1.5, -0.0, 1e-300, inf, -inf)",
    "bool": "true or false",
    "json": "a key as 'keys' prints it (\"s\", {\"int\": 5}, {\"bytes\": \"00ff\"}, ...)",
}


def parse_key(text: str, args: argparse.Namespace) -> Key:
    """The key a command-line KEY means under ``--int-key``, ``--bytes-key``, ... (``str`` without)."""
    kind = getattr(args, "key_type", None)
    if kind is None:
        return text
    if kind == "int" and _INT_KEY.fullmatch(text):
        return int(text)
    if kind == "bytes" and _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    if kind == "float" and _FLOAT_KEY.fullmatch(text):
        return float(text)
    if kind == "bool" and text in ("true", "false"):
        return text == "true"
    if kind == "json":
        try:
            return _keys.from_json(loads_json(text.encode("utf-8")))
        except ValueError as exc:
            raise UsageError(f"--json-key: {exc}") from None
    raise UsageError(f"--{kind}-key: {text!r} is not {_KEY_TYPES[kind]}")


def positive_seconds(text: str) -> float:
    """An argparse ``type``: a TTL in seconds (a positive, finite number)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: a TTL must be a positive, finite number of seconds")
    return value


def non_negative_int(text: str) -> int:
    """An argparse ``type``: an integer, 0 or more."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


# -- stores -----------------------------------------------------------------------------


def open_file(path: str, *, write: bool, create: bool = False,
              clock: Callable[[], float] = time.time, shown: str | None = None) -> Store:
    """Open the store at ``path``, a file or a store URL (``lmdb://``, ``postgresql://``, ...):
    read-only unless ``write``; a file must exist unless ``create`` (a URL's store is opened as
    :func:`kvlite.open` opens it: read-only, an LMDB folder that does not exist is refused).

    ``shown``: the name used in error messages (default ``path``; the user's FILE when
    ``path`` is the temporary file a new store is built in)."""
    shown = path if shown is None else shown
    if "://" not in path:
        if not create and not os.path.exists(path):
            raise CliError(f"no such file: {shown!r}")
        if os.path.isdir(path):
            raise CliError(f"{shown!r} is a directory, not a kvlite file")
    try:
        return open_store(path, readonly=not write, clock=clock)
    except KvliteError as exc:
        raise CliError(f"{shown}: {exc}") from None


def file_size(path: str) -> int:
    """Bytes of the file ``path`` (0 when there is none)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


_T = TypeVar("_T")
_COMPANIONS = ("-wal", "-shm", "-journal")


def into_new_or_existing(path: str, write: Callable[[str], _T],
                         again: Callable[[str, str, _T], _T] | None = None) -> _T:
    """Run ``write(target)``, a command that writes the store ``path`` and creates it when it
    is missing, so that a file another process may have opened is never removed.

    When ``path`` exists (or is a URL or ``:memory:``), ``write(path)`` writes it directly.
    Otherwise the new store is built by ``write(temp)`` in a temporary file of the same
    folder, ``.NAME.<random>.tmp``, which no other process knows; ``write`` closes it (so its
    WAL is folded in).  Only when it succeeded is it published under ``path`` with a move
    that never replaces a file (a hard link, then the temporary name is removed).  If
    ``path`` appeared meanwhile (another process created it), the command is applied to that
    file instead: ``again(temp, path, result of write(temp))`` (default: ``write(path)`` once
    more; ``import``, whose input is read, copies the entries it built in ``temp``).  On
    failure only the temporary file and its ``-wal``/``-shm`` are removed: a failed command
    leaves no file behind, and ``path`` is only ever written by kvlite, never deleted.
    """
    if "://" in path or path == ":memory:" or os.path.lexists(path):
        return write(path)
    temp = _temp_beside(path)
    try:
        result = write(temp)
        if file_size(temp + "-wal") > 0:  # closing did not fold the WAL into the file: publish nothing
            raise CliError(f"{path}: the new store's write-ahead log could not be folded into it; "
                           "nothing was created")
        if _publish(temp, path):
            return result
        return again(temp, path, result) if again is not None else write(path)
    finally:
        for suffix in ("", *_COMPANIONS):
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp + suffix)


def _temp_beside(path: str) -> str:
    """A new, empty file of this process only, next to ``path`` (``.NAME.<random>.tmp``), created
    with the permissions SQLite gives a new database file (0644 less the umask)."""
    folder, name = os.path.split(path)
    if not os.path.isdir(folder or "."):
        raise CliError(f"{path}: cannot create the store: folder {os.path.abspath(folder)!r} does not exist")
    while True:
        temp = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            continue
        except OSError as exc:
            raise CliError(f"{path}: cannot create the store: {exc.strerror or exc}") from None
        return temp


def _publish(temp: str, path: str) -> bool:
    """Give the finished store ``temp`` the name ``path`` unless ``path`` exists; ``True`` when
    it did.  ``False`` when ``path`` appeared meanwhile (it is left as it is), or when the file
    system has no hard links (the command is then applied to ``path`` directly)."""
    try:
        os.link(temp, path)  # atomic, and fails instead of replacing an existing file
    except OSError:  # FileExistsError: it appeared meanwhile; any other: no hard links here
        return False
    return True


#: Serializers whose values are JSON: the command line reads and writes values of these only.
VALUE_SERIALIZERS = ("json", "jsonb")


def open_collection(store: Store, name: str, *, values: bool, create: bool = False) -> Collection:
    """The collection ``name``.

    ``values``: the command reads or writes values, so the collection must use
    the ``json`` or ``jsonb`` serializer.  Without it the values are never
    decoded, so any serializer is accepted, even one this process does not know
    (``Store.existing_collection(name, decode=False)``).
    ``create``: make a missing collection (as a ``json`` one) instead of failing.
    """
    validate_collection_name(name)
    with store.snapshot():  # the registry row and the table it names, read together
        recorded = store.serializer_of(name)
        if recorded is not None and not values:
            found = store.existing_collection(name, decode=False)
            if found is not None:  # always, in this snapshot
                return found
        elif recorded is not None:
            if recorded not in VALUE_SERIALIZERS:
                raise CliError(
                    f"collection {name!r} uses the {recorded!r} serializer; the command line reads and "
                    "writes values of 'json' and 'jsonb' collections only")
            return store.collection(name, serializer=recorded)
    if not create:
        raise CliError(f"no collection named {name!r} in {store.path!r}")
    return store.collection(name, serializer="json")
