"""``lmdb://FOLDER`` — a kvlite store in an LMDB environment (the ``lmdb`` extra).

``kvlite.open("lmdb://data/app")`` opens (creating it when missing; its parent
folder must exist) the LMDB environment in the folder ``data/app``
(``lmdb:///abs/path`` for an absolute path).  LMDB is a memory-mapped B+tree:
readers never block and are never blocked, one writer at a time (across
threads and processes), and point reads are several times cheaper than a
SQLite query.  It is the persistent store of *stones*; see
docs/backends/lmdb.md.

Layout (format 1):

- the named database ``kvlite`` is the registry: ``b"c:" + name`` ->
  ``b"<id>\\x00<serializer>"`` for each collection, ``b"\\x00next"`` (the next
  collection id; ids are never reused) and ``b"\\x00format"``;
- collection number ``N`` is the named database ``c<N>``, mapping each key's
  *sortable encoding* (below) to ``header + data`` (so key ranges are read in
  key order), and its part of the named database ``order``, mapping ``(N,
  insertion sequence number)`` (4 + 8 bytes, big-endian) to the key's
  encoding (so iteration is in insertion order);
- the header (``<BQd``) is flags (the key's type, whether it expires, whether
  the data is text, whether the full key follows), the entry's sequence number
  and its expiry time.

A key's encoding sorts as kvlite orders keys (numbers numerically, then
``str`` by code point, then ``bytes`` by byte) and is equal for keys Python
finds equal (``1``, ``1.0``, ``True``).  LMDB keys are at most 511 bytes: an
encoding longer than :data:`_PREFIX` bytes is stored as its first
:data:`_PREFIX` bytes and a SHA-256 of the whole (the whole follows the
header), and ranged reads sort such keys by their full form.

Map size: the environment starts with a map of ``map_size`` bytes (1 GiB of
address space; the file only grows as data is written) and doubles it when a
write finds it full, instead of failing: a single call is retried after the
map grew; a ``transaction()`` block grows the map first when it is over half
full (a block that writes more than the rest of the map raises
:class:`~kvlite.errors.StoreFull`, and nothing of it lands; the map is grown
after it, so running the block again eventually succeeds).  Growing waits
for this process's other reads to finish (LMDB remaps the file); another
process adopts the new size at its next transaction.

URL options: ``?map_size=BYTES`` (the initial map), ``?max_collections=N``
(default 250: LMDB keeps a fixed table of named databases, and every
transaction pays for its size -- 2,000 slots make a point read 3x slower; more
collections than that raises :class:`~kvlite.errors.StoreFull`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import struct
import threading
import time
import urllib.parse
import weakref
from typing import Any, Callable, Iterable, Iterator

try:
    import lmdb
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("lmdb:// stores need the lmdb package: pip install 'kvlite[lmdb]'") from exc

from .. import keys as _keys
from .. import serializers as _serializers
from ..errors import (
    CollectionDropped,
    CorruptStore,
    IncompatibleVersion,
    KvliteError,
    NotSupported,
    ReadOnlyError,
    StoreFull,
    StoreLocked,
)
from .base import KEEP, MISSING, Engine, Table, backup_folder

__all__ = ["LMDBEngine", "LMDBTable"]

FORMAT = 1
_DEFAULT_MAP_SIZE = 1 << 30
_DEFAULT_MAX_COLLECTIONS = 250
_PAGE = 256  # entries read per read transaction when iterating

_HEAD = struct.Struct("<BQd")  # flags, sequence number, expiry time
_HEAD_SIZE = _HEAD.size
_LEN = struct.Struct("<I")
_ORDER = struct.Struct(">IQ")  # collection id, sequence number: a key of the ``order`` database
_FRACTION = struct.Struct(">d")

# flags: the key's type in the low 3 bits, then
_STR, _BYTES, _INT, _FLOAT, _BOOL = range(5)
_EXPIRES = 8
_TEXT = 16
_LONG = 32

#: Key encodings longer than this are stored as their first _PREFIX bytes + a SHA-256 (<= 511).
_PREFIX = 478
_LONG_SIZE = _PREFIX + 32
_INVERT = bytes(255 - b for b in range(256))
# Where each kind of key begins and ends in the encoding's order.
_KIND_BOUNDS = {"number": (b"\x00", b"\x04"), "str": (b"\x04", b"\x05"), "bytes": (b"\x05", b"\x06")}


# -- keys ----------------------------------------------------------------------------------------

def _number(x: int | float) -> bytes:
    """An encoding of a number that sorts numerically and is equal for equal numbers: the
    integer part ``n = floor(x)`` (length-prefixed, big-endian; inverted when negative), then
    8 bytes of fraction ``x - n``.  For a negative non-integer the fraction ``x - n = 1 - g``
    (``g``: the fractional part of ``-x``) is often not a double (``-0.1``, ``-1e-20``), so
    the bytes of ``g`` are stored inverted instead (a larger ``g`` is a smaller ``x``; never
    all zero, which is the fraction of an integer)."""
    inverted = False
    if type(x) is float:
        if math.isinf(x):
            return b"\x03" if x > 0 else b"\x00"
        n = math.floor(x)
        if x < 0 and n != x:
            fraction = -x - (-n - 1)  # exact: -x minus its floor
            inverted = True
        else:
            fraction = (x - n) + 0.0  # exact for a double; + 0.0 turns -0.0 into 0.0
    else:
        n, fraction = int(x), 0.0
    if n >= 0:
        body = n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")
        head = bytes((2, len(body)))
    else:
        m = -n - 1  # 0 for -1: larger m sorts first, so its bytes are inverted
        body = m.to_bytes((m.bit_length() + 7) // 8 or 1, "big").translate(_INVERT)
        head = bytes((1, 255 - len(body)))
    tail = _FRACTION.pack(fraction)
    return head + body + (tail.translate(_INVERT) if inverted else tail)


def _parse_number(enc: bytes) -> tuple[int | float, float]:
    """``(integer part, value)`` of :func:`_number`'s encoding (``±inf, ±inf`` for infinities):
    the value is a float, exact."""
    first = enc[0]
    if first == 0 or first == 3:
        infinity = math.inf if first == 3 else -math.inf
        return infinity, infinity
    if first == 2:
        size = enc[1]
        n = int.from_bytes(enc[2:2 + size], "big")
        return n, float(n) + _FRACTION.unpack_from(enc, 2 + size)[0]
    size = 255 - enc[1]
    m = int.from_bytes(enc[2:2 + size].translate(_INVERT), "big")
    tail = enc[2 + size:2 + size + 8]
    if tail == bytes(8):
        return -m - 1, float(-m - 1)
    return -m - 1, -(float(m) + _FRACTION.unpack(tail.translate(_INVERT))[0])  # exact: -x's floor + fraction


def _encode(key: Any) -> tuple[bytes, int]:
    """``(sortable encoding, type code)`` of a normalised key (a ``str`` may be unchecked)."""
    kind = type(key)
    if kind is str:
        try:
            return b"\x04" + key.encode("utf-8"), _STR
        except UnicodeEncodeError:
            _keys.check_text(key)  # raises InvalidKey naming the lone surrogate
            raise
    if kind is bytes:
        return b"\x05" + key, _BYTES
    if kind is bool:
        return _number(int(key)), _BOOL
    return _number(key), (_INT if kind is int else _FLOAT)


def _decode(enc: bytes, code: int) -> Any:
    """The key :func:`_encode` gave ``enc`` for (``code``: its type)."""
    if code == _STR:
        return enc[1:].decode("utf-8")
    if code == _BYTES:
        return enc[1:]
    n, value = _parse_number(enc)
    if code == _INT:
        return n
    if code == _BOOL:
        return n != 0
    return value


def _stored(enc: bytes) -> bytes:
    """The LMDB key of an encoding: itself, or (too long for LMDB) its prefix and a hash."""
    return enc if len(enc) <= _PREFIX else enc[:_PREFIX] + hashlib.sha256(enc).digest()


def _pack(enc: bytes, code: int, seq: int, expires: float | None, data: Any) -> bytes:
    flags = code
    if expires is not None:
        flags |= _EXPIRES
    if type(data) is str:
        flags |= _TEXT
        data = data.encode("utf-8")
    if len(enc) > _PREFIX:
        flags |= _LONG
        return _HEAD.pack(flags, seq, expires or 0.0) + _LEN.pack(len(enc)) + enc + data
    return _HEAD.pack(flags, seq, expires or 0.0) + data


def _data(raw: bytes, flags: int) -> Any:
    """The stored data of an entry's value ``raw``."""
    start = _HEAD_SIZE
    if flags & _LONG:
        start += _LEN.size + _LEN.unpack_from(raw, _HEAD_SIZE)[0]
    data = raw[start:]
    if not flags & _TEXT:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptStore(f"a stored value is damaged (its text is not UTF-8: {exc}); LMDB keeps no "
                           "checksums") from None


