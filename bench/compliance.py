"""kvlite's JSONPath against the JSONPath Compliance Test Suite (RFC 9535).

    python -m bench.compliance path/to/cts.json [--verbose] [--engines a,b]

``cts.json`` is the suite's generated file (github.com/jsonpath-standard/
jsonpath-compliance-test-suite, not vendored here).  kvlite's root ``$`` is a
collection seen as the object ``{key: document}``, so only the cases whose
``document`` is a JSON object can run as queries: each member of it is stored
as one document (``coll.put(name, value)``, in the document's order) and
``[v for v in coll.select(selector)]`` must equal the case's ``result`` (or
one of its ``results``, the orders the standard allows).  Every
``invalid_selector`` case must raise :class:`kvlite.errors.QuerySyntaxError`.
The cases whose document is an array or a scalar are counted as skipped.

Rows (one fresh collection per case):

==================  ==========================================================
``sqlite-json``     ``kvlite.open(":memory:")``, the default serializer: the
                    default engine; any failure makes the exit status 1
``sqlite-jsonb``    ``serializer="jsonb"``
``sqlite-json+idx`` ``create_index`` on every plain top-level name the
                    selector spells (``.name``, ``['name']``) before the puts
``memory``          ``"memory://"`` (pure Python)
``jsonpath-ng``     reference only: jsonpath-ng's dialect (``engine=
                    "jsonpath-ng"``) on ``sqlite-json``; not RFC 9535
==================  ==========================================================

Values are compared as JSON values: ``true`` is not ``1``, ``1`` is ``1.0``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import kvlite
from kvlite.errors import QuerySyntaxError

#: The row whose failures fail the run.
DEFAULT = "sqlite-json"

_PLAIN = r"[A-Za-z_][A-Za-z0-9_]*"
_NAMES = re.compile(rf"\.({_PLAIN})|\[\s*'({_PLAIN})'\s*\]|\[\s*\"({_PLAIN})\"\s*\]")


@dataclass(frozen=True)
class Engine:
    name: str
    url: str
    serializer: str = "json"
    language: str = "jsonpath"
    index: bool = False
    reference: bool = False


ENGINES: dict[str, Engine] = {e.name: e for e in (
    Engine("sqlite-json", ":memory:"),
    Engine("sqlite-jsonb", ":memory:", serializer="jsonb"),
    Engine("sqlite-json+idx", ":memory:", index=True),
    Engine("memory", "memory://"),
    Engine("jsonpath-ng", ":memory:", language="jsonpath-ng", reference=True),
)}


@dataclass
class Failure:
    name: str
    selector: str
    expected: Any
    got: Any


@dataclass
class Row:
    engine: Engine
    passed: int = 0
    total: int = 0
    refused: int = 0
    invalid: int = 0
    failures: list[Failure] = field(default_factory=list)


def typed(value: Any) -> Any:
    """``value`` as a comparable JSON value: booleans apart from numbers, ``1`` equal to ``1.0``,
    object members unordered."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, (list, tuple)):
        return ("array", tuple(typed(v) for v in value))
    if isinstance(value, dict):
        return ("object", frozenset((k, typed(v)) for k, v in value.items()))
    return ("other", repr(value))


