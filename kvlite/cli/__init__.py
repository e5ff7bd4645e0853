"""The ``kvlite`` command line (also ``python -m kvlite``).

Every subcommand is one ``@subcommand`` function that adds its parser with
:func:`_add` and names a handler ``handler(args) -> exit code``.  Adding a
subcommand is one such function plus its handler; nothing else changes.

Conventions:

* Exit codes (:data:`EXIT_CODES`): 0 success, 1 error (missing file, collection
  or key, bad input data, a value or key the store refuses, any kvlite error),
  2 usage error (the command line itself is wrong: unknown option, an argument
  that does not parse -- JSON, JSONPath/ObjectPath, a typed key -- or options
  that contradict each other), 130 interrupted, 141 the reader of stdout went
  away.  Every error is ONE line on stderr, ``kvlite: error: ...``, never a
  traceback (``KVLITE_TRACEBACK=1`` shows one for an unexpected error).
* Keys on the command line are ``str`` unless ``--int-key``, ``--bytes-key``
  (hex), ``--float-key``, ``--bool-key`` or ``--json-key`` (the form
  ``keys`` prints) says otherwise.
* Values on the command line and in JSON Lines are JSON.  Only collections
  that use the ``json`` or ``jsonb`` serializer have their values read or
  written by the command line; the others can still be listed, counted, have
  keys listed and deleted, and be purged, even when this process does not
  know their serializer.
* Keys in JSON output (``keys``, ``export``) are JSON: a ``str`` key is a
  JSON string; other keys carry a type tag so they come back exactly:
  ``{"int": 5}``, ``{"bytes": "00ff"}`` (hex), ``{"float": "1.5"}`` (Python
  ``repr``), ``{"bool": true}`` (see :func:`key_to_json`).
* Commands that only read open the file read-only and never change it.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import re
import secrets
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import apsw
import orjson

from .. import keys as _keys
from .. import open as open_store
from ..collection import Collection, table_sql_name
from ..errors import CorruptStore, KvliteError, QuerySyntaxError, SerializationError
from ..keys import Key
from ..serializers import stand_in
from ..version import __version__
from ..names import validate_collection_name
from ..store import DB_ERRORS, Store, translate_error

__all__ = ["EXIT_CODES", "CliError", "UsageError", "build_parser", "loads_json", "main"]

PROG = "kvlite"

#: Every exit code of the command line (docs/cli.md shows the same table).
EXIT_CODES = {
    0: "success",
    1: "an error: missing file, collection or key; not a kvlite file; bad input data; "
       "a value or key the store refuses; a closed stdin/stdout; any other kvlite error",
    2: "a usage error: the command line is wrong (unknown command or option, a missing argument, "
       "an argument that does not parse, contradicting options)",
    130: "interrupted (Ctrl-C)",
    141: "the reader of stdout went away (a broken pipe, as in `kvlite export ... | head -1`)",
}


class CliError(Exception):
    """An error the command line reports as one line on stderr, exit code 1."""

    exit_code = 1


class UsageError(CliError):
    """Bad command-line arguments: one line on stderr, exit code 2."""

    exit_code = 2


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors become :class:`UsageError` (one line, exit 2)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        if message.startswith("argument --order-by: expected one argument"):
            message += " (a path starting with '-' needs the = form: --order-by=-$.age)"
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- keys in JSON --------------------------------------------------------------------

# -- JSON in ----------------------------------------------------------------------------

# A run of 19 or more digits: the only place an integer orjson would turn into a float
# (it keeps -2**63 .. 2**64-1 as int and silently parses any other integer as a float).
# Found by mapping digits to "1" and everything else to "0" (two C loops over the line,
# about 5x faster than the regular expression [0-9]{19}).
_DIGIT_MAP = bytes(0x31 if 0x30 <= byte <= 0x39 else 0x30 for byte in range(256))
_DIGIT_RUN = b"1" * 19


def _has_long_digit_run(data: bytes) -> bool:
    return _DIGIT_RUN in data.translate(_DIGIT_MAP)


def loads_json(data: bytes) -> Any:
    """The value of JSON text, exactly.

    orjson parses it (fast, strict); but orjson reads an integer beyond 64 bits
    as a float, which would store ``99999999999999999999999`` as ``1e+23``.
    Text with a run of 19 or more digits is therefore parsed again by Python's
    ``json`` module, which keeps such integers exact, so that the ``json``
    serializer refuses them (:class:`~kvlite.errors.SerializationError`) as it
    does in the Python API.  Raises ``ValueError`` for anything that is not
    valid UTF-8 JSON text, with a message naming the problem.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise ValueError(f"not UTF-8 text: byte {bad.start + 1} (0x{data[bad.start]:02x}) is not valid "
                             "UTF-8; kvlite reads JSON as UTF-8") from None
        if _has_long_digit_run(data):  # an integer too long even for a double?
            try:
                return _exact_json(text)
            except SerializationError:
                raise
            except ValueError:
                pass  # not JSON for Python either: orjson's message says why
        raise ValueError(f"not valid JSON ({exc})") from None
    if not _has_long_digit_run(data):
        return value
    return _exact_json(data.decode("utf-8"))


def _exact_json(text: str) -> Any:
    """``text`` parsed by Python's ``json``: integers exact, NaN/Infinity and non-finite floats
    refused (``ValueError``) as orjson refuses them."""
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # more than sys.get_int_max_str_digits() digits
            raise SerializationError("json cannot encode a value of type int: an integer of thousands "
                                     "of digits (it holds 64-bit integers)") from None
        raise


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number is infinity when parsed as double: {text[:20]}...")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not valid JSON")


