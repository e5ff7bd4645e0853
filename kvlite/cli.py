"""The ``kvlite`` command line (also ``python -m kvlite``).

Every subcommand is one ``@subcommand`` function that adds its parser with
:func:`_add` and names a handler ``handler(args) -> exit code``.  Adding a
subcommand is one such function plus its handler; nothing else changes.

Conventions:

* Exit codes: 0 success, 1 error (missing key, bad data, kvlite error),
  2 usage error (bad arguments).  Every error is ONE line on stderr,
  ``kvlite: error: ...``, never a traceback for a kvlite error.
* Keys on the command line are ``str`` unless ``--int-key`` or
  ``--bytes-key`` (hex) says otherwise.
* Values on the command line and in JSON Lines are JSON.  Only collections
  that use the ``json`` serializer have their values read or written by the
  command line; the others can still be listed, counted, have keys listed and
  deleted, and be purged.
* Keys in JSON output (``keys``, ``export``) are JSON: a ``str`` key is a
  JSON string; other keys carry a type tag so they come back exactly:
  ``{"int": 5}``, ``{"bytes": "00ff"}`` (hex), ``{"float": "1.5"}`` (Python
  ``repr``), ``{"bool": true}`` (see :func:`key_to_json`).
* Commands that only read open the file read-only and never change it.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import apsw
import orjson

from . import __version__
from . import open as open_store
from .collection import Collection, table_sql_name
from .errors import KvliteError, SerializerMismatch
from .keys import Key
from .store import Store, translate_error

__all__ = ["CliError", "UsageError", "build_parser", "key_from_json", "key_to_json", "main"]

PROG = "kvlite"


class CliError(Exception):
    """An error the command line reports as one line on stderr, exit code 1."""

    exit_code = 1


class UsageError(CliError):
    """Bad command-line arguments: one line on stderr, exit code 2."""

    exit_code = 2


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors become :class:`UsageError` (one line, exit 2)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- keys in JSON --------------------------------------------------------------------

_KEY_TAGS = "a string, or one of {\"int\": N}, {\"bytes\": \"HEX\"}, {\"float\": \"REPR\"}, {\"bool\": B}"


def key_to_json(key: Key) -> Any:
    """The JSON form of a key: ``str`` as itself, other types tagged.

    ``5 -> {"int": 5}``, ``b"\\x00\\xff" -> {"bytes": "00ff"}``,
    ``1.5 -> {"float": "1.5"}`` (``repr``, so ``inf`` and ``-0.0`` survive),
    ``True -> {"bool": true}``.  :func:`key_from_json` is its exact inverse.
    """
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return {"bool": key}
    if isinstance(key, int):
        return {"int": key}
    if isinstance(key, bytes):
        return {"bytes": key.hex()}
    if isinstance(key, float):
        return {"float": repr(key)}
    raise TypeError(f"not a kvlite key: {type(key).__name__}")


def key_from_json(obj: Any) -> Key:
    """The key for a JSON form made by :func:`key_to_json`; ``ValueError`` for anything else."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict) and len(obj) == 1:
        ((tag, value),) = obj.items()
        if tag == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if tag == "bool" and isinstance(value, bool):
            return value
        if tag == "bytes" and isinstance(value, str):
            try:
                return bytes.fromhex(value)
            except ValueError:
                raise ValueError(f"key {{\"bytes\": {value!r}}} is not hex") from None
        if tag == "float" and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"key {{\"float\": {value!r}}} is not a float") from None
        if tag == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    raise ValueError(f"a key must be {_KEY_TAGS}; got {orjson.dumps(obj).decode()}")


# -- helpers --------------------------------------------------------------------------


def _open(path: str, *, write: bool, create: bool = False,
          clock: Callable[[], float] = time.time) -> Store:
    """Open the store at ``path``: read-only unless ``write``; it must exist unless ``create``."""
    if not create and not os.path.exists(path):
        raise CliError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise CliError(f"{path!r} is a directory, not a kvlite file")
    try:
        return open_store(path, readonly=not write, clock=clock)
    except KvliteError as exc:
        raise CliError(f"{path}: {exc}") from None


