"""A throwaway PostgreSQL server for the tests: the session fixture ``postgres_url``.

The server lives in a new temp folder, listens on 127.0.0.1 only, on a free
port, with its unix socket in that folder and ``fsync=off`` (nothing here
needs to survive a power cut; ``PostgresServer(bindir, fsync=True)`` makes one
with it on, for the test of ``durability="full"``).  It is stopped (``pg_ctl stop -m fast``) and
its folder deleted when the test session ends.

PostgreSQL refuses to run as root, and the tests run as root here and in CI:
then the server runs as an unprivileged user (``nobody``, or ``kvlitetest``,
created with ``useradd --system`` when no usable user exists).

Binaries are looked up on ``PATH`` and under ``/usr/lib/postgresql/*/bin``
(the newest version wins).  When they (or ``psycopg``) are missing the tests
that need the server are skipped with the reason -- except under ``CI=true``,
where a missing server is a failure: CI must run every test.

``postgres_url`` is a ``postgresql://`` URL to a fresh database of that
server.  Tests isolate themselves with their own collection names or schemas
(:func:`new_schema_url`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from helpers_servers import free_port, unavailable

__all__ = ["postgres_url", "postgres_server", "new_schema_url", "PostgresServer"]

_DATABASE = "kvlite_test"
_START_TIMEOUT = 60.0


def _find_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or ``None``."""
    found = shutil.which("pg_ctl")
    candidates = []
    if found:
        candidates.append(Path(found).resolve().parent)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
                      reverse=True)
    candidates += [Path(p) for p in versions]
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _server_user() -> pwd.struct_passwd | None:
    """The user the server runs as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("nobody", "kvlitetest"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "kvlitetest"],
                   check=True, capture_output=True)
    return pwd.getpwnam("kvlitetest")


def _base_dir(user: pwd.struct_passwd | None) -> str | None:
    """Where the server's folder goes: the temp dir, unless the server user could not reach it
    (a parent not searchable by others) or the unix socket path would get too long: then ``/tmp``."""
    base = Path(tempfile.gettempdir()).resolve()
    reachable = user is None or all(os.stat(p).st_mode & 0o001 for p in [base, *base.parents])
    if reachable and len(str(base)) < 60:
        return None
    return "/tmp"


class PostgresServer:
    """One running server: ``url`` (database ``kvlite_test``), ``port``, ``folder``."""

    def __init__(self, bindir: Path, *, fsync: bool = False) -> None:
        self.bindir = bindir
        self.fsync = fsync
        self.user = _server_user()
        self.folder = Path(tempfile.mkdtemp(prefix="kvlite-pg-", dir=_base_dir(self.user)))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{_DATABASE}"
        if self.user is not None:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        self.folder.chmod(0o700)

    def _run(self, *args: str, check: bool = True, timeout: float = _START_TIMEOUT) -> subprocess.CompletedProcess[str]:
        options: dict[str, Any] = {}
        if self.user is not None:
            options = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C",
               "HOME": str(self.folder), "TZ": "UTC"}
        return subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.folder, env=env,
                              capture_output=True, text=True, check=check, timeout=timeout, **options)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        settings = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                    f"-c unix_socket_directories='{self.folder}' -c fsync={'on' if self.fsync else 'off'} "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        started = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", settings,
                            "-w", "-t", str(int(_START_TIMEOUT)), "start", check=False)
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {started.stdout}{started.stderr}\n{self._log_tail()}")
        self._wait_accepting()
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{_DATABASE}"')

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not accept connections:\n{self._log_tail()}") from None
                time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running throwaway server for the whole session (skips/fails when unavailable)."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        unavailable(f"psycopg 3 / psycopg_pool are not installed ({exc}); pip install 'psycopg[binary]' psycopg-pool")
    bindir = _find_bindir()
    if bindir is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH "
                     "or in /usr/lib/postgresql/*/bin; install the 'postgresql' package")
    assert bindir is not None
    server = PostgresServer(bindir)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql://`` URL of a fresh database on the throwaway server."""
    return postgres_server.url


def new_schema_url(url: str, prefix: str = "t") -> str:
    """A URL like ``url`` whose tables live in a new, empty schema (so each caller starts clean)."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"
