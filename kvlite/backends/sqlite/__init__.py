"""The SQLite engine, kvlite's default: one file (or ``":memory:"``) holds every collection.

- :mod:`.engine` -- connections (one per thread, fork-safe), SQLite settings,
  transactions and snapshots, the registry of collections;
- :mod:`.table` -- one collection's table and its statements;
- :mod:`.query` -- JSONPath/ObjectPath push-down: a query plan's filters as SQL;
- :mod:`.migrate` -- the schema, made and upgraded by numbered migrations;
- :mod:`.errors` -- apsw's exceptions as :mod:`kvlite.errors`.
"""

from __future__ import annotations

from .engine import SQLiteEngine

__all__ = ["SQLiteEngine"]
