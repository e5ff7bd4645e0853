"""pytest plugin: a throwaway Redis (or Valkey) server for the session.

``redis_url`` (session scope) starts ``redis-server`` (``valkey-server`` when
there is no ``redis-server``) on a free port of 127.0.0.1 with no persistence
(``--save '' --appendonly no``) in a new temporary folder, waits until it
answers ``PING``, yields ``redis://127.0.0.1:PORT/0``, and at the end of the
session stops the server and deletes the folder.

When neither binary nor redis-py is available the tests that use it are
skipped with the reason, except under ``CI=true``, where that is a failure.
Each test should use its own ``?prefix=`` (see ``redis_prefix_url``), so tests
never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest
from helpers_servers import answers, free_port, stop, unavailable

__all__ = ["redis_prefix_url", "redis_url"]

_START_SECONDS = 15.0


def _start(binary: str, folder: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``binary`` on a free port; a few attempts, since another process may take the port first."""
    last_error = ""
    for _attempt in range(3):
        port = free_port()
        log = open(os.path.join(folder, f"server-{port}.log"), "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", folder, "--daemonize", "no", "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, cwd=folder)
        log.close()
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline and proc.poll() is None:
            if answers(port, b"PING\r\n", b"+PONG"):
                return proc, port
            time.sleep(0.05)
        stop(proc)
        with open(os.path.join(folder, f"server-{port}.log"), "rb") as f:
            last_error = f.read()[-2000:].decode("utf-8", "replace")
    raise RuntimeError(f"{binary} did not start: {last_error}")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0`` of a server that lives for the test session."""
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("redis-py is not installed (pip install redis)")
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        unavailable("neither redis-server nor valkey-server is installed (apt-get install redis-server)")
    folder = tempfile.mkdtemp(prefix="kvlite-redis-")
    try:
        proc, port = _start(binary, folder)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(proc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_prefix_url(redis_url: str) -> str:
    """``redis_url`` with a ``?prefix=`` of its own: a namespace no other test uses."""
    return f"{redis_url}?prefix=t-{uuid.uuid4().hex}"
