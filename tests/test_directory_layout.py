"""The per-collection layout: one file per collection, named safely on every file system."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import kvlite
from kvlite.backends.directory import SUFFIX, file_name

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
