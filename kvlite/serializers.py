"""Serializers: how values become bytes or text in the file, and back.

A serializer is a small object with a ``name`` (recorded per collection in the
file), ``dumps(value) -> str | bytes`` and ``loads(data) -> value``.  The
built-in ones are:

========== ======================================= ==========================
name       values it keeps                         needs
========== ======================================= ==========================
``json``   JSON types (tuples come back as lists)  core (orjson)
``jsonb``  the same as ``json``, stored as JSONB     core (SQLite >= 3.45)
``pickle`` any picklable object, exactly           core (stdlib)
``msgpack`` msgpack types (tuples become lists)    ``pip install msgpack``
``cbor2``  CBOR types (sets, tuples as lists, ...) ``pip install cbor2``
========== ======================================= ==========================

Only ``json`` (SQLite TEXT) and ``jsonb`` (SQLite's binary JSON) are stored in a
form SQLite's JSON functions read, so only those collections get SQL push-down
for queries and expression indexes.  ``jsonb`` trades reads for queries: a
``json_extract`` scan over JSONB runs about 2.4x faster, while every read pays
SQLite's ``json(value)`` conversion back to text (see ``docs/performance.md``).

Register your own with :func:`register`::

    class Upper(kvlite.Serializer):
        name = "upper-text"
        def dumps(self, value): return str(value).upper()
        def loads(self, data): return data

    kvlite.register_serializer(Upper())

Security: ``pickle`` runs code when it loads.  Opening a collection never
picks a serializer from the file: it uses the one the caller asked for
(``json`` by default) and refuses a collection recorded with another one
(:class:`~kvlite.errors.SerializerMismatch`), so a hostile file cannot make
kvlite unpickle anything unless the caller passed ``serializer="pickle"``.
(:func:`kvlite.copy` reads each collection with its recorded serializer, and
refuses pickle unless given ``trust_pickle=True``.)
"""

from __future__ import annotations

import enum
import math
import pickle
import threading
import zlib
from typing import Any, Callable, ClassVar

import orjson

from .errors import CorruptStore, KvliteError, SerializationError, UnknownSerializer

__all__ = ["Serializer", "JSONSerializer", "JSONBSerializer", "PickleSerializer", "register", "get", "names",
           "MAX_DECOMPRESSED_SIZE"]


