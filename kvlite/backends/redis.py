"""``redis://`` / ``valkey://`` — kvlite collections on a Redis or Valkey server.

``kvlite.open("redis://host:6379/0?prefix=myapp")`` (``rediss://`` for TLS;
``valkey://`` and ``valkeys://`` are the same as ``redis://`` / ``rediss://``)
gives the full kvlite Store / Collection / DictView / query API on a server
that several processes and machines share.  Needs redis-py
(redis-py: kvlite's ``redis`` extra).

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
type (see :func:`kvlite.backends.base.canonical_key` / ``key_to_text``).

Atomicity: every primitive that touches more than one Redis key is one Lua
script (``EVALSHA``), so each call, including ``put_many``, ``delete_many``,
``setdefault``, ``pop`` and ``popitem``, is atomic: other clients see all of
it or none of it.  Scripts check everything before their first write (Redis
does not roll a script back).  ``transaction()`` across several calls raises
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

A dropped collection: every script checks the collection's ``seq`` key first,
so every call through an old object (reads, writes, ``clear``,
``purge_expired``) raises :class:`~kvlite.errors.CollectionDropped`, as on
SQLite; ``store.collection(name)`` reads the registry every
time and gives the current collection of that name.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .. import keys as _keys
from .. import serializers as _serializers
from ..errors import CollectionDropped, KvliteError, NotSupported, ReadOnlyError, StoreFull
from ..ttl import remaining
from .base import MISSING, BackendCollection, BackendStore, validate_settings

try:  # an optional extra: the module imports without it, opening a store explains what to install
    import redis as _redis
except ImportError:  # pragma: no cover - exercised only without the extra
    _redis = None  # type: ignore[assignment]

__all__ = ["PAGE", "PURGE_BATCH", "RedisCollection", "RedisStore"]

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

# ARGV: now, canonical.  -> {meta, data} of the live entry removed, or nil.
_DELETE = _WRITE_PRELUDE + """
local c = ARGV[2]
local m = redis.call('HGET', meta, c)
if not m then return false end
local live = not expired(c)
local v = redis.call('HGET', data, c)
remove(c)
if live then return {m, v} end
return false
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

# ARGV: now.  -> {meta, data} of the newest live entry, removed; nil when there is none.
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
    remove(c)
    return {m, v}
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

# KEYS: order, meta, data, exp, seq.  ARGV: now.  -> entries removed.
_PURGE = _PRELUDE + _CHECK_EXISTS + """
local total = 0
while true do
  local n = purge(1000)
  total = total + n
  if n < 1000 then return total end
end
"""

