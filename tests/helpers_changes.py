"""A worker process for the change feed and backup tests (``tests/test_changes.py``).

Run as ``python helpers_changes.py <json>``; ``mode`` says what it does:

``writer``
    ``count`` mixed puts and deletes (seeded by ``seed``) on keys ``k0``..``k49`` of
    ``collection``, then puts ``("__done__", seed)``.
``follower``
    follows ``store.changes(wait=True)`` from ``since``, applying each change to a dict, until it
    has seen ``writers`` ``__done__`` puts; writes the dict (as ``[key, value]`` pairs) to ``report``.
``mover``
    until the file ``stop`` exists, moves one unit between two random keys of ``collection`` in a
    ``transaction()`` (the total stays the same).
``backup``
    backs the store up to ``dst`` (the test kills it midway).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import kvlite


def main(spec: dict) -> None:
    store = kvlite.open(spec["target"])
    try:
        mode = spec["mode"]
        if mode == "writer":
            coll = store.collection(spec["collection"])
            rng = random.Random(spec["seed"])
            for i in range(spec["count"]):
                key = f"k{rng.randrange(50)}"
                if rng.random() < 0.3:
                    coll.delete(key)
                else:
                    coll.put(key, {"by": spec["seed"], "i": i})
            coll.put("__done__", spec["seed"])
        elif mode == "follower":
            seen, done = {}, 0
            Path(spec["ready"]).write_text("ready", encoding="utf-8")
            for change in store.changes(spec["since"], collections=[spec["collection"]], wait=True, timeout=60):
                if change.value is not kvlite.ABSENT:  # a put of a key that still exists
                    seen[change.key] = change.value
                else:  # a delete, or a put of a key deleted since (its delete follows)
                    seen.pop(change.key, None)
                if change.op == "put" and change.key == "__done__":
                    done += 1
                    if done == spec["writers"]:
                        break
            Path(spec["report"]).write_text(json.dumps(sorted(seen.items())), encoding="utf-8")
        elif mode == "mover":
            coll = store.collection(spec["collection"])
            rng = random.Random(spec["seed"])
            Path(spec["ready"]).write_text("ready", encoding="utf-8")
            while not Path(spec["stop"]).exists():
                a, b = rng.sample(range(20), 2)
                with store.transaction():
                    coll.put(f"acct{a}", coll.get(f"acct{a}") - 1)
                    time.sleep(0.0005)  # the two writes are apart: a torn copy would show
                    coll.put(f"acct{b}", coll.get(f"acct{b}") + 1)
        elif mode == "backup":
            Path(spec["ready"]).write_text("ready", encoding="utf-8")
            store.backup(spec["dst"], progress=lambda done, total: time.sleep(0.05))
    finally:
        store.close()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
