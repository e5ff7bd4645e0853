"""Subprocess workers for the crash and concurrency tests, and the expectations they share.

Run as a script (``python helpers_proc.py <command> <json-args>``) in a child
process; the tests import it for the value formulas, so parent and child agree
on what every write must look like.

Commands:

``crash-writer`` (usually forked by ``crash-zygote``)
    Writes forever (until SIGKILLed) into one store: single puts, overwrites of
    a few "hot" keys, ``put_many`` batches, deletes and cross-collection
    transactions.  Every operation is announced by a ``begin`` line before the
    call and confirmed by a ``done`` line after the call returned, both written
    with one unbuffered ``os.write`` to an ``O_APPEND`` report file.  A ``done``
    line therefore means "kvlite returned, so the write is committed".
``hammer``
    Several threads sharing one Store hammer one file for a bounded time with
    atomic read-modify-writes, ``setdefault``, ``pop``, ``put_many`` and
    transfers; writes a JSON summary of what each thread did.
``stream-writer`` / ``stream-reader``
    Writers keep appending to and updating a collection while a reader streams
    ``items()`` over it; used to show neither blocks the other.
``readonly-check``
    Drops root privileges if it has them, then reports what kvlite does with a
    store in a read-only directory.
``fork-zygote``
    Like ``crash-zygote``, for any command: forks one child per request line
    that runs the request's ``command`` (a real, separate process that skips the
    interpreter's start-up).
``folder-victim`` (forked by ``fork-zygote``)
    Writes into a collection of a per-collection folder, then drops (or makes)
    a collection and stops (to be SIGKILLed) right before the ``kill_at``-th
    file-system or SQLite call of that.
``snapshot-holder`` (forked by ``fork-zygote``)
    Holds a ``find()`` snapshot of a collection open until told to let go.
``collection-creator``
    Creates collections (long names too) in a per-collection folder for a
    bounded time, listing each in a report once its call returned.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import kvlite

# -- values both sides agree on --------------------------------------------------------

#: Number of "hot" keys the crash writer overwrites again and again.
HOT_KEYS = 7


def put_value(seq: int) -> dict[str, Any]:
    """The value of the single put with sequence number ``seq`` (also used for hot keys)."""
    return {"seq": seq, "pad": "x" * ((seq * 7919) % 1200), "list": [seq, str(seq), seq / 7, None, True]}


def batch_value(seq: int, j: int, n: int) -> dict[str, Any]:
    """The value of entry ``j`` of the ``n``-entry put_many batch ``seq``."""
    return {"batch": seq, "j": j, "n": n, "pad": "b" * ((seq + j * 31) % 300)}


def batch_keys(seq: int, n: int) -> list[str]:
    return [f"b:{seq}:{j}" for j in range(n)]


def hot_key(seq: int) -> str:
    return f"hot:{seq % HOT_KEYS}"


def wait_for(path: Path, limit: float = 120.0) -> None:
    """Poll until ``path`` exists (a start barrier between processes)."""
    deadline = time.monotonic() + limit
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)


# -- crash writer -----------------------------------------------------------------------


def crash_writer(args: dict[str, Any]) -> None:
    """Write until killed; see the module docstring for the report protocol.

    Report lines (space separated, ``\\n`` terminated):
    ``begin <op> <seq>`` then ``done <op> <seq> [extra]`` where op is
    ``put`` (key ``p:<seq>``), ``hot`` (key ``hot:<seq % 7>``), ``batch`` (extra = n),
    ``del`` (extra = the seq of the ``p:`` key deleted) or ``tx`` (key ``x:<seq>`` in
    collections ``main`` and ``side`` in one transaction).
    """
    rng = random.Random(args["seed"])
    report = os.open(args["report"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def say(line: str) -> None:
        os.write(report, (line + "\n").encode())

    store = kvlite.open(args["path"], durability=args["durability"])
    main = store.collection("main")
    side = store.collection("side")
    mine: list[int] = []  # seqs of p: keys this writer put (and that kvlite confirmed)
    seq = args["first_seq"]
    stop = time.monotonic() + 60  # never outlive a parent that failed to kill us
    while time.monotonic() < stop:
        seq += 1
        roll = rng.random()
        if roll < 0.45:
            say(f"begin put {seq}")
            main.put(f"p:{seq}", put_value(seq))
            mine.append(seq)
            say(f"done put {seq}")
        elif roll < 0.65:
            say(f"begin hot {seq}")
            main.put(hot_key(seq), put_value(seq))
            say(f"done hot {seq}")
        elif roll < 0.87:
            n = rng.choice((2, 3, 10, 50, 200))
            say(f"begin batch {seq} {n}")
            main.put_many({k: batch_value(seq, j, n) for j, k in enumerate(batch_keys(seq, n))})
            say(f"done batch {seq} {n}")
        elif roll < 0.95 and mine:
            victim = mine.pop(rng.randrange(len(mine)))
            say(f"begin del {seq} {victim}")
            main.delete(f"p:{victim}")
            say(f"done del {seq} {victim}")
        else:
            say(f"begin tx {seq}")
            with store.transaction():
                main.put(f"x:{seq}", put_value(seq))
                side.put(f"x:{seq}", put_value(seq))
            say(f"done tx {seq}")


def crash_zygote(args: dict[str, Any]) -> None:
    """Fork one crash writer per request, so each trial skips the interpreter's start-up.

    Protocol on stdin/stdout, one JSON line per trial: the parent sends the
    writer's arguments; the zygote forks a child that runs :func:`crash_writer`
    (a real, separate process, with kvlite already imported but no store
    opened, so nothing SQLite is shared across the fork), prints
    ``{"pid": ...}``, waits for the child to die (the parent SIGKILLs it) and
    prints ``{"signal": ...}`` (or ``{"exit": ...}``).  EOF on stdin ends it.
    """
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the writer
            try:
                crash_writer(request)
            except BaseException:  # noqa: BLE001 - report any failure of the writer, then exit
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            print(json.dumps({"signal": os.WTERMSIG(status)}), flush=True)
        else:
            print(json.dumps({"exit": os.WEXITSTATUS(status)}), flush=True)


# -- concurrency ------------------------------------------------------------------------

#: Counters incremented with an atomic read-modify-write.
COUNTERS = 4
#: Keys raced for with setdefault.
SETDEFAULT_KEYS = 300
#: Tokens pre-loaded into the "pool" collection and popped concurrently.
POOL_SIZE = 6000
#: Accounts for the transfer invariant, each starting with ACCOUNT_START.
ACCOUNTS = 10
ACCOUNT_START = 1000


def hammer(args: dict[str, Any]) -> None:
    """Run ``args["threads"]`` threads on one shared Store for ``args["seconds"]``; write a JSON summary."""
    store = kvlite.open(args["path"], timeout=120.0)
    tag = args["tag"]
    ready = Path(args["ready"])
    ready.write_text("ready")
    wait_for(Path(args["go"]))
    deadline = time.monotonic() + args["seconds"]
    results: list[dict[str, Any]] = []

    def work(index: int) -> None:
        rng = random.Random(f"{args['seed']}-{tag}-{index}")
        token = f"{tag}-{index}"
        counters = store.collection("counters")
        defaults = store.collection("defaults")
        pool = store.collection("pool")
        batches = store.collection("batches")
        accounts = store.collection("accounts")
        out: dict[str, Any] = {
            "token": token, "incr": {}, "won": [], "popped": [], "batches": [], "ops": {}, "errors": []}
        n_batch = 0
        while time.monotonic() < deadline:
            op = rng.choice(("incr", "incr", "setdefault", "pop", "pop", "put_many", "transfer"))
            try:
                if op == "incr":
                    key = f"c{rng.randrange(COUNTERS)}"
                    with store.transaction():
                        counters.put(key, counters.get(key, 0) + 1)
                    out["incr"][key] = out["incr"].get(key, 0) + 1
                elif op == "setdefault":
                    key = f"sd{rng.randrange(SETDEFAULT_KEYS)}"
                    if defaults.setdefault(key, token) == token and key not in out["won"]:
                        out["won"].append(key)
                elif op == "pop":
                    index_ = rng.randrange(POOL_SIZE)
                    value = pool.pop(f"tok{index_}", None)
                    if value is not None:
                        if value != index_:
                            raise AssertionError(f"tok{index_} held {value!r}")
                        out["popped"].append(index_)
                elif op == "put_many":
                    n_batch += 1
                    size = rng.randint(1, 25)
                    name = f"{token}:{n_batch}"
                    batches.put_many((f"{name}:{j}", {"batch": name, "n": size}) for j in range(size))
                    out["batches"].append([name, size])
                else:
                    a, b = rng.sample(range(ACCOUNTS), 2)
                    amount = rng.randint(1, 50)
                    with store.transaction():
                        balance_a = accounts.get(f"a{a}")
                        accounts.put(f"a{a}", balance_a - amount)
                        accounts.put(f"a{b}", accounts.get(f"a{b}") + amount)
                out["ops"][op] = out["ops"].get(op, 0) + 1
            except Exception as exc:  # noqa: BLE001 - every error is a test failure; record it and go on
                out["errors"].append(f"{op}: {type(exc).__module__}.{type(exc).__name__}: {exc}")
                if len(out["errors"]) > 20:
                    break
        results.append(out)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(args["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    Path(args["out"]).write_text(json.dumps(results))


def stream_writer(args: dict[str, Any]) -> None:
    """Append new keys to ``stream``, update old ones, bump ``progress`` after each commit, until ``stop``."""
    store = kvlite.open(args["path"], timeout=120.0)
    stream = store.collection("stream")
    progress = store.collection("progress")
    rng = random.Random(args["tag"])
    stop = Path(args["stop"])
    Path(args["ready"]).write_text("ready")
    wait_for(Path(args["go"]))
    writes = 0
    limit = time.monotonic() + 120
    while not stop.exists() and time.monotonic() < limit:
        writes += 1
        if rng.random() < 0.5:
            stream.put(f"new:{args['tag']}:{writes}", {"orig": -1, "ver": writes})
        else:
            i = rng.randrange(args["rows"])
            stream.put(f"k{i}", {"orig": i, "ver": writes})
        with store.transaction():
            progress.put(args["tag"], progress.get(args["tag"], 0) + 1)
    store.close()
    Path(args["out"]).write_text(json.dumps({"writes": writes}))


def stream_reader(args: dict[str, Any]) -> None:
    """Stream ``stream.items()``; half-way, wait until the writers have committed more; report what was seen."""
    store = kvlite.open(args["path"], timeout=120.0)
    stream = store.collection("stream")
    progress = store.collection("progress")
    Path(args["ready"]).write_text("ready")
    wait_for(Path(args["go"]))

    def total() -> int:
        return sum(v for _, v in progress.items())

    seen: list[Any] = []
    bad: list[str] = []
    before = total()
    during = None
    for key, value in stream.items():
        seen.append(key)
        if not (isinstance(value, dict) and set(value) == {"orig", "ver"}):
            bad.append(f"{key!r}: {value!r}")
        if len(seen) == args["rows"] // 2:
            # The iteration is suspended half-way: writers must still get through.
            deadline = time.monotonic() + 60
            while total() < before + args["wait_for_writes"] and time.monotonic() < deadline:
                time.sleep(0.01)
            during = total()
    after = total()
    store.close()
    Path(args["out"]).write_text(json.dumps(
        {"seen": seen, "bad": bad, "before": before, "during": during, "after": after}))


# -- read-only directory ----------------------------------------------------------------


def readonly_check(args: dict[str, Any]) -> None:
    """What kvlite does with a store in a read-only directory, as a JSON report.

    When run as root (where permissions do not apply) it first switches to
    uid/gid 65534 ("nobody").  Before that it runs the same calls once on an
    in-memory store, so that every module and package file kvlite loads lazily
    (the migration SQL files, the stdlib modules it imports on first use) is
    already loaded: the Python installation may live in a folder that "nobody"
    cannot read (``/root`` is mode 700), and what is measured here is the store
    folder's permissions, not the installation's.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        with kvlite.open(":memory:") as warm:
            warm.collection("a").put("k", "v")
            list(warm.collection("a").items())
            warm.collections()
        os.setgid(65534)
        os.setuid(65534)
    path = args["path"]
    report: dict[str, Any] = {}

    def attempt(label: str, fn: Any) -> None:
        try:
            report[label] = ["ok", fn()]
        except Exception as exc:  # noqa: BLE001 - the report says which error, the test judges it
            report[label] = [f"{type(exc).__module__}.{type(exc).__name__}", str(exc)]

    def read_all(readonly: bool) -> Any:
        with kvlite.open(path, readonly=readonly) as store:
            return {name: [list(kv) for kv in store.collection(name).items()] for name in store.collections()}

    def write(readonly: bool) -> Any:
        with kvlite.open(path, readonly=readonly) as store:
            store.collection("a").put("k", "changed")

    def new_collection(readonly: bool) -> Any:
        with kvlite.open(path, readonly=readonly) as store:
            store.collection("brand new")

    attempt("read readonly", lambda: read_all(True))
    attempt("write readonly", lambda: write(True))
    attempt("new collection readonly", lambda: new_collection(True))
    attempt("write readwrite", lambda: write(False))
    attempt("create in readonly dir", lambda: kvlite.open(os.path.join(os.path.dirname(path), "new.db")).close())
    attempt("writable", lambda: os.access(path, os.W_OK))
    print(json.dumps(report))


