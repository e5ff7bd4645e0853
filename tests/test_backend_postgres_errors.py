"""PostgreSQL errors reach the caller as kvlite exceptions, and nothing else: no warning logged by
psycopg, nothing printed to stderr.

psycopg runs ``executemany()`` (kvlite's ``put_many``) in pipeline mode.  When a row of the batch
failed while later rows were already sent -- another client dropped the collection, PostgreSQL
refused a value -- psycopg's own pipeline ended on the error and logged "error ignored terminating
<psycopg.Pipeline ...>: pipeline aborted" on the ``psycopg`` logger, which Python prints to stderr
when the program configured no logging (about 20 times in 5 seconds of drops under a busy client;
9 or 10 of 10 batches of 200 rows or more with a refused value early in them).

The server is the throwaway one of ``tests/server_postgres.py`` (skipped when PostgreSQL is not
installed, a failure under ``CI=true``); every test works in a schema of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterator

import pytest
from server_postgres import new_schema_url

import kvlite
from kvlite.errors import CollectionDropped, KvliteError, SerializationError, StoreLocked

try:  # the optional extra; without it the server fixture skips (or fails under CI=true)
    import psycopg
except ImportError:  # pragma: no cover - depends on the environment
    psycopg = None  # type: ignore[assignment]

BATCH = {f"k{i:03d}": "x" * 1_000 for i in range(300)}


class _RefuseMarked(kvlite.Serializer):
    """JSON, except that the value ``"poison"`` becomes text PostgreSQL refuses as jsonb."""

    name = "json-poison-pg-errors-test"
    json = True

    def dumps(self, value: Any) -> str:
        return "{oops" if value == "poison" else kvlite.serializers.get("json").dumps(value)

    def loads(self, data: Any) -> Any:
        return kvlite.serializers.get("json").loads(data)


@pytest.fixture
def schema_url(postgres_url: str) -> str:  # noqa: F811
    return new_schema_url(postgres_url)


@pytest.fixture
def open_pg(schema_url: str) -> Iterator[Callable[..., Any]]:
    opened: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        store = kvlite.open(schema_url, **kwargs)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def quiet(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """The test's code logs nothing at WARNING or above (psycopg's logger included; a program
    that configured no logging gets such records printed on stderr) and prints nothing to stderr."""
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    capfd.readouterr()
    try:
        yield
    finally:
        root.removeHandler(records)
    assert records.messages == []
    assert capfd.readouterr().err == ""


def _waiting_locks(conn: Any, table: str) -> int:
    """How many lock requests on ``table`` wait (not granted)."""
    row = conn.execute("SELECT count(*) FROM pg_locks WHERE relation = to_regclass(%s) AND NOT granted",
                       (table,)).fetchone()
    return int(row[0])


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("at", [0, 5, 150])
def test_a_value_postgresql_refuses_in_a_batch_is_serialization_error_and_quiet(
        open_pg: Callable[..., Any], quiet: None, at: int) -> None:
    kvlite.register_serializer(_RefuseMarked(), replace=True)
    coll = open_pg().collection("c", serializer=_RefuseMarked.name)
    coll.put("before", 1)
    for _ in range(5):
        entries = list(BATCH.items())
        entries[at] = ("poison", "poison")
        with pytest.raises(SerializationError):
            coll.put_many(entries)
    assert list(coll.items()) == [("before", 1)]  # nothing of the batches was written
    coll.put_many(BATCH)  # and the connections work on
    assert len(coll) == len(BATCH) + 1


@pytest.mark.parametrize("block", [False, True], ids=["put_many", "put_many in transaction()"])
def test_a_collection_dropped_under_put_many_is_collection_dropped_and_quiet(
        open_pg: Callable[..., Any], schema_url: str, quiet: None, block: bool) -> None:
    dropper, writer = open_pg(), open_pg()
    coll = writer.collection("c")
    coll.put("before", 1)
    table = f"kv_{coll._table.table_id:d}"
    with psycopg.connect(schema_url) as holder, psycopg.connect(schema_url, autocommit=True) as watcher:
        holder.execute(f'SELECT 1 FROM "{table}" LIMIT 1')  # its transaction holds a lock on the table
        drop, dropped = _in_thread(lambda: dropper.drop_collection("c"))
        _wait_for(lambda: _waiting_locks(watcher, table) == 1, "the DROP TABLE to wait for the lock")

        def write() -> None:
            if block:
                with writer.transaction():
                    coll.put_many(BATCH)
            else:
                coll.put_many(BATCH)

        put, written = _in_thread(write)
        _wait_for(lambda: _waiting_locks(watcher, table) == 2, "put_many to queue behind the DROP")
        holder.rollback()
        drop.join(60)
        put.join(60)
    assert dropped == {"result": True}
    assert isinstance(written.get("error"), CollectionDropped), written
    assert writer.collection("c").get("before") is None  # a new, empty collection
    assert len(writer.collection("c")) == 0


def test_a_lock_timeout_in_put_many_is_store_locked_and_quiet(open_pg: Callable[..., Any], schema_url: str,
                                                              quiet: None) -> None:
    writer = open_pg(timeout=1)
    coll = writer.collection("c")
    coll.put("k000", "before")
    table = f"kv_{coll._table.table_id:d}"
    with psycopg.connect(schema_url) as holder:
        holder.execute(f"""UPDATE "{table}" SET updated_at = now()""")  # locks the row of k000
        with pytest.raises(StoreLocked):
            coll.put_many(BATCH)  # k000 first: it waits for the row, and times out
        holder.rollback()
    assert list(coll.items()) == [("k000", "before")]  # nothing of the batch was written
    coll.put_many(BATCH)  # the connection it used works again
    assert len(coll) == len(BATCH)


def test_drops_under_busy_clients_raise_only_collection_dropped(open_pg: Callable[..., Any], quiet: None) -> None:
    """The reported case: one store drops and re-creates a collection while another reads and
    writes it, for a while.  Every failure is CollectionDropped; nothing is logged or printed."""
    dropper, worker = open_pg(), open_pg()
    stop = time.monotonic() + 3
    drops = 0

    def churn() -> None:
        nonlocal drops
        while time.monotonic() < stop:
            dropper.collection("c")
            drops += dropper.drop_collection("c")

    thread, outcome = _in_thread(churn)
    failures: dict[str, int] = {}
    calls = 0
    while time.monotonic() < stop:
        coll = worker.collection("c")
        for call in (lambda: coll.put_many({f"k{i}": i for i in range(20)}), lambda: coll.get("k1"),
                     lambda: list(coll.items()), lambda: coll.put("x", 1), lambda: coll.setdefault("y", 2),
                     lambda: coll.pop("x", None), lambda: len(coll)):
            calls += 1
            try:
                call()
            except KvliteError as exc:
                failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
    thread.join(60)
    assert outcome == {"result": None}
    assert drops > 10 and calls > 100
    assert set(failures) <= {"CollectionDropped"}, failures
