"""RFC 7396 JSON merge patch: :func:`kvlite.merge_patch.merge_patch` is the statement every engine is
held to, and SQLite's ``json_patch`` (what ``patch`` and ``patch_where`` run in one statement on JSON
collections) gives the same document for any JSON target and patch, numbers at the 64-bit edges
included."""

from __future__ import annotations

import copy

import apsw
import orjson
from helpers_query import JSON, strict
from hypothesis import given, settings
from hypothesis import strategies as st

from kvlite.merge_patch import merge_patch

OBJECTS = st.dictionaries(st.sampled_from(["a", "b", "c", "é", ""]), JSON, max_size=4)
PATCHES = st.one_of(st.dictionaries(st.sampled_from(["a", "b", "c", "é", ""]), JSON | OBJECTS, max_size=4), JSON)


def test_the_rfc_examples() -> None:
    assert merge_patch({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
                        "tags": ["example", "sample"], "content": "This will be unchanged"},
                       {"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": None},
                        "tags": ["example"]}) == \
        {"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
         "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"}


@settings(max_examples=400, deadline=None)
@given(target=OBJECTS | JSON, patch=PATCHES, jsonb=st.booleans())
def test_sqlite_json_patch_gives_the_same_document(target: object, patch: object, jsonb: bool) -> None:
    before = copy.deepcopy((target, patch))
    expected = merge_patch(target, patch)
    assert (target, patch) == before  # the arguments are not changed
    conn = apsw.Connection(":memory:")
    sql = "SELECT json(jsonb_patch(jsonb(?), ?))" if jsonb else "SELECT json_patch(?, ?)"
    (text,) = conn.execute(sql, (orjson.dumps(target).decode(), orjson.dumps(patch).decode())).fetchone()
    assert strict(orjson.loads(text)) == strict(expected)
