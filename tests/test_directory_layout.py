"""The per-collection layout: one file per collection, named safely on every file system."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kvlite
from kvlite.backends import directory
from kvlite.backends.directory import LOCK_FILE, SUFFIX, file_name
from kvlite.errors import CollectionDropped, KvliteError, StoreLocked

names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=60)


@given(names, names)
def test_file_names_never_collide_even_case_insensitively(a: str, b: str) -> None:
    if a != b:
        assert file_name(a).lower() != file_name(b).lower()


@given(names)
def test_file_names_are_plain_and_decode_back(name: str) -> None:
    fname = file_name(name)
    assert fname.endswith(SUFFIX) and "/" not in fname and not fname.startswith(".")
    if not fname.startswith("~"):  # not a hashed (too long) name
        assert urllib.parse.unquote(fname[: -len(SUFFIX)]) == name


def test_folder_holds_one_file_per_collection(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    with kvlite.open(folder, layout="per-collection") as store:
        store.collection("Users").put("u1", {"n": 1})
        store.collection("users").put("u1", {"n": 2})
        assert sorted(store.collections()) == ["Users", "users"]
        assert store.collection("Users").get("u1") == {"n": 1}
        assert store.collection("users").get("u1") == {"n": 2}
        assert store.drop_collection("Users") is True
        assert not (folder / file_name("Users")).exists()
        assert store.collections() == ["users"]
    with kvlite.open(folder, layout="per-collection") as store:  # reopened: the data is in the files
        assert store.collection("users").get("u1") == {"n": 2}
        assert sorted(f for f in os.listdir(folder) if f.endswith(SUFFIX)) == [file_name("users")]


# -- URLs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6399/0", "memory://", "null://",
                                 "postgresql://u@127.0.0.1/db", "valkey://h"])
def test_a_url_with_the_per_collection_layout_is_refused(url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="per-collection"):
        kvlite.open(url, layout="per-collection")
    assert os.listdir(tmp_path) == []  # no folder named after the URL


def test_a_sqlite_url_names_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with kvlite.open("sqlite:///data", layout="per-collection") as store:
        store.collection("c").put("k", 1)
    with kvlite.open(f"sqlite:///{tmp_path / 'data'}", layout="per-collection") as store:
        assert store.collection("c").get("k") == 1
    assert sorted(os.listdir(tmp_path)) == ["data"]


# -- dropping a collection other stores (threads, processes) have open ------------------------------


def _drop_in_another_process(folder: Path, name: str, then_put: Any = None) -> None:
    code = (f"import kvlite\nb = kvlite.open({str(folder)!r}, layout='per-collection')\n"
            f"assert b.drop_collection({name!r}) is True\n")
    if then_put is not None:
        code += f"b.collection({name!r}).put({then_put[0]!r}, {then_put[1]!r})\n"
    code += "b.close()\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_writes_after_another_process_dropped_the_collection_raise(tmp_path: Path) -> None:
    """The reviewer's case: an old object's writes went into the deleted file and were lost."""
    with kvlite.open(tmp_path, layout="per-collection") as a:
        ca = a.collection("c")
        ca.put("before", 1)
        _drop_in_another_process(tmp_path, "c")
        for call in (lambda: ca.put("after", 2), lambda: ca.get("before"), lambda: len(ca),
                     lambda: ca.put_many({"x": 1}), lambda: ca.store.collection("c")):
            with pytest.raises(CollectionDropped, match="dropped"):
                call()
        assert a.collections() == [] and not (tmp_path / file_name("c")).exists()
        assert a.collection("c").get("before") is None  # collection() makes a new one
        a.collection("c").put("new", 3)
    with kvlite.open(tmp_path, layout="per-collection") as fresh:
        assert list(fresh.collection("c").items()) == [("new", 3)]


def test_an_old_store_never_opens_the_new_file_of_that_name(tmp_path: Path) -> None:
    """A thread that first uses an old object after the drop (a new SQLite connection) must not
    open (or create) the file now at that path."""
    with kvlite.open(tmp_path, layout="per-collection") as a:
        ca = a.collection("c")
        ca.put("before", 1)
        _drop_in_another_process(tmp_path, "c", then_put=("new", 2))
        errors: list[BaseException] = []

        def use_old() -> None:
            try:
                ca.put("lost?", 3)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=use_old)
        thread.start()
        thread.join()
        assert len(errors) == 1 and isinstance(errors[0], KvliteError) and "dropped" in str(errors[0])
        assert list(a.collection("c").items()) == [("new", 2)]  # the new file, as the other process left it
        assert a.collection("c") is not ca


def test_drop_by_this_store_makes_its_old_objects_raise(tmp_path: Path) -> None:
    with kvlite.open(tmp_path, layout="per-collection") as a:
        ca = a.collection("c")
        ca.put("k", 1)
        other = kvlite.open(tmp_path, layout="per-collection")
        cb = other.collection("c")  # another store with the file open
        assert a.drop_collection("c") is True and a.drop_collection("c") is False
        for coll in (ca, cb):
            with pytest.raises(CollectionDropped, match="dropped"):
                coll.put("k", 2)
        other.close()
        assert [f for f in os.listdir(tmp_path) if f.startswith(file_name("c"))] == []


def test_drop_deletes_the_wal_first_and_the_file_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never a -wal file left next to a missing (or new) main file: a new opener would apply it."""
    with kvlite.open(tmp_path, layout="per-collection") as store:
        store.collection("c").put("k", 1)
        removed: list[str] = []
        real_remove = os.remove

        def remove(path: str) -> None:
            removed.append(os.path.basename(path))
            real_remove(path)

        monkeypatch.setattr(directory.os, "remove", remove)
        assert store.drop_collection("c") is True
    base = file_name("c")
    assert [r for r in removed if r.startswith(base)] == [base + "-wal", base + "-shm", base]


def test_opening_waits_for_a_drop_and_a_drop_for_openers(tmp_path: Path) -> None:
    """The folder lock: held exclusively (a drop in progress), nobody opens a collection file."""
    with kvlite.open(tmp_path, layout="per-collection", timeout=0.2) as store:
        store.collection("c").put("k", 1)
        lock = directory._FolderLock(str(tmp_path), 5.0, readonly=False)
        held, release = threading.Event(), threading.Event()

        def drop_in_progress(exclusive: bool) -> None:
            with lock.hold(exclusive=exclusive):
                held.set()
                release.wait(10)

        for exclusive, blocked in ((True, lambda: store.collection("d")), (False, lambda: store.drop_collection("c"))):
            held.clear()
            release.clear()
            thread = threading.Thread(target=drop_in_progress, args=(exclusive,))
            thread.start()
            try:
                assert held.wait(10)
                with pytest.raises(StoreLocked):
                    blocked()
            finally:
                release.set()
                thread.join()
        assert store.collection("c").get("k") == 1  # nothing happened meanwhile
        assert store.drop_collection("c") is True


def test_drop_inside_the_collections_own_transaction_is_refused(tmp_path: Path) -> None:
    with kvlite.open(tmp_path, layout="per-collection") as store:
        c = store.collection("c")
        with c.store.transaction():
            c.put("k", 1)
            with pytest.raises(KvliteError, match="transaction"):
                store.drop_collection("c")
        assert c.get("k") == 1 and store.collections() == ["c"]
        assert LOCK_FILE not in store.collections()
