"""Collection names: what can name a collection.

Names are stored as data and never reach SQL or a file name as they are (tables are named
``kv_<number>``; the per-collection layout percent-encodes or hashes them), so any Unicode text
is accepted within the limits below.
"""

from __future__ import annotations

from .errors import InvalidCollectionName

__all__ = ["MAX_COLLECTION_NAME", "validate_collection_name"]

#: Longest collection name, in characters.
MAX_COLLECTION_NAME = 255


def validate_collection_name(name: object) -> str:
    """``name`` if it can name a collection; raises :class:`~kvlite.errors.InvalidCollectionName`.

    Any non-empty Unicode text up to :data:`MAX_COLLECTION_NAME` characters without NUL is
    accepted.
    """
    if not isinstance(name, str):
        raise InvalidCollectionName(f"collection names are str, not {type(name).__name__}")
    if not name:
        raise InvalidCollectionName("collection names cannot be empty")
    if len(name) > MAX_COLLECTION_NAME:
        raise InvalidCollectionName(f"collection names are at most {MAX_COLLECTION_NAME} characters")
    if "\x00" in name:
        raise InvalidCollectionName("collection names cannot contain NUL")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidCollectionName("collection names must be valid Unicode text") from None
    return name
