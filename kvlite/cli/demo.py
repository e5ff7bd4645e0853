"""``kvlite demo``: a narrated tour in a file of its own.

It stores documents with and without TTL, reads them back through the dict view, runs a
few queries and shows expiry (by moving its clock, not by sleeping), printing the Python
each step runs.  Running it again on its own file starts over; it refuses any other file.
"""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
import time
from typing import Any

from .. import open as open_store
from ..collection import Collection
from ..store import Store
from ..version import __version__
from .common import CliError, Subparsers, add_command, open_file

__all__ = ["setup_demo"]

_NOTHING: Any = object()  # _say() without a result

_DEMO_FILE = "kvlite-demo.db"
_DEMO_MARK = ("about", "made_by", "kvlite demo")
_DEMO_COLLECTIONS = ("about", "users", "sessions")


def setup_demo(sub: Subparsers) -> None:
    p = add_command(sub, "demo", "store, read and expire documents in a demo file, narrating each step",
                    handler=_run_demo,
                    description=f"Create a kvlite file (default ./{_DEMO_FILE}), store documents with and "
                                "without TTL, read them back through the dict view, run a few lookups, and "
                                "print each step. Running it again on its own file starts over; it refuses "
                                "to touch any other existing file.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("file", metavar="FILE", nargs="?", help=f"the file to create (default: {_DEMO_FILE})")
    where.add_argument("--tmp", action="store_true", help="create the file in a new temporary folder")


class _DemoClock:
    """Real time plus an offset the demo moves forward, so expiry shows without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _say(code: str, result: Any = _NOTHING, note: str = "") -> None:
    """Print one demo line: the Python that ran and, if any, its result."""
    line = f"  {code}"
    if result is not _NOTHING:
        line = f"{line:<44} -> {result!r}"
    if note:
        line = f"{line}   # {note}"
    print(line)


def _run_demo(args: argparse.Namespace) -> int:
    if args.tmp:
        path = os.path.join(tempfile.mkdtemp(prefix="kvlite-demo-"), _DEMO_FILE)
    else:
        path = args.file or _DEMO_FILE
    clock = _DemoClock()
    existed = os.path.exists(path) and os.path.getsize(path) > 0
    db = open_file(path, write=True, create=True, clock=clock)
    try:
        if existed:
            _demo_reset(db, path)  # before printing anything: it may refuse
        db.collection(_DEMO_MARK[0]).put(_DEMO_MARK[1], _DEMO_MARK[2])
        print(f"kvlite {__version__} demo: documents in one file, {path}")
        print()
        print("Open the store (the file is created if missing):")
        _say(f"db = kvlite.open({path!r})")
        if existed:
            _say("(the file exists: the previous demo's collections were removed to start over)")
        _say("users = db.collection('users')")
        users = db.collection("users")
        sessions = db.collection("sessions")

        print("\nStore documents without a TTL, in one transaction:")
        people = {
            "u1": {"name": "Ada", "age": 36, "langs": ["en", "fr"]},
            "u2": {"name": "Grace", "age": 45, "langs": ["en"]},
            "u3": {"name": "Linus", "age": 28, "langs": ["fi", "sv", "en"]},
            "u4": {"name": "Yukihiro", "age": 59, "langs": ["ja"]},
        }
        written = users.put_many(people)
        _say("users.put_many({'u1': {...}, ..., 'u4': {...}})", written)
        for key, doc in people.items():
            print(f"      {key}: {doc}")

        print("\nStore documents with a TTL (seconds):")
        sessions.put("s-ada", {"user": "u1", "cart": ["book"]}, ttl=60)
        _say("sessions.put('s-ada', {'user': 'u1', 'cart': ['book']}, ttl=60)")
        sessions.put("s-grace", {"user": "u2", "cart": []}, ttl=600)
        _say("sessions.put('s-grace', {'user': 'u2', 'cart': []}, ttl=600)")
        _say("sessions.ttl('s-ada')", round(sessions.ttl("s-ada") or 0.0), "seconds left")

        print("\nRead them back through the dict view (a MutableMapping, like dict):")
        d = users.dict()
        _say("d = users.dict()")
        _say("len(d)", len(d))
        _say("d['u1']", d["u1"])
        _say("list(d)", list(d), "insertion order")
        _say("'u9' in d", "u9" in d)
        d["u5"] = {"name": "Guido", "age": 69, "langs": ["nl", "en"]}
        _say("d['u5'] = {'name': 'Guido', 'age': 69, ...}", note="written to the file")
        _say("d.pop('u4')", d.pop("u4"))
        _say("d.get('u4', 'gone')", d.get("u4", "gone"))
        _say("'u5' in users", "u5" in users, "the view and the collection are the same data")

        print("\nLookups:")
        _say("users.get_many(['u1', 'u9'])", users.get_many(["u1", "u9"]))
        _say("users.get('u9', 'no such user')", users.get("u9", "no such user"))
        older = [doc["name"] for _, doc in users.items() if doc["age"] > 40]
        _say("[doc['name'] for _, doc in users.items() if doc['age'] > 40]", older)
        speakers = [key for key, doc in users.items() if "en" in doc["langs"]]
        _say("[key for key, doc in users.items() if 'en' in doc['langs']]", speakers)

        _demo_queries(users)

        print("\nExpiry (the demo moves its clock 120 s forward instead of sleeping):")
        clock.offset += 120
        _say("sessions.get('s-ada')", sessions.get("s-ada"), "expired: its TTL was 60 s")
        _say("sessions.get('s-grace')", sessions.get("s-grace"))
        _say("sessions.ttl('s-grace')", round(sessions.ttl("s-grace") or 0.0), "seconds left")
        _say("len(sessions)", len(sessions))
        _say("db.purge_expired()", db.purge_expired(), "expired rows deleted from the file")
    finally:
        db.close()

    print("\nClose and reopen: everything is in the file:")
    with open_store(path, clock=clock) as db:
        _say("db.close(); db = kvlite.open(...)")
        _say("db.collections()", db.collections())
        users = db.collection("users")
        _say("len(users)", len(users))
        _say("db.dict('users')['u5']['name']", db.dict("users")["u5"]["name"])

    quoted = shlex.quote(path)
    print(f"\nDone. Look inside with:\n  kvlite collections {quoted}\n  kvlite export {quoted} users")
    return 0


def _demo_reset(db: Store, path: str) -> None:
    """Empty a file an earlier demo made; refuse any other file."""
    names = db.collections()
    about = db.collection(_DEMO_MARK[0]) if _DEMO_MARK[0] in names else None
    if about is None or about.get(_DEMO_MARK[1]) != _DEMO_MARK[2] or set(names) - set(_DEMO_COLLECTIONS):
        raise CliError(f"{path!r} already exists and was not made by 'kvlite demo'; "
                       "give another FILE or use --tmp")
    with db.transaction():
        for name in names:
            db.drop_collection(name)


def _demo_queries(coll: Collection) -> None:
    """Print a few queries over ``coll``, the demo's users (u1, u2, u3, u5)."""
    print("\nqueries (RFC 9535 JSONPath, the default engine; filters run in SQLite):")
    _say("users.select('$[?@.age > 40].name')", list(coll.select("$[?@.age > 40].name")))
    _say("users.find('$.*.langs[0]')", list(coll.find("$.*.langs[0]")))
    _say("users.count('$[?@.age >= 36]')", coll.count("$[?@.age >= 36]"))
    coll.create_index("$.age")
    plan = coll.explain("$[?@.age == 36]")["steps"][0]["query_plan"]
    searches = [line for line in plan if line.startswith("SEARCH")]
    _say("users.create_index('$.age')")
    _say("users.explain('$[?@.age == 36]')", searches[0] if searches else plan, "SQLite's plan")
    _say("users.select('$.*.name', order_by='-$.age', limit=2)",
         list(coll.select("$.*.name", order_by="-$.age", limit=2)))
    _say("users.select('$.*[@.age > 40].name', engine='objectpath')",
         list(coll.select("$.*[@.age > 40].name", engine="objectpath")))


