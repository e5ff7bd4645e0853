"""The change feed and backups on every engine (issue 15): recorded with the key's latest value (also
through ``jsonb``, read back as text) where the engine keeps a log, ``NotSupported``
from exactly the engines whose docs say so (Redis, PostgreSQL; a per-collection folder keeps one log per
collection file, so it is read one collection at a time); a backup
that opens as a store with the same data, or ``NotSupported`` (memory://, Redis, PostgreSQL).
The deeper checks (processes, retention, SIGKILL) are in ``tests/test_changes.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import kvlite
from kvlite.errors import NotSupported

from .base import EngineTests

#: Engines that keep a change log (docs/changes-and-backup.md, "Where it is available").
LOGGED = ("sqlite-file", "sqlite-jsonb", "sqlite-memory", "per-collection", "memory")
#: Engines kvlite backs up itself.
BACKED_UP = ("sqlite-file", "sqlite-jsonb", "sqlite-memory", "per-collection", "lmdb")


class ChangeFeed(EngineTests):
    def test_changes_are_recorded_or_not_supported(self, store: Any) -> None:
        if self.engine not in LOGGED:
            with pytest.raises(NotSupported):
                store.collection("feed", changes=True)
            with pytest.raises(NotSupported):
                store.changes()
            with pytest.raises(NotSupported):
                store.last_change_seq()
            return
        c = store.collection("feed", changes=True)
        start = store.last_change_seq("feed")
        feed = ["feed"]  # one collection: what every engine reads, a per-collection folder included
        c.put("a", {"n": 1, "s": "é"})
        assert [(ch.key, ch.op, ch.value) for ch in store.changes(since=start, collections=feed)] == \
            [("a", "put", {"n": 1, "s": "é"})]
        c.patch("a", {"n": 2})
        c.put(7, [1, 2.5, None])
        store.collection("quiet").put("q", 1)
        got = [(ch.collection, ch.key, ch.op, ch.value) for ch in store.changes(since=start, collections=feed)]
        assert got == [("feed", "a", "put", {"n": 2, "s": "é"}), ("feed", "a", "put", {"n": 2, "s": "é"}),
                       ("feed", 7, "put", [1, 2.5, None])]  # each put with the key's latest value
        c.delete("a")
        got = [(ch.key, ch.op, ch.value) for ch in store.changes(since=start, collections=feed)]
        assert got == [("a", "put", kvlite.ABSENT), ("a", "put", kvlite.ABSENT), (7, "put", [1, 2.5, None]),
                       ("a", "delete", kvlite.ABSENT)]
        seqs = [ch.seq for ch in store.changes(since=start, collections=feed)]
        assert seqs == sorted(set(seqs)) and seqs[-1] == store.last_change_seq("feed")
        if self.engine == "per-collection":  # one log per file: it is read one collection at a time
            with pytest.raises(NotSupported, match="one change log per collection file"):
                store.changes()
            with pytest.raises(NotSupported):
                store.last_change_seq()

    def test_backup_opens_as_the_same_store_or_not_supported(self, store: Any, tmp_path: Path) -> None:
        c = store.collection("kept")
        c.put_many({"a": {"x": 1}, 2: "two", b"\x01": [True]})
        target = tmp_path / "backup-target"
        if self.engine not in BACKED_UP:
            with pytest.raises(NotSupported):
                store.backup(target)
            assert not target.exists()
            return
        store.backup(target)
        options = {"layout": "per-collection"} if self.engine == "per-collection" else {}
        opened = f"lmdb://{target}" if self.engine == "lmdb" else target  # an LMDB backup is a folder
        with kvlite.open(opened, readonly=True, **options) as copy:
            restored = copy.existing_collection("kept")
            assert restored is not None and list(restored.items()) == list(c.items())
