"""Transactions on every engine: atomic (commit, rollback, savepoints, collection changes undone)
on the engines that support them; ``NotSupported`` raised -- with nothing written -- by exactly the
engines whose documentation says so; a second block waits up to the store's timeout."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock

from kvlite.errors import KvliteError, NotSupported

from .base import TTL_TOLERANCE, EngineTests, StoreMaker, typed

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=\.)\s+", " ".join(text.split()))


def transaction_documented_as_not_supported(store: Any) -> bool:
    """Whether the store's documentation says its ``transaction()`` raises ``NotSupported``.

    Read from the engine module's docstring, its engine class's docstring, a
    ``transaction`` method the class itself defines, and the engine's page in
    ``docs/backends/`` (a Markdown line), when there is one: a sentence (or a
    line) that names both ``transaction()`` and ``NotSupported``.
    """
    cls = type(store.engine)
    module = sys.modules[cls.__module__]
    texts = [module.__doc__ or "", cls.__doc__ or ""]
    if "transaction" in vars(cls):
        texts.append(vars(cls)["transaction"].__doc__ or "")
    pieces = [sentence for text in texts for sentence in _sentences(text)]
    for page in (DOCS_DIR / "backends").glob("*.md"):
        if page.stem in cls.__module__.split(".")[2:]:  # kvlite.backends.<engine>[.module]
            pieces += page.read_text(encoding="utf-8").splitlines()
    return any("transaction()" in piece and "NotSupported" in piece for piece in pieces)


def _supports_transactions(store: Any) -> bool:
    try:
        with store.transaction():
            pass
    except NotSupported:
        return False
    return True


class Transactions(EngineTests):
    """Atomic blocks, or NotSupported where the docs say so."""

    def test_transaction_support_is_exactly_what_the_docs_say(self, store: Any) -> None:
        supported = _supports_transactions(store)
        assert supported is not transaction_documented_as_not_supported(store), (
            f"{type(store).__name__}: transaction() {'works' if supported else 'raises NotSupported'}, "
            "the docs say otherwise")
        flag = getattr(store, "supports_transactions", None)
        assert flag is None or flag is supported

    def test_transactions_are_atomic_or_not_supported(self, store: Any, clock: Clock) -> None:
        a, b = store.collection("a"), store.collection("b")
        a.put_many({"k1": 1, "k2": 2, "k3": 3})
        a.put("t", "ttl", ttl=50)
        b.put("x", "b")
        before = (typed(a.items()), typed(b.items()), a.ttl("t"))
        ran = []

        class Boom(Exception):
            pass

        def body() -> None:
            ran.append(True)
            a.put("k1", "changed")
            a.delete("k2")
            a.put("t", "no ttl now")
            a.put_many({"new": 1, 7: 7})
            assert a.pop("k3") == 3
            b.put("y", "b2")
            b.delete("x")
            assert a.get("k1") == "changed" and "k2" not in a and len(b) == 1  # a block reads its own writes
            raise Boom

        if not _supports_transactions(store):
            with pytest.raises(NotSupported), store.transaction():
                body()
            assert ran == []  # nothing ran, so nothing was half-written
            assert (typed(a.items()), typed(b.items()), a.ttl("t")) == before
            if a.store is not store:  # per-collection: the documented way to be atomic inside one collection
                with pytest.raises(Boom), a.store.transaction():
                    a.put("k1", "changed")
                    a.delete("k2")
                    raise Boom
                assert typed(a.items()) == before[0]
            return

        with pytest.raises(Boom), store.transaction():
            body()
        assert ran == [True]
        assert (typed(a.items()), typed(b.items())) == before[:2]  # deleted keys are back in their places
        assert a.ttl("t") == pytest.approx(before[2], abs=TTL_TOLERANCE)

        with store.transaction():
            a.put("k1", "committed")
            b.put("y", "committed")
            with pytest.raises(Boom), store.transaction():  # a nested block undoes only its own writes
                a.put("k2", "inner")
                b.delete("x")
                raise Boom
            assert a.get("k2") == 2 and b.get("x") == "b"
            with store.transaction():
                a.put("inner", "kept")
        assert a.get("k1") == "committed" and a.get("inner") == "kept" and a.get("k2") == 2
        assert typed(b.items()) == typed([("x", "b"), ("y", "committed")])

    def test_rolled_back_transactions_undo_collection_changes(self, store: Any) -> None:
        """Creating, clearing or dropping a collection inside a block that raises is undone too."""
        keep = store.collection("keep")
        keep.put_many({"a": 1, "b": 2})

        class Boom(Exception):
            pass

        if not _supports_transactions(store):
            return  # covered by test_transactions_are_atomic_or_not_supported
        with pytest.raises(Boom), store.transaction():
            store.collection("created").put("k", 1)
            keep.clear()
            raise Boom
        assert store.collections() == ["keep"] and list(keep.items()) == [("a", 1), ("b", 2)]
        with pytest.raises(Boom), store.transaction():
            store.drop_collection("keep")
            raise Boom
        assert store.collections() == ["keep"]
        assert list(store.collection("keep").items()) == [("a", 1), ("b", 2)]
        keep.put("c", 3)  # the object from before the block still works
        assert list(store.collection("keep").keys()) == ["a", "b", "c"]
        with pytest.raises(Boom), store.transaction():
            store.drop_collection("keep")
            store.collection("keep").put("z", 0)  # a new collection under the old name
            temp = store.collection("temp")
            temp.put("k", 1)
            store.drop_collection("temp")
            raise Boom
        assert store.collections() == ["keep"]
        assert list(keep.items()) == list(store.collection("keep").items()) == [("a", 1), ("b", 2), ("c", 3)]
        with pytest.raises(KvliteError):
            temp.put("k", 2)  # its collection never existed outside the block
        assert store.collection("created").get("k") is None and store.collection("temp").get("k") is None

    def test_collection_changes_in_a_rolled_back_savepoint_are_undone(self, store: Any) -> None:
        """A nested block that creates and drops collections and raises, inside a block that commits."""
        if not _supports_transactions(store):
            return  # covered by test_transactions_are_atomic_or_not_supported
        keep = store.collection("keep")
        keep.put("k", 1)

        class Boom(Exception):
            pass

        with store.transaction():
            with pytest.raises(Boom), store.transaction():
                made = store.collection("new")
                made.put("a", 1)
                store.drop_collection("keep")
                raise Boom
            keep.put("in-outer", 2)  # the drop was undone: the old object works again in the block
        assert store.collections() == ["keep"]
        assert list(store.collection("keep").items()) == [("k", 1), ("in-outer", 2)]
        keep.put("k2", 3)
        assert list(store.collection("keep").keys()) == ["k", "in-outer", "k2"]
        with pytest.raises(KvliteError):
            made.put("b", 2)  # its collection never existed outside the savepoint
        fresh = store.collection("new")  # the name is free again: a new, empty collection
        assert list(fresh.items()) == []
        fresh.put("b", 2)
        assert list(store.collection("new").items()) == [("b", 2)]

    def test_a_transaction_waits_for_another_threads_block_up_to_the_timeout(self, make_store: StoreMaker) -> None:
        """As SQLite's BEGIN IMMEDIATE: a second block waits for the first up to ``timeout``, then raises
        StoreLocked (memory:// used to wait without limit)."""
        import threading
        import time

        from kvlite.errors import StoreLocked

        # A private store (":memory:", memory://) is one store shared by both threads: its timeout applies.
        holder = make_store() if make_store.persistent else make_store(timeout=0.2)
        if not _supports_transactions(holder):
            return
        holder.collection("c").put("k", 0)
        quick = make_store(timeout=0.2) if make_store.persistent else holder
        entered, release = threading.Event(), threading.Event()

        def hold() -> None:
            with holder.transaction():
                holder.collection("c").put("k", 1)
                entered.set()
                release.wait(5)

        thread = threading.Thread(target=hold)
        thread.start()
        try:
            assert entered.wait(10)
            started = time.monotonic()
            with pytest.raises(StoreLocked):
                with quick.transaction():
                    pass
            assert time.monotonic() - started < 4
        finally:
            release.set()
            thread.join()
        with quick.transaction():
            quick.collection("c").put("k", 2)
        assert holder.collection("c").get("k") == 2
