"""The collection-name rule of ``kvlite/names.py``, checked with Hypothesis.

:func:`names.validate_collection_name` accepts exactly the non-empty ``str`` of at most
:data:`names.MAX_COLLECTION_NAME` (255) characters, without NUL, that is valid Unicode text, and
returns it unchanged; anything else is ``InvalidCollectionName``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvlite import names
from kvlite.errors import InvalidCollectionName, KvliteError

#: Any text, lone surrogates and NUL included, around the length limit too.
ANY_TEXT = st.one_of(st.text(max_size=20), st.text(st.characters(), min_size=250, max_size=260),
                     st.text(st.sampled_from(["a", "\x00", "\ud800", "é", "🎉"]), max_size=300))
GOOD = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
               max_size=names.MAX_COLLECTION_NAME)


def valid_unicode(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF for c in text)


def test_the_limit_is_255_characters() -> None:
    assert names.MAX_COLLECTION_NAME == 255


@given(GOOD)
def test_a_good_name_is_returned_as_it_is(name: str) -> None:
    assert names.validate_collection_name(name) is name


@given(ANY_TEXT)
def test_a_str_is_a_name_exactly_when_the_rule_says_so(name: str) -> None:
    accepted = 1 <= len(name) <= 255 and "\x00" not in name and valid_unicode(name)
    if accepted:
        assert names.validate_collection_name(name) is name
    else:
        with pytest.raises(InvalidCollectionName):
            names.validate_collection_name(name)


@pytest.mark.parametrize(("name", "valid"), [
    ("", False), ("a", True), ("x" * 255, True), ("x" * 256, False), ("é" * 255, True), ("🎉" * 255, True),
    ("🎉" * 256, False), ("\x00", False), ("a\x00", False), ("\x00a", False), ("\ud800", False), ("a\udfffb", False),
    (" ", True), ("/", True), ("..", True), ("kv_1", True), ("SELECT * FROM t; --", True), ("\n\t", True),
], ids=repr)
def test_boundaries(name: str, valid: bool) -> None:
    if valid:
        assert names.validate_collection_name(name) is name
    else:
        with pytest.raises(InvalidCollectionName):
            names.validate_collection_name(name)


@given(st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.text(), max_size=2),
                 st.tuples(st.text())))
def test_only_str_names_a_collection(value: Any) -> None:
    with pytest.raises(InvalidCollectionName, match="str"):
        names.validate_collection_name(value)
    assert isinstance(InvalidCollectionName(), ValueError) and isinstance(InvalidCollectionName(), KvliteError)
