"""JSON Merge Patch (RFC 7396): what :meth:`kvlite.Collection.patch` applies.

A patch that is a JSON object changes the document member by member: a member
whose value is ``null`` is removed, an object merges recursively into the
member of that name (a missing member, or one that is not an object, counts as
``{}``), anything else replaces the member.  A patch that is not an object
replaces the whole document.  Members keep their order; new ones come last.

This is the Python statement of the rules; engines that store JSON apply the
same patch in their own language where they can (SQLite's ``json_patch``) and
the conformance tests hold them to this function's result.
"""

from __future__ import annotations

from typing import Any

__all__ = ["merge_patch"]


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` changed by the merge patch ``patch`` (neither argument is modified)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result
