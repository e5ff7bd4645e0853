"""``python -m kvlite``: the same command line as the ``kvlite`` script (see :mod:`kvlite.cli`)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
