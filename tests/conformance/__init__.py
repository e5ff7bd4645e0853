"""One conformance suite, run on every engine: :class:`StoreConformance`.

Each engine's test class in ``tests/test_conformance.py`` subclasses it and names its engine::

    class TestSqliteFile(StoreConformance):
        engine = "sqlite-file"

and every test below runs on that engine's stores (where they live: ``tests/helpers_engines.py``),
so a behaviour that differs between engines is a failing test, not a surprise.  Every store runs on
a fake clock (``conftest.Clock``): TTL tests move it instead of sleeping.  The Redis and PostgreSQL
servers are the session fixtures of ``tests/server_redis.py`` and ``tests/server_postgres.py``
(skipped when a server binary is missing, a failure under ``CI=true``).

What is checked on each engine, one module per topic:

* ``protocol``: the key-value protocol (``get``/``put``/``delete``/``ttl`` and the ``_many``
  forms: positions, duplicates, defaults), ``pop``, ``popitem``, ``setdefault``,
  ``count``/``len``/``in``, ``clear``, the registry, reopening, closed stores, settings refused
  at open, ``kvlite.KeyValue`` over the store;
* ``expiry``: TTLs on the fake clock: invisible at once (at ``expires_at == now``), a put over an
  expired key moves it to the end, ``purge_expired`` counts, ``ttl`` values, huge TTLs;
* ``stores``: dropped collections, read-only stores, typed (model) collections, stats,
  ``durability``;
* ``keys``: key types (``str``/``bytes``/``int``/``float``/``bool``; ``1 == 1.0 == True`` is one
  key and keeps the first type stored) and insertion order (update keeps the place, delete +
  re-insert moves to the end, reversed, pages longer than any engine's page size);
* ``dictview``: a Hypothesis state machine against a ``dict`` model with expiry, and the basics;
  CPython's ``test.mapping_tests.TestMappingProtocol`` runs too (one generated ``TestCase`` per
  engine in ``tests/test_conformance.py``; only ``test_setdefault`` is replaced, as in
  ``tests/test_dictview.py``);
* ``values``: atomicity of ``put_many`` (a bad key, value, TTL or pair: nothing written), the
  recorded serializer (``SerializerMismatch``), value fidelity per serializer, typed errors;
* ``queries``: ``find``/``select``/``count`` for fixed and random JSONPath and ObjectPath paths
  equal the oracle of ``tests/helpers_query.py`` (the engine run on the collection's items loaded
  in a ``dict``), with and without an index where the engine has indexes; ``order_by`` (one exact
  order on every engine, JSON collections only);
* ``query_hardening``: issue 11's every-engine checks (exact order beyond 64 bits, no Python
  attributes through ObjectPath, no field name in SQL text, errors translated only when the
  engine's own);
* ``transactions``: atomic (commit, rollback, savepoints, collection changes undone) on the engines
  that support them; ``NotSupported`` raised -- with nothing written -- by exactly the engines
  whose documentation says so;
* ``counters``: ``incr`` (with and without a path; number rules, typed errors with nothing
  changed, TTL kept) and ``compare_and_set`` (Python equality, ``kvlite.ABSENT``) against a
  ``dict`` model; 4 processes x 250 ``incr`` on one field is exactly 1000 and ``compare_and_set``
  retry loops from 4 processes never double-apply (threads on ``sqlite-memory`` and ``memory``);
* ``documents``: ``patch`` (RFC 7396's own examples; any document and patch against
  ``kvlite.merge_patch``, TTL and place kept), ``patch_where``/``delete_where`` choosing what the
  standard's reference implementation selects (filters SQL decides and filters it does not),
  ``count_by`` against a model comparing values as JSON, key ranges against a sorted model
  (``NotSupported`` on Redis and PostgreSQL, as documented), 4 processes patching different
  members of one document losing none;
* ``changes``: the change feed records each change with its value on the engines that keep a log,
  and ``backup()`` gives a store that opens with the same data; ``NotSupported`` from exactly the
  engines the docs name;
* ``copying``: ``kvlite.copy`` from the engine to every other, preserving values, key types,
  remaining TTLs and order, changing the serializer on the way.

Documented deviations, asserted as such (each with the text that documents it):
``transaction()`` raises ``NotSupported`` on ``per-collection`` and Redis
(checked against their docs, both ways); ``per-collection`` lists
``collections()`` in file-name order.  Allowed differences that are not
deviations: ``purge_expired()`` may count fewer entries on an engine that
deletes expired entries earlier (Redis, on every write), so exact counts are
only asserted with no write in between; ``":memory:"`` opened read-only
refuses at open, ``memory://`` at its first write (both ``ReadOnlyError``).

``KVLITE_CONFORMANCE_EXAMPLES`` raises the number of Hypothesis examples.
"""

from __future__ import annotations

from .base import EngineTests
from .changes import ChangeFeed
from .copying import Copying
from .counters import Counters
from .dictview import DictViews
from .documents import ChangingDocuments
from .expiry import Expiry
from .keys import KeysAndOrder
from .protocol import KeyValueProtocol
from .queries import Queries
from .query_hardening import QueryHardening
from .stores import StoreLifecycle
from .transactions import Transactions
from .values import ValuesAndErrors

__all__ = ["EngineTests", "StoreConformance"]


class StoreConformance(KeyValueProtocol, Expiry, StoreLifecycle, KeysAndOrder, DictViews, ValuesAndErrors, Queries,
                       QueryHardening, Transactions, Copying, Counters, ChangingDocuments,
                       ChangeFeed):
    """Every conformance test; a subclass per engine sets ``engine`` (a name in
    ``helpers_engines.ENGINES``) and runs them all on it."""
