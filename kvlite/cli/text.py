"""JSON and text in and out of the command line.

* In: :func:`loads_json` reads JSON text exactly (integers beyond 64 bits are not turned
  into floats).
* Out: :func:`to_json`, :func:`json_line` and :func:`record_line` write compact JSON (any
  value ``put()`` accepts, as deep as it goes); :func:`stdout` is where it goes.
* On a terminal: :func:`printable` and :func:`shown_name` escape what could move the
  cursor or draw fake lines; :class:`Progress` shows a count on stderr.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import orjson

from ..errors import SerializationError

__all__ = ["Progress", "json_line", "loads_json", "printable", "record_line", "shown_name", "stdout",
           "to_json", "write_out"]

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


# -- JSON out ----------------------------------------------------------------------------


def stdout() -> Any:
    """``sys.stdout``'s binary buffer, flushed of text first (main checked that it is open)."""
    sys.stdout.flush()
    return sys.stdout.buffer


def write_out(data: bytes) -> None:
    stdout().write(data)


def to_json(obj: Any) -> bytes:
    """Compact JSON of ``obj``.  orjson writes integers up to 64 bits and nests up to its
    depth limit; anything beyond either (an ``int`` key that equals a float, such as
    ``2**64``; a value nested deeper than orjson goes) is written exactly by Python's ``json``."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc) and "Recursion limit" not in str(exc):
            raise
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def json_line(obj: Any) -> bytes:
    """One line of JSON: :func:`to_json` of ``obj`` and a newline."""
    return to_json(obj) + b"\n"


def record_line(*fields: tuple[bytes, Any]) -> bytes:
    """One JSON Lines object ``{"name": value, ...}`` whose values are serialized one by one and
    spliced in: the record adds a level of nesting to the text only, never to a value being
    serialized, so every value that can be written on its own (every value ``put()`` accepts)
    can be written in a record too.  ``fields`` are ``(b'"name"', value)``."""
    return b"{" + b",".join(name + b":" + to_json(value) for name, value in fields) + b"}\n"


# -- text on a terminal ------------------------------------------------------------------

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


class Progress:
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
