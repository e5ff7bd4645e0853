"""Typed collections: values validated into a dataclass or a Pydantic model.

``store.collection("users", model=User)`` keeps plain JSON in the file (so
queries, push-down and indexes work as on any JSON collection) and converts at
the edges: ``put`` accepts a ``User`` or a mapping that validates into one
(anything else raises :class:`~kvlite.errors.ValidationError` and writes
nothing); ``get``, the dict view and whole-document query matches return
``User`` instances.

* Pydantic (v2, optional): ``model_validate`` on the way in and out,
  ``model_dump(mode="json")`` to store.
* dataclasses: ``User(**mapping)`` on the way in and out (a missing or
  unknown field is a ``ValidationError``), ``dataclasses.asdict`` to store.
  Field types are not checked (dataclasses do not check them either) and
  nested dataclasses come back as dicts unless the model converts them in
  ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .errors import ValidationError

__all__ = ["ModelAdapter"]


class ModelAdapter:
    """Converts between a model class and the plain dict stored as JSON."""

    def __init__(self, model: type) -> None:
        if not isinstance(model, type):
            raise TypeError(f"model must be a class (a dataclass or a Pydantic model), not {model!r}")
        self.model = model
        self.kind = "pydantic" if hasattr(model, "model_validate") and hasattr(model, "model_dump") else ""
        if not self.kind and dataclasses.is_dataclass(model):
            self.kind = "dataclass"
        if not self.kind:
            raise TypeError(f"model must be a dataclass or a Pydantic model, not {model.__name__}")

    @property
    def name(self) -> str:
        return f"{self.model.__module__}.{self.model.__qualname__}"

    def dump(self, value: Any) -> dict[str, Any]:
        """The dict to store for ``value`` (an instance, or a mapping that validates)."""
        if self.kind == "pydantic":
            try:
                instance = value if isinstance(value, self.model) else self.model.model_validate(value)  # type: ignore[attr-defined]
            except Exception as exc:  # pydantic.ValidationError, without importing pydantic
                raise ValidationError(f"not a valid {self.model.__name__}: {exc}") from exc
            return instance.model_dump(mode="json")  # type: ignore[no-any-return]
        if isinstance(value, self.model):
            return dataclasses.asdict(value)
        if isinstance(value, Mapping):
            try:
                return dataclasses.asdict(self.model(**value))
            except TypeError as exc:
                raise ValidationError(f"not a valid {self.model.__name__}: {exc}") from exc
        raise ValidationError(f"expected a {self.model.__name__} or a mapping, not {type(value).__name__}")

    def load(self, data: Any) -> Any:
        """The model instance for a stored dict."""
        try:
            if self.kind == "pydantic":
                return self.model.model_validate(data)  # type: ignore[attr-defined]
            return self.model(**data)
        except Exception as exc:
            raise ValidationError(f"stored value is not a valid {self.model.__name__}: {exc}") from exc
