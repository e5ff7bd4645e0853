"""Commands that run queries: ``find``, ``query``, ``count``, ``explain`` and ``index``.

PATH is written in the query language ``--engine`` names (one of :data:`kvlite.query.ENGINES`):
RFC 9535 JSONPath by default (``jsonpath``), jsonpath-ng's extended dialect
(``jsonpath-ng``), ObjectPath (``objectpath``) or JMESPath (``jmespath``);
the root ``$`` is the collection as a mapping ``key -> document``.  A PATH that does not
parse is a usage error (exit code 2, see :func:`kvlite.cli.main`).  Only ``json`` and
``jsonb`` collections can be queried.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from .. import keys as _keys
from ..keys import Key
from ..query import ENGINES
from ..store import Store
from .common import (
    CliError,
    Subparsers,
    UsageError,
    add_command,
    file_arg,
    non_negative_int,
    open_collection,
    open_file,
)
from .text import json_line, printable, record_line, stdout

__all__ = ["setup_count", "setup_explain", "setup_facets", "setup_find", "setup_index", "setup_query"]


def _query_args(parser: argparse.ArgumentParser) -> None:
    file_arg(parser)
    parser.add_argument("collection", metavar="COLL", help="collection name")
    parser.add_argument("path", metavar="PATH",
                        help="a query in the --engine's language (by default RFC 9535 JSONPath)")
    parser.add_argument("--engine", choices=ENGINES, default="jsonpath",
                        help="the query language: 'jsonpath' is RFC 9535 JSONPath (the default), "
                             "'jsonpath-ng' is jsonpath-ng's extended dialect, "
                             "'objectpath' is ObjectPath, 'jmespath' is JMESPath")


def _paging_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=non_negative_int, metavar="N", help="at most N matches")
    parser.add_argument("--offset", type=non_negative_int, metavar="N", default=0, help="skip N matches")
    _order_args(parser)


def _order_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--order-by", metavar="FIELD",
                        help="order the documents by a field path first ('$.age'); descending: "
                             "--order-by=-$.age (with '=': argparse takes '-...' for an option) or --desc")
    parser.add_argument("--desc", action="store_true", help="with --order-by FIELD: descending")
    parser.add_argument("--missing-last", action="store_true",
                        help="with --order-by FIELD: documents whose FIELD is missing or null come last")


def _order(args: argparse.Namespace) -> tuple[str | None, bool]:
    """``(order_by, desc)`` from the flags; a usage error when they contradict each other."""
    if args.desc and args.order_by is None:
        raise UsageError("--desc needs --order-by FIELD (it reverses that order)")
    if args.missing_last and args.order_by is None:
        raise UsageError("--missing-last needs --order-by FIELD")
    if args.desc and args.order_by.startswith("-"):
        raise UsageError(f"--order-by={args.order_by} already means descending; "
                         "drop either the '-' or --desc")
    return args.order_by, args.desc


def _matches(store: Store, args: argparse.Namespace) -> Iterator[tuple[Key, Any]]:
    order_by, desc = _order(args)
    coll = open_collection(store, args.collection, values=True)
    return coll.find(args.path, engine=args.engine, limit=args.limit, offset=args.offset,
                     order_by=order_by, desc=desc, missing_last=args.missing_last)


def setup_find(sub: Subparsers) -> None:
    p = add_command(sub, "find", "run a query; print {\"key\", \"value\"} per match as JSON Lines",
                    handler=_run_find,
                    description="Run PATH over the collection (the root $ is the collection as a mapping "
                                "key -> document) and print one JSON object per match: "
                                "{\"key\": KEY, \"value\": MATCH}. Streams: constant memory.")
    _query_args(p)
    _paging_args(p)


def _run_find(args: argparse.Namespace) -> int:
    with open_file(args.file, write=False) as store:
        matches = _matches(store, args)
        out = stdout()
        for key, value in matches:
            out.write(record_line((b'"key"', None if key is None else _keys.to_json(key)), (b'"value"', value)))
    return 0


def setup_query(sub: Subparsers) -> None:
    p = add_command(sub, "query", "run a query; print each matched value as JSON Lines",
                    handler=_run_query,
                    description="Like 'find', but print only the matched values, one JSON value per line "
                                "(ready for jq).")
    _query_args(p)
    _paging_args(p)


def _run_query(args: argparse.Namespace) -> int:
    with open_file(args.file, write=False) as store:
        matches = _matches(store, args)
        out = stdout()
        for _, value in matches:
            out.write(json_line(value))
    return 0


def setup_count(sub: Subparsers) -> None:
    p = add_command(sub, "count", "print the number of matches of a query", handler=_run_count)
    _query_args(p)


def _run_count(args: argparse.Namespace) -> int:
    with open_file(args.file, write=False) as store:
        coll = open_collection(store, args.collection, values=True)
        print(coll.count(args.path, engine=args.engine))
    return 0


def setup_facets(sub: Subparsers) -> None:
    p = add_command(sub, "facets", "count the documents holding each value at a path, most frequent first",
                    handler=_run_facets,
                    description="Print {\"value\": VALUE, \"count\": N} per distinct value at PATH (an RFC 9535 "
                                "singular query such as $.status), most frequent first, as JSON Lines. Documents "
                                "without PATH are not counted; values compare as JSON (1 and 1.0 are one value, "
                                "true and 1 two; arrays and objects by equality). One GROUP BY in SQLite when "
                                "SQL decides --query.")
    file_arg(p)
    p.add_argument("collection", metavar="COLL", help="collection name")
    p.add_argument("path", metavar="PATH", help="where the value is in each document ($.status)")
    p.add_argument("--query", metavar="Q", help="count only the documents this filter selects ($[?@.age > 30])")
    p.add_argument("--limit", type=non_negative_int, metavar="N", help="print the N most frequent values")


def _run_facets(args: argparse.Namespace) -> int:
    with open_file(args.file, write=False) as store:
        coll = open_collection(store, args.collection, values=True)
        counts = coll.count_by(args.path, args.query)
    out = stdout()
    for value, count in counts[:args.limit]:
        out.write(record_line((b'"value"', value), (b'"count"', count)))
    return 0


def setup_explain(sub: Subparsers) -> None:
    p = add_command(sub, "explain", "show what part of a query runs in SQLite and what in Python",
                    handler=_run_explain)
    _query_args(p)
    _order_args(p)


def _run_explain(args: argparse.Namespace) -> int:
    order_by, desc = _order(args)
    with open_file(args.file, write=False) as store:
        coll = open_collection(store, args.collection, values=True)
        plan = coll.explain(args.path, engine=args.engine, order_by=order_by, desc=desc,
                            missing_last=args.missing_last)
    lines = [f"engine:    {plan['engine']}",
             f"streaming: {'yes' if plan['streaming'] else 'no (loads the whole collection)'}"]
    for number, step in enumerate(plan["steps"], start=1):
        lines.append(f"step {number}:    {step['kind']}")
        if step.get("pushdown"):
            lines.append(f"  in SQL:    {'; '.join(step['pushdown'])}")
        lines.append(f"  in Python: {step['python']}")
        lines += [f"  plan:      {line}" for line in step.get("query_plan", [])]
    if order_by is not None:
        field, down = (order_by[1:], True) if order_by.startswith("-") else (order_by, desc)
        lines.append(f"order:     {field} {'descending' if down else 'ascending'}"
                     + (", missing values last" if args.missing_last else ""))
    lines += [f"note:      {note}" for note in plan["notes"]]
    print("\n".join(printable(line) for line in lines))
    return 0


def setup_index(sub: Subparsers) -> None:
    p = add_command(sub, "index", "create, drop or list expression indexes on JSON fields", handler=_run_index,
                    description="'index FILE COLL' lists the indexed paths; '--create PATH' / '--drop PATH' "
                                "changes them (plain field paths such as $.age).")
    file_arg(p)
    p.add_argument("collection", metavar="COLL", help="collection name")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--create", metavar="PATH")
    action.add_argument("--drop", metavar="PATH")


def _run_index(args: argparse.Namespace) -> int:
    write = bool(args.create or args.drop)
    with open_file(args.file, write=write) as store:
        coll = open_collection(store, args.collection, values=True)
        if args.create:
            coll.create_index(args.create)
        elif args.drop and not coll.drop_index(args.drop):
            raise CliError(f"no index on {args.drop!r} in collection {args.collection!r}")
        for path in coll.indexes():
            print(printable(path))
    return 0


