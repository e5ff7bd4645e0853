"""Crash safety: a writer process is SIGKILLed at random moments; nothing it was told is committed is lost.

Each trial starts a writer process (``helpers_proc.py crash-writer``, forked by
a ``crash-zygote`` process that has kvlite imported, so a trial does not pay
for an interpreter start-up) on a store file, waits a random time (sometimes
almost none, to hit the creation of the file and its migrations), kills the
writer with SIGKILL, then reopens the file and checks:

* it opens, and ``PRAGMA integrity_check`` says ``ok``;
* the collections hold *exactly* the model built from the writer's ``done``
  reports, in insertion order: every confirmed put, overwrite, batch, delete and
  transaction is there with its exact value, and nothing else is;
* the single operation in flight at the kill (``begin`` without ``done``) is
  either entirely there or entirely absent: a ``put_many`` batch or a
  two-collection transaction is never half-visible.

The outcome of that in-flight operation, once observed, joins the model: the
next trials (which keep writing to the same file, recovering it again and
again) must keep it too.  Odd trials verify through a read-only store, so the
next writer also has to recover a WAL left behind by a crash.

Both durabilities are tested.  A SIGKILL is a process crash, not a power loss:
``normal`` and ``full`` must both keep every committed write here; ``full``
additionally fsyncs each commit so it also survives an OS crash (which this
test cannot simulate; see docs/limits.md).

``KVLITE_CRASH_TRIALS`` (default 50) sets the number of trials per durability.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import helpers_proc as hp
import pytest

import kvlite

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

TRIALS = int(os.environ.get("KVLITE_CRASH_TRIALS", "50"))
#: A fresh file is started every this many trials, so verification stays fast.
TRIALS_PER_FILE = 10
HELPER = Path(hp.__file__).resolve()


def parse_report(text: str) -> tuple[list[list[str]], list[str] | None]:
    """The ``done`` operations in order, and the operation in flight at the kill (or None)."""
    done: list[list[str]] = []
    pending: list[str] | None = None
    lines = text.split("\n")
    for line in lines[:-1]:  # the last piece has no newline: an unfinished line is not a report
        word, *rest = line.split(" ")
        if word == "begin":
            assert pending is None, f"two operations in flight: {pending} and {rest}"
            pending = rest
        else:
            assert word == "done" and rest == pending, f"done {rest} does not match begin {pending}"
            done.append(rest)
            pending = None
    return done, pending


class Model:
    """What the two collections must hold, as ordered dicts (the dict semantics kvlite promises)."""

    def __init__(self) -> None:
        self.main: dict[str, Any] = {}
        self.side: dict[str, Any] = {}
        self.writes = 0  # confirmed writes folded into the model (keys written, batches count each key)

    def copy(self) -> Model:
        other = Model()
        other.main, other.side, other.writes = dict(self.main), dict(self.side), self.writes
        return other

    def apply(self, op: list[str]) -> None:
        kind, seq = op[0], int(op[1])
        if kind == "put":
            self.main[f"p:{seq}"] = hp.put_value(seq)
            self.writes += 1
        elif kind == "hot":
            self.main[hp.hot_key(seq)] = hp.put_value(seq)
            self.writes += 1
        elif kind == "batch":
            n = int(op[2])
            for j, key in enumerate(hp.batch_keys(seq, n)):
                self.main[key] = hp.batch_value(seq, j, n)
            self.writes += n
        elif kind == "del":
            del self.main[f"p:{int(op[2])}"]
            self.writes += 1
        elif kind == "tx":
            self.main[f"x:{seq}"] = hp.put_value(seq)
            self.side[f"x:{seq}"] = hp.put_value(seq)
            self.writes += 2
        else:  # pragma: no cover - protocol error
            raise AssertionError(f"unknown operation {op}")

    def matches(self, main: list[tuple[Any, Any]], side: list[tuple[Any, Any]]) -> bool:
        return main == list(self.main.items()) and side == list(self.side.items())


def describe_difference(model: Model, main: list[tuple[Any, Any]]) -> str:
    actual = dict(main)
    missing = [k for k in model.main if k not in actual]
    extra = [k for k in actual if k not in model.main]
    changed = [k for k in model.main if k in actual and actual[k] != model.main[k]]
    return f"missing={missing[:10]} extra={extra[:10]} changed={changed[:10]}"


class Zygote:
    """``helpers_proc.py crash-zygote``: forks a writer process per trial (no interpreter start-up each time)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HELPER), "crash-zygote", "{}"], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def request(self, args: dict[str, Any]) -> int:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()
        return int(self.answer()["pid"])

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        assert line, "the crash zygote died"
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def run_trial(zygote: Zygote, path: Path, durability: str, report: Path, seed: int,
              first_seq: int, delay: float) -> tuple[list[list[str]], list[str] | None]:
    """One writer life: fork it, wait ``delay``, SIGKILL it; returns its report."""
    report.write_bytes(b"")
    pid = zygote.request({"path": str(path), "durability": durability, "report": str(report),
                          "seed": seed, "first_seq": first_seq})
    try:
        # Not a timing assertion: the sleep only spreads the kill over the writer's life.
        time.sleep(delay)
    finally:
        os.kill(pid, signal.SIGKILL)
    # The writer must have been running until the kill, not have died of an error by itself.
    assert zygote.answer() == {"signal": signal.SIGKILL}
    return parse_report(report.read_text())