# -- text out ----------------------------------------------------------------------------

_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _escape_char(ch: str) -> str:
    """``ch`` as a JSON escape (``\\n``, ``\\u001b``, a surrogate pair beyond the BMP)."""
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    code = ord(ch)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every character that is not printable (control characters, line and
    paragraph separators, format characters such as bidi overrides, lone surrogates)
    replaced by its JSON escape, so it cannot move the cursor, draw extra lines or send a
    terminal escape sequence."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape_char(ch) for ch in text)


def shown_name(name: str) -> str:
    """A collection name for a table on a terminal: as it is when it is plainly printable,
    else as a JSON string (quoted, with ``printable``'s escapes, ``\\"`` and ``\\\\``),
    so that every name reads back unambiguously and none can draw fake rows."""
    if name.isprintable() and name == name.strip() and not (set(name) & {'"', "\\"}):
        return name
    return '"' + printable(name.replace("\\", "\\\\").replace('"', '\\"')) + '"'


# -- helpers --------------------------------------------------------------------------


def _open(path: str, *, write: bool, create: bool = False,
          clock: Callable[[], float] = time.time, shown: str | None = None) -> Store:
    """Open the store at ``path``: read-only unless ``write``; it must exist unless ``create``.

    ``shown``: the name used in error messages (default ``path``; the user's FILE when
    ``path`` is the temporary file a new store is built in)."""
    shown = path if shown is None else shown
    if not create and not os.path.exists(path):
        raise CliError(f"no such file: {shown!r}")
    if os.path.isdir(path):
        raise CliError(f"{shown!r} is a directory, not a kvlite file")
    try:
        return open_store(path, readonly=not write, clock=clock)
    except KvliteError as exc:
        raise CliError(f"{shown}: {exc}") from None


_T = TypeVar("_T")
_COMPANIONS = ("-wal", "-shm", "-journal")


def _into_new_or_existing(path: str, write: Callable[[str], _T],
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
    more; ``import``, whose input is read, copies the entries it built in ``temp``).  On failure only the temporary
    file and its ``-wal``/``-shm`` are removed: a failed command leaves no file behind, and
    ``path`` is only ever written by kvlite, never deleted.
    """
    if "://" in path or path == ":memory:" or os.path.lexists(path):
        return write(path)
    temp = _temp_beside(path)
    try:
        result = write(temp)
        if _size(temp + "-wal") > 0:  # closing did not fold the WAL into the file: publish nothing
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


def _sql(store: Store, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one SQL statement on ``store``'s connection (for inspection commands).

    The inspection commands read kvlite's own tables and the tables the registry names, in
    one snapshot (``store.snapshot()``): a missing one means a damaged file, or one that is not
    a kvlite store (:class:`CorruptStore`), never a collection another process dropped."""
    try:
        return store._conn().execute(sql, params).fetchall()
    except apsw.SQLError as exc:
        if "no such table" in str(exc):
            raise CorruptStore(f"{store.path}: damaged kvlite file, or not a kvlite store: {exc} "
                               "(a table kvlite needs is missing)") from exc
        raise translate_error(exc) from exc
    except DB_ERRORS as exc:
        raise translate_error(exc) from exc


def _registry(store: Store) -> list[tuple[str, int, str]]:
    """``(name, table id, serializer)`` of every collection, oldest first."""
    return [(r[0], r[1], r[2]) for r in
            _sql(store, "SELECT name, id, serializer FROM kvlite_collections ORDER BY id")]


def _counts(store: Store, table_id: int, now: float) -> tuple[int, int]:
    """``(live, expired but not yet purged)`` entries of a collection's table."""
    table = table_sql_name(table_id)
    row = _sql(store, f"SELECT count(*) FILTER (WHERE expires_at IS NULL OR expires_at > ?1), "
                      f"count(*) FILTER (WHERE expires_at <= ?1) FROM {table}", (now,))[0]
    return row[0], row[1]


_VALUE_SERIALIZERS = ("json", "jsonb")  # whose values are JSON: the command line reads and writes them


def _collection(store: Store, name: str, *, values: bool, create: bool = False) -> Collection:
    """The collection ``name``.

    ``values``: the command reads or writes values, so the collection must use
    the ``json`` or ``jsonb`` serializer.  Without it the values are never
    decoded, so any serializer is accepted, even one this process does not know
    (a stand-in carrying the recorded name opens it, as ``Store.stats()`` does).
    ``create``: make a missing collection (as a ``json`` one) instead of failing.
    """
    validate_collection_name(name)
    with store.snapshot():  # the registry row and the table it names, read together
        conn = store._conn()
        row = store._registry_row(conn, name)
        if row is not None:
            table_id, serializer = row
            if not values:
                store._check_table(conn, name, table_id)
                return Collection(store, name, table_id, stand_in(serializer))
            if serializer not in _VALUE_SERIALIZERS:
                raise CliError(
                    f"collection {name!r} uses the {serializer!r} serializer; the command line reads and "
                    "writes values of 'json' and 'jsonb' collections only")
            return store.collection(name, serializer=serializer)
    if not create:
        raise CliError(f"no collection named {name!r} in {store.path!r}")
    return store.collection(name, serializer="json")


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


def _key(text: str, args: argparse.Namespace) -> Key:
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


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: a TTL must be a positive, finite number of seconds")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


