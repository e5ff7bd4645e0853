-- kvlite schema 1: the store's metadata and the registry of collections.
-- Each collection's own table (kv_<id>) is created by kvlite/collection.py.

CREATE TABLE kvlite_meta (
    key   TEXT PRIMARY KEY,
    value ANY
) STRICT;

CREATE TABLE kvlite_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
) STRICT;

CREATE TABLE kvlite_collections (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    table_name TEXT NOT NULL UNIQUE,
    serializer TEXT NOT NULL,
    created_at REAL NOT NULL,
    options    TEXT NOT NULL DEFAULT '{}'
) STRICT;
