"""The TTL rules of ``kvlite/ttl.py``, one contract per function, checked with Hypothesis.

(``tests/test_ttl.py`` checks TTL behaviour through a store; this checks the rules themselves.)

* :func:`ttl.expiry`: ``None`` never expires; a positive, finite number of seconds (``int``,
  ``float``) or a positive ``timedelta`` expires that long after ``now``; anything else is
  ``InvalidTTL``.
* :func:`ttl.is_live`: live while ``expires_at is None or expires_at > now``; at ``expires_at ==
  now`` the entry has expired, and stays expired.
* :func:`ttl.remaining`: seconds left (``expires_at - now``), ``None`` for no expiry.
"""

from __future__ import annotations

import datetime
import decimal
import fractions
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kvlite import ttl
from kvlite.errors import InvalidTTL, KvliteError

#: Clock readings: a fake clock's, a real one's, zero, negative and huge ones.
NOW = st.one_of(st.floats(-1e15, 1e15, allow_nan=False), st.sampled_from([0.0, 1_700_000_000.0, 1e6]))
GOOD_SECONDS = st.one_of(st.floats(min_value=5e-324, allow_infinity=False, allow_nan=False),
                         st.integers(min_value=1, max_value=2**1023))
GOOD_DELTAS = st.timedeltas(min_value=datetime.timedelta(microseconds=1))
EXPIRES = st.one_of(st.none(), st.floats(-1e15, 1e15, allow_nan=False))


# -- expiry ------------------------------------------------------------------------------------------


@given(NOW)
def test_no_ttl_never_expires(now: float) -> None:
    assert ttl.expiry(None, now) is None


@given(GOOD_SECONDS, NOW)
def test_a_number_of_seconds_expires_that_long_after_now(seconds: float, now: float) -> None:
    assert ttl.expiry(seconds, now) == now + float(seconds)


@given(GOOD_DELTAS, NOW)
def test_a_timedelta_expires_that_long_after_now(delta: datetime.timedelta, now: float) -> None:
    assert ttl.expiry(delta, now) == now + delta.total_seconds()


@given(st.floats(), NOW)
def test_a_float_is_a_ttl_exactly_when_positive_and_finite(seconds: float, now: float) -> None:
    if math.isfinite(seconds) and seconds > 0:
        assert ttl.expiry(seconds, now) == now + seconds
    else:
        with pytest.raises(InvalidTTL):
            ttl.expiry(seconds, now)


#: The smallest int a float cannot hold: it rounds to 2**1024 (the largest float is 2**1024 - 2**971).
TOO_BIG_FOR_A_FLOAT = 2**1024 - 2**970


@given(st.one_of(st.integers(max_value=2**1100), st.integers(TOO_BIG_FOR_A_FLOAT - 2**40, TOO_BIG_FOR_A_FLOAT + 2**40)),
       NOW)
def test_an_int_is_a_ttl_exactly_when_positive_and_a_float_can_hold_it(seconds: int, now: float) -> None:
    if 0 < seconds < TOO_BIG_FOR_A_FLOAT:
        assert ttl.expiry(seconds, now) == now + float(seconds)
    else:
        with pytest.raises(InvalidTTL):
            ttl.expiry(seconds, now)


@given(st.timedeltas(max_value=datetime.timedelta(0)), NOW)
def test_a_timedelta_that_is_not_positive_is_refused(delta: datetime.timedelta, now: float) -> None:
    with pytest.raises(InvalidTTL):
        ttl.expiry(delta, now)


@pytest.mark.parametrize("value", [True, False, "10", b"10", [10], (10,), decimal.Decimal(10), fractions.Fraction(10),
                                   complex(10), object(), 0, -1, 0.0, -0.0, math.inf, -math.inf, math.nan, 10**400,
                                   datetime.timedelta(0), datetime.timedelta(seconds=-1)], ids=repr)
def test_what_is_not_a_ttl(value: Any) -> None:
    with pytest.raises(InvalidTTL):
        ttl.expiry(value, 1_700_000_000.0)
    assert isinstance(InvalidTTL(), ValueError) and isinstance(InvalidTTL(), KvliteError)


# -- is_live and remaining -----------------------------------------------------------------------------


@given(NOW)
def test_no_expiry_is_always_live(now: float) -> None:
    assert ttl.is_live(None, now) is True
    assert ttl.remaining(None, now) is None


@given(EXPIRES, NOW)
def test_live_exactly_while_expires_at_is_after_now(expires_at: float | None, now: float) -> None:
    assert ttl.is_live(expires_at, now) is (expires_at is None or expires_at > now)


@given(NOW)
def test_at_expires_at_the_entry_has_expired(now: float) -> None:
    assert ttl.is_live(now, now) is False
    assert ttl.is_live(math.nextafter(now, math.inf), now) is True  # the next instant the clock can show
    assert ttl.is_live(math.nextafter(now, -math.inf), now) is False


@given(EXPIRES, NOW, st.floats(0, 1e9, allow_nan=False))
def test_once_expired_always_expired(expires_at: float | None, now: float, later: float) -> None:
    if not ttl.is_live(expires_at, now):
        assert not ttl.is_live(expires_at, now + later)
    if ttl.is_live(expires_at, now + later):
        assert ttl.is_live(expires_at, now)


@given(st.floats(-1e15, 1e15, allow_nan=False), NOW)
def test_remaining_is_the_seconds_left(expires_at: float, now: float) -> None:
    assert ttl.remaining(expires_at, now) == expires_at - now


@given(st.integers(1, 4 * 86400 * 365), st.sampled_from([0.0, 1_700_000_000.0, 1e6]))
def test_a_ttl_runs_out_after_exactly_that_long(quarters: int, now: float) -> None:
    """With times the clock holds exactly (multiples of 0.25 s): live for ``ttl`` seconds, gone at
    ``now + ttl``, and ``remaining`` counts down to it."""
    seconds = quarters / 4
    expires_at = ttl.expiry(seconds, now)
    assert ttl.is_live(expires_at, now) and ttl.remaining(expires_at, now) == seconds
    halfway = now + math.floor(quarters / 2) / 4
    assert ttl.is_live(expires_at, halfway) and ttl.remaining(expires_at, halfway) == now + seconds - halfway
    assert not ttl.is_live(expires_at, now + seconds)


@given(GOOD_SECONDS, NOW)
def test_a_new_entry_is_live_unless_its_ttl_is_below_the_clocks_resolution(seconds: float, now: float) -> None:
    expires_at = ttl.expiry(seconds, now)
    assume(expires_at is not None and math.isfinite(expires_at))
    assert ttl.is_live(expires_at, now) is (now + float(seconds) > now)
