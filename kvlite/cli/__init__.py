"""The ``kvlite`` command line (also ``python -m kvlite``).

One module per command group, each using only kvlite's public API:

* :mod:`kvlite.cli.entries` -- ``get``, ``put``, ``delete``, ``keys``, ``export``, ``import``, ``copy``;
* :mod:`kvlite.cli.inspect` -- ``collections``, ``stats``, ``purge``, ``vacuum``;
* :mod:`kvlite.cli.queries` -- ``find``, ``query``, ``count``, ``explain``, ``index``;
* :mod:`kvlite.cli.demo` -- ``demo``;
* :mod:`kvlite.cli.common` (errors, opening stores, publishing a new file, key arguments) and
  :mod:`kvlite.cli.text` (JSON in and out, what is safe to print) serve them all.

Every subcommand is one ``setup_NAME(subparsers)`` function in its group's module, which adds
its parser with :func:`kvlite.cli.common.add_command` and names a handler
``handler(args) -> exit code``; :data:`COMMANDS` lists them in the order ``kvlite --help``
shows.  This module parses the command line, runs the handler and turns every error into
one line and an exit code.

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
  ``repr``), ``{"bool": true}`` (see :func:`kvlite.keys.to_json`).
* Commands that only read open the file read-only and never change it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import KvliteError, QuerySyntaxError
from ..version import __version__
from . import changes, demo, entries, inspect, queries
from .common import CliError, Handler, Subparsers, UsageError
from .text import loads_json, printable

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


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors become :class:`UsageError` (one line, exit 2)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        if message.startswith("argument --order-by: expected one argument"):
            message += " (a path starting with '-' needs the = form: --order-by=-$.age)"
        raise UsageError(f"{message} (see '{self.prog} --help')")


#: Every subcommand's ``setup(subparsers)``, in the order ``kvlite --help`` lists them.
COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    demo.setup_demo,
    entries.setup_get, entries.setup_put, entries.setup_delete, entries.setup_keys,
    inspect.setup_collections, inspect.setup_stats, inspect.setup_purge, inspect.setup_vacuum,
    entries.setup_export, entries.setup_import,
    queries.setup_find, queries.setup_query, queries.setup_count, queries.setup_facets, queries.setup_explain,
    queries.setup_index,
    entries.setup_copy, changes.setup_backup, changes.setup_changes,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``kvlite`` argument parser with every subcommand of :data:`COMMANDS`."""
    parser = _Parser(
        prog=PROG,
        description="Inspect, edit, export and import kvlite stores, or run the demo.",
        epilog="Run 'kvlite COMMAND --help' for one command's options. Exit codes: 0 success, 1 error, "
               "2 usage error, 130 interrupted, 141 stdout's reader went away.",
    )
    parser.add_argument("--version", action="version", version=f"kvlite {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for setup in COMMANDS:
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
    except KvliteError as exc:  # kvlite's API raises nothing else for a bad file or bad data
        return _fail(str(exc), 1)
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
