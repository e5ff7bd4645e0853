"""Collection: a named set of ``key -> value`` entries with TTL, the same on every engine.

Every method is written here once, over the :class:`~kvlite.backends.base.Table`
an engine gives for the collection: this module validates arguments
(:mod:`kvlite.keys`, :mod:`kvlite.ttl`), encodes and decodes values
(:mod:`kvlite.serializers`, typed models), counts operations for
:meth:`Collection.stats`, and hands queries to :mod:`kvlite.query`; the
table stores, expires and iterates.

Expiry: an entry whose expiry time is at or before the store's clock is
invisible to every read at once; engines delete expired entries when their
key is written again, on :meth:`Collection.purge_expired`, and on their own
schedule (SQLite: every 1024 writes through a collection object).
"""

from __future__ import annotations

import contextlib
import datetime
import math
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from . import keys as _keys
from .backends.base import KEEP, MISSING, Table, entry_pairs
from .dictview import DictView
from .errors import InvalidKey, InvalidValue, KvliteError, NotSupported, QuerySyntaxError
from .models import ModelAdapter
from .serializers import JSONSerializer, Serializer, decode, decode_error, encoder
from .ttl import expiry, remaining

if TYPE_CHECKING:
    from .store import Store

__all__ = ["ABSENT", "Collection", "MISSING"]

_MAX_KEY = _keys.MAX_KEY_LENGTH
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1
_normalize = _keys.normalize


class _Absent:
    """The type of :data:`ABSENT` (one instance; it pickles and copies as itself)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "kvlite.ABSENT"

    def __reduce__(self) -> str:
        return "ABSENT"


#: ``expected`` of :meth:`Collection.compare_and_set` meaning "only if the key is missing (or
#: expired)"; also ``kvlite.ABSENT``.  It equals nothing but itself, and is never stored.
ABSENT: Any = _Absent()


def _number(value: Any, what: str) -> int | float:
    """``value`` as the plain ``int`` or ``float`` an :meth:`Collection.incr` operand must be."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(f"{what} must be an int or a float (bool is not a number), "
                           f"not {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValue(f"{what} must be a finite number, not {value!r}")
        return float(value)
    return int(value)


def _sum(current: int | float, delta: int | float) -> int | float:
    """``current + delta`` as :meth:`Collection.incr` stores it (ints exact within 64 bits)."""
    result = current + delta
    if isinstance(result, int):
        if not _INT_MIN <= result <= _INT_MAX:
            raise InvalidValue(f"{current} + {delta} = {result} is beyond the 64-bit integer range "
                               f"[-2**63, 2**63 - 1] a counter keeps exactly; nothing was changed")
    elif not math.isfinite(result):
        raise InvalidValue(f"{current!r} + {delta!r} overflows a float; nothing was changed")
    return result


_encode_json = encoder(JSONSerializer())


def _json_text(patch: Any) -> str:
    """A merge patch as JSON text (it must be JSON, whatever the collection's serializer)."""
    return str(_encode_json(patch))  # json's encoder gives a str


def _counter_path(path: str) -> list[str]:
    """The member names of ``path``, a JSONPath singular query of plain names (``$.stats.views``)."""
    from .query import rfc9535

    parts = rfc9535.field_path(rfc9535.parse(path))
    if parts is None:
        raise QuerySyntaxError("incr() needs a singular query of member names, such as $.stats.views "
                               "(no wildcards, filters, slices or descendants)", path=path, engine=rfc9535.ENGINE)
    if any(not isinstance(part, str) for part in parts):
        raise NotSupported(f"incr() counts in members of JSON objects; {path!r} has an array index")
    return parts  # type: ignore[return-value]


