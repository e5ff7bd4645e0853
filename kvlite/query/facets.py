"""``Collection.count_by``: how many documents hold each value at a path (facets).

Engines that can count in their own language return groups
(:meth:`Table.count_by <kvlite.backends.base.Table.count_by>`, one ``GROUP BY``
in SQLite); for the others the documents are streamed and counted here.
Either way the groups are merged and ordered here, so every engine gives the
same answer: values compared as JSON (``1`` and ``1.0`` one value, ``true``
and ``1`` two, arrays and objects by equality whatever their member order),
most frequent first, ties by the first document holding the value.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import orjson

__all__ = ["kind", "groups", "merged"]

_MISSING: Any = object()


def kind(value: Any) -> str:
    """The JSON kind a value counts as: ``null``, ``true``, ``false``, ``number``, ``text``,
    ``json`` (arrays and objects)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    return "json"


def _canonical(value: Any) -> Any:
    """A form equal for JSON-equal arrays and objects: members sorted (by orjson), integral
    floats as ints (``[1.0]`` is ``[1]``), booleans kept apart from numbers."""
    if isinstance(value, dict):
        return {name: _canonical(member) for name, member in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _group_key(kind_: str, value: Any) -> Any:
    if kind_ == "json":
        return kind_, orjson.dumps(_canonical(value), option=orjson.OPT_SORT_KEYS)
    return kind_, value


def value_at(document: Any, path: list[str | int]) -> Any:
    """The value at the singular query's ``path`` (names and indexes), else a private marker."""
    value = document
    for part in path:
        if isinstance(part, str):
            if not isinstance(value, dict) or part not in value:
                return _MISSING
        else:
            if not isinstance(value, list) or not -len(value) <= part < len(value):
                return _MISSING
        value = value[part]
    return value


def groups(documents: Iterable[Any], path: list[str | int]) -> Iterator[tuple[str, Any, int, int]]:
    """``(kind, value, count, position of the first)`` of the documents, counted in Python."""
    counts: dict[Any, list[Any]] = {}
    for position, document in enumerate(documents):
        value = value_at(document, path)
        if value is _MISSING:
            continue
        kind_ = kind(value)
        group = counts.get(_group_key(kind_, value))
        if group is None:
            counts[_group_key(kind_, value)] = [kind_, value, 1, position]
        else:
            group[2] += 1
    return (tuple(group) for group in counts.values())  # type: ignore[misc]


def merged(found: Iterable[tuple[str, Any, int, int]]) -> list[tuple[Any, int]]:
    """The answer from groups: equal values merged, most frequent first, ties by first position."""
    out: dict[Any, list[Any]] = {}
    for kind_, value, count, first in found:
        key = _group_key(kind_, value)
        group = out.get(key)
        if group is None:
            out[key] = [value, count, first]
        else:
            group[1] += count
            if first < group[2]:
                group[0], group[2] = value, first
    ordered = sorted(out.values(), key=lambda group: (-group[1], group[2]))
    return [(value, count) for value, count, _ in ordered]
