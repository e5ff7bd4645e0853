"""The benchmark's data: keys and small JSON documents, made lazily and deterministically.

Documents come from a fixed pool of :data:`POOL_SIZE` distinct dicts
(document ``i`` is ``POOL[i % POOL_SIZE]``), so making one costs a list index
and every store pays the same; only encoding/decoding (each store's own work)
is measured.  Nothing here keeps encoded bytes alive: orjson >= 3.12 returns
``bytes`` holding ~4 KB each, so a list of 100k ``dumps()`` results would cost
~400 MB.

Field distributions (used by the query workloads):

* ``age``: 0..99, each value on exactly 1% of the documents (``age == 42``
  selects 1%, ``age >= 50`` selects 50%);
* ``active``: ``True`` on every other document.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

__all__ = ["POOL", "POOL_SIZE", "key", "doc", "items", "random_indexes", "keys_for"]

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


#: The distinct documents; document ``i`` is ``POOL[i % POOL_SIZE]``.
POOL: list[dict[str, Any]] = [_make_doc(j) for j in range(POOL_SIZE)]


def key(i: int) -> str:
    """The key of document ``i`` (``"k00000042"``): 9 characters, sorted like ``i``."""
    return f"k{i:08d}"


def doc(i: int) -> dict[str, Any]:
    """Document ``i`` (a shared dict from :data:`POOL`: do not mutate it)."""
    return POOL[i % POOL_SIZE]


def items(start: int, stop: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key(i), doc(i))`` for ``start <= i < stop``, made one at a time."""
    pool = POOL
    size = POOL_SIZE
    for i in range(start, stop):
        yield f"k{i:08d}", pool[i % size]


def random_indexes(count: int, n: int, seed: int) -> list[int]:
    """``count`` indexes drawn uniformly (with replacement) from ``range(n)``."""
    rng = random.Random(seed)
    return [rng.randrange(n) for _ in range(count)]


def keys_for(indexes: list[int]) -> list[str]:
    """The keys of ``indexes`` (made before timing starts)."""
    return [key(i) for i in indexes]