class Collection:
    """A named set of ``key -> value`` entries in a :class:`~kvlite.Store`.

    Get one with ``store.collection(name)``.  Every method is atomic; the
    ``_many`` methods run in one transaction each.  Reads never see expired
    entries.  Keys: see :mod:`kvlite.keys` (``str``, ``bytes``, ``int``,
    ``float``, ``bool``; others raise :class:`~kvlite.errors.InvalidKey`).
    Once the store is closed every call raises
    :class:`~kvlite.errors.StoreClosed`; once the collection is dropped (by
    any client), :class:`~kvlite.errors.CollectionDropped`.
    """

    def __init__(self, store: Store, name: str, table: Table, serializer: Serializer,
                 model: type | None = None) -> None:
        self.store = store
        self.name = name
        self.serializer = serializer
        self.model = model
        self._model = ModelAdapter(model) if model is not None else None
        self._table = table
        self._clock = store.engine.clock
        self._dict: DictView | None = None
        # Operation counters for stats(); plain ints, cheap enough to leave on.
        self._n_gets = self._n_hits = self._n_puts = self._n_deletes = 0
        self._loads = serializer.loads
        # value -> stored data, or SerializationError: what every write calls once per value.
        self._encode_plain = encoder(serializer)
        self._encode = self._encode_plain if self._model is None else self._encode_model
        # How a table decodes values: None is the serializer's own decoding (engines may inline it).
        self._decoder = None if self._model is None else self._decode

    # -- encoding ---------------------------------------------------------------------

    def _encode_model(self, value: Any) -> str | bytes:
        assert self._model is not None
        return self._encode_plain(self._model.dump(value))

    def _decode_raw(self, data: str | bytes) -> Any:
        """The stored value as the serializer gives it back (a dict, for typed collections)."""
        return decode(self.serializer, data)

    def _decode(self, data: str | bytes) -> Any:
        value = decode(self.serializer, data)
        if self._model is not None:
            return self._model.load(value)
        return value

    def _raw_items(self, *, reverse: bool = False) -> Iterator[tuple[Any, Any]]:
        """``(key, document as plain data)``: what queries evaluated in Python walk."""
        return self._table.items(reverse, None if self._model is None else self._decode_raw)

    # -- single keys ------------------------------------------------------------------

    def get(self, key: Any, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` when it is missing or expired.

        :raises InvalidKey: unsupported key type (a missing key is never an error)."""
        # The hot path of kvlite, kept to few calls: a str key needs no conversion here.
        if type(key) is not str or len(key) > _MAX_KEY:
            if type(key) is not int or not _INT_MIN <= key <= _INT_MAX:  # a 64-bit int is its own form
                key = _normalize(key)
        data = self._table.get(key)
        self._n_gets += 1
        if data is MISSING:
            return default
        self._n_hits += 1
        if self._model is None:
            try:
                return self._loads(data)
            except KvliteError:
                raise
            except Exception as exc:
                raise decode_error(self.serializer, exc) from exc
        return self._decode(data)

    def put(self, key: Any, value: Any, *, ttl: float | datetime.timedelta | None = None) -> None:
        """Store ``value`` under ``key``, replacing any previous value and TTL.

        ``ttl`` is in seconds or a ``timedelta`` (``None``: never expires).  An
        existing key keeps its place in iteration order (as in ``dict``); a key
        that had expired counts as new and moves to the end.

        :raises InvalidKey: unsupported key type.
        :raises InvalidTTL: ``ttl`` is not a positive finite number.
        :raises SerializationError: the serializer cannot encode ``value`` (nothing written).
        """
        if type(key) is not str or len(key) > _MAX_KEY:
            if type(key) is not int or not _INT_MIN <= key <= _INT_MAX:  # a 64-bit int is its own form
                key = _normalize(key)
        now = self._clock()
        expires = None if ttl is None else expiry(ttl, now)
        self._table.put(key, self._encode(value), now, expires)
        self._n_puts += 1

    def delete(self, key: Any) -> bool:
        """Remove ``key``; ``True`` if a live entry was removed, ``False`` if none (or it had expired)."""
        if type(key) is not int or not _INT_MIN <= key <= _INT_MAX:  # a str is checked: see Table
            key = _normalize(key)
        deleted = self._table.delete(key, self._clock())
        self._n_deletes += deleted
        return deleted

    def ttl(self, key: Any) -> float | None:
        """Seconds until ``key`` expires; ``None`` when it never expires or is missing."""
        if type(key) is not str or len(key) > _MAX_KEY:
            if type(key) is not int or not _INT_MIN <= key <= _INT_MAX:  # a 64-bit int is its own form
                key = _normalize(key)
        now = self._clock()
        expires = self._table.expiry(key, now)
        return None if expires is MISSING else remaining(expires, now)

    def __contains__(self, key: Any) -> bool:
        try:
            if type(key) is not str or len(key) > _MAX_KEY:
                if type(key) is not int or not _INT_MIN <= key <= _INT_MAX:
                    key = _normalize(key)
            return self._table.expiry(key, self._clock()) is not MISSING
        except InvalidKey:
            return False

    # -- many keys --------------------------------------------------------------------

    def get_many(self, keys: Iterable[Any], default: Any = None) -> list[Any]:
        """Values for ``keys``, in the same positions (``default`` where missing); one read snapshot."""
        found = self._table.get_many(_keys.normalize_many(keys, "get_many"), self._clock())
        out = [default if data is MISSING else self._decode(data) for data in found]
        self._n_gets += len(found)
        self._n_hits += sum(data is not MISSING for data in found)
        return out

    def put_many(self, entries: Mapping[Any, Any] | Iterable[tuple[Any, Any]], *,
                 ttl: float | datetime.timedelta | None = None) -> int:
        """Store every ``(key, value)`` of a mapping or iterable of pairs in one transaction.

        All land or none does: a bad key or value anywhere raises and leaves the
        collection as it was.  Returns the number of entries written.
        """
        pairs = entry_pairs(entries)
        now = self._clock()
        written = self._table.put_many(pairs, self._encode, now, expiry(ttl, now))
        self._n_puts += written
        return written

    def delete_many(self, keys: Iterable[Any]) -> int:
        """Remove every key in ``keys`` in one transaction; returns how many live entries were removed."""
        removed = self._table.delete_many(_keys.normalize_many(keys, "delete_many"), self._clock())
        self._n_deletes += removed
        return removed

    def ttl_many(self, keys: Iterable[Any]) -> list[float | None]:
        """:meth:`ttl` for each key, in the same positions; one read snapshot."""
        now = self._clock()
        found = self._table.expiry_many(_keys.normalize_many(keys, "ttl_many"), now)
        return [None if expires is MISSING else remaining(expires, now) for expires in found]

    # -- compound operations (one statement or one transaction each) ---------------------

    def pop(self, key: Any, default: Any = MISSING) -> Any:
        """Remove ``key`` and return its value; ``default`` if missing, else ``KeyError``.

        A value that cannot be decoded raises and stays stored."""
        try:
            normalized = _normalize(key)
        except InvalidKey:
            value = MISSING
        else:
            value = self._table.pop(normalized, self._clock(), self._decode)
        if value is MISSING:
            if default is MISSING:
                raise KeyError(key)
            return default
        self._n_deletes += 1
        return value

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the most recently inserted ``(key, value)``; ``KeyError`` when empty."""
        item = self._table.popitem(self._clock(), self._decode)
        if item is None:
            raise KeyError("popitem(): dictionary is empty")
        self._n_deletes += 1
        return item

    def setdefault(self, key: Any, default: Any = None, *, ttl: float | None = None) -> Any:
        """The value of ``key``; if missing, store ``default`` (with ``ttl``) and return it.

        ``default`` is encoded only when it is stored (as in ``dict``, a default given for a
        key that exists is never looked at); a bad ``ttl`` is an error either way."""
        key = _normalize(key)
        now = self._clock()
        expires = expiry(ttl, now)
        existing = self._table.setdefault(key, lambda: self._encode(default), now, expires, self._decode)
        return default if existing is MISSING else existing

    # -- changing values where they are (one atomic read-and-write each) ------------------

    def incr(self, key: Any, delta: int | float = 1, *, path: str | None = None,
             default: int | float = 0) -> int | float:
        """Add ``delta`` to a number, atomically, and return the new number.

        Without ``path`` the stored value is the number (a missing or expired key starts at
        ``default``).  With ``path``, a JSONPath singular query of member names
        (``"$.stats.views"``; ``"$"`` is the value itself), the number is that member of the
        JSON object stored under ``key``; missing members on the way are created (as ``{}``,
        the last one with ``default``), and a missing key is the document ``{}``.  The entry
        keeps its TTL (a new one never expires) and its place in the order.

        The read, the addition and the write happen in one atomic step of the engine (no
        other thread, process or client writes the entry in between), so concurrent calls
        never lose an increment.  Values of any serializer are read and written through it.

        Numbers: as Python adds them.  ``int + int`` is an ``int``, exact, and must stay within
        64 bits (``-2**63 .. 2**63 - 1``, what SQLite and JSON readers elsewhere keep exactly);
        anything with a ``float`` is a ``float`` and must stay finite.

        :raises InvalidValue: ``delta`` or ``default`` is not an ``int``/``float`` (``bool`` is
            not a number) or not finite; the stored number (or the member ``path`` names) is not
            a number; a value on the way to it is not a JSON object; the result is beyond those
            limits.  Nothing is changed.
        :raises QuerySyntaxError: ``path`` does not parse, or is not a singular query of names.
        :raises NotSupported: ``path`` has an array index, or the engine cannot do it atomically.
        """
        delta = _number(delta, "delta")
        default = _number(default, "default")
        names = None if path is None else _counter_path(path)
        if not names:
            names = None
        key = _normalize(key)
        model = self._model
        if model is not None and names is None:
            raise InvalidValue(f"{self.name!r} is a typed collection: its values are documents, "
                               "so incr() needs a path to a number in them")

        def add(data: Any) -> tuple[Any, Any]:
            if names is None:
                current = default if data is MISSING else self._decode_raw(data)
                if isinstance(current, bool) or not isinstance(current, (int, float)):
                    raise InvalidValue(f"the value of {key!r} is a {type(current).__name__}, not a number")
                new = _sum(current, delta)
                return self._encode_plain(new), new
            doc = {} if data is MISSING else self._decode_raw(data)
            node = doc
            for depth, name in enumerate(names):
                if not isinstance(node, dict):
                    where = "$" + "".join(f"[{n!r}]" for n in names[:depth])
                    raise InvalidValue(f"{where} of {key!r} is a {type(node).__name__}, not a JSON object")
                if depth == len(names) - 1:
                    break
                node = node.setdefault(name, {})
            current = node.get(names[-1], default)
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise InvalidValue(f"{path} of {key!r} is a {type(current).__name__}, not a number")
            new = node[names[-1]] = _sum(current, delta)
            if model is not None:
                model.load(doc)  # still a valid document (raises ValidationError: nothing written)
            return self._encode_plain(doc), new

        result = self._table.modify(key, add, self._clock(), KEEP)
        self._n_puts += 1
        return result  # type: ignore[no-any-return]

    def compare_and_set(self, key: Any, expected: Any, value: Any, *,
                        ttl: float | datetime.timedelta | None = None) -> bool:
        """Store ``value`` under ``key`` only if the stored value equals ``expected``, atomically;
        whether it was stored.

        Equality is Python's ``==`` between the stored value as :meth:`get` returns it (decoded:
        a JSON array is a ``list``, a typed collection's value a model instance) and
        ``expected``: so ``1``, ``1.0`` and ``True`` are equal, dicts equal whatever their key
        order, and a tuple never equals the list JSON gives back.  ``expected=kvlite.ABSENT``
        means "only if the key is missing (or expired)".  ``ttl`` is as in :meth:`put` (the
        written entry gets it; ``None``: never expires); a written key keeps its place.

        No other write to the entry can come between the comparison and the write, so a retry
        loop (read, compute, ``compare_and_set``, again if ``False``) never loses an update.

        :raises InvalidTTL: bad ``ttl``.  :raises SerializationError: ``value`` cannot be
            encoded (checked before anything is read).  Nothing is written in either case.
        :raises NotSupported: the engine cannot do it atomically.
        """
        key = _normalize(key)
        now = self._clock()
        expires = None if ttl is None else expiry(ttl, now)
        new = self._encode(value)
        decode = self._decode

        def swap(data: Any) -> tuple[Any, bool]:
            if data is MISSING:
                same = expected is ABSENT
            else:
                same = expected is not ABSENT and bool(decode(data) == expected)
            return (new if same else MISSING), same

        wrote = self._table.modify(key, swap, now, expires)
        self._n_puts += wrote
        return bool(wrote)

    def patch(self, key: Any, patch: Any, *, create: bool = False) -> Any:
        """Apply the JSON merge patch ``patch`` (RFC 7396) to the document under ``key``,
        atomically, and return the new document.

        A ``patch`` that is a dict changes the document member by member: ``None`` removes a
        member, a dict merges into the member of that name, anything else replaces it; a
        ``patch`` that is not a dict replaces the whole value (see :mod:`kvlite.merge_patch`).
        The entry keeps its TTL and its place in the order.  Concurrent patches of different
        members of one document all land: the read and the write are one atomic step (one
        ``UPDATE ... SET value = json_patch(value, ?)`` on SQLite for JSON collections).  Values
        of other serializers (and typed collections, whose result must validate) are patched
        in Python inside the engine's atomic step, with the same result.

        :raises KeyError: ``key`` is missing or expired, unless ``create=True`` (then the patch
            applies to ``{}`` and the entry is new, without a TTL).
        :raises SerializationError: ``patch`` is not JSON (dicts with ``str`` keys, lists,
            ``str``, numbers, ``bool``, ``None``), or the result cannot be stored.
        :raises ValidationError: a typed collection's result is not a valid model.
        Nothing is changed when it raises.
        """
        from .merge_patch import merge_patch

        key = _normalize(key)
        text = _json_text(patch)  # the patch must be JSON whatever the serializer
        model = self._model

        def change(data: Any) -> tuple[Any, Any]:
            if data is MISSING and not create:
                raise KeyError(key)
            document = merge_patch({} if data is MISSING else self._decode_raw(data), patch)
            if model is not None:
                model.load(document)  # still a valid document (raises: nothing written)
            new = self._encode_plain(document)
            return new, new

        plain_json = self.serializer.json and model is None
        data = self._table.patch(key, text if plain_json else None, change, self._clock())
        self._n_puts += 1
        return self._decode(data)

    def patch_where(self, query: str, patch: Any) -> int:
        """Apply the JSON merge patch ``patch`` (as :meth:`patch`) to every document the JSONPath
        filter ``query`` selects (``"$[?@.status == 'new']"``; ``"$[*]"``: all); how many.

        All of it is one transaction (each document keeps its TTL and place).  When SQL decides
        the filter exactly (see :meth:`explain`) it is one ``UPDATE ... WHERE <filter>``; else
        the matching keys are found first (held in memory), then each document is changed
        after its filter is checked again.  The count is of documents selected and written,
        also when the patch leaves one as it was.  On Redis (no transactions) each document is
        changed atomically on its own.

        :raises QuerySyntaxError: ``query`` is not an RFC 9535 query that selects whole documents
            (``$.*.name`` selects values inside them; a filter reading ``$`` reads the collection).
        :raises SerializationError: ``patch`` is not JSON.  Nothing is changed when it raises.
        """
        from .merge_patch import merge_patch
        from .query import documents_query

        parsed = documents_query(query, "patch_where")
        text = _json_text(patch)
        model = self._model

        def change(document: Any) -> Any:
            document = merge_patch(document, patch)
            if model is not None:
                model.load(document)
            return self._encode_plain(document)

        changed = self._table.patch_where(parsed, text if self.serializer.json and model is None else None,
                                          change, self._clock())
        self._n_puts += changed
        return changed

    def delete_where(self, query: str) -> int:
        """Remove every document the JSONPath filter ``query`` selects (``"$[?@.age < 18]"``); how
        many.  One transaction; one ``DELETE ... WHERE <filter>`` when SQL decides the filter
        exactly, else as :meth:`patch_where` (keys first, each checked again as it is removed).

        :raises QuerySyntaxError: as :meth:`patch_where`."""
        from .query import documents_query

        removed = self._table.delete_where(documents_query(query, "delete_where"), self._clock())
        self._n_deletes += removed
        return removed

    def count_by(self, path: str, query: str | None = None) -> list[tuple[Any, int]]:
        """How many documents hold each value at ``path`` (a JSONPath singular query,
        ``"$.status"``), among those the filter ``query`` selects when given: ``[(value, count),
        ...]``, most frequent first (ties: the value met first in insertion order first).

        Documents without ``path`` are not counted; a JSON ``null`` there counts as ``None``.
        Values are compared as JSON: ``1`` and ``1.0`` are one value, ``true`` and ``1`` two;
        lists and objects count by equality (member order does not matter).  One ``GROUP BY``
        in SQL where the engine can (SQLite JSON collections, when SQL decides ``query``;
        PostgreSQL without ``query``); else
        the documents are streamed and counted in Python, in memory bounded by the number of
        distinct values.

        :raises QuerySyntaxError: ``path`` is not a singular query, or ``query`` does not
            select whole documents (as :meth:`patch_where`)."""
        from .query import count_by

        return count_by(self, path, query)

    # -- whole collection -------------------------------------------------------------

    def keys(self, prefix: str | bytes | None = None, *, start: Any = None, stop: Any = None,
             reverse: bool = False) -> Iterator[Any]:
        """Every live key, in insertion order (or reversed), streaming.

        With ``prefix``, ``start`` or ``stop``: only the keys that start with ``prefix`` (a
        ``str`` or ``bytes``) and lie in ``[start, stop)``, in *key order* (or reversed): ``str``
        keys by code point, ``bytes`` by byte, numbers (``int``, ``float``, ``bool``)
        numerically.  A range covers one kind of key, the bounds' (``start="a"`` never yields
        ``bytes`` or ``int`` keys).  It is read through the engine's index of keys: no scan of
        the collection, no sort in memory (memory:// keeps a sorted list of keys from the first
        such call on).

        Iteration reads in pages, each its own short read (a slow consumer holds no lock):
        a key added during the loop may not appear, none appears twice, and an entry
        changed or deleted before the loop reaches it is seen as it is then.

        :raises InvalidKey: ``prefix`` is not ``str``/``bytes``, or a bound is not a key.
        :raises InvalidRange: ``start > stop``, or bounds of different kinds.
        :raises NotSupported: the engine keeps no ordered index of keys (PostgreSQL, Redis).
        """
        keys = _keys.key_range(prefix, start, stop)
        if keys is not None:
            return self._table.key_range(keys, reverse, False)
        return self._table.keys(reverse)

    def items(self, prefix: str | bytes | None = None, *, start: Any = None, stop: Any = None,
              reverse: bool = False) -> Iterator[tuple[Any, Any]]:
        """Every live ``(key, value)``, in insertion order (or reversed), decoded one at a time;
        ``prefix``, ``start`` and ``stop`` select a range in key order, as in :meth:`keys`."""
        keys = _keys.key_range(prefix, start, stop)
        if keys is not None:
            return self._table.key_range(keys, reverse, self._decoder)
        return self._table.items(reverse, self._decoder)

    def values(self, prefix: str | bytes | None = None, *, start: Any = None, stop: Any = None,
               reverse: bool = False) -> Iterator[Any]:
        """Every live value, in insertion order (or reversed); ``prefix``, ``start`` and ``stop``
        as in :meth:`keys`."""
        return (value for _, value in self.items(prefix, start=start, stop=stop, reverse=reverse))

    def __iter__(self) -> Iterator[Any]:
        return self._table.keys(False)

    def count(self, path: str | None = None, *, engine: str = "jsonpath") -> int:
        """Number of live (not expired) entries; with ``path``, the number of matches of the query
        (``engine`` as in :meth:`find`: one of :data:`kvlite.query.ENGINES`, ``"jsonpath"``,
        RFC 9535 JSONPath, by default)."""
        if path is not None:
            from .query import count

            return count(self, path, engine=engine)
        return self._table.count(self._clock())

    def __len__(self) -> int:
        return self._table.count(self._clock())

    def purge_expired(self) -> int:
        """Delete expired entries now; returns how many."""
        return self._table.purge(self._clock())

    def clear(self) -> None:
        """Remove every entry."""
        self._table.clear()

    def stats(self) -> dict[str, Any]:
        """Counters and sizes: ``gets``, ``hits``, ``misses``, ``puts``, ``deletes``
        (operations through this object since it was made), ``expirations``
        (expired entries it purged), and from the storage: ``rows`` (live
        entries), ``expired_pending`` (expired, not yet purged), ``bytes``
        (stored value bytes)."""
        rows, size, pending = self._table.sizes(self._clock())
        return {
            "collection": self.name,
            "serializer": self.serializer.name,
            "gets": self._n_gets,
            "hits": self._n_hits,
            "misses": self._n_gets - self._n_hits,
            "puts": self._n_puts,
            "deletes": self._n_deletes,
            "expirations": self._table.expirations,
            "rows": rows,
            "expired_pending": pending,
            "bytes": size,
        }

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Collection]:
        """An atomic block over this collection: every write in it lands, or none does.

        The same as ``store.transaction()`` on engines that hold all collections in one
        transaction space; in a per-collection folder it is a transaction of this
        collection's own file (``store.transaction()`` raises there).

        :raises NotSupported: the engine cannot make several calls atomic.
        """
        with self._table.engine.transaction():
            yield self

    # -- queries (kvlite.query) ---------------------------------------------------------

    def find(self, path: str, *, engine: str = "jsonpath", limit: int | None = None, offset: int = 0,
             order_by: str | None = None, desc: bool = False,
             missing_last: bool = False) -> Iterator[tuple[Any, Any]]:
        """Yield ``(key, value)`` for every match of ``path``, streaming.

        ``engine`` is one of :data:`kvlite.query.ENGINES` and names ``path``'s
        language: ``"jsonpath"`` (the default) is RFC 9535 JSONPath
        (``$[?@.age > 30 && @.tags]``); ``"jsonpath-ng"`` is jsonpath-ng's
        extended dialect (``$[?(@.age > 30 & @.tags)]``, ``sorted``, ``=~``);
        ``"objectpath"`` is ObjectPath; ``"jmespath"`` is JMESPath.  Under RFC
        9535 an index or slice selects nothing of the root object (``$[0]``
        matches nothing: page with ``limit``/``offset``), and comparisons do not
        coerce types.  The root ``$`` is the collection
        seen as the mapping ``{key: document}``; the matches, their values and
        their order are exactly what the engine returns on that mapping loaded
        in memory (see ``docs/queries.md``).  ``key`` is the key of the
        document a match came from (``None`` when a query over the whole
        collection, such as ``count($.*)``, has no single source).

        ``order_by`` (a plain field path, ``"$.age"``; ``"-$.age"`` or
        ``desc=True`` for descending) orders the *documents* before the path
        runs: documents whose field is missing or ``null`` first, then
        numbers, then strings, then arrays and objects (descending: the
        reverse); with ``missing_last=True`` the documents without a value come
        last in either direction.  Ties keep insertion order.  ``offset`` and
        ``limit`` page through the matches; reading stops as soon as ``limit``
        matches are out.

        :raises QuerySyntaxError: the path does not parse in ``engine``'s language.
        :raises NotSupported: ``order_by`` is not a plain field path, or the collection is not JSON.
        :raises ValueError: ``engine`` is not one of :data:`kvlite.query.ENGINES`; ``desc`` or
            ``missing_last`` without ``order_by``.
        """
        from .query import find

        return find(self, path, engine=engine, limit=limit, offset=offset, order_by=order_by, desc=desc,
                    missing_last=missing_last)

    def select(self, path: str, **options: Any) -> Iterator[Any]:
        """Like :meth:`find`, yielding only the matched values (the same ``engine``, one of
        :data:`kvlite.query.ENGINES`; ``"jsonpath"``, RFC 9535 JSONPath, by default)."""
        return (value for _, value in self.find(path, **options))

    def explain(self, path: str, *, engine: str = "jsonpath", order_by: str | None = None,
                desc: bool = False, missing_last: bool = False) -> dict[str, Any]:
        """How :meth:`find` would run ``path``: which part the engine narrows (in SQL, with its
        query plan, so you can see an index being used) and which runs in Python, and whether
        it streams.  ``engine`` is one of :data:`kvlite.query.ENGINES`, as in :meth:`find`:
        ``"jsonpath"`` (RFC 9535 JSONPath, the default), ``"jsonpath-ng"`` (jsonpath-ng's
        extended dialect), ``"objectpath"`` or ``"jmespath"``."""
        from .query import explain

        return explain(self, path, engine=engine, order_by=order_by, desc=desc, missing_last=missing_last)

    def create_index(self, path: str) -> str:
        """Create an index on the field ``path`` (``"$.age"``, ``"$.address.city"``; JSON
        collections on SQL engines): filters and ``order_by`` on it then use it.  Idempotent;
        returns the normalised path.

        :raises NotSupported: the engine has no secondary indexes."""
        return self._table.create_index(path)

    def drop_index(self, path: str) -> bool:
        """Drop the index on ``path``; ``False`` if there was none."""
        return self._table.drop_index(path)

    def indexes(self) -> list[str]:
        """Paths of this collection's indexes."""
        return self._table.indexes()

    def dict(self) -> DictView:
        """A :class:`~kvlite.DictView` over this collection: a ``MutableMapping`` that behaves like ``dict``."""
        if self._dict is None:
            self._dict = DictView._over(self)
        return self._dict

    def __repr__(self) -> str:
        return f"<kvlite.Collection {self.name!r} serializer={self.serializer.name!r} in {self.store.path!r}>"
