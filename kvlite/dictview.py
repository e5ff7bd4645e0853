"""DictView: a ``MutableMapping`` over one collection that behaves like ``dict``.

What matches ``dict`` exactly: key types and equality (``1 == 1.0 == True`` is
one key; ``"a"``, ``b"a"``, ``1`` are three), insertion order (updating a key
keeps its place; deleting and re-adding moves it to the end), ``KeyError`` and
``TypeError`` where ``dict`` raises them, ``==`` with any mapping, and every
``dict`` method: ``get``, ``setdefault``, ``pop``, ``popitem`` (LIFO),
``update``, ``|``, ``|=``, ``copy``, ``fromkeys``, ``reversed``, ``clear``.

What cannot match, because the data lives in a file:

* Values are stored copies.  ``d[k].append(x)`` changes a copy, not the
  stored value: write it back with ``d[k] = value`` (the same rule as
  ``shelve`` without ``writeback``).  ``d.setdefault(k, [])`` returns the
  stored value, a new object on every call once it exists.
* Values go through the collection's serializer (JSON by default: tuples come
  back as lists).  Keys must be ``str``, ``bytes``, ``int``, ``float`` or
  ``bool``: other hashable keys raise :class:`~kvlite.errors.InvalidKey` (a
  ``TypeError``) when written, and are simply absent when read.
* Changing the collection while iterating over it does not raise
  ``RuntimeError``; iteration reads pages of rows in insertion order and may
  or may not see the changes.

``DictView()`` with no collection (and ``copy()``, ``fromkeys()``, ``|``) make
a view over a new private in-memory store, so a ``DictView`` can stand in for
``dict`` anywhere, including ``type(d)(...)``.
"""

from __future__ import annotations

import itertools
from collections.abc import ItemsView, KeysView, Mapping, MutableMapping, ValuesView
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from .backends.base import MISSING
from .errors import InvalidKey, KvliteError

if TYPE_CHECKING:
    from .collection import Collection