# KEYS: meta, data, exp, seq.  ARGV: now, canonicals...  -> (meta, data, expires_at) per key, nil where none.
_GET = _CHECK_EXISTS + """
local meta, data, exp = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
  local c = ARGV[i]
  local e = redis.call('ZSCORE', exp, c)
  local m = false
  local v = false
  if not (e and tonumber(e) <= now) then
    m = redis.call('HGET', meta, c)
    if m then v = redis.call('HGET', data, c) else e = false end
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


class RedisStore(BackendStore):
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

    def __init__(self, url: str = "redis://localhost:6379/0", *,
                 serializer: str | _serializers.Serializer = "json", clock: Callable[[], float] = time.time,
                 readonly: bool = False, durability: str = "normal", timeout: float = 30.0) -> None:
        if _redis is None:
            raise NotSupported("the Redis backend needs redis-py: pip install redis")
        seconds = validate_settings(durability, timeout)
        client_url, prefix = parse_url(url)
        super().__init__(_redacted(url), serializer=serializer, clock=clock, readonly=readonly)
        self.durability = durability
        self.timeout = seconds
        self.prefix = prefix
        self._where = f"Redis at {_redacted(client_url)}"
        self._registry = f"{prefix}:registry"
        self._registry_order = f"{prefix}:registry:order"
        self._registry_seq = f"{prefix}:registry:seq"
        self._client = _redis.Redis.from_url(
            client_url, socket_timeout=timeout or None, socket_connect_timeout=timeout or None,
            client_name="kvlite")
        register = self._client.register_script
        self._s_put, self._s_delete, self._s_delete_all = register(_PUT), register(_DELETE), register(_DELETE_ALL)
        self._s_popitem, self._s_setdefault, self._s_purge = (register(_POPITEM), register(_SETDEFAULT),
                                                              register(_PURGE))
        self._s_get, self._s_page, self._s_count = register(_GET), register(_PAGE), register(_COUNT)
        self._s_clear = register(_CLEAR)
        self._s_registry_create, self._s_registry_drop = register(_REGISTRY_CREATE), register(_REGISTRY_DROP)
        try:
            self._call(self._client.ping)
            if durability == "full":
                self._check_full_durability()
        except BaseException:
            self._client.close()
            raise

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with redis-py errors as kvlite errors."""
        try:
            return fn(*args, **kwargs)
        except _redis.exceptions.RedisError as exc:
            raise _translate(exc, self._where) from exc

    def _check_full_durability(self) -> None:
        try:
            config = self._client.config_get("append*")
        except _redis.exceptions.RedisError as exc:
            raise NotSupported(f"durability='full' needs to read the server's persistence settings "
                               f"(CONFIG GET), which {self._where} refuses: {exc}") from exc
        settings = {_text(k): _text(v) for k, v in config.items()}
        if settings.get("appendonly") != "yes" or settings.get("appendfsync") != "always":
            raise NotSupported(
                "durability='full' needs a server running with appendonly yes and appendfsync always "
                f"(this one has appendonly={settings.get('appendonly')!r}, "
                f"appendfsync={settings.get('appendfsync')!r}); use durability='normal' or change the server")

    # -- registry primitives ------------------------------------------------------------------

    @staticmethod
    def _parse_registry(value: Any) -> tuple[int, str]:
        number, _, serializer = _text(value).partition(":")
        return int(number), serializer

    def _registry_get(self, name: str) -> tuple[Any, str] | None:
        found = self._call(self._client.hget, self._registry, name)
        return None if found is None else self._parse_registry(found)

    def _registry_create(self, name: str, serializer: str) -> tuple[Any, str]:
        number = self._call(self._client.incr, self._registry_seq)
        value = self._call(self._s_registry_create,
                           keys=[self._registry, self._registry_order, self._collection_keys(number)[4]],
                           args=[name, serializer, number])
        return self._parse_registry(value)

    def _registry_names(self) -> list[str]:
        return [_text(name) for name in self._call(self._client.zrange, self._registry_order, 0, -1)]

    def _registry_drop(self, name: str) -> bool:
        while True:
            found = self._call(self._client.hget, self._registry, name)
            if found is None:
                return False
            number, _ = self._parse_registry(found)
            done = self._call(self._s_registry_drop,
                              keys=[self._registry, self._registry_order, *self._collection_keys(number)],
                              args=[name, found])
            if done >= 0:
                return bool(done)

    def _collection_keys(self, number: int) -> list[str]:
        """``[order, meta, data, exp, seq]`` of collection ``number``."""
        base = f"{self.prefix}:c:{int(number)}:"
        return [base + "order", base + "meta", base + "data", base + "exp", base + "seq"]

    def _make_collection(self, name: str, handle: Any, serializer: _serializers.Serializer,
                         model: type | None) -> RedisCollection:
        return RedisCollection(self, name, handle, serializer, model)

    def _close(self) -> None:
        self._client.close()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


