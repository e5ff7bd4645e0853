"""What the throwaway-server plugins share (tests/server_postgres.py, server_redis.py,
server_memcached.py): a free loopback port, and the rule for a server that cannot start."""

from __future__ import annotations

import os
import socket

import pytest

__all__ = ["free_port", "unavailable"]


def unavailable(reason: str) -> None:
    """Skip the test for ``reason``, or fail it under ``CI=true`` (a skip must not pass CI)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing server is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port of 127.0.0.1 free at the time of the call (a server may still lose it to
    another process: the plugins retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
