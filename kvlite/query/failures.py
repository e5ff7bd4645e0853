"""Which exceptions raised while a query runs are the query engine's own, and what they become.

While a query runs, code of several owners runs: the engines (jsonpath-rfc9535,
jsonpath-ng, objectpath, jmespath) and kvlite's adapters of them, kvlite's storage code (SQL,
decoding), the caller's code (a signal handler, the objects of a pickle
collection, an exception thrown into the result iterator by its consumer),
and the standard library under any of them.  Only an error of the engine
itself while it evaluates a path that parsed -- ``sorted`` over values of
mixed types, a regular expression that does not compile, objectpath's "no
such function" -- is kvlite's to translate, into
:class:`~kvlite.errors.QueryEvaluationError` ("could not evaluate"); Python's
recursion limit reached there (documents, or a path, nested too deeply) is
no fault of the path's syntax and becomes
:class:`~kvlite.errors.NotSupported`, as does the descent limit of RFC 9535 queries
(:class:`~kvlite.query.rfc9535` descends 300 levels).  Every other exception passes through
unchanged: kvlite's own errors, SQLite's, the caller's, ``KeyboardInterrupt``.

The owner is read from the traceback: the innermost frame outside the
standard library (which the engines call: ``re``, ``_strptime``, ...) is an
engine's, or a kvlite adapter's of one.  A signal handler's exception is
raised in the handler, a pickled object's in its method, a storage error in
kvlite's storage code, an exception thrown in by the consumer at kvlite's
``yield``: none of them in an engine.
"""

from __future__ import annotations

import sys
from typing import Any

from jsonpath_rfc9535 import JSONPathRecursionError

from ..errors import KvliteError, NotSupported, QueryEvaluationError

__all__ = ["engine_failure", "evaluation_error"]

# ply: jsonpath-ng's parser; regex and iregexp_check: RFC 9535's match() and search()
_ENGINES = frozenset({"jsonpath_ng", "objectpath", "ply", "jsonpath_rfc9535", "regex", "iregexp_check", "jmespath"})
# (kvlite.query.rfc9535 and kvlite.query.jmespath are not: they only call their packages, whose own
# frames show their errors, and their generators yield matches, where an exception the consumer
# throws in is raised.)
_ADAPTERS = frozenset({"kvlite.query.jsonpath", "kvlite.query.objectpath"})
_STDLIB = frozenset(sys.stdlib_module_names)


def engine_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a query engine's own error while parsing or evaluating a path (see the
    module): an ``Exception``, not a kvlite error nor ``MemoryError``, whose innermost frame
    outside the standard library is an engine's (or a kvlite adapter's of one)."""
    if not isinstance(exc, Exception) or isinstance(exc, (KvliteError, MemoryError)):
        return False
    owner = _STANDARD
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        kind = _kinds.get(code)
        if kind is None:
            kind = _kinds[code] = _kind(tb.tb_frame.f_globals.get("__name__"))
        if kind is not _STANDARD:
            owner = kind
        tb = tb.tb_next
    return owner is _ENGINE


_ENGINE, _STANDARD, _OTHER = "engine", "standard library", "other"
#: The kind of each code object met in a traceback (filters see one exception per
#: incomparable value, so this is worth remembering).
_kinds: dict[Any, str] = {}


def _kind(module: Any) -> str:
    if not isinstance(module, str):
        return _OTHER
    top = module.partition(".")[0]
    if top in _ENGINES or module in _ADAPTERS:
        return _ENGINE
    return _STANDARD if top in _STDLIB else _OTHER


def evaluation_error(engine: str, path: str, exc: BaseException) -> KvliteError:
    """What an engine's own error (``engine_failure(exc)``) while evaluating ``path`` becomes."""
    if isinstance(exc, JSONPathRecursionError):
        return NotSupported(f"{engine} cannot evaluate {path!r} on these documents: a descendant segment "
                            "would go deeper than its recursion limit (300 levels)")
    if isinstance(exc, RecursionError):
        return NotSupported(f"{engine} cannot evaluate {path!r} on these documents: they (or the path) nest "
                            "deeper than Python's recursion limit allows")
    return QueryEvaluationError(f"{type(exc).__name__}: {exc}", path=path, engine=engine)