class RedisCollection(BackendCollection):
    """A collection of a :class:`RedisStore` (see the module docstring for its Redis keys)."""

    store: RedisStore

    def __init__(self, store: RedisStore, name: str, number: int, serializer: _serializers.Serializer,
                 model: type | None = None) -> None:
        super().__init__(store, name, serializer, model)
        self.number = number
        self._all_keys = store._collection_keys(number)
        order, meta, data, exp, seq = self._all_keys
        # Every script gets the collection's seq key last: it exists exactly as long as the collection.
        self._read_keys = [meta, data, exp, seq]
        self._count_keys = [order, exp, seq]

    # -- encoding ---------------------------------------------------------------------------

    @staticmethod
    def _meta(key: Any, data: Any) -> str:
        return ("t" if isinstance(data, str) else "b") + _keys.tagged_text(key)

    @staticmethod
    def _unpack(meta: bytes, data: bytes) -> tuple[Any, Any]:
        """``(stored key, data as the serializer gave it)`` from a meta and data field."""
        key = _keys.from_tagged_text(meta[1:].decode("utf-8"))
        return key, data.decode("utf-8") if meta[0] == _TEXT else data

    def _run(self, script: Any, keys: list[str], args: Sequence[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except _redis.exceptions.RedisError as exc:
            if isinstance(exc, _redis.exceptions.ResponseError) and _DROPPED in str(exc):
                self._dropped = True
                raise self._dropped_error() from exc
            raise _translate(exc, self.store._where) from exc

    @staticmethod
    def _expires(expires: float | None) -> Any:
        return "" if expires is None else float(expires)

    # -- primitives ---------------------------------------------------------------------------

    def _get_all(self, keys: list[Any], now: float) -> list[tuple[Any, float | None, Any] | None]:
        """:meth:`_get` of every key, in one atomic read."""
        if not keys:
            return []
        flat = self._run(self.store._s_get, self._read_keys, [float(now), *map(_keys.canonical_text, keys)])
        out: list[tuple[Any, float | None, Any] | None] = []
        for i in range(0, len(flat), 3):
            meta, data, exp = flat[i:i + 3]
            if meta is None:
                out.append(None)
            else:
                stored, value = self._unpack(meta, data)
                out.append((value, _float(exp), stored))
        return out

    def _get(self, key: Any, now: float) -> tuple[Any, float | None, Any] | None:
        return self._get_all([key], now)[0]

    def _put(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        self._put_all([(key, data)], now, expires)

    def _put_all(self, entries: list[tuple[Any, Any]], now: float, expires: float | None) -> None:
        args: list[Any] = [float(now), self._expires(expires)]
        for key, data in entries:
            args += (_keys.canonical_text(key), self._meta(key, data), data)
        self._run(self.store._s_put, self._all_keys, args)

    def _delete(self, key: Any, now: float) -> Any:
        found = self._run(self.store._s_delete, self._all_keys, [float(now), _keys.canonical_text(key)])
        return MISSING if found is None else self._unpack(*found)[1]

    def _delete_all(self, keys: list[Any], now: float) -> int:
        return int(self._run(self.store._s_delete_all, self._all_keys, [float(now), *map(_keys.canonical_text, keys)]))

    def _popitem(self, now: float) -> tuple[Any, Any] | None:
        found = self._run(self.store._s_popitem, self._all_keys, [float(now)])
        return None if found is None else self._unpack(*found)

    def _setdefault(self, key: Any, data: Any, now: float, expires: float | None) -> Any:
        found = self._run(self.store._s_setdefault, self._all_keys,
                          [float(now), self._expires(expires), _keys.canonical_text(key), self._meta(key, data), data])
        return MISSING if found[0] == 0 else self._unpack(found[1], found[2])[1]

    def _pages(self, now: float, reverse: bool, with_data: bool) -> Iterator[list[Any]]:
        """Pages of the page script's output (without the position), in order, until the end.

        Only the entries there when the iteration began are read (forwards, up to the newest
        position then; an entry added meanwhile comes after it), so adding keys in the loop
        cannot make it endless; backwards, new entries are behind the start anyway."""
        bound = "+inf" if reverse else "-inf"
        end = "-inf"
        if not reverse:
            newest = self.store._call(self.store._client.zrevrange, self._all_keys[0], 0, 0, withscores=True)
            end = repr(float(newest[0][1])) if newest else "-inf"
        flags = ["1" if reverse else "0", PAGE, "1" if with_data else "0", end]
        while True:
            self._check_read()
            page = self._run(self.store._s_page, self._all_keys, [float(now), bound, *flags])
            if not page:
                return
            bound = "(" + _text(page[0])
            yield page[1:]

    def _entries(self, now: float, reverse: bool) -> Iterator[tuple[Any, Any]]:
        unpack = self._unpack
        for page in self._pages(now, reverse, True):
            for i in range(0, len(page), 2):
                yield unpack(page[i], page[i + 1])

    def _count(self, now: float) -> int:
        return int(self._run(self.store._s_count, self._count_keys, [float(now)])[0])

    def _clear(self) -> None:
        self._run(self.store._s_clear, self._all_keys, [])

    def _purge(self, now: float) -> int:
        return int(self._run(self.store._s_purge, self._all_keys, [float(now)]))

    def _sizes(self, now: float) -> tuple[int, int, int]:
        live, expired = (int(n) for n in self._run(self.store._s_count, self._count_keys, [float(now)]))
        size = 0
        try:  # streamed with HSCAN (not one snapshot): stats only
            for _, value in self.store._client.hscan_iter(self._all_keys[2], count=PAGE):
                size += len(value)
        except _redis.exceptions.RedisError as exc:
            raise _translate(exc, self.store._where) from exc
        return live, size, expired

    # -- faster, single-snapshot versions of base methods --------------------------------------

    def keys(self, *, reverse: bool = False) -> Iterator[Any]:
        """Every live key, in insertion order (or reversed); pages of :data:`PAGE` keys, no values read."""
        self._check_read()
        now = self.store.now()
        for page in self._pages(now, reverse, False):
            for meta in page:
                yield _keys.from_tagged_text(meta[1:].decode("utf-8"))

    def get_many(self, keys: Any, default: Any = None) -> list[Any]:
        """Values for ``keys``, in the same positions (``default`` where missing); one atomic read."""
        normalized = _keys.normalize_many(keys, "get_many")
        self._check_read()
        found = self._get_all(normalized, self.store.now())
        self._n_gets += len(normalized)
        out = []
        for entry in found:
            self._n_hits += entry is not None
            out.append(default if entry is None else self._decode(entry[0]))
        return out

    def ttl_many(self, keys: Any) -> list[float | None]:
        """:meth:`ttl` for each key, in the same positions; one atomic read."""
        normalized = _keys.normalize_many(keys, "ttl_many")
        self._check_read()
        now = self.store.now()
        return [None if entry is None else remaining(entry[1], now)
                for entry in self._get_all(normalized, now)]
