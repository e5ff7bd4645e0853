"""DictView: CPython's own mapping-protocol tests, plus everything else that makes it a ``dict``."""

from __future__ import annotations

import collections
import itertools
import json
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Callable, ClassVar

import pytest
from helpers_dictview import DocumentedSetdefault
from test import mapping_tests  # ships with CPython; imported as a module so pytest does not collect its bases

import kvlite
from kvlite import DictView
from kvlite.errors import InvalidKey, SerializationError


def typed(mapping: Any) -> list[tuple[type, Any, Any]]:
    """Items with their key types, in order: ``1`` and ``True`` and ``1.0`` are told apart."""
    return [(type(k), k, v) for k, v in mapping.items()]


# -- CPython's test.mapping_tests.TestMappingProtocol ----------------------------------------
# (test_setdefault replaced by helpers_dictview.DocumentedSetdefault: values are stored copies)


class TestDictViewJSONMapping(DocumentedSetdefault, mapping_tests.TestMappingProtocol):
    """``DictView()``: a private in-memory JSON store."""

    type2test = DictView

    def _reference(self) -> dict[str, Any]:
        # The default reference holds a tuple, which JSON stores as a list; same shape, JSON-invariant.
        return {"1": "2", "key1": "value1", "key2": [1, 2, 3]}