def verify(path: Path, model: Model, pending: list[str] | None, readonly: bool) -> Model:
    """Reopen ``path`` and check it against ``model`` (+ the in-flight op, all or nothing).

    Returns the model to carry on with (including the in-flight op when it landed).
    """
    store = kvlite.open(path, readonly=readonly)
    try:
        conn = store.engine.connection()
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        names = store.collections()
        main = list(store.collection("main").items()) if "main" in names else []
        side = list(store.collection("side").items()) if "side" in names else []
    finally:
        store.close()
    if model.matches(main, side):
        return model
    if pending is not None:
        landed = model.copy()
        landed.apply(pending)
        if landed.matches(main, side):
            return landed
    raise AssertionError(
        f"store does not match the confirmed writes (in flight: {pending}): {describe_difference(model, main)}; "
        f"side: {len(side)} vs model {len(model.side)}")


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_sigkill_never_loses_a_committed_write(tmp_path: Path, durability: str) -> None:
    rng = random.Random(f"crash-{durability}")
    report = tmp_path / "report.txt"
    model = Model()
    path = tmp_path / "crash-0.db"
    confirmed = in_flight = landed = 0
    zygote = Zygote()
    try:
        for trial in range(TRIALS):
            if trial % TRIALS_PER_FILE == 0:
                path = tmp_path / f"crash-{trial}.db"
                model = Model()
            # Some trials kill almost at once: during the file's creation, WAL setup, migrations or recovery.
            delay = rng.uniform(0, 0.01) if trial % 5 == 0 else rng.uniform(0, 0.15)
            done, pending = run_trial(zygote, path, durability, report, seed=rng.randrange(1 << 30),
                                      first_seq=trial * 1_000_000, delay=delay)
            before = model.writes
            for op in done:
                model.apply(op)
            confirmed += model.writes - before
            readonly = trial % 2 == 1 and model.writes > 0  # only a migrated file opens read-only
            after = verify(path, model, pending, readonly=readonly)
            in_flight += pending is not None
            landed += after is not model
            model = after
    finally:
        zygote.close()
    print(f"\n[crash {durability}] trials={TRIALS} confirmed writes checked={confirmed} "
          f"in-flight ops={in_flight} (landed whole: {landed}, absent whole: {in_flight - landed}) lost=0")
    assert confirmed > 0


def test_parse_report_ignores_an_unfinished_line() -> None:
    done, pending = parse_report("begin put 1\ndone put 1\nbegin batch 2 10\ndone bat")
    assert done == [["put", "1"]]
    assert pending == ["batch", "2", "10"]


def test_model_rejects_a_partial_batch() -> None:
    model = Model()
    landed = model.copy()
    landed.apply(["batch", "5", "3"])
    full = list(landed.main.items())
    assert landed.matches(full, [])
    assert not model.matches(full[:2], []) and not landed.matches(full[:2], [])
