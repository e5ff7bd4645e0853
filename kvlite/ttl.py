"""Time to live: what a TTL may be, when an entry expires, and whether it is live.

An entry stores ``expires_at`` (seconds on the store's clock) or ``None`` (never expires).  It is
*live* while ``expires_at is None or expires_at > now``: at ``now == expires_at`` it has expired.
Every engine applies exactly this rule, in its own language (SQL ``expires_at IS NULL OR
expires_at > ?``, a Lua script on Redis); :func:`is_live` is the rule in Python.  Expired
entries are invisible to every read at once and deleted lazily.
"""

from __future__ import annotations

import datetime
import math

from .errors import InvalidTTL

__all__ = ["expiry", "is_live", "remaining"]


def expiry(ttl: object, now: float) -> float | None:
    """The ``expires_at`` for a ``ttl`` (seconds from ``now``); ``None`` = never.

    A TTL is ``None``, a positive, finite ``int``/``float`` or a positive
    ``datetime.timedelta``; anything else raises :class:`~kvlite.errors.InvalidTTL`.
    """
    if ttl is None:
        return None
    if isinstance(ttl, datetime.timedelta):
        ttl = ttl.total_seconds()
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise InvalidTTL(f"ttl must be a number of seconds or None, not {type(ttl).__name__}")
    try:
        seconds = float(ttl)
    except OverflowError:  # an int too large for a float
        raise InvalidTTL(f"ttl must be a positive, finite number of seconds, not {ttl!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidTTL(f"ttl must be a positive, finite number of seconds, not {ttl!r}")
    return now + seconds


def is_live(expires_at: float | None, now: float) -> bool:
    """Whether an entry that expires at ``expires_at`` is still visible at ``now``."""
    return expires_at is None or expires_at > now


def remaining(expires_at: float | None, now: float) -> float | None:
    """What ``ttl()`` reports for a live entry: seconds left, or ``None`` when it never expires."""
    return None if expires_at is None else expires_at - now