class PickleDictView(DictView):
    """A ``DictView`` over a private in-memory store that uses ``pickle``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._collection = kvlite.open(":memory:", serializer="pickle").collection("dict")
        if args or kwargs:
            self.update(*args, **kwargs)


class TestDictViewPickleMapping(DocumentedSetdefault, mapping_tests.TestMappingProtocol):
    """Pickle keeps tuples, so the default ``_reference`` is used as is."""

    type2test = PickleDictView


class FileDictView(DictView):
    """Each instance is a new collection in one store file shared by the test class."""

    store: ClassVar[kvlite.Store | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        assert FileDictView.store is not None
        self._collection = FileDictView.store.collection(f"view-{next(_file_view_names)}")
        if args or kwargs:
            self.update(*args, **kwargs)


_file_view_names = itertools.count()


class TestDictViewFileMapping(DocumentedSetdefault, mapping_tests.TestMappingProtocol):
    """The protocol over views backed by a real file (WAL, one transaction per write)."""

    type2test = FileDictView
    _tmp: ClassVar[tempfile.TemporaryDirectory[str]]

    @classmethod
    def setUpClass(cls) -> None:
        cls._tmp = tempfile.TemporaryDirectory()
        FileDictView.store = kvlite.open(Path(cls._tmp.name) / "views.db")

    @classmethod
    def tearDownClass(cls) -> None:
        assert FileDictView.store is not None
        assert FileDictView.store.path.endswith("views.db")
        FileDictView.store.close()
        FileDictView.store = None
        cls._tmp.cleanup()

    def _reference(self) -> dict[str, Any]:
        return {"1": "2", "key1": "value1", "key2": [1, 2, 3]}


# -- views used by the tests below ------------------------------------------------------------


@pytest.fixture(params=["memory", "file", "file-pickle"])
def view(request: pytest.FixtureRequest, open_store: Callable[..., kvlite.Store]) -> DictView:
    if request.param == "memory":
        return DictView()
    serializer = "pickle" if request.param == "file-pickle" else "json"
    return open_store(serializer=serializer).dict("v")


def test_is_a_mutable_mapping(view: DictView) -> None:
    assert isinstance(view, MutableMapping)
    assert not view and len(view) == 0
    view["a"] = 1
    assert view and len(view) == 1
    with pytest.raises(TypeError):
        hash(view)


def test_constructor_like_dict() -> None:
    assert DictView({"a": 1}, b=2) == {"a": 1, "b": 2}
    assert DictView([("a", 1), ("a", 2)]) == {"a": 2}
    assert list(DictView(b=1, a=2)) == ["b", "a"]
    first, second = DictView(), DictView()
    first["k"] = 1
    assert "k" not in second  # each one has its own private store


def test_values_are_stored_copies(view: DictView) -> None:
    view["k"] = [1]
    view["k"].append(2)
    assert view["k"] == [1]
    value = view["k"]
    value.append(2)
    view["k"] = value
    assert view["k"] == [1, 2]


# -- keys -------------------------------------------------------------------------------


def test_str_bytes_int_are_three_keys(view: DictView) -> None:
    view["a"] = "str"
    view[b"a"] = "bytes"
    view[1] = "int"
    assert len(view) == 3
    assert typed(view) == [(str, "a", "str"), (bytes, b"a", "bytes"), (int, 1, "int")]
    assert view["a"] == "str" and view[b"a"] == "bytes" and view[1] == "int"


OPS_ON_EQUAL_KEYS = [
    ("set", 1, "int"), ("set", 1.0, "float"), ("set", True, "bool"),
    ("set", 0.0, "zero-float"), ("set", False, "false"), ("set", 0, "zero"), ("set", -0.0, "neg-zero"),
    ("set", 2.5, "two-and-half"),
    ("del", True, None), ("set", True, "bool-again"), ("set", 1.0, "float-again"),
    ("del", 0, None), ("set", False, "false-again"),
]


def test_equal_numbers_are_one_key_like_dict(view: DictView) -> None:
    model: dict[Any, Any] = {}
    for op, key, value in OPS_ON_EQUAL_KEYS:
        for target in (model, view):
            if op == "set":
                target[key] = value
            else:
                del target[key]
        assert typed(view) == typed(model)
    assert typed(view) == [(float, 2.5, "two-and-half"), (bool, True, "float-again"),
                           (bool, False, "false-again")]
    assert view[1] == view[1.0] == view[True] == "float-again"


UNHASHABLE: list[Callable[[DictView], Any]] = [
    lambda d: d[[1]],
    lambda d: d.__setitem__([1], 1),
    lambda d: d.__delitem__({}),
    lambda d: [1] in d,
    lambda d: d.get([1]),
    lambda d: d.get([1], "dflt"),
    lambda d: d.pop([1]),
    lambda d: d.pop([1], "dflt"),
    lambda d: d.setdefault({1}, 1),
    lambda d: d.update([("ok", 1), ([1], 2)]),
    lambda d: d.update([(bytearray(b"x"), 1)]),
    lambda d: d.fromkeys([[1]]),
]


@pytest.mark.parametrize("op", UNHASHABLE, ids=range(len(UNHASHABLE)))
def test_unhashable_keys_raise_type_error_like_dict(view: DictView, op: Callable[[DictView], Any]) -> None:
    model: dict[Any, Any] = {"old": 0}
    view["old"] = 0
    with pytest.raises(TypeError) as from_dict:
        op(model)  # type: ignore[arg-type]
    with pytest.raises(TypeError) as from_view:
        op(view)
    assert not isinstance(from_view.value, InvalidKey)  # the plain dict error, not the storage one
    assert type(from_view.value) is type(from_dict.value)
    if "ok" not in model:  # dict.update may have written pairs before failing; the view is atomic
        assert typed(view) == [(str, "old", 0)]
    else:
        assert "ok" not in view


@pytest.mark.parametrize("key", [(1, 2), None, frozenset({1}), 1j, Path("x")], ids=repr)
def test_unsupported_hashable_keys(view: DictView, key: Any) -> None:
    view["old"] = 0
    with pytest.raises(InvalidKey):
        view[key] = 1
    with pytest.raises(TypeError):  # InvalidKey is a TypeError
        view[key] = 1
    with pytest.raises(InvalidKey):
        view.update({"new": 1, key: 2})
    with pytest.raises(InvalidKey):
        view.setdefault(key, 1)
    with pytest.raises(InvalidKey):
        view |= {key: 1}
    # Reads treat it as a key that is simply absent.
    assert key not in view
    assert view.get(key) is None
    assert view.get(key, "dflt") == "dflt"
    assert view.pop(key, "dflt") == "dflt"
    with pytest.raises(KeyError):
        view[key]
    with pytest.raises(KeyError):
        view.pop(key)
    with pytest.raises(KeyError):
        del view[key]
    assert typed(view) == [(str, "old", 0)]


# -- comparisons and operators ------------------------------------------------------------


def test_equality_both_directions(view: DictView) -> None:
    view.update([("a", 1), ("b", [2])])
    assert view == {"a": 1, "b": [2]}
    assert {"a": 1, "b": [2]} == view
    assert view == {"b": [2], "a": 1}  # order does not matter, as for dict
    assert view != {"a": 1}
    assert {"a": 1} != view
    assert view != {"a": 1, "b": [3]}
    assert view != {"a": 1, "b": [2], "c": 3}
    assert view == collections.OrderedDict([("b", [2]), ("a", 1)])
    assert view == DictView({"a": 1, "b": [2]})
    assert view != [("a", 1), ("b", [2])]
    assert view != "ab"
    assert view.__eq__(1) is NotImplemented
    empty = DictView()
    assert empty == {} and {} == empty


def test_equality_tells_key_types_apart_like_dict(view: DictView) -> None:
    view["1"] = 1
    assert view != {1: 1}
    assert view != {b"1": 1}
    view.clear()
    view[1] = "x"
    assert view == {1.0: "x"} == {True: "x"}  # as dict: equal keys


def test_or_and_ror(view: DictView) -> None:
    view.update(a=1, b=2)
    merged = view | {"b": 20, "c": 3}
    assert isinstance(merged, DictView)
    assert list(merged.items()) == [("a", 1), ("b", 20), ("c", 3)]
    assert view == {"a": 1, "b": 2}  # unchanged
    left = {"z": 0, "b": 20} | view
    assert type(left) is dict
    assert list(left.items()) == [("z", 0), ("b", 2), ("a", 1)]
    assert list((view | DictView(c=3)).items()) == [("a", 1), ("b", 2), ("c", 3)]
    with pytest.raises(TypeError):
        view | [("c", 3)]  # noqa: B018 - as dict: | needs a mapping
    with pytest.raises(TypeError):
        [("c", 3)] | view  # noqa: B018


def test_ior(view: DictView) -> None:
    view["a"] = 1
    original = view
    view |= {"b": 2, "a": 10}
    assert view is original
    view |= [("c", 3)]  # as dict: |= takes anything update takes
    assert list(view.items()) == [("a", 10), ("b", 2), ("c", 3)]
    with pytest.raises(TypeError):
        view |= 5


def test_reversed(view: DictView) -> None:
    model = {"a": 1, b"b": 2, 3: 3, 4.5: 4}
    view.update(model)
    model["a"] = view["a"] = 10  # update keeps place
    del model[3], view[3]
    model[3] = view[3] = 30  # re-added at the end
    assert list(reversed(view)) == list(reversed(model))
    assert list(reversed(view.keys())) == list(reversed(model.keys()))
    assert list(reversed(view.items())) == list(reversed(model.items()))
    assert list(reversed(view.values())) == list(reversed(model.values()))


def test_keys_items_values_views(view: DictView) -> None:
    view.update(a=1, b=2)
    keys, items, values = view.keys(), view.items(), view.values()
    view["c"] = 3  # views are live, as for dict
    assert list(keys) == ["a", "b", "c"]
    assert list(items) == [("a", 1), ("b", 2), ("c", 3)]
    assert list(values) == [1, 2, 3]
    assert len(keys) == len(items) == len(values) == 3
    assert keys & {"a", "z"} == {"a"}
    assert ("b", 2) in items and ("b", 3) not in items
    assert 3 in values


def test_copy_is_independent(view: DictView) -> None:
    view.update(a=[1], b=2)
    dup = view.copy()
    assert type(dup) is type(view)
    assert dup == view and dup is not view
    assert list(dup.items()) == list(view.items())
    dup["a"] = "changed"
    dup["new"] = 1
    assert view == {"a": [1], "b": 2}
    assert dup.collection.serializer.name == view.collection.serializer.name


def test_fromkeys() -> None:
    made = DictView.fromkeys(["a", b"b", 3])
    assert type(made) is DictView
    assert typed(made) == [(str, "a", None), (bytes, b"b", None), (int, 3, None)]
    assert DictView.fromkeys("ab", 0) == {"a": 0, "b": 0}
    assert DictView().fromkeys([]) == {}


def test_popitem_is_lifo_like_dict(view: DictView) -> None:
    model: dict[Any, Any] = {}
    for target in (model, view):
        target.update([("a", 1), ("b", 2), ("c", 3), ("d", 4)])
        target["b"] = 20  # an update keeps the place
        del target["c"]
        target["c"] = 30  # a re-insert goes to the end
    popped_model = [model.popitem() for _ in range(4)]
    popped_view = [view.popitem() for _ in range(4)]
    assert popped_view == popped_model == [("c", 30), ("d", 4), ("b", 20), ("a", 1)]
    with pytest.raises(KeyError):
        view.popitem()


def test_pop_with_and_without_default(view: DictView) -> None:
    view["a"] = {"x": 1}
    assert view.pop("missing", None) is None
    assert view.pop("missing", "dflt") == "dflt"
    with pytest.raises(KeyError):
        view.pop("missing")
    assert view.pop("a", "dflt") == {"x": 1}
    assert "a" not in view
    view["b"] = None
    assert view.pop("b") is None


def test_get_and_getitem(view: DictView) -> None:
    view["n"] = None
    assert view.get("n", "dflt") is None
    assert view["n"] is None
    assert view.get("missing") is None
    with pytest.raises(KeyError) as info:
        view["missing"]
    assert info.value.args == ("missing",)


def test_update_forms(view: DictView) -> None:
    view.update({"a": 1})
    view.update([("b", 2)])
    view.update(c=3)
    view.update({"d": 4}, e=5)
    view.update(DictView(f=6))
    view.update(view)  # from itself: no change

    class KeysAndGetitem:
        def keys(self):
            return ["g"]

        def __getitem__(self, key):
            return 7

    view.update(KeysAndGetitem())
    view.update()
    assert list(view.items()) == [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5), ("f", 6), ("g", 7)]
    for bad in (None, 42):
        with pytest.raises(TypeError):
            view.update(bad)
    with pytest.raises(ValueError):
        view.update([("x", 1, 2)])
    with pytest.raises(TypeError):
        view.update([1])
    assert "x" not in view


class Unencodable:
    """A value neither JSON nor pickle can encode."""

    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle this")


BAD = Unencodable()


@pytest.mark.parametrize("args, kwargs", [
    (({"a": "new", "b": BAD, "c": 3},), {}),
    (([("a", "new"), ("c", 3), ("b", BAD)],), {}),
    (({"a": "new", "c": 3},), {"bad": BAD}),
    (([("a", "new"), ("c", 3), ("x", 1, 2)],), {}),
    (([("a", "new"), ("c", 3), ([1], 2)],), {}),
], ids=["bad-value-in-mapping", "bad-value-in-pairs", "bad-kwarg", "bad-pair", "unhashable-key"])
def test_update_is_atomic(view: DictView, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    view.update([("a", "old"), ("z", 26)])
    with pytest.raises((SerializationError, ValueError, TypeError)):
        view.update(*args, **kwargs)
    assert list(view.items()) == [("a", "old"), ("z", 26)]


def test_copy_module_gives_independent_copies(view: DictView) -> None:
    import copy

    view.update(a=[1], b={"c": 2})
    for made in (copy.copy(view), copy.deepcopy(view)):
        assert made == view and made.collection is not view.collection
        made["a"] = "changed"
        assert view["a"] == [1]
    nested = copy.deepcopy({"x": view, "y": view})
    assert nested["x"] is nested["y"] and nested["x"] == view


def test_items_and_values_membership_like_dict(view: DictView) -> None:
    view.update(a=1, b=[2])
    model = dict(view)
    for probe in [1, ("a",), ("a", 1, 2), ["a", 1], ("a", 1), ("b", [2]), ("zz", 1), ("a", 2), (1.0, 1)]:
        assert (probe in view.items()) == (probe in model.items()), probe
    for probe in [1, [2], 99, None]:
        assert (probe in view.values()) == (probe in model.values()), probe
    with pytest.raises(TypeError):
        ([], 1) in view.items()  # noqa: B015 - an unhashable key raises, as in dict
    with pytest.raises(TypeError):
        ([], 1) in model.items()  # noqa: B015


def test_signatures_like_dict(view: DictView) -> None:
    assert DictView(self=1, other=2) == {"self": 1, "other": 2}
    for call in (lambda: view.get(key="a"), lambda: view.pop(key="a"), lambda: view.setdefault(key="a")):
        with pytest.raises(TypeError):
            call()

    class Pairs:  # only __getitem__: iterable through the old sequence protocol, as dict.update takes it
        def __getitem__(self, i: int) -> tuple[str, int]:
            if i < 2:
                return f"k{i}", i
            raise IndexError(i)

    model: dict[Any, Any] = {}
    model.update(Pairs())
    view.update(Pairs())
    assert dict(view) == model
    for left in (collections.OrderedDict(z=0), collections.defaultdict(int, z=0), {"z": 0}):
        assert type(left | view) is type(left | model) and (left | view) == (left | model)


def test_repr_like_dict(view: DictView) -> None:
    assert repr(view) == "{}"
    view.update([("a", 1), (b"b", [2]), (3, None)])
    assert repr(view) == repr({"a": 1, b"b": [2], 3: None})


# -- two views of the same collection --------------------------------------------------------


def test_two_views_in_one_process_see_each_others_writes(open_store: Callable[..., kvlite.Store]) -> None:
    first_store = open_store()
    first = first_store.dict("shared")
    same_store_view = first_store.collection("shared").dict()
    second = open_store().dict("shared")  # another Store: its own connection
    first["a"] = 1
    assert second["a"] == 1 and same_store_view["a"] == 1
    second["b"] = 2
    del second["a"]
    assert list(first.items()) == [("b", 2)]
    assert first.setdefault("b", 99) == 2
    assert second.pop("b") == 2
    assert first == {} == second


CHILD = textwrap.dedent("""
    import json, sys
    import kvlite
    with kvlite.open(sys.argv[1]) as db:
        view = db.dict("shared")
        seen = [[type(k).__name__, k if not isinstance(k, bytes) else k.decode(), v]
                for k, v in view.items()]
        view["from-child"] = {"pid": "child"}
        view[2] = "two"
        del view["to-delete"]
        print(json.dumps(seen))
