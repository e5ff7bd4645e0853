"""A worker process for the counter tests (``tests/conformance/counters.py``).

Run as ``python helpers_counters.py <json>``: opens the store ``target`` (with ``options``), waits
until the file ``go`` exists (so every worker starts together), then, by ``mode``:

``incr``
    ``count`` times ``collection.incr(key, path=path)`` (``path`` may be ``null``).
``patch``
    ``count`` times ``collection.patch(key, {"w<worker>-<i>": i})``: members no other worker writes.
``cas``
    ``count`` times appends ``"<worker>-<i>"`` to the list stored under ``key`` with a
    ``get`` / ``compare_and_set`` retry loop; writes how many attempts lost to ``report``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import kvlite


def main(spec: dict) -> None:
    store = kvlite.open(spec["target"], **spec["options"])
    try:
        coll = store.collection(spec["collection"])
        coll.get(spec["key"])  # connected and ready
        Path(spec["ready"]).write_text("ready", encoding="utf-8")
        deadline = time.monotonic() + 60
        while not Path(spec["go"]).exists():
            if time.monotonic() > deadline:
                raise SystemExit("never told to go")
            time.sleep(0.005)
        lost = 0
        for i in range(spec["count"]):
            if spec["mode"] == "incr":
                coll.incr(spec["key"], path=spec["path"])
                continue
            if spec["mode"] == "patch":
                coll.patch(spec["key"], {f"w{spec['worker']}-{i}": i})
                continue
            entry = f"{spec['worker']}-{i}"
            while True:
                current = coll.get(spec["key"])
                if coll.compare_and_set(spec["key"], current, [*current, entry]):
                    break
                lost += 1
        Path(spec["report"]).write_text(json.dumps({"lost": lost}), encoding="utf-8")
    finally:
        store.close()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
