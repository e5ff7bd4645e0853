"""``redis://`` / ``valkey://`` — kvlite collections on a Redis or Valkey server.

``kvlite.open("redis://host:6379/0?prefix=myapp")`` (``rediss://`` for TLS;
``valkey://`` and ``valkeys://`` are the same as ``redis://`` / ``rediss://``)
gives the full kvlite Store / Collection / DictView / query API on a server
that several processes and machines share.  Needs redis-py
(redis-py: kvlite's ``redis`` extra).  :class:`RedisEngine` is the
:class:`~kvlite.backends.base.Engine` (``store.engine``), :class:`RedisTable`
the :class:`~kvlite.backends.base.Table` of one collection.

Layout (``P`` = the namespace, ``?prefix=`` in the URL, default ``kvlite``;
``N`` = a collection's number, so no user text is ever part of a Redis key)::

    P:registry         hash  collection name -> "N:serializer"
    P:registry:order   zset  collection name, scored by N (creation order)
    P:registry:seq     str   last N given out
    P:c:N:seq          str   insertion counter; exists while the collection exists
    P:c:N:order        zset  canonical key -> insertion number (iteration order)
    P:c:N:meta         hash  canonical key -> value kind ("t" text / "b" bytes) + exact key text
    P:c:N:data         hash  canonical key -> the serializer's output, unchanged (UTF-8 for text)
    P:c:N:exp          zset  canonical key -> expires_at (only entries that have a TTL)

The *canonical key* makes keys that Python finds equal one entry
(``1 == 1.0 == True``); the exact key text keeps the first stored form and its
type (see :func:`kvlite.keys.canonical_text` / :func:`kvlite.keys.tagged_text`).

Atomicity: every primitive that touches more than one Redis key is one Lua
script (``EVALSHA``), so each call, including ``put_many``, ``delete_many``,
``get_many`` and ``setdefault``, is atomic: other clients see all of it or
none of it.  Scripts check everything before their first write (Redis does not
roll a script back).  ``pop`` and ``popitem`` decode the value *before* it is
removed (a value that cannot be decoded stays stored): a first script call
reads the entry, the client decodes it, and a second one removes it only if it
is still the same entry (compare-and-delete on its meta and the SHA-1 of its
data; otherwise the client decodes the entry it finds and tries again).
``transaction()`` across several calls raises
:class:`~kvlite.errors.NotSupported`.

Expiry: kvlite's own, on the store's clock (``clock=``; ``time.time`` by
default): ``now`` is passed to every script, so an entry is invisible to every
read as soon as ``expires_at <= now``.  Expired entries are deleted lazily:
every write script first deletes up to :data:`PURGE_BATCH` expired entries of
its collection, a write to an expired key replaces it (as a new key, at the end
of the order), and :meth:`~kvlite.Collection.purge_expired` deletes them all.
Redis's native key expiry is not used (a TTL belongs to one hash field, which
Redis 7.0 cannot expire).  Every client of one namespace should use the same
clock.

A dropped collection: every script checks the collection's ``seq`` key first
(a script error carrying ``KVLITE_DROPPED``), so every call through an old
object (reads, writes, ``clear``, ``purge_expired``) raises
:class:`~kvlite.errors.CollectionDropped`, as on SQLite;
``store.collection(name)`` reads the registry every time and gives the current
collection of that name.
"""

from __future__ import annotations

import hashlib
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .. import keys as _keys
from .. import serializers as _serializers
from ..errors import (
    CollectionDropped,
    KvliteError,
    NotSupported,
    ReadOnlyError,
    StoreFull,
    StoreLocked,
)
from .base import KEEP, MISSING, Engine, Table

try:  # an optional extra: the module imports without it, opening a store explains what to install
    import redis as _redis
except ImportError:  # pragma: no cover - exercised only without the extra
    _redis = None  # type: ignore[assignment]

__all__ = ["PAGE", "PURGE_BATCH", "RedisEngine", "RedisTable", "parse_url"]

#: Expired entries a write deletes (at most) before doing its own work.
PURGE_BATCH = 100
#: Entries read per round trip when iterating.
PAGE = 500