def _sql(store: Store, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one SQL statement on ``store``'s connection (for inspection commands)."""
    try:
        return store._conn().execute(sql, params).fetchall()
    except apsw.Error as exc:
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


def _collection(store: Store, name: str, *, values: bool, create: bool = False) -> Collection:
    """The collection ``name``.

    ``values``: the command reads or writes values, so the collection must use
    the ``json`` serializer.  Without it, any serializer known to this process
    is accepted (its values are never decoded).  ``create``: make a missing
    collection (as a JSON one) instead of failing.
    """
    if not create and name not in store.collections():
        raise CliError(f"no collection named {name!r} in {store.path!r}")
    try:
        return store.collection(name, serializer="json")
    except SerializerMismatch as exc:
        if values:
            raise CliError(
                f"collection {name!r} uses the {exc.stored!r} serializer; the command line reads and "
                "writes values of 'json' collections only") from None
        return store.collection(name, serializer=exc.stored)


def _key(text: str, args: argparse.Namespace) -> Key:
    """The key a command-line KEY means under ``--int-key`` / ``--bytes-key``."""
    if getattr(args, "int_key", False):
        try:
            return int(text, 10)
        except ValueError:
            raise UsageError(f"--int-key: {text!r} is not an integer") from None
    if getattr(args, "bytes_key", False):
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise UsageError(f"--bytes-key: {text!r} is not hex (like 00ff)") from None
    return text


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


def _write_out(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)


def _json_line(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


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
         description: str | None = None) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=description or summary)
    parser.set_defaults(handler=handler)
    return parser


def _file_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the kvlite store (an SQLite file)")


def _key_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("collection", metavar="COLL", help="collection name")
    parser.add_argument("key", metavar="KEY", help="the key (a string unless --int-key/--bytes-key)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--int-key", action="store_true", help="KEY is an integer")
    kind.add_argument("--bytes-key", action="store_true", help="KEY is bytes, written in hex (00ff)")


def build_parser() -> argparse.ArgumentParser:
    """The ``kvlite`` argument parser with every registered subcommand."""
    parser = _Parser(
        prog=PROG,
        description="Inspect, edit, export and import kvlite stores, or run the demo.",
        epilog="Run 'kvlite COMMAND --help' for one command's options.",
    )
    parser.add_argument("--version", action="version", version=f"kvlite {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for setup in _SETUPS:
        setup(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:
            raise UsageError("a COMMAND is required (see 'kvlite --help')")
        code = handler(args)
        sys.stdout.flush()  # here, so a closed pipe is handled below and not at exit
        return code
    except CliError as exc:
        return _fail(str(exc), exc.exit_code)
    except KvliteError as exc:
        return _fail(str(exc), 1)
    except apsw.Error as exc:
        return _fail(f"SQLite: {exc}", 1)
    except BrokenPipeError:
        # The reader went away (e.g. `kvlite export ... | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}" + (f": {exc.filename!r}" if exc.filename else ""), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _fail(message: str, code: int) -> int:
    line = " ".join(message.split())
    sys.stdout.flush()
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
                         "Creates the file and the collection (as a JSON collection) when missing.")
    _file_arg(p)
    _key_args(p)
    p.add_argument("json", metavar="JSON", help="the value, as JSON text (quote it for the shell)")
    p.add_argument("--ttl", type=_positive_seconds, metavar="S", help="expire after S seconds")


def _run_put(args: argparse.Namespace) -> int:
    key = _key(args.key, args)
    try:
        value = orjson.loads(args.json)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"JSON: not valid JSON: {exc}") from None
    with _open(args.file, write=True, create=True) as store:
        _collection(store, args.collection, values=True, create=True).put(key, value, ttl=args.ttl)
    return 0


