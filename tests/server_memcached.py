"""pytest plugin: a throwaway memcached server for the session.

``memcached_address`` (session scope) starts ``memcached -l 127.0.0.1 -p PORT -U 0`` (TCP only,
loopback only, no UDP) on a free port, waits until it answers ``version``, yields
``("127.0.0.1", PORT)``, and stops the server at the end of the session.

When the ``memcached`` binary is missing the tests that use it are skipped with the reason,
except under ``CI=true``, where that is a failure.  memcached has no namespaces: each test
should use collections of its own (py-key-value prefixes every key with its collection).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from helpers_servers import answers, free_port, stop, unavailable

__all__ = ["memcached_address"]

_START_SECONDS = 15.0


def _start(binary: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start memcached on a free port; a few attempts, since another process may take the port first."""
    last_error = b""
    for _attempt in range(3):
        port = free_port()
        command = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command += ["-u", "nobody"]  # memcached refuses to run as root without a user to switch to
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline and proc.poll() is None:
            if answers(port, b"version\r\n", b"VERSION"):
                return proc, port
            time.sleep(0.05)
        stop(proc)
        last_error = proc.stderr.read() if proc.stderr else b""
    raise RuntimeError(f"memcached did not start: {last_error[-2000:].decode('utf-8', 'replace')}")


@pytest.fixture(scope="session")
def memcached_address() -> Iterator[tuple[str, int]]:
    """``("127.0.0.1", PORT)`` of a memcached server that lives for the test session."""
    binary = shutil.which("memcached")
    if binary is None:
        unavailable("memcached is not installed (apt-get install memcached)")
    proc, port = _start(binary)  # type: ignore[arg-type]
    try:
        yield "127.0.0.1", port
    finally:
        stop(proc)
        if proc.stderr:
            proc.stderr.close()
