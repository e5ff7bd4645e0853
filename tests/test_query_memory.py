"""Queries stream: memory does not grow with the collection (issue 3, item 2).

A collection of 200,000 documents of ~500 bytes of JSON each (~100 MB of
JSON) is built with ``put_many`` from a generator; then a fresh Python
process opens it, warms up (imports, parser, statement cache) and records
its peak RSS (``ru_maxrss``), runs two full scans consumed to the end

* ``count("$[?(@.age > 5)].name")`` - a filter pushed down to SQL, 94% of
  the documents decoded and re-checked in Python;
* ``select("$..email")`` - a recursive descent into every document;

and records its peak RSS again.  The growth must stay under 32 MB: holding
even a tenth of the documents as Python objects would break it.

Runs by default (about a minute on a 2-core machine); ``KVLITE_MEMORY_DOCS``
changes the number of documents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

import kvlite

DOCS = int(os.environ.get("KVLITE_MEMORY_DOCS", "200000"))
LIMIT_MB = 32

CHILD = textwrap.dedent("""
    import json, resource, sys
    import kvlite

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    with kvlite.open(sys.argv[1], readonly=True) as db:
        people = db.collection("people")
        # Warm up on a few rows: imports, the path parser, SQLite's statement and page caches.
        assert len(list(people.select("$[?(@.age > 5)].name", limit=20))) == 20
        assert len(list(people.select("$..email", limit=20))) == 20
        before = peak_mb()
        filtered = people.count("$[?(@.age > 5)].name")
        after_filter = peak_mb()
        emails = 0
        for _ in people.select("$..email"):
            emails += 1
        after_descend = peak_mb()
    print(json.dumps({"before": before, "after_filter": after_filter, "after_descend": after_descend,
                      "filtered": filtered, "emails": emails}))
""")


def document(i: int) -> dict[str, Any]:
    """About 500 bytes of JSON: a name, an age (0..99), an email and a long text field."""
    return {"name": f"User Number {i}", "age": i % 100, "email": f"user{i}@example.org",
            "bio": "lorem ipsum dolor sit amet " * 16}


def documents(n: int) -> Iterator[tuple[str, dict[str, Any]]]:
    for i in range(n):
        yield f"user{i:06d}", document(i)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_full_scans_do_not_grow_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    with kvlite.open(path) as db:
        assert db.collection("people").put_many(documents(DOCS)) == DOCS
    json_bytes = sum(len(json.dumps(document(i), separators=(",", ":"))) for i in range(0, DOCS, 97)) * 97
    assert json_bytes >= DOCS * 450  # ~100 MB of JSON at the default size

    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], check=False, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)

    assert report["filtered"] == sum(1 for i in range(DOCS) if i % 100 > 5)
    assert report["emails"] == DOCS
    growth = report["after_descend"] - report["before"]
    assert growth < LIMIT_MB, f"peak RSS grew by {growth:.1f} MB during the scans: {report}"