_DROPPED = "KVLITE_DROPPED"
_TEXT = ord("t")

# -- Lua ---------------------------------------------------------------------------------------
# Collection scripts get KEYS = order, meta, data, exp, seq (reads: the ones they need) and
# ARGV[1] = now.  A live entry: in `order`, and its score in `exp` (if any) is > now.

_PRELUDE = """
local order, meta, data, exp, seq = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = tonumber(ARGV[1])
local function expired(c)
  local e = redis.call('ZSCORE', exp, c)
  return e and tonumber(e) <= now
end
local function remove(c)
  redis.call('ZREM', order, c)
  redis.call('HDEL', meta, c)
  redis.call('HDEL', data, c)
  redis.call('ZREM', exp, c)
end
local function purge(limit)
  local gone = redis.call('ZRANGEBYSCORE', exp, '-inf', ARGV[1], 'LIMIT', 0, limit)
  if #gone > 0 then
    redis.call('ZREM', order, unpack(gone))
    redis.call('HDEL', meta, unpack(gone))
    redis.call('HDEL', data, unpack(gone))
    redis.call('ZREM', exp, unpack(gone))
  end
  return #gone
end
"""

# Read scripts start with this: their last key is the collection's seq, which exists exactly as
# long as the collection does.
_CHECK_EXISTS = f"""
if redis.call('EXISTS', KEYS[#KEYS]) == 0 then
  return redis.error_reply('{_DROPPED} the collection was dropped')
end
"""

_WRITE_PRELUDE = _PRELUDE + f"""
if redis.call('EXISTS', seq) == 0 then
  return redis.error_reply('{_DROPPED} the collection was dropped')
end
purge({PURGE_BATCH})
-- Insert or replace: a live entry keeps its place and its key; an expired one counts as new.
local function put(c, m, v, ttl)
  local e = redis.call('ZSCORE', exp, c)
  local old = false
  if e and tonumber(e) <= now then
    remove(c)
    e = false
  else
    old = redis.call('HGET', meta, c)
  end
  if old then
    if string.byte(old, 1) ~= string.byte(m, 1) then
      redis.call('HSET', meta, c, string.sub(m, 1, 1) .. string.sub(old, 2))
    end
  else
    redis.call('ZADD', order, redis.call('INCR', seq), c)
    redis.call('HSET', meta, c, m)
  end
  redis.call('HSET', data, c, v)
  if ttl == '' then
    if e then redis.call('ZREM', exp, c) end
  else
    redis.call('ZADD', exp, ttl, c)
  end
end
"""

# ARGV: now, expires_at or '', then (canonical, meta, data) triples.
_PUT = _WRITE_PRELUDE + """
for i = 3, #ARGV, 3 do put(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[2]) end
return (#ARGV - 2) / 3
"""

# ARGV: now, canonical, then the meta and the SHA-1 of the data the client decoded ('' '' on the first call).
# -> nil: no live entry (an expired one is removed); 1: it matched what the client decoded and was removed;
# {meta, data}: the live entry, left in place (the client decodes it, then calls again with it).
_POP = _WRITE_PRELUDE + """
local c = ARGV[2]
local m = redis.call('HGET', meta, c)
if not m then return false end
if expired(c) then
  remove(c)
  return false
end
local v = redis.call('HGET', data, c)
if m == ARGV[3] and redis.sha1hex(v) == ARGV[4] then
  remove(c)
  return 1
end
return {m, v}
"""

# ARGV: now, canonicals...  -> number of live entries removed.
_DELETE_ALL = _WRITE_PRELUDE + """
local n = 0
for i = 2, #ARGV do
  local c = ARGV[i]
  if redis.call('HEXISTS', meta, c) == 1 then
    if not expired(c) then n = n + 1 end
    remove(c)
  end
end
return n
"""

