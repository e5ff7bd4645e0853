"""Running the ``kvlite`` command line from tests, shared by ``test_cli.py`` and
``test_cli_hardening.py``.

* :class:`Cli` - runs the installed console script (or ``python -m kvlite``, see
  :data:`RUNNERS`) in the test's temp dir as a subprocess; the ``cli`` and ``any_cli``
  fixtures (in ``conftest.py``) make one.
* :func:`ok`, :func:`one_error_line` - check a run's exit code and stderr.
* :func:`past_clock`, :func:`json_lines` - small helpers the CLI tests share.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson


def _console_script() -> str:
    """The installed ``kvlite`` script: next to this Python first, then on PATH."""
    name = "kvlite.exe" if os.name == "nt" else "kvlite"
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which("kvlite")
    assert found, "the kvlite console script is not installed (pip install -e . or pip install .)"
    return found


RUNNERS = {
    "script": lambda: [_console_script()],
    "module": lambda: [sys.executable, "-m", "kvlite"],
}


class Cli:
    """Runs the command line in ``cwd`` (the test's temp dir)."""

    def __init__(self, cwd: Path, runner: str = "script") -> None:
        self.cwd = cwd
        self.prefix = RUNNERS[runner]()
        self.env = dict(os.environ, TMPDIR=str(cwd))

    def __call__(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*self.prefix, *args], check=False, input=stdin, capture_output=True,
                              cwd=self.cwd, env=self.env, timeout=120)

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*self.prefix, *args], cwd=self.cwd, env=self.env, **kwargs)


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def one_error_line(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    """Assert the exit code and that stderr is exactly one ``kvlite: error:`` line; return it."""
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kvlite: error: "), err
    return lines[0]


def past_clock() -> float:
    """A clock 10 000 s behind real time: a TTL of 10 s written with it has already expired."""
    return time.time() - 10_000


def json_lines(text: str) -> list[Any]:
    return [orjson.loads(line) for line in text.splitlines()]
