"""What the throwaway-server plugins share (tests/server_postgres.py, server_redis.py,
server_memcached.py): a free loopback port, the rule for a server that cannot start, and for the
servers started as a child process, a readiness probe and a stop."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

__all__ = ["answers", "free_port", "stop", "unavailable"]


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


def answers(port: int, request: bytes, reply: bytes) -> bool:
    """Whether a server on ``port`` of 127.0.0.1 replies to ``request`` with a line starting ``reply``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(request)
            return sock.recv(64).startswith(reply)
    except OSError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server process: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