# ARGV: now, then the canonical key, meta and SHA-1 of the data the client decoded ('' '' '' on the first call).
# -> nil: no live entry (expired ones on top are removed); 1: the newest live entry is the one the client
# decoded, removed; {canonical, meta, data}: the newest live entry, left in place.
_POPITEM = _WRITE_PRELUDE + """
while true do
  local top = redis.call('ZREVRANGE', order, 0, 0)
  if #top == 0 then return false end
  local c = top[1]
  if expired(c) then
    remove(c)
  else
    local m = redis.call('HGET', meta, c)
    local v = redis.call('HGET', data, c)
    if c == ARGV[2] and m == ARGV[3] and redis.sha1hex(v) == ARGV[4] then
      remove(c)
      return 1
    end
    return {c, m, v}
  end
end
"""

# ARGV: now, expires_at or '', canonical, meta, data.  -> {1, meta, data} of the live entry, or {0} after storing.
_SETDEFAULT = _WRITE_PRELUDE + """
local c = ARGV[3]
if not expired(c) then
  local v = redis.call('HGET', data, c)
  if v then return {1, redis.call('HGET', meta, c), v} end
end
put(c, ARGV[4], ARGV[5], ARGV[2])
return {0}
"""

# ARGV: now, canonical, the meta and SHA-1 of the data the client read ('' '': it read no live entry),
# the new meta and data, the new expires_at ('k': keep the live entry's, '': never).
# -> 1: the entry was still the one read, and the new data is written; 0: it was not, and there is no
# live entry now; {meta, data}: it was not, and this is the live entry now (the client tries again on it).
_MODIFY = _WRITE_PRELUDE + """
local c = ARGV[2]
local m = redis.call('HGET', meta, c)
if m and expired(c) then m = false end
local v = false
if m then v = redis.call('HGET', data, c) end
if m then
  if m ~= ARGV[3] or redis.sha1hex(v) ~= ARGV[4] then return {m, v} end
elseif ARGV[3] ~= '' then
  return 0
end
local ttl = ARGV[7]
if ttl == 'k' then
  ttl = ''
  if m then
    local e = redis.call('ZSCORE', exp, c)
    if e then ttl = e end
  end
end
put(c, ARGV[5], ARGV[6], ttl)
return 1
"""

# KEYS: order, meta, data, exp, seq.  ARGV: now.  -> entries removed.
_PURGE = _PRELUDE + _CHECK_EXISTS + """
local total = 0
while true do
  local n = purge(1000)
  total = total + n
  if n < 1000 then return total end
end
"""

# KEYS: meta, data, exp, seq.  ARGV: now, '1' with data / '0', canonicals...
# -> (meta, data, expires_at) per key (data nil without data), nil where none.
_GET = _CHECK_EXISTS + """
local meta, data, exp = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local with_data = ARGV[2] == '1'
local out = {}
for i = 3, #ARGV do
  local c = ARGV[i]
  local e = redis.call('ZSCORE', exp, c)
  local m = false
  local v = false
  if not (e and tonumber(e) <= now) then
    m = redis.call('HGET', meta, c)
    if m then
      if with_data then v = redis.call('HGET', data, c) end
    else
      e = false
    end
  else
    e = false
  end
  out[#out + 1] = m
  out[#out + 1] = v
  out[#out + 1] = e
end
return out
"""

# KEYS: order, meta, data, exp, seq.  ARGV: now, start bound, '1' reverse / '0', page size, '1' with data / '0',
# end bound (forward only: the newest score when the iteration began).
# -> {last score scanned, meta, data, meta, data, ...} (data omitted without data); {} at the end.
_PAGE = _CHECK_EXISTS + """
local order, meta, data, exp = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = tonumber(ARGV[1])
local rows
if ARGV[3] == '1' then
  rows = redis.call('ZREVRANGEBYSCORE', order, ARGV[2], '-inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))
else
  rows = redis.call('ZRANGEBYSCORE', order, ARGV[2], ARGV[6], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))
end
if #rows == 0 then return {} end
local members = {}
for i = 1, #rows, 2 do members[#members + 1] = rows[i] end
local with_data = ARGV[5] == '1'
local ms = redis.call('HMGET', meta, unpack(members))
local vs = with_data and redis.call('HMGET', data, unpack(members)) or {}
local out = {rows[#rows]}
for i, c in ipairs(members) do
  local e = redis.call('ZSCORE', exp, c)
  if ms[i] and not (e and tonumber(e) <= now) then
    out[#out + 1] = ms[i]
    if with_data then out[#out + 1] = vs[i] end
  end
end
return out
"""