def _key_of(stored: bytes, raw: bytes, flags: int) -> Any:
    """The key of the entry stored under ``stored`` with value ``raw``."""
    return _decode(_full(stored, raw, flags), flags & 7)


def _full(stored: bytes, raw: bytes, flags: int) -> bytes:
    """The whole encoding of an entry's key."""
    if flags & _LONG:
        size = _LEN.unpack_from(raw, _HEAD_SIZE)[0]
        return raw[_HEAD_SIZE + _LEN.size:_HEAD_SIZE + _LEN.size + size]
    return stored


def _live(flags: int, expires: float, now: float) -> bool:
    return not flags & _EXPIRES or expires > now


# -- the engine ----------------------------------------------------------------------------------

class _Gate:
    """Every transaction of this process is inside the gate; growing the map needs it empty
    (LMDB remaps the file: no transaction of the process may be open meanwhile).

    Each thread has a counter of the transactions it has open (a one-item list, changed only by
    that thread); a grower sets ``growing`` and then waits for every counter to be zero, and a
    thread entering raises its counter before it looks at ``growing`` (and backs off while it is
    set).  Under the GIL these plain stores and loads are sequentially consistent, so no
    transaction can begin once a grower saw every counter at zero: entering takes no lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # for the growers (one at a time) and the list of counters
        self._local = threading.local()
        self._counters: list[list[int]] = []
        self.growing = False

    def counter(self) -> list[int]:
        """This thread's counter (made on its first transaction)."""
        try:
            return self._local.counter  # type: ignore[no-any-return]
        except AttributeError:
            counter = self._local.counter = [0]
            with self._lock:
                self._counters = [*self._counters, counter]
            return counter

    def enter(self) -> list[int]:
        """Count a transaction of this thread as open (the caller lowers the counter it gets
        when the transaction ends)."""
        counter = self.counter()
        counter[0] += 1
        while self.growing and counter[0] == 1:  # not inside one of this thread's transactions
            counter[0] -= 1
            time.sleep(0.0005)
            counter[0] += 1
        return counter

    def leave(self) -> None:
        self._local.counter[0] -= 1

    @contextlib.contextmanager
    def alone(self, timeout: float) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        with self._lock:
            self.growing = True
            try:
                while any(counter[0] for counter in self._counters):
                    if time.monotonic() > deadline:
                        raise StoreFull("the LMDB map is full and could not grow: other threads of this "
                                        f"process kept reading (snapshot() or transaction() blocks) for "
                                        f"{timeout:g} s")
                    time.sleep(0.0005)
                yield
            finally:
                self.growing = False


class _Block:
    """A transaction this thread holds open: ``kind`` is ``"write"`` (a ``transaction()``
    block), ``"snapshot"`` or ``"reading"``.  ``epoch``: the engine's handle epoch when it
    began (a database handle published later cannot be used in it: it opens its own, kept
    in ``opened`` and published when the block commits)."""

    __slots__ = ("txn", "kind", "epoch", "opened")

    def __init__(self, txn: Any, kind: str, epoch: int) -> None:
        self.txn = txn
        self.kind = kind
        self.epoch = epoch
        self.opened: dict[int, tuple[Any, Any]] = {}


def _parse_url(url: str) -> tuple[str, dict[str, int]]:
    """The folder and the integer options of an ``lmdb://`` URL."""
    parts = urllib.parse.urlsplit(url)
    folder = urllib.parse.unquote(parts.netloc + parts.path)
    if not folder:
        raise ValueError("an lmdb:// URL names a folder: lmdb://relative/folder or lmdb:///absolute/folder")
    options = {}
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if name not in ("map_size", "max_collections"):
            raise ValueError(f"unknown lmdb:// option {name!r}; known: map_size, max_collections")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"lmdb:// option {name} must be a positive integer, not {value!r}")
        options[name] = int(value)
    return folder, options


