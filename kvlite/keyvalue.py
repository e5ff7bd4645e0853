"""The py-key-value protocol, synchronous: ``kvlite.KeyValue(store)``.

py-key-value (``key_value.aio``) defines what Python tools accept as "a
key-value store": string keys, ``dict`` values, named collections, TTLs in
seconds.  :class:`KeyValue` speaks exactly that protocol over a kvlite
:class:`~kvlite.Store` — synchronously, which py-key-value itself does not
offer — and :class:`kvlite.aio.KeyValue` speaks it asynchronously.

Semantics (the protocol's, to the letter, unless listed under "Differences"):

* ``collection=None`` (or ``""``) means the default collection,
  ``"default_collection"`` unless ``default_collection=`` says otherwise.
* ``get`` -> the stored dict, or ``None`` when missing or expired; every call
  returns a new dict.  ``ttl`` -> ``(value, seconds left)``; ``(None, None)``
  when missing; ``(value, None)`` when it never expires.
* ``get_many`` / ``ttl_many`` keep positions; ``put_many(keys, values)``
  raises ``ValueError`` when the lengths differ; ``delete_many`` returns how
  many existed.
* Keys must be ``str``, collections ``str`` or ``None``, and values
  string-keyed mappings (else ``TypeError``); a TTL must be a positive number
  (``InvalidTTL``; a ``bool`` is refused).
* Collection names of any length work.  Names longer than kvlite's 255
  characters (and names beginning with ``"kvlite-name:"``) are stored as
  ``"kvlite-name:"`` + their SHA-256, remembered in the collection
  ``"kvlite-name:names"``; ``collections()`` reports the names as given
  (:func:`stored_collection_name` gives the stored one, for kvlite's own API).
* ``keys(collection, limit=)``, ``collections(limit=)``, ``destroy()``,
  ``destroy_collection()``, ``cull()`` as in py-key-value's store segments.

Differences from py-key-value, all deliberate:

* TTLs that are NaN or infinite are refused with ``InvalidTTL`` (py-key-value
  accepts ``nan`` and ``inf``).
* Errors are kvlite's (``InvalidTTL`` is a ``ValueError``, serialization
  failures raise ``kvlite.errors.SerializationError``); use
  :mod:`kvlite.integrations.pykv` for a store that raises py-key-value's own
  exception types.
* ``keys()`` / ``collections()`` with no ``limit`` return everything (no
  page cap); ``limit=0`` returns ``[]``; a negative limit is a ``ValueError``.
* Values must be exactly JSON (no NaN, no non-``str`` keys inside, integers
  from -2**63 to 2**64-1, no lone surrogates, no ``UUID`` or plain ``Enum``
  member): anything else is a ``SerializationError``, never a silently changed
  value (dict keys that are ``str`` subclasses are stored as plain ``str``, as
  py-key-value does).  Keys and collection names must be valid Unicode text;
  collection names cannot contain NUL.
* ``put_many`` / ``delete_many`` are atomic; ``get_many`` / ``ttl_many`` read
  one snapshot.  ``destroy()`` drops every collection of the file.

``docs/protocol.md`` lists every difference with examples.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Callable, SupportsFloat, TypeVar

import orjson

from .collection import Collection
from .errors import (
    CollectionDropped,
    InvalidCollectionName,
    InvalidTTL,
    SerializationError,
)
from .names import MAX_COLLECTION_NAME
from .serializers import CompressedSerializer, JSONSerializer, Serializer
from .store import Store
from .store import open as open_store

__all__ = ["KeyValue", "DEFAULT_COLLECTION", "LONG_NAME_PREFIX", "NAMES_COLLECTION", "check_key", "check_value",
           "check_ttl", "stored_collection_name", "stores_json"]

T = TypeVar("T")

#: py-key-value's default collection name.
DEFAULT_COLLECTION = "default_collection"


def check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be str, not {type(key).__name__}")
    return key


#: Types that every serializer stores exactly as they are (checked with ``type(x) in``: fast).
_EXACT = frozenset({str, int, float, bool, type(None)})
#: orjson refuses containers nested 255 deep; the walk stops there too (and never recurses further).
_MAX_DEPTH = 255
_FRAGMENT: type | None = getattr(orjson, "Fragment", None)


def stores_json(serializer: Serializer) -> bool:
    """True when ``serializer`` writes JSON through orjson (``json``, ``jsonb``, ``json+zlib``, ...)."""
    while isinstance(serializer, CompressedSerializer):
        serializer = serializer.inner
    return isinstance(serializer, JSONSerializer)


def check_value(value: object, serializer: Serializer | None = None) -> dict[str, Any]:
    """``value`` as the protocol stores it, in one walk: a ``Mapping`` with ``str`` keys (else
    ``TypeError``), copied into a plain ``dict``.

    For a JSON serializer (:func:`stores_json`) the same walk goes down the whole value and makes
    it what JSON keeps exactly, as py-key-value's ``json.dumps`` does: dict keys that are ``str``
    subclasses (``StrEnum`` members, ``class Tag(str)``) become plain ``str`` (orjson refuses them),
    at every level; and the values orjson would silently turn into other ones are refused with
    :class:`~kvlite.errors.SerializationError`: a ``uuid.UUID`` (orjson writes its text), an
    ``enum.Enum`` member that is not also a ``str``, ``int`` or ``float`` (orjson writes its
    ``value``), an ``orjson.Fragment``.  Everything else is left for the serializer, which refuses
    what JSON cannot hold (sets, bytes, NaN, non-``str`` keys inside, ...).  Other serializers
    (``pickle``, ...) keep values exactly and get the value as given.
    """
    if not isinstance(value, Mapping):
        raise TypeError(f"value must be a Mapping[str, Any], not {type(value).__name__}")
    if serializer is None or not stores_json(serializer):
        for name in value:
            if not isinstance(name, str):
                raise TypeError(f"value keys must be str, not {type(name).__name__}")
        return dict(value)
    out: dict[str, Any] = {}
    exact = _EXACT
    for name, item in value.items():
        if type(name) is not str:
            if not isinstance(name, str):
                raise TypeError(f"value keys must be str, not {type(name).__name__}")
            name = str.__str__(name)
        out[name] = item if type(item) in exact else _json_exact(item, 2)
    return out


def _json_exact(value: Any, depth: int) -> Any:
    """``value`` (inside a protocol value, ``depth`` levels down) as JSON stores it exactly, with
    its dicts and lists copied; see :func:`check_value`."""
    exact = _EXACT
    if isinstance(value, dict):
        if depth > _MAX_DEPTH:
            raise SerializationError(f"value nested more than {_MAX_DEPTH} levels deep")
        out = {}
        for name, item in value.items():
            if type(name) is not str and isinstance(name, str):
                name = str.__str__(name)
            out[name] = item if type(item) in exact else _json_exact(item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        if depth > _MAX_DEPTH:
            raise SerializationError(f"value nested more than {_MAX_DEPTH} levels deep")
        return [item if type(item) in exact else _json_exact(item, depth + 1) for item in value]
    if isinstance(value, enum.Enum) and not isinstance(value, (str, int, float)):
        raise SerializationError(f"{type(value).__name__}.{value.name} is an Enum member: JSON would store "
                                 "its value instead; store the value itself")
    if isinstance(value, uuid.UUID):
        raise SerializationError("a UUID is not a JSON value (JSON would store its text): store str(uuid)")
    if _FRAGMENT is not None and isinstance(value, _FRAGMENT):
        raise SerializationError("an orjson.Fragment is not a value")
    return value


def check_ttl(ttl: SupportsFloat | None) -> float | None:
    """py-key-value's TTL rule (a positive number of seconds, not a bool), plus: finite."""
    if ttl is None:
        return None
    if isinstance(ttl, bool):
        raise InvalidTTL("ttl cannot be a bool")
    if not hasattr(type(ttl), "__float__"):  # SupportsFloat, as py-key-value checks: "10" is refused
        raise InvalidTTL(f"ttl must be a number of seconds, not {type(ttl).__name__}")
    try:
        seconds = float(ttl)
    except OverflowError:  # an int too large for a float (10**400)
        raise InvalidTTL("ttl is too large to be a number of seconds") from None
    except (TypeError, ValueError, ArithmeticError):
        raise InvalidTTL(f"ttl must be a number of seconds, not {type(ttl).__name__}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidTTL(f"ttl must be a positive, finite number of seconds, not {ttl!r}")
    return seconds


#: Collection names the store cannot hold as they are (longer than
#: :data:`kvlite.store.MAX_COLLECTION_NAME`) are stored as this prefix and the SHA-256 of the name.
#: Names that begin with the prefix are stored that way too, so no name can be another's stored form.
LONG_NAME_PREFIX = "kvlite-name:"
#: The collection that remembers the name behind each such stored name (stored name -> name).
NAMES_COLLECTION = LONG_NAME_PREFIX + "names"


def stored_collection_name(name: str) -> str:
    """The name under which the protocol stores the collection ``name`` (``name`` itself, the same
    object, unless it is too long for the store or begins with :data:`LONG_NAME_PREFIX`).

    Use it to reach a protocol collection with kvlite's own API:
    ``db.collection(stored_collection_name(name)).find(...)``.  Stable across processes and versions;
    distinct names never share a stored name (short ones are kept, the others are
    ``LONG_NAME_PREFIX`` + 64 hex digits of SHA-256).  NUL and text that is not valid Unicode
    (lone surrogates) are refused at any length, with ``InvalidCollectionName``.
    """
    if len(name) <= MAX_COLLECTION_NAME and not name.startswith(LONG_NAME_PREFIX):
        return name
    if "\x00" in name:
        raise InvalidCollectionName("collection names cannot contain NUL")
    try:
        data = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidCollectionName("collection names must be valid Unicode text") from None
    return LONG_NAME_PREFIX + hashlib.sha256(data).hexdigest()


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be an int >= 0 or None, not {limit!r}")


class KeyValue:
    """The py-key-value protocol over a kvlite store, synchronously.

    ``KeyValue(store)`` takes an open :class:`~kvlite.Store` (or a path, which
    it opens and then owns: ``close()`` closes it).
    """

    def __init__(self, store: Store | str | os.PathLike[str], *, default_collection: str = DEFAULT_COLLECTION) -> None:
        self._owns = isinstance(store, (str, os.PathLike))
        self.store: Store = open_store(store) if isinstance(store, (str, os.PathLike)) else store
        self.default_collection = default_collection
        # Collection objects by the name a call gives.  Looking a collection up reads the store's
        # registry (a query, or a round trip to a server), which would double the cost of a get;
        # an object whose collection another store dropped raises CollectionDropped, and the call
        # is then made again on the current one (see _run).
        self._open: dict[str, Collection] = {}

    def _name(self, collection: object) -> str:
        """The collection a call means: ``None`` or ``""`` is the default one; not a ``str``: ``TypeError``."""
        if collection is None:
            return self.default_collection
        if not isinstance(collection, str):
            raise TypeError(f"collection must be str or None, not {type(collection).__name__}")
        return collection or self.default_collection

    def _coll(self, collection: str | None) -> Collection:
        """The collection, created if missing (and its name remembered, when it is stored under another)."""
        name = self._name(collection)
        found = self._open.get(name)
        if found is not None:
            return found
        stored = stored_collection_name(name)
        if stored is not name:
            names = self.store.collection(NAMES_COLLECTION, serializer="json")
            if names.get(stored) != name:  # written before the collection exists: never a nameless one
                names.put(stored, name)
        found = self._open[name] = self.store.collection(stored)
        return found

    def _existing(self, collection: str | None) -> Collection | None:
        name = self._name(collection)
        found = self._open.get(name)
        if found is not None:
            return found
        stored = stored_collection_name(name)
        if stored not in self.store.collections():
            return None
        found = self._open[name] = self.store.collection(stored)
        return found

    def _reader(self, collection: str | None) -> Collection | None:
        """The collection to read from; ``None`` (read as empty) when a read-only store lacks it."""
        return self._existing(collection) if self.store.readonly else self._coll(collection)

    def _run(self, collection: str | None, op: Callable[[Collection | None], T], *, read: bool = False,
             existing: bool = False) -> T:
        """``op(the collection)``; made again on the current collection when the one this object
        had open was dropped meanwhile (by another store or process).  The collection is the one
        to read from with ``read`` (``None`` when a read-only store lacks it), the one that exists
        with ``existing`` (``None`` when it does not), else the one to write to (made if missing)."""
        find = self._existing if existing else self._reader if read else self._coll
        try:
            return op(find(collection))
        except CollectionDropped:
            self._open.pop(self._name(collection), None)
            return op(find(collection))

    # -- the protocol ----------------------------------------------------------------------

    def get(self, key: str, *, collection: str | None = None) -> dict[str, Any] | None:
        """The value of ``key``, or ``None`` when missing or expired."""
        check_key(key)
        return self._run(collection, lambda coll: None if coll is None else coll.get(key), read=True)

    def ttl(self, key: str, *, collection: str | None = None) -> tuple[dict[str, Any] | None, float | None]:
        """``(value, seconds left)``; ``(None, None)`` when missing; ttl ``None`` when it never expires."""
        check_key(key)

        def read(coll: Collection | None) -> tuple[dict[str, Any] | None, float | None]:
            if coll is None:
                return None, None
            with self.store.engine.reading():
                value = coll.get(key)
                if value is None:
                    return None, None
                return value, coll.ttl(key)

        return self._run(collection, read, read=True)

    def put(self, key: str, value: Mapping[str, Any], *, collection: str | None = None,
            ttl: SupportsFloat | None = None) -> None:
        """Store ``value`` under ``key`` (replacing it), expiring after ``ttl`` seconds if given."""
        check_key(key)
        seconds = check_ttl(ttl)
        self._run(collection, lambda coll: coll.put(key, check_value(value, coll.serializer), ttl=seconds))

    def delete(self, key: str, *, collection: str | None = None) -> bool:
        """Remove ``key``; ``True`` if it existed."""
        check_key(key)
        return self._run(collection, lambda coll: coll.delete(key))

    def get_many(self, keys: Sequence[str], *, collection: str | None = None) -> list[dict[str, Any] | None]:
        """Values for ``keys`` in the same positions (``None`` where missing)."""
        checked = [check_key(k) for k in keys]
        return self._run(collection, lambda coll: [None] * len(checked) if coll is None else coll.get_many(checked),
                         read=True)

    def ttl_many(self, keys: Sequence[str], *,
                 collection: str | None = None) -> list[tuple[dict[str, Any] | None, float | None]]:
        """``ttl`` for each key, in one read snapshot."""
        checked = [check_key(k) for k in keys]

        def read(coll: Collection | None) -> list[tuple[dict[str, Any] | None, float | None]]:
            if coll is None:
                return [(None, None)] * len(checked)
            with self.store.engine.reading():
                values = coll.get_many(checked)
                ttls = coll.ttl_many(checked)
            return [(None, None) if v is None else (v, t) for v, t in zip(values, ttls)]

        return self._run(collection, read, read=True)

    def put_many(self, keys: Sequence[str], values: Sequence[Mapping[str, Any]], *,
                 collection: str | None = None, ttl: SupportsFloat | None = None) -> None:
        """Store every ``keys[i] -> values[i]`` in one transaction (all or none)."""
        if len(keys) != len(values):
            raise ValueError("put_many called but a different number of keys and values were provided")
        checked = [check_key(k) for k in keys]
        seconds = check_ttl(ttl)

        def write(coll: Collection) -> None:
            serializer = coll.serializer
            coll.put_many([(k, check_value(v, serializer)) for k, v in zip(checked, values)], ttl=seconds)

        self._run(collection, write)

    def delete_many(self, keys: Sequence[str], *, collection: str | None = None) -> int:
        """Remove ``keys`` in one transaction; returns how many existed."""
        checked = [check_key(k) for k in keys]
        return self._run(collection, lambda coll: coll.delete_many(checked))

    # -- the optional segments ----------------------------------------------------------------

    def keys(self, collection: str | None = None, *, limit: int | None = None) -> list[str]:
        """Keys of ``collection`` in insertion order (at most ``limit``; a negative one is a ``ValueError``)."""
        _check_limit(limit)

        def read(coll: Collection | None) -> list[str]:
            out: list[str] = []
            for key in () if coll is None else coll.keys():
                if limit is not None and len(out) >= limit:
                    break
                out.append(key)
            return out

        return self._run(collection, read, existing=True)

    def collections(self, *, limit: int | None = None) -> list[str]:
        """Collection names as they were given, oldest first (at most ``limit``; a negative one is a
        ``ValueError``)."""
        _check_limit(limit)
        names = self.store.collections()
        if any(name.startswith(LONG_NAME_PREFIX) for name in names):
            given: dict[Any, Any] = {}
            if NAMES_COLLECTION in names:
                given = dict(self.store.collection(NAMES_COLLECTION, serializer="json").items())
            names = [given.get(name, name) for name in names if name != NAMES_COLLECTION]
        return names if limit is None else names[:limit]

    def _atomic(self) -> Any:
        """A ``transaction()`` block where the store has them; Redis and the per-collection layout
        do not (there each drop is atomic on its own)."""
        if self.store.supports_transactions:
            return self.store.transaction()
        return contextlib.nullcontext()

    def destroy(self) -> bool:
        """Drop every collection.  Returns ``True``."""
        self._open.clear()
        with self._atomic():
            for name in self.store.collections():
                self.store.drop_collection(name)
        return True

    def destroy_collection(self, collection: str) -> bool:
        """Drop ``collection``; ``True`` if it existed."""
        if not isinstance(collection, str):
            raise TypeError(f"collection must be str, not {type(collection).__name__}")
        if not collection:
            return False  # no collection is named "" ("" means the default one only where None does)
        stored = stored_collection_name(collection)
        self._open.pop(collection, None)
        if stored is collection:
            return self.store.drop_collection(stored)
        with self._atomic():  # without transactions, the name is forgotten just after the drop
            dropped = self.store.drop_collection(stored)
            if NAMES_COLLECTION in self.store.collections():
                self.store.collection(NAMES_COLLECTION, serializer="json").delete(stored)
        return dropped

    def cull(self) -> None:
        """Delete every expired entry now."""
        self.store.purge_expired()

    def close(self) -> None:
        """Close the store if this object opened it."""
        if self._owns:
            self.store.close()

    def __enter__(self) -> KeyValue:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