# KEYS: order, exp, seq.  ARGV: now.  -> {live, expired}
_COUNT = _CHECK_EXISTS + """
local expired = redis.call('ZCOUNT', KEYS[2], '-inf', ARGV[1])
return {redis.call('ZCARD', KEYS[1]) - expired, expired}
"""

# KEYS: order, meta, data, exp, seq.  -> 1 (every entry removed; the collection itself stays).
_CLEAR = _CHECK_EXISTS + """
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return 1
"""

# KEYS: registry, registry order, the new collection's seq.  ARGV: name, serializer, new number.
# -> the registry value ("N:serializer") of the collection, new or existing.
_REGISTRY_CREATE = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if found then return found end
local value = ARGV[3] .. ':' .. ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], value)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('SET', KEYS[3], 0)
return value
"""

# KEYS: registry, registry order, then the collection's keys.  ARGV: name, its registry value.
# -> 1 dropped, 0 no such collection, -1 the registry changed meanwhile (look it up again).
_REGISTRY_DROP = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if not found then return 0 end
if found ~= ARGV[2] then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 3, #KEYS do redis.call('UNLINK', KEYS[i]) end
return 1
"""


def _translate(exc: Exception, where: str) -> KvliteError:
    """A kvlite error for a redis-py exception."""
    if isinstance(exc, _redis.exceptions.ReadOnlyError):
        return ReadOnlyError(f"{where} is read-only (a replica?): {exc}")
    message = str(exc)
    if isinstance(exc, _redis.exceptions.ResponseError):
        if _DROPPED in message:
            return CollectionDropped("the collection was dropped (by this or another client)")
        if isinstance(exc, getattr(_redis.exceptions, "OutOfMemoryError", ())) or "> 'maxmemory'" in message:
            return StoreFull(f"{where} is out of memory (maxmemory); nothing was written: {exc}")
    if isinstance(exc, (_redis.exceptions.ConnectionError, _redis.exceptions.TimeoutError)):
        return KvliteError(f"cannot reach {where}: {exc}")
    return KvliteError(f"{where}: {exc}")


