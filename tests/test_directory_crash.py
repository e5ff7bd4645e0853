"""The per-collection layout under SIGKILL and under concurrent processes.

A drop is one step that a crash leaves either done or not done, and a
collection being made is not visible before it is complete:

* ``test_a_drop_killed_at_any_step_is_done_or_not_done``: a process overwrites
  every key of a collection with a newer version (each put returned), then drops
  the collection, and is SIGKILLed right before the drop's ``k``-th file-system
  or SQLite call, for every ``k`` in turn until the drop returns first.  Half of
  the runs have another process hold a ``find()`` snapshot of the collection
  meanwhile (SQLite cannot checkpoint the WAL past it).  After the kill a
  second process drops the collection again and is killed at a random step too
  (finishing a drop cut off by a crash may itself be cut off).  Then the folder
  shows the collection either with every acknowledged write (not done), or not
  at all (done): not listed, ``serializer_of()`` is ``None``, ``kvlite.copy``
  skips it, and ``collection(name)`` makes it again empty, never with older
  values.  Once something drops again, nothing of it is left in the folder.
* ``test_a_creation_killed_at_any_step_is_never_half_visible``: the same for
  ``collection(name)`` making a new collection (a short name and a name long
  enough for a hashed file name): killed at any step, it is either absent or
  complete, and ``collections()`` never raises.
* ``test_collections_never_fails_while_another_process_creates``: one process
  keeps making collections (every other one with a hashed file name) while this
  one lists them: no ``collections()`` call raises, and every name listed is a
  complete collection.

``KVLITE_DROP_RECOVERY_SEED`` changes the random steps of the second kills;
``KVLITE_CREATE_ROUNDS`` runs the last test for more rounds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import helpers_proc as hp
import pytest

import kvlite
from kvlite.backends.directory import LOCK_FILE, file_name

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(signal, "SIGKILL"),
                                reason="needs fork and SIGKILL (POSIX)")

NAME = "c"
KEEP = "keep"
KEYS = [f"k{i}" for i in range(30)]
LONG_NAME = "long-" + "x" * 200  # its file name is hashed
SEED = os.environ.get("KVLITE_DROP_RECOVERY_SEED", "drop-recovery")


def run_victim(zygote: hp.ForkZygote, report: Path, **request: Any) -> str:
    """Run ``helpers_proc.folder_victim``; SIGKILL it where it stopped.

    Returns its last line: ``stop ...`` (killed there), ``done ...``, or
    ``died ...`` when it failed by itself (its traceback is on stderr)."""
    report.write_bytes(b"")
    pid = zygote.start({"command": "folder-victim", "report": str(report), "timeout": 0.3, **request})
    deadline = time.monotonic() + 60
    while True:
        lines = [line for line in report.read_text().splitlines() if line.startswith(("stop ", "done "))]
        if lines:
            break
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"died {zygote.end()}"
        assert time.monotonic() < deadline, f"the victim never got to its kill point: {report.read_text()!r}"
        time.sleep(0.001)
    if lines[0].startswith("stop "):
        os.kill(pid, signal.SIGKILL)
        assert zygote.end() == {"signal": signal.SIGKILL}
    else:
        assert zygote.end() == {"exit": 0}
    return lines[0]


def _values(version: int) -> dict[str, Any]:
    return {key: hp.drop_value(key, version) for key in KEYS}


def _make_folder(folder: Path) -> None:
    """``keep`` and ``c``, both holding version 1, all of it in the main files (closed cleanly)."""
    with kvlite.open(folder, layout="per-collection") as store:
        store.collection(KEEP).put_many(_values(1))
        store.collection(NAME).put_many(_values(1))


def observe_drop(folder: Path) -> str:
    """``"kept"`` (with version 2, every acknowledged write) or ``"dropped"``; else what is wrong.

    Read-only: nothing a crash left is finished or deleted here."""
    try:
        with kvlite.open(folder, layout="per-collection", readonly=True) as store:
            names = store.collections()
            serializer = store.serializer_of(NAME)
            if KEEP not in names or dict(store.collection(KEEP).items()) != _values(1):
                return "the other collection changed"
            if NAME in names:
                if serializer != "json":
                    return f"half-dropped: listed, serializer_of() is {serializer!r}"
                items = dict(store.collection(NAME).items())
                if items == _values(2):
                    state = "kept"
                elif items == _values(1):
                    return "acknowledged writes lost: the collection is back with its older values"
                else:
                    return f"half-dropped: listed with {len(items)} entries"
            else:
                if serializer is not None:
                    return f"half-dropped: not listed, serializer_of() is {serializer!r}"
                state = "dropped"
        copied = kvlite.copy(str(folder), "memory://", progress=False)
    except kvlite.KvliteError as exc:
        return f"error: {type(exc).__name__}: {exc}"
    expected = {KEEP: len(KEYS)} if state == "dropped" else {KEEP: len(KEYS), NAME: len(KEYS)}
    if copied != expected:
        return f"kvlite.copy copied {copied}"
    return state


def _leftovers(folder: Path) -> list[str]:
    """What is in the folder besides the lock and ``keep``'s files (its ``-wal`` and ``-shm`` stay
    after a read-only store had it open)."""
    keep = file_name(KEEP)
    return sorted(set(os.listdir(folder)) - {LOCK_FILE, keep, keep + "-wal", keep + "-shm"})


def finish_and_check(folder: Path, state: str) -> str | None:
    """Use the folder after the kills: a dropped name is made again empty; a drop then leaves nothing."""
    with kvlite.open(folder, layout="per-collection") as store:
        if state == "dropped":
            made = list(store.collection(NAME).items())
            if made:
                return f"made again, the dropped collection has {len(made)} old entries"
        if store.drop_collection(NAME) is not True:
            return "the collection could not be dropped again"
    left = _leftovers(folder)
    return f"left in the folder after a drop: {left}" if left else None


@pytest.mark.parametrize("pinned", [False, True], ids=["alone", "reader-holds-a-snapshot"])
def test_a_drop_killed_at_any_step_is_done_or_not_done(tmp_path: Path, pinned: bool) -> None:
    rng = random.Random(f"{SEED}-{pinned}")
    victims, holders = hp.ForkZygote(), hp.ForkZygote()
    report = tmp_path / "report.txt"
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    steps = None
    try:
        k = 0
        while steps is None:
            k += 1
            folder = tmp_path / f"f{k}"
            _make_folder(folder)
            release = tmp_path / f"release-{k}"
            if pinned:
                ready = tmp_path / f"ready-{k}"
                holder = holders.start({"command": "snapshot-holder", "path": str(folder), "name": NAME,
                                        "ready": str(ready), "release": str(release)})
                hp.wait_for(ready, 60)
            try:
                line = run_victim(victims, report, path=str(folder), name=NAME, keys=KEYS, version=2,
                                  action="drop", kill_at=k)
                assert not line.startswith("died "), f"the first victim failed: {line}"
                if line.startswith("done "):
                    steps = int(line.split()[2])
                seen = observe_drop(folder)
                if seen in ("kept", "dropped"):
                    # Whatever the kill left, a second process drops again and is killed at a random step.
                    again = run_victim(victims, report, path=str(folder), name=NAME, keys=[], version=0,
                                       action="drop", open_in_action=True, kill_at=rng.randint(1, 130))
                    seen = (f"the second drop failed: {again}" if again.startswith("died ")
                            else observe_drop(folder))
            finally:
                if pinned:
                    release.write_text("go")
                    assert holders.end() == {"exit": 0}, f"the snapshot holder failed (pid {holder})"
            if pinned and seen in ("kept", "dropped"):
                after = observe_drop(folder)
                if after != seen:
                    seen = f"{seen}, then once the reader let go: {after}"
            problem = None if seen in ("kept", "dropped") else seen
            if problem is None:
                problem = finish_and_check(folder, seen)
            outcomes[seen if problem is None else problem.split(":")[0]] += 1
            if problem is not None:
                failures.append(f"killed before step {k} ({line}): {problem}")
    finally:
        victims.close()
        holders.close()
    print(f"\n[drop crash, {'reader holds a snapshot' if pinned else 'alone'}] kills={k} "
          f"(every step of a {steps}-step drop, then a second kill at a random step) outcomes={dict(outcomes)}")
    assert not failures, f"{len(failures)} of {k} kills left a broken drop:\n" + "\n".join(failures)
    assert outcomes.get("kept") and outcomes.get("dropped")


def observe_creation(folder: Path, name: str) -> str:
    """``"absent"`` or ``"made"`` (complete: listed, serializer recorded, usable); else what is wrong."""
    try:
        with kvlite.open(folder, layout="per-collection") as store:
            names = store.collections()
            serializer = store.serializer_of(name)
            if name in names:
                if serializer != "json":
                    return f"half-made: listed, serializer_of() is {serializer!r}"
                if store.collection(name).get("made") not in (1, None):
                    return "wrong value"
                state = "made"
            elif serializer is not None:
                return f"half-made: not listed, serializer_of() is {serializer!r}"
            else:
                state = "absent"
            if sorted(names) != sorted([KEEP, name] if state == "made" else [KEEP]):
                return f"collections() is {names}"
        copied = kvlite.copy(str(folder), "memory://", progress=False)
    except kvlite.KvliteError as exc:
        return f"error: {type(exc).__name__}: {exc}"
    if set(copied) != ({KEEP, name} if state == "made" else {KEEP}):
        return f"kvlite.copy copied {copied}"
    return state


@pytest.mark.parametrize("name", [NAME, LONG_NAME], ids=["short-name", "hashed-file-name"])
def test_a_creation_killed_at_any_step_is_never_half_visible(tmp_path: Path, name: str) -> None:
    victims = hp.ForkZygote()
    report = tmp_path / "report.txt"
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    steps = None
    try:
        k = 0
        while steps is None:
            k += 1
            folder = tmp_path / f"f{k}"
            with kvlite.open(folder, layout="per-collection") as store:
                store.collection(KEEP).put_many(_values(1))
            line = run_victim(victims, report, path=str(folder), name=name, keys=[], version=0,
                              action="create", kill_at=k)
            if line.startswith("done "):
                steps = int(line.split()[2])
            seen = observe_creation(folder, name)
            problem = None if seen in ("absent", "made") else seen
            if problem is None:
                with kvlite.open(folder, layout="per-collection") as store:
                    store.collection(name).put("made", 2)  # made now (or again), and dropped: nothing is left
                    if store.drop_collection(name) is not True:
                        problem = "could not be dropped"
                if problem is None and _leftovers(folder):
                    problem = f"left in the folder: {_leftovers(folder)}"
            outcomes[seen if problem is None else problem.split(":")[0]] += 1
            if problem is not None:
                failures.append(f"killed before step {k} ({line}): {problem}")
    finally:
        victims.close()
    print(f"\n[creation crash, {'hashed' if name == LONG_NAME else 'short'} name] kills={k} "
          f"(every step of a {steps}-step collection(name).put()) outcomes={dict(outcomes)}")
    assert not failures, f"{len(failures)} of {k} kills left a half-made collection:\n" + "\n".join(failures)
    assert outcomes.get("absent") and outcomes.get("made")


def _list_while_creating(folder: Path, seconds: float) -> tuple[int, list[str], list[str]]:
    """Call ``collections()`` while another process makes collections in ``folder`` for up to ``seconds``.

    Returns the number of calls, their errors, and the names listed before they were complete."""
    report, ready, go = folder / "made.txt", folder / "ready", folder / "go"
    folder.mkdir()
    data = folder / "data"
    with kvlite.open(data, layout="per-collection") as store:
        store.collection(KEEP).put("k", 1)
    args = {"path": str(data), "report": str(report), "ready": str(ready), "go": str(go),
            "seconds": seconds, "count": 300, "tag": "n"}
    creator = subprocess.Popen([sys.executable, str(Path(hp.__file__).resolve()), "collection-creator",
                                json.dumps(args)])
    calls, errors, half = 0, [], []
    complete: set[str] = {KEEP}
    try:
        hp.wait_for(ready, 60)
        go.write_text("go")
        with kvlite.open(data, layout="per-collection") as store:
            while creator.poll() is None:
                calls += 1
                try:
                    names = store.collections()
                except kvlite.KvliteError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                for name in set(names) - complete:
                    # Nothing drops here: a listed collection is complete, now and later.
                    if store.serializer_of(name) == "json":
                        complete.add(name)
                    else:
                        half.append(name)
            made = [json.loads(line) for line in report.read_text().splitlines()]
            final = store.collections()
    finally:
        if creator.poll() is None:
            creator.kill()
        creator.wait()
    assert creator.returncode == 0
    assert sorted(final) == sorted([KEEP, *made]) and len(made) > 20
    return calls, errors, half


def test_collections_never_fails_while_another_process_creates(tmp_path: Path) -> None:
    """``KVLITE_CREATE_ROUNDS`` (default 1) runs more rounds of up to 4 s (300 collections) each."""
    calls, errors, half = 0, [], []
    rounds = int(os.environ.get("KVLITE_CREATE_ROUNDS", "1"))
    for round_ in range(rounds):
        more_calls, more_errors, more_half = _list_while_creating(tmp_path / f"round-{round_}", 4.0)
        calls += more_calls
        errors += more_errors
        half += more_half
    print(f"\n[collections() during creation] rounds={rounds} calls={calls} errors={len(errors)} "
          f"listed before complete={len(half)}")
    assert not errors, f"{len(errors)} of {calls} collections() calls failed, e.g. {errors[:3]}"
    assert not half, f"{len(half)} listed names were not complete collections, e.g. {half[:3]}"