class DictView(MutableMapping):  # type: ignore[type-arg]
    """A ``dict`` whose contents live in a kvlite collection.

    Get one with ``collection.dict()`` or ``store.dict(name)``.  Every
    operation is atomic; compound ones (``setdefault``, ``pop``, ``popitem``,
    ``update``) are one statement or one transaction each.
    """

    _collection: Collection

    def __init__(self, /, *args: Any, **kwargs: Any) -> None:
        """Like ``dict(...)``: a view over a new private in-memory store, filled from the arguments."""
        # The package's one lazy import: the Store module imports the Collection, which
        # imports this module for Collection.dict(); a DictView made on its own needs a Store.
        from .store import Store

        self._collection = Store(":memory:").collection("dict")
        if args or kwargs:
            self.update(*args, **kwargs)

    @classmethod
    def _over(cls, collection: Collection) -> DictView:
        view = cls.__new__(cls)
        view._collection = collection
        return view

    @property
    def collection(self) -> Collection:
        """The :class:`~kvlite.Collection` this view reads and writes."""
        return self._collection

    # -- the five abstract methods --------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        hash(key)
        try:
            value = self._collection.get(key, MISSING)
        except InvalidKey:
            raise KeyError(key) from None
        if value is MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        hash(key)
        self._collection.put(key, value)

    def __delitem__(self, key: Any) -> None:
        hash(key)
        try:
            deleted = self._collection.delete(key)
        except InvalidKey:
            deleted = False
        if not deleted:
            raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return self._collection.keys()

    def __len__(self) -> int:
        return self._collection.count()

    # -- faster or dict-exact versions of the mixin methods --------------------------

    def __contains__(self, key: object) -> bool:
        hash(key)
        return key in self._collection

    def __reversed__(self) -> Iterator[Any]:
        return self._collection.keys(reverse=True)

    def get(self, key: Any, default: Any = None, /) -> Any:
        hash(key)
        try:
            return self._collection.get(key, default)
        except InvalidKey:
            return default

    def keys(self) -> KeysView[Any]:
        return _KeysView(self)

    def items(self) -> ItemsView[Any, Any]:
        return _ItemsView(self)

    def values(self) -> ValuesView[Any]:
        return _ValuesView(self)

    def pop(self, key: Any, default: Any = MISSING, /) -> Any:
        hash(key)
        return self._collection.pop(key, default)

    def popitem(self) -> tuple[Any, Any]:
        return self._collection.popitem()

    def setdefault(self, key: Any, default: Any = None, /) -> Any:
        hash(key)
        return self._collection.setdefault(key, default)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Like ``dict.update``, as one ``put_many``: all pairs land, or none."""
        if isinstance(other, DictView):
            other = list(other.items())
        if not hasattr(other, "keys"):
            iter(other)  # the TypeError dict.update raises for what is not iterable

        pairs = _checked_pairs(other)
        if kwargs:
            pairs = itertools.chain(pairs, kwargs.items())
        self._collection.put_many(pairs)

    def clear(self) -> None:
        self._collection.clear()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        other_items = dict(other.items())
        if len(self) != len(other_items):
            return False
        return dict(self.items()) == other_items

    __hash__ = None  # type: ignore[assignment]

    # -- dict extras ------------------------------------------------------------------

    def _new_like(self) -> DictView:
        source = self._collection
        store = type(source.store)(":memory:", serializer=source.serializer)
        collection = store.collection("dict", model=source.model)
        return type(self)._over(collection)

    def copy(self) -> DictView:
        """A copy in a new private in-memory store (``d.copy() == d``).

        As values are stored copies, it shares no value objects with ``d``: it is a deep
        copy as much as a shallow one, so ``copy.copy(d)`` and ``copy.deepcopy(d)`` give it too.
        """
        new = self._new_like()
        new._collection.put_many(self._collection.items())
        return new

    __copy__ = copy

    def __deepcopy__(self, memo: dict[int, Any]) -> DictView:
        new = self.copy()
        memo[id(self)] = new
        return new

    @classmethod
    def fromkeys(cls, iterable: Iterable[Any], value: Any = None) -> Any:
        """Like ``dict.fromkeys``: a new mapping of ``cls()`` with every key set to ``value``."""
        new = cls()
        for key in iterable:
            new[key] = value
        return new

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, (dict, DictView)):
            return NotImplemented
        new = self.copy()
        new.update(other)
        return new

    def __ror__(self, other: Any) -> Any:
        if not isinstance(other, (dict, DictView)):
            return NotImplemented
        new = other.copy()  # the left operand's type, as `other | dict` gives (OrderedDict, ...)
        new.update(self.items())
        return new

    def __ior__(self, other: Any) -> DictView:
        self.update(other)
        return self

    def __repr__(self) -> str:
        """Like ``dict``'s repr, cut after 20 entries; never raises: when the entries cannot be
        read (store closed, collection dropped, damaged file) it says so instead."""
        shown = []
        try:
            for i, (key, value) in enumerate(self._collection.items()):
                if i == 20:
                    shown.append("...")
                    break
                shown.append(f"{key!r}: {value!r}")
        except KvliteError as exc:
            return f"<kvlite.DictView of collection {self._collection.name!r}: {type(exc).__name__}: {exc}>"
        return "{" + ", ".join(shown) + "}"


def _checked_pairs(other: Any) -> Iterator[tuple[Any, Any]]:
    """The pairs of ``other`` as ``dict.update`` reads them, hashing each key first."""
    if hasattr(other, "keys"):
        for key in other.keys():
            hash(key)
            yield key, other[key]
        return
    for i, pair in enumerate(other):
        try:
            key, value = pair
        except (TypeError, ValueError):
            try:
                length = len(pair)
            except TypeError:
                raise TypeError(f"cannot convert dictionary update sequence element #{i} to a sequence") from None
            raise ValueError(
                f"dictionary update sequence element #{i} has length {length}; 2 is required") from None
        hash(key)
        yield key, value


class _KeysView(KeysView):  # type: ignore[type-arg]
    """``d.keys()``: reversible, as ``dict.keys()`` is."""

    def __reversed__(self) -> Iterator[Any]:
        return self._mapping._collection.keys(reverse=True)  # type: ignore[attr-defined, no-any-return]


class _ItemsView(ItemsView):  # type: ignore[type-arg]
    """``d.items()``: iterates keys and values in one pass (not one query per key)."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return self._mapping._collection.items()  # type: ignore[attr-defined, no-any-return]

    def __contains__(self, item: object) -> bool:
        # As dict_items: only a (key, value) tuple can be in it; an unhashable key raises.
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        key, value = item
        found = self._mapping.get(key, MISSING)  # type: ignore[attr-defined]
        return found is not MISSING and (found is value or found == value)

    def __reversed__(self) -> Iterator[tuple[Any, Any]]:
        return self._mapping._collection.items(reverse=True)  # type: ignore[attr-defined, no-any-return]


class _ValuesView(ValuesView):  # type: ignore[type-arg]
    """``d.values()``: one pass over the rows."""

    def __iter__(self) -> Iterator[Any]:
        return self._mapping._collection.values()  # type: ignore[attr-defined, no-any-return]

    def __contains__(self, value: object) -> bool:
        # One pass over the rows (the mixin looks up every key again, which can race a writer).
        return any(found is value or found == value for found in self)

    def __reversed__(self) -> Iterator[Any]:
        return self._mapping._collection.values(reverse=True)  # type: ignore[attr-defined, no-any-return]