@subcommand
def _setup_delete(sub: _Subparsers) -> None:
    p = _add(sub, "delete", "delete one key",
             handler=_run_delete,
             description="Delete KEY. Exit code 1 when there was no such (live) key.")
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
        out = sys.stdout.buffer
        sys.stdout.flush()
        for key in keys:
            out.write(_json_line(key_to_json(key)))
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
    with _open(args.file, write=False) as store:
        now = store.now()
        rows = [(name, *_counts(store, table_id, now), serializer)
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
    with _open(args.file, write=False) as store:
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
        f"file:            {args.file}",
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
    print(f"vacuumed {args.file}: {before:,} -> {after:,} bytes")
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
    with _open(args.file, write=False, clock=lambda: started) as store:
        names = [args.collection] if args.collection is not None else store.collections()
        collections = [_collection(store, name, values=True) for name in names]  # all checked first
        conn = store._conn()
        out = sys.stdout.buffer
        sys.stdout.flush()
        progress = _Progress("exported")
        with store._read(conn):  # one snapshot across every page and collection
            for coll in collections:
                name = coll.name
                for chunk in _chunks(coll.items(), 500):
                    ttls = coll.ttl_many([key for key, _ in chunk])
                    for (key, value), ttl in zip(chunk, ttls):
                        out.write(_json_line({"collection": name, "key": key_to_json(key),
                                              "value": value, "ttl": ttl}))
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
                         "when missing.")
    _file_arg(p)
    p.add_argument("collection", metavar="COLL", nargs="?",
                   help="store every entry here (default: each line's \"collection\")")


def _run_import(args: argparse.Namespace) -> int:
    written: dict[str, int] = {}
    progress = _Progress("imported")
    with _open(args.file, write=True, create=True) as store:
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
    progress.done()
    total = sum(written.values())
    where = ", ".join(f"{n} into {name!r}" for name, n in written.items()) or "nothing"
    sys.stderr.write(f"imported {total} {'entry' if total == 1 else 'entries'}: {where}\n")
    return 0


def _parse_import_line(line: bytes, collection: str | None) -> tuple[str, Key, Any, float | None]:
    """``(collection, key, value, ttl)`` from one JSON Lines record; ``ValueError`` if malformed."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
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
    return name, key_from_json(record["key"]), record["value"], ttl


# -- queries -------------------------------------------------------------------------------------


def _query_args(parser: argparse.ArgumentParser) -> None:
    _file_arg(parser)
    parser.add_argument("collection", metavar="COLL", help="collection name")
    parser.add_argument("path", metavar="PATH", help="a JSONPath (or, with --engine objectpath, ObjectPath)")
    parser.add_argument("--engine", choices=("jsonpath", "objectpath"), default="jsonpath")


def _paging_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=_non_negative_int, metavar="N", help="at most N matches")
    parser.add_argument("--offset", type=_non_negative_int, metavar="N", default=0, help="skip N matches")
    parser.add_argument("--order-by", metavar="FIELD",
                        help="order the documents by a field path first ('$.age'; write "
                             "--order-by=-$.age or add --desc for descending)")
    parser.add_argument("--desc", action="store_true", help="with --order-by: descending")


def _matches(store: Store, args: argparse.Namespace) -> Iterator[tuple[Key, Any]]:
    coll = _collection(store, args.collection, values=True)
    return coll.find(args.path, engine=args.engine, limit=args.limit, offset=args.offset,
                     order_by=args.order_by, desc=args.desc)


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
        out = sys.stdout.buffer
        sys.stdout.flush()
        for key, value in _matches(store, args):
            out.write(_json_line({"key": None if key is None else key_to_json(key), "value": value}))
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
        out = sys.stdout.buffer
        sys.stdout.flush()
        for _, value in _matches(store, args):
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
    p.add_argument("--order-by", metavar="FIELD", help="as for find")


def _run_explain(args: argparse.Namespace) -> int:
    with _open(args.file, write=False) as store:
        coll = _collection(store, args.collection, values=True)
        plan = coll.explain(args.path, engine=args.engine, order_by=args.order_by)
    print(f"engine:    {plan['engine']}")
    print(f"streaming: {'yes' if plan['streaming'] else 'no (loads the whole collection)'}")
    for number, step in enumerate(plan["steps"], start=1):
        print(f"step {number}:    {step['kind']}")
        if step.get("pushdown"):
            print(f"  in SQL:    {'; '.join(step['pushdown'])}")
        print(f"  in Python: {step['python']}")
        for line in step.get("query_plan", []):
            print(f"  plan:      {line}")
    for note in plan["notes"]:
        print(f"note:      {note}")
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
            print(path)
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
    from .copy import copy

    if "://" not in args.src and not os.path.exists(args.src):
        raise CliError(f"no such file: {args.src!r}")
    counts = copy(args.src, args.dst, serializer=args.serializer, collections=args.collections,
                  trust_pickle=args.trust_pickle)
    for name, count in counts.items():
        print(f"{name}: {count} entries")
    return 0