# -- per-collection folders: drops killed at every step, creations watched ---------------


def fork_zygote(args: dict[str, Any]) -> None:
    """Fork one child per request line on stdin, running ``COMMANDS[request["command"]](request)``.

    The same protocol as :func:`crash_zygote`: prints ``{"pid": ...}`` once the
    child is forked, then ``{"signal": ...}`` or ``{"exit": ...}`` when it died.
    """
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                COMMANDS[request["command"]](request)
            except BaseException:  # noqa: BLE001 - report any failure of the child, then exit
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            print(json.dumps({"signal": os.WTERMSIG(status)}), flush=True)
        else:
            print(json.dumps({"exit": os.WEXITSTATUS(status)}), flush=True)


class ForkZygote:
    """The parent's side of ``fork-zygote``: ``start(request)`` forks a child, ``end()`` waits for its death."""

    def __init__(self) -> None:
        import subprocess

        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "fork-zygote", "{}"], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def start(self, request: dict[str, Any]) -> int:
        """Fork a child running ``request["command"]``; returns its pid."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return int(self.end()["pid"])

    def end(self) -> dict[str, Any]:
        """The zygote's next line: ``{"signal": n}`` or ``{"exit": n}`` once the child died."""
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        assert line, "the fork zygote died"
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001 - never leave it running
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def drop_value(key: str, version: int) -> dict[str, Any]:
    """The value of ``key`` written by version ``version`` of the drop tests' collection."""
    return {"key": key, "version": version, "pad": "v" * (97 * version + len(key))}


