"""What the query front-end and every engine's push-down share: matches and their keys.

- :class:`Tracker` -- which decoded documents are alive in a running query, so a
  whole-document match can be told from a value inside one (typed collections
  turn only documents into models);
- :func:`key_candidates` -- the stored keys a query's key name may stand for;
- :func:`owner` -- the collection key a jsonpath-ng match on the whole collection came from.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidKey
from ..keys import encode as encode_key

__all__ = ["Tracker", "key_candidates", "owner"]


def key_candidates(name: str) -> list[Any]:
    """Stored keys whose :func:`view_key` may be ``name``."""
    raw = name.encode("utf-8", "surrogateescape")
    out: list[Any] = [name, raw]
    # A bytes key that is not UTF-8 shows each bad byte as \xNN (view_key), and a key may also
    # hold those four characters as text: each \xNN is either (up to 2**10 combinations).
    escapes = list(re.finditer(rb"\\x([89a-f][0-9a-f])", raw))[:10]
    for mask in range(1, 1 << len(escapes)):
        parts, at = [], 0
        for bit, match in enumerate(escapes):
            if mask >> bit & 1:
                parts += [raw[at:match.start()], bytes([int(match[1], 16)])]
                at = match.end()
        out.append(b"".join(parts) + raw[at:])
    for convert in (int, float):
        try:
            out.append(encode_key(convert(name))[0])  # as stored (an int beyond 64 bits is a REAL)
        except (ValueError, OverflowError, InvalidKey):
            pass
    if name in ("True", "False"):
        out.append(int(name == "True"))
    return out


class Tracker:
    """Which decoded documents are alive in this query, to tell whole-document matches apart."""

    __slots__ = ("current", "loaded", "conn", "last_id")

    def __init__(self) -> None:
        self.current: Any = None
        self.loaded: set[int] = set()
        #: The connection the query reads (see the engine's query snapshot), and the
        #: largest row id when it started: rows added later are never read, even through a
        #: connection that sees them (the thread's own, inside a transaction block).
        self.conn: Any = None
        self.last_id: int = (1 << 63) - 1

    def is_document(self, value: Any) -> bool:
        return value is self.current or id(value) in self.loaded


def owner(match: Any, mapping: dict[str, Any], originals: dict[str, Any]) -> Any:
    """The collection key of the document a jsonpath-ng match came from (``None``: the root)."""
    from jsonpath_ng import jsonpath as jp

    datum = match
    while datum.context is not None and datum.context.context is not None:
        datum = datum.context
    if datum.context is None:
        return None
    path = datum.path
    if isinstance(path, jp.Fields) and len(path.fields) == 1:
        return originals.get(path.fields[0])
    if isinstance(path, jp.Index) and len(path.indices) == 1:
        names = list(mapping)
        index = path.indices[0]
        if -len(names) <= index < len(names):
            return originals.get(names[index])
    return None