_MISSING: Any = object()


def _stdout() -> Any:
    """``sys.stdout``'s binary buffer, flushed of text first (main checked that it is open)."""
    sys.stdout.flush()
    return sys.stdout.buffer


def _write_out(data: bytes) -> None:
    _stdout().write(data)


def _json(obj: Any) -> bytes:
    """Compact JSON of ``obj``.  orjson writes integers up to 64 bits and nests up to its
    depth limit; anything beyond either (an ``int`` key that equals a float, such as
    ``2**64``; a value nested deeper than orjson goes) is written exactly by Python's ``json``."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc) and "Recursion limit" not in str(exc):
            raise
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _json_line(obj: Any) -> bytes:
    """One line of JSON: :func:`_json` of ``obj`` and a newline."""
    return _json(obj) + b"\n"


def _record_line(*fields: tuple[bytes, Any]) -> bytes:
    """One JSON Lines object ``{"name": value, ...}`` whose values are serialized one by one and
    spliced in: the record adds a level of nesting to the text only, never to a value being
    serialized, so every value that can be written on its own (every value ``put()`` accepts)
    can be written in a record too.  ``fields`` are ``(b'"name"', value)``."""
    return b"{" + b",".join(name + b":" + _json(value) for name, value in fields) + b"}\n"


class _Progress:
    """A count on stderr, redrawn every ``every`` items, only when stderr is a terminal."""

    def __init__(self, what: str, every: int = 10_000) -> None:
        self.what = what
        self.every = every
        self.count = 0
        self.shown = False
        self.enabled = sys.stderr.isatty()

    def step(self) -> None:
        self.count += 1
        if self.enabled and self.count % self.every == 0:
            sys.stderr.write(f"\r{self.what}: {self.count:,}")
            sys.stderr.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


# -- the parser --------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace], int]
_Subparsers = Any  # argparse._SubParsersAction, which is private
_SETUPS: list[Callable[[_Subparsers], None]] = []


def subcommand(setup: Callable[[_Subparsers], None]) -> Callable[[_Subparsers], None]:
    """Register ``setup(subparsers)``, which adds one subcommand with :func:`_add`.

    Subcommands appear in ``kvlite --help`` in registration order.
    """
    _SETUPS.append(setup)
    return setup


def _add(sub: _Subparsers, name: str, summary: str, handler: Handler, *,
         description: str | None = None, stdout: bool = True, stdin: bool = False) -> argparse.ArgumentParser:
    """Add subcommand ``name``.  ``stdout``: it prints its result (so a closed stdout is an
    error before it does anything); ``stdin``: it reads its input from stdin."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=description or summary)
    parser.set_defaults(handler=handler, needs_stdout=stdout, needs_stdin=stdin)
    return parser


def _file_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the kvlite store (an SQLite file)")


