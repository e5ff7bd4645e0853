"""The key rules of ``kvlite/keys.py``, one contract per function, checked with Hypothesis.

* :func:`keys.encode` / :func:`keys.decode`: the stored ``(key, key_type)`` pair round-trips every
  valid key to its base type; exactly the documented keys are accepted; a pair ``encode`` never
  makes is ``CorruptStore``.
* :func:`keys.normalize`: the key as its base type, equal (``==`` and ``hash``) to the key given,
  idempotent; refuses what ``encode`` refuses and ``str`` that is not valid Unicode text.
* :func:`keys.encode_many` / :func:`keys.normalize_many`: the one-key forms over an iterable; one
  ``str``/``bytes`` key is refused.
* :func:`keys.canonical_text`: equal for two keys exactly when Python makes them one ``dict`` key.
* :func:`keys.tagged_text` / :func:`keys.from_tagged_text`, :func:`keys.to_json` /
  :func:`keys.from_json`: exact round trips (type included); ``from_json`` refuses anything else.
* :func:`keys.view`: how the query languages see a key.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvlite import keys
from kvlite.errors import CorruptStore, InvalidKey, KvliteError

INT64 = (-(2**63), 2**63 - 1)


class Color(str, enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 7


class Label(str):
    pass


class Raw(bytes):
    pass


class Ratio(float):
    pass


# -- strategies ------------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=20)  # valid Unicode text (no lone surrogates)
FLOATS = st.floats(allow_nan=False)  # infinities and -0.0 included
#: ints beyond 64 bits that a float equals exactly (m * 2**e with m < 2**53): valid keys.
BIG_EXACT_INTS = st.builds(lambda m, e, sign: sign * m * 2**e, st.integers(1, 2**53 - 1), st.integers(11, 970),
                           st.sampled_from([1, -1])).filter(lambda n: not INT64[0] <= n <= INT64[1])
#: Values around the places where keys of different types are equal (1 == 1.0 == True, 0 == -0.0,
#: 2**63 == 2.0**63) or almost equal (2**53 + 1 is no float).
COLLIDING = st.sampled_from([0, 1, -1, 2, True, False, 0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 2**53, 2**53 + 1, 2.0**53,
                             2**63, 2.0**63, -(2**63), -(2.0**63), 2**63 - 1, 2**64, 2.0**64, math.inf, -math.inf,
                             "1", "", b"1", b"", "True", "n:1", "s:", "b:"])
PLAIN_KEYS = st.one_of(TEXT, st.binary(max_size=20), st.integers(*INT64), st.booleans(), FLOATS, BIG_EXACT_INTS,
                       COLLIDING)
SUBCLASS_KEYS = st.one_of(st.just(Color.RED), st.just(Size.BIG), TEXT.map(Label), st.binary(max_size=8).map(Raw),
                          FLOATS.map(Ratio))
KEYS = st.one_of(PLAIN_KEYS, SUBCLASS_KEYS)
NOT_KEYS = st.one_of(st.none(), st.lists(st.integers(), max_size=2), st.tuples(st.integers()),
                     st.frozensets(st.integers(), max_size=2), st.complex_numbers(),
                     st.decimals(allow_nan=False), st.just(object()), st.just(datetime.date(2024, 1, 1)),
                     st.just(bytearray(b"a")))


def base_type(key: Any) -> type:
    """The type a key comes back as: ``bool``, else the first of str, bytes, int, float it is."""
    if isinstance(key, bool):
        return bool
    return next(t for t in (str, bytes, int, float) if isinstance(key, t))


def same(a: Any, b: Any) -> bool:
    """The same key exactly: type and value (a float by its repr, so ``-0.0`` is not ``0.0``)."""
    return type(a) is type(b) and (repr(a) == repr(b) if type(a) is float else a == b)


def exactly_a_float(n: int) -> bool:
    """Whether a float equals the int ``n`` exactly: at most 53 significant bits, below 2**1024."""
    m = abs(n)
    if m == 0:
        return True
    odd = m >> ((m & -m).bit_length() - 1)
    return odd.bit_length() <= 53 and m.bit_length() <= 1024


# -- encode / decode -------------------------------------------------------------------------------


@given(KEYS)
def test_encode_then_decode_gives_the_key_as_its_base_type(key: Any) -> None:
    stored, key_type = keys.encode(key)
    back = keys.decode(stored, key_type)
    assert type(back) is base_type(key)
    assert back == key and hash(back) == hash(key)
    if type(key) in (str, bytes, int, bool, float):
        assert same(back, key)
    assert type(stored) in (str, bytes, int, float)
    assert key_type in (keys.KEY_PLAIN, keys.KEY_BOOL, keys.KEY_BIG_INT)


@given(st.booleans())
def test_a_bool_is_stored_as_an_int_marked_bool(key: bool) -> None:
    assert keys.encode(key) == (int(key), keys.KEY_BOOL) and type(keys.encode(key)[0]) is int


@given(BIG_EXACT_INTS)
def test_an_int_beyond_64_bits_is_stored_as_the_float_it_equals(key: int) -> None:
    stored, key_type = keys.encode(key)
    assert type(stored) is float and stored == key and key_type == keys.KEY_BIG_INT


@given(st.one_of(st.integers(), BIG_EXACT_INTS, st.integers(min_value=2**1023).map(lambda n: n * 2)))
def test_an_int_is_a_key_exactly_when_it_fits_64_bits_or_equals_a_float(key: int) -> None:
    valid = INT64[0] <= key <= INT64[1] or exactly_a_float(key)
    try:
        keys.encode(key)
    except InvalidKey:
        assert not valid, key
    else:
        assert valid, key


@pytest.mark.parametrize(("key", "valid"), [
    (2**63 - 1, True), (-(2**63), True), (2**63, True), (-(2**63) - 1, False), (2**63 + 1, False),
    (2**64 - 1, False), (2**64, True), (2**64 + 1, False), (2**53 * 2**970, True), (2**1024, False),
    (-(2**1024), False), (10**400, False),
])
def test_int_boundaries(key: int, valid: bool) -> None:
    assert (INT64[0] <= key <= INT64[1] or exactly_a_float(key)) is valid  # the helper agrees
    if valid:
        assert keys.decode(*keys.encode(key)) == key
    else:
        with pytest.raises(InvalidKey):
            keys.encode(key)


@given(NOT_KEYS)
def test_other_types_are_refused(value: Any) -> None:
    with pytest.raises(InvalidKey):
        keys.encode(value)
    with pytest.raises(InvalidKey):
        keys.normalize(value)
    assert isinstance(InvalidKey(), TypeError) and isinstance(InvalidKey(), KvliteError)


def test_nan_is_refused() -> None:
    for nan in (math.nan, -math.nan, Ratio("nan")):
        with pytest.raises(InvalidKey, match="NaN"):
            keys.encode(nan)


@pytest.mark.parametrize("kind", [str, bytes])
def test_length_limit(kind: type) -> None:
    unit = "k" if kind is str else b"k"
    longest = unit * keys.MAX_KEY_LENGTH
    assert keys.decode(*keys.encode(longest)) == longest
    with pytest.raises(InvalidKey):
        keys.encode(longest + unit)


@given(st.one_of(st.tuples(st.integers(), st.integers(3, 1000)),  # a key type encode never writes
                 st.tuples(st.one_of(st.integers().filter(lambda n: n not in (0, 1)), FLOATS, TEXT, st.binary()),
                           st.just(keys.KEY_BOOL)),
                 st.tuples(st.one_of(st.integers(), TEXT, st.binary(),
                                     FLOATS.filter(lambda f: not (math.isfinite(f) and f.is_integer()))),
                           st.just(keys.KEY_BIG_INT))))
def test_a_pair_encode_never_makes_is_corrupt(pair: tuple[Any, int]) -> None:
    with pytest.raises(CorruptStore):
        keys.decode(*pair)


# -- normalize -------------------------------------------------------------------------------------


@given(KEYS)
def test_normalize_is_the_key_as_its_base_type_and_idempotent(key: Any) -> None:
    once = keys.normalize(key)
    assert type(once) is base_type(key)
    assert once == key and hash(once) == hash(key)
    twice = keys.normalize(once)
    assert same(twice, once)


@given(st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3), TEXT, TEXT)
def test_normalize_refuses_text_that_is_not_valid_unicode(bad: str, before: str, after: str) -> None:
    key = before + bad + after
    keys.encode(key)  # the stored pair does not care
    with pytest.raises(InvalidKey, match="Unicode"):
        keys.normalize(key)


@given(st.one_of(NOT_KEYS, st.just(math.nan), st.integers(min_value=2**63).filter(lambda n: not exactly_a_float(n))))
def test_normalize_refuses_what_encode_refuses(value: Any) -> None:
    for function in (keys.encode, keys.normalize):
        with pytest.raises(InvalidKey):
            function(value)


# -- the _many forms -------------------------------------------------------------------------------


@given(st.lists(KEYS, max_size=8), st.sampled_from([list, tuple, iter]))
def test_many_forms_are_the_one_key_forms_in_order(key_list: list[Any], container: Any) -> None:
    assert keys.encode_many(container(key_list), "get_many") == [keys.encode(k)[0] for k in key_list]
    normalized = keys.normalize_many(container(key_list), "get_many")
    assert len(normalized) == len(key_list)
    assert all(same(a, keys.normalize(b)) for a, b in zip(normalized, key_list))


@given(st.one_of(TEXT, st.binary(max_size=8), TEXT.map(Label), st.just(Color.RED)),
       st.sampled_from(["get_many", "delete_many", "ttl_many"]))
def test_many_forms_refuse_one_str_or_bytes_key(one: Any, method: str) -> None:
    for function in (keys.encode_many, keys.normalize_many):
        with pytest.raises(InvalidKey, match=rf"{method}\(\) takes an iterable of keys.*{method}\(\[key\]\)"):
            function(one, method)


def test_many_forms_of_nothing() -> None:
    assert keys.encode_many([], "m") == [] and keys.normalize_many(iter(()), "m") == []


# -- canonical_text ----------------------------------------------------------------------------------


def equal_keys(key: Any) -> list[Any]:
    """``key`` and the keys of other types Python finds equal to it (``1``, ``1.0``, ``True``)."""
    found = [key]
    if isinstance(key, (int, float)) and not (isinstance(key, float) and not math.isfinite(key)):
        if key == int(key):
            found.append(int(key))
            if exactly_a_float(int(key)):
                found.append(float(key))
            if key == 0:
                found.append(-0.0)
            if key in (0, 1):
                found.append(bool(key))
    return found


#: Two keys: any two, or two equal ones of different types.
PAIRS = st.one_of(st.tuples(st.one_of(COLLIDING, PLAIN_KEYS), st.one_of(COLLIDING, PLAIN_KEYS)),
                  st.one_of(COLLIDING, PLAIN_KEYS).flatmap(lambda k: st.tuples(st.just(k),
                                                                                 st.sampled_from(equal_keys(k)))))


@given(PAIRS)
def test_canonical_text_is_equal_exactly_for_one_dict_key(pair: tuple[Any, Any]) -> None:
    a, b = (keys.normalize(k) for k in pair)
    one_dict_key = len({a: None, b: None}) == 1
    assert one_dict_key == (a == b and hash(a) == hash(b))  # the test's own premise
    assert (keys.canonical_text(a) == keys.canonical_text(b)) is one_dict_key, (a, b)


@given(st.lists(PAIRS, max_size=6))
def test_canonical_texts_count_the_keys_of_a_dict(pairs: list[tuple[Any, Any]]) -> None:
    normalized = [keys.normalize(k) for pair in pairs for k in pair]
    assert len({keys.canonical_text(k) for k in normalized}) == len(dict.fromkeys(normalized))


@given(PLAIN_KEYS)
def test_canonical_text_is_text(key: Any) -> None:
    text = keys.canonical_text(keys.normalize(key))
    assert type(text) is str
    text.encode("utf-8")  # storable as it is


# -- tagged_text and to_json: exact round trips ----------------------------------------------------------


@given(KEYS)
def test_tagged_text_round_trips_exactly(key: Any) -> None:
    key = keys.normalize(key)
    text = keys.tagged_text(key)
    assert type(text) is str
    assert same(keys.from_tagged_text(text), key)


@given(PAIRS)
def test_tagged_text_tells_every_key_apart(pair: tuple[Any, Any]) -> None:
    a, b = (keys.normalize(k) for k in pair)
    assert (keys.tagged_text(a) == keys.tagged_text(b)) is same(a, b), (a, b)


@given(KEYS)
def test_to_json_round_trips_exactly_through_json_text(key: Any) -> None:
    key = keys.normalize(key)
    form = keys.to_json(key)
    assert same(keys.from_json(form), key)
    assert same(keys.from_json(json.loads(json.dumps(form, allow_nan=False))), key)
    if type(key) is str:
        assert form == key
    else:
        assert isinstance(form, dict) and len(form) == 1


@pytest.mark.parametrize(("key", "form"), [
    (5, {"int": 5}), (b"\x00\xff", {"bytes": "00ff"}), (1.5, {"float": "1.5"}), (-0.0, {"float": "-0.0"}),
    (math.inf, {"float": "inf"}), (True, {"bool": True}), (2**64, {"int": 2**64}), ("s", "s"),
])
def test_to_json_forms(key: Any, form: Any) -> None:
    assert keys.to_json(key) == form and same(keys.from_json(form), key)


def test_from_json_takes_a_float_tag_with_a_number() -> None:
    assert same(keys.from_json({"float": 2}), 2.0) and same(keys.from_json({"float": 2.5}), 2.5)


@pytest.mark.parametrize("form", [
    None, 5, 1.5, True, [], ["a"], {}, {"int": 1, "bool": True}, {"int": True}, {"int": 1.0}, {"int": "1"},
    {"bool": 1}, {"bool": "true"}, {"bytes": "zz"}, {"bytes": "abc"}, {"bytes": 1}, {"float": "abc"},
    {"float": True}, {"float": None}, {"str": "a"}, {"key": "a"},
], ids=repr)
def test_from_json_refuses_anything_else(form: Any) -> None:
    with pytest.raises(ValueError):
        keys.from_json(form)


@pytest.mark.parametrize("value", [None, [1], (1,), decimal.Decimal(1)], ids=repr)
def test_to_json_refuses_what_is_not_a_key(value: Any) -> None:
    with pytest.raises(TypeError):
        keys.to_json(value)


# -- view ----------------------------------------------------------------------------------------------


@given(KEYS)
def test_view_is_text_the_query_languages_can_hold(key: Any) -> None:
    key = keys.normalize(key)
    seen = keys.view(key)
    assert type(seen) is str
    seen.encode("utf-8")  # valid text, whatever the bytes were
    if type(key) is str:
        assert seen == key
    elif type(key) in (int, float, bool):
        assert seen == str(key)


@given(TEXT)
def test_view_of_utf8_bytes_is_their_text(text: str) -> None:
    assert keys.view(text.encode("utf-8")) == text


@given(st.binary(max_size=12))
def test_view_of_bytes_escapes_only_what_is_not_utf8(raw: bytes) -> None:
    assert keys.view(raw) == raw.decode("utf-8", "backslashreplace")
