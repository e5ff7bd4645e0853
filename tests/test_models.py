"""Typed collections: ``store.collection(name, model=User)`` with a dataclass or a Pydantic model.

Values are validated on the way in (a bad one raises ``ValidationError`` and
writes nothing) and come back as model instances from ``get``, the dict view
and whole-document query matches, while the file keeps plain JSON that a
plain ``collection()`` view, SQL push-down and expression indexes see as usual.
Most tests run once per model kind through the ``kind`` fixture.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any

import apsw
import pytest

import kvlite
from kvlite.errors import KvliteError, SerializationError, ValidationError

pydantic = pytest.importorskip("pydantic")


@dataclasses.dataclass
class DUser:
    name: str
    age: int
    tags: list[str] = dataclasses.field(default_factory=list)


class PUser(pydantic.BaseModel):
    name: str
    age: int
    tags: list[str] = []


@pytest.fixture(params=["dataclass", "pydantic"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def User(kind: str) -> type:  # noqa: N802 - it is a class
    return DUser if kind == "dataclass" else PUser


def make(User: type, name: str, age: int, tags: list[str] | None = None) -> Any:  # noqa: N803
    return User(name=name, age=age, tags=tags or [])


@pytest.fixture
def users(store: kvlite.Store, User: type) -> kvlite.Collection:  # noqa: N803
    coll = store.collection("users", model=User)
    coll.put("u1", make(User, "Ada", 36, ["math"]))
    coll.put("u2", {"name": "Bob", "age": 20})  # a mapping that validates is accepted too
    coll.put("u3", make(User, "Cy", 41, ["x", "y"]))
    return coll


# -- in and out ------------------------------------------------------------------------------------


def test_get_returns_instances(users: kvlite.Collection, User: type) -> None:  # noqa: N803
    ada = users.get("u1")
    assert type(ada) is User and ada == make(User, "Ada", 36, ["math"])
    assert users.get("u2") == make(User, "Bob", 20)
    assert users.get("missing") is None
    assert users.get("missing", "dflt") == "dflt"
    assert users.get_many(["u3", "missing"]) == [make(User, "Cy", 41, ["x", "y"]), None]
    assert list(users.values())[0] == ada
    assert [type(v) for _, v in users.items()] == [User, User, User]
    assert users.pop("u2") == make(User, "Bob", 20)
    assert users.popitem() == ("u3", make(User, "Cy", 41, ["x", "y"]))
    assert users.setdefault("u1", None) == ada


def test_the_file_keeps_plain_json(store: kvlite.Store, users: kvlite.Collection, db_path: Path) -> None:
    plain = store.collection("users")
    assert plain.get("u1") == {"name": "Ada", "age": 36, "tags": ["math"]}
    assert dict(plain.items())["u2"] == {"name": "Bob", "age": 20, "tags": []}
    conn = apsw.Connection(str(db_path))  # the file itself, as the storage layout describes it
    table = conn.execute("SELECT table_name FROM kvlite_collections WHERE name = 'users'").fetchone()[0]
    rows = conn.execute(f'SELECT typeof(value), value FROM "{table}" ORDER BY id').fetchall()
    conn.close()
    assert [kind for kind, _ in rows] == ["text"] * 3  # JSON text: json_extract and indexes work
    assert json.loads(rows[0][1]) == {"name": "Ada", "age": 36, "tags": ["math"]}


def _invalid(kind: str) -> list[Any]:
    common = [{"name": "no age"}, {}, 42, None, ["Ada", 36], "Ada"]
    if kind == "dataclass":
        return common + [{"name": "Ada", "age": 36, "unknown": 1}]  # dataclasses refuse unknown fields
    return common + [{"name": "Ada", "age": "thirty-six"}, {"name": ["not", "text"], "age": 1}]


def test_invalid_values_raise_validation_error_and_write_nothing(users: kvlite.Collection, kind: str) -> None:
    before = list(users.items())
    for bad in _invalid(kind):
        with pytest.raises(ValidationError):
            users.put("new", bad)
        with pytest.raises(ValidationError):
            users.put("u1", bad)  # a failed overwrite keeps the old value
        with pytest.raises(ValidationError):
            users.put_many([("ok", {"name": "Ok", "age": 1}), ("bad", bad)])
        with pytest.raises(ValidationError):
            users.setdefault("new", bad)
        with pytest.raises(ValidationError):
            users.dict()["new"] = bad
    assert list(users.items()) == before
    assert issubclass(ValidationError, KvliteError) and issubclass(ValidationError, ValueError)


def test_another_models_instance_is_refused(users: kvlite.Collection) -> None:
    @dataclasses.dataclass
    class Other:
        title: str

    with pytest.raises(ValidationError):
        users.put("x", Other("nope"))
    assert "x" not in users


def test_a_stored_value_that_no_longer_validates(store: kvlite.Store, users: kvlite.Collection) -> None:
    store.collection("users").put("legacy", {"fullname": "Old Shape"})
    with pytest.raises(ValidationError):
        users.get("legacy")
    assert users.get("u1") is not None  # the rest of the collection is fine


def test_dict_view(users: kvlite.Collection, User: type) -> None:  # noqa: N803
    d = users.dict()
    assert d["u1"] == make(User, "Ada", 36, ["math"])
    d["u4"] = make(User, "Di", 52)
    d["u5"] = {"name": "Ed", "age": 7}
    assert d.get("u5") == make(User, "Ed", 7)
    assert dict(d) == {"u1": make(User, "Ada", 36, ["math"]), "u2": make(User, "Bob", 20),
                       "u3": make(User, "Cy", 41, ["x", "y"]), "u4": make(User, "Di", 52), "u5": make(User, "Ed", 7)}
    assert d.pop("u5") == make(User, "Ed", 7)
    with pytest.raises(KeyError):
        d["missing"]


# -- queries -------------------------------------------------------------------------------------------


def test_whole_document_matches_are_instances(users: kvlite.Collection, User: type) -> None:  # noqa: N803
    assert list(users.find("$[?(@.age > 30)]")) == [("u1", make(User, "Ada", 36, ["math"])),
                                                     ("u3", make(User, "Cy", 41, ["x", "y"]))]
    assert list(users.find("$.u2")) == [("u2", make(User, "Bob", 20))]
    assert [type(v) for _, v in users.find("$[*]")] == [User, User, User]
    assert [type(v) for _, v in users.find("$.*[@.age > 0]", engine="objectpath")] == [User, User, User]


def test_sub_values_stay_plain(users: kvlite.Collection) -> None:
    assert list(users.select("$[?(@.age > 30)].name")) == ["Ada", "Cy"]
    assert list(users.find("$.u3.tags")) == [("u3", ["x", "y"])]
    assert list(users.select("$..tags[*]")) == ["math", "x", "y"]
    assert users.count("$[?(@.age > 30)]") == 2


def test_push_down_indexes_and_ordering_still_work(users: kvlite.Collection, User: type) -> None:  # noqa: N803
    plan = users.explain("$[?(@.age > 30)]")
    assert plan["steps"][0]["pushdown"] and not plan["notes"]
    users.create_index("$.age")
    assert users.indexes() == ["$.age"]
    assert list(users.find("$[?(@.age > 30)]")) == [("u1", make(User, "Ada", 36, ["math"])),
                                                     ("u3", make(User, "Cy", 41, ["x", "y"]))]
    assert [k for k, _ in users.find("$[*]", order_by="-$.age")] == ["u3", "u1", "u2"]
    assert list(users.find("$[*]", order_by="$.age", limit=1)) == [("u2", make(User, "Bob", 20))]


# -- per-kind details -----------------------------------------------------------------------------


class Event(pydantic.BaseModel):
    title: str
    at: datetime.datetime
    size: float = 1.0


def test_pydantic_stores_its_json_mode_dump(store: kvlite.Store) -> None:
    events = store.collection("events", model=Event)
    when = datetime.datetime(2024, 5, 6, 7, 8, 9)
    events.put("e1", Event(title="launch", at=when))
    events.put("e2", {"title": "coerced", "at": "2024-01-01T00:00:00", "size": "2.5"})
    assert events.get("e1") == Event(title="launch", at=when)
    assert events.get("e2").size == 2.5  # Pydantic's own coercion applies
    assert store.collection("events").get("e1") == {"title": "launch", "at": "2024-05-06T07:08:09", "size": 1.0}
    assert [k for k, _ in events.find("$[?(@.at >= '2024-05-01')]")] == ["e1"]


@dataclasses.dataclass
class Address:
    city: str


@dataclasses.dataclass
class Person:
    name: str
    address: Address


def test_dataclass_field_types_are_not_checked_and_nesting_is_plain(store: kvlite.Store) -> None:
    people = store.collection("people", model=Person)
    people.put("p", Person("Ada", Address("London")))
    assert store.collection("people").get("p") == {"name": "Ada", "address": {"city": "London"}}
    # as documented: nested dataclasses come back as dicts (a dataclass does not convert them)
    assert people.get("p") == Person("Ada", {"city": "London"})  # type: ignore[arg-type]
    people.put("q", {"name": 5, "address": None})  # dataclasses do not check types either
    assert people.get("q") == Person(5, None)  # type: ignore[arg-type]


def test_fields_json_cannot_keep_are_serialization_errors(store: kvlite.Store) -> None:
    @dataclasses.dataclass
    class Stamp:
        at: datetime.datetime

    stamps = store.collection("stamps", model=Stamp)
    with pytest.raises(SerializationError):  # valid for the dataclass, but not JSON
        stamps.put("s", Stamp(datetime.datetime(2024, 1, 1)))
    assert len(stamps) == 0


@pytest.mark.parametrize("model", [int, dict, "User", DUser(name="a", age=1)])
def test_model_must_be_a_dataclass_or_pydantic_class(store: kvlite.Store, model: Any) -> None:
    with pytest.raises(TypeError):
        store.collection("bad", model=model)


def test_typed_and_plain_views_share_the_data(store: kvlite.Store, db_path: Path) -> None:
    typed = store.collection("shared", model=PUser)
    plain = store.collection("shared")
    typed.put("a", PUser(name="A", age=1))
    plain.put("b", {"name": "B", "age": 2})
    assert typed.get("b") == PUser(name="B", age=2)
    assert plain.get("a") == {"name": "A", "age": 1, "tags": []}
    store.close()
    with kvlite.open(db_path) as again:
        assert list(again.collection("shared", model=PUser).keys()) == ["a", "b"]
        assert again.dict("shared", model=PUser)["a"] == PUser(name="A", age=1)
