"""Plain field paths: what ``create_index`` and ``order_by`` take.

A plain field path is an RFC 9535 query naming one field by a chain of plain
names (``$.age``, ``$.address.city``, ``$['address']['city']``); each name
is ``[A-Za-z_][A-Za-z0-9_]*``, so the path can be written into SQL text as
it is (an expression index is matched by its SQL text).  Engines read it as
the SQLite JSON path ``$.a.b`` (:func:`plain_field`); Python reads the value
at it with :func:`value_at`.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import NotSupported
from .rfc9535 import field_path, parse

__all__ = ["plain_field", "value_at", "order_direction", "MISSING"]

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: What :func:`value_at` gives where the document has no such field.
MISSING: Any = object()


def _names(path: str, what: str) -> list[str]:
    parts = field_path(parse(path))
    if not parts or not all(isinstance(part, str) and _PLAIN.fullmatch(part) for part in parts):
        raise NotSupported(f"{what} must be a plain field path like '$.age' or '$.a.b', not {path!r}")
    return parts  # type: ignore[return-value]


def plain_field(coll: Any, path: str, what: str) -> str:
    """The SQLite JSON path (``$.a.b``) of ``path``, given as ``what`` (``order_by``, an index
    path).

    :raises QuerySyntaxError: ``path`` is not an RFC 9535 query.
    :raises NotSupported: the collection does not store JSON (``json_extract`` reads JSON),
        or ``path`` is not a plain field path."""
    if not coll.serializer.json:
        raise NotSupported(f"{what} needs a JSON collection (it reads json_extract(value, path))")
    return "$." + ".".join(_names(path, what))


def value_at(document: Any, path: str) -> Any:
    """The value at the plain field path ``path`` (``$.a.b``, as :func:`plain_field` gives it)
    in ``document``, or :data:`MISSING`."""
    value = document
    for name in path[2:].split("."):
        if not isinstance(value, dict) or name not in value:
            return MISSING
        value = value[name]
    return value


def order_direction(order_by: str, desc: bool) -> tuple[str, bool]:
    """``order_by`` without a leading ``-``, and the direction (``-`` flips ``desc``)."""
    if isinstance(order_by, str) and order_by.startswith("-"):
        return order_by[1:], not desc
    return order_by, desc
