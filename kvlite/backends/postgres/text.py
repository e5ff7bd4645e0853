"""Text forms of the PostgreSQL engine: keys as PostgreSQL text, SQL names and literals, and URLs.

- keys: :func:`canon` (equal keys, equal text: the ``key_canon`` column),
  :func:`key_text` / :func:`key_back` (the stored key with its type: the
  ``key_text`` column), both escaping ``\\`` and NUL, which PostgreSQL text
  cannot hold (:func:`escape` is injective, :func:`unescape` its inverse);
- expiry times: :func:`epoch` caps a store-clock time at :data:`MAX_EPOCH`,
  inside ``timestamptz``'s range;
- SQL: :func:`quote_ident` and :func:`quote_literal`, for names and literals
  kvlite itself builds (never for user text, which always travels as a bound
  parameter);
- URLs: :func:`split_url` takes kvlite's own ``pool_*`` parameters out of a
  libpq URL, :func:`redacted` hides its password.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from ... import keys as _keys

__all__ = ["canon", "key_text", "key_back", "escape", "unescape", "epoch", "MAX_EPOCH", "quote_ident",
           "quote_literal", "split_url", "redacted", "KVLITE_PARAMS"]

#: The latest expiry stored (in the year 293,500; timestamptz ends in 294276): a later one is capped
#: to it, so such an entry still never expires in practice and ``ttl()`` stays a finite number.
MAX_EPOCH = 9.2e12
#: The URL parameters kvlite reads (and removes) before libpq sees the URL.
KVLITE_PARAMS = ("pool_min_size", "pool_max_size")


# -- keys ----------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """``text`` without NUL (PostgreSQL text cannot hold it); injective: ``\\`` -> ``\\\\``, NUL -> ``\\0``."""
    if "\\" not in text and "\x00" not in text:
        return text
    return text.replace("\\", "\\\\").replace("\x00", "\\0")


def unescape(text: str) -> str:
    """The text :func:`escape` made ``text`` from."""
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append("\x00" if nxt == "0" else nxt)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def canon(key: Any) -> str:
    """The ``key_canon`` of a normalised key: equal for keys Python finds equal (``1``, ``1.0``,
    ``True`` -> ``'n:1'``)."""
    return escape(_keys.canonical_text(key))


def key_text(key: Any) -> str:
    """The ``key_text`` of a normalised key: the key with its type (``'s:a'``, ``'B:1'``, ...)."""
    return escape(_keys.tagged_text(key))


def key_back(text: str) -> Any:
    """The key a ``key_text`` stands for."""
    return _keys.from_tagged_text(unescape(text))


def epoch(value: float | None) -> float | None:
    """A store-clock time as the float ``to_timestamp()`` gets (capped at :data:`MAX_EPOCH`)."""
    if value is None:
        return None
    return MAX_EPOCH if value > MAX_EPOCH else value


# -- SQL -----------------------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a quoted SQL string literal (for names kvlite builds, and index comments)."""
    return "'" + text.replace("'", "''") + "'"


# -- URLs ----------------------------------------------------------------------------------------


def split_url(url: str) -> tuple[str, dict[str, int]]:
    """``(libpq conninfo URL, kvlite options)``: the ``pool_*`` parameters taken out of ``url``."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ours: dict[str, int] = {}
    rest = []
    for name, value in query:
        if name in KVLITE_PARAMS:
            try:
                ours[name] = int(value)
            except ValueError:
                raise ValueError(f"{name} must be an integer, not {value!r}") from None
            if ours[name] < (0 if name == "pool_min_size" else 1):
                raise ValueError(f"{name} is too small: {value!r}")
        else:
            rest.append((name, value))
    scheme = "postgresql" if parts.scheme.lower() in ("postgresql", "postgres") else parts.scheme
    conninfo = urllib.parse.urlunsplit((scheme, parts.netloc, parts.path,
                                        urllib.parse.urlencode(rest, quote_via=urllib.parse.quote), parts.fragment))
    return conninfo, ours


def redacted(url: str) -> str:
    """``url`` without its password (for ``repr`` and messages)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urllib.parse.urlunsplit((parts.scheme, f"{user}:***@{netloc[1]}", parts.path, parts.query, parts.fragment))