def _key_args(parser: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    """The ``kvlite`` argument parser with every registered subcommand."""
    parser = _Parser(
        prog=PROG,
        description="Inspect, edit, export and import kvlite stores, or run the demo.",
        epilog="Run 'kvlite COMMAND --help' for one command's options. Exit codes: 0 success, 1 error, "
               "2 usage error, 130 interrupted, 141 stdout's reader went away.",
    )
    parser.add_argument("--version", action="version", version=f"kvlite {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for setup in _SETUPS:
        setup(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see :data:`EXIT_CODES`)."""
    _guard_std_streams()
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, --version: printed; flush here so a closed pipe is caught
            _flush_stdout()
            return exc.code if isinstance(exc.code, int) else 0
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:
            raise UsageError("a COMMAND is required (see 'kvlite --help')")
        _check_text_arguments(args)
        if args.needs_stdout and sys.stdout is None:
            raise CliError("stdout is closed; nothing was done (this command prints its result there)")
        if args.needs_stdin and sys.stdin is None:
            raise CliError("stdin is closed; nothing was done (this command reads its input from it)")
        code = handler(args)
        _flush_stdout()  # here, so a closed pipe is handled below and not at exit
        return code
    except CliError as exc:
        return _fail(str(exc), exc.exit_code)
    except QuerySyntaxError as exc:  # the PATH argument does not parse: a usage error, like bad JSON
        return _fail(str(exc), 2)
    except KvliteError as exc:
        return _fail(str(exc), 1)
    except apsw.Error as exc:
        return _fail(f"SQLite: {exc}", 1)
    except BrokenPipeError:
        # The reader went away (e.g. `kvlite export ... | head`): stop quietly, like a shell would.
        _discard_stdout()
        return 141
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}" + (f": {exc.filename!r}" if exc.filename else ""), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except RecursionError:
        return _fail("the input is nested too deeply to be processed", 1)
    except Exception as exc:  # a bug: still one line (KVLITE_TRACEBACK=1 shows the traceback)
        if os.environ.get("KVLITE_TRACEBACK"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (a bug in kvlite: please report it; "
                     "KVLITE_TRACEBACK=1 shows where)", 1)


def _guard_std_streams() -> None:
    """Put /dev/null on any of the file descriptors 0, 1, 2 that is closed.

    Python then leaves ``sys.stdin``/``sys.stdout``/``sys.stderr`` at ``None``
    (which :func:`main` checks for stdin and stdout); without this, the store
    file opened next would get descriptor 1 or 2, and anything written to it
    there would land in the database.  A closed stderr just discards messages.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            new = os.open(os.devnull, os.O_RDWR)
            if new != fd:
                os.dup2(new, fd)
                os.close(new)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so what is still buffered for a reader that went away is
    dropped without a second error when Python flushes it at exit."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# Names of positional arguments in messages; options are shown as --option.
_ARG_NAMES = {"file": "FILE", "collection": "COLL", "key": "KEY", "json": "JSON", "path": "PATH",
              "src": "SRC", "dst": "DST"}


def _check_text_arguments(args: argparse.Namespace) -> None:
    """A usage error for an argument that is not UTF-8 (Python hands such bytes over as lone
    surrogates, which would otherwise fail later with "surrogates not allowed")."""
    for dest, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                name = _ARG_NAMES.get(dest, "--" + dest.replace("_", "-"))
                raw = os.fsencode(text)
                raise UsageError(f"{name} is not valid UTF-8 text (byte 0x{raw[_byte_offset(text, exc.start)]:02x}); "
                                 "kvlite reads command-line text as UTF-8") from None


def _byte_offset(text: str, index: int) -> int:
    """The offset in ``os.fsencode(text)`` of character ``index`` (an undecodable byte)."""
    return len(os.fsencode(text[:index]))


def _fail(message: str, code: int) -> int:
    line = printable(" ".join(message.split()))
    try:
        _flush_stdout()
    except BrokenPipeError:
        _discard_stdout()
    except (OSError, ValueError):
        pass
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{PROG}: error: {line}\n")
        sys.stderr.flush()
    return code


# -- demo ------------------------------------------------------------------------------------

_DEMO_FILE = "kvlite-demo.db"
_DEMO_MARK = ("about", "made_by", "kvlite demo")
_DEMO_COLLECTIONS = ("about", "users", "sessions")


@subcommand
def _setup_demo(sub: _Subparsers) -> None:
    p = _add(sub, "demo", "store, read and expire documents in a demo file, narrating each step",
             handler=_run_demo,
             description=f"Create a kvlite file (default ./{_DEMO_FILE}), store documents with and "
                         "without TTL, read them back through the dict view, run a few lookups, and "
                         "print each step. Running it again on its own file starts over; it refuses "
                         "to touch any other existing file.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("file", metavar="FILE", nargs="?", help=f"the file to create (default: {_DEMO_FILE})")
    where.add_argument("--tmp", action="store_true", help="create the file in a new temporary folder")


class _DemoClock:
    """Real time plus an offset the demo moves forward, so expiry shows without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _say(code: str, result: Any = _MISSING, note: str = "") -> None:
    """Print one demo line: the Python that ran and, if any, its result."""
    line = f"  {code}"
    if result is not _MISSING:
        line = f"{line:<44} -> {result!r}"
    if note:
        line = f"{line}   # {note}"
    print(line)


def _run_demo(args: argparse.Namespace) -> int:
    if args.tmp:
        path = os.path.join(tempfile.mkdtemp(prefix="kvlite-demo-"), _DEMO_FILE)
    else:
        path = args.file or _DEMO_FILE
    clock = _DemoClock()
    existed = os.path.exists(path) and os.path.getsize(path) > 0
    db = _open(path, write=True, create=True, clock=clock)
    try:
        if existed:
            _demo_reset(db, path)  # before printing anything: it may refuse
        db.collection(_DEMO_MARK[0]).put(_DEMO_MARK[1], _DEMO_MARK[2])
        print(f"kvlite {__version__} demo: documents in one file, {path}")
        print()
        print("Open the store (the file is created if missing):")
        _say(f"db = kvlite.open({path!r})")
        if existed:
            _say("(the file exists: the previous demo's collections were removed to start over)")
        _say("users = db.collection('users')")
        users = db.collection("users")
        sessions = db.collection("sessions")

        print("\nStore documents without a TTL, in one transaction:")
        people = {
            "u1": {"name": "Ada", "age": 36, "langs": ["en", "fr"]},
            "u2": {"name": "Grace", "age": 45, "langs": ["en"]},
            "u3": {"name": "Linus", "age": 28, "langs": ["fi", "sv", "en"]},
            "u4": {"name": "Yukihiro", "age": 59, "langs": ["ja"]},
        }
        written = users.put_many(people)
        _say("users.put_many({'u1': {...}, ..., 'u4': {...}})", written)
        for key, doc in people.items():
            print(f"      {key}: {doc}")

        print("\nStore documents with a TTL (seconds):")
        sessions.put("s-ada", {"user": "u1", "cart": ["book"]}, ttl=60)
        _say("sessions.put('s-ada', {'user': 'u1', 'cart': ['book']}, ttl=60)")
        sessions.put("s-grace", {"user": "u2", "cart": []}, ttl=600)
        _say("sessions.put('s-grace', {'user': 'u2', 'cart': []}, ttl=600)")
        _say("sessions.ttl('s-ada')", round(sessions.ttl("s-ada") or 0.0), "seconds left")

        print("\nRead them back through the dict view (a MutableMapping, like dict):")
        d = users.dict()
        _say("d = users.dict()")
        _say("len(d)", len(d))
        _say("d['u1']", d["u1"])
        _say("list(d)", list(d), "insertion order")
        _say("'u9' in d", "u9" in d)
        d["u5"] = {"name": "Guido", "age": 69, "langs": ["nl", "en"]}
        _say("d['u5'] = {'name': 'Guido', 'age': 69, ...}", note="written to the file")
        _say("d.pop('u4')", d.pop("u4"))
        _say("d.get('u4', 'gone')", d.get("u4", "gone"))
        _say("'u5' in users", "u5" in users, "the view and the collection are the same data")

        print("\nLookups:")
        _say("users.get_many(['u1', 'u9'])", users.get_many(["u1", "u9"]))
        _say("users.get('u9', 'no such user')", users.get("u9", "no such user"))
        older = [doc["name"] for _, doc in users.items() if doc["age"] > 40]
        _say("[doc['name'] for _, doc in users.items() if doc['age'] > 40]", older)
        speakers = [key for key, doc in users.items() if "en" in doc["langs"]]
        _say("[key for key, doc in users.items() if 'en' in doc['langs']]", speakers)

        _demo_queries(users)

        print("\nExpiry (the demo moves its clock 120 s forward instead of sleeping):")
        clock.offset += 120
        _say("sessions.get('s-ada')", sessions.get("s-ada"), "expired: its TTL was 60 s")
        _say("sessions.get('s-grace')", sessions.get("s-grace"))
        _say("sessions.ttl('s-grace')", round(sessions.ttl("s-grace") or 0.0), "seconds left")
        _say("len(sessions)", len(sessions))
        _say("db.purge_expired()", db.purge_expired(), "expired rows deleted from the file")
    finally:
        db.close()

    print("\nClose and reopen: everything is in the file:")
    with open_store(path, clock=clock) as db:
        _say("db.close(); db = kvlite.open(...)")
        _say("db.collections()", db.collections())
        users = db.collection("users")
        _say("len(users)", len(users))
        _say("db.dict('users')['u5']['name']", db.dict("users")["u5"]["name"])

    quoted = shlex.quote(path)
    print(f"\nDone. Look inside with:\n  kvlite collections {quoted}\n  kvlite export {quoted} users")
    return 0


def _demo_reset(db: Store, path: str) -> None:
    """Empty a file an earlier demo made; refuse any other file."""
    names = db.collections()
    about = db.collection(_DEMO_MARK[0]) if _DEMO_MARK[0] in names else None
    if about is None or about.get(_DEMO_MARK[1]) != _DEMO_MARK[2] or set(names) - set(_DEMO_COLLECTIONS):
        raise CliError(f"{path!r} already exists and was not made by 'kvlite demo'; "
                       "give another FILE or use --tmp")
    with db.transaction():
        for name in names:
            db.drop_collection(name)


def _demo_queries(coll: Collection) -> None:
    """Print a few queries over ``coll``, the demo's users (u1, u2, u3, u5)."""
    print("\nqueries (JSONPath; filters run in SQLite):")
    _say("users.select('$[?(@.age > 40)].name')", list(coll.select("$[?(@.age > 40)].name")))
    _say("users.find('$.*.langs[0]')", list(coll.find("$.*.langs[0]")))
    _say("users.count('$[?(@.age >= 36)]')", coll.count("$[?(@.age >= 36)]"))
    coll.create_index("$.age")
    plan = coll.explain("$[?(@.age == 36)]")["steps"][0]["query_plan"]
    searches = [line for line in plan if line.startswith("SEARCH")]
    _say("users.create_index('$.age')")
    _say("users.explain('$[?(@.age == 36)]')", searches[0] if searches else plan, "SQLite's plan")
    _say("users.select('$.*.name', order_by='-$.age', limit=2)",
         list(coll.select("$.*.name", order_by="-$.age", limit=2)))
    _say("users.select('$.*[@.age > 40].name', engine='objectpath')",
         list(coll.select("$.*[@.age > 40].name", engine="objectpath")))


# -- get / put / delete / keys -------------------------------------------------------------


@subcommand
def _setup_get(sub: _Subparsers) -> None:
    p = _add(sub, "get", "print the value of one key as JSON",
             handler=_run_get,
             description="Print the value stored under KEY as one line of JSON. "
                         "Exit code 1 when the key is missing or expired.")
    _file_arg(p)
    _key_args(p)


def _run_get(args: argparse.Namespace) -> int:
    key = _key(args.key, args)
    with _open(args.file, write=False) as store:
        value = _collection(store, args.collection, values=True).get(key, _MISSING)
    if value is _MISSING:
        raise CliError(f"no key {key!r} in collection {args.collection!r}")
    _write_out(_json_line(value))
    return 0


@subcommand
def _setup_put(sub: _Subparsers) -> None:
    p = _add(sub, "put", "store a JSON value under a key",
             handler=_run_put,
             description="Store the JSON value under KEY, replacing any previous value and TTL. "
                         "Creates the file and the collection (as a JSON collection) when missing.",
             stdout=False)
    _file_arg(p)
    _key_args(p)
    p.add_argument("json", metavar="JSON", help="the value, as JSON text (quote it for the shell)")
    p.add_argument("--ttl", type=_positive_seconds, metavar="S", help="expire after S seconds")


def _run_put(args: argparse.Namespace) -> int:
    key = _key(args.key, args)
    try:
        value = loads_json(args.json.encode("utf-8"))
    except SerializationError:
        raise  # well-formed JSON the json serializer cannot hold, as in the Python API: exit 1
    except ValueError as exc:
        raise UsageError(f"JSON: {exc}") from None

    def put_into(target: str) -> None:
        with _open(target, write=True, create=True, shown=args.file) as store:
            with store.transaction():  # a refused value does not leave a new, empty collection behind
                _collection(store, args.collection, values=True, create=True).put(key, value, ttl=args.ttl)

    _into_new_or_existing(args.file, put_into)
    return 0


@subcommand
def _setup_delete(sub: _Subparsers) -> None:
    p = _add(sub, "delete", "delete one key",
             handler=_run_delete,
             description="Delete KEY. Exit code 1 when there was no such (live) key.", stdout=False)
    _file_arg(p)
    _key_args(p)


def _run_delete(args: argparse.Namespace) -> int:
    key = _key(args.key, args)
    with _open(args.file, write=True) as store:
        deleted = _collection(store, args.collection, values=False).delete(key)
    if not deleted:
        raise CliError(f"no key {key!r} in collection {args.collection!r}")
    return 0


@subcommand
def _setup_keys(sub: _Subparsers) -> None:
    p = _add(sub, "keys", "list the keys of a collection",
             handler=_run_keys,
             description="Print every live key, in insertion order, one JSON value per line "
                         "(str keys as JSON strings, other types tagged: {\"int\": 5}).")
    _file_arg(p)
    p.add_argument("collection", metavar="COLL", help="collection name")
    p.add_argument("--limit", type=_non_negative_int, metavar="N", help="print at most N keys")


def _run_keys(args: argparse.Namespace) -> int:
    with _open(args.file, write=False) as store:
        keys: Iterator[Key] = _collection(store, args.collection, values=False).keys()
        if args.limit is not None:
            keys = itertools.islice(keys, args.limit)
        out = _stdout()
        for key in keys:
            out.write(_json_line(_keys.to_json(key)))
    return 0


# -- collections / stats / purge / vacuum --------------------------------------------------


@subcommand
def _setup_collections(sub: _Subparsers) -> None:
    p = _add(sub, "collections", "list collections with their counts and serializer",
             handler=_run_collections,
             description="One line per collection, oldest first: name, live entries, expired entries "
                         "not yet purged, serializer.")
    _file_arg(p)


def _run_collections(args: argparse.Namespace) -> int:
    with _open(args.file, write=False) as store, store.snapshot():  # the registry and every table at once
        now = store.now()
        rows = [(shown_name(name), *_counts(store, table_id, now), printable(serializer))
                for name, table_id, serializer in _registry(store)]
    header = ("COLLECTION", "ENTRIES", "EXPIRED", "SERIALIZER")
    width = max([len(header[0])] + [len(r[0]) for r in rows])
    lines = [f"{header[0]:<{width}}  {header[1]:>8}  {header[2]:>8}  {header[3]}"]
    lines += [f"{name:<{width}}  {live:>8}  {expired:>8}  {ser}" for name, live, expired, ser in rows]
    print("\n".join(lines))
    return 0


@subcommand
def _setup_stats(sub: _Subparsers) -> None:
    p = _add(sub, "stats", "show file size, schema version and totals", handler=_run_stats)
    _file_arg(p)


def _run_stats(args: argparse.Namespace) -> int:
    with _open(args.file, write=False) as store, store.snapshot():  # the registry and every table at once
        now = store.now()
        registry = _registry(store)
        live = expired = 0
        for _, table_id, _ in registry:
            a, b = _counts(store, table_id, now)
            live, expired = live + a, expired + b
        version = _sql(store, "PRAGMA user_version")[0][0]
        made_by = _sql(store, "SELECT value FROM kvlite_meta WHERE key = 'created_by'")
        page_size = _sql(store, "PRAGMA page_size")[0][0]
        pages = _sql(store, "PRAGMA page_count")[0][0]
        free = _sql(store, "PRAGMA freelist_count")[0][0]
        journal = _sql(store, "PRAGMA journal_mode")[0][0]
    made = f" (created by kvlite {made_by[0][0]})" if made_by else ""
    print("\n".join([
        f"file:            {printable(args.file)}",
        f"size:            {_size(args.file):,} bytes (+ {_size(args.file + '-wal'):,} bytes of WAL)",
        f"schema version:  {version}{made}",
        f"pages:           {pages:,} of {page_size:,} bytes ({free:,} free)",
        f"journal mode:    {journal}",
        f"collections:     {len(registry)}",
        f"entries:         {live:,} live, {expired:,} expired (not yet purged)",
    ]))
    return 0


@subcommand
def _setup_purge(sub: _Subparsers) -> None:
    p = _add(sub, "purge", "delete expired entries now", handler=_run_purge,
             description="Delete the expired entries of every collection (reads never see them anyway).")
    _file_arg(p)


def _run_purge(args: argparse.Namespace) -> int:
    with _open(args.file, write=True) as store:
        purged = store.purge_expired()
    print(f"purged {purged} expired {'entry' if purged == 1 else 'entries'}")
    return 0


@subcommand
def _setup_vacuum(sub: _Subparsers) -> None:
    p = _add(sub, "vacuum", "compact the file (SQLite VACUUM)", handler=_run_vacuum,
             description="Rebuild the file without free pages and fold the WAL into it. "
                         "Needs free disk space about the size of the file.")
    _file_arg(p)


def _run_vacuum(args: argparse.Namespace) -> int:
    before = _size(args.file) + _size(args.file + "-wal")
    with _open(args.file, write=True) as store:
        _sql(store, "VACUUM")
        _sql(store, "PRAGMA wal_checkpoint(TRUNCATE)")
    after = _size(args.file) + _size(args.file + "-wal")
    print(f"vacuumed {printable(args.file)}: {before:,} -> {after:,} bytes")
    return 0


# -- export / import ------------------------------------------------------------------------


@subcommand
def _setup_export(sub: _Subparsers) -> None:
    p = _add(sub, "export", "write entries as JSON Lines to stdout", handler=_run_export,
             description="Write one JSON object per live entry to stdout: "
                         '{"collection": ..., "key": ..., "value": ..., "ttl": seconds left or null}. '
                         "Keys other than str are tagged ({\"int\": 5}). One read snapshot, streamed: "
                         "memory does not grow with the store. Every exported collection must use the "
                         "json serializer.")
    _file_arg(p)
    p.add_argument("collection", metavar="COLL", nargs="?", help="only this collection (default: all)")


def _run_export(args: argparse.Namespace) -> int:
    started = time.time()
    # A frozen clock: every entry is judged live/expired, and its TTL measured, at one instant.
    # One snapshot for the registry, every collection it names and every page of them: a
    # collection dropped before it began is not exported, one dropped meanwhile is, as it was.
    with _open(args.file, write=False, clock=lambda: started) as store, store.snapshot():
        names = [args.collection] if args.collection is not None else store.collections()
        collections = [_collection(store, name, values=True) for name in names]  # all checked first
        out = _stdout()
        progress = _Progress("exported")
        for coll in collections:
            collection = (b'"collection"', coll.name)
            for chunk in _chunks(coll.items(), 500):
                ttls = coll.ttl_many([key for key, _ in chunk])
                for (key, value), ttl in zip(chunk, ttls):
                    out.write(_record_line(collection, (b'"key"', _keys.to_json(key)), (b'"value"', value),
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


@subcommand
def _setup_import(sub: _Subparsers) -> None:
    p = _add(sub, "import", "read JSON Lines from stdin into a collection", handler=_run_import,
             description="Read lines like those 'kvlite export' writes from stdin and store them, "
                         "all in one transaction: a bad line stores nothing. With COLL every entry goes "
                         "into COLL; without it each line names its collection. 'ttl' (seconds, optional) "
                         "counts from the moment of import. Creates the file and JSON collections "
                         "when missing. Holds the write lock until it ends: other writers wait "
                         "(up to their busy timeout) for the whole import.",
             stdout=False, stdin=True)
    _file_arg(p)
    p.add_argument("collection", metavar="COLL", nargs="?",
                   help="store every entry here (default: each line's \"collection\")")


def _run_import(args: argparse.Namespace) -> int:
    progress = _Progress("imported")

    def import_again(temp: str, target: str, written: dict[str, int]) -> dict[str, int]:
        _import_store(temp, target, args.file)
        return written

    written = _into_new_or_existing(args.file, lambda target: _import_lines(target, args, progress),
                                    again=import_again)
    progress.done()
    total = sum(written.values())
    where = ", ".join(f"{n} into {name!r}" for name, n in written.items()) or "nothing"
    sys.stderr.write(f"imported {total} {'entry' if total == 1 else 'entries'}: {where}\n")
    return 0


def _import_lines(target: str, args: argparse.Namespace, progress: _Progress) -> dict[str, int]:
    """Store the lines of stdin in ``target``, in one transaction; ``{collection: entries}``."""
    written: dict[str, int] = {}
    with _open(target, write=True, create=True, shown=args.file) as store:
        collections: dict[str, Collection] = {}
        with store.transaction():
            for number, line in enumerate(sys.stdin.buffer, start=1):
                if not line.strip():
                    continue
                try:
                    name, key, value, ttl = _parse_import_line(line, args.collection)
                    coll = collections.get(name)
                    if coll is None:
                        coll = collections[name] = _collection(store, name, values=True, create=True)
                    coll.put(key, value, ttl=ttl)
                except (ValueError, CliError, KvliteError) as exc:
                    raise CliError(f"stdin line {number}: {exc}; nothing was imported") from None
                written[name] = written.get(name, 0) + 1
                progress.step()
    return written


def _import_store(source_path: str, target: str, shown: str) -> None:
    """Import what an import built in the new store ``source_path`` into the store ``target``
    (which another process created meanwhile), as importing the same lines into it would:
    in one transaction, into its existing collections (``json``/``jsonb`` only) or new
    ``json`` ones, every entry with the same expiry time."""
    started = time.time()

    def frozen() -> float:  # both sides measure TTLs at one instant: expiry times are kept
        return started

    with _open(source_path, write=False, clock=frozen, shown=shown) as source, \
            _open(target, write=True, create=True, clock=frozen, shown=shown) as store:
        with store.transaction():
            for name in source.collections():
                try:
                    coll = _collection(store, name, values=True, create=True)
                    entries = _collection(source, name, values=True)
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


# -- queries -------------------------------------------------------------------------------------


def _query_args(parser: argparse.ArgumentParser) -> None:
    _file_arg(parser)
    parser.add_argument("collection", metavar="COLL", help="collection name")
    parser.add_argument("path", metavar="PATH", help="a JSONPath (or, with --engine objectpath, ObjectPath)")
    parser.add_argument("--engine", choices=("jsonpath", "objectpath"), default="jsonpath")


def _paging_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=_non_negative_int, metavar="N", help="at most N matches")
    parser.add_argument("--offset", type=_non_negative_int, metavar="N", default=0, help="skip N matches")
    _order_args(parser)


def _order_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--order-by", metavar="FIELD",
                        help="order the documents by a field path first ('$.age'); descending: "
                             "--order-by=-$.age (with '=': argparse takes '-...' for an option) or --desc")
    parser.add_argument("--desc", action="store_true", help="with --order-by FIELD: descending")


def _order(args: argparse.Namespace) -> tuple[str | None, bool]:
    """``(order_by, desc)`` from the flags; a usage error when they contradict each other."""
    if args.desc and args.order_by is None:
        raise UsageError("--desc needs --order-by FIELD (it reverses that order)")
    if args.desc and args.order_by.startswith("-"):
        raise UsageError(f"--order-by={args.order_by} already means descending; "
                         "drop either the '-' or --desc")
    return args.order_by, args.desc


def _matches(store: Store, args: argparse.Namespace) -> Iterator[tuple[Key, Any]]:
    order_by, desc = _order(args)
    coll = _collection(store, args.collection, values=True)
    return coll.find(args.path, engine=args.engine, limit=args.limit, offset=args.offset,
                     order_by=order_by, desc=desc)


@subcommand
def _setup_find(sub: _Subparsers) -> None:
    p = _add(sub, "find", "run a query; print {\"key\", \"value\"} per match as JSON Lines",
             handler=_run_find,
             description="Run PATH over the collection (the root $ is the collection as a mapping "
                         "key -> document) and print one JSON object per match: "
                         "{\"key\": KEY, \"value\": MATCH}. Streams: constant memory.")
    _query_args(p)
    _paging_args(p)


def _run_find(args: argparse.Namespace) -> int:
    with _open(args.file, write=False) as store:
        matches = _matches(store, args)
        out = _stdout()
        for key, value in matches:
            out.write(_record_line((b'"key"', None if key is None else _keys.to_json(key)), (b'"value"', value)))
    return 0


@subcommand
def _setup_query(sub: _Subparsers) -> None:
    p = _add(sub, "query", "run a query; print each matched value as JSON Lines",
             handler=_run_query,
             description="Like 'find', but print only the matched values, one JSON value per line "
                         "(ready for jq).")
    _query_args(p)
    _paging_args(p)


def _run_query(args: argparse.Namespace) -> int:
    with _open(args.file, write=False) as store:
        matches = _matches(store, args)
        out = _stdout()
        for _, value in matches:
            out.write(_json_line(value))
    return 0


@subcommand
def _setup_count(sub: _Subparsers) -> None:
    p = _add(sub, "count", "print the number of matches of a query", handler=_run_count)
    _query_args(p)


def _run_count(args: argparse.Namespace) -> int:
    with _open(args.file, write=False) as store:
        coll = _collection(store, args.collection, values=True)
        print(coll.count(args.path, engine=args.engine))
    return 0


@subcommand
def _setup_explain(sub: _Subparsers) -> None:
    p = _add(sub, "explain", "show what part of a query runs in SQLite and what in Python",
             handler=_run_explain)
    _query_args(p)
    _order_args(p)


def _run_explain(args: argparse.Namespace) -> int:
    order_by, desc = _order(args)
    with _open(args.file, write=False) as store:
        coll = _collection(store, args.collection, values=True)
        plan = coll.explain(args.path, engine=args.engine, order_by=order_by, desc=desc)
    lines = [f"engine:    {plan['engine']}",
             f"streaming: {'yes' if plan['streaming'] else 'no (loads the whole collection)'}"]
    for number, step in enumerate(plan["steps"], start=1):
        lines.append(f"step {number}:    {step['kind']}")
        if step.get("pushdown"):
            lines.append(f"  in SQL:    {'; '.join(step['pushdown'])}")
        lines.append(f"  in Python: {step['python']}")
        lines += [f"  plan:      {line}" for line in step.get("query_plan", [])]
    if order_by is not None:
        field, down = (order_by[1:], True) if order_by.startswith("-") else (order_by, desc)
        lines.append(f"order:     {field} {'descending' if down else 'ascending'}")
    lines += [f"note:      {note}" for note in plan["notes"]]
    print("\n".join(printable(line) for line in lines))
    return 0


@subcommand
def _setup_index(sub: _Subparsers) -> None:
    p = _add(sub, "index", "create, drop or list expression indexes on JSON fields", handler=_run_index,
             description="'index FILE COLL' lists the indexed paths; '--create PATH' / '--drop PATH' "
                         "changes them (plain field paths such as $.age).")
    _file_arg(p)
    p.add_argument("collection", metavar="COLL", help="collection name")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--create", metavar="PATH")
    action.add_argument("--drop", metavar="PATH")


def _run_index(args: argparse.Namespace) -> int:
    write = bool(args.create or args.drop)
    with _open(args.file, write=write) as store:
        coll = _collection(store, args.collection, values=True)
        if args.create:
            coll.create_index(args.create)
        elif args.drop and not coll.drop_index(args.drop):
            raise CliError(f"no index on {args.drop!r} in collection {args.collection!r}")
        for path in coll.indexes():
            print(printable(path))
    return 0


@subcommand
def _setup_copy(sub: _Subparsers) -> None:
    p = _add(sub, "copy", "copy every collection, value and TTL from one store to another",
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
    from ..copy import copy

    if "://" not in args.src and not os.path.exists(args.src):
        raise CliError(f"no such file: {args.src!r}")

    def copy_into(target: str) -> dict[str, int]:
        return copy(args.src, target, serializer=args.serializer, collections=args.collections,
                    trust_pickle=args.trust_pickle)

    counts = _into_new_or_existing(args.dst, copy_into)
    for name, count in counts.items():
        print(f"{shown_name(name)}: {count} {'entry' if count == 1 else 'entries'}")
    return 0