class _Environment:
    """One LMDB environment open in this process, shared by every store opened on its folder
    (LMDB must not open an environment twice in one process): the environment, its database
    handles, the gate and the write lock of the process."""

    _open: dict[tuple[int, str], _Environment] = {}
    _lock = threading.Lock()

    def __init__(self, folder: str, options: dict[str, int], writable: bool) -> None:
        max_collections = options.get("max_collections", _DEFAULT_MAX_COLLECTIONS)
        try:
            for attempt in range(100):
                try:
                    self.env = lmdb.open(folder, subdir=True, map_size=options.get("map_size", _DEFAULT_MAP_SIZE),
                                         max_dbs=max_collections + 2, readonly=not writable, lock=True,
                                         sync=True, metasync=False, max_readers=1024)
                    break
                except lmdb.MapResizedError:  # another process grew the map while this one opened it
                    if attempt == 99:
                        raise
        except lmdb.VersionMismatchError as exc:
            raise IncompatibleVersion(f"{folder}: made by another LMDB version: {exc}") from exc
        except lmdb.Error as exc:
            if not writable and isinstance(exc, (lmdb.NotFoundError, lmdb.ReadonlyError)):
                raise ReadOnlyError(f"{folder!r} holds no LMDB store and the store is read-only") from exc
            if isinstance(exc, lmdb.MapResizedError):
                raise StoreLocked(f"{folder}: other processes kept growing the map while it was opened") from exc
            raise CorruptStore(f"{folder}: not an LMDB environment, or damaged: {exc}") from exc
        self.folder = folder
        self.writable = writable
        self.max_collections = max_collections
        self.gate = _Gate()
        self.writer = threading.Lock()  # one write transaction of this process at a time
        self.opening = threading.Lock()  # mdb_dbi_open is not to be called concurrently
        # collection id -> (epoch, entries handle, order handle): a handle is usable by the
        # transactions begun after the one that opened it committed (blocks older than its
        # epoch open their own).
        self.dbs: dict[int, tuple[int, Any, Any]] = {}
        self.epoch = 0
        self.made: weakref.WeakSet[LMDBTable] = weakref.WeakSet()
        self.registry: Any = None
        self.order: Any = None  # the insertion order of every collection
        self.users = 0
        try:
            self.open_registry(create=False)
        except BaseException:
            self.env.close()
            raise

    @classmethod
    def attach(cls, folder: str, options: dict[str, int], readonly: bool) -> _Environment:
        """The environment of ``folder`` in this process (opened on first use; read-only only
        when the folder cannot be written), with its registry (made unless ``readonly``)."""
        key = (os.getpid(), os.path.realpath(folder))
        with cls._lock:
            shared = cls._open.get(key)
            if shared is None:
                if readonly and not os.path.exists(os.path.join(folder, "data.mdb")):
                    raise ReadOnlyError(f"{folder!r} holds no LMDB store and the store is read-only")
                writable = os.access(folder, os.W_OK)
                if not writable and not readonly:
                    raise ReadOnlyError(f"folder {folder!r} cannot be written: open the store with readonly=True")
                shared = cls(folder, options, writable)
                cls._open[key] = shared
            if shared.registry is None and not readonly:
                shared.open_registry(create=True)
            shared.users += 1
            return shared

    def detach(self) -> None:
        """One store less uses the environment: closed with the last one."""
        with self._lock:
            self.users -= 1
            if self.users == 0:
                self._open.pop((os.getpid(), os.path.realpath(self.folder)), None)
                self.env.close()

    def open_registry(self, create: bool) -> None:
        """Open (``create``: or make) the registry, checking the environment is kvlite's (again
        once the map is adopted when another process grew it meanwhile)."""
        while True:
            try:
                return self._open_registry(create)
            except lmdb.MapResizedError:
                with self.gate.alone(30.0):
                    self.env.set_mapsize(0)  # adopt the size the other process set
            except (lmdb.IncompatibleError, lmdb.NotFoundError) as exc:  # "kvlite" is no database, no "order"
                raise CorruptStore(f"{self.folder}: an LMDB environment that is not a kvlite store, or "
                                   f"damaged: {exc}") from exc
            except lmdb.Error as exc:
                raise _translate(exc, self.folder) from exc

    def _open_registry(self, create: bool) -> None:
        with self.env.begin() as txn:
            names = [key for key, _ in txn.cursor()]
        if names and b"kvlite" not in names:
            raise CorruptStore(f"{self.folder}: an LMDB environment that is not a kvlite store "
                               f"(its databases: {', '.join(repr(n) for n in names[:5])})")
        if b"kvlite" not in names:
            if not create:
                return  # an empty environment: no collections
            with self.env.begin(write=True) as txn:
                registry = self.env.open_db(b"kvlite", txn=txn)
                order = self.env.open_db(b"order", txn=txn)
                txn.put(b"\x00format", str(FORMAT).encode(), db=registry, overwrite=False)
                txn.put(b"\x00next", b"1", db=registry, overwrite=False)
        else:
            registry = self.env.open_db(b"kvlite", create=False)
            order = self.env.open_db(b"order", create=False)
        with self.env.begin() as txn:
            made = txn.get(b"\x00format", db=registry)
        if made is None or not made.isdigit():
            raise CorruptStore(f"{self.folder}: a kvlite LMDB store without its format record")
        if int(made) > FORMAT:
            raise IncompatibleVersion(f"{self.folder}: made by a newer kvlite (LMDB format {int(made)}; "
                                      f"this kvlite reads format {FORMAT})")
        self.registry, self.order = registry, order


