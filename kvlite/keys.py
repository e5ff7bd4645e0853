"""Keys: which Python values can be keys, and how they are stored.

A key keeps its type: ``"a"``, ``b"a"`` and ``1`` are three keys.  As in
``dict``, keys that compare equal are one key (``1``, ``1.0`` and ``True``):
the first one stored is the one iteration gives back, until it is deleted.

Storage: the ``key`` column has no type affinity, so SQLite keeps TEXT, BLOB,
INTEGER and REAL apart and compares INTEGER with REAL by value, exactly as
Python compares ``int`` with ``float``.  ``bool`` is stored as INTEGER with
``key_type = 1`` so it comes back as ``bool``.

Every form of a key lives here: :func:`encode`/:func:`decode` (the stored
``(key, key_type)`` pair of the SQLite engines), :func:`normalize` (the form
every engine's primitives get), :func:`canonical_text` and
:func:`tagged_text` (text forms for engines that key by text),
:func:`to_json`/:func:`from_json` (the command line's JSON form) and
:func:`view` (how the query languages see a key).

Supported: ``str``, ``bytes``, ``int`` (-2**63 .. 2**63-1, and beyond that the
ints a ``float`` equals exactly, such as ``2**64``, stored as that float with
``key_type = 2``), ``float`` (not NaN), ``bool``.  Subclasses (``enum.StrEnum``, ``enum.IntEnum``, ...) are
stored as their base type and come back as it.  Keys are limited to
:data:`MAX_KEY_LENGTH` characters (``str``) or bytes (``bytes``).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Union

import orjson

from .errors import CorruptStore, InvalidKey, InvalidRange

Key = Union[str, bytes, int, float, bool]

#: Longest key, in characters (``str``) or bytes (``bytes``).
MAX_KEY_LENGTH = 1 << 20

KEY_PLAIN = 0
KEY_BOOL = 1
#: An ``int`` outside 64 bits, stored as the ``float`` it equals (``2**64``).
KEY_BIG_INT = 2

_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 63) - 1


def encode(key: object) -> tuple[object, int]:
    """``(stored value, key_type)`` for ``key``; raises :class:`InvalidKey`."""
    kind = type(key)
    if kind is str or kind is bytes:
        if len(key) > MAX_KEY_LENGTH:  # type: ignore[arg-type]
            raise InvalidKey(f"key is {len(key)} long; the limit is {MAX_KEY_LENGTH}")  # type: ignore[arg-type]
        return key, KEY_PLAIN
    if kind is int:
        if _INT_MIN <= key <= _INT_MAX:  # type: ignore[operator]
            return key, KEY_PLAIN
        # Beyond 64 bits SQLite has only REAL.  An int a float equals exactly (2**63, 2**64,
        # 10**20) is the same dict key as that float, so it is stored as one, marked as an int.
        try:
            as_float = float(key)  # type: ignore[arg-type]
        except OverflowError:
            as_float = math.inf
        if as_float != key:
            raise InvalidKey("int keys must fit in 64 bits (-2**63 .. 2**63-1), or equal a float exactly")
        return as_float, KEY_BIG_INT
    if kind is bool:
        return int(key), KEY_BOOL  # type: ignore[call-overload]
    if kind is float:
        if math.isnan(key):  # type: ignore[arg-type]
            raise InvalidKey("NaN cannot be a key (it is not equal to itself)")
        return key, KEY_PLAIN
    # Subclasses of the supported types are stored as their base type.
    for base in (str, bytes, int, float):
        if isinstance(key, base):
            if base is str:
                return encode(str.__str__(key))  # type: ignore[arg-type]
            return encode(base(key))  # type: ignore[call-overload]
    raise InvalidKey(
        f"keys must be str, bytes, int, float or bool, not {type(key).__name__}"
    )


def decode(stored: object, key_type: int) -> Key:
    """The Python key for a stored ``(key, key_type)`` pair.

    Raises :class:`~kvlite.errors.CorruptStore` for a pair :func:`encode` never makes (only a
    damaged or hostile file holds one): a bool that is not 0 or 1, a big int that is not an
    integral float, an unknown ``key_type``.
    """
    if key_type == KEY_PLAIN:
        return stored  # type: ignore[return-value]
    if key_type == KEY_BOOL and type(stored) is int and (stored == 0 or stored == 1):
        return bool(stored)
    if key_type == KEY_BIG_INT and type(stored) is float and stored.is_integer():
        return int(stored)
    raise CorruptStore(f"a stored key {stored!r} has key type {key_type!r}, which kvlite never writes "
                       "(the file is damaged or was not written by kvlite)")


# -- the forms other modules need -------------------------------------------------------------


def normalize(key: object) -> Key:
    """``key`` validated (:class:`InvalidKey`) and as its base type (a ``StrEnum`` member becomes
    its ``str``, an ``IntEnum`` member its ``int``); a ``str`` must be valid Unicode text.

    This is the form every engine's primitives get: Python's equality still holds (``1``,
    ``1.0`` and ``True`` are one key)."""
    stored, key_type = encode(key)
    if type(stored) is str:
        check_text(stored)
    return decode(stored, key_type)


def check_text(key: str) -> None:
    """Raise :class:`InvalidKey` unless the ``str`` key is valid Unicode text (no lone
    surrogate, which no encoding can store)."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey("str key is not valid Unicode text") from None