def index_paths(selector: str) -> list[str]:
    """``$.name`` for every plain name the selector spells, in order, once each."""
    out: list[str] = []
    for match in _NAMES.finditer(selector):
        path = "$." + next(g for g in match.groups() if g)
        if path not in out:
            out.append(path)
    return out


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_case(store: kvlite.Store, engine: Engine, number: int, case: dict[str, Any]) -> Failure | None:
    """One case on one engine: ``None`` when it passes, else what went wrong."""
    selector = case["selector"]
    coll = store.collection(f"case{number}")
    try:
        if case.get("invalid_selector"):
            try:
                got: Any = [v for v in coll.select(selector, engine=engine.language)]
            except QuerySyntaxError:
                return None
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                return Failure(case["name"], selector, "QuerySyntaxError", _describe(exc))
            return Failure(case["name"], selector, "QuerySyntaxError", got)
        if engine.index:
            for path in index_paths(selector):
                coll.create_index(path)
        for name, value in case["document"].items():
            coll.put(name, value)
        expected = case["results"] if "results" in case else [case["result"]]
        try:
            got = [v for v in coll.select(selector, engine=engine.language)]
        except Exception as exc:  # noqa: BLE001
            return Failure(case["name"], selector, expected[0], _describe(exc))
        if any(typed(got) == typed(option) for option in expected):
            return None
        return Failure(case["name"], selector, expected[0] if len(expected) == 1 else expected, got)
    except Exception as exc:  # noqa: BLE001 - setting the case up failed
        return Failure(case["name"], selector, "(setup)", _describe(exc))
    finally:
        store.drop_collection(coll.name) if hasattr(store, "drop_collection") else coll.clear()


def run(cases: list[dict[str, Any]], engines: list[Engine],
        progress: Callable[[str], None] = lambda _: None) -> tuple[list[Row], int]:
    """The rows of ``engines`` on ``cases``, and how many cases were skipped (their document
    is not an object)."""
    runnable = [(i, c) for i, c in enumerate(cases)
                if c.get("invalid_selector") or isinstance(c.get("document"), dict)]
    skipped = len(cases) - len(runnable)
    rows = []
    for engine in engines:
        progress(engine.name)
        row = Row(engine)
        with kvlite.open(engine.url, serializer=engine.serializer) as store:
            for number, case in runnable:
                failure = run_case(store, engine, number, case)
                if case.get("invalid_selector"):
                    row.invalid += 1
                    row.refused += failure is None
                else:
                    row.total += 1
                    row.passed += failure is None
                if failure is not None:
                    row.failures.append(failure)
        rows.append(row)
    return rows, skipped


def _short(value: Any, width: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def report(rows: list[Row], skipped: int, total: int, verbose: bool) -> str:
    lines = [f"JSONPath Compliance Test Suite: {total} cases, {skipped} skipped "
             "(document not an object: no collection holds it as its root)", "",
             "| engine | object cases passed | invalid selectors refused | failures |",
             "|---|---:|---:|---:|"]
    for row in rows:
        note = " (reference: jsonpath-ng's dialect, not RFC 9535)" if row.engine.reference else ""
        lines.append(f"| {row.engine.name}{note} | {row.passed}/{row.total} | "
                     f"{row.refused}/{row.invalid} | {len(row.failures)} |")
    if verbose:
        for row in rows:
            if not row.failures:
                continue
            lines += ["", f"## {row.engine.name}: {len(row.failures)} failures", ""]
            for f in row.failures:
                lines.append(f"- {f.name}\n  selector: {json.dumps(f.selector, ensure_ascii=False)}\n"
                             f"  expected: {_short(f.expected)}\n  got:      {_short(f.got)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compliance", description=__doc__.splitlines()[0])
    parser.add_argument("cts", type=Path, help="the suite's cts.json")
    parser.add_argument("--verbose", "-v", action="store_true", help="list every failure")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"comma-separated (default: {','.join(ENGINES)})")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.engines.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown:
        parser.error(f"unknown engines: {', '.join(unknown)} (known: {', '.join(ENGINES)})")
    with args.cts.open(encoding="utf-8") as fh:
        cases = json.load(fh)["tests"]
    rows, skipped = run(cases, [ENGINES[n] for n in names],
                        progress=lambda name: print(f"running {name} ...", file=sys.stderr))
    print(report(rows, skipped, len(cases), args.verbose))
    default = next((row for row in rows if row.engine.name == DEFAULT), None)
    return 1 if default is not None and default.failures else 0


if __name__ == "__main__":
    sys.exit(main())