class LMDBEngine(Engine):
    """A kvlite store in an LMDB environment (``lmdb://FOLDER``)."""

    supports_transactions = True

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time, readonly: bool = False,
                 durability: str = "normal", timeout: float = 30.0) -> None:
        super().__init__(url, clock=clock, readonly=readonly, durability=durability, timeout=timeout)
        folder, options = _parse_url(url)
        self.path = folder
        if not os.path.isdir(folder):
            if readonly:
                raise ReadOnlyError(f"folder {folder!r} does not exist and the store is read-only")
            parent = os.path.dirname(os.path.abspath(folder))
            if not os.path.isdir(parent):
                raise KvliteError(f"cannot create the store: folder {parent!r} does not exist")
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder)
        self.shared = _Environment.attach(folder, options, readonly)
        shared = self.shared
        self.env, self._gate, self._writer, self._opening = shared.env, shared.gate, shared.writer, shared.opening
        self._dbs, self._made = shared.dbs, shared.made
        self._local = threading.local()
        #: durability "normal": the data is synced at each commit, the meta page lazily (a system
        #: crash may undo the last commit, never corrupt the file); "full": the meta page too.
        self._sync_meta = durability == "full"

    # -- transactions ------------------------------------------------------------------------

    def _block(self) -> _Block | None:
        stack = getattr(self._local, "stack", None)
        return stack[-1] if stack else None

    def _begin(self, write: bool, parent: Any = None) -> Any:
        """A new transaction (the gate is held); adopts a map another process grew."""
        while True:
            try:
                return self.env.begin(write=write, parent=parent)
            except lmdb.MapResizedError:
                self._gate.leave()
                try:
                    with self._gate.alone(self.timeout):
                        self.env.set_mapsize(0)  # adopt the size the other process set
                finally:
                    self._gate.enter()

    @contextlib.contextmanager
    def read(self) -> Iterator[Any]:
        """A read transaction: this thread's open block, or a new one for the ``with``."""
        self.check_open()
        block = self._block()
        if block is not None:
            yield block.txn
            return
        self._gate.enter()
        try:
            txn = self._begin(False)
            try:
                yield txn
            finally:
                txn.abort()
                # Handles opened in a read transaction die with it (py-lmdb resets it): never published.
                self._local.__dict__.get("pending", {}).clear()
        except lmdb.Error as exc:
            raise _translate(exc, self.path) from exc
        finally:
            self._gate.leave()

    def _publish(self, opened: dict[int, tuple[Any, Any]]) -> None:
        """Handles opened in a transaction that committed, for every later transaction."""
        with self._opening:
            self.shared.epoch += 1
            for number, (entries, order) in opened.items():
                self._dbs[number] = (self.shared.epoch, entries, order)
        opened.clear()

    def write(self, fn: Callable[[Any, float], Any], now: float) -> Any:
        """``fn(txn, now)`` in this thread's ``transaction()`` block, or in a write transaction
        of its own, committed (retried once the map grew when it was full; ``now`` moved by the
        time spent waiting for the write lock).  Raises ReadOnlyError inside a snapshot()."""
        self.check_writable()
        block = self._block()
        if block is not None and block.kind != "reading":
            if block.kind == "snapshot":
                raise ReadOnlyError("snapshot() blocks are read-only: write outside the block")
            try:
                return fn(block.txn, now)
            except lmdb.MapFullError as exc:
                self._local.full = True  # the map grows once the block is over
                raise StoreFull(_BLOCK_FULL) from exc
            except lmdb.Error as exc:
                raise _translate(exc, self.path) from exc
        before = self.clock()
        if not self._writer.acquire(timeout=self.timeout):
            raise StoreLocked(f"another thread held the write lock of {self.path} for longer than the "
                              f"timeout ({self.timeout:g} s)")
        try:
            waited = self.clock() - before
            if waited > 0.001:
                now += waited
            while True:
                self._gate.enter()
                try:
                    txn = self._begin(True)
                    try:
                        result = fn(txn, now)
                        txn.commit()
                    except BaseException:
                        txn.abort()
                        self._local.__dict__.get("pending", {}).clear()
                        raise
                    if self._local.__dict__.get("pending"):
                        self._publish(self._local.pending)
                    if self._sync_meta:
                        self.env.sync(True)
                    return result
                except lmdb.MapFullError:
                    pass
                except lmdb.Error as exc:
                    raise _translate(exc, self.path) from exc
                finally:
                    self._gate.leave()
                self._grow()
        finally:
            self._writer.release()

    def _grow(self) -> None:
        """Double the map (no transaction of this process is open once the gate is ours)."""
        with self._gate.alone(self.timeout):
            size = self.env.info()["map_size"] * 2
            try:
                self.env.set_mapsize(size)
            except lmdb.Error as exc:
                raise StoreFull(f"the LMDB map of {self.path} is full and could not grow to {size} bytes: "
                                f"{exc}") from exc

    def _over_half_full(self) -> bool:
        info = self.env.info()
        return (info["last_pgno"] + 1) * self.env.stat()["psize"] * 2 > info["map_size"]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """An atomic block (one LMDB write transaction; nested blocks are nested transactions,
        undone alone).  Other threads' writes wait for it, for up to ``timeout`` (then
        :class:`~kvlite.errors.StoreLocked`); readers are never blocked."""
        self.check_writable()
        stack = self._local.__dict__.setdefault("stack", [])
        outer = stack[-1] if stack else None
        if outer is not None and outer.kind != "write":
            raise ReadOnlyError("snapshot() blocks are read-only: a transaction() cannot begin inside one")
        if outer is None:
            if self._over_half_full():
                if not self._writer.acquire(timeout=self.timeout):
                    raise StoreLocked(f"another thread held the write lock of {self.path} for longer than "
                                      f"the timeout ({self.timeout:g} s)")
                try:
                    if self._over_half_full():
                        self._grow()
                finally:
                    self._writer.release()
            if not self._writer.acquire(timeout=self.timeout):
                raise StoreLocked(f"another thread's transaction() held {self.path} for longer than the "
                                  f"timeout ({self.timeout:g} s)")
            self._gate.enter()
        try:
            try:
                txn = self._begin(True, None if outer is None else outer.txn)
            except lmdb.Error as exc:
                raise _translate(exc, self.path) from exc
            block = _Block(txn, "write", self.shared.epoch if outer is None else outer.epoch)
            stack.append(block)
            try:
                yield
            except BaseException:
                stack.pop()
                txn.abort()
                self._after_rollback()
                raise
            stack.pop()
            try:
                txn.commit()
                if outer is not None:
                    outer.opened.update(block.opened)  # the outer block's now
                else:
                    if block.opened:
                        self._publish(block.opened)
                    if self._sync_meta:
                        self.env.sync(True)
            except lmdb.MapFullError as exc:
                self._after_rollback()
                self._local.full = True
                raise StoreFull(_BLOCK_FULL) from exc
            except lmdb.Error as exc:
                self._after_rollback()
                raise _translate(exc, self.path) from exc
        finally:
            if outer is None:
                self._gate.leave()
                try:
                    if self._local.__dict__.pop("full", False):  # the block filled the map: grow it
                        with contextlib.suppress(StoreFull):  # for the block run again
                            self._grow()
                finally:
                    self._writer.release()

    def _after_rollback(self) -> None:
        """Database handles opened or dropped in a rolled-back block are no longer valid; a
        table is usable exactly when its collection is registered again."""
        with self._opening:
            self._dbs.clear()
        for table in list(self._made):
            found = self.lookup(table.name)
            table.dropped = found is None or found[0] != table.handle

    def committed(self) -> bool:
        block = self._block()
        return block is None or block.kind != "write"

    @contextlib.contextmanager
    def _held(self, kind: str) -> Iterator[None]:
        """A read transaction held by this thread for the block."""
        self.check_open()
        if self._block() is not None:  # inside a transaction or snapshot: that one's view
            yield
            return
        stack = self._local.__dict__.setdefault("stack", [])
        self._gate.enter()
        try:
            txn = self._begin(False)
            block = _Block(txn, kind, self.shared.epoch)
            stack.append(block)
            try:
                yield
            finally:
                stack.pop()
                txn.abort()  # handles opened in it (block.opened) die with it
        finally:
            self._gate.leave()

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """A block whose reads in this thread all see the store as it was when it began (one
        LMDB read transaction); writes in it raise ReadOnlyError.  Inside a transaction() block
        it is that block's own view.  Keep it short: LMDB cannot reuse pages freed while a
        reader holds an older state (the file grows instead)."""
        return self._held("snapshot")

    def reading(self) -> contextlib.AbstractContextManager[None]:
        return self._held("reading")

    # -- the registry --------------------------------------------------------------------------

    def lookup(self, name: str) -> tuple[Any, str] | None:
        if self.shared.registry is None:
            return None
        with self.read() as txn:
            row = txn.get(b"c:" + name.encode("utf-8"), db=self.shared.registry)
        return None if row is None else _parse_row(row)

    def create(self, name: str, serializer: str) -> tuple[Any, str]:
        def make(txn: Any, now: float) -> tuple[Any, str]:
            key = b"c:" + name.encode("utf-8")
            row = txn.get(key, db=self.shared.registry)
            if row is not None:  # another client made it meanwhile
                return _parse_row(row)
            cursor = txn.cursor(db=self.shared.registry)  # the "c:" rows come last
            count, found = 0, cursor.set_range(b"c:")
            while found:
                count += 1
                found = cursor.next()
            if count >= self.shared.max_collections:  # counted in the store, not by this process's handles
                raise StoreFull(_COLLECTIONS_FULL % self.path)
            number = int(txn.get(b"\x00next", db=self.shared.registry))
            txn.put(b"\x00next", str(number + 1).encode(), db=self.shared.registry)
            txn.put(key, b"%d\x00%s" % (number, serializer.encode("utf-8")), db=self.shared.registry)
            with self._opening:
                try:
                    self._opened_here()[number] = (self.env.open_db(b"c%d" % number, txn=txn),
                                                   self.shared.order)
                except lmdb.DbsFullError as exc:
                    raise StoreFull(_COLLECTIONS_FULL % self.path) from exc
            return number, serializer

        found: tuple[Any, str] = self.write(make, 0.0)
        return found

    def names(self) -> list[str]:
        if self.shared.registry is None:
            return []
        with self.read() as txn:
            rows = [(_parse_row(row)[0], key[2:].decode("utf-8"))
                    for key, row in txn.cursor(db=self.shared.registry) if key.startswith(b"c:")]
        return [name for _, name in sorted(rows)]

    def drop(self, name: str) -> bool:
        def remove(txn: Any, now: float) -> bool:
            key = b"c:" + name.encode("utf-8")
            row = txn.get(key, db=self.shared.registry)
            if row is None:
                return False
            number = _parse_row(row)[0]
            entries, order = self.handles(number, txn)
            txn.drop(entries, delete=True)
            _clear_order(txn, order, number)
            txn.delete(key, db=self.shared.registry)
            with self._opening:
                self._dbs.pop(number, None)
            self._opened_here().pop(number, None)
            for table in list(self._made):
                if table.handle == number:
                    table.dropped = True
            return True

        dropped: bool = self.write(remove, 0.0)
        return dropped

    def handles(self, number: int, txn: Any) -> tuple[Any, Any]:
        """The (entries, order) database handles of collection ``number`` usable in ``txn`` (this
        thread's open block's, or its own transaction's): published ones when they are older than
        the block, else opened in ``txn`` (published once it commits); CollectionDropped when the
        databases are gone."""
        block = self._block()
        found = self._dbs.get(number)
        if found is not None and (block is None or found[0] <= block.epoch):
            return found[1], found[2]
        opened = self._opened_here()
        mine = opened.get(number)
        if mine is not None:
            return mine
        with self._opening:
            try:
                mine = (self.env.open_db(b"c%d" % number, txn=txn, create=False),
                        self.shared.order)
            except lmdb.NotFoundError as exc:
                raise CollectionDropped(f"collection number {number} was dropped") from exc
        opened[number] = mine
        return mine

    def prepare(self, number: int) -> None:
        """Before a read transaction of its own: open collection ``number``'s databases (in a
        write transaction, committed) unless published already, so the read can use them.

        The write transaction is this engine's own, begun once the write lock of the process is
        held: py-lmdb's ``open_db`` without a transaction waits for LMDB's write lock holding
        the GIL, which froze the whole process while another of its threads was in a write
        (that thread could never finish it)."""
        if number in self._dbs or self._block() is not None:
            return
        if not self.shared.writable:  # a read-only environment: py-lmdb opens it in a read transaction
            with self._opening:
                if number in self._dbs:
                    return
                try:
                    opened = {number: (self.env.open_db(b"c%d" % number, create=False), self.shared.order)}
                except lmdb.NotFoundError as exc:
                    raise CollectionDropped(f"collection number {number} was dropped") from exc
                except lmdb.Error as exc:
                    raise _translate(exc, self.path) from exc
            self._publish(opened)
            return
        if not self._writer.acquire(timeout=self.timeout):
            raise StoreLocked(f"another thread held the write lock of {self.path} for longer than the "
                              f"timeout ({self.timeout:g} s)")
        try:
            if number in self._dbs:
                return
            self._gate.enter()
            try:
                txn = self._begin(True)  # adopts a map another process grew
                try:
                    with self._opening:
                        opened = {number: (self.env.open_db(b"c%d" % number, txn=txn, create=False),
                                           self.shared.order)}
                    txn.commit()
                except BaseException:
                    txn.abort()
                    raise
            except lmdb.NotFoundError as exc:
                raise CollectionDropped(f"collection number {number} was dropped") from exc
            except lmdb.Error as exc:
                raise _translate(exc, self.path) from exc
            finally:
                self._gate.leave()
            self._publish(opened)
        finally:
            self._writer.release()

    def _opened_here(self) -> dict[int, tuple[Any, Any]]:
        """Where handles opened in this thread's current transaction wait for its commit."""
        block = self._block()
        return block.opened if block is not None else self._local.__dict__.setdefault("pending", {})

    def table(self, name: str, handle: Any, serializer: _serializers.Serializer) -> LMDBTable:
        table = LMDBTable(self, name, handle, serializer)
        self._made.add(table)
        return table

    # -- the whole store -----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """``path``; ``size``: bytes of the data file; ``map_size``: bytes of the map (it grows);
        ``page_size``; ``pages``: pages in use; ``readers``: reader slots in use."""
        self.check_open()
        info, stat = self.env.info(), self.env.stat()
        data = os.path.join(self.path, "data.mdb")
        return {"path": self.path, "size": os.path.getsize(data), "map_size": info["map_size"],
                "page_size": stat["psize"], "pages": info["last_pgno"] + 1, "readers": info["num_readers"],
                "format": FORMAT}

    def vacuum(self) -> None:
        raise NotSupported("an LMDB file never shrinks in place (freed pages are reused); backup() writes a "
                           "compacted copy")

    def backup(self, path: str, progress: Callable[[int, int], None] | None) -> None:
        """A compacted copy of the environment (LMDB's own copy, from one read transaction) in
        a new folder ``path``, written beside it under a temporary name and renamed once synced."""
        self.check_open()
        with backup_folder(path, repr(self.path), "an LMDB backup") as temp:
            if progress is not None:
                progress(0, 1)
            while True:
                self._gate.enter()
                try:
                    self.env.copy(temp, compact=True)
                    break
                except lmdb.MapResizedError as exc:  # another process grew the map
                    if self._block() is not None:  # this thread holds a transaction: cannot remap
                        raise _translate(exc, self.path) from exc
                except lmdb.Error as exc:
                    raise _translate(exc, self.path) from exc
                finally:
                    self._gate.leave()
                for name in os.listdir(temp):  # LMDB's copy makes its file anew
                    os.remove(os.path.join(temp, name))
                with self._gate.alone(self.timeout):
                    self.env.set_mapsize(0)  # adopt it, and copy again
            for name in os.listdir(temp):
                with open(os.path.join(temp, name), "rb+") as copied:
                    os.fsync(copied.fileno())
        if progress is not None:
            progress(1, 1)

    def close(self) -> None:
        super().close()
        self.shared.detach()


_COLLECTIONS_FULL = ("%s holds as many collections as it was opened for; open it with a larger "
                     "?max_collections= (LMDB keeps a fixed table of databases)")
_BLOCK_FULL = ("the LMDB map filled up inside a transaction() block, which cannot be retried inside it: "
               "nothing of the block lands; the map grows once the block is over: run it again")


def _clear_order(txn: Any, order: Any, number: int) -> None:
    """Delete collection ``number``'s part of the order database."""
    cursor = txn.cursor(db=order)
    prefix = _ORDER.pack(number, 0)[:4]
    found = cursor.set_range(prefix)
    while found and cursor.key()[:4] == prefix:
        found = cursor.delete()


def _parse_row(row: bytes) -> tuple[int, str]:
    number, _, serializer = row.partition(b"\x00")
    return int(number), serializer.decode("utf-8")


def _translate(exc: lmdb.Error, path: str) -> KvliteError:
    if isinstance(exc, lmdb.ReadonlyError):
        return ReadOnlyError(f"{path}: {exc}")
    if isinstance(exc, (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError)):
        return CorruptStore(f"{path}: damaged LMDB environment: {exc}")
    if isinstance(exc, lmdb.DbsFullError):  # a collection opened past max_collections
        return StoreFull(_COLLECTIONS_FULL % path)
    if isinstance(exc, (lmdb.MapFullError, lmdb.DiskError)):
        return StoreFull(f"{path}: {exc}")
    if isinstance(exc, lmdb.ReadersFullError):
        return StoreLocked(f"{path}: every LMDB reader slot is in use: {exc}")
    return KvliteError(f"{path}: LMDB error: {exc}")


# -- a collection --------------------------------------------------------------------------------

class LMDBTable(Table):
    """A collection of an :class:`LMDBEngine`: its entries and insertion-order databases."""

    engine: LMDBEngine

    def __init__(self, engine: LMDBEngine, name: str, handle: int, serializer: _serializers.Serializer) -> None:
        super().__init__(engine, name, serializer)
        self.handle = handle
        self._row_key = b"c:" + name.encode("utf-8")
        self._row_prefix = b"%d\x00" % handle
        self._prefix = _ORDER.pack(handle, 0)[:4]  # of this collection's keys in the order database
        # after its entries in the order database: the record of the next sequence number
        # (numbers are never reused: a key put again after the newest was deleted must not
        # take a number an iteration in progress has yet to reach, or it would appear twice)
        self._end = _ORDER.pack(handle, (1 << 64) - 1)

    def _handles(self, txn: Any) -> tuple[Any, Any]:
        """This collection's database handles, checked to be this collection's still."""
        if self.dropped:
            raise self.dropped_error()
        try:
            found = self.engine.handles(self.handle, txn)
        except CollectionDropped:
            self.dropped = True
            raise self.dropped_error() from None
        return found

    def _prepare(self) -> None:
        """Make sure a read transaction of this thread can use the collection's databases."""
        if self.handle not in self.engine._dbs:
            if self.dropped:
                raise self.dropped_error()
            try:
                self.engine.prepare(self.handle)
            except CollectionDropped:
                self.dropped = True
                raise self.dropped_error() from None

    def _still_registered(self, txn: Any) -> None:
        """Raise CollectionDropped when another client dropped the collection (read in ``txn``)."""
        row = txn.get(self._row_key, db=self.engine.shared.registry)
        if row is None or not row.startswith(self._row_prefix):
            self.dropped = True
            raise self.dropped_error()

    # -- single keys -----------------------------------------------------------------------------

    def _raw(self, key: Any) -> tuple[bytes, bytes | None]:
        """``(LMDB key, stored value or None)`` of ``key``, read in one transaction."""
        enc = _encode(key)[0]
        stored = enc if len(enc) <= _PREFIX else _stored(enc)
        self._prepare()
        with self.engine.read() as txn:
            try:
                raw = txn.get(stored, db=self._handles(txn)[0])
            except lmdb.BadDbiError:  # another process dropped the collection's database
                self._still_registered(txn)
                raise
            if raw is None:
                self._still_registered(txn)
        return stored, raw

    def get(self, key: Any) -> Any:
        engine = self.engine
        found = engine._dbs.get(self.handle)
        if found is None or self.dropped or engine.closed or engine._local.__dict__.get("stack"):
            raw = self._raw(key)[1]  # the general path: checks, a block's transaction, opening handles
        else:  # the hot path: a read transaction of its own with published handles
            if type(key) is str and key.isascii():
                enc = b"\x04" + key.encode()
            else:
                enc = _encode(key)[0]
            gate = engine._gate  # gate.enter(), inlined: this is kvlite's hottest path
            try:
                counter = gate._local.counter
            except AttributeError:
                counter = gate.counter()
            counter[0] += 1
            if gate.growing:  # wait for the growth (no other transaction of this thread is open)
                counter[0] -= 1
                counter = gate.enter()
            try:
                txn = engine.env.begin()
            except lmdb.Error:
                counter[0] -= 1
                raw = self._raw(key)[1]  # the map grew in another process: the general path adopts it
            else:
                try:
                    raw = txn.get(enc if len(enc) <= _PREFIX else _stored(enc), db=found[1])
                    if raw is None:
                        self._still_registered(txn)
                except lmdb.Error as exc:
                    if isinstance(exc, lmdb.BadDbiError):  # another process dropped the collection's database
                        self._still_registered(txn)
                    raise _translate(exc, engine.path) from exc
                finally:
                    txn.abort()
                    counter[0] -= 1
        if raw is None:
            return MISSING
        flags, _, expires = _HEAD.unpack_from(raw)
        if flags & _EXPIRES and expires <= self.engine.clock():
            return MISSING
        if flags & (_LONG | _TEXT) != _TEXT:
            return _data(raw, flags)
        try:
            return raw[_HEAD_SIZE:].decode("utf-8")
        except UnicodeDecodeError:
            return _data(raw, flags)  # raises CorruptStore

    def get_many(self, keys: list[Any], now: float) -> list[Any]:
        """Every key read in one read transaction."""
        out = []
        self._prepare()
        with self.engine.read() as txn:
            entries = self._handles(txn)[0]
            self._still_registered(txn)
            clock = self.engine.clock()
            for key in keys:
                raw = txn.get(_stored(_encode(key)[0]), db=entries)
                if raw is None:
                    out.append(MISSING)
                    continue
                flags, _, expires = _HEAD.unpack_from(raw)
                out.append(_data(raw, flags) if _live(flags, expires, clock) else MISSING)
        return out

    def entry(self, key: Any, now: float) -> tuple[Any, Any] | None:
        stored, raw = self._raw(key)
        if raw is None:
            return None
        flags, _, expires = _HEAD.unpack_from(raw)
        if not _live(flags, expires, now):
            return None
        return _key_of(stored, raw, flags), _data(raw, flags)

    def expiry(self, key: Any, now: float) -> Any:
        raw = self._raw(key)[1]
        if raw is None:
            return MISSING
        flags, _, expires = _HEAD.unpack_from(raw)
        if not _live(flags, expires, now):
            return MISSING
        return expires if flags & _EXPIRES else None

    # -- writes (each runs in a write transaction: engine.write) ----------------------------------

    def _writing(self, txn: Any) -> tuple[Any, Any]:
        dbs = self._handles(txn)
        self._still_registered(txn)
        return dbs

    def _newest(self, cursor: Any) -> bool:
        """Put ``cursor`` (on the order database) on this collection's newest entry: whether there is one."""
        found = cursor.prev() if cursor.set_range(self._end) else cursor.last()
        return found and cursor.key()[:4] == self._prefix

    def _next_seq(self, txn: Any, order: Any) -> int:
        recorded = txn.get(self._end, db=order)
        if recorded is not None:
            seq = int(recorded)
        else:  # none recorded yet
            cursor = txn.cursor(db=order)
            seq = _ORDER.unpack(cursor.key())[1] + 1 if self._newest(cursor) else 1
        txn.put(self._end, b"%d" % (seq + 1), db=order)
        return seq

    def _old(self, txn: Any, dbs: tuple[Any, Any], stored: bytes, now: float) -> bytes | None:
        """The live entry's value under ``stored``; an expired one is removed (it counts as new)."""
        raw = txn.get(stored, db=dbs[0])
        if raw is None:
            return None
        flags, seq, expires = _HEAD.unpack_from(raw)
        if _live(flags, expires, now):
            return raw
        txn.delete(stored, db=dbs[0])
        txn.delete(_ORDER.pack(self.handle, seq), db=dbs[1])
        return None

    def _put_in(self, txn: Any, dbs: tuple[Any, Any], key: Any, data: Any, now: float,
                expires: float | None) -> None:
        enc, code = _encode(key)
        stored = _stored(enc)
        old = self._old(txn, dbs, stored, now)
        if old is None:
            seq = self._next_seq(txn, dbs[1])
            txn.put(_ORDER.pack(self.handle, seq), stored, db=dbs[1])
        else:  # a live key keeps its place and the form first stored
            flags, seq, _ = _HEAD.unpack_from(old)
            code = flags & 7
            enc = _full(stored, old, flags)
        txn.put(stored, _pack(enc, code, seq, expires, data), db=dbs[0])

    def put(self, key: Any, data: Any, now: float, expires: float | None) -> None:
        def put(txn: Any, at: float) -> None:
            self._put_in(txn, self._writing(txn), key, data, at, None if expires is None else expires + at - now)

        self.engine.write(put, now)

    def put_many(self, pairs: Iterable[Any], encode: Callable[[Any], Any], now: float,
                 expires: float | None) -> int:
        entries = [(_keys.normalize(key), encode(value)) for key, value in pairs]

        def put(txn: Any, at: float) -> None:
            dbs = self._writing(txn)
            moved = None if expires is None else expires + at - now
            for key, data in entries:
                self._put_in(txn, dbs, key, data, at, moved)

        self.engine.write(put, now)
        return len(entries)

    def _remove_in(self, txn: Any, dbs: tuple[Any, Any], key: Any, now: float,
                   decode: Callable[[Any], Any] | None) -> Any:
        """Remove ``key``: ``decode(data)`` (``True`` without ``decode``) when it was live, else MISSING."""
        stored = _stored(_encode(key)[0])
        raw = txn.get(stored, db=dbs[0])
        if raw is None:
            return MISSING
        flags, seq, expires = _HEAD.unpack_from(raw)
        value = MISSING
        if _live(flags, expires, now):
            value = True if decode is None else decode(_data(raw, flags))
        txn.delete(stored, db=dbs[0])
        txn.delete(_ORDER.pack(self.handle, seq), db=dbs[1])
        return value

    def delete(self, key: Any, now: float) -> bool:
        removed: bool = self.engine.write(
            lambda txn, at: self._remove_in(txn, self._writing(txn), key, at, None) is not MISSING, now)
        return removed

    def delete_many(self, keys: list[Any], now: float) -> int:
        def remove(txn: Any, at: float) -> int:
            dbs = self._writing(txn)
            return sum(self._remove_in(txn, dbs, key, at, None) is not MISSING for key in keys)

        removed: int = self.engine.write(remove, now)
        return removed

    def pop(self, key: Any, now: float, decode: Callable[[Any], Any]) -> Any:
        return self.engine.write(lambda txn, at: self._remove_in(txn, self._writing(txn), key, at, decode), now)

    def popitem(self, now: float, decode: Callable[[Any], Any]) -> tuple[Any, Any] | None:
        def take(txn: Any, at: float) -> tuple[Any, Any] | None:
            entries, order = dbs = self._writing(txn)
            cursor = txn.cursor(db=order)
            found = self._newest(cursor)
            while found and cursor.key()[:4] == self._prefix:
                stored = cursor.value()
                raw = txn.get(stored, db=entries)
                flags, _, expires = _HEAD.unpack_from(raw)
                if _live(flags, expires, at):
                    key = _key_of(stored, raw, flags)
                    return key, self._remove_in(txn, dbs, key, at, decode)
                found = cursor.prev()
            return None

        result: tuple[Any, Any] | None = self.engine.write(take, now)
        return result

    def setdefault(self, key: Any, default: Callable[[], Any], now: float, expires: float | None,
                   decode: Callable[[Any], Any]) -> Any:
        def run(txn: Any, at: float) -> Any:
            dbs = self._writing(txn)
            old = self._old(txn, dbs, _stored(_encode(key)[0]), at)
            if old is not None:
                return decode(_data(old, _HEAD.unpack_from(old)[0]))
            self._put_in(txn, dbs, key, default(), at, None if expires is None else expires + at - now)
            return MISSING

        return self.engine.write(run, now)

    def modify(self, key: Any, change: Callable[[Any], tuple[Any, Any]], now: float,
               expires: Any = KEEP) -> Any:
        """Read, ``change`` and write in one LMDB write transaction (see :meth:`Table.modify`)."""
        def run(txn: Any, at: float) -> Any:
            dbs = self._writing(txn)
            old = self._old(txn, dbs, _stored(_encode(key)[0]), at)
            flags = expiry = 0
            if old is not None:
                flags, _, expiry = _HEAD.unpack_from(old)
            new, result = change(MISSING if old is None else _data(old, flags))
            if new is not MISSING:
                if expires is KEEP:
                    until = expiry if flags & _EXPIRES else None
                else:
                    until = None if expires is None else expires + at - now
                self._put_in(txn, dbs, key, new, at, until)
            return result

        return self.engine.write(run, now)

    # -- the whole collection --------------------------------------------------------------------

    def _in_order(self, reverse: bool, decode: Callable[[Any], Any] | None | bool) -> Iterator[Any]:
        """Live entries in insertion order, read ``_PAGE`` at a time (each page one read
        transaction, or this thread's open block): keys, or ``(key, decode(data))``.  Entries
        added after the first page (which come last) are not read: iteration is bounded."""
        after: bytes | None = None
        last: bytes | None = None  # forward: the last entry when the iteration began
        while True:
            page: list[tuple[bytes, bytes, int]] = []
            self._prepare()
            with self.engine.read() as txn:
                entries, order = self._handles(txn)
                self._still_registered(txn)
                cursor = txn.cursor(db=order)
                if last is None and not reverse:
                    if not self._newest(cursor):
                        return
                    last = cursor.key()
                if after is None:
                    found = self._newest(cursor) if reverse else cursor.set_range(self._prefix)
                elif reverse:  # the one before ``after`` (which may be gone)
                    found = cursor.prev() if cursor.set_range(after) else cursor.last()
                else:
                    found = cursor.set_range(after)
                    if found and cursor.key() == after:
                        found = cursor.next()
                now = self.engine.clock()
                # The loop of every iteration and query: names bound once.
                step, item, get, unpack, prefix = (cursor.prev if reverse else cursor.next), cursor.item, \
                    txn.get, _HEAD.unpack_from, self._prefix
                append = page.append
                while found and len(page) < _PAGE:
                    seq_key, stored = item()
                    if seq_key[:4] != prefix or last is not None and seq_key > last:
                        found = False
                        break
                    after = seq_key
                    raw = get(stored, db=entries)
                    if raw is not None:
                        flags, _, expires = unpack(raw)
                        if not flags & _EXPIRES or expires > now:
                            append((stored, raw, flags))
                    found = step()
                more = found
            for stored, raw, flags in page:
                if flags & (7 | _LONG) == _STR:  # a str key, stored whole
                    key = stored[1:].decode("utf-8")
                else:
                    key = _key_of(stored, raw, flags)
                if decode is False:
                    yield key
                elif flags & (_LONG | _TEXT) == _TEXT:
                    try:
                        data = raw[_HEAD_SIZE:].decode("utf-8")
                    except UnicodeDecodeError:
                        data = _data(raw, flags)  # raises CorruptStore
                    yield key, decode(data)  # type: ignore[misc,operator]
                else:
                    yield key, decode(_data(raw, flags))  # type: ignore[misc,operator]
            if not more:
                return

    def keys(self, reverse: bool) -> Iterator[Any]:
        return self._in_order(reverse, False)

    def items(self, reverse: bool, decode: Callable[[Any], Any] | None) -> Iterator[tuple[Any, Any]]:
        if decode is None:
            decode = functools.partial(_serializers.decode, self.serializer)
        return self._in_order(reverse, decode)

    def key_range(self, keys: _keys.KeyRange, reverse: bool,
                  decode: Callable[[Any], Any] | None | bool) -> Iterator[Any]:
        """The entries database read in key order from the range's start (or back from its
        stop), a page per read transaction; keys stored as a prefix and a hash are sorted by
        their full encoding, a run of them at a time."""
        low, high = _KIND_BOUNDS[keys.kind]
        start = low if keys.start is None else _encode(keys.start)[0]
        stop = high if keys.stop is None else _encode(keys.stop)[0]
        if decode is None:
            decode = functools.partial(_serializers.decode, self.serializer)
        position: bytes | None = None  # the last LMDB key read
        while True:
            runs: list[list[tuple[bytes, bytes, bytes, int]]] = []
            self._prepare()
            with self.engine.read() as txn:
                entries, _ = self._handles(txn)
                self._still_registered(txn)
                cursor = txn.cursor(db=entries)
                if reverse:
                    seek = stop[:_PREFIX] + b"\xff" * 33 if position is None else position
                    found = cursor.prev() if cursor.set_range(seek) else cursor.last()
                else:
                    found = cursor.set_range(start[:_PREFIX] if position is None else position)
                    if found and position is not None and cursor.key() == position:
                        found = cursor.next()
                count = 0
                now = self.engine.clock()
                while found and count < _PAGE:
                    run: list[tuple[bytes, bytes, bytes, int]] = []
                    stored = cursor.key()
                    head = stored[:_PREFIX] if len(stored) == _LONG_SIZE else None
                    while found:  # one key, or every long key sharing its prefix
                        stored, raw = cursor.item()
                        if head is None and run or head is not None and (
                                len(stored) != _LONG_SIZE or stored[:_PREFIX] != head):
                            break
                        flags = _HEAD.unpack_from(raw)[0]
                        run.append((_full(stored, raw, flags), stored, raw, flags))
                        position = stored
                        found = cursor.prev() if reverse else cursor.next()
                    run.sort(reverse=reverse)
                    runs.append(run)
                    count += len(run)
                    if (run[-1][0] < start) if reverse else (run[0][0] >= stop):
                        found = False  # past the range
                more = found
            for run in runs:
                for enc, stored, raw, flags in run:
                    if not start <= enc < stop:
                        continue
                    expires = _HEAD.unpack_from(raw)[2]
                    if not _live(flags, expires, now):
                        continue
                    key = _decode(enc, flags & 7)
                    yield key if decode is False else (key, decode(_data(raw, flags)))  # type: ignore[operator]
            if not more:
                return

    def _scan(self, now: float) -> Iterator[tuple[bytes, int, float, int]]:
        """``(LMDB key, flags, expiry, stored size)`` of every entry, read in one transaction."""
        self._prepare()
        with self.engine.read() as txn:
            entries, _ = self._handles(txn)
            self._still_registered(txn)
            for stored, raw in txn.cursor(db=entries):
                flags, _, expires = _HEAD.unpack_from(raw)
                yield stored, flags, expires, len(raw) - _HEAD_SIZE

    def count(self, now: float) -> int:
        return sum(1 for _, flags, expires, _ in self._scan(now) if _live(flags, expires, now))

    def clear(self) -> None:
        def clear(txn: Any, at: float) -> None:
            entries, order = self._writing(txn)
            recorded = txn.get(self._end, db=order)
            txn.drop(entries, delete=False)
            _clear_order(txn, order, self.handle)
            if recorded is not None:  # numbers go on after a clear too
                txn.put(self._end, recorded, db=order)

        self.engine.write(clear, 0.0)

    def purge(self, now: float) -> int:
        def purge(txn: Any, at: float) -> int:
            entries, order = self._writing(txn)
            expired = []
            for stored, raw in txn.cursor(db=entries):
                flags, seq, expires = _HEAD.unpack_from(raw)
                if not _live(flags, expires, at):
                    expired.append((stored, seq))
            for stored, seq in expired:
                txn.delete(stored, db=entries)
                txn.delete(_ORDER.pack(self.handle, seq), db=order)
            return len(expired)

        purged: int = self.engine.write(purge, now)
        self.expirations += purged
        return purged

    def sizes(self, now: float) -> tuple[int, int, int]:
        live = size = expired = 0
        for _, flags, expires, stored_size in self._scan(now):
            size += stored_size
            if _live(flags, expires, now):
                live += 1
            else:
                expired += 1
        return live, size, expired