def _iterable_of_keys(keys: Iterable[Any], method: str) -> Iterable[Any]:
    """``keys`` of a ``_many`` call, refused (:class:`InvalidKey`) when it is one ``str`` or
    ``bytes`` key: iterating it would read its characters or byte values as keys."""
    if isinstance(keys, (str, bytes)):
        raise InvalidKey(f"{method}() takes an iterable of keys, not one {type(keys).__name__} key: "
                         f"use {method}([key])")
    return keys


def encode_many(keys: Iterable[Any], method: str) -> list[Any]:
    """The stored form (:func:`encode`) of each key of a ``_many`` call's ``keys``."""
    return [encode(key)[0] for key in _iterable_of_keys(keys, method)]


def normalize_many(keys: Iterable[Any], method: str) -> list[Key]:
    """:func:`normalize` of each key of a ``_many`` call's ``keys``."""
    return [normalize(key) for key in _iterable_of_keys(keys, method)]


def canonical_text(key: Key) -> str:
    """A text form equal for keys that Python finds equal (``1``, ``1.0``, ``True`` -> ``"n:1"``):
    for engines that look keys up by text (Redis, PostgreSQL).  ``key`` is normalised."""
    if isinstance(key, str):
        return "s:" + key
    if isinstance(key, bytes):
        return "b:" + key.hex()
    if isinstance(key, float):
        if math.isfinite(key) and key == int(key):
            return f"n:{int(key)}"
        return f"n:{key!r}"
    return f"n:{int(key)}"


def tagged_text(key: Key) -> str:
    """An exact text form of a normalised key, its type included; :func:`from_tagged_text` is its
    inverse."""
    if isinstance(key, str):
        return "s:" + key
    if isinstance(key, bytes):
        return "b:" + key.hex()
    if isinstance(key, bool):
        return "B:" + ("1" if key else "0")
    if isinstance(key, int):
        return f"i:{key}"
    return f"f:{key!r}"


def from_tagged_text(text: str) -> Key:
    """The key :func:`tagged_text` made ``text`` from."""
    kind, _, body = text.partition(":")
    if kind == "s":
        return body
    if kind == "b":
        return bytes.fromhex(body)
    if kind == "B":
        return body == "1"
    if kind == "i":
        return int(body)
    return float(body)


_JSON_TAGS = "a string, or one of {\"int\": N}, {\"bytes\": \"HEX\"}, {\"float\": \"REPR\"}, {\"bool\": B}"