class Serializer:
    """Base class for serializers.

    Subclasses set :attr:`name` and implement :meth:`dumps` and :meth:`loads`.
    ``dumps`` raises any exception for a value it cannot encode; kvlite turns it
    into :class:`~kvlite.errors.SerializationError` and writes nothing.
    """

    #: The name recorded in the file. Must be unique in the registry.
    name: ClassVar[str] = ""
    #: True when ``dumps`` returns JSON text that SQLite's JSON functions can
    #: read; enables query push-down and expression indexes.
    json: ClassVar[bool] = False
    #: SQL around the bound ``dumps`` output when it is stored (``{}`` is the
    #: parameter), and around the column when it is read back (``{}`` is the
    #: column): stored as it is unless a serializer says otherwise (``jsonb``).
    #: Engines other than SQLite ignore them and store ``dumps`` output.
    sql_in: ClassVar[str] = "{}"
    sql_out: ClassVar[str] = "{}"

    def dumps(self, value: Any) -> str | bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def loads(self, data: str | bytes) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _has_non_finite(value: Any) -> bool:
    """True when ``value`` holds a NaN or an infinity anywhere (JSON cannot keep them),
    including as an ``enum.Enum`` member's value (orjson encodes a member as its value)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(dict.values(item))  # what the dict holds, whatever a subclass's values() says
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, enum.Enum):
            stack.append(item.value)
    return False


#: orjson refuses a value of more nested dicts and lists than this; :func:`_base_json` refuses the
#: same depth (and so a deeper ``tuple`` subclass, which orjson would not check).
_MAX_JSON_DEPTH = 254


def _base_json(value: Any, depth: int, done: dict[int, Any]) -> Any:
    """``value`` (``depth`` containers down) with every subclass of a JSON type made its base
    type, as JSON stores it: a subclass of ``str``, ``int``, ``float``, ``dict``, ``list`` or
    ``tuple`` (a ``NamedTuple``) becomes a plain one, a ``str`` subclass dict key a plain
    ``str``, and an ``enum.Enum`` member its value (as orjson writes it).  Their contents are
    taken as the base type holds them (``str.__str__``, ``float.__float__``, ``dict.items``,
    ...), not through methods a subclass may override.  Anything else is left as it is, for
    orjson to accept or refuse.  ``done`` maps the ``id`` of each container already copied to its
    copy, so a container that appears many times is walked once.

    :raises ValueError: more than :data:`_MAX_JSON_DEPTH` nested containers (or a cycle).
    """
    cls = type(value)
    if cls is str or cls is int or cls is float or cls is bool or value is None:
        return value
    copied = done.get(id(value))
    if copied is not None:
        return copied
    if isinstance(value, enum.Enum):
        return _base_json(value.value, depth, done)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if not isinstance(value, (dict, list, tuple)):
        return value
    if depth >= _MAX_JSON_DEPTH:
        raise ValueError("Recursion limit reached")  # orjson's words for the same refusal
    out: Any
    if isinstance(value, dict):
        out = done[id(value)] = {}
        for key, item in dict.items(value):
            out[str.__str__(key) if type(key) is not str and isinstance(key, str) else key] = \
                _base_json(item, depth + 1, done)
        return out
    items = list.copy(value) if isinstance(value, list) else tuple.__getitem__(value, slice(None))
    out = done[id(value)] = []
    for item in items:  # a loop, not a comprehension: one Python frame per level
        out.append(_base_json(item, depth + 1, done))
    return out


def _orjson_dumps(value: Any, option: int) -> bytes:
    """``orjson.dumps(value)``, with subclasses of JSON types stored as their base type.

    orjson itself takes subclasses of ``str``, ``int``, ``dict`` and ``list`` but refuses those
    of ``float`` and ``tuple`` and ``str`` subclasses as dict keys; kvlite has one rule for all
    (the rule of keys, too): a subclass is stored as its base type.  Only a value orjson refuses
    is walked (:func:`_base_json`) and encoded again."""
    try:
        return orjson.dumps(value, option=option)
    except TypeError:  # orjson.JSONEncodeError: maybe only a subclass orjson does not take
        return orjson.dumps(_base_json(value, 0, {}), option=option)


class JSONSerializer(Serializer):
    """JSON through orjson, stored as SQLite TEXT.

    JSON types are stored (``dict`` with ``str`` keys, ``list``, ``tuple``
    (read back as ``list``), ``str``, ``int`` (64-bit), ``float``, ``bool``,
    ``None``), and their subclasses as the base type (a ``NamedTuple`` as a
    ``list``, a ``str`` subclass key as ``str``, ``class Price(float)`` as
    ``float``).  NaN and infinities, sets, bytes, datetimes, dataclasses and
    other objects raise :class:`SerializationError` instead of being silently
    changed.  Two exceptions, because orjson encodes them natively and
    checking every value for them would slow every write: ``uuid.UUID`` is
    stored as its text and an ``enum.Enum`` member as its value, and they come
    back as that ``str`` / value.
    """

    name = "json"
    json = True
    _OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME

    def dumps(self, value: Any) -> str:
        text = _orjson_dumps(value, self._OPTIONS).decode()
        # orjson writes NaN/Infinity as null; refuse rather than change the value.  (Searching
        # the str is about 2.5x cheaper than searching orjson's bytes, measured on 200-byte documents.)
        if "null" in text and _has_non_finite(value):
            raise ValueError("NaN and infinity are not valid JSON")
        return text

    def loads(self, data: str | bytes) -> Any:
        return orjson.loads(data)


class JSONBSerializer(JSONSerializer):
    """The values of ``json``, stored in SQLite's binary JSONB format.

    ``dumps``/``loads`` are ``json``'s (orjson text); SQLite converts on the
    way in (``jsonb(?)``) and out (``json(value)``).  Queries and expression
    indexes read JSONB without parsing text, so a filter that scans the
    collection runs about 2.4x faster than over ``json``; point reads cost
    about the same and a full iteration about a third more.  Pick it per
    collection for data you query more than you read back whole.
    """

    name = "jsonb"
    sql_in = "jsonb({})"
    sql_out = "json({})"


class PickleSerializer(Serializer):
    """``pickle`` (highest protocol): keeps any picklable object exactly.

    Only use it on files you trust: loading a pickle can run arbitrary code.
    """

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: str | bytes) -> Any:
        return pickle.loads(data)  # noqa: S301 - the caller asked for pickle explicitly


class MsgpackSerializer(Serializer):
    """msgpack (the ``msgpack`` package, kvlite's ``msgpack`` extra); tuples come back as lists."""

    name = "msgpack"

    def __init__(self) -> None:
        import msgpack

        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb

    def dumps(self, value: Any) -> bytes:
        return self._packb(value, use_bin_type=True)

    def loads(self, data: str | bytes) -> Any:
        return self._unpackb(data, raw=False, strict_map_key=False)


class CBORSerializer(Serializer):
    """CBOR through cbor2 (the ``cbor2`` package, kvlite's ``cbor2`` extra)."""

    name = "cbor2"

    def __init__(self) -> None:
        import cbor2

        self._dumps = cbor2.dumps
        self._loads = cbor2.loads

    def dumps(self, value: Any) -> bytes:
        return self._dumps(value)

    def loads(self, data: str | bytes) -> Any:
        return self._loads(data)


#: The most bytes a compressed value holds uncompressed: SQLite's length limit for one string or
#: BLOB (``SQLITE_MAX_LENGTH``, 1,000,000,000 by default, as in the SQLite that apsw bundles), the
#: largest value kvlite writes uncompressed.  A compressed serializer refuses to compress more
#: (:class:`~kvlite.errors.SerializationError`, nothing written), and raises
#: :class:`~kvlite.errors.CorruptStore` for stored data that would expand beyond it (a compression
#: bomb in a damaged or hostile file), having decompressed no more than this much.  Read at every
#: call: lower it to bound the memory one value of an untrusted file can take.
MAX_DECOMPRESSED_SIZE = 1_000_000_000

# zlib output is produced (and held) in pieces of at most this many bytes, so refusing a bomb
# needs no more than MAX_DECOMPRESSED_SIZE plus one piece.
_INFLATE_PIECE = 64 << 20


def _too_large(codec: str, limit: int) -> CorruptStore:
    return CorruptStore(f"a stored {codec} value expands to more than {limit:,} bytes "
                        "(kvlite.serializers.MAX_DECOMPRESSED_SIZE), more than kvlite writes: "
                        "the file is damaged or hostile")


def _inflate(data: bytes) -> bytes:
    """``zlib.decompress(data)`` that never produces more than :data:`MAX_DECOMPRESSED_SIZE`
    bytes: beyond it, :class:`~kvlite.errors.CorruptStore`.  Like ``zlib.decompress``, a
    truncated stream raises ``zlib.error`` and bytes after the end of the stream are ignored."""
    limit = MAX_DECOMPRESSED_SIZE
    inflater = zlib.decompressobj()
    pieces = []
    size = 0
    while True:
        wanted = min(_INFLATE_PIECE, limit + 1 - size)
        piece = inflater.decompress(data, wanted)
        size += len(piece)
        if size > limit:
            raise _too_large("zlib", limit)
        pieces.append(piece)
        if inflater.eof:
            break
        data = inflater.unconsumed_tail
        if not data and len(piece) < wanted:  # all input used, output not full: the stream stops short
            raise zlib.error("Error -5 while decompressing data: incomplete or truncated stream")
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class _Zstd(threading.local):
    """zstandard's compression and decompression contexts, one pair per thread: a context used
    by two threads at once corrupts memory (python-zstandard contexts are not thread-safe)."""

    def __init__(self) -> None:
        import zstandard

        self.frame_content_size = zstandard.frame_content_size
        self.compress = zstandard.ZstdCompressor(level=3).compress
        self.decompress = zstandard.ZstdDecompressor().decompress


class CompressedSerializer(Serializer):
    """Another serializer's output, compressed: ``"json+zlib"``, ``"pickle+zstd"``, ...

    The whole name (``"json+zlib"``) is recorded in the file like any
    serializer name.  Codecs: ``zlib`` (stdlib) and ``zstd`` (the ``zstandard``
    package, kvlite's ``zstd`` extra).  Stored as BLOB: one byte, ``t`` when the inner serializer
    gave text (stored as its UTF-8) or ``b`` for bytes, then the compressed
    data; so queries on a compressed collection run in Python (no SQL
    push-down, no expression indexes).

    The inner serializer's output is at most :data:`MAX_DECOMPRESSED_SIZE` bytes (more is a
    :class:`~kvlite.errors.SerializationError`), and stored data that would decompress to more
    raises :class:`~kvlite.errors.CorruptStore` without being decompressed beyond it.
    """

    json = False

    def __init__(self, inner: Serializer, codec: str) -> None:
        if codec == "zlib":
            self._compress: Any = lambda data: zlib.compress(data, 6)
            self._decompress: Any = _inflate
        elif codec == "zstd":
            try:
                import zstandard  # noqa: F401
            except ImportError as exc:
                raise UnknownSerializer("codec 'zstd' needs the zstandard package: pip install zstandard") from exc
            self._zstd = _Zstd()
            self._compress = lambda data: self._zstd.compress(data)
            self._decompress = self._unzstd
        else:
            raise UnknownSerializer(f"unknown compression codec {codec!r}; known: zlib, zstd")
        if inner.sql_in != "{}" or inner.sql_out != "{}":
            raise UnknownSerializer(
                f"{inner.name!r} cannot be compressed: SQLite itself converts its values on the way in "
                "and out (compress 'json' instead)")
        self.inner = inner
        self.codec = codec
        self.name = f"{inner.name}+{codec}"  # type: ignore[misc]

    def _unzstd(self, data: bytes) -> bytes:
        """The first zstd frame of ``data``, decompressed.  kvlite writes the uncompressed size in
        the frame header; zstandard allocates that size and refuses a frame that holds more or less
        (and one without a size), so a size over the limit is refused before anything is allocated."""
        zstd = self._zstd
        limit = MAX_DECOMPRESSED_SIZE
        if zstd.frame_content_size(data) > limit:
            raise _too_large("zstd", limit)
        return zstd.decompress(data)  # type: ignore[no-any-return]

    # The first stored byte says whether the inner serializer gave text or bytes, so loads()
    # hands it back the same type.
    def dumps(self, value: Any) -> bytes:
        data = self.inner.dumps(value)
        kind, raw = (b"t", data.encode("utf-8")) if isinstance(data, str) else (b"b", data)
        if len(raw) > MAX_DECOMPRESSED_SIZE:
            raise ValueError(f"{self.name} keeps values of up to {MAX_DECOMPRESSED_SIZE:,} bytes before "
                             f"compression (kvlite.serializers.MAX_DECOMPRESSED_SIZE); this one is {len(raw):,}")
        return kind + self._compress(raw)

    def loads(self, data: str | bytes) -> Any:
        kind, raw = bytes(data[:1]), self._decompress(data[1:])
        return self.inner.loads(raw.decode("utf-8") if kind == b"t" else raw)


_registry: dict[str, Serializer] = {}
_lazy: dict[str, tuple[type[Serializer], str]] = {
    "msgpack": (MsgpackSerializer, "msgpack"),
    "cbor2": (CBORSerializer, "cbor2"),
}


def register(serializer: Serializer, *, replace: bool = False) -> Serializer:
    """Make ``serializer`` available by its ``name`` to :func:`kvlite.open` and
    :meth:`kvlite.Store.collection`.  Returns it.

    Raises ``ValueError`` when the name is empty or already taken (unless
    ``replace=True``).
    """
    name = serializer.name
    if not isinstance(name, str) or not name:
        raise ValueError("a serializer needs a non-empty str name")
    if "+" in name and not isinstance(serializer, CompressedSerializer):
        raise ValueError(f"serializer names cannot contain '+' (it is reserved for compression, "
                         f"as in 'json+zlib'): {name!r}")
    if not replace and (name in _registry or name in _lazy):
        raise ValueError(f"a serializer named {name!r} is already registered")
    _lazy.pop(name, None)
    _registry[name] = serializer
    return serializer


def get(spec: str | Serializer) -> Serializer:
    """The serializer for ``spec`` (a registered name, or a :class:`Serializer`
    instance, which is registered on first use)."""
    if isinstance(spec, Serializer):
        known = _registry.get(spec.name)
        if known is None:
            return register(spec)
        return spec
    if not isinstance(spec, str):
        raise UnknownSerializer(f"serializer must be a name or a Serializer, not {type(spec).__name__}")
    found = _registry.get(spec)
    if found is not None:
        return found
    if spec in _lazy:
        cls, package = _lazy[spec]
        try:
            instance = cls()
        except ImportError as exc:
            raise UnknownSerializer(
                f"serializer {spec!r} needs the {package!r} package: pip install {package}"
            ) from exc
        _registry[spec] = instance
        _lazy.pop(spec, None)
        return instance
    if "+" in spec:
        base, _, codec = spec.rpartition("+")
        compressed = CompressedSerializer(get(base), codec)
        _registry[spec] = compressed
        return compressed
    raise UnknownSerializer(f"no serializer named {spec!r}; known: {', '.join(names())}")


def stand_in(name: str) -> Serializer:
    """A serializer that only carries ``name``: for reading what needs no decoding (keys, sizes)
    of a collection whose serializer is not registered in this process."""
    serializer = Serializer()
    serializer.name = name  # type: ignore[misc]
    return serializer


def names() -> list[str]:
    """Names of every registered (or installable built-in) serializer."""
    return sorted(set(_registry) | set(_lazy))


def encode_error(serializer: Serializer, value: Any, exc: Exception) -> SerializationError:
    """The :class:`SerializationError` for ``serializer.dumps(value)`` having raised ``exc``."""
    return SerializationError(f"{serializer.name} cannot encode a value of type {type(value).__name__}: {exc}")


def decode_error(serializer: Serializer, exc: Exception) -> KvliteError:
    """What a failed ``serializer.loads(data)`` raises: a kvlite error it raised itself (a
    compressed value past :data:`MAX_DECOMPRESSED_SIZE` is :class:`CorruptStore`) as it is,
    anything else as :class:`SerializationError` (the one "cannot decode" error)."""
    if isinstance(exc, KvliteError):
        return exc
    return SerializationError(f"{serializer.name} cannot decode a stored value: {exc}")


def decode(serializer: Serializer, data: str | bytes) -> Any:
    """``serializer.loads(data)``, with any failure as :func:`decode_error` gives it."""
    try:
        return serializer.loads(data)
    except KvliteError:
        raise
    except Exception as exc:  # a serializer may raise anything for bad data
        raise decode_error(serializer, exc) from exc


def encoder(serializer: Serializer) -> Callable[[Any], str | bytes]:
    """:func:`encode` for one serializer, as one function: for ``json``'s own ``dumps`` (which
    always returns valid text) a thinner one, since it runs once per value written."""
    if type(serializer).dumps is not JSONSerializer.dumps:  # not json's own dumps: every check
        return lambda value: encode(serializer, value)
    orjson_dumps, options = orjson.dumps, serializer._OPTIONS

    def encode_json(value: Any) -> str | bytes:  # JSONSerializer.dumps, one call frame less
        try:
            text: str = orjson_dumps(value, option=options).decode()
        except TypeError:  # maybe only a subclass orjson does not take: see _orjson_dumps
            try:
                text = orjson_dumps(_base_json(value, 0, {}), option=options).decode()
            except Exception as exc:
                raise encode_error(serializer, value, exc) from exc
        except Exception as exc:
            raise encode_error(serializer, value, exc) from exc
        if "null" in text and _has_non_finite(value):
            raise encode_error(serializer, value, ValueError("NaN and infinity are not valid JSON"))
        return text

    return encode_json


def encode(serializer: Serializer, value: Any) -> str | bytes:
    """``serializer.dumps(value)``, with any failure as :class:`SerializationError`."""
    try:
        data = serializer.dumps(value)
    except Exception as exc:  # a serializer may raise anything for a bad value
        raise encode_error(serializer, value, exc) from exc
    if not isinstance(data, (str, bytes)):
        raise SerializationError(f"serializer {serializer.name!r} returned {type(data).__name__}, not str or bytes")
    if type(data) is str and type(serializer).dumps is not JSONSerializer.dumps:
        # Text is stored as UTF-8: a lone surrogate cannot be.  (json's own dumps decodes
        # orjson's UTF-8 output, so only other serializers need the check.)
        try:
            data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SerializationError(
                f"serializer {serializer.name!r} returned text that is not valid Unicode: {exc}") from None
    return data


register(JSONSerializer())
register(JSONBSerializer())
register(PickleSerializer())
