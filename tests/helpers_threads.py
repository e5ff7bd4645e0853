"""Running test code on several threads at once, for the tests of stores shared between threads."""

from __future__ import annotations

import threading
from typing import Any, Callable


def in_threads(count: int, target: Callable[[int], Any], timeout: float = 20) -> list[Any]:
    """``target(i)`` for ``i`` in ``range(count)``, on ``count`` daemon threads released together.

    Returns their results in order; re-raises the first exception a thread raised, and fails
    when a thread is still running after ``timeout`` seconds (a hang, such as an event loop
    waiting for a lock that is never released).
    """
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait(timeout)
        try:
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
