"""Keys: which Python values can be keys, and how they are stored.

A key keeps its type: ``"a"``, ``b"a"`` and ``1`` are three keys.  As in
``dict``, keys that compare equal are one key (``1``, ``1.0`` and ``True``):
the first one stored is the one iteration gives back, until it is deleted.

Storage: the ``key`` column has no type affinity, so SQLite keeps TEXT, BLOB,
INTEGER and REAL apart and compares INTEGER with REAL by value, exactly as
Python compares ``int`` with ``float``.  ``bool`` is stored as INTEGER with
``key_type = 1`` so it comes back as ``bool``.

Supported: ``str``, ``bytes``, ``int`` (-2**63 .. 2**63-1, and beyond that the
ints a ``float`` equals exactly, such as ``2**64``, stored as that float with
``key_type = 2``), ``float`` (not NaN), ``bool``.  Subclasses (``enum.StrEnum``, ``enum.IntEnum``, ...) are
stored as their base type and come back as it.  Keys are limited to
:data:`MAX_KEY_LENGTH` characters (``str``) or bytes (``bytes``).
"""

from __future__ import annotations

import math
from typing import Union

from .errors import CorruptStore, InvalidKey

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
