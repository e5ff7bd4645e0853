"""The benchmark's data: keys and JSON documents, made lazily and deterministically.

Documents come from a fixed pool of :data:`POOL_SIZE` distinct dicts
(document ``i`` is ``POOL[i % POOL_SIZE]``), so making one costs a list index
and every store pays the same; only encoding/decoding (each store's own work)
is measured.  Nothing here keeps encoded bytes alive: orjson >= 3.12 returns
``bytes`` holding ~4 KB each, so a list of 100k ``dumps()`` results would cost
~400 MB.

Field distributions (used by the query workloads):

* ``age``: 0..99, each value on exactly 1% of the documents (``age == 42``
  selects 1%, ``age >= 50`` selects 50%);
* ``id``: 0..999, each value on exactly 0.1% of the documents (``id == 421`` selects 0.1%);
* ``active``: ``True`` on every other document.

Two data sets (``dataset``): ``"small"`` (the default: the documents above,
161-169 bytes of JSON, 168 on average) and ``"large"`` (the same fields first,
then a ``bio`` text and a ``history`` list of 23-44 events: 4,041-7,744
bytes of JSON, 5,856 on average; the same field distributions).  The large pool is
built on first use.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

__all__ = ["POOL", "POOL_SIZE", "DATASETS", "pool", "key", "doc", "items", "random_indexes", "keys_for"]

#: Number of distinct documents the data set cycles through.
POOL_SIZE = 1000


def _make_doc(j: int) -> dict[str, Any]:
    return {
        "id": j,
        "name": f"user{j:04d}",
        "email": f"user{j:04d}@example.com",
        "age": (j * 37) % 100,
        "active": j % 2 == 0,
        "score": round(j * 0.731 % 100, 3),
        "tags": ["alpha", "beta", f"t{j % 7}"],
        "address": {"city": f"city{j % 50}", "zip": f"{10000 + j:05d}"},
    }


_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
          "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua")
_EVENTS = ("login", "logout", "purchase", "refund", "view", "search", "update", "share")


def _words(seed: int, count: int) -> str:
    return " ".join(_WORDS[(seed * 7 + w * 13 + w * w) % len(_WORDS)] for w in range(count))


def _make_large_doc(j: int) -> dict[str, Any]:
    """The small document ``j`` followed by ~4-8 KB of text and nested events (fields after ``address``)."""
    out = _make_doc(j)
    out["bio"] = _words(j, 60 + j % 40)
    out["history"] = [
        {"ts": 1_700_000_000 + j * 1000 + e * 37, "event": _EVENTS[(j + e) % len(_EVENTS)],
         "amount": round((j * 13 + e * 7) % 1000 * 0.37, 2), "ok": (j + e) % 5 != 0,
         "note": _words(j + e, 8 + (j + e) % 6), "ref": f"r{j:04d}-{e:03d}"}
        for e in range(23 + j % 22)
    ]
    return out


#: The distinct documents; document ``i`` is ``POOL[i % POOL_SIZE]``.
POOL: list[dict[str, Any]] = [_make_doc(j) for j in range(POOL_SIZE)]
_LARGE_POOL: list[dict[str, Any]] = []

#: The data sets a workload can ask for.
DATASETS = ("small", "large")


def pool(dataset: str = "small") -> list[dict[str, Any]]:
    """The distinct documents of ``dataset`` (the large ones are made on first use)."""
    if dataset == "small":
        return POOL
    if dataset == "large":
        if not _LARGE_POOL:
            _LARGE_POOL.extend(_make_large_doc(j) for j in range(POOL_SIZE))
        return _LARGE_POOL
    raise ValueError(f"unknown data set {dataset!r} (known: {', '.join(DATASETS)})")


def key(i: int) -> str:
    """The key of document ``i`` (``"k00000042"``): 9 characters, sorted like ``i``."""
    return f"k{i:08d}"


def doc(i: int, dataset: str = "small") -> dict[str, Any]:
    """Document ``i`` (a shared dict from the pool: do not mutate it)."""
    return pool(dataset)[i % POOL_SIZE]


def items(start: int, stop: int, dataset: str = "small") -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key(i), doc(i))`` for ``start <= i < stop``, made one at a time."""
    docs = pool(dataset)
    size = POOL_SIZE
    for i in range(start, stop):
        yield f"k{i:08d}", docs[i % size]


def random_indexes(count: int, n: int, seed: int) -> list[int]:
    """``count`` indexes drawn uniformly (with replacement) from ``range(n)``."""
    rng = random.Random(seed)
    return [rng.randrange(n) for _ in range(count)]


def keys_for(indexes: list[int]) -> list[str]:
    """The keys of ``indexes`` (made before timing starts)."""
    return [key(i) for i in indexes]
