"""The change feed: what :meth:`kvlite.Store.changes` yields.

A collection opened with ``changes=True`` records every write to it from then
on -- by every thread and process, in the write's own transaction -- until
``changes=False`` turns it off.  :meth:`Store.changes <kvlite.Store.changes>`
reads the records in commit order as :class:`Change` objects; ``seq`` resumes
a follower where it stopped.  See ``docs/changes-and-backup.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .collection import ABSENT
from .keys import Key

__all__ = ["Change"]


@dataclass(frozen=True)
class Change:
    """One committed change to a collection that records its changes.

    ``seq`` is strictly increasing across the store and never reused; ``collection`` the
    collection's name; ``key`` the key with its type; ``op`` is ``"put"`` (a write: ``put``,
    ``put_many``, ``patch``, ``incr``, ...) or ``"delete"`` (``delete``, ``pop``, ``clear``,
    ``delete_where``, an expired entry removed by ``purge_expired()`` or by a write over it, and
    every entry of a dropped collection); ``value`` is, for a put, the key's value when the
    change is *read* -- the latest one, as CouchDB's changes feed gives the current document
    (the log stores no copy of values, so it costs one small row per write) -- and
    :data:`kvlite.ABSENT` when there is none: for a delete, and for a put whose key has been
    deleted (or has expired) since.  (``None`` is a stored JSON ``null``.)  A follower that sets
    each key to its value, and removes it when the value is ``ABSENT``, ends equal to the
    collection.
    """

    seq: int
    collection: str
    key: Key
    op: str
    value: Any = ABSENT
