"""kvlite: an embedded key/document store on SQLite, with a ``dict`` view and JSONPath queries.

>>> import kvlite
>>> db = kvlite.open(":memory:")
>>> users = db.collection("users")
>>> users.put("u1", {"name": "Ada", "age": 36})
>>> users.get("u1")
{'name': 'Ada', 'age': 36}
"""

from __future__ import annotations

from . import errors
from .changes import Change
from .collection import ABSENT, Collection
from .copy import copy
from .dictview import DictView
from .errors import KvliteError
from .keyvalue import KeyValue
from .serializers import Serializer
from .serializers import register as register_serializer
from .store import Store, open
from .version import __version__

__all__ = [
    "ABSENT",
    "Change",
    "Collection",
    "DictView",
    "KeyValue",
    "KvliteError",
    "Serializer",
    "Store",
    "copy",
    "errors",
    "open",
    "register_serializer",
    "__version__",
]