def _redacted(url: str) -> str:
    """``url`` without its password (for ``repr`` and error messages)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def parse_url(url: str) -> tuple[str, str]:
    """``(URL for redis-py, namespace prefix)`` for a kvlite Redis/Valkey URL.

    ``valkey://`` becomes ``redis://`` (``valkeys://``: ``rediss://``); the
    ``prefix`` query parameter is taken out (default ``"kvlite"``); everything
    else (db number in the path, ``?db=``, credentials, TLS options) is left
    for redis-py.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = {"valkey": "redis", "valkeys": "rediss"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("redis", "rediss"):
        raise ValueError(f"not a Redis/Valkey URL: {_redacted(url)!r}")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    if len(prefixes) > 1:
        raise ValueError("the URL gives ?prefix= more than once")
    prefix = prefixes[0] if prefixes else "kvlite"
    if not prefix:
        raise ValueError("?prefix= cannot be empty")
    rest = urllib.parse.urlencode([(name, value) for name, value in query if name != "prefix"])
    return urllib.parse.urlunsplit(parts._replace(scheme=scheme, query=rest)), prefix


class RedisEngine(Engine):
    """A kvlite store in a namespace of a Redis or Valkey server (``redis://``, ``valkey://``).

    Safe to share between threads (redis-py's connection pool) and to open
    from many processes and machines at once.

    :param url: ``redis[s]://[[user]:password@]host[:port][/db][?prefix=P]``
        or the same with ``valkey[s]://``.
    :param durability: ``"normal"``: writes are as durable as the server's
        persistence settings make them.  ``"full"``: only accepted when the
        server runs with ``appendonly yes`` and ``appendfsync always`` (so
        every acknowledged write is on disk); otherwise :class:`NotSupported`.
    :param timeout: socket timeout (connect and each reply) in seconds; ``0``
        waits forever.
    :raises NotSupported: redis-py is not installed, or ``durability="full"``
        cannot be guaranteed.
    :raises KvliteError: the server cannot be reached.
    """

    def __init__(self, url: str = "redis://localhost:6379/0", *, clock: Callable[[], float] = time.time,
                 readonly: bool = False, durability: str = "normal", timeout: float = 30.0) -> None:
        if _redis is None:
            raise NotSupported("the Redis backend needs redis-py: pip install redis")
        super().__init__(_redacted(url), clock=clock, readonly=readonly, durability=durability, timeout=timeout)
        client_url, prefix = parse_url(url)
        #: The namespace every Redis key of this store starts with (``?prefix=``).
        self.prefix = prefix
        self.where = f"Redis at {_redacted(client_url)}"
        self._registry = f"{prefix}:registry"
        self._registry_order = f"{prefix}:registry:order"
        self._registry_seq = f"{prefix}:registry:seq"
        self.client = _redis.Redis.from_url(
            client_url, socket_timeout=self.timeout or None, socket_connect_timeout=self.timeout or None,
            client_name="kvlite")
        register = self.client.register_script
        self.s_put, self.s_pop, self.s_delete_all = register(_PUT), register(_POP), register(_DELETE_ALL)
        self.s_popitem, self.s_setdefault, self.s_purge = register(_POPITEM), register(_SETDEFAULT), register(_PURGE)
        self.s_get, self.s_page, self.s_count = register(_GET), register(_PAGE), register(_COUNT)
        self.s_clear, self.s_modify = register(_CLEAR), register(_MODIFY)
        self._s_registry_create, self._s_registry_drop = register(_REGISTRY_CREATE), register(_REGISTRY_DROP)
        try:
            self.call(self.client.ping)
            if durability == "full":
                self._check_full_durability()
        except BaseException:
            self.client.close()
            raise

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with redis-py errors as kvlite errors."""
        try:
            return fn(*args, **kwargs)
        except _redis.exceptions.RedisError as exc:
            raise _translate(exc, self.where) from exc

    def _check_full_durability(self) -> None:
        try:
            config = self.client.config_get("append*")
        except _redis.exceptions.RedisError as exc:
            raise NotSupported(f"durability='full' needs to read the server's persistence settings "
                               f"(CONFIG GET), which {self.where} refuses: {exc}") from exc
        settings = {_text(k): _text(v) for k, v in config.items()}
        if settings.get("appendonly") != "yes" or settings.get("appendfsync") != "always":
            raise NotSupported(
                "durability='full' needs a server running with appendonly yes and appendfsync always "
                f"(this one has appendonly={settings.get('appendonly')!r}, "
                f"appendfsync={settings.get('appendfsync')!r}); use durability='normal' or change the server")

    # -- the registry ---------------------------------------------------------------------------
    # A handle is the collection's number N: numbers are never given out twice, so an old table
    # never reaches a new collection of the same name.

    @staticmethod
    def _parse_registry(value: Any) -> tuple[int, str]:
        number, _, serializer = _text(value).partition(":")
        return int(number), serializer

    def lookup(self, name: str) -> tuple[Any, str] | None:
        found = self.call(self.client.hget, self._registry, name)
        return None if found is None else self._parse_registry(found)

    def create(self, name: str, serializer: str) -> tuple[Any, str]:
        self.check_writable()
        number = self.call(self.client.incr, self._registry_seq)
        value = self.call(self._s_registry_create,
                          keys=[self._registry, self._registry_order, self.collection_keys(number)[4]],
                          args=[name, serializer, number])
        return self._parse_registry(value)

    def names(self) -> list[str]:
        return [_text(name) for name in self.call(self.client.zrange, self._registry_order, 0, -1)]

    def drop(self, name: str) -> bool:
        self.check_writable()
        while True:
            found = self.call(self.client.hget, self._registry, name)
            if found is None:
                return False
            number, _ = self._parse_registry(found)
            done = self.call(self._s_registry_drop,
                             keys=[self._registry, self._registry_order, *self.collection_keys(number)],
                             args=[name, found])
            if done >= 0:
                return bool(done)

    def table(self, name: str, handle: Any, serializer: _serializers.Serializer) -> RedisTable:
        return RedisTable(self, name, handle, serializer)

    def collection_keys(self, number: int) -> list[str]:
        """``[order, meta, data, exp, seq]`` of collection ``number``."""
        base = f"{self.prefix}:c:{int(number)}:"
        return [base + "order", base + "meta", base + "data", base + "exp", base + "seq"]

    # -- the whole store ------------------------------------------------------------------------

    def purge_expired(self, now: float) -> dict[str, int]:
        """As the base class, but a collection another client drops meanwhile is skipped."""
        purged = {}
        for name in self.names():
            found = self.lookup(name)
            if found is None:
                continue
            try:
                purged[name] = self.table(name, found[0], _serializers.stand_in(found[1])).purge(now)
            except CollectionDropped:
                continue
        return purged

    def close(self) -> None:
        super().close()
        self.client.close()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _sha1(data: bytes) -> str:
    """What the scripts' ``redis.sha1hex`` gives for ``data``: how pop/popitem recognise an entry."""
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def _meta(key: Any, data: Any) -> str:
    """The ``meta`` field of an entry: the value kind (``t`` text, ``b`` bytes) and the exact key."""
    return ("t" if isinstance(data, str) else "b") + _keys.tagged_text(key)


def _stored_key(meta: bytes) -> Any:
    """The key an entry was first stored with, from its ``meta`` field."""
    return _keys.from_tagged_text(meta[1:].decode("utf-8"))


def _data(meta: bytes, data: bytes) -> Any:
    """The data as the serializer gave it (``str`` again when it gave text), from meta and data fields."""
    return data.decode("utf-8") if meta[0] == _TEXT else data


def _expires(expires: float | None) -> Any:
    return "" if expires is None else float(expires)


class RedisTable(Table):
    """A collection of a :class:`RedisEngine` (see the module docstring for its Redis keys).

    Every method checks that the store is open (and writable, for writes) and that the
    collection was not dropped, then runs one script (``pop``/``popitem``: two, see the module
    docstring); a script that finds the collection gone marks the table dropped."""

    engine: RedisEngine

    def __init__(self, engine: RedisEngine, name: str, number: int, serializer: _serializers.Serializer) -> None:
        super().__init__(engine, name, serializer)
        #: The collection's number ``N`` (its handle in the registry).
        self.number = number
        self._all_keys = engine.collection_keys(number)
        order, meta, data, exp, seq = self._all_keys
        # Every script gets the collection's seq key last: it exists exactly as long as the collection.
        self._read_keys = [meta, data, exp, seq]
        self._count_keys = [order, exp, seq]

    def _run(self, script: Any, keys: list[str], args: Sequence[Any]) -> Any:
        """Run ``script``; the collection-dropped error marks this table dropped, others are translated."""
        try:
            return script(keys=keys, args=args)
        except _redis.exceptions.RedisError as exc:
            if isinstance(exc, _redis.exceptions.ResponseError) and _DROPPED in str(exc):
                self.dropped = True
                raise self.dropped_error() from exc
            raise _translate(exc, self.engine.where) from exc

    # -- single keys ------------------------------------------------------------------------

    def _get_all(self, keys: list[Any], now: float, with_data: bool) -> list[tuple[Any, Any, float | None] | None]:
        """``(meta, data, expires_at)`` of each key's live entry (``None`` where none), in one atomic
        read; ``data`` is ``None`` without ``with_data``."""
        self.check()
        if not keys:
            return []
        flat = self._run(self.engine.s_get, self._read_keys,
                         [float(now), "1" if with_data else "0", *map(_keys.canonical_text, keys)])
        return [None if flat[i] is None else (flat[i], flat[i + 1], _float(flat[i + 2]))
                for i in range(0, len(flat), 3)]

    def get(self, key: Any) -> Any:
        if type(key) is str:
            _keys.check_text(key)
        found = self._get_all([key], self.engine.clock(), True)[0]
        return MISSING if found is None else _data(found[0], found[1])

    def entry(self, key: Any, now: float) -> tuple[Any, Any] | None:
        found = self._get_all([key], now, True)[0]
        return None if found is None else (_stored_key(found[0]), _data(found[0], found[1]))

    def expiry(self, key: Any, now: float) -> Any:
        if type(key) is str:
            _keys.check_text(key)
        found = self._get_all([key], now, False)[0]
        return MISSING if found is None else found[2]

    def put(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        if type(key) is str:
            _keys.check_text(key)
        self._put_all([(key, data)], now, expires)

    def _put_all(self, entries: list[tuple[Any, Any]], now: float, expires: float | None) -> None:
        self.check_writable()
        args: list[Any] = [float(now), _expires(expires)]
        for key, data in entries:
            args += (_keys.canonical_text(key), _meta(key, data), data)
        self._run(self.engine.s_put, self._all_keys, args)

    def delete(self, key: Any, now: float) -> bool:
        return self.delete_many([key], now) > 0

    def pop(self, key: Any, now: float, decode: Callable[[Any], Any]) -> Any:
        # Decoded before it is removed: the script removes the entry only when it is still the one
        # decoded (same meta, same data), else hands back the current one to decode instead.
        self.check_writable()
        args: list[Any] = [float(now), _keys.canonical_text(key), "", ""]
        value: Any = MISSING
        while True:
            found = self._run(self.engine.s_pop, self._all_keys, args)
            if found is None:
                return MISSING
            if not isinstance(found, list):  # 1: removed, and it was the entry decoded
                return value
            meta, data = found
            value = decode(_data(meta, data))
            args[2:] = [meta, _sha1(data)]

    def popitem(self, now: float, decode: Callable[[Any], Any]) -> tuple[Any, Any] | None:
        # As pop: the newest live entry is decoded first, and removed only while it is still newest
        # and unchanged.
        self.check_writable()
        args: list[Any] = [float(now), "", "", ""]
        item: tuple[Any, Any] | None = None
        while True:
            found = self._run(self.engine.s_popitem, self._all_keys, args)
            if found is None:
                return None
            if not isinstance(found, list):
                return item
            canonical, meta, data = found
            item = (_stored_key(meta), decode(_data(meta, data)))
            args[1:] = [canonical, meta, _sha1(data)]

    def setdefault(self, key: Any, default: Callable[[], Any], now: float, expires: float | None,
                   decode: Callable[[Any], Any]) -> Any:
        self.check_writable()
        # The default is encoded only for a key that is missing: read first; the script below
        # still decides atomically (a key written meanwhile wins, and its value is returned).
        entry = self.entry(key, now)
        if entry is not None:
            return decode(entry[1])
        data = default()
        found = self._run(self.engine.s_setdefault, self._all_keys,
                          [float(now), _expires(expires), _keys.canonical_text(key), _meta(key, data), data])
        return MISSING if found[0] == 0 else decode(_data(found[1], found[2]))

    def modify(self, key: Any, change: Callable[[Any], tuple[Any, Any]], now: float,
               expires: Any = KEEP) -> Any:
        """Optimistic: read the entry (one script), ``change`` it in the client, and write with a
        script that lands only if the entry is still the one read (same meta, same SHA-1 of its
        data, or still no live entry); otherwise ``change`` runs again on the entry the script hands
        back.  Gives up with :class:`~kvlite.errors.StoreLocked` after ``timeout`` seconds of lost
        races (see :meth:`Table.modify`)."""
        if type(key) is str:
            _keys.check_text(key)
        self.check_writable()
        canonical = _keys.canonical_text(key)
        ttl = "k" if expires is KEEP else _expires(expires)
        found = self._get_all([key], now, True)[0]
        state: tuple[bytes, bytes] | None = None if found is None else (found[0], found[1])
        deadline = time.monotonic() + max(self.engine.timeout, 1.0)
        while True:
            new, result = change(MISSING if state is None else _data(*state))
            if new is MISSING:
                return result
            seen = ("", "") if state is None else (state[0], _sha1(state[1]))
            answer = self._run(self.engine.s_modify, self._all_keys,
                               [float(now), canonical, *seen, _meta(key, new), new, ttl])
            if not isinstance(answer, list):
                if answer == 1:
                    return result
                state = None
            else:
                state = (answer[0], answer[1])
            if time.monotonic() > deadline:
                raise StoreLocked(f"{self.engine.where}: the entry kept changing under this call for "
                                  f"longer than the timeout ({self.engine.timeout:g} s)")

    # -- many keys ----------------------------------------------------------------------------

    def put_many(self, pairs: Iterable[Any], encode: Callable[[Any], Any], now: float,
                 expires: float | None) -> int:
        entries = [(_keys.normalize(key), encode(value)) for key, value in pairs]  # all checked before writing
        self._put_all(entries, now, expires)
        return len(entries)

    def get_many(self, keys: list[Any], now: float) -> list[Any]:
        """:meth:`get` of each key in one atomic read (one script)."""
        return [MISSING if found is None else _data(found[0], found[1])
                for found in self._get_all(keys, now, True)]

    def expiry_many(self, keys: list[Any], now: float) -> list[Any]:
        """:meth:`expiry` of each key in one atomic read (one script, no values read)."""
        return [MISSING if found is None else found[2] for found in self._get_all(keys, now, False)]

    def delete_many(self, keys: list[Any], now: float) -> int:
        self.check_writable()
        return int(self._run(self.engine.s_delete_all, self._all_keys,
                             [float(now), *map(_keys.canonical_text, keys)]))

    # -- the whole collection -----------------------------------------------------------------

    def _pages(self, reverse: bool, with_data: bool) -> Iterator[list[Any]]:
        """Pages of the page script's output (without the position), in order, until the end.

        Each page is its own atomic read on the clock at that moment.  Only the entries there
        when the iteration began are read (forwards, up to the newest position then; an entry
        added meanwhile comes after it), so adding keys in the loop cannot make it endless;
        backwards, new entries are behind the start anyway."""
        self.check()
        bound = "+inf" if reverse else "-inf"
        end = "-inf"
        if not reverse:
            newest = self.engine.call(self.engine.client.zrevrange, self._all_keys[0], 0, 0, withscores=True)
            end = repr(float(newest[0][1])) if newest else "-inf"
        flags = ["1" if reverse else "0", PAGE, "1" if with_data else "0", end]
        clock = self.engine.clock
        while True:
            self.check()
            page = self._run(self.engine.s_page, self._all_keys, [float(clock()), bound, *flags])
            if not page:
                return
            bound = "(" + _text(page[0])
            yield page[1:]

    def keys(self, reverse: bool) -> Iterator[Any]:
        """Every live key, in pages of :data:`PAGE` keys; no values read."""
        for page in self._pages(reverse, False):
            for meta in page:
                yield _stored_key(meta)

    def items(self, reverse: bool, decode: Callable[[Any], Any] | None) -> Iterator[tuple[Any, Any]]:
        if decode is None:
            serializer = self.serializer
            decode = lambda data: _serializers.decode(serializer, data)
        for page in self._pages(reverse, True):
            for i in range(0, len(page), 2):
                meta = page[i]
                yield _stored_key(meta), decode(_data(meta, page[i + 1]))

    def count(self, now: float) -> int:
        self.check()
        return int(self._run(self.engine.s_count, self._count_keys, [float(now)])[0])

    def clear(self) -> None:
        self.check_writable()
        self._run(self.engine.s_clear, self._all_keys, [])

    def purge(self, now: float) -> int:
        self.check_writable()
        purged = int(self._run(self.engine.s_purge, self._all_keys, [float(now)]))
        self.expirations += purged
        return purged

    def sizes(self, now: float) -> tuple[int, int, int]:
        self.check()
        live, expired = (int(n) for n in self._run(self.engine.s_count, self._count_keys, [float(now)]))
        size = 0
        try:  # streamed with HSCAN (not one snapshot): stats only
            for _, value in self.engine.client.hscan_iter(self._all_keys[2], count=PAGE):
                size += len(value)
        except _redis.exceptions.RedisError as exc:
            raise _translate(exc, self.engine.where) from exc
        return live, size, expired