def to_json(key: Key) -> Any:
    """The JSON form of a key (the command line's): ``str`` as itself, other types tagged.

    ``5 -> {"int": 5}``, ``b"\\x00\\xff" -> {"bytes": "00ff"}``,
    ``1.5 -> {"float": "1.5"}`` (``repr``, so ``inf`` and ``-0.0`` survive),
    ``True -> {"bool": true}``.  :func:`from_json` is its exact inverse.
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


def from_json(obj: Any) -> Key:
    """The key for a JSON form made by :func:`to_json`; ``ValueError`` for anything else."""
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
    raise ValueError(f"a key must be {_JSON_TAGS}; got {orjson.dumps(obj).decode()}")


def view(key: Key) -> str:
    """How a key appears to the query languages, whose root object has text keys: a ``str`` as it
    is; ``int``/``float``/``bool`` as ``str(key)`` (``1`` -> ``"1"``); ``bytes`` decoded as UTF-8
    (invalid bytes as ``\\xNN`` escapes)."""
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "backslashreplace")
    return str(key)


# -- key ranges: keys/items/values(prefix=, start=, stop=) -----------------------------------------


#: The kinds of keys a range covers, in the order every engine sorts them: numbers (``int``,
#: ``float``, ``bool``; numerically), then ``str`` (by code point), then ``bytes`` (by byte).
KINDS = ("number", "str", "bytes")


def kind_of(key: Key) -> str:
    """Which of :data:`KINDS` a normalised key is."""
    if isinstance(key, str):
        return "str"
    if isinstance(key, bytes):
        return "bytes"
    return "number"


class KeyRange:
    """The keys of one kind in ``[start, stop)``, in key order: what
    :meth:`kvlite.Collection.keys` selects with ``prefix``/``start``/``stop``.

    ``start`` and ``stop`` are normalised keys of :attr:`kind`, or ``None`` for no bound on
    that side (within the kind: a ``str`` range never reaches ``bytes`` keys).  ``empty`` is
    true when no key can lie in it."""

    __slots__ = ("kind", "start", "stop")

    def __init__(self, kind: str, start: Key | None, stop: Key | None) -> None:
        self.kind = kind
        self.start = start
        self.stop = stop

    @property
    def empty(self) -> bool:
        return self.start is not None and self.stop is not None and not self.start < self.stop  # type: ignore[operator]

    def __repr__(self) -> str:
        return f"KeyRange({self.kind!r}, {self.start!r}, {self.stop!r})"


def _after_prefix(prefix: str | bytes) -> str | bytes | None:
    """The least key greater than every key that starts with ``prefix`` (``None``: there is none)."""
    if isinstance(prefix, bytes):
        trimmed = prefix.rstrip(b"\xff")
        return trimmed[:-1] + bytes([trimmed[-1] + 1]) if trimmed else None
    chars = prefix.rstrip("\U0010ffff")
    if not chars:
        return None
    following = ord(chars[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are no characters: the next one is U+E000
        following = 0xE000
    return chars[:-1] + chr(following)


def key_range(prefix: object = None, start: object = None, stop: object = None) -> KeyRange | None:
    """The :class:`KeyRange` of ``keys(prefix=, start=, stop=)`` (``None`` when all three are).

    ``prefix`` is a ``str`` or ``bytes``; ``start`` and ``stop`` are keys of one kind (numbers
    with numbers), and of the prefix's kind when it is given.

    :raises InvalidKey: a bound is not a key, or ``prefix`` is not ``str``/``bytes``.
    :raises InvalidRange: the bounds are of different kinds, or ``start > stop``.
    """
    if prefix is None and start is None and stop is None:
        return None
    kinds = {}
    if prefix is not None:
        if not isinstance(prefix, (str, bytes)):
            raise InvalidKey(f"prefix must be a str or bytes, not {type(prefix).__name__}")
        prefix = normalize(prefix)
        kinds["prefix"] = kind_of(prefix)  # type: ignore[arg-type]
    bounds = {}
    for name, bound in (("start", start), ("stop", stop)):
        if bound is not None:
            bounds[name] = normalize(bound)
            kinds[name] = kind_of(bounds[name])
    if len(set(kinds.values())) > 1:
        described = ", ".join(f"{name} is a {found}" for name, found in kinds.items())
        raise InvalidRange(f"a key range covers keys of one kind (numbers, str or bytes): {described}")
    low, high = bounds.get("start"), bounds.get("stop")
    if low is not None and high is not None and low > high:  # type: ignore[operator]
        raise InvalidRange(f"start {low!r} is after stop {high!r}")
    if prefix is not None:
        after = _after_prefix(prefix)  # type: ignore[arg-type]
        low = prefix if low is None or prefix > low else low  # type: ignore[operator]
        if after is not None and (high is None or after < high):  # type: ignore[operator]
            high = after
    return KeyRange(next(iter(kinds.values())), low, high)