""")


def test_a_view_in_another_process_sees_our_writes_and_we_see_its(db_path: Path,
                                                                    open_store: Callable[..., kvlite.Store]) -> None:
    view = open_store().dict("shared")
    view.update([("a", [1, 2]), (b"b", None), (1, True), ("to-delete", 0)])
    done = subprocess.run([sys.executable, "-c", CHILD, str(db_path)], capture_output=True, text=True,
                          timeout=120, cwd=db_path.parent)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["str", "a", [1, 2]], ["bytes", "b", None], ["int", 1, True],
                                       ["str", "to-delete", 0]]
    assert typed(view) == [(str, "a", [1, 2]), (bytes, b"b", None), (int, 1, True),
                           (str, "from-child", {"pid": "child"}), (int, 2, "two")]


def test_keys_added_while_iterating_are_not_visited(view: DictView) -> None:
    """No RuntimeError as in dict, but no endless loop either: the iteration covers the entries
    there when it began, over several pages; forwards and backwards."""
    view.update((f"k{i}", i) for i in range(2500))
    assert sum(1 for key in view if view.__setitem__(key + "+", 0) is None) == 2500
    assert sum(1 for key in reversed(view) if view.__setitem__(key + "-", 0) is None) == 5000
    assert len(view) == 10000


def test_repr_shows_the_first_20_entries(view: DictView) -> None:
    view.update((f"k{i}", i) for i in range(25))
    shown = repr(view)
    assert shown.startswith("{'k0': 0, ") and shown.endswith("'k19': 19, ...}")
