"""ObjectPath matches carry the key of the document they came from, also when the expression
runs on the whole collection (``$..email``): found by identity of the stored value."""

from __future__ import annotations

import kvlite


def _people(store: kvlite.Store) -> kvlite.Collection:
    people = store.collection("people")
    people.put("u1", {"email": "ada@example.org", "home": {"email": "ada@home.example"}, "admin": True})
    people.put("u2", {"email": "bob@example.org", "admin": True})
    people.put("u3", {"age": 3})
    return people


def test_descendant_matches_carry_their_document_key() -> None:
    with kvlite.open(":memory:") as store:
        people = _people(store)
        assert list(people.find("$..email", engine="objectpath")) == [
            ("u1", "ada@example.org"), ("u1", "ada@home.example"), ("u2", "bob@example.org")]


def test_a_value_shared_by_several_documents_belongs_to_none() -> None:
    """``true`` is one object in every document: it cannot name one of them."""
    with kvlite.open("memory://") as store:
        people = _people(store)
        assert list(people.find("$..admin", engine="objectpath")) == [(None, True), (None, True)]
        assert list(people.find("count($..email)", engine="objectpath")) == [(None, 3)]


def test_memory_engine_gives_the_same_keys() -> None:
    with kvlite.open(":memory:") as embedded, kvlite.open("memory://") as memory:
        assert (list(_people(embedded).find("$..email", engine="objectpath"))
                == list(_people(memory).find("$..email", engine="objectpath")))