def _is_step(func: Any) -> bool:
    """Whether a C function is a step the drop tests kill before: a file-system call or an SQLite one."""
    if getattr(func, "__module__", None) in ("posix", "fcntl"):
        return True
    owner = getattr(func, "__self__", None)
    return owner is not None and type(owner).__module__ == "apsw"


def folder_victim(args: dict[str, Any]) -> None:
    """Write into collection ``args["name"]`` of a per-collection folder, then drop it (or make it).

    First overwrites each key of ``args["keys"]`` with version ``args["version"]``
    (none: nothing is written).  Then, for ``action`` ``"drop"``,
    ``drop_collection(name)``; for ``"create"``, ``collection(name).put("made", 1)``.
    With ``open_in_action``, opening the folder is part of the action (it is
    opened after the writes otherwise), so it may be killed too.
    Report lines: ``acked`` once every put returned; ``stop <k> <call>`` right
    before the action's ``k``-th file-system or SQLite call (``k`` = ``kill_at``),
    after which the process waits to be SIGKILLed; ``done <result> <steps>``
    if the action returned first.
    """
    report = os.open(args["report"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def say(line: str) -> None:
        os.write(report, (line + "\n").encode())

    store = None
    if not args.get("open_in_action"):
        store = kvlite.open(args["path"], layout="per-collection", timeout=args["timeout"])
    if args["keys"]:
        assert store is not None, "writes need the folder opened first"
        coll = store.collection(args["name"])
        for key in args["keys"]:
            coll.put(key, drop_value(key, args["version"]))
    say("acked")
    kill_at = args["kill_at"]
    steps = 0

    def profile(frame: Any, event: str, func: Any) -> None:
        nonlocal steps
        if event == "c_call" and _is_step(func):
            steps += 1
            if steps == kill_at:
                sys.setprofile(None)
                say(f"stop {steps} {getattr(func, '__qualname__', func)}")
                time.sleep(60)  # the parent SIGKILLs this process now
                os._exit(3)

    sys.setprofile(profile)
    try:
        if store is None:  # opening the folder is part of the action (it cleans up after crashes)
            store = kvlite.open(args["path"], layout="per-collection", timeout=args["timeout"])
        if args["action"] == "drop":
            result = store.drop_collection(args["name"])
        else:
            store.collection(args["name"]).put("made", 1)
            result = True
    finally:
        sys.setprofile(None)
    say(f"done {result} {steps}")
    os._exit(0)  # no clean close either: the test only wants to know what the action left


def snapshot_holder(args: dict[str, Any]) -> None:
    """Hold a ``find()`` read snapshot of collection ``args["name"]`` until ``args["release"]`` exists."""
    store = kvlite.open(args["path"], layout="per-collection", timeout=120.0)
    matches = store.collection(args["name"]).find("$.*")
    next(matches)  # the query's snapshot is open now, and stays open while it is suspended
    Path(args["ready"]).write_text("ready")
    wait_for(Path(args["release"]))
    matches.close()
    store.close()


def collection_creator(args: dict[str, Any]) -> None:
    """Create collections in folder ``args["path"]`` for ``args["seconds"]`` (or ``args["count"]`` of them).

    Names alternate between short ones and ones too long for a file name (hashed
    files).  Each is created with one entry; after the calls returned, the name
    is appended to the report file.  Never drops anything.
    """
    store = kvlite.open(args["path"], layout="per-collection", timeout=120.0)
    report = os.open(args["report"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    Path(args["ready"]).write_text("ready")
    wait_for(Path(args["go"]))
    deadline = time.monotonic() + args["seconds"]
    made = 0
    while time.monotonic() < deadline and made < args["count"]:
        name = creator_name(args["tag"], made)
        store.collection(name).put("k", made)
        os.write(report, (json.dumps(name) + "\n").encode())
        made += 1
    store.close()


def creator_name(tag: str, i: int) -> str:
    """The ``i``-th collection name :func:`collection_creator` makes (odd ones get a hashed file)."""
    return f"{tag}-{i}" + ("-" + "long" * 60 if i % 2 else "")


COMMANDS = {
    "crash-writer": crash_writer,
    "crash-zygote": crash_zygote,
    "hammer": hammer,
    "stream-writer": stream_writer,
    "stream-reader": stream_reader,
    "readonly-check": readonly_check,
    "fork-zygote": fork_zygote,
    "folder-victim": folder_victim,
    "snapshot-holder": snapshot_holder,
    "collection-creator": collection_creator,
}

if __name__ == "__main__":
    command, raw = sys.argv[1], sys.argv[2]
    try:
        COMMANDS[command](json.loads(raw))
    except BaseException:
        traceback.print_exc()
        raise
