"""Queries over stored values: JSONPath and ObjectPath, streaming, with SQL push-down."""
